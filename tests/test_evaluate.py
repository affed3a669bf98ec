"""Evaluation: metrics of a model on a dataset, the run folder it leaves, and the evaluate command."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from birdseg import evaluate
from birdseg.cli import main
from birdseg.data import find_pairs
from birdseg.defaults import TTA_VIEWS
from birdseg.model import confusion_counts, scores_from_counts
from birdseg.predict import prepare_batch


class PerfectModel:
    """Stands in for a Keras model: predicts the true mask of the image it is given (looked up by content; mirror
    images, as test-time augmentation makes them, get the mirrored mask)."""

    input_shape = (None, 64, 96, 3)

    def __init__(self, pairs, invert=False):
        import cv2

        from birdseg.data import read_pair

        self.truth = {}
        for image_path, mask_path in pairs:
            image, mask = read_pair(image_path, mask_path)
            resized = prepare_batch(self, [image])[0]
            small = cv2.resize(mask.astype(np.float32), (96, 64), interpolation=cv2.INTER_NEAREST)
            for axes in TTA_VIEWS["flips"]:
                view = [axis - 1 for axis in axes]  # axes of the batch, here of one image
                self.truth[np.flip(resized, view).tobytes()] = np.flip(small, view)
        self.invert = invert

    def predict_on_batch(self, batch):
        out = [self.truth[np.ascontiguousarray(image).tobytes()] for image in batch]
        return np.stack([(1 - mask if self.invert else mask)[..., None] for mask in out])


def test_metrics_of_perfect_and_inverted_predictions(tiny_dataset):
    pairs = find_pairs(tiny_dataset / "test")
    perfect = evaluate.evaluate_pairs(PerfectModel(pairs), pairs, progress=False)
    # resized down to 64x96 and back: near-perfect, not exactly 1 at full resolution
    assert perfect["iou"] > 0.5 and perfect["recall"] > 0.5
    inverted = evaluate.evaluate_pairs(PerfectModel(pairs, invert=True), pairs, progress=False)
    assert inverted["iou"] < 0.05 and inverted["precision"] < 0.05
    assert len(perfect["per_image"]) == len(pairs) and perfect["images"] == len(pairs)
    once = evaluate.evaluate_pairs(PerfectModel(pairs), pairs, progress=False, tta="none")
    assert perfect["tta"] == "flips" and once["tta"] == "none" and once["iou"] == pytest.approx(perfect["iou"])


def test_dataset_level_pools_pixels(tiny_dataset):
    pairs = find_pairs(tiny_dataset / "test")
    metrics = evaluate.evaluate_pairs(PerfectModel(pairs), pairs, progress=False)
    assert min(p["iou"] for p in metrics["per_image"]) <= metrics["mean_image_iou"] <= max(p["iou"] for p in metrics["per_image"])
    sweep = metrics["sweep"]
    assert len(sweep["thresholds"]) == len(sweep["iou"]) == len(sweep["f1"]) >= 19
    assert sweep["iou"][sweep["thresholds"].index(0.5)] == pytest.approx(metrics["iou"])


def test_run_folder_contents(run_dir):
    for name in ("model.keras", "metrics.json", "per_image.csv", "history.csv", "config.json", "history.png",
                 "overlays.png", "resultbirds-up.png", "resultbirds-bottom.png", "results_epoch_1.png",
                 "threshold_sweep.png", "checkpoint/state.json"):
        path = run_dir / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert Image.open(path).size[0] >= 300
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("iou", "f1", "precision", "recall"):
        assert 0.0 <= metrics[key] <= 1.0
    assert len(metrics["per_image"]) == 3
    with open(run_dir / "per_image.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 3
    parameters = json.loads((run_dir / "config.json").read_text())["parameters"]
    assert parameters["IMAGE_WIDTH"] == 96 and parameters["TTA"] == metrics["tta"] == "flips"


def test_metrics_match_a_fresh_evaluation(run_dir, trained_model, tiny_dataset):
    saved = json.loads((run_dir / "metrics.json").read_text())
    again = evaluate.evaluate_pairs(trained_model, find_pairs(tiny_dataset / "test"), progress=False)
    assert again["iou"] == pytest.approx(saved["iou"], abs=1e-6)


def test_model_names_are_distinct():
    assert evaluate.model_names(["runs/a", "runs/b"]) == ["a", "b"]
    assert evaluate.model_names(["runs/a/model.keras", "runs/b/model.keras"]) == ["a_model", "b_model"]
    with pytest.raises(ValueError, match="the same model is given more than once"):
        evaluate.model_names(["runs/a", "runs/a"])


def test_evaluate_cli_single_and_comparison(run_dir, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(run_dir), "--data", str(tiny_dataset), "--out", str(out), "--quiet"]) == 0
    for name in ("metrics.json", "per_image.csv", "threshold_sweep.png", "worst.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert json.loads((out / "metrics.json").read_text())["iou"] == pytest.approx(saved["iou"], abs=1e-6)
    assert main(["evaluate", "--model", str(run_dir), "--data", str(tiny_dataset), "--out", str(tmp_path / "once"),
                 "--quiet", "--tta", "none"]) == 0
    assert json.loads((tmp_path / "once" / "metrics.json").read_text())["tta"] == "none"
    copy = tmp_path / "other.keras"
    copy.write_bytes((run_dir / "model.keras").read_bytes())
    assert main(["evaluate", "--model", str(run_dir / "model.keras"), str(copy), "--data", str(tiny_dataset),
                 "--out", str(tmp_path / "cmp"), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "model.keras" in table and "other.keras" in table and "best t" in table
    assert (tmp_path / "cmp" / "other" / "metrics.json").is_file()
    # Two run folders' model.keras: two result folders, neither overwritten.
    second = tmp_path / "run_b" / "model.keras"
    second.parent.mkdir()
    second.write_bytes((run_dir / "model.keras").read_bytes())
    assert main(["evaluate", "--model", str(run_dir / "model.keras"), str(second), "--data", str(tiny_dataset),
                 "--out", str(tmp_path / "cmp2"), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "cmp2").iterdir()) == sorted([f"{run_dir.name}_model", "run_b_model"])


def test_scores_match_confusion_counts():
    truth = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 0, 1, 0]])
    assert confusion_counts(truth, pred) == (1, 1, 1, 1)
    assert scores_from_counts(1, 1, 1) == pytest.approx({"iou": 1 / 3, "f1": 0.5, "precision": 0.5, "recall": 0.5})
