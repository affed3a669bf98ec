"""Building datasets: the birds_splitted layout from what users have (checking one: `birdseg.dataset_check`).

Sources: a folder of images with a folder of masks (any common mask naming and encoding), the DAVIS
layout, and the official CUB-200-2011 archives (read without unpacking). Output is always
`<out>/{train,val,test}/{images,mask}` with masks as PNG {0, 255}, built in a temporary folder and
renamed at the end, so an interrupted build leaves no half dataset. Groups (clips, species, sessions)
never straddle splits.
"""
import contextlib
import io
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from birdseg import display
from birdseg.defaults import CUB_VAL_RATIO, MASK_THRESHOLD, SPLIT_RATIOS
from birdseg.errors import DatasetError
from birdseg.files import atomic_path
from birdseg.images import IMAGE_FORMATS, as_8bit, decode_mask, size_mismatch, upright_size
from birdseg.pairs import SPLITS, is_image_file, list_images, listed, mask_candidates, match_masks


@dataclass
class Sample:
    """One image and its mask, from any source. `group` keeps related samples in one split."""

    stem: str
    image_name: str  # file name to write, original extension kept
    read_image_bytes: object  # () -> bytes, so sources can stream
    read_mask_bytes: object
    group: str
    mask_source: str = ""  # for messages


@dataclass
class AnnotatedSamples:
    """Samples whose masks were drawn from annotation files (COCO, LabelMe), and what was found on the way."""

    source: str  # "COCO", "LabelMe"
    samples: list
    empty: list  # file names of images without an annotation of the chosen classes
    classes: str  # which annotations make the masks, for people: "categories Bird", "labels bird, gull"
    ignored: str = ""  # what was read and not drawn, for people

    def summary(self):
        lines = [f"{self.source}: {len(self.samples)} image(s), masks from {self.classes}"]
        if self.empty:
            lines.append(f"  {len(self.empty)} image(s) without an annotation of these, written with an empty mask: "
                         f"{listed(self.empty, 10)}")
        if self.ignored:
            lines.append(f"  {self.ignored}")
        return "\n".join(lines)


def png_bytes(mask):
    """A bool mask as PNG bytes {0, 255}."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- images


def image_size(data, source):
    """Upright (width, height) of image bytes (as read_image returns it), decoding fully so truncated files are caught."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            size = upright_size(img)
            as_8bit(img, source)  # refuses what read_image would refuse, here rather than in training
    except DatasetError:
        raise  # as_8bit's, which names the file
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{source}: cannot read image ({error})") from error
    return size


# ---------------------------------------------------------------- splitting


def assign_splits(samples, ratios=SPLIT_RATIOS, seed=0):
    """Map split -> samples. Whole groups go to one split; splits get close to `ratios` of the images."""
    ratios = np.asarray(ratios, float)
    if len(ratios) != 3 or (ratios < 0).any() or not np.isclose(ratios.sum(), 1.0):
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {list(ratios)}")
    groups = defaultdict(list)
    for sample in samples:
        groups[sample.group].append(sample)
    names = sorted(groups)
    np.random.default_rng(seed).shuffle(names)
    names.sort(key=lambda name: -len(groups[name]))  # stable: equal sizes keep the shuffled order
    wanted = [split for split, ratio in zip(SPLITS, ratios) if ratio > 0]
    if len(names) < len(wanted):
        raise DatasetError(
            f"only {len(names)} group(s) ({', '.join(sorted(groups))}) for {len(wanted)} splits: "
            "each split needs at least one whole group; lower --ratios for a split to 0 or add data"
        )
    total = len(samples)
    assigned = {split: [] for split in SPLITS}
    # Seed each wanted split with one group (smallest groups go to the smallest splits), then fill greedily.
    by_ratio = sorted(wanted, key=lambda split: ratios[SPLITS.index(split)])
    for split, name in zip(by_ratio, reversed(names[-len(wanted):])):
        assigned[split].append(name)
    for name in names[: len(names) - len(wanted)]:
        deficit = {
            split: ratios[SPLITS.index(split)] * total - sum(len(groups[g]) for g in assigned[split]) for split in wanted
        }
        assigned[max(deficit, key=deficit.get)].append(name)
    return {split: [s for name in assigned[split] for s in sorted(groups[name], key=lambda s: s.stem)] for split in SPLITS}


