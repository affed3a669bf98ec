"""Data: find image/mask pairs, read them, augment them and batch them.

Layout read here (the same as `birds_splitted.zip`):

    <root>/{train,val,test}/images/<stem>.jpg|.jpeg|.png|.bmp|.tif|.tiff|.webp|.heic|.heif
    <root>/{train,val,test}/mask/<stem>.png|...  (any of those formats; <stem>_mask.png too; or masks/)

Images become float32 RGB in [0, 1], turned upright by their EXIF orientation (every size check uses
that upright size too); 16-bit ones are scaled to 8 bits, not clipped. Masks in any common encoding become
{0, 1} through one rule, `decode_mask`, used by training, evaluation, the dataset builder and check-dataset alike.
"""
import hashlib
import io
import math
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import cv2
import keras
import numpy as np
from PIL import Image, ImageOps

from birdseg.defaults import MASK_THRESHOLD
from birdseg.recipe import check_copy_paste, check_image_size

try:  # phone photos (.heic): Pillow reads them through this plug-in (requirements.txt); without it they are left out
    from pillow_heif import register_heif_opener
except ImportError:
    HEIF_SUFFIXES = ()
else:
    register_heif_opener()
    HEIF_SUFFIXES = (".heic", ".heif")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp") + HEIF_SUFFIXES
IMAGE_FORMATS = "/".join(IMAGE_SUFFIXES)  # for messages
# Files that file managers and OSes drop into folders; never data.
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
SPLITS = ("train", "val", "test")
MASK_FOLDERS = ("mask", "masks")  # a split's masks: make-dataset writes the first
MASK_SUFFIXES = ("_mask", "-mask", ".mask", "_seg", "-seg")  # besides its own stem, what image x's mask may be named


class DatasetError(ValueError):
    """Bad input data; the message names the file or folder and what is wrong."""


# ---------------------------------------------------------------- files and pairs


def is_image_file(path):
    """Whether `path` is an image the loader reads (IMAGE_SUFFIXES, any case; not thumbnails or resource forks)."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not is_system_file(path)


def is_system_file(path):
    """Files that operating systems and file managers drop into folders (thumbnails, macOS resource forks)."""
    return Path(path).name.lower() in IGNORED_NAMES or Path(path).name.startswith("._")


def list_images(folder):
    """Map stem -> path for the image files in `folder`; two files with one stem are an error."""
    folder = Path(folder)
    found = {}
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):
            continue
        if path.stem in found:
            raise DatasetError(f"{folder}: two files share the stem '{path.stem}': {found[path.stem].name}, {path.name}")
        found[path.stem] = path
    return found


def mask_candidates(stem):
    """The stems a mask of image `stem` may have, in order: x, x_mask, x-mask, x.mask, x_seg, x-seg."""
    return [stem] + [stem + suffix for suffix in MASK_SUFFIXES]


def match_masks(images, masks):
    """Pair images ({stem: path}) with masks ({stem: path}) by `mask_candidates`; x_mask is x's mask unless
    x_mask is an image of its own. Returns ({image stem: mask path}, image stems without a mask, mask stems no
    image took), both lists sorted."""
    pairs, taken = {}, set()
    for stem in images:
        found = next((c for c in mask_candidates(stem) if c in masks and (c == stem or c not in images)), None)
        if found is not None:
            pairs[stem] = masks[found]
            taken.add(found)
    return pairs, sorted(set(images) - set(pairs)), sorted(set(masks) - taken)


def find_pairs(split_dir):
    """Return sorted [(image_path, mask_path)] for one split folder holding images/ and mask/ (or masks/)."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir() and split_dir.parent.is_dir():
        present = sorted(path.name for path in split_dir.parent.iterdir() if path.is_dir())
        raise DatasetError(f"{split_dir}: no such split folder ({split_dir.parent} holds "
                           f"{', '.join(present) or 'no folders'}; the splits are named {', '.join(SPLITS)})")
    mask_dirs = [split_dir / name for name in MASK_FOLDERS if (split_dir / name).is_dir()]
    if not (split_dir / "images").is_dir() or not mask_dirs:
        missing = "mask" if (split_dir / "images").is_dir() else "images"
        raise DatasetError(f"{split_dir}: missing folder '{missing}/' "
                           f"(expected {split_dir}/images and {split_dir}/mask)")
    if len(mask_dirs) > 1:
        raise DatasetError(f"{split_dir}: both mask/ and masks/ exist; keep the one that holds the masks")
    images = list_images(split_dir / "images")
    masks = list_images(mask_dirs[0])
    pairs, no_mask, no_image = match_masks(images, masks)
    problems = []
    if no_mask:
        problems.append(f"images without a mask: {_names(images, no_mask)}")
    if no_image:
        problems.append(f"masks without an image: {_names(masks, no_image)}")
    if problems:
        raise DatasetError(f"{split_dir}: " + "; ".join(problems))
    if not images:
        raise DatasetError(f"{split_dir}: the split is empty (no {IMAGE_FORMATS} in images/)")
    return [(images[stem], pairs[stem]) for stem in sorted(images)]


