"""Evaluation, figures and prediction, on the model trained by the tiny notebook run."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from birdseg import evaluate
from birdseg.cli import main
from birdseg.data import find_pairs, read_image
from birdseg.model import confusion_counts, scores_from_counts


class PerfectModel:
    """Stands in for a Keras model: predicts the true mask of the image it is given (looked up by content)."""

    input_shape = (None, 64, 96, 3)

    def __init__(self, pairs, invert=False):
        from birdseg.data import read_pair

        self.truth = {}
        for image_path, mask_path in pairs:
            image, mask = read_pair(image_path, mask_path)
            resized = evaluate.prepare_batch(self, [image])[0]
            self.truth[resized.tobytes()] = mask
        self.invert = invert

    def predict_on_batch(self, batch):
        import cv2

        out = []
        for image in batch:
            mask = self.truth[image.tobytes()].astype(np.float32)
            mask = cv2.resize(mask, (96, 64), interpolation=cv2.INTER_NEAREST)
            out.append((1 - mask if self.invert else mask)[..., None])
        return np.stack(out)


def test_metrics_of_perfect_and_inverted_predictions(tiny_dataset):
    pairs = find_pairs(tiny_dataset / "test")
    perfect = evaluate.evaluate_pairs(PerfectModel(pairs), pairs, progress=False)
    # resized down to 64x96 and back: near-perfect, not exactly 1 at full resolution
    assert perfect["iou"] > 0.5 and perfect["recall"] > 0.5
    inverted = evaluate.evaluate_pairs(PerfectModel(pairs, invert=True), pairs, progress=False)
    assert inverted["iou"] < 0.05 and inverted["precision"] < 0.05
    assert len(perfect["per_image"]) == len(pairs) and perfect["images"] == len(pairs)


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
    assert json.loads((run_dir / "config.json").read_text())["parameters"]["IMAGE_WIDTH"] == 96


def test_metrics_match_a_fresh_evaluation(run_dir, trained_model, tiny_dataset):
    saved = json.loads((run_dir / "metrics.json").read_text())
    again = evaluate.evaluate_pairs(trained_model, find_pairs(tiny_dataset / "test"), progress=False)
    assert again["iou"] == pytest.approx(saved["iou"], abs=1e-6)


def test_predict_image_any_size(trained_model, tiny_dataset):
    for image_path, _ in find_pairs(tiny_dataset / "test"):
        image = read_image(image_path)
        mask = evaluate.predict_image(trained_model, image)
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    big = np.zeros((1000, 1500, 3), np.uint8)
    assert evaluate.predict_image(trained_model, big).shape == (1000, 1500)


def test_predict_cli_writes_masks_and_skips_unreadable(run_dir, tiny_dataset, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for image_path, _ in find_pairs(tiny_dataset / "test"):
        (photos / image_path.name).write_bytes(image_path.read_bytes())
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (photos / "notes.txt").write_text("not an image")
    out = tmp_path / "masks"
    assert main(["predict", "--model", str(run_dir), "--input", str(photos), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "skipped" in printed and "broken.jpg: cannot read image" in printed
    assert "3 masks written" in printed and "1 unreadable file(s) skipped" in printed
    for image_path, _ in find_pairs(tiny_dataset / "test"):
        mask = np.asarray(Image.open(out / f"{image_path.stem}_mask.png"))
        assert mask.shape == read_image(image_path).shape[:2] and set(np.unique(mask)) <= {0, 255}
        assert (out / f"{image_path.stem}_overlay.jpg").stat().st_size > 0


def test_predict_same_stem_two_formats_writes_both(run_dir, tiny_dataset, tmp_path):
    image_path = find_pairs(tiny_dataset / "test")[0][0]
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(image_path).save(photos / "a.jpg")
    Image.open(image_path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photos / "a.png")
    out = tmp_path / "masks"
    assert main(["predict", "--model", str(run_dir), "--input", str(photos), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_jpg_mask.png", "a_jpg_overlay.jpg", "a_png_mask.png",
                                                     "a_png_overlay.jpg"]


def test_model_names_are_distinct():
    assert evaluate.model_names(["runs/a", "runs/b"]) == ["a", "b"]
    assert evaluate.model_names(["runs/a/model.keras", "runs/b/model.keras"]) == ["a_model", "b_model"]
    with pytest.raises(ValueError, match="the same model is given more than once"):
        evaluate.model_names(["runs/a", "runs/a"])


def test_predict_cli_bad_paths(run_dir, tmp_path, capsys):
    assert main(["predict", "--model", str(tmp_path), "--input", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no saved model here" in capsys.readouterr().err
    assert main(["predict", "--model", str(run_dir), "--input", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err


def test_evaluate_cli_single_and_comparison(run_dir, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(run_dir), "--data", str(tiny_dataset), "--out", str(out), "--quiet"]) == 0
    for name in ("metrics.json", "per_image.csv", "threshold_sweep.png", "worst.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert json.loads((out / "metrics.json").read_text())["iou"] == pytest.approx(saved["iou"], abs=1e-6)
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


def test_publish_figures_last_epoch_only_and_never_temporaries(tmp_path):
    from birdseg.evaluate import publish_figures

    run = tmp_path / "run"
    run.mkdir()
    for name in ("history.png", "results_epoch_2.png", "results_epoch_10.png", ".tmp-1-history.png"):
        (run / name).write_bytes(b"png")
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "results_epoch_7.png").write_bytes(b"old")
    copied = publish_figures(run, tmp_path / "examples")
    assert sorted(p.name for p in copied) == ["history.png", "results_epoch_10.png"]
    assert sorted(p.name for p in (tmp_path / "examples").iterdir()) == ["history.png", "results_epoch_10.png"]
