"""LabelMe annotations in: one binary mask per photo, the union of its region shapes of the chosen labels.

LabelMe (and the tools that write its format, such as AnyLabeling) saves one JSON file per photo: `imagePath`
(relative to the JSON file), `imageData` (the photo itself in base64, or null), `imageHeight`, `imageWidth` and
`shapes`, each with a `label`, a `shape_type` and `points` in pixels; a "mask" shape also holds a base64 PNG of its
box. Regions are drawn as LabelMe's own `shape_to_mask` draws them (Pillow, outline included), cut at the photo's
edge; a region wholly outside the photo is an error. Lines and points mark no area: they are counted, not drawn.
Every problem is named with its file and shape.
"""
import base64
import binascii
import io
import json
import math
import re
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from birdseg.dataset_tools import AnnotatedSamples, Sample, group_of, png_bytes
from birdseg.errors import DatasetError
from birdseg.images import upright_size
from birdseg.pairs import listed

REGION_SHAPES = ("polygon", "rectangle", "circle", "mask")
MARK_SHAPES = ("line", "linestrip", "point", "points")  # no area: not bird pixels


def read_labelme(path):
    """The LabelMe document at `path`; DatasetError when it is not JSON or has no list of shapes."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: cannot read it as JSON ({error})") from error
    if not isinstance(document, dict) or not isinstance(document.get("shapes"), list):
        raise DatasetError(f"{path}: not a LabelMe file (no list 'shapes')")
    return document


def shape_points(shape):
    """A shape's points as an (N, 2) float array; ValueError when they are not pairs of numbers."""
    try:
        points = np.asarray(shape.get("points"), dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError("points must be [x, y] pairs of numbers") from error
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise ValueError("points must be [x, y] pairs of numbers")
    return points


def draw_region(shape, height, width):
    """A bool (height, width) mask of one region shape; ValueError says what is wrong with a malformed one."""
    kind, points = shape.get("shape_type") or "polygon", shape_points(shape)
    needed = 3 if kind == "polygon" else 2
    if len(points) < needed or (kind != "polygon" and len(points) != 2):
        raise ValueError(f"a {kind} needs {'at least 3' if kind == 'polygon' else 'exactly 2'} points, "
                         f"it has {len(points)}")
    if kind == "mask":
        return place_box_mask(shape.get("mask"), points, height, width)
    canvas = Image.new("1", (width, height))
    draw = ImageDraw.Draw(canvas)  # LabelMe draws outline=1, fill=1: Pillow's fill covers the outline's pixels
    if kind == "polygon":
        draw.polygon([tuple(point) for point in points], fill=True)
    elif kind == "rectangle":  # two opposite corners, in the order they were dragged
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        draw.rectangle([x0, y0, x1, y1], fill=True)
    else:  # circle: the centre and a point on the circle
        (cx, cy), (px, py) = points
        radius = math.hypot(px - cx, py - cy)
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=True)
    return np.asarray(canvas)


def place_box_mask(encoded, corners, height, width):
    """A "mask" shape: its base64 PNG covers the box from its first corner; parts outside the photo are cut."""
    if not isinstance(encoded, str):
        raise ValueError("a mask shape needs its 'mask' (a base64 PNG)")
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as img:  # line breaks and stray characters skipped
            box = np.asarray(img.convert("L")) > 0
    except (binascii.Error, OSError, ValueError) as error:
        raise ValueError(f"its 'mask' is not a base64 PNG ({error})") from error
    x0, y0 = (int(value) for value in corners.min(axis=0))
    mask = np.zeros((height, width), bool)
    top, left = max(y0, 0), max(x0, 0)
    bottom, right = min(y0 + box.shape[0], height), min(x0 + box.shape[1], width)
    if bottom > top and right > left:
        mask[top:bottom, left:right] = box[top - y0:bottom - y0, left - x0:right - x0]
    return mask


