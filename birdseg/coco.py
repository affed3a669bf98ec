"""COCO annotations in: one binary mask per image, the union of its annotations of the chosen categories.

What CVAT, Label Studio and Roboflow export as "COCO JSON": `images` (id, file_name, width, height), `categories`
(id, name) and `annotations` (image_id, category_id, segmentation as polygons or RLE, compressed or not, `iscrowd`).
Segmentations are decoded by pycocotools, the reference implementation. Every problem is named with the file or
annotation it comes from; images without an annotation of the chosen categories get an empty mask, counted.
"""
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from birdseg.dataset_tools import AnnotatedSamples, Sample, group_of, png_bytes
from birdseg.errors import DatasetError
from birdseg.pairs import is_image_file, listed


def read_coco(path):
    """The COCO document at `path`; DatasetError when it is not JSON or lacks images/annotations/categories."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: cannot read it as JSON ({error})") from error
    missing = [key for key in ("images", "annotations", "categories")
               if not isinstance(document, dict) or not isinstance(document.get(key), list)]
    if missing:
        raise DatasetError(f"{path}: not a COCO annotation file (no list '{missing[0]}')")
    return document


def chosen_categories(document, names, path):
    """{category id: name} of the categories named (case-insensitively), or of all categories when none is."""
    categories = {category["id"]: str(category.get("name", category["id"])) for category in document["categories"]}
    if not names:
        return categories
    wanted = {name.lower() for name in names}
    chosen = {cid: name for cid, name in categories.items() if name.lower() in wanted}
    unknown = sorted(wanted - {name.lower() for name in chosen.values()})
    if unknown:
        raise DatasetError(f"{path}: no categor(y/ies) {', '.join(unknown)}; the file has "
                           f"{', '.join(sorted(categories.values())) or 'none'}")
    return chosen


def decode_segmentation(annotation, height, width):
    """A bool (height, width) mask of one annotation's segmentation: polygons, or RLE (compressed or not).
    ValueError says what is wrong with a malformed one."""
    from pycocotools import mask as coco_mask

    segmentation = annotation.get("segmentation")
    if not segmentation and annotation.get("bbox"):
        raise ValueError("a box without a segmentation: masks need polygons or RLE (export with masks, not boxes)")
    if isinstance(segmentation, list):  # polygons: [[x1, y1, x2, y2, ...], ...]
        polygons = [polygon for polygon in segmentation if polygon]
        if not polygons or any(not isinstance(p, list) or len(p) < 6 or len(p) % 2 for p in polygons):
            raise ValueError("polygons must be lists of at least three x, y pairs")
        if not all(isinstance(value, (int, float)) for polygon in polygons for value in polygon):
            raise ValueError("polygon coordinates must be numbers")
        rles = coco_mask.frPyObjects(polygons, height, width)
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            raise ValueError(f"RLE size {segmentation['size']} is not the image's [height, width] [{height}, {width}]")
        counts = segmentation["counts"]
        if isinstance(counts, list):  # uncompressed RLE
            if sum(counts) != height * width:
                raise ValueError(f"uncompressed RLE covers {sum(counts)} pixels, the image has {height * width}")
            rles = [coco_mask.frPyObjects(segmentation, height, width)]
        elif isinstance(counts, str):  # compressed RLE
            rles = [{"size": [height, width], "counts": counts.encode()}]
        else:
            raise ValueError("RLE counts must be a list of numbers or a string")
    else:
        raise ValueError("segmentation is neither polygons nor an RLE with 'size' and 'counts'")
    try:
        return coco_mask.decode(coco_mask.merge(rles)).astype(bool)
    except Exception as error:  # noqa: BLE001  (pycocotools raises plain errors on bad RLE strings)
        raise ValueError(f"cannot decode it ({error})") from error


def samples_from_coco(annotations_path, images_dir, categories=None, group_regex=None):
    """Samples of every image in a COCO file, each with the union of its annotations of `categories` (names; all
    when None) as its mask. The masks are decoded now, so a malformed file stops before anything is written.
    Returns AnnotatedSamples; DatasetError names every problem found."""
    import re

    path, images_dir = Path(annotations_path), Path(images_dir)
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: --images folder does not exist")
    document = read_coco(path)
    chosen = chosen_categories(document, categories, path)
    images = {}
    for image in document["images"]:
        if not isinstance(image, dict) or not {"id", "file_name", "width", "height"} <= set(image):
            raise DatasetError(f"{path}: image entry {image} lacks id, file_name, width or height")
        if image["id"] in images:
            raise DatasetError(f"{path}: image id {image['id']!r} is listed twice ({images[image['id']]['file_name']} "
                               f"and {image['file_name']}): its annotations would belong to either")
        images[image["id"]] = image
    known_categories = {category["id"] for category in document["categories"]}
    annotations_of, problems = defaultdict(list), []
    for annotation in document["annotations"]:
        name = f"annotation {annotation.get('id', '?')}"
        if annotation.get("image_id") not in images:
            problems.append(f"{name} points at image id {annotation.get('image_id')!r}, which the file does not list")
        elif annotation.get("category_id") not in known_categories:
            problems.append(f"{name} ({images[annotation['image_id']]['file_name']}) has category id "
                            f"{annotation.get('category_id')!r}, which the file does not list")
        elif annotation["category_id"] in chosen:
            annotations_of[annotation["image_id"]].append(annotation)
    masks = {}  # image id -> PNG bytes: one image's array at a time, however many photos the file lists
    for image_id, image in images.items():
        mask = np.zeros((image["height"], image["width"]), bool)
        for annotation in annotations_of[image_id]:
            try:
                mask |= decode_segmentation(annotation, image["height"], image["width"])
            except ValueError as error:
                problems.append(f"annotation {annotation.get('id', '?')} ({image['file_name']}): malformed "
                                f"segmentation: {error}")
        masks[image_id] = (png_bytes(mask), bool(mask.any()))
    on_disk = {p.name: p for p in sorted(images_dir.rglob("*")) if is_image_file(p)}
    missing = sorted(image["file_name"] for image in images.values() if Path(image["file_name"]).name not in on_disk)
    if missing:
        problems.append(f"{len(missing)} image(s) named in it are not in {images_dir}: {listed(missing)}")
    if problems:
        raise DatasetError(f"{path}: " + "; ".join(problems))
    if not images:
        raise DatasetError(f"{path}: lists no images")
    pattern = re.compile(group_regex) if group_regex else None
    samples, empty, stems = [], [], set()
    for image_id, image in sorted(images.items(), key=lambda item: item[1]["file_name"]):
        image_path = on_disk[Path(image["file_name"]).name]
        if image_path.stem in stems:
            raise DatasetError(f"{path}: two images share the stem '{image_path.stem}'")
        stems.add(image_path.stem)
        png, has_bird = masks[image_id]
        if not has_bird:
            empty.append(image_path.name)
        samples.append(Sample(image_path.stem, image_path.name, image_path.read_bytes, lambda png=png: png,
                              group_of(image_path.stem, pattern), f"{path.name}: {image['file_name']}"))
    return AnnotatedSamples("COCO", samples, empty, "categories " + ", ".join(sorted(chosen.values())))
