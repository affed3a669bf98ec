"""Evaluation figures and publishing them into examples/."""
import numpy as np
import pytest
from test_evaluate import PerfectModel

from birdseg.evaluate import evaluate_pairs
from birdseg.figures import FigureSamples, evaluation_figures, publish_figures
from birdseg.pairs import find_pairs


def test_publish_figures_last_epoch_only_and_never_temporaries(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("history.png", "results_epoch_2.png", "results_epoch_10.png", ".tmp-1-history.png", "metrics.json"):
        (run / name).write_bytes(b"png")
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "results_epoch_7.png").write_bytes(b"old")
    copied = publish_figures(run, tmp_path / "examples")
    assert sorted(p.name for p in copied) == ["history.png", "metrics.json", "results_epoch_10.png"]
    assert sorted(p.name for p in (tmp_path / "examples").iterdir()) == ["history.png", "metrics.json",
                                                                          "results_epoch_10.png"]


def test_evaluation_figures_show_what_the_evaluation_predicted_without_predicting_again(tiny_dataset, tmp_path):
    pairs = find_pairs(tiny_dataset / "test")
    model = CountingModel(pairs)
    samples = FigureSamples(gallery_size=2, count=1)
    metrics = evaluate_pairs(model, pairs, progress=False, tta="flips", on_image=samples.add)
    assert model.calls == len(pairs) * 3  # each image and its two mirror images, once
    figures = evaluation_figures(metrics, samples, out_dir=tmp_path)
    assert model.calls == len(pairs) * 3
    assert {"overlays.png", "resultbirds-up.png", "resultbirds-bottom.png", "threshold_sweep.png"} == set(figures)
    assert all((tmp_path / name).is_file() for name in figures)
    assert figures["overlays.png"].get_suptitle() == (f"The first 2 of {len(pairs)} test images with per-image IoU "
                                                      f"(dataset IoU of all: {metrics['iou']:.3f})")
    for row, entry in zip(samples.rows(samples.gallery), metrics["per_image"][:2], strict=True):
        assert row["caption"] == f"{entry['image']}  " + (f"IoU {entry['iou']:.3f}" if entry["true_fraction"] else
                                                          "no bird, none predicted")
    with pytest.raises(ValueError, match="saw 0 images"):
        evaluation_figures(metrics, FigureSamples(), out_dir=tmp_path)


def test_figure_samples_keep_the_first_best_and_worst_of_a_stream_and_no_more():
    ious = np.random.default_rng(0).choice([0.0, 0.25, 0.5, 0.75, 1.0], size=40)  # many ties
    samples = FigureSamples(gallery_size=3, count=4)
    mask = np.zeros((4, 6), bool)
    for index, iou in enumerate(ious):
        samples.add({"image": f"{index}.png", "iou": float(iou)}, np.full((4, 6, 3), index, np.uint8), mask, mask)
        assert len(samples.kept) <= 3 + 2 * 4
    order = list(range(len(ious)))
    assert samples.gallery == [0, 1, 2]
    assert samples.best == sorted(order, key=lambda i: (-ious[i], i))[:4]
    assert samples.worst == sorted(order, key=lambda i: (ious[i], i))[:4]
    assert [int(row["image"][0, 0, 0]) for row in samples.rows(samples.worst)] == samples.worst


def test_figure_samples_scale_large_photos_down_and_caption_them_at_full_resolution():
    truth = np.zeros((3000, 4000), bool)
    truth[1000:1003, 1000:1003] = True  # 9 pixels: gone at a quarter of the size, still in the caption's score
    pred = truth.copy()
    pred[1000, 1000] = False
    samples = FigureSamples(gallery_size=1, count=0, max_side=1000)
    samples.add({"image": "big.jpg", "iou": 8 / 9}, np.zeros((3000, 4000, 3), np.uint8), truth, pred)
    (row,) = samples.rows(samples.gallery)
    assert row["image"].shape == (750, 1000, 3) and row["true"].shape == row["pred"].shape == (750, 1000)
    assert row["true"].dtype == bool and row["caption"] == "big.jpg  IoU 0.889"


class CountingModel(PerfectModel):
    """PerfectModel that counts the images it is asked to predict."""

    calls = 0

    def predict_on_batch(self, batch):
        self.calls += len(batch)
        return super().predict_on_batch(batch)