def photo_of(path, document):
    """(file name, a reader of its bytes, (width, height)) of the photo a LabelMe file annotates: the file at
    `imagePath`, else the file's own `imageData` (read again when written, so no photo is held in memory)."""
    image_path = str(document.get("imagePath") or "").replace("\\", "/")  # written on Windows
    name = Path(image_path).name or f"{path.stem}.png"
    # where imagePath points from the JSON file, else beside it (a path from the labeller's machine)
    on_disk = next((c for c in (path.parent / image_path, path.parent / name) if image_path and c.is_file()),
                   path.parent / image_path)
    if on_disk.is_file():
        reader = on_disk.read_bytes
        source = on_disk
    elif isinstance(document.get("imageData"), str):
        reader = partial(embedded_photo, path)
        source = io.BytesIO(embedded_photo(path, document))
    else:
        raise DatasetError(f"{path}: its photo {on_disk} does not exist and the file holds no imageData")
    try:
        with Image.open(source) as img:
            return name, reader, upright_size(img)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: cannot read its photo {name} ({error})") from error


def embedded_photo(path, document=None):
    """The photo a LabelMe file holds in its imageData (the file read again without `document`)."""
    document = document or read_labelme(path)
    try:
        return base64.b64decode(document["imageData"])
    except binascii.Error as error:
        raise DatasetError(f"{path}: its imageData is not base64 ({error})") from error


def samples_from_labelme(folder, labels=None, group_regex=None):
    """Samples of every LabelMe file under `folder`, each mask the union of its region shapes whose label is in
    `labels` (any case; every label when None). Masks are drawn now (kept as PNG bytes), so a malformed file stops
    before anything is written. Returns AnnotatedSamples; DatasetError names every problem found."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: --labelme folder does not exist")
    paths = sorted(folder.rglob("*.json"))
    if not paths:
        raise DatasetError(f"{folder}: no LabelMe .json files in it")
    wanted = {label.lower() for label in labels} if labels else None
    pattern = re.compile(group_regex) if group_regex else None
    samples, empty, problems, found, ignored, stems = [], [], [], set(), Counter(), {}
    for path in paths:
        document = read_labelme(path)
        found |= {str(shape["label"]) for shape in document["shapes"] if shape.get("label")}
        try:
            name, reader, (width, height) = photo_of(path, document)
        except DatasetError as error:
            problems.append(str(error))
            continue
        if (document.get("imageHeight"), document.get("imageWidth")) not in ((None, None), (height, width)):
            problems.append(f"{path}: says the photo is {document.get('imageWidth')}x{document.get('imageHeight')}, "
                            f"{name} is {width}x{height} (width x height)")
            continue
        mask = np.zeros((height, width), bool)
        for number, shape in enumerate(document["shapes"], 1):
            kind = shape.get("shape_type") or "polygon"
            if wanted is not None and str(shape.get("label", "")).lower() not in wanted:
                continue
            if kind in MARK_SHAPES:
                ignored[kind] += 1
            elif kind not in REGION_SHAPES:
                problems.append(f"{path}: shape {number} has shape_type {kind!r}, not one of "
                                f"{', '.join(REGION_SHAPES + MARK_SHAPES)}")
            else:
                try:
                    region = draw_region(shape, height, width)
                    if not region.any():
                        raise ValueError(f"it lies wholly outside the {width}x{height} photo")
                    mask |= region
                except ValueError as error:
                    problems.append(f"{path}: shape {number} ({shape.get('label')!r}, {kind}): {error}")
        stem = Path(name).stem
        if stem in stems:
            problems.append(f"{path} and {stems[stem]} both annotate a photo with the stem '{stem}'")
            continue
        stems[stem] = path
        if not mask.any():
            empty.append(name)
        samples.append(Sample(stem, name, reader, lambda png=png_bytes(mask): png, group_of(stem, pattern), str(path)))
    unknown = sorted(wanted - {label.lower() for label in found}) if wanted else []
    if unknown:
        problems.insert(0, f"{folder}: no shape labelled {', '.join(unknown)}; the files have "
                           f"{', '.join(sorted(found)) or 'no shapes'}")
    if problems:
        raise DatasetError(listed(problems, separator="; "))
    chosen = sorted(label for label in found if wanted is None or label.lower() in wanted)
    marks = ", ".join(f"{count} {kind}" for kind, count in sorted(ignored.items()))
    return AnnotatedSamples("LabelMe", samples, empty, "labels " + ", ".join(chosen),
                            f"shapes without an area, not drawn: {marks}" if marks else "")
