"""Figures: sample views, prediction grids, overlays, training history, threshold sweeps.

Functions take arrays and return a matplotlib Figure; `save_figure` (files.py) writes it.
Images may be uint8 or float in [0, 1]; masks are any {0, 1} or boolean array.
"""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from birdseg.defaults import THRESHOLD

TRUE_COLOR = (40, 200, 90)
PRED_COLOR = (255, 50, 50)


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


def overlay(image, mask, color=PRED_COLOR, alpha=0.45):
    """Tint the masked pixels of `image` with `color`; returns uint8 RGB."""
    out = as_uint8(image).astype(np.float32)
    region = squeeze_mask(mask).astype(bool)
    out[region] = (1 - alpha) * out[region] + alpha * np.asarray(color, np.float32)
    return out.astype(np.uint8)


def visualize(columns=None, title=None, **images):
    """Show named images side by side (qubvel-style helper): visualize(image=img, mask=mask)."""
    count = len(images)
    columns = columns or count
    rows = int(np.ceil(count / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, image) in zip(axes.flat, images.items()):
        image = np.asarray(image)
        is_mask = image.ndim == 2 or image.shape[-1] == 1
        ax.imshow(squeeze_mask(image) if is_mask else as_uint8(image), cmap="gray" if is_mask else None,
                  vmin=0 if is_mask else None, vmax=1 if is_mask else None)
        ax.set_title(name.replace("_", " "))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def prediction_grid(rows, title=None):
    """One row per sample: original / true mask / overlay / predicted mask.

    `rows` is a list of dicts with keys image, true, pred and optional caption (shown on the overlay).
    """
    fig, axes = plt.subplots(len(rows), 4, figsize=(14, 2.6 * len(rows) + 0.6), squeeze=False)
    headers = ("original", "true mask", "overlay (red = predicted)", "predicted mask")
    for row_axes, row in zip(axes, rows):
        panels = (
            as_uint8(row["image"]),
            squeeze_mask(row["true"]),
            overlay(row["image"], row["pred"]),
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
    fig.tight_layout()
    return fig


def overlay_gallery(items, columns=3, title=None):
    """Overlays of true (green) and predicted (red) masks, each titled with its caption (e.g. per-image IoU)."""
    rows = int(np.ceil(len(items) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.3 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, items):
        shown = overlay(overlay(item["image"], item["true"], TRUE_COLOR, 0.35), item["pred"], PRED_COLOR, 0.45)
        ax.imshow(shown)
        ax.set_title(item.get("caption", ""), fontsize=10)
    fig.text(0.5, 0.0, "green = true mask, red = predicted (overlap looks orange)", ha="center", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=13)
    fig.tight_layout(rect=(0, 0.01, 1, 0.97 if title else 1))  # keep the suptitle clear of the first row's titles
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


def plot_history(history, monitor="val_iou_score"):
    """Loss and IoU per epoch, train vs validation, with the best epoch (by `monitor`) marked."""
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    best = None
    if history.get(monitor):
        values = np.asarray(history[monitor], dtype=float)
        best = int(np.nanargmax(values) if "iou" in monitor or "f1" in monitor else np.nanargmin(values)) + 1
    panels = ((axes[0], "loss", "loss (BCE + Jaccard)"), (axes[1], "iou_score", f"IoU at threshold {THRESHOLD}"))
    for ax, key, label in panels:
        if key in history:
            ax.plot(epochs, history[key], "o-", label="train")
        if "val_" + key in history:
            ax.plot(epochs, history["val_" + key], "s-", label="validation")
        if best:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best epoch ({best})")
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, however many
        ax.grid(alpha=0.3)
        ax.legend()
    axes[1].set_ylim(-0.02, 1.02)
    fig.tight_layout()
    return fig


def plot_threshold_sweep(thresholds, ious, f1s, best_threshold):
    """Dataset-level IoU and F1 against the threshold, the best-IoU threshold marked; returns the figure."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(thresholds, ious, "o-", label="IoU")
    ax.plot(thresholds, f1s, "s-", label="F1")
    ax.axvline(best_threshold, color="grey", linestyle="--", label=f"best IoU at {best_threshold:.2f}")
    ax.set_xlabel("threshold on predicted probability")
    ax.set_ylabel("dataset-level score")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
