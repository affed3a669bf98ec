"""Figures that must stay readable."""
import numpy as np

from birdseg.plots import plot_history


def test_plot_history_past_twenty_epochs():
    epochs = 25
    history = {"loss": list(np.linspace(1, 0.1, epochs)), "val_loss": list(np.linspace(1.1, 0.2, epochs)),
               "iou_score": list(np.linspace(0, 0.9, epochs)), "val_iou_score": list(np.linspace(0, 0.8, epochs))}
    figure = plot_history(history)
    ticks = figure.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks) and len(ticks) < epochs


def test_history_labels_its_axes_and_says_why_training_ended():
    history = {"loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.8], "iou_score": [0.1, 0.3, 0.4],
               "val_iou_score": [0.2, 0.5, 0.45]}
    figure = plot_history(history, ended="all 3 epochs", loss="bce_jaccard_per_image")
    assert [ax.get_ylabel() for ax in figure.axes] == ["loss", "IoU (0 to 1)"]
    assert figure.axes[0].get_title() == "loss (bce_jaccard_per_image)"
    assert all(ax.get_xlabel() == "epoch" for ax in figure.axes)
    labels = [text.get_text() for text in figure.axes[1].get_legend().get_texts()]
    assert "kept: epoch 2 (best validation IoU)" in labels and "ended: all 3 epochs" in labels


def test_one_validation_loss_spike_does_not_flatten_the_loss_panel():
    """The validation loss of the second epoch from scratch once came out at 6.3 with every other loss under 1.5:
    the panel then stops at twice the highest training loss and writes the spike's value at the edge."""
    history = {"loss": [1.43, 1.04, 0.93, 0.86], "val_loss": [1.15, 6.30, 1.07, 1.05],
               "iou_score": [0.02, 0.17, 0.23, 0.24], "val_iou_score": [0.12, 0.01, 0.03, 0.02]}
    loss_panel = plot_history(history).axes[0]
    bottom, top = loss_panel.get_ylim()
    assert top == 2.86 and bottom < 0.86
    assert [text.get_text() for text in loss_panel.texts] == ["6.30 \u2191"]
    history["val_loss"][1] = 1.2  # no spike: matplotlib's own limits, nothing written
    loss_panel = plot_history(history).axes[0]
    assert loss_panel.get_ylim()[1] < 1.5 and not loss_panel.texts


def test_error_overlay_colours_found_extra_and_missed_pixels_apart():
    from birdseg.plots import ERROR_COLORS, error_overlay

    image = np.zeros((20, 30, 3), np.uint8)
    truth = np.zeros((20, 30), bool)
    pred = np.zeros((20, 30), bool)
    truth[2:12, 2:12] = True
    pred[2:12, 7:17] = True  # half found, half extra; the other half of the bird missed
    shown = error_overlay(image, truth, pred).astype(int)
    found, extra, missed = (np.asarray(color) for color in ERROR_COLORS.values())
    inside = {"found": shown[6, 9], "extra": shown[6, 14], "missed": shown[6, 4], "none": shown[16, 25]}
    for name, color in (("found", found), ("extra", extra), ("missed", missed)):
        others = [c for c in (found, extra, missed) if c is not color]
        assert np.abs(inside[name] - 0.55 * color).max() <= 2, name  # tinted with its own colour over black
        assert all(np.abs(inside[name] - 0.55 * other).max() > 20 for other in others), name
    assert (inside["none"] == 0).all()
