"""The embedded dataset: unpacking `<data_dir>.zip` when its folder is missing or was unpacked from an earlier
version of the archive, never leaving a half-unpacked folder."""
import hashlib
import tempfile
import time
import zipfile
from pathlib import Path

from birdseg.errors import DatasetError

UNPACKED_FROM = ".unpacked-from"  # in a folder unpacked by ensure_dataset: the digest of its archive's files


def archive_digest(zf):
    """A digest of a zip's member names and CRCs: it changes when any file in the archive does."""
    return hashlib.sha256("".join(f"{info.filename}:{info.CRC}\n" for info in zf.infolist()).encode()).hexdigest()


def unpacked_from_another_archive(data_dir, archive):
    """Whether `data_dir` was unpacked (by ensure_dataset, or as the embedded data with its SYNTHETIC.txt) from an
    archive other than `archive`. A folder the user made is not; one unpacked and then added to is (it is moved
    aside whole, so nothing added is lost)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            stamp = data_dir / UNPACKED_FROM
            if stamp.is_file():
                return stamp.read_text().strip() != archive_digest(zf)
            note = f"{data_dir.name}/SYNTHETIC.txt"
            return (data_dir / "SYNTHETIC.txt").is_file() and note in zf.namelist() and \
                zf.read(note) != (data_dir / "SYNTHETIC.txt").read_bytes()
    except zipfile.BadZipFile:
        return False  # the folder is there; the broken archive is reported when it is needed


def ensure_dataset(data_dir, archive=None):
    """Return `data_dir`, unpacking it from `archive` (default: `<data_dir>.zip`) when the folder is missing, or
    when it was unpacked from an earlier version of the archive (it is then moved aside, not deleted).

    The archive must hold one top folder named like `data_dir`. Unpacking goes to a temporary folder
    that is renamed at the end, so an interrupted unpack leaves nothing half-written.
    """
    data_dir = Path(data_dir)
    archive = Path(archive) if archive else data_dir.with_name(data_dir.name + ".zip")
    if data_dir.is_dir():
        if not (archive.is_file() and unpacked_from_another_archive(data_dir, archive)):
            return data_dir
        aside = data_dir.with_name(f"{data_dir.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            data_dir.rename(aside)
            print(f"{data_dir} was unpacked from an earlier {archive.name}; moved it to {aside}, unpacking the new one")
        except FileNotFoundError:  # another process moved it meanwhile
            pass
    elif not archive.is_file():
        raise DatasetError(f"{data_dir}: no such folder, and no archive {archive} to unpack it from")
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise DatasetError(f"{archive}: corrupt archive (bad CRC in {bad})")
            tops = {name.split("/", 1)[0] for name in zf.namelist() if name.strip("/")}
            if tops != {data_dir.name}:
                raise DatasetError(
                    f"{archive}: expected one top folder '{data_dir.name}/', found {sorted(tops) or 'nothing'}"
                )
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=data_dir.parent, prefix=".unpack-") as tmp:
                zf.extractall(tmp)
                Path(tmp, data_dir.name, UNPACKED_FROM).write_text(archive_digest(zf))
                if not data_dir.exists():  # another process may have unpacked it meanwhile
                    Path(tmp, data_dir.name).rename(data_dir)
    except zipfile.BadZipFile as error:
        raise DatasetError(f"{archive}: not a readable zip archive ({error})") from error
    return data_dir
