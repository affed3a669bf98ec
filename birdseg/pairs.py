"""Finding a split's image/mask pairs on disk.

Layout read here (the same as `birds_splitted.zip`):

    <root>/{train,val,test}/images/<stem>.jpg|.jpeg|.png|.bmp|.tif|.tiff|.webp|.heic|.heif
    <root>/{train,val,test}/mask/<stem>.png|...  (any of those formats; <stem>_mask.png too; or masks/)
"""
from pathlib import Path

from birdseg.errors import DatasetError
from birdseg.images import IMAGE_FORMATS, IMAGE_SUFFIXES

# Files that file managers and OSes drop into folders; never data.
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
SPLITS = ("train", "val", "test")
MASK_FOLDERS = ("mask", "masks")  # a split's masks: make-dataset writes the first
MASK_SUFFIXES = ("_mask", "-mask", ".mask", "_seg", "-seg")  # besides its own stem, what image x's mask may be named


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
