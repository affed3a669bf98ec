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


def test_json_refuses_what_it_cannot_write_and_indents(tmp_path):
    with pytest.raises(TypeError, match="cannot write set to JSON"):
        files.write_json(tmp_path / "a.json", {"x": {1}})
    assert not list(tmp_path.iterdir())
    files.write_json(tmp_path / "b.json", {"b": 1, "a": [2]})
    assert (tmp_path / "b.json").read_text() == '{\n  "b": 1,\n  "a": [\n    2\n  ]\n}\n'  # in order, indented


def test_atomic_path_makes_the_folder_and_keeps_the_name_as_suffix(tmp_path):
    path = tmp_path / "new" / "deeper" / "model.keras"
    with files.atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp.name.startswith(files.TMP_PREFIX) and tmp.name.endswith("model.keras")
        tmp.write_text("whole")
    assert path.read_text() == "whole" and [p.name for p in path.parent.iterdir()] == ["model.keras"]


def test_another_os_error_is_raised_as_it_is_and_the_temporary_removed(tmp_path):
    path = tmp_path / "a.txt"
    with pytest.raises(OSError) as raised:
        with files.atomic_path(path) as tmp:
            tmp.write_text("x")
            raise OSError(errno.EACCES, "denied")
    assert not isinstance(raised.value, files.OutOfSpaceError) and raised.value.errno == errno.EACCES
    assert not list(tmp_path.iterdir())


def test_stale_temporaries_removed_and_nothing_else(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / f"{files.TMP_PREFIX}1-model.keras", tmp_path / "sub" / f"{files.TMP_PREFIX}2-history.csv"]
    kept = [tmp_path / "model.keras", tmp_path / "sub" / "tmp-notes.txt", tmp_path / f"x{files.TMP_PREFIX}3"]
    for path in stale + kept:
        path.write_text("x")
    (tmp_path / f"{files.TMP_PREFIX}folder").mkdir()  # only files are a write's temporaries
    assert sorted(files.remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert all(path.exists() for path in kept) and not any(path.exists() for path in stale)
    assert (tmp_path / f"{files.TMP_PREFIX}folder").is_dir()


def test_figures_saved_whole_in_the_format_of_their_name_and_closed(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 1))
    fig.text(0.5, 0.5, "bird")
    files.save_figure(fig, tmp_path / "a.svg", close=False)
    assert plt.fignum_exists(fig.number) and (tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")
    png = files.figure_bytes(fig, dpi=50)
    assert png.startswith(b"\x89PNG") and len(files.figure_bytes(fig, dpi=200)) > len(png)
    assert files.figure_bytes(fig) == files.figure_bytes(fig, dpi=100)
    import io

    from PIL import Image

    assert max(Image.open(io.BytesIO(files.figure_bytes(fig))).size) < 150  # cropped to the text, not 200x100
    files.save_figure(fig, tmp_path / "noextension", close=False)
    assert (tmp_path / "noextension").read_bytes().startswith(b"\x89PNG")
    other = plt.figure()  # the current figure is another one: the one given is closed
    files.save_figure(fig, tmp_path / "b.png")
    assert not plt.fignum_exists(fig.number) and plt.fignum_exists(other.number)
    plt.close(other)
    assert (tmp_path / "b.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.svg", "b.png", "noextension"]


def test_sha256_of_a_file_larger_than_a_block(tmp_path):
    import hashlib

    data = bytes(range(256)) * 5000  # more than one 1 MiB block
    (tmp_path / "f").write_bytes(data)
    assert files.sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()
