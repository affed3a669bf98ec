"""Figures: sample views, prediction grids, overlays, training history, threshold sweeps.

Functions take arrays and return a matplotlib Figure; `save_figure` (files.py) writes it.
Images may be uint8 or float in [0, 1]; masks are any {0, 1} or boolean array.
"""
import cv2
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from birdseg.defaults import THRESHOLD
from birdseg.layout import MONITOR

# Okabe and Ito's colour-blind-safe palette: told apart with every common colour-vision deficiency.
PRED_COLOR = (230, 159, 0)  # orange: predicted bird, where there is no true mask to compare with
ERROR_COLORS = {  # what each pixel of an overlay against the true mask is
    "bird found": (86, 180, 233),  # sky blue: true positive
    "predicted, not bird": (230, 159, 0),  # orange: false positive
    "bird missed": (204, 121, 167),  # reddish purple: false negative
}


def as_uint8(image):
    """uint8 RGB from uint8 or float [0, 1] images."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def squeeze_mask(mask):
    """A mask of shape (H, W) from (H, W) or (H, W, 1)."""
    mask = np.asarray(mask)
    return mask[..., 0] if mask.ndim == 3 else mask


def tint(image, regions, alpha=0.55):
    """`image` with each (mask, colour) of `regions` tinted and outlined in its colour, so that a region stays
    visible on a dark bird as on a bright sky; returns uint8 RGB."""
    out = as_uint8(image).astype(np.float32)
    outlines = []
    for mask, color in regions:
        region = squeeze_mask(mask).astype(bool)
        out[region] = (1 - alpha) * out[region] + alpha * np.asarray(color, np.float32)
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        outlines.append((contours, color))
    out = out.astype(np.uint8)
    for contours, color in outlines:
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), 1)
    return out


def overlay(image, mask, color=PRED_COLOR):
    """The predicted bird pixels of `image` tinted and outlined in `color` (no true mask to compare with)."""
    return tint(image, [(mask, color)])


def error_overlay(image, truth, pred):
    """`image` with its errors visible: bird found, predicted where there is no bird, bird missed (ERROR_COLORS)."""
    truth, pred = squeeze_mask(truth).astype(bool), squeeze_mask(pred).astype(bool)
    colors = list(ERROR_COLORS.values())
    return tint(image, [(truth & pred, colors[0]), (~truth & pred, colors[1]), (truth & ~pred, colors[2])])


def add_error_legend(fig):
    """The legend of `error_overlay`'s colours, under the figure."""
    handles = [Patch(facecolor=np.asarray(color) / 255, label=label) for label, color in ERROR_COLORS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=10, bbox_to_anchor=(0.5, 0.0))


def visualize(columns=None, title=None, pyplot=True, **images):
    """Show named images side by side (qubvel-style helper): visualize(image=img, mask=mask). With pyplot=False
    the figure is one pyplot does not track, so neither plt.show() nor a cell's end displays it, finished or not."""
    count = len(images)
    columns = columns or count
    rows = int(np.ceil(count / columns))
    size = (4 * columns, 3 * rows)
    fig = plt.figure(figsize=size) if pyplot else Figure(figsize=size)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")  # the grid's empty places
    for ax, (name, image) in zip(axes.flat, images.items()):
        image = np.asarray(image)
        is_mask = image.ndim == 2 or image.shape[-1] == 1
        ax.imshow(squeeze_mask(image) if is_mask else as_uint8(image), cmap="gray" if is_mask else None,
                  vmin=0 if is_mask else None, vmax=1 if is_mask else None)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_color("0.6")  # a frame: a mask's white edge stays apart from the white page
        ax.set_title(name.replace("_", " "))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def prediction_grid(rows, title=None):
    """One row per sample: original / true mask / overlay / predicted mask.

    `rows` is a list of dicts with keys image, true, pred and optional caption (shown on the overlay).
    """
    fig, axes = plt.subplots(len(rows), 4, figsize=(14, 2.6 * len(rows) + 1.0), squeeze=False)
    headers = ("original", "true mask", "prediction against the truth", "predicted mask")
    for row_axes, row in zip(axes, rows):
        panels = (
            as_uint8(row["image"]),
            squeeze_mask(row["true"]),
            error_overlay(row["image"], row["true"], row["pred"]),
            squeeze_mask(row["pred"]),
        )
        for ax, panel in zip(row_axes, panels):
            ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=1 if panel.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
        row_axes[2].set_xlabel(row.get("caption", ""), fontsize=10)
    for ax, header in zip(axes[0], headers):
        ax.set_title(header, fontsize=11)
    if title:
        fig.suptitle(title, fontsize=13)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))
    add_error_legend(fig)
    return fig


