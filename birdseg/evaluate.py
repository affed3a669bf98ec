"""Evaluation: how well a model segments a dataset, at each photo's own resolution.

Dataset-level scores pool the pixels of all images; per-image scores and a threshold sweep come with them.
"""
import csv
import io
from pathlib import Path

import numpy as np

from birdseg import display
from birdseg.defaults import PREDICT_BATCH_SIZE, THRESHOLD, TILES, TTA
from birdseg.errors import DatasetError
from birdseg.files import write_json, write_text
from birdseg.layout import METRICS_FILE, PER_IMAGE_FILE
from birdseg.metrics import CONFIDENCE, best_threshold, confusion_counts, pooled_iou_interval, scores_from_counts
from birdseg.pairs import find_pairs

SWEEP_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))


def evaluate_pairs(model, pairs, threshold=THRESHOLD, batch_size=PREDICT_BATCH_SIZE, sweep=SWEEP_THRESHOLDS,
                   progress=True, tta=TTA, tiles=TILES, on_image=None):
    """Metrics of `model` on (image_path, mask_path) pairs at original resolution.

    Returns {"threshold", "tta", "images", "iou", "f1", "precision", "recall" (dataset-level: pixels of all
    images pooled), "iou_interval" (`pooled_iou_interval`), "mean_image_iou", "mean_image_f1", "per_image": [...],
    "sweep": {...}}.
    Streams the images: memory does not grow with the size of the split. `on_image(entry, image, true mask,
    predicted mask)`, if given, sees each image as it is scored (`figures.FigureSamples.add` keeps what the figures
    show, so nothing is predicted twice).
    """
    from birdseg.predict import predict_pairs  # TensorFlow loads here, with a model to run: scores need none

    pairs = list(pairs)
    if not pairs:
        raise DatasetError("nothing to evaluate: no image/mask pairs")
    thresholds = sorted(set(sweep) | {threshold})
    sweep_counts = np.zeros((len(thresholds), 3), dtype=np.int64)
    per_image, image_counts = [], []
    bar = display.progress_bar(len(pairs), "evaluate", "img", enabled=progress)
    for (image_path, _), image, truth, prob in predict_pairs(model, pairs, batch_size, tta, tiles):
        for row, t in enumerate(thresholds):
            sweep_counts[row] += confusion_counts(truth, prob > t)[:3]
        predicted = prob > threshold
        tp, fp, fn, _ = confusion_counts(truth, predicted)
        image_counts.append((tp, fp, fn))
        entry = {
            "image": Path(image_path).name,
            **scores_from_counts(tp, fp, fn),
            "true_fraction": float(truth.mean()),
            "pred_fraction": float(predicted.mean()),
        }
        per_image.append(entry)
        if on_image is not None:
            on_image(entry, image, truth, predicted)
        bar.update(1)
    bar.close()
    main = sweep_counts[thresholds.index(threshold)]
    sweep_scores = [scores_from_counts(*counts) for counts in sweep_counts]
    return {
        "threshold": threshold,
        "tta": tta,
        "tiles": tiles,
        "images": len(per_image),
        **scores_from_counts(*main),
        "iou_interval": pooled_iou_interval(image_counts),
        "mean_image_iou": float(np.mean([p["iou"] for p in per_image])),
        "mean_image_f1": float(np.mean([p["f1"] for p in per_image])),
        "per_image": per_image,
        "sweep": {
            "thresholds": [float(t) for t in thresholds],
            "iou": [s["iou"] for s in sweep_scores],
            "f1": [s["f1"] for s in sweep_scores],
        },
    }


def evaluate_split(model, data_dir, split="test", threshold=THRESHOLD, max_images=None,
                   batch_size=PREDICT_BATCH_SIZE, tta=TTA):
    """`evaluate_pairs` on one split of a birds_splitted-style folder (the first `max_images` pairs)."""
    pairs = find_pairs(Path(data_dir) / split)[:max_images]
    return evaluate_pairs(model, pairs, threshold=threshold, batch_size=batch_size, tta=tta)


def save_metrics(out_dir, metrics):
    """Write metrics.json and per_image.csv into `out_dir`."""
    out_dir = Path(out_dir)
    write_json(out_dir / METRICS_FILE, metrics)
    buffer = io.StringIO()
    keys = list(metrics["per_image"][0])
    writer = csv.DictWriter(buffer, keys, lineterminator="\n")
    writer.writeheader()
    for row in metrics["per_image"]:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(out_dir / PER_IMAGE_FILE, buffer.getvalue())


def format_metrics(metrics):
    """One line for people: dataset-level IoU (with its interval), F1, precision, recall, mean per-image IoU, best
    threshold. A metrics.json from before test-time augmentation has no "tta": it was predicted once ("none"); one
    from before intervals has no "iou_interval"."""
    threshold, best_iou = best_threshold(metrics)
    interval = metrics.get("iou_interval")
    spread = (f" ({CONFIDENCE:.0%} of resampled test sets: {interval[0]:.3f}-{interval[1]:.3f})" if interval
              else "")
    return (
        f"{metrics['images']} images at threshold {metrics['threshold']}, test-time augmentation "
        f"{metrics.get('tta', 'none')}: "
        f"IoU {metrics['iou']:.4f}{spread}  F1 {metrics['f1']:.4f}  precision {metrics['precision']:.4f}  "
        f"recall {metrics['recall']:.4f}  (mean per-image IoU {metrics['mean_image_iou']:.4f}; "
        f"best threshold {threshold:.2f} gives IoU {best_iou:.4f})"
    )


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
