"""Checking a dataset before hours are spent on it: every pair found, every file decoded (or, quick, its header
read), masks read by the one mask rule, sizes matched, duplicates across splits and empty or ambiguous masks named.
A folder or a zip (unpacked as the notebook unpacks it)."""
import hashlib
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from birdseg import display
from birdseg.archive import ensure_dataset
from birdseg.dataset_tools import image_size
from birdseg.defaults import MASK_THRESHOLD
from birdseg.errors import DatasetError
from birdseg.images import decode_mask, size_mismatch, upright_size
from birdseg.pairs import SPLITS, find_pairs, listed


@dataclass
class DatasetReport:
    """What check_dataset found. `errors` make the dataset unusable; `warnings` deserve a look."""

    root: Path
    counts: dict = field(default_factory=dict)
    sizes: Counter = field(default_factory=Counter)
    foreground: dict = field(default_factory=dict)
    empty_masks: list = field(default_factory=list)
    non_binary_masks: list = field(default_factory=list)
    mask_kinds: dict = field(default_factory=dict)  # split -> Counter of decode_mask kinds
    duplicates: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    quick: bool = False

    def ok(self, strict=False):
        return not self.errors and not (strict and self.warnings)

    def raise_if_unusable(self, strict=False):
        if not self.ok(strict):
            raise DatasetError(self.summary())

    def summary(self):
        lines = [f"{self.root}: " + ", ".join(f"{split} {n}" for split, n in self.counts.items())
                 + (" (quick check)" if self.quick else "")]
        if self.sizes:
            common = ", ".join(f"{w}x{h}: {n}" for (w, h), n in self.sizes.most_common(6))
            lines.append(f"  image sizes: {common}" + (f" (+{len(self.sizes) - 6} more sizes)" if len(self.sizes) > 6 else ""))
        for split, fraction in self.foreground.items():
            kinds = ", ".join(f"{kind}: {n}" for kind, n in self.mask_kinds.get(split, Counter()).most_common())
            lines.append(f"  {split}: bird pixels {100 * fraction:.2f}% on average; masks {kinds}")
        if self.empty_masks:
            lines.append(f"  {len(self.empty_masks)} image(s) with an empty mask (no bird): fine if intended")
        lines += [f"  WARNING: {w}" for w in self.warnings]
        lines += [f"  ERROR: {e}" for e in self.errors]
        lines.append("  usable" if self.ok() else "  NOT usable: fix the errors above")
        return "\n".join(lines)


def check_dataset(path, quick=False):
    """Check a dataset folder or zip: pairing, readability, sizes, mask values, empty masks, cross-split duplicates.

    `quick` only pairs files and reads image headers (what the notebook runs before training).
    Never raises for problems in the data: they are collected in the report.
    """
    path = Path(path)
    if path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory() as tmp:
            try:
                root = ensure_dataset(Path(tmp) / path.stem, archive=path)
            except DatasetError as error:
                return DatasetReport(path, errors=[str(error)], quick=quick)
            report = check_dataset(root, quick)
            report.root = path
            return report
    report = DatasetReport(path, quick=quick)
    if not path.is_dir():
        report.errors.append(f"{path}: no such folder")
        return report
    hashes = defaultdict(list)
    for split in SPLITS:
        try:
            pairs = find_pairs(path / split)
        except DatasetError as error:
            report.errors.append(str(error))
            continue
        report.counts[split] = len(pairs)
        fractions = []
        bar = display.progress_bar(len(pairs), f"check {split}", "img", enabled=not quick and len(pairs) >= 200)
        for image_path, mask_path in pairs:
            bar.update()
            checked = _check_pair(image_path, mask_path, report, quick)
            if checked is None or quick:
                continue
            fraction, digest = checked
            fractions.append(fraction)
            hashes[digest].append(f"{split}/images/{image_path.name}")
        bar.close()
        if fractions:
            report.foreground[split] = float(np.mean(fractions))
    for names in hashes.values():
        if len({name.split("/", 1)[0] for name in names}) > 1:
            report.duplicates.append(names)
            report.errors.append(f"the same image is in several splits: {', '.join(names)}")
    if report.non_binary_masks:
        shown = listed(report.non_binary_masks, 10)
        report.warnings.append(
            f"{len(report.non_binary_masks)} mask(s) are not binary (binarised at >{MASK_THRESHOLD}): {shown}"
        )
    for split in SPLITS:
        if split in report.counts and not quick and report.foreground.get(split, 1) == 0:
            report.warnings.append(f"{split}: no mask has any bird pixel")
    return report


def split_of(mask_path):
    """The split ("train", "val", "test") a mask file of the birds_splitted layout is in."""
    return Path(mask_path).parent.parent.name  # <root>/<split>/mask/<file>


def _check_pair(image_path, mask_path, report, quick):
    """Check one pair into `report`; returns (foreground fraction, image hash), or None on an error."""
    try:
        if quick:
            with Image.open(image_path) as img, Image.open(mask_path) as mask:
                image_size_, mask_size = upright_size(img), mask.size
        else:
            data = image_path.read_bytes()
            image_size_ = image_size(data, image_path)
            reading = decode_mask(mask_path)
            foreground = reading.foreground
            mask_size = foreground.shape[::-1]
            report.mask_kinds.setdefault(split_of(mask_path), Counter())[reading.kind] += 1
            if reading.kind.startswith("soft"):
                report.non_binary_masks.append(str(mask_path))
            if reading.warning:
                report.warnings.append(reading.warning)
    except (OSError, DatasetError) as error:
        report.errors.append(str(error) if isinstance(error, DatasetError) else f"{image_path}: {error}")
        return None
    if image_size_ != mask_size:
        report.errors.append(size_mismatch(mask_path, mask_size, image_path, image_size_))
        return None
    report.sizes[image_size_] += 1
    if quick:
        return None
    fraction = float(foreground.mean())
    if fraction == 0:
        report.empty_masks.append(str(mask_path))
    return fraction, hashlib.sha256(data).hexdigest()
