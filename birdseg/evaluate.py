"""Evaluation and prediction: metrics at each photo's own resolution, figures, masks for new photos.

Prediction resizes a photo to the model's input size, predicts, and resizes the probability map
back to the photo's original size before thresholding, so masks and metrics are at full resolution.
"""
import csv
import io
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from birdseg import plots
from birdseg.data import DatasetError, find_pairs, is_image_file, read_image, read_pair
from birdseg.files import atomic_path, save_figure, write_json, write_text
from birdseg.model import (
    THRESHOLD,
    confusion_counts,
    model_image_size,
    scores_from_counts,
)

SWEEP_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))
FIGURE_NAMES = ("history.png", "overlays.png", "resultbirds-up.png", "resultbirds-bottom.png", "threshold_sweep.png")


# ---------------------------------------------------------------- prediction


def prepare_batch(model, images):
    """Resize uint8 RGB images to the model's input size: float32 batch in [0, 1]."""
    height, width = model_image_size(model)
    resized = [cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR) for image in images]
    return np.stack(resized).astype(np.float32) / 255.0


def predict_probabilities(model, images):
    """Probability maps (float32, each at its image's original height x width) for uint8 RGB images."""
    probabilities = np.asarray(model.predict_on_batch(prepare_batch(model, images)))[..., 0]
    return [
        cv2.resize(prob, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        for prob, image in zip(probabilities, images)
    ]


def predict_image(model, image, threshold=THRESHOLD):
    """Binary mask (uint8 {0, 1}, same height and width as `image`) for one uint8 RGB image of any size."""
    return (predict_probabilities(model, [np.asarray(image)])[0] > threshold).astype(np.uint8)


def batched(items, batch_size):
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


# ---------------------------------------------------------------- evaluation


def evaluate_pairs(model, pairs, threshold=THRESHOLD, batch_size=4, sweep=SWEEP_THRESHOLDS, progress=True):
    """Metrics of `model` on (image_path, mask_path) pairs at original resolution.

    Returns {"threshold", "images", "iou", "f1", "precision", "recall" (dataset-level: pixels of all
    images pooled), "mean_image_iou", "mean_image_f1", "per_image": [...], "sweep": {...}}.
    Streams the images: memory does not grow with the size of the split.
    """
    pairs = list(pairs)
    if not pairs:
        raise DatasetError("nothing to evaluate: no image/mask pairs")
    thresholds = sorted(set(sweep) | {threshold})
    sweep_counts = np.zeros((len(thresholds), 3), dtype=np.int64)
    per_image = []
    bar = tqdm(total=len(pairs), desc="evaluate", unit="img", disable=not progress)
    for chunk in batched(pairs, batch_size):
        loaded = [read_pair(image_path, mask_path) for image_path, mask_path in chunk]
        probabilities = predict_probabilities(model, [image for image, _ in loaded])
        for (image_path, _), (_, truth), prob in zip(chunk, loaded, probabilities):
            for row, t in enumerate(thresholds):
                sweep_counts[row] += confusion_counts(truth, prob > t)[:3]
            tp, fp, fn, _ = confusion_counts(truth, prob > threshold)
            per_image.append(
                {
                    "image": Path(image_path).name,
                    **scores_from_counts(tp, fp, fn),
                    "true_fraction": float(truth.mean()),
                    "pred_fraction": float((prob > threshold).mean()),
                }
            )
        bar.update(len(chunk))
    bar.close()
    main = sweep_counts[thresholds.index(threshold)]
    sweep_scores = [scores_from_counts(*counts) for counts in sweep_counts]
    return {
        "threshold": threshold,
        "images": len(per_image),
        **scores_from_counts(*main),
        "mean_image_iou": float(np.mean([p["iou"] for p in per_image])),
        "mean_image_f1": float(np.mean([p["f1"] for p in per_image])),
        "per_image": per_image,
        "sweep": {
            "thresholds": [float(t) for t in thresholds],
            "iou": [s["iou"] for s in sweep_scores],
            "f1": [s["f1"] for s in sweep_scores],
        },
    }


def evaluate_split(model, data_dir, split="test", threshold=THRESHOLD, max_images=None, batch_size=4):
    pairs = find_pairs(Path(data_dir) / split)[:max_images]
    return evaluate_pairs(model, pairs, threshold=threshold, batch_size=batch_size)


def best_threshold(metrics):
    sweep = metrics["sweep"]
    index = int(np.argmax(sweep["iou"]))
    return sweep["thresholds"][index], sweep["iou"][index]


def sweep_figure(metrics):
    """IoU and F1 against the threshold, with the best-IoU threshold marked."""
    sweep = metrics["sweep"]
    return plots.plot_threshold_sweep(sweep["thresholds"], sweep["iou"], sweep["f1"], best_threshold(metrics)[0])


def save_metrics(out_dir, metrics):
    """Write metrics.json and per_image.csv into `out_dir`."""
    out_dir = Path(out_dir)
    write_json(out_dir / "metrics.json", metrics)
    buffer = io.StringIO()
    keys = list(metrics["per_image"][0])
    writer = csv.DictWriter(buffer, keys, lineterminator="\n")
    writer.writeheader()
    for row in metrics["per_image"]:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(out_dir / "per_image.csv", buffer.getvalue())


def format_metrics(metrics):
    threshold, best_iou = best_threshold(metrics)
    return (
        f"{metrics['images']} images at threshold {metrics['threshold']}: "
        f"IoU {metrics['iou']:.4f}  F1 {metrics['f1']:.4f}  precision {metrics['precision']:.4f}  "
        f"recall {metrics['recall']:.4f}  (mean per-image IoU {metrics['mean_image_iou']:.4f}; "
        f"best threshold {threshold:.2f} gives IoU {best_iou:.4f})"
    )


# ---------------------------------------------------------------- figures


def figure_rows(model, pairs, entries, threshold=THRESHOLD):
    """Grid rows (image, true, pred, caption with per-image IoU) for `entries` of metrics["per_image"]."""
    by_name = {Path(image_path).name: (image_path, mask_path) for image_path, mask_path in pairs}
    loaded = [read_pair(*by_name[entry["image"]]) for entry in entries]
    probabilities = predict_probabilities(model, [image for image, _ in loaded])
    return [
        {"image": image, "true": truth, "pred": prob > threshold, "caption": f"{entry['image']}  IoU {entry['iou']:.3f}"}
        for entry, (image, truth), prob in zip(entries, loaded, probabilities)
    ]


def evaluation_figures(model, pairs, metrics, history, out_dir, count=4, gallery_size=12):
    """Save history.png, overlays.png (first `gallery_size` test images), resultbirds-up.png (best
    `count` by IoU), resultbirds-bottom.png (worst `count`) and threshold_sweep.png into `out_dir`;
    return the figures by name for inline display."""
    figures = {}
    if history:
        figures["history.png"] = plots.plot_history(history)
    per_image, threshold = metrics["per_image"], metrics["threshold"]
    ranked = sorted(per_image, key=lambda entry: entry["iou"], reverse=True)
    figures["overlays.png"] = plots.overlay_gallery(
        figure_rows(model, pairs, per_image[:gallery_size], threshold), columns=min(3, len(per_image)),
        title=f"Test images with per-image IoU (dataset IoU {metrics['iou']:.3f})",
    )
    figures["resultbirds-up.png"] = plots.prediction_grid(
        figure_rows(model, pairs, ranked[:count], threshold), title="Best-scoring test images"
    )
    figures["resultbirds-bottom.png"] = plots.prediction_grid(
        figure_rows(model, pairs, ranked[::-1][:count], threshold), title="Worst-scoring test images"
    )
    figures["threshold_sweep.png"] = sweep_figure(metrics)
    for name, fig in figures.items():
        save_figure(fig, Path(out_dir) / name, close=False)
    return figures


def publish_figures(run_dir, examples_dir):
    """Copy a run's figures into `examples_dir`: the evaluation figures and the last epoch's
    `results_epoch_N.png` (a long run has one per epoch; the run folder keeps them all). Temporary
    files of an interrupted write (dot-files) are never published."""
    if not examples_dir:
        return []
    examples_dir = Path(examples_dir)
    examples_dir.mkdir(parents=True, exist_ok=True)
    for stale in examples_dir.glob("results_epoch_*.png"):
        stale.unlink()
    figures = [path for path in Path(run_dir).glob("*.png") if not path.name.startswith(".")]
    epochs = [path for path in figures if path.name.startswith("results_epoch_")]
    if epochs:
        last = max(epochs, key=lambda path: int(path.stem.rsplit("_", 1)[1]))
        figures = [path for path in figures if path not in epochs] + [last]
    copied = []
    for source in sorted(figures):
        with atomic_path(examples_dir / source.name) as tmp:
            shutil.copyfile(source, tmp)
        copied.append(examples_dir / source.name)
    return copied


# ---------------------------------------------------------------- predicting a folder


def image_files(path):
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if is_image_file(p))
    raise FileNotFoundError(f"{path}: no such file or folder")


