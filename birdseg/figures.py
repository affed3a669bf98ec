"""Evaluation figures: overlays with per-image IoU, best and worst grids, the threshold sweep, and copying a
run's figures into `examples/`."""
import shutil
from pathlib import Path

from birdseg import display, plots
from birdseg.data import read_image
from birdseg.defaults import THRESHOLD, TTA
from birdseg.devices import is_chief
from birdseg.model import score_caption
from birdseg.evaluate import best_threshold
from birdseg.files import atomic_path, save_figure
from birdseg.predict import predict_pairs
from birdseg.video import is_video_file, sample_frames


def figure_rows(model, pairs, entries, threshold=THRESHOLD, tta=TTA):
    """Grid rows (image, true, pred, caption with per-image IoU) for `entries` of metrics["per_image"]; an image
    named by several entries is predicted once."""
    by_name = {Path(image_path).name: (image_path, mask_path) for image_path, mask_path in pairs}
    names = list(dict.fromkeys(entry["image"] for entry in entries))
    predicted = {Path(pair[0]).name: (image, truth, prob > threshold)
                 for pair, image, truth, prob in predict_pairs(model, [by_name[name] for name in names], tta=tta)}
    return [dict(zip(("image", "true", "pred"), predicted[entry["image"]]),
                 caption=f"{entry['image']}  {score_caption(*predicted[entry['image']][1:])}") for entry in entries]


def sweep_figure(metrics, split="test"):
    """IoU and F1 against the threshold on `split`, with the threshold in use and the best-IoU one marked."""
    sweep = metrics["sweep"]
    title = (f"Threshold sweep on the {split} set ({metrics['images']} images): a diagnostic, chosen on this set, "
             "not a score")
    return plots.plot_threshold_sweep(sweep["thresholds"], sweep["iou"], sweep["f1"], best_threshold(metrics)[0],
                                      metrics["threshold"], title=title)


def evaluation_figures(model, pairs, metrics, history, out_dir, count=4, gallery_size=12, ended=None):
    """Save history.png, overlays.png (first `gallery_size` test images), resultbirds-up.png (best
    `count` by IoU), resultbirds-bottom.png (worst `count`) and threshold_sweep.png into `out_dir`;
    return the figures by name for inline display. Masks are predicted as the metrics were (their threshold and
    test-time augmentation)."""
    figures = {}
    if history:
        figures["history.png"] = plots.plot_history(history, ended=ended)
    per_image, threshold, tta = metrics["per_image"], metrics["threshold"], metrics.get("tta", "none")
    ranked = sorted(per_image, key=lambda entry: entry["iou"], reverse=True)
    gallery, best, worst = per_image[:gallery_size], ranked[:count], ranked[::-1][:count]
    rows = figure_rows(model, pairs, gallery + best + worst, threshold, tta)  # each image predicted once
    figures["overlays.png"] = plots.overlay_gallery(
        rows[: len(gallery)], columns=min(3, len(per_image)),
        title=f"Test images with per-image IoU (dataset IoU {metrics['iou']:.3f})",
    )
    best_end = len(gallery) + len(best)
    figures["resultbirds-up.png"] = plots.prediction_grid(rows[len(gallery) : best_end], title="Best-scoring test images")
    figures["resultbirds-bottom.png"] = plots.prediction_grid(rows[best_end:], title="Worst-scoring test images")
    figures["threshold_sweep.png"] = sweep_figure(metrics)
    for name, fig in figures.items():
        save_figure(fig, Path(out_dir) / name, close=False)
    return figures


RECORDS = ("config.json", "metrics.json", "history.csv")  # published with the figures: the numbers they show


def publish_figures(run_dir, examples_dir):
    """Copy a run's figures into `examples_dir`: the evaluation figures and the last epoch's
    `results_epoch_N.png` (a long run has one per epoch; the run folder keeps them all), with the run's
    RECORDS, so the README's numbers can be checked against them. Temporary files of an interrupted write
    (dot-files) are never published. In a cluster only the chief publishes."""
    if not examples_dir or not is_chief():
        return []
    examples_dir = Path(examples_dir)
    examples_dir.mkdir(parents=True, exist_ok=True)
    for stale in examples_dir.glob("results_epoch_*.png"):
        stale.unlink()
    figures = [path for path in Path(run_dir).glob("*.png") if not path.name.startswith(".")]
    figures += [Path(run_dir) / name for name in RECORDS if (Path(run_dir) / name).is_file()]
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


def show_overlays(predictions, columns=3, limit=24, video_frames=3):
    """Show the overlays `predict.predict_files` wrote, captioned with the photo's name and share of bird pixels, in a
    gallery of at most `limit` (the rest are named in a line); a video shows `video_frames` frames spread over it.
    Returns the figure, or None for no predictions."""
    if not predictions:
        return None
    images, captions = [], []
    for item in predictions:
        if is_video_file(item.overlay):
            for index, frame in sample_frames(item.overlay, video_frames):
                images.append(frame)
                captions.append(f"{item.photo.name}, frame {index}: {item.bird_share:.1%} bird over the clip")
        else:
            images.append(read_image(item.overlay))
            captions.append(f"{item.photo.name}: {item.bird_share:.1%} bird")
    shown = images[:limit]
    figure = plots.image_gallery(shown, captions[:limit], columns=min(columns, len(shown)),
                                 title="Your photos, predicted bird pixels in red")
    display.show_figure(figure)
    if len(images) > limit:
        display.notice(f"... and {len(images) - limit} more overlays in {predictions[0].overlay.parent}")
    return figure
