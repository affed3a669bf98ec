"""Evaluation figures: overlays with per-image IoU, best and worst grids, the threshold sweep, and copying a
run's figures into `examples/`."""
import shutil
from pathlib import Path

import cv2
import numpy as np

from birdseg import display, plots
from birdseg.cluster import is_chief
from birdseg.files import atomic_path, save_figure
from birdseg.images import read_image
from birdseg.layout import EPOCH_FIGURE_PREFIX, RECORDS
from birdseg.metrics import best_threshold, score_caption
from birdseg.video import is_video_file, sample_frames


class FigureSamples:
    """The images the evaluation figures show, kept while `evaluate.evaluate_pairs` scores a split (pass `add` as its
    `on_image`), so the figures predict nothing again: the first `gallery_size` images and the `count` best and
    `count` worst by IoU (ties: the earlier image). Memory stays bounded: at most gallery_size + 2 * count images
    are held at once, each scaled down to at most `max_side` pixels a side (more than a figure's panel shows); the
    captions are scored at full resolution."""

    def __init__(self, gallery_size=12, count=4, max_side=1024):
        self.gallery_size, self.count, self.max_side = gallery_size, count, max_side
        self.seen = 0
        self.gallery, self.best, self.worst = [], [], []  # indices into the stream, in the figures' order
        self.kept = {}  # index -> (IoU, row)

    def add(self, entry, image, truth, pred):
        index, self.seen = self.seen, self.seen + 1
        scores = {i: iou for i, (iou, _) in self.kept.items()} | {index: entry["iou"]}
        if index < self.gallery_size:
            self.gallery.append(index)
        # the best `count` of a stream are among the best `count` so far and the newcomer: nothing dropped returns
        self.best = sorted(self.best + [index], key=lambda i: (-scores[i], i))[: self.count]
        self.worst = sorted(self.worst + [index], key=lambda i: (scores[i], i))[: self.count]
        keep = {*self.gallery, *self.best, *self.worst}
        if index in keep:
            self.kept[index] = (entry["iou"], self._row(entry["image"], image, truth, pred))
        self.kept = {i: value for i, value in self.kept.items() if i in keep}

    def _row(self, name, image, truth, pred):
        caption = f"{name}  {score_caption(truth, pred)}"
        scale = self.max_side / max(image.shape[:2])
        if scale < 1:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            truth, pred = (cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
                           for mask in (truth, pred))
        return {"image": image, "true": truth, "pred": pred, "caption": caption}

    def rows(self, indices):
        return [self.kept[i][1] for i in indices]


def sweep_figure(metrics, split="test"):
    """IoU and F1 against the threshold on `split`, with the threshold in use and the best-IoU one marked."""
    sweep = metrics["sweep"]
    title = (f"Threshold sweep on the {split} set ({metrics['images']} images): a diagnostic, chosen on this set, "
             "not a score")
    return plots.plot_threshold_sweep(sweep["thresholds"], sweep["iou"], sweep["f1"], best_threshold(metrics)[0],
                                      metrics["threshold"], title=title)


def evaluation_figures(metrics, samples, out_dir):
    """Save overlays.png (the first test images), resultbirds-up.png (the best by IoU), resultbirds-bottom.png
    (the worst) and threshold_sweep.png into `out_dir`; return the figures by name for inline display. `samples`
    is the `FigureSamples` that saw the evaluation which made `metrics`."""
    if samples.seen != metrics["images"]:
        raise ValueError(f"the figure samples saw {samples.seen} images, the metrics {metrics['images']}: pass "
                         "samples.add as on_image to the evaluate_pairs call that made these metrics")
    figures = {}
    shown, images = len(samples.gallery), metrics["images"]
    title = f"Test images with per-image IoU (dataset IoU {metrics['iou']:.3f})"
    if shown < images:
        title = (f"The first {shown} of {images} test images with per-image IoU "
                 f"(dataset IoU of all: {metrics['iou']:.3f})")
    figures["overlays.png"] = plots.overlay_gallery(samples.rows(samples.gallery), columns=min(3, shown), title=title)
    figures["resultbirds-up.png"] = plots.prediction_grid(samples.rows(samples.best), title="Best-scoring test images")
    figures["resultbirds-bottom.png"] = plots.prediction_grid(samples.rows(samples.worst),
                                                              title="Worst-scoring test images")
    figures["threshold_sweep.png"] = sweep_figure(metrics)
    for name, fig in figures.items():
        save_figure(fig, Path(out_dir) / name, close=False)
    return figures


def publish_figures(run_dir, examples_dir):
    """Copy a run's figures into `examples_dir`: the evaluation figures and the last epoch's
    `results_epoch_N.png` (a long run has one per epoch; the run folder keeps them all), with the run's
    RECORDS, so the README's numbers can be checked against them. Temporary files of an interrupted write
    (dot-files) are never published. In a cluster only the chief publishes."""
    if not examples_dir or not is_chief():
        return []
    examples_dir = Path(examples_dir)
    examples_dir.mkdir(parents=True, exist_ok=True)
    for stale in examples_dir.glob(f"{EPOCH_FIGURE_PREFIX}*.png"):
        stale.unlink()
    figures = [path for path in Path(run_dir).glob("*.png") if not path.name.startswith(".")]
    figures += [Path(run_dir) / name for name in RECORDS if (Path(run_dir) / name).is_file()]
    epochs = [path for path in figures if path.name.startswith(EPOCH_FIGURE_PREFIX)]
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
