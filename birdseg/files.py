"""Atomic file writing: a killed process or a full disk never leaves a half-written file behind."""
import contextlib
import errno
import hashlib
import io
import json
import os
from pathlib import Path

TMP_PREFIX = ".tmp-"


class OutOfSpaceError(OSError):
    """Raised when the disk fills up while writing; the previous version of the file is intact."""


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block finishes.

    The temporary name keeps the full file name as suffix so writers that check extensions
    (Keras wants `.keras` / `.weights.h5`) accept it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.errno == errno.ENOSPC:
            raise OutOfSpaceError(
                errno.ENOSPC, f"no space left on device while writing {path}; the earlier version is intact"
            ) from error
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder):
    """Delete the temporary files that a killed process left under `folder` (a model save can leave 200 MB).
    Only for folders that no other process is writing to. Returns the paths removed."""
    stale = [path for path in Path(folder).rglob(f"{TMP_PREFIX}*") if path.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_text(path, text):
    """Write `text` (UTF-8) atomically: a kill leaves the old file or the new one, never half of it."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def write_json(path, data):
    """Write `data` as indented JSON, atomically (NumPy numbers and Paths are converted)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path):
    """The JSON document at `path`."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def figure_bytes(fig, format="png", dpi=100):
    """The figure encoded as `format` (png, svg, pdf, ...), cropped to what it shows."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, bbox_inches="tight", format=format)
    return buffer.getvalue()


def save_figure(fig, path, close=True):
    """Save a matplotlib figure atomically; close it unless it is still to be shown inline."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        tmp.write_bytes(figure_bytes(fig, Path(path).suffix.lstrip(".") or "png"))
    if close:
        plt.close(fig)


def sha256(path):
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
