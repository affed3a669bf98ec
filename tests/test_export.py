"""Export formats and parity with the Keras model, on the model trained by the tiny notebook run."""
import importlib.util

import pytest

from birdseg import export
from birdseg.cli import main

ONNX_READY = all(importlib.util.find_spec(name) for name in ("tf2onnx", "onnx", "onnxruntime"))


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite"])
def test_export_matches_keras(trained_model, tmp_path, fmt):
    path = export.export_model(trained_model, tmp_path, fmt)
    assert path.exists() and path.name == export.FILE_NAMES[fmt]
    assert export.parity(trained_model, path, fmt) < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary folders left"


def test_reexport_replaces_the_earlier_export(trained_model, tmp_path, monkeypatch):
    first = export.export_model(trained_model, tmp_path, "tflite")
    first.write_bytes(b"an older export")
    calls = []
    real_replace = export.os.replace
    monkeypatch.setattr(export.os, "replace", lambda a, b: calls.append(b) or real_replace(a, b))
    again = export.export_model(trained_model, tmp_path, "tflite")
    assert calls == [again] and again.read_bytes() != b"an older export"
    assert export.parity(trained_model, again, "tflite") < 1e-4


@pytest.mark.skipif(not ONNX_READY, reason="ONNX export needs requirements-export.txt")
def test_onnx_export_matches_keras(trained_model, tmp_path):
    path = export.export_model(trained_model, tmp_path, "onnx")
    assert export.parity(trained_model, path, "onnx") < 1e-4


def test_export_cli_reports_parity(run_dir, tmp_path, capsys):
    assert main(["export", "--model", str(run_dir), "--format", "savedmodel", "--out", str(tmp_path)]) == 0
    assert "largest difference from the Keras model" in capsys.readouterr().out
    assert (tmp_path / "savedmodel" / "saved_model.pb").is_file()


def test_export_bad_paths(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path / "none.keras"), "--format", "tflite", "--out", str(tmp_path)]) == 2
    assert "no saved model here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--model", "x", "--format", "pdf", "--out", str(tmp_path)])


def test_unknown_format_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        export.export_model(None, tmp_path, "pdf")
