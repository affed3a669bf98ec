"""Reading images and masks: the one rule for what a bird pixel is (`decode_mask`), used by training, evaluation,
the dataset builders and check-dataset alike.

Images become uint8 RGB, turned upright by their EXIF orientation (every size check uses that upright size too);
16-bit ones are scaled to 8 bits, not clipped. Masks in any common encoding become {0, 1}.
"""
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from birdseg.defaults import MASK_THRESHOLD
from birdseg.errors import DatasetError

try:  # phone photos (.heic): Pillow reads them through this plug-in (requirements.txt); without it they are left out
    from pillow_heif import register_heif_opener
except ImportError:
    HEIF_SUFFIXES = ()
else:
    register_heif_opener()
    HEIF_SUFFIXES = (".heic", ".heif")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif") + HEIF_SUFFIXES
IMAGE_FORMATS = "/".join(IMAGE_SUFFIXES)  # for messages


def read_image(path, notes=None):
    """Read an image as RGB uint8 (EXIF orientation applied); unreadable or truncated files raise DatasetError, and so
    does a file that changes while it is read (still being copied or written: read it again once it is whole). An
    animated GIF or WebP gives its first frame, said in `notes` (a list) where one is given."""
    before = file_state(path)
    try:
        with Image.open(path) as img:
            img.load()
            frames = getattr(img, "n_frames", 1) if notes is not None else 1  # a GIF counts its frames by reading them
            upright = ImageOps.exif_transpose(img)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: cannot read image ({error})") from error
    if file_state(path) != before:
        raise DatasetError(f"{path}: changed while it was read (still being written?); read it again once it is whole")
    if frames > 1 and notes is not None:
        notes.append(f"{path}: an animated image of {frames} frames; its first frame is used")
    return np.asarray(as_8bit(upright, path).convert("RGB"))


def file_state(path):
    """(size, modification time) of a file, to notice one that changes while it is read."""
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns


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
    if len(distinct) == 1 or (len(distinct) == 2 and distinct[0] == 0):  # a bird filling the frame has no 0
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
