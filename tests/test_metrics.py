"""Scores from masks and counts (numpy only), and their range over resampled test sets."""
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from birdseg import metrics


def test_scoring_imports_no_tensorflow():
    """Scoring masks needs numpy only: a process that imports the metrics has no TensorFlow or Keras loaded."""
    code = ("import sys; import birdseg.metrics; "
            "print(sorted(name for name in ('tensorflow', 'keras', 'segmentation_models') if name in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_captions_say_what_an_empty_truth_got():
    truth = np.zeros((4, 4), bool)
    assert metrics.score_caption(truth, truth) == "no bird, none predicted"
    predicted = truth.copy()
    predicted[0, :3] = True
    assert metrics.score_caption(truth, predicted) == "no bird, 3 pixels predicted"
    truth[0, :2] = True
    assert metrics.score_caption(truth, predicted) == "IoU 0.667"
    truth[1, :2] = True  # as many bird pixels missed as found
    assert metrics.score_caption(truth, predicted) == "IoU 0.400"


def test_best_threshold_is_that_of_the_best_iou_of_the_sweep():
    sweep = {"thresholds": [0.3, 0.4, 0.5, 0.6], "iou": [0.2, 0.5, 0.7, 0.6]}
    assert metrics.best_threshold({"sweep": sweep}) == (0.5, 0.7)


def test_iou_interval_is_scipys_percentile_bootstrap():
    """The pooled IoU's interval is scipy's percentile bootstrap over images (tp, fp and fn of an image drawn
    together) for the same counts; ours is seeded, so it is the same run after run."""
    stats = pytest.importorskip("scipy.stats")  # comes with albumentations
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 1000, (30, 3)) * rng.integers(1, 20, (30, 1))  # a few images weigh much more

    def pooled_iou(tp, fp, fn, axis):
        return tp.sum(axis) / (tp + fp + fn).sum(axis)

    theirs = stats.bootstrap(tuple(counts.T), pooled_iou, paired=True, vectorized=True, method="percentile",
                             n_resamples=20_000).confidence_interval
    ours = metrics.pooled_iou_interval(counts, resamples=20_000)
    assert ours == pytest.approx([theirs.low, theirs.high], abs=0.005)  # 90 % would be 0.01 off
    assert ours == metrics.pooled_iou_interval(counts, resamples=20_000) == metrics.pooled_iou_interval(
        counts, resamples=20_000, seed=0)  # seeded with 0 unless told
    assert ours[0] < pooled_iou(*counts.T, axis=0) < ours[1]


def test_iou_interval_without_spread():
    assert metrics.pooled_iou_interval([(5, 1, 1)]) is None  # one image: no other test set to draw
    assert metrics.pooled_iou_interval([(5, 1, 4)] * 4) == pytest.approx([0.5, 0.5])
    assert metrics.pooled_iou_interval([(0, 0, 0), (0, 0, 0)]) == [1.0, 1.0]  # nothing to find, nothing found


def test_scores_match_confusion_counts():
    truth = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 0, 1, 0]])
    assert metrics.confusion_counts(truth, pred) == (1, 1, 1, 1)
    assert metrics.scores_from_counts(1, 1, 1) == pytest.approx({"iou": 1 / 3, "f1": 0.5, "precision": 0.5, "recall": 0.5})