def _names(paths_by_stem, stems):
    return listed([paths_by_stem[stem].name for stem in stems])


def listed(items, limit=20, separator=", "):
    """The first `limit` of `items` for a message, joined, with " and N more" for the rest."""
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return separator.join(items[:limit]) + more


def read_image(path):
    """Read an image as RGB uint8 (EXIF orientation applied); unreadable or truncated files raise DatasetError."""
    try:
        with Image.open(path) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: cannot read image ({error})") from error
    return np.asarray(as_8bit(upright, path).convert("RGB"))


def as_8bit(img, path):
    """16-bit grey images (Pillow's "I;16*" and "I" modes) scaled to 8 bits: Pillow's own conversion clips every
    value above 255 to white. Floating-point images have no agreed range: an error, not a guess."""
    if img.mode == "F":
        raise DatasetError(f"{path}: a floating-point image; save it with 8 or 16 bits per channel")
    if not img.mode.startswith("I"):
        return img
    values = np.asarray(img)
    if values.min() < 0 or values.max() > 65535:
        raise DatasetError(f"{path}: a 32-bit image with values outside 0..65535; save it with 8 or 16 bits")
    return Image.fromarray(np.round(values / 257).astype(np.uint8))


EXIF_ORIENTATION = 0x0112
ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def upright_size(img):
    """(width, height) of an opened image as read_image returns it: after its EXIF orientation (header only)."""
    width, height = img.size
    rotated = img.getexif().get(EXIF_ORIENTATION) in ROTATED_ORIENTATIONS
    return (height, width) if rotated else (width, height)


@dataclass(frozen=True)
class MaskReading:
    """A decoded mask: `foreground` bool HxW, the `kind` of encoding found, and a `warning` when ambiguous."""

    foreground: np.ndarray
    kind: str
    warning: str = None


def decode_mask(source, threshold=MASK_THRESHOLD, name=None, bird_values=None):
    """The one rule for what a bird pixel is, for every path (training, evaluation, building, checking).

    - `bird_values` given (make-dataset --mask-values, for class maps such as Pascal VOC's): the palette indices or
      grey values listed are bird, every other value is not;
    - palette images (VOC/DAVIS-2017 style): every index other than 0 is bird;
    - RGB/RGBA masks are read by their luminance, then as grey;
    - grey with at most one value besides 0 ({0, 255}, {0, 1}, {0, 38}, 16-bit {0, 65535}): that value is bird;
    - soft grey (more values): above `threshold` (scaled to 16 bits when needed) is bird. When no value is above
      it the mask reads as empty, and `warning` says so: such a mask is probably a 0..N label map.

    `source` is a path or the file's bytes; `name` names it in messages. Raises DatasetError when unreadable.
    """
    name = name or ("mask" if isinstance(source, bytes) else str(source))
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            img.load()
            if bird_values is not None:
                return class_map_reading(img, bird_values, name)
            if img.mode == "P":
                return MaskReading(np.asarray(img) != 0, "palette")
            if img.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
                img = img.convert("L")
            values = np.asarray(img)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{name}: cannot read mask ({error})") from error
    if values.ndim != 2:
        raise DatasetError(f"{name}: unsupported mask shape {values.shape}")
    distinct = np.unique(values)
    high = int(distinct[-1])
    depth = " (16-bit)" if high > 255 or values.dtype == np.uint16 else ""
    if len(distinct) <= 2 and distinct[0] == 0:
        return MaskReading(values != 0, f"binary 0/{high}{depth}" if high else "empty")
    cut = threshold * (257 if depth else 1)
    foreground = values > cut
    warning = None
    if not foreground.any():
        warning = (f"{name}: a mask of {len(distinct)} grey values, all <= {cut:g}, read as all background; "
                   "if its values are class labels, save bird pixels as 255 (or any single value) and others as 0")
    return MaskReading(foreground, f"soft, threshold {threshold}{depth}", warning)


def class_map_reading(img, bird_values, name):
    """A palette or grey class map whose `bird_values` are bird. Colour masks have no values to list: an error."""
    if img.mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
        raise DatasetError(f"{name}: a {img.mode} mask; mask values name palette indices or grey levels, so it "
                           "takes palette or greyscale masks")
    return MaskReading(np.isin(np.asarray(img), list(bird_values)),
                       "values " + ", ".join(str(value) for value in sorted(bird_values)))


