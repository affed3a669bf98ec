"""Prediction at each photo's own size, and the predict command, on the model trained by the tiny notebook run."""
import numpy as np
import pytest
from PIL import Image

from birdseg import predict
from birdseg.cli import main
from birdseg.data import find_pairs, read_image


def test_predict_image_any_size(trained_model, tiny_dataset):
    for image_path, _ in find_pairs(tiny_dataset / "test"):
        image = read_image(image_path)
        mask = predict.predict_image(trained_model, image)
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    big = np.zeros((1000, 1500, 3), np.uint8)
    assert predict.predict_image(trained_model, big).shape == (1000, 1500)


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


def test_predict_cli_bad_paths(run_dir, tmp_path, capsys):
    assert main(["predict", "--model", str(tmp_path), "--input", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no saved model here" in capsys.readouterr().err
    assert main(["predict", "--model", str(run_dir), "--input", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err


class PositionModel:
    """A stand-in network whose output is not mirror-symmetric: the photo's red channel times a left-to-right and
    top-to-bottom ramp, so each test-time view gives a different map."""

    input_shape = (None, 4, 6, 3)
    ramp = np.add.outer(np.arange(4.0), np.arange(6.0))[None, :, :, None] / 8.0

    def predict_on_batch(self, batch):
        return batch[..., :1] * self.ramp


def test_tta_averages_the_views_flipped_back():
    image = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)  # the model's size: no resizing
    red = image[..., 0] / 255.0
    ramp = PositionModel.ramp[0, ..., 0]
    expected = {
        "none": red * ramp,
        "hflip": red * (ramp + ramp[:, ::-1]) / 2,
        "flips": red * (ramp + ramp[:, ::-1] + ramp[::-1, :]) / 3,
    }
    for tta, probability in expected.items():
        got = predict.predict_probabilities(PositionModel(), [image], tta=tta)[0]
        np.testing.assert_allclose(got, probability, rtol=1e-6, err_msg=tta)


def test_tta_unknown_value_names_the_choices():
    with pytest.raises(ValueError, match="TTA='rotations': expected 'none', 'hflip', 'flips'"):
        predict.predict_probabilities(PositionModel(), [np.zeros((4, 6, 3), np.uint8)], tta="rotations")


def test_predict_cli_tta_choice(run_dir, tiny_dataset, tmp_path, capsys):
    image_path = find_pairs(tiny_dataset / "test")[0][0]
    for tta in ("none", "flips"):
        out = tmp_path / tta
        assert main(["predict", "--model", str(run_dir), "--input", str(image_path), "--out", str(out), "--quiet",
                     "--tta", tta]) == 0
        assert (out / f"{image_path.stem}_mask.png").exists()
    with pytest.raises(SystemExit):
        main(["predict", "--model", str(run_dir), "--input", str(image_path), "--out", str(tmp_path), "--tta", "x"])
    assert "invalid choice: 'x'" in capsys.readouterr().err
