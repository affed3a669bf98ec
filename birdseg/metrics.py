"""Scores of predicted masks against true ones: pixel counts, IoU, F1, precision and recall, and how far a pooled
IoU could move on another test set. numpy only: scoring needs no TensorFlow (the Keras metric that accumulates the
same counts during training is `model.ThresholdScore`)."""
import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000
DRAWS_AT_ONCE = 2_000_000  # resampled image counts held in memory at a time: a split of any size fits


def confusion_counts(true_mask, pred_mask):
    """(tp, fp, fn, tn) pixel counts of two binary masks of the same shape."""
    truth, pred = np.asarray(true_mask).astype(bool), np.asarray(pred_mask).astype(bool)
    tp = int(np.count_nonzero(truth & pred))
    fp = int(np.count_nonzero(~truth & pred))
    fn = int(np.count_nonzero(truth & ~pred))
    return tp, fp, fn, truth.size - tp - fp - fn


def scores_from_counts(tp, fp, fn):
    """IoU, F1, precision, recall from counts; a score with nothing to find and nothing found is 1."""

    def ratio(numerator, denominator):
        return float(numerator / denominator) if denominator else 1.0

    return {
        "iou": ratio(tp, tp + fp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }


def score_caption(true_mask, pred_mask):
    """One image's score for a figure: its IoU, or, where the true mask is empty, what was predicted there ("no
    bird, none predicted" / "no bird, N pixels predicted"): an IoU of 1 or 0 would say nothing about such an image."""
    tp, fp, fn, _ = confusion_counts(true_mask, pred_mask)
    if tp + fn == 0:
        return "no bird, none predicted" if fp == 0 else f"no bird, {fp} pixels predicted"
    return f"IoU {scores_from_counts(tp, fp, fn)['iou']:.3f}"


def pooled_iou_interval(counts, confidence=CONFIDENCE, resamples=RESAMPLES, seed=0):
    """How far the dataset-level IoU could move on another test set of the same size and kind: the central
    `confidence` share of the pooled IoUs of `resamples` test sets drawn from these images with replacement (a
    percentile bootstrap over images, seeded, so the same counts give the same interval).

    Args:
        counts: (tp, fp, fn) pixel counts per image.

    Returns:
        [low, high], or None for fewer than two images.
    """
    counts = np.asarray(counts, dtype=np.float64).reshape(-1, 3)
    if len(counts) < 2:
        return None
    rng = np.random.default_rng(seed)
    pooled = []
    for chunk in np.array_split(np.arange(resamples), max(1, resamples * len(counts) // DRAWS_AT_ONCE)):
        draws = rng.multinomial(len(counts), np.full(len(counts), 1 / len(counts)), size=len(chunk))
        pooled.append(draws @ counts)  # each resampled test set's summed tp, fp, fn
    iou = [scores_from_counts(*sums)["iou"] for sums in np.concatenate(pooled)]
    low, high = np.percentile(iou, [50 * (1 - confidence), 50 * (1 + confidence)])
    return [float(low), float(high)]


def best_threshold(metrics):
    """(threshold, IoU) of the best IoU in the threshold sweep of `evaluate_pairs`' metrics."""
    sweep = metrics["sweep"]
    index = int(np.argmax(sweep["iou"]))
    return sweep["thresholds"][index], sweep["iou"][index]
