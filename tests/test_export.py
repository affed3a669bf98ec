"""Export formats and parity with the Keras model: each format on the U-Net trained by the tiny notebook run; the
mechanics (replacing an earlier export, the command's exit status) on a small network that exports in seconds."""
import importlib.util
import os

import keras
import pytest

from birdseg import export
from birdseg.cli import main

ONNX_READY = all(importlib.util.find_spec(name) for name in ("tf2onnx", "onnx", "onnxruntime"))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["savedmodel", "tflite"])
def test_export_matches_keras(trained_model, tmp_path, fmt):
    path = export.export_model(trained_model, tmp_path, fmt)
    assert path.exists() and path.name == export.FILE_NAMES[fmt]
    assert export.parity(trained_model, path, fmt) < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary folders left"


@pytest.fixture
def small_model(tmp_path):
    """A small network with the U-Net's interface (RGB in, one probability map out), saved as a .keras file."""
    image = keras.Input((32, 48, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    model = keras.Model(image, keras.layers.Conv2D(1, 1, activation="sigmoid")(x))
    model.save(tmp_path / "small.keras")
    return model, tmp_path / "small.keras"


def test_reexport_replaces_the_earlier_export(small_model, tmp_path, monkeypatch):
    model, _ = small_model
    first = export.export_model(model, tmp_path / "out", "tflite")
    first.write_bytes(b"an older export")
    calls = []
    real_replace = export.os.replace
    monkeypatch.setattr(export.os, "replace", lambda a, b: calls.append(b) or real_replace(a, b))
    again = export.export_model(model, tmp_path / "out", "tflite")
    assert calls == [again] and again.read_bytes() != b"an older export"
    assert export.parity(model, again, "tflite") < 1e-4


@pytest.mark.slow
def test_onnx_export_of_a_model_loaded_from_its_run_folder_matches_keras(run_dir, trained_model, tmp_path, capsys):
    """As a user runs it: `export --model <run> --format onnx` (the run's model, loaded from its file)."""
    if not ONNX_READY:
        if os.environ.get("BIRDSEG_CI"):
            pytest.fail("BIRDSEG_CI is set (CI must run this test) but the export extra is not installed")
        pytest.skip("ONNX export needs pip install -r requirements-export.txt")
    assert main(["export", "--model", str(run_dir), "--format", "onnx", "--out", str(tmp_path)]) == 0
    assert "(ok)" in capsys.readouterr().out
    assert export.parity(trained_model, tmp_path / "model.onnx", "onnx") < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"], "no temporary folders left"


def test_export_cli_reports_parity_and_fails_above_the_tolerance(small_model, tmp_path, capsys):
    _, path = small_model
    assert main(["export", "--model", str(path), "--format", "savedmodel", "--out", str(tmp_path / "out")]) == 0
    assert "largest difference from the Keras model" in capsys.readouterr().out
    assert (tmp_path / "out" / "savedmodel" / "saved_model.pb").is_file()
    # Any difference is above a negative tolerance: the command must fail, saying so.
    assert main(["export", "--model", str(path), "--format", "savedmodel", "--out", str(tmp_path / "out"),
                 "--tolerance", "-1"]) == 1
    assert "ABOVE the tolerance -1.0" in capsys.readouterr().out


def test_export_bad_paths(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path / "none.keras"), "--format", "tflite", "--out", str(tmp_path)]) == 2
    assert "no saved model here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--model", "x", "--format", "pdf", "--out", str(tmp_path)])


def test_unknown_format_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        export.export_model(None, tmp_path, "pdf")
