"""The viewer: static figures headless, widgets in a live session, for test images and for photos without masks."""
import matplotlib.pyplot as plt
import numpy as np

from birdseg import display, files, plots, predict, viewer
from birdseg.pairs import find_pairs


def headless(monkeypatch):
    for name in display.LIVE_SESSION_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_headless_viewer_draws_static_figures_predicting_only_what_they_show(trained_model, tiny_dataset,
                                                                            monkeypatch):
    headless(monkeypatch)
    predicted = []
    monkeypatch.setattr(viewer, "predict_pairs", lambda model, pairs, **options: predicted.extend(pairs) or
                        predict.predict_pairs(model, pairs, **options))
    figures = viewer.show_viewer(trained_model, find_pairs(tiny_dataset / "test"))
    assert len(figures) == 6  # two images at three thresholds
    assert len(predicted) == 2
    titles = [fig._suptitle.get_text() for fig in figures]
    assert "threshold 0.30" in titles[0] and "threshold 0.70" in titles[2]
    assert all(("IoU" in title or "no bird" in title) for title in titles)
    assert [len(fig.axes) for fig in figures] == [3] * 6  # photo, true mask, overlay
    plt.close("all")


def test_photos_without_masks_are_shown_without_a_true_mask(trained_model, tiny_dataset, monkeypatch):
    headless(monkeypatch)
    photos = [(image_path, None) for image_path, _ in find_pairs(tiny_dataset / "test")]
    figures = viewer.show_viewer(trained_model, photos)
    assert [len(fig.axes) for fig in figures] == [2] * 6  # photo, overlay
    assert "% of the pixels bird" in figures[0]._suptitle.get_text()
    plt.close("all")


def test_live_session_gets_widgets_that_redraw_what_is_chosen(trained_model, tiny_dataset, monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", "test.ipynb")
    drawn = []
    real_figure = viewer.viewer_figure
    monkeypatch.setattr(viewer, "viewer_figure", lambda image, truth, probability, threshold, view, title, pyplot:
                        drawn.append((title, threshold, view)) or real_figure(image, truth, probability, threshold,
                                                                               view, title, pyplot))
    pairs = find_pairs(tiny_dataset / "test")
    plt.close("all")
    panel = viewer.show_viewer(trained_model, pairs)
    (index, threshold), view, shown = panel.children[0].children, panel.children[1], panel.children[2]
    assert index.max == 2 and drawn == [(pairs[0][0].name, 0.5, "overlay")]
    first = bytes(shown.value)
    threshold.value = 0.9
    index.value = 2
    view.value = "probability"
    assert drawn[1:] == [(pairs[0][0].name, 0.9, "overlay"), (pairs[2][0].name, 0.9, "overlay"),
                         (pairs[2][0].name, 0.9, "probability")]
    last = bytes(shown.value)
    assert first[:4] == last[:4] == b"\x89PNG" and last != first
    # drawn outside pyplot: no plt.show() or cell end elsewhere can display one of them half-drawn
    assert plt.get_fignums() == []


def test_a_figure_outside_pyplot_is_drawn_like_one_inside():
    image = np.zeros((8, 8, 3), np.uint8)
    plt.close("all")
    tracked, untracked = plots.visualize(title="t", image=image), plots.visualize(title="t", pyplot=False, image=image)
    assert plt.get_fignums() == [tracked.number]
    assert files.figure_bytes(tracked) == files.figure_bytes(untracked)
    plt.close("all")


def test_the_three_views_draw_different_pictures():
    image = np.zeros((8, 8, 3), np.uint8)
    truth = np.zeros((8, 8), np.uint8)
    truth[2:4, 2:4] = 1
    probability = truth.astype(np.float32) * 0.8 + 0.1
    shown = []
    for view in viewer.VIEWS:
        fig = viewer.viewer_figure(image, truth, probability, 0.5, view, "x")
        assert "IoU 1.000" in fig._suptitle.get_text()
        shown.append(np.asarray(fig.axes[2].images[0].get_array(), dtype=float))
    overlay, mask, probability_shown = shown
    assert overlay.ndim == 3 and mask.ndim == probability_shown.ndim == 2
    np.testing.assert_array_equal(mask, truth)  # the thresholded mask
    np.testing.assert_allclose(probability_shown, probability)  # the probabilities themselves
    assert (overlay[2:4, 2:4] != overlay[0, 0]).any()  # the bird is tinted
    empty = viewer.viewer_figure(image, np.zeros_like(truth), probability * 0, 0.5, "overlay", "x")
    assert "no bird, none predicted" in empty._suptitle.get_text()
    plt.close("all")