# ---------------------------------------------------------------- sources


def samples_from_folders(images_dir, masks_dir, group_regex=None, only_masked=False):
    """Pair images with masks by stem (x.png, x_mask.png, x-mask.png, ... any extension). An image without a mask
    is an error, or with `only_masked` left out, counted (a folder of photos of which some were labelled)."""
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder, what in ((images_dir, "--images"), (masks_dir, "--masks")):
        if not folder.is_dir():
            raise DatasetError(f"{folder}: {what} folder does not exist")
    images = list_images(images_dir)
    masks = {path.stem: path for path in sorted(masks_dir.iterdir()) if is_image_file(path)}
    if images_dir.resolve() == masks_dir.resolve():  # masks beside their images (x.jpg, x_mask.png): Roboflow, Kaggle
        beside = {candidate for stem in images for candidate in mask_candidates(stem)[1:] if candidate in images}
        images = {stem: path for stem, path in images.items() if stem not in beside}
        masks = {stem: path for stem, path in masks.items() if stem in beside}
    pattern = re.compile(group_regex) if group_regex else None
    pairs, no_mask, unused = match_masks(images, masks)
    samples = [Sample(stem, path.name, path.read_bytes, pairs[stem].read_bytes, group_of(stem, pattern),
                      str(pairs[stem])) for stem, path in images.items() if stem in pairs]
    missing = [images[stem].name for stem in no_mask]
    orphans = [masks[stem].name for stem in unused]
    problems = []
    if missing and only_masked:
        print(f"{len(missing)} image(s) without a mask in {masks_dir} left out (--only-masked): "
              f"{listed(missing, 5)}")
    elif missing:
        problems.append(f"images without a mask in {masks_dir}: {listed(missing)} (--only-masked leaves them out)")
    if orphans:
        problems.append(f"masks without an image in {images_dir}: {listed(orphans)}")
    if problems:
        raise DatasetError("; ".join(problems))
    if not samples:
        raise DatasetError(f"{images_dir}: no images ({IMAGE_FORMATS}) found")
    return samples


def group_of(stem, pattern):
    """The group a file belongs to (its --group match; the stem itself without a pattern)."""
    if pattern is None:
        return stem
    match = pattern.search(stem)
    if not match:
        raise DatasetError(f"{stem}: does not match --group {pattern.pattern!r}")
    return match.group(1) if match.groups() else match.group(0)


def samples_from_davis(davis_dir, clips=None, resolution="480p"):
    """DAVIS layout: JPEGImages/<res>/<clip>/NNNNN.jpg with Annotations/<res>/<clip>/NNNNN.png, grouped by clip."""
    davis_dir = Path(davis_dir)
    images_root, masks_root = davis_dir / "JPEGImages" / resolution, davis_dir / "Annotations" / resolution
    for folder in (images_root, masks_root):
        if not folder.is_dir():
            raise DatasetError(f"{folder}: missing; expected the DAVIS layout JPEGImages/{resolution}/<clip>/ "
                               f"and Annotations/{resolution}/<clip>/")
    available = sorted(p.name for p in images_root.iterdir() if p.is_dir())
    chosen = clips or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise DatasetError(f"{images_root}: no clip(s) {', '.join(unknown)}; available: {', '.join(available)}")
    samples = [sample for clip in chosen for sample in _clip_samples(images_root / clip, masks_root / clip, clip)]
    if not samples:
        raise DatasetError(f"{davis_dir}: no annotated frames found")
    return samples


def _clip_samples(image_dir, mask_dir, clip):
    if not mask_dir.is_dir():
        raise DatasetError(f"{mask_dir}: annotations for clip '{clip}' are missing")
    images = list_images(image_dir)
    masks = list_images(mask_dir)
    unannotated = sorted(set(images) - set(masks))
    if unannotated:
        raise DatasetError(f"{image_dir}: frames without an annotation: {listed(unannotated)}")
    for frame, image_path in images.items():
        stem = f"{clip}_{frame}"
        yield Sample(stem, stem + image_path.suffix.lower(), image_path.read_bytes, masks[frame].read_bytes,
                           clip, str(masks[frame]))


