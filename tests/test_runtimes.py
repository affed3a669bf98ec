"""Inference runtimes: a small model the tests build, converted for ONNX Runtime and OpenVINO, predicts what Keras
does; the conversion is cached, redone for a new model file, refused when it predicts differently; a missing
runtime says how to install it; folders and videos go through a runtime as through Keras."""
import importlib.util
import os

import cv2
import keras
import numpy as np
import pytest
from PIL import Image

from birdseg import runtimes
from birdseg.cli import main
from birdseg.media import media_files, predict_files

INSTALLED = {name: all(importlib.util.find_spec(package) for package in packages)
             for name, (packages, _) in runtimes.INSTALL.items()}


def require(runtime):
    if not INSTALLED[runtime]:
        if os.environ.get("BIRDSEG_CI"):
            pytest.fail(f"BIRDSEG_CI is set (CI must run this test) but {runtime} is not installed")
        pytest.skip(f"{runtime} is not installed: pip install -r requirements-export.txt")


def small_model(seed=0):
    """What the U-Net is made of, small: normalisation, convolutions, swish, BatchNorm with moving statistics,
    a sigmoid; its probabilities spread around 0.5, so a conversion that drifts changes masks."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((32, 48, 3), name="image")
    x = keras.layers.Normalization(mean=(0.485, 0.456, 0.406), variance=(0.05, 0.05, 0.05))(image)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="swish")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    batch_norm = keras.layers.BatchNormalization()
    x = batch_norm(x)
    probabilities = keras.layers.Conv2D(1, 1, activation="sigmoid")(x)
    model = keras.Model(image, probabilities)
    batch_norm.moving_mean.assign(np.linspace(-0.2, 0.2, 8, dtype=np.float32))
    batch_norm.moving_variance.assign(np.linspace(0.5, 2.0, 8, dtype=np.float32))
    return model


@pytest.fixture
def run_dir(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    small_model().save(folder / "model.keras")
    return folder


def images(count=4, seed=1):
    return np.random.default_rng(seed).random((count, 32, 48, 3), dtype=np.float32)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_each_runtime_predicts_what_keras_does(run_dir, runtime):
    require(runtime)
    keras_model = runtimes.load_predictor(run_dir, "keras")
    converted = runtimes.load_predictor(run_dir, runtime)
    assert converted.input_shape == (None, 32, 48, 3)
    expected, got = np.asarray(keras_model.predict_on_batch(images())), converted.predict_on_batch(images())
    assert got.shape == expected.shape == (4, 32, 48, 1)
    assert np.max(np.abs(got - expected)) < runtimes.CHECK_TOLERANCE
    assert np.mean((got > 0.5) == (expected > 0.5)) > 0.999
    assert converted.predict_on_batch(images(1)).shape == (1, 32, 48, 1), "any batch size"


def decisive_model(seed=0):
    """The small model with its logits scaled up: probabilities near 0 or 1 except at edges, as a trained model's."""
    model = small_model(seed)
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel * 40, bias * 40])
    return model


def test_bfloat16_openvino_is_checked_by_its_masks_and_computes_in_bfloat16_where_the_cpu_can(tmp_path):
    require("openvino-bf16")
    import openvino

    folder = tmp_path / "run"
    folder.mkdir()
    decisive_model().save(folder / "model.keras")
    keras_model = runtimes.load_predictor(folder, "keras")
    converted = runtimes.load_predictor(folder, "openvino-bf16")
    assert converted.path.parent.name.startswith("openvino-bf16-model-")
    assert runtimes.mask_agreement(keras_model, converted) >= runtimes.MASK_AGREEMENT
    expected, got = np.asarray(keras_model.predict_on_batch(images())), converted.predict_on_batch(images())
    assert np.mean((got > 0.5) == (expected > 0.5)) > 0.99
    core = openvino.Core()
    can = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    compiled = core.compile_model(str(converted.path), "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == ("<Type: 'bfloat16'>" if can else
                                                                      "<Type: 'float32'>")
    f32 = runtimes.load_predictor(folder, "openvino")  # a folder of its own: each runtime name is checked apart
    assert f32.path.parent != converted.path.parent
    assert np.max(np.abs(f32.predict_on_batch(images()) - expected)) < runtimes.CHECK_TOLERANCE