def overlay_gallery(items, columns=3, title=None):
    """The predictions against the true masks (`error_overlay`, legend under the figure), each image titled with its
    caption (e.g. its score)."""
    rows = int(np.ceil(len(items) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.3 * rows + 0.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, items):
        ax.imshow(error_overlay(item["image"], item["true"], item["pred"]))
        ax.set_title(item.get("caption", ""), fontsize=10)
    if title:
        fig.suptitle(title, fontsize=13)
    # keep the suptitle clear of the first row's titles, and room for the legend
    fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 0.97 if title else 1))
    add_error_legend(fig)
    return fig


def image_gallery(images, captions, columns=3, title=None):
    """Images in a grid, each with its caption."""
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.3 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions):
        ax.imshow(as_uint8(image))
        ax.set_title(caption, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig


def loss_axis_top(history):
    """The highest loss the loss panel shows: twice the highest training loss (an epoch's mean, smooth from the
    start), so that one validation spike, common in the first epochs from random initialisation, does not flatten
    every other point; None without a training loss."""
    train = np.asarray(history.get("loss", []), dtype=float)
    return 2 * float(np.nanmax(train)) if np.isfinite(train).any() else None


def plot_history(history, monitor=MONITOR, ended=None, loss=None):
    """Loss and IoU per epoch, train vs validation, with the kept epoch (best by `monitor`) marked, and, given
    `ended` (why training ended, e.g. "all 10 epochs"), a line at the last epoch saying so. `loss`: the LOSS
    parameter's value, for the loss panel's title."""
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    best = None
    if history.get(monitor):
        values = np.asarray(history[monitor], dtype=float)
        best = int(np.nanargmax(values) if "iou" in monitor or "f1" in monitor else np.nanargmin(values)) + 1
    panels = ((axes[0], "loss", f"loss ({loss})" if loss else "loss", "loss"),
              (axes[1], "iou_score", f"IoU at threshold {THRESHOLD}", "IoU (0 to 1)"))
    for ax, key, title, ylabel in panels:
        if key in history:
            ax.plot(epochs, history[key], "o-", label="train")
        if "val_" + key in history:
            ax.plot(epochs, history["val_" + key], "s-", label="validation")
        if best:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1,
                       label=f"kept: epoch {best} (best validation IoU)")
        if ended:
            ax.axvline(epochs[-1], color="black", linestyle=":", linewidth=1, label=f"ended: {ended}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, however many
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    axes[1].set_ylim(-0.02, 1.02)
    top = loss_axis_top(history)
    spikes = [(epoch, value) for epoch, value in zip(epochs, history.get("val_loss", []))
              if top is not None and value > top]
    if spikes:  # matplotlib's own limits otherwise
        axes[0].set_ylim(top=top)
        for epoch, value in spikes:  # drawn at the edge, its value written beside it
            axes[0].annotate(f"{value:.2f} \u2191", (epoch, top), xytext=(8, -14), textcoords="offset points",
                             fontsize=9, color="C1", bbox=dict(facecolor="white", edgecolor="none", pad=1))
    fig.tight_layout()
    return fig


def plot_threshold_sweep(thresholds, ious, f1s, best_threshold, threshold=THRESHOLD, title=None):
    """Dataset-level IoU and F1 against the threshold, with the threshold in use and the best-IoU one marked."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(thresholds, ious, "o-", label="IoU")
    ax.plot(thresholds, f1s, "s-", label="F1")
    ax.axvline(threshold, color="black", linestyle="-", linewidth=1, label=f"in use: {threshold:.2f}")
    ax.axvline(best_threshold, color="grey", linestyle="--", label=f"best IoU at {best_threshold:.2f}")
    ax.set_xlabel("threshold on the predicted probability")
    ax.set_ylabel("dataset-level score (0 to 1)")
    ax.set_ylim(-0.02, 1.02)
    if title:
        ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig
