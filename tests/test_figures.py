"""Evaluation figures and publishing them into examples/."""
from test_evaluate import PerfectModel

from birdseg.data import find_pairs
from birdseg.evaluate import evaluate_pairs
from birdseg.figures import evaluation_figures, publish_figures


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


def test_evaluation_figures_predict_each_test_image_once(tiny_dataset, tmp_path):
    pairs = find_pairs(tiny_dataset / "test")
    model = CountingModel(pairs)
    metrics = evaluate_pairs(model, pairs, progress=False, tta="none")
    model.calls = 0
    figures = evaluation_figures(model, pairs, metrics, history=None, out_dir=tmp_path, count=2)
    # 3 images in the gallery, the best 2 and the worst 2: still 3 images to predict, and 3 views each with flips
    assert model.calls == len(pairs)
    evaluation_figures(model, pairs, {**metrics, "tta": "flips"}, history=None, out_dir=tmp_path, count=2)
    assert model.calls == len(pairs) * (1 + 3)
    assert {"overlays.png", "resultbirds-up.png", "resultbirds-bottom.png", "threshold_sweep.png"} <= set(figures)
    assert all((tmp_path / name).is_file() for name in figures)


class CountingModel(PerfectModel):
    """PerfectModel that counts the images it is asked to predict."""

    calls = 0

    def predict_on_batch(self, batch):
        self.calls += len(batch)
        return super().predict_on_batch(batch)