def test_masks_that_disagree_refuse_a_bfloat16_conversion(run_dir, monkeypatch):
    require("openvino-bf16")
    real = runtimes.ConvertedModel.predict_on_batch
    monkeypatch.setattr(runtimes.ConvertedModel, "predict_on_batch", lambda self, batch: 1 - real(self, batch))
    with pytest.raises(runtimes.RuntimeMismatch, match=r"openvino-bf16 conversion agrees with the Keras model's "
                                                       r"masks on \d+\.\d{3}% of the pixels \(at least 99\.9% "
                                                       r"needed\); use --runtime openvino \(float32\)"):
        runtimes.load_predictor(run_dir, "openvino-bf16")
    assert [path.suffix for path in (run_dir / "runtimes").iterdir()] == [".refused"], "no refused conversion is left"


def test_mask_agreement_counts_the_pixels_on_drawn_birds_and_their_mirror_images():
    model = decisive_model()
    assert runtimes.mask_agreement(model, model) == 1.0

    class Shifted:
        """Predicts the model's mask moved one pixel down: disagrees only along the masks' edges."""

        def predict_on_batch(self, batch):
            return np.roll(np.asarray(model.predict_on_batch(batch)), 1, axis=1)

    share = runtimes.mask_agreement(model, Shifted())
    assert 0.5 < share < 1.0


@pytest.mark.parametrize("runtime", ["openvino", "openvino-bf16"])
def test_the_conversion_is_cached_and_redone_for_a_new_model_file(tmp_path, monkeypatch, runtime):
    require(runtime)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    decisive_model().save(run_dir / "model.keras")
    first = runtimes.load_predictor(run_dir, runtime)
    folders = sorted((run_dir / "runtimes").iterdir())
    assert [folder.name for folder in folders] == [first.path.parent.name]
    assert first.path.parent.name.startswith(f"{runtime}-model-")
    with monkeypatch.context() as patch:
        patch.setattr(runtimes, "convert", lambda *args: pytest.fail("converted again: the cache was not used"))
        assert runtimes.load_predictor(run_dir, runtime).path == first.path
    decisive_model(seed=1).save(run_dir / "model.keras")  # a new model: its own conversion, the old one removed
    second = runtimes.load_predictor(run_dir, runtime)
    assert second.path != first.path and not first.path.exists()
    assert [folder.name for folder in (run_dir / "runtimes").iterdir()] == [second.path.parent.name]
    expected = np.asarray(keras.models.load_model(run_dir / "model.keras").predict_on_batch(images()))
    got = second.predict_on_batch(images())
    if runtime == "openvino":
        assert np.max(np.abs(got - expected)) < runtimes.CHECK_TOLERANCE
    assert np.mean((got > 0.5) == (expected > 0.5)) > 0.99


def test_a_conversion_that_predicts_differently_is_refused_and_not_kept(run_dir, monkeypatch):
    require("openvino")
    real = runtimes.ConvertedModel.predict_on_batch
    monkeypatch.setattr(runtimes.ConvertedModel, "predict_on_batch", lambda self, batch: real(self, batch) + 0.01)
    with pytest.raises(runtimes.RuntimeMismatch, match=r"openvino conversion predicts up to 0\.01 away from the "
                                                       r"Keras model \(tolerance 0\.002\); use --runtime keras"):
        runtimes.load_predictor(run_dir, "openvino")
    assert [path.suffix for path in (run_dir / "runtimes").iterdir()] == [".refused"], "nothing half-made is left"
    with pytest.raises(runtimes.RuntimeMismatch, match=r"tolerance 0\.002\); use --runtime keras \(refused earlier: "
                                                       r"remove .*openvino-model-\w+\.refused to check again"):
        runtimes.load_predictor(run_dir, "openvino")