def output_names(paths):
    """A distinct output name per input: its stem, or `<stem>_<ext>` where stems collide (a.jpg and a.png)."""
    stems = Counter(path.stem for path in paths)
    names = [path.stem if stems[path.stem] == 1 else f"{path.stem}_{path.suffix.lstrip('.').lower()}" for path in paths]
    if len(set(names)) != len(names):
        repeated = sorted(str(path) for path, name in zip(paths, names) if names.count(name) > 1)
        raise ValueError(f"these inputs would write the same output files: {', '.join(repeated)}")
    return dict(zip(paths, names))


def predict_files(model, inputs, out_dir, threshold=THRESHOLD, batch_size=4, progress=True):
    """Write `<name>_mask.png` ({0, 255}) and `<name>_overlay.jpg` for every readable image; the name is the
    image's stem, or `<stem>_<ext>` when two inputs share a stem, so no result overwrites another.

    Unreadable files are skipped with one line each. Returns (written_names, skipped_messages).
    """
    names = output_names(list(inputs))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    bar = tqdm(total=len(inputs), desc="predict", unit="img", disable=not progress)
    for chunk in batched(list(inputs), batch_size):
        loaded = []
        for path in chunk:
            try:
                loaded.append((path, read_image(path)))
            except DatasetError as error:
                skipped.append(str(error))
                print(f"skipped {error}")
        if loaded:
            probabilities = predict_probabilities(model, [image for _, image in loaded])
            for (path, image), prob in zip(loaded, probabilities):
                mask = (prob > threshold).astype(np.uint8)
                with atomic_path(out_dir / f"{names[path]}_mask.png") as tmp:
                    Image.fromarray(mask * 255).save(tmp, format="PNG")
                with atomic_path(out_dir / f"{names[path]}_overlay.jpg") as tmp:
                    Image.fromarray(plots.overlay(image, mask)).save(tmp, format="JPEG", quality=90)
                written.append(names[path])
        bar.update(len(chunk))
    bar.close()
    return written, skipped


def model_names(paths):
    """A distinct folder name per model path, from as few trailing path parts as tell them apart:
    runs/a and runs/b -> a, b; runs/a/model.keras and runs/b/model.keras -> a_model, b_model."""
    parts = [Path(path).with_suffix("").parts if Path(path).suffix == ".keras" else Path(path).parts for path in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["_".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    raise ValueError(f"the same model is given more than once: {', '.join(map(str, paths))}")


def comparison_table(rows):
    """A plain-text table comparing several evaluated models: rows of (name, metrics)."""
    header = f"{'model':<48} {'images':>6} {'IoU':>7} {'F1':>7} {'prec.':>7} {'recall':>7} {'best t':>6}"
    lines = [header, "-" * len(header)]
    for name, metrics in rows:
        threshold, _ = best_threshold(metrics)
        lines.append(
            f"{name[-48:]:<48} {metrics['images']:>6} {metrics['iou']:>7.4f} {metrics['f1']:>7.4f} "
            f"{metrics['precision']:>7.4f} {metrics['recall']:>7.4f} {threshold:>6.2f}"
        )
    return "\n".join(lines)