def read_cub_metadata(cub_archive):
    """(id -> relative image path, id -> is_train) from the CUB-200-2011 archive's text files."""
    files = {}
    with tarfile.open(cub_archive, "r:*") as tar:
        for member in tar:
            name = member.name.split("/", 1)[-1]
            if member.isfile() and name in ("images.txt", "train_test_split.txt"):
                files[name] = tar.extractfile(member).read().decode()
    for name in ("images.txt", "train_test_split.txt"):
        if name not in files:
            raise DatasetError(f"{cub_archive}: no CUB_200_2011/{name} inside; is it CUB_200_2011.tgz?")
    paths = dict(line.split(maxsplit=1) for line in files["images.txt"].splitlines() if line.strip())
    is_train = {k: v.strip() == "1" for k, v in (line.split() for line in files["train_test_split.txt"].splitlines() if line.strip())}
    return paths, is_train


def read_cub_segmentations(segmentations_archive):
    """relative path without extension -> PNG bytes, from segmentations.tgz (a few tens of MB in memory)."""
    masks = {}
    with tarfile.open(segmentations_archive, "r:*") as tar:
        for member in tar:
            if member.isfile() and member.name.lower().endswith(".png"):
                relative = member.name.split("segmentations/", 1)[-1]
                masks[relative[: -len(".png")]] = tar.extractfile(member).read()
    if not masks:
        raise DatasetError(f"{segmentations_archive}: no segmentations/*.png inside; is it segmentations.tgz?")
    return masks


def iter_cub_images(cub_archive):
    """Yield (image stem, bytes) of the photos under images/, streaming through the CUB archive once."""
    with tarfile.open(cub_archive, "r|*") as tar:
        for member in tar:
            if member.isfile() and "/images/" in "/" + member.name and member.name.lower().endswith(".jpg"):
                yield Path(member.name).stem, tar.extractfile(member).read()


# ---------------------------------------------------------------- building


@dataclass
class BuildReport:
    """What make-dataset wrote: counts per split, groups, non-binary masks and warnings."""

    out: Path
    counts: dict
    non_binary_masks: int = 0
    groups: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def note_mask(self, reading):
        self.non_binary_masks += reading.kind.startswith("soft")
        if reading.warning:
            self.warnings.append(reading.warning)

    def summary(self):
        lines = [f"wrote {self.out}: " + ", ".join(f"{split} {n}" for split, n in self.counts.items())]
        for split, groups in self.groups.items():
            shown = ", ".join(groups[:8]) + (f" (+{len(groups) - 8})" if len(groups) > 8 else "")
            lines.append(f"  {split} groups: {shown}")
        if self.non_binary_masks:
            lines.append(f"  warning: {self.non_binary_masks} mask(s) were not binary and were thresholded")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def prepare_output(out, overwrite):
    """The output folder as a Path, refused when it exists unless `overwrite`; its parent is created."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; use --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


@contextlib.contextmanager
def staged_dataset(out, overwrite):
    """Yield an empty `<staging>/{train,val,test}/{images,mask}` tree; it replaces `out` only if the block finishes."""
    out = prepare_output(out, overwrite)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".build-{out.name}-") as tmp:
        staging = Path(tmp) / out.name
        for split in SPLITS:
            (staging / split / "images").mkdir(parents=True)
            (staging / split / "mask").mkdir(parents=True)
        yield staging
        commit_output(staging, out)


def commit_output(staging, out):
    """Move a finished build into place, replacing an old one only now that the new one is complete."""
    old = None
    if out.exists():
        old = out.with_name(f".old-{out.name}")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    staging.rename(out)
    if old:
        shutil.rmtree(old)


def write_sample(split_dir, sample, threshold, bird_values=None):
    """Write one checked pair (mask as PNG {0, 255}); returns the MaskReading of its mask."""
    image_bytes = sample.read_image_bytes()
    width, height = image_size(image_bytes, sample.image_name)
    reading = decode_mask(sample.read_mask_bytes(), threshold, sample.mask_source, bird_values)
    foreground = reading.foreground
    if foreground.shape != (height, width):
        mask_size = foreground.shape[::-1]
        raise DatasetError(size_mismatch(sample.mask_source, mask_size, sample.image_name, (width, height)))
    (split_dir / "images" / sample.image_name).write_bytes(image_bytes)
    Image.fromarray(foreground.astype(np.uint8) * 255).save(split_dir / "mask" / f"{sample.stem}.png")
    return reading


def build_dataset(samples_by_split, out, threshold=MASK_THRESHOLD, overwrite=False, progress=True, bird_values=None):
    """Write samples into `out/{split}/{images,mask}` via a temporary folder; returns a BuildReport. `bird_values`:
    the mask values that are bird (class maps), instead of the mask rule's reading."""
    total = sum(len(s) for s in samples_by_split.values())
    groups = {s: sorted({x.group for x in samples}) for s, samples in samples_by_split.items()}
    report = BuildReport(Path(out), {s: len(v) for s, v in samples_by_split.items()}, groups=groups)
    with staged_dataset(out, overwrite) as staging:
        with display.progress_bar(total, "writing", "img", enabled=progress) as bar:
            for split in SPLITS:
                for sample in samples_by_split.get(split, []):
                    report.note_mask(write_sample(staging / split, sample, threshold, bird_values))
                    bar.update()
    return report