def test_a_missing_runtime_is_one_line_with_the_install_command(run_dir, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(runtimes.RuntimeMissing, match=r"--runtime openvino needs openvino, which is not installed: "
                                                      r"pip install -r requirements-export\.txt"):
        runtimes.load_predictor(run_dir, "openvino")
    with pytest.raises(runtimes.RuntimeMissing, match=r"--runtime openvino-bf16 needs openvino, which is not "
                                                      r"installed: pip install -r requirements-export\.txt"):
        runtimes.load_predictor(run_dir, "openvino-bf16")
    assert runtimes.check_runtime("auto") == "keras", "auto falls back to Keras, which needs nothing more"
    assert runtimes.check_runtime("auto", exact=True) == "keras"
    photo = run_dir / "photo.png"
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(photo)
    code = main(["predict", "--model", str(run_dir), "--input", str(photo), "--out", str(run_dir / "out"),
                 "--runtime", "openvino", "--quiet"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and "pip install -r requirements-export.txt" in error[0]


def test_auto_is_openvino_where_installed_and_unknown_names_are_refused():
    assert runtimes.check_runtime("auto") == ("openvino-bf16" if INSTALLED["openvino"] else "keras")
    assert runtimes.check_runtime("auto", exact=True) == ("openvino" if INSTALLED["openvino"] else "keras")
    with pytest.raises(ValueError, match="runtime='tensorrt': expected 'auto', 'keras', 'onnxruntime', 'openvino', "
                                         "'openvino-bf16'"):
        runtimes.check_runtime("tensorrt")


def test_auto_falls_back_to_float32_where_bfloat16_masks_are_refused_and_remembers(run_dir, monkeypatch, capsys):
    require("openvino")
    monkeypatch.setattr(runtimes, "mask_agreement", lambda *args: 0.5)
    with pytest.raises(runtimes.RuntimeMismatch,
                       match=r"agrees with the Keras model's masks on 50\.000% of the pixels"):
        runtimes.load_predictor(run_dir, "openvino-bf16")  # named: refused, as it says
    refusal = runtimes.refusal_file(run_dir, "openvino-bf16")
    assert refusal.name == runtimes.cache_dir(run_dir, "openvino-bf16").name + ".refused"
    assert refusal.is_file() and [path.name for path in (run_dir / "runtimes").iterdir()] == [refusal.name]
    monkeypatch.setattr(runtimes, "mask_agreement", lambda *args: pytest.fail("checked again: the refusal is kept"))
    predictor = runtimes.load_predictor(run_dir, "auto")
    assert predictor.runtime == "openvino"
    assert capsys.readouterr().out.strip().endswith("(at least 99.9% needed): predicting with openvino (float32) "
                                                    "instead")
    with pytest.raises(runtimes.RuntimeMismatch, match="at least 99.9% needed.*refused earlier"):
        runtimes.load_predictor(run_dir, "openvino-bf16")
    with pytest.raises(runtimes.RuntimeMismatch):  # evaluation ("exact") never takes bfloat16; named runtimes raise
        monkeypatch.setattr(runtimes, "largest_difference", lambda *args: 1.0)
        runtimes.load_predictor(run_dir, "onnxruntime" if INSTALLED["onnxruntime"] else "openvino-bf16")
    small_model(seed=1).save(run_dir / "model.keras")  # a new model file: its refusal goes with the old model's
    monkeypatch.setattr(runtimes, "mask_agreement", lambda *args: 1.0)
    assert runtimes.load_predictor(run_dir, "auto").runtime == "openvino-bf16"
    assert not refusal.exists()


def write_clip(path, frames=6):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 64))
    for index in range(frames):
        frame = np.full((64, 96, 3), (230, 200, 160), np.uint8)
        cv2.ellipse(frame, (20 + 8 * index, 30), (12, 6), 0, 0, 360, (30, 30, 30), -1)
        writer.write(frame)
    writer.release()


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "openvino-bf16"])
def test_a_folder_and_a_video_through_a_runtime_give_keras_masks(run_dir, tmp_path, runtime):
    require(runtime)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(3)
    for name, size in (("a.jpg", (48, 80)), ("b.png", (200, 300))):  # the second is predicted in tiles
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(inputs / name)
    write_clip(inputs / "clip.mp4")
    masks = {}
    for name in ("keras", runtime):
        written, skipped, _ = predict_files(runtimes.load_predictor(run_dir, name), media_files(inputs),
                                            tmp_path / name, progress=False, video_masks=True)
        assert len(written) == 3 and not skipped
        masks[name] = {path.relative_to(tmp_path / name): np.asarray(Image.open(path))
                       for path in sorted((tmp_path / name).rglob("*.png"))}
    assert masks["keras"].keys() == masks[runtime].keys() and len(masks["keras"]) == 2 + 6
    agreement = np.mean([np.mean(masks["keras"][key] == masks[runtime][key]) for key in masks["keras"]])
    assert agreement > 0.999