def read_mask(path):
    """Read a mask with `decode_mask`: uint8 {0, 1}."""
    return decode_mask(path).foreground.astype(np.uint8)


def size_mismatch(mask_source, mask_size, image_name, image_size):
    """The one message for a mask whose (width, height) is not its image's (upright) size."""
    return (f"{mask_source}: mask is {mask_size[0]}x{mask_size[1]} but its image {Path(image_name).name} is "
            f"{image_size[0]}x{image_size[1]} (width x height)")


def read_pair(image_path, mask_path):
    """An image and its mask, checked to be the same (upright) size.

    Returns:
        (image uint8 RGB of shape (H, W, 3), mask uint8 {0, 1} of shape (H, W)); DatasetError names the file
        when either cannot be read or the sizes differ.
    """
    image, mask = read_image(image_path), read_mask(mask_path)
    if image.shape[:2] != mask.shape:
        raise DatasetError(size_mismatch(mask_path, mask.shape[::-1], image_path, image.shape[1::-1]))
    return image, mask


# ---------------------------------------------------------------- embedded dataset


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


# ---------------------------------------------------------------- augmentation


def get_validation_augmentation(height, width):
    """Resize to (height, width) and pad: deterministic, the notebook's pipeline for validation and test images
    (tests/test_notebook.py checks the two agree). Masks are resized by nearest neighbour, so they stay binary."""
    check_image_size(height, width)
    return A.Compose([
        A.Resize(height, width, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST),
        # A no-op at sizes that pass check_image_size; kept so the pipeline never feeds odd shapes.
        A.PadIfNeeded(min_height=height, min_width=width, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
    ])


PASTE_SCALE = (0.5, 1.5)  # the donor's birds are resized by a factor drawn from here


def paste_birds(image, mask, donor_image, donor_mask, rng):
    """Copy-paste augmentation (Ghiasi et al., 2021): the donor's birds, cut out by their mask, resized and pasted
    at a random place; the mask becomes the union. New bird/background pairings from the same photos.

    Args:
        image, mask: the sample, uint8 (H, W, 3) and {0, 1} (H, W).
        donor_image, donor_mask: the sample whose birds are pasted, any size (resized to the sample's first).
        rng: numpy Generator; draws the scale and the place.
    """
    height, width = mask.shape
    if donor_mask.shape != mask.shape:
        donor_image = cv2.resize(donor_image, (width, height), interpolation=cv2.INTER_LINEAR)
        donor_mask = cv2.resize(donor_mask, (width, height), interpolation=cv2.INTER_NEAREST)
    rows, cols = np.nonzero(donor_mask)
    if rows.size == 0:
        return image, mask  # a donor without birds has nothing to give
    top, left = rows.min(), cols.min()
    cut_image = donor_image[top : rows.max() + 1, left : cols.max() + 1]
    cut_mask = donor_mask[top : rows.max() + 1, left : cols.max() + 1]
    # Resize, but never past the frame: a cut-out larger than the sample is shrunk to fit.
    scale = min(rng.uniform(*PASTE_SCALE), height / cut_mask.shape[0], width / cut_mask.shape[1])
    size = (max(1, round(cut_mask.shape[1] * scale)), max(1, round(cut_mask.shape[0] * scale)))
    cut_image = cv2.resize(cut_image, size, interpolation=cv2.INTER_LINEAR)
    cut_mask = cv2.resize(cut_mask, size, interpolation=cv2.INTER_NEAREST)
    y = int(rng.integers(height - size[1] + 1))
    x = int(rng.integers(width - size[0] + 1))
    # Soft edges: a hard cut-out's edge would be a cue for "bird" that real photos do not have.
    alpha = cv2.GaussianBlur(cut_mask.astype(np.float32), (3, 3), 0)[..., None]
    region = (slice(y, y + size[1]), slice(x, x + size[0]))
    image, mask = image.copy(), mask.copy()
    image[region] = np.round(image[region] * (1 - alpha) + cut_image * alpha).astype(image.dtype)
    mask[region] |= cut_mask.astype(mask.dtype)
    return image, mask


def sample_seed(*parts):
    """A stable 32-bit seed from any parts (run seed, epoch, index), the same in every process."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


# ---------------------------------------------------------------- Dataset and Dataloader


class Dataset:
    """Image/mask pairs of one split, read from disk on access (nothing is held in memory).

    `dataset[i]` returns (image float32 HxWx3 in [0, 1], mask float32 HxWx1 in {0, 1}) after the
    augmentation; `dataset.get(i, seed)` makes the random augmentation reproducible per sample. With `copy_paste`
    p > 0, a share p of the samples also get the birds of another sample of the split pasted in (`paste_birds`).
    """

    def __init__(self, source, augmentation=None, max_images=None, copy_paste=0.0):
        pairs = find_pairs(source) if isinstance(source, (str, Path)) else list(source)
        self.pairs = pairs[:max_images] if max_images else pairs
        self.augmentation = augmentation
        self.copy_paste = check_copy_paste(copy_paste)
        self._lock = threading.Lock()  # albumentations' generators are shared state

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        return self.get(index)

    def get(self, index, seed=None):
        image, mask = self._augmented(index, seed)
        if self.copy_paste:
            rng = np.random.default_rng(None if seed is None else sample_seed(seed, "copy-paste"))
            if rng.random() < self.copy_paste:
                donor = int(rng.integers(len(self)))
                donor_seed = None if seed is None else sample_seed(seed, "donor")
                image, mask = paste_birds(image, mask, *self._augmented(donor, donor_seed), rng)
        return image.astype(np.float32) / 255.0, mask[..., None].astype(np.float32)

    def _augmented(self, index, seed):
        image, mask = read_pair(*self.pairs[index])
        if self.augmentation is not None:
            with self._lock:
                if seed is not None:
                    self.augmentation.set_random_seed(seed)
                sample = self.augmentation(image=image, mask=mask)
            image, mask = sample["image"], sample["mask"]
        return image, mask

    def names(self):
        return [image_path.name for image_path, _ in self.pairs]

    def preview_indices(self, count=3):
        """`count` indices spread over the split for a figure that shows how the model is doing: in each of
        `count` equal parts, the first image whose mask holds a bird (a bird-less image shows nothing to find),
        or the part's first image where none does. Reads masks only until each part has its image."""
        if not len(self):
            return []
        parts = np.array_split(np.arange(len(self)), min(count, len(self)))
        chosen = []
        for part in parts:
            with_bird = (int(index) for index in part if read_mask(self.pairs[index][1]).any())
            chosen.append(next(with_bird, int(part[0])))
        return chosen


class Dataloader(keras.utils.PyDataset):
    """Batches a Dataset for Keras. With `shuffle`, each epoch has its own order drawn from (seed, epoch),
    and each sample's augmentation is seeded from (seed, epoch, index): a resumed run sees the same batches."""

    def __init__(self, dataset, batch_size=1, shuffle=False, seed=0, workers=1, use_multiprocessing=False):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing)
        if len(dataset) == 0:
            raise DatasetError("cannot batch an empty dataset")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def order(self, epoch):
        order = np.arange(len(self.dataset))
        if self.shuffle:
            np.random.default_rng(sample_seed(self.seed, "order", epoch)).shuffle(order)
        return order

    def batch(self, epoch, batch_index):
        """Batch `batch_index` of epoch `epoch`: (images, masks), a pure function of its arguments."""
        indices = self.order(epoch)[batch_index * self.batch_size : (batch_index + 1) * self.batch_size]
        samples = [self.dataset.get(int(i), seed=sample_seed(self.seed, epoch, int(i))) for i in indices]
        images, masks = zip(*samples)
        return np.stack(images), np.stack(masks)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return math.ceil(len(self.dataset) / self.batch_size)

    def __getitem__(self, batch_index):
        return self.batch(self.epoch, batch_index)

    def stream(self, start_epoch=0):
        """Endless batches for `model.fit(..., steps_per_epoch=len(loader))`, from `start_epoch` on."""
        return EpochStream(self, start_epoch, workers=self.workers, use_multiprocessing=self.use_multiprocessing)


class EpochStream(keras.utils.PyDataset):
    """Batch i is batch i % n of epoch start + i // n.

    Keras announces epochs to a PyDataset at moments that do not match what tf.data has already
    prefetched, so the epoch is derived from the batch index instead: the order cannot drift.
    """

    def __init__(self, loader, start_epoch=0, **kwargs):
        super().__init__(**kwargs)
        self.loader, self.start_epoch = loader, start_epoch

    @property
    def num_batches(self):
        return None  # endless: Keras keeps one iterator across epochs

    def __getitem__(self, index):
        per_epoch = len(self.loader)
        return self.loader.batch(self.start_epoch + index // per_epoch, index % per_epoch)


def load_split(data_dir, split, height, width, max_images=None, augmentation=None):
    """The Dataset of one split, resized to (height, width) by `get_validation_augmentation` unless another
    `augmentation` is given."""
    augmentation = augmentation or get_validation_augmentation(height, width)
    return Dataset(Path(data_dir) / split, augmentation, max_images)

