"""Evaluation: metrics of a model on a dataset, the run folder it leaves, and the evaluate command."""
import csv
import json

import numpy as np
import pytest
from conftest import write_pair
from PIL import Image

from birdseg import evaluate
from birdseg.cli import main
from birdseg.defaults import TTA_VIEWS
from birdseg.images import read_pair
from birdseg.pairs import find_pairs
from birdseg.predict import prepare_batch


class PerfectModel:
    """Stands in for a Keras model: predicts the true mask of the image it is given (looked up by content; mirror
    images, as test-time augmentation makes them, get the mirrored mask)."""

    input_shape = (None, 64, 96, 3)

    def __init__(self, pairs, invert=False):
        import cv2

        from birdseg.images import read_pair

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


class MapModel:
    """Stands in for a Keras model at 64x96: returns, for each image it is given, the map `maps` holds for it (the
    key: the image's bytes), flipped as the image was (test-time views), then moved `shift` pixels right in the
    frame it was given: a network that is not symmetric under flips."""

    input_shape = (None, 64, 96, 3)

    def __init__(self, maps, shift=0):
        self.maps = {}
        for image, probability in maps:
            batch = prepare_batch(self, [image])[0]
            for axes in TTA_VIEWS["flips"]:
                view = [axis - 1 for axis in axes]
                self.maps[np.flip(batch, view).tobytes()] = np.roll(np.flip(probability, view), shift, axis=1)

    def predict_on_batch(self, batch):
        return np.stack([self.maps[np.ascontiguousarray(image).tobytes()][..., None] for image in batch])


@pytest.fixture
def exact_size_pairs(tmp_path):
    """Two test images at the model's own size (no resizing on the way), with birds of 100 and 10 pixels."""
    masks = [np.zeros((64, 96), np.uint8), np.zeros((64, 96), np.uint8)]
    masks[0][10:20, 10:20] = 255
    masks[1][40:42, 60:65] = 255
    for index, mask in enumerate(masks):
        image = np.random.default_rng(index).integers(0, 256, (64, 96, 3), dtype=np.uint8)
        write_pair(tmp_path, f"img{index}", image, mask, image_ext=".png")
    return find_pairs(tmp_path)


def test_dataset_level_scores_pool_pixels_unlike_the_mean_of_images(exact_size_pairs):
    """Image 0 found exactly (IoU 1), image 1's 10-pixel bird missed (IoU 0): pooled, 100 of 110 bird pixels are
    found and nothing else is predicted, so IoU 100/110, while the mean of the images' IoUs is 0.5."""
    images = [read_pair(*pair) for pair in exact_size_pairs]
    model = MapModel([(images[0][0], images[0][1].astype(np.float32)), (images[1][0], np.zeros((64, 96)))])
    metrics = evaluate.evaluate_pairs(model, exact_size_pairs, progress=False)
    assert [entry["iou"] for entry in metrics["per_image"]] == [1.0, 0.0]
    assert metrics["iou"] == pytest.approx(100 / 110) and metrics["mean_image_iou"] == pytest.approx(0.5)
    assert metrics["f1"] == pytest.approx(200 / 210) and metrics["precision"] == 1.0
    assert metrics["recall"] == pytest.approx(100 / 110)
    # A test set drawn from these two images is image 0 twice (IoU 1) or image 1 twice (IoU 0) a quarter of the time
    assert metrics["iou_interval"] == [0.0, 1.0]
    assert "IoU 0.9091 (95% of resampled test sets: 0.000-1.000)" in evaluate.format_metrics(metrics)
    sweep = metrics["sweep"]
    assert len(sweep["thresholds"]) == len(sweep["iou"]) == len(sweep["f1"]) >= 19


def test_perfect_inverted_and_test_time_views(exact_size_pairs):
    images = [read_pair(*pair) for pair in exact_size_pairs]
    perfect = MapModel([(image, mask.astype(np.float32)) for image, mask in images])
    metrics = evaluate.evaluate_pairs(perfect, exact_size_pairs, progress=False)
    assert (metrics["iou"], metrics["f1"], metrics["mean_image_iou"]) == (1.0, 1.0, 1.0)
    assert metrics["images"] == len(metrics["per_image"]) == 2 and metrics["tta"] == "flips"
    inverted = MapModel([(image, 1.0 - mask) for image, mask in images])
    assert evaluate.evaluate_pairs(inverted, exact_size_pairs, progress=False)["iou"] == 0.0
    # Predicted 3 pixels right of the bird: one pass scores image 0 with 70 of its 100 pixels and 30 beside them,
    # image 1 with 4 and 6 beside: IoU 74 / 146. The left-right view, flipped back, is 3 pixels left: averaged with
    # the first, only the 4 columns both cover stay above 0.5 (40 pixels of image 0, none of image 1): 40 / 110.
    shifted = MapModel([(image, mask.astype(np.float32)) for image, mask in images], shift=3)
    once = evaluate.evaluate_pairs(shifted, exact_size_pairs, progress=False, tta="none")
    assert once["tta"] == "none" and once["iou"] == pytest.approx(74 / 146)
    hflip = evaluate.evaluate_pairs(shifted, exact_size_pairs, progress=False, tta="hflip")
    assert hflip["iou"] == pytest.approx(40 / 110) and hflip["precision"] == 1.0


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


@pytest.mark.slow
def test_evaluate_cli_single_and_comparison(run_dir, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(run_dir), "--data", str(tiny_dataset), "--out", str(out), "--quiet",
                 "--tta", "none"]) == 0
    for name in ("metrics.json", "per_image.csv", "threshold_sweep.png", "worst.png"):
        assert (out / name).stat().st_size > 0
    once = json.loads((out / "metrics.json").read_text())
    assert once["tta"] == "none" and once["images"] == 3
    # Two run folders' model.keras: two result folders named apart, neither overwritten, and a comparison table.
    second = tmp_path / "run_b" / "model.keras"
    second.parent.mkdir()
    second.write_bytes((run_dir / "model.keras").read_bytes())
    assert main(["evaluate", "--model", str(run_dir / "model.keras"), str(second), "--data", str(tiny_dataset),
                 "--out", str(tmp_path / "cmp"), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert f"{run_dir.name}/model.keras" in table and "run_b/model.keras" in table and "best t" in table
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == sorted([f"{run_dir.name}_model", "run_b_model"])
    saved = json.loads((run_dir / "metrics.json").read_text())
    for name in (f"{run_dir.name}_model", "run_b_model"):  # the notebook's own scores, with flips
        assert json.loads((tmp_path / "cmp" / name / "metrics.json").read_text())["iou"] == pytest.approx(saved["iou"])
