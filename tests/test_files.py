import errno
import json

import pytest

from birdseg import files


def test_write_json_replaces_atomically(tmp_path):
    path = tmp_path / "metrics.json"
    files.write_json(path, {"iou": 0.5})
    files.write_json(path, {"iou": 0.75})
    assert json.loads(path.read_text()) == {"iou": 0.75}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left behind


def test_failed_write_keeps_earlier_file(tmp_path):
    path = tmp_path / "metrics.json"
    files.write_json(path, {"iou": 0.5})
    with pytest.raises(RuntimeError):
        with files.atomic_path(path) as tmp:
            tmp.write_text('{"iou": 0.')  # half written, then the process "dies"
            raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"iou": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_disk_full_gives_clear_error_and_keeps_earlier_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    files.write_json(path, {"iou": 0.5})

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(files.OutOfSpaceError, match="no space left on device while writing .*metrics.json"):
        files.write_json(path, {"iou": 0.9})
    assert json.loads(path.read_text()) == {"iou": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_json_handles_numpy_and_paths(tmp_path):
    import numpy as np

    files.write_json(tmp_path / "a.json", {"x": np.float32(0.5), "p": tmp_path})
    assert files.read_json(tmp_path / "a.json") == {"x": 0.5, "p": str(tmp_path)}