def build_cub(cub_archive, segmentations_archive, out, val_ratio=CUB_VAL_RATIO, group_species=False,
              ratios=SPLIT_RATIOS, seed=0, threshold=MASK_THRESHOLD, overwrite=False, progress=True):
    """CUB-200-2011 from its two official archives, streamed (never unpacked to disk).

    Default: the official test list is the test split and `val_ratio` of the official training images
    becomes val. With `group_species`, whole species go to one split by `ratios` instead (the official
    split mixes species, so it cannot be kept then).
    """
    paths, is_train = read_cub_metadata(cub_archive)
    masks = read_cub_segmentations(segmentations_archive)
    samples, official_train = [], set()
    for image_id, relative in paths.items():
        key = relative[: -len(Path(relative).suffix)]
        if key not in masks:
            raise DatasetError(f"{segmentations_archive}: no segmentation for {relative}")
        stem = Path(relative).stem
        species = relative.split("/", 1)[0]
        samples.append(Sample(stem, Path(relative).name, None, (lambda k=key: masks[k]), species,
                              f"{segmentations_archive}:{key}.png"))
        if is_train.get(image_id):
            official_train.add(stem)
    by_stem = {s.stem: s for s in samples}
    if group_species:
        by_split = assign_splits(samples, ratios, seed)
    else:
        train = [s for s in samples if s.stem in official_train]
        test = [s for s in samples if s.stem not in official_train]
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(train))
        val_count = int(round(val_ratio * len(train)))
        val_set = {train[i].stem for i in order[:val_count]}
        by_split = {"train": [s for s in train if s.stem not in val_set],
                    "val": [s for s in train if s.stem in val_set], "test": test}
    split_of = {s.stem: split for split, items in by_split.items() for s in items}
    groups = {s: sorted({x.group for x in items}) for s, items in by_split.items()}
    report = BuildReport(Path(out), {s: len(v) for s, v in by_split.items()}, groups=groups)
    with staged_dataset(out, overwrite) as staging:
        written = 0
        with display.progress_bar(len(samples), "CUB", "img", enabled=progress) as bar:
            for stem, data in iter_cub_images(cub_archive):
                if stem not in by_stem:
                    continue
                sample = by_stem[stem]
                sample.read_image_bytes = lambda d=data: d
                report.note_mask(write_sample(staging / split_of[stem], sample, threshold))
                sample.read_image_bytes = None  # free the image bytes
                written += 1
                bar.update()
        if written != len(samples):
            raise DatasetError(f"{cub_archive}: images.txt lists {len(samples)} images, the archive holds {written}")
    return report


def zip_dataset(folder, zip_path=None):
    """Zip a dataset folder (top folder = its name), atomically."""
    folder = Path(folder)
    zip_path = Path(zip_path) if zip_path else folder.with_name(folder.name + ".zip")
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder.parent).as_posix())
    return zip_path
