"""Prediction: masks at each photo's own resolution, for arrays, dataset pairs and folders of photos and videos.

A photo is resized to the model's input size, predicted, and the probability map is resized back to the
photo's original size before thresholding, so masks (and the metrics computed from them) are at full
resolution. A photo much larger than the model's input is predicted in overlapping tiles instead (`tiles`), so a
small bird keeps its pixels. Test-time augmentation (`tta`) averages the probabilities of the photo and its
flipped copies, each flipped back: "flips" (horizontal and vertical, the flips the training augmentation uses),
"hflip" or "none".
"""
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from birdseg import display, plots
from birdseg.data import IMAGE_FORMATS, DatasetError, is_image_file, is_system_file, listed, read_image, read_pair
from birdseg.defaults import PREDICT_BATCH_SIZE, THRESHOLD, TILE_CHOICES, TILES, TTA, TTA_VIEWS
from birdseg.files import atomic_path
from birdseg.model import model_image_size
from birdseg.speedups import predict_on_batch

TILE_OVERLAP = 0.25  # share of a tile its neighbours also cover: seams fall where both are weighted down
TILE_MAX_SIDE = 4096  # "on": photos longer than this are scaled down to it first: a tile pass stays minutes, not hours
# "auto": tiles show a photo at twice the detail of a whole-photo resize. A model trained on whole frames resized to
# its input loses large birds at more (the documented run's model: test IoU 0.81 whole, 0.82 at 2x, 0.70 at the
# photos' own scale; benchmarks/README.md, tile_scale.py).
TILE_MAGNIFICATION = 2


def prepare_batch(model, images):
    """Resize uint8 RGB images to the model's input size: float32 batch in [0, 1]."""
    height, width = model_image_size(model)
    resized = [cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR) for image in images]
    return np.stack(resized).astype(np.float32) / 255.0


def check_tta(tta):
    """`tta` itself, or a ValueError that names the valid values."""
    if tta not in TTA_VIEWS:
        raise ValueError(f"TTA={tta!r}: expected " + ", ".join(repr(name) for name in TTA_VIEWS))
    return tta


def predict_views(model, batch, tta):
    """The model's probabilities (batch, height, width) for a float32 batch at its input size, averaged over the
    test-time views, each flipped back."""
    views = [np.flip(np.asarray(predict_on_batch(model, np.ascontiguousarray(np.flip(batch, axes)))), axes)
             for axes in TTA_VIEWS[check_tta(tta)]]
    return np.mean(views, axis=0)[..., 0]


def wants_tiles(image, model, tiles=TILES):
    """Whether `image` is predicted in tiles: "on", "off", or "auto" (a side at least twice the model's input)."""
    if tiles not in TILE_CHOICES:
        raise ValueError(f"tiles={tiles!r}: expected " + ", ".join(repr(choice) for choice in TILE_CHOICES))
    height, width = model_image_size(model)
    return tiles == "on" or (tiles == "auto" and (image.shape[0] >= 2 * height or image.shape[1] >= 2 * width))


def tile_scale(image, model, tiles=TILES):
    """The scale `image` is tiled at. "on": its own, every pixel of a bird kept (photos beyond TILE_MAX_SIDE scaled
    down to it); "auto": TILE_MAGNIFICATION times the scale a whole-photo resize uses, at most its own."""
    own = min(1.0, TILE_MAX_SIDE / max(image.shape[:2]))
    if tiles == "on":
        return own
    height, width = model_image_size(model)
    return min(own, TILE_MAGNIFICATION * min(height / image.shape[0], width / image.shape[1]))


def tile_starts(length, tile):
    """Start offsets of tiles of `tile` pixels covering `length`, overlapping by about TILE_OVERLAP, the last one
    flush with the end."""
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1 - TILE_OVERLAP)))
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def tile_weight(height, width):
    """A tile's blending weight: 1 in its middle, falling linearly towards its edges (never to 0, so an edge of
    the photo, which only one tile covers, keeps its prediction)."""
    def ramp(size):
        distance = np.minimum(np.arange(size) + 0.5, size - np.arange(size) - 0.5) / (size * TILE_OVERLAP)
        return np.clip(distance, 0.05, 1.0).astype(np.float32)

    return np.outer(ramp(height), ramp(width))


def predict_tiled(model, image, scale=1.0, tta=TTA, batch_size=PREDICT_BATCH_SIZE):
    """The probability map (float32, the image's own height x width) of one large uint8 RGB image, scaled by
    `scale` (see `tile_scale`), predicted in overlapping tiles of the model's input size, blended with
    `tile_weight` and scaled back. Memory: the image, two float maps of the working size and one of the image's
    size, whatever the number of tiles."""
    tile_height, tile_width = model_image_size(model)
    work = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    height, width = work.shape[:2]
    padded = cv2.copyMakeBorder(work, 0, max(0, tile_height - height), 0, max(0, tile_width - width),
                                cv2.BORDER_REFLECT_101)
    total = np.zeros(padded.shape[:2], np.float32)
    weights = np.zeros(padded.shape[:2], np.float32)
    weight = tile_weight(tile_height, tile_width)
    corners = [(y, x) for y in tile_starts(padded.shape[0], tile_height) for x in tile_starts(padded.shape[1], tile_width)]
    for chunk in batched(corners, batch_size):
        batch = np.stack([padded[y : y + tile_height, x : x + tile_width] for y, x in chunk]).astype(np.float32) / 255
        for (y, x), probability in zip(chunk, predict_views(model, batch, tta)):
            total[y : y + tile_height, x : x + tile_width] += probability * weight
            weights[y : y + tile_height, x : x + tile_width] += weight
    probability = (total / weights)[:height, :width]
    del total, weights
    if scale == 1.0:
        return probability
    return cv2.resize(probability, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)


def predict_probabilities(model, images, tta=TTA, tiles=TILES):
    """Probability maps (float32, each at its image's original height x width) for uint8 RGB images: whole images
    resized to the model's input in one batch, large ones in tiles (`tiles`: "auto", "on" or "off")."""
    tiled = [wants_tiles(image, model, tiles) for image in images]
    whole = [image for image, tile in zip(images, tiled) if not tile]
    maps = iter(predict_views(model, prepare_batch(model, whole), tta) if whole else [])
    return [predict_tiled(model, image, tile_scale(image, model, tiles), tta) if tile else
            cv2.resize(next(maps), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
            for image, tile in zip(images, tiled)]


def predict_image(model, image, threshold=THRESHOLD, tta=TTA, tiles=TILES):
    """Binary mask (uint8 {0, 1}, same height and width as `image`) for one uint8 RGB image of any size."""
    return (predict_probabilities(model, [np.asarray(image)], tta, tiles)[0] > threshold).astype(np.uint8)


def batched(items, batch_size):
    """Consecutive slices of `items` of at most `batch_size`."""
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


def predict_pairs(model, pairs, batch_size=PREDICT_BATCH_SIZE, tta=TTA, tiles=TILES):
    """For (image_path, mask_path) pairs, yield (pair, image, true mask, probability map), reading and predicting
    `batch_size` images at a time: memory does not grow with the number of pairs. A pair's mask_path may be None
    (a photo without a mask): its true mask is then None."""
    for chunk in batched(list(pairs), batch_size):
        loaded = [read_pair(*pair) if pair[1] is not None else (read_image(pair[0]), None) for pair in chunk]
        probabilities = predict_probabilities(model, [image for image, _ in loaded], tta, tiles)
        for pair, (image, truth), probability in zip(chunk, loaded, probabilities):
            yield pair, image, truth, probability


# ---------------------------------------------------------------- folders of photos and videos


def media_files(path):
    """The photo or video at `path`, or the photos and videos in the folder `path` (sorted), naming the other files
    it leaves out; FileNotFoundError when neither."""
    from birdseg.video import VIDEO_SUFFIXES, is_video_file

    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    entries = sorted(path.iterdir())
    found = [p for p in entries if is_image_file(p) or is_video_file(p)]
    taken = set(found)
    other = [p.name for p in entries if p not in taken and p.is_file() and not is_system_file(p)]
    if other:
        print(f"{path}: {len(other)} file(s) left out, not a photo or video this reads ({IMAGE_FORMATS}, "
              f"{'/'.join(VIDEO_SUFFIXES)}): {listed(other, 10)}")
    return found


def output_names(paths):
    """A distinct output name per input: its stem, or `<stem>_<ext>` where stems collide (a.jpg and a.png)."""
    stems = Counter(path.stem for path in paths)
    names = [path.stem if stems[path.stem] == 1 else f"{path.stem}_{path.suffix.lstrip('.').lower()}" for path in paths]
    if len(set(names)) != len(names):
        repeated = sorted(str(path) for path, name in zip(paths, names) if names.count(name) > 1)
        raise ValueError(f"these inputs would write the same output files: {', '.join(repeated)}")
    return dict(zip(paths, names))


class Prediction(NamedTuple):
    """What `predict_files` wrote for one photo or video."""

    photo: Path
    mask: Path  # a video's: the folder of its frames' masks (None without --masks)
    overlay: Path
    bird_share: float  # of the photo's pixels (a video: of all its frames')


def photo_outputs(out_dir, name):
    """(mask, overlay) paths of a photo's results."""
    return out_dir / f"{name}_mask.png", out_dir / f"{name}_overlay.jpg"


def predict_files(model, inputs, out_dir, threshold=THRESHOLD, batch_size=PREDICT_BATCH_SIZE, progress=True,
                  tta=TTA, tiles=TILES, video_masks=False, overwrite=False):
    """Segment photos and videos into `out_dir`: per photo `<name>_mask.png` ({0, 255}) and `<name>_overlay.jpg`,
    per video `<name>_overlay.mp4` (and `<name>_masks/` with `video_masks`); the name is the file's stem, or
    `<stem>_<ext>` when two inputs share a stem, so no result overwrites another.

    Streams: `batch_size` photos are read and predicted at a time. Resumable: an input whose outputs exist is
    skipped (each output is written under a temporary name and renamed, so existing ones are whole) unless
    `overwrite`. Unreadable files are skipped with one line each. Returns (written, skipped_messages, done_before):
    a Prediction per input segmented now, and the number of inputs whose outputs were already there.
    """
    from birdseg.video import OVERLAY_SUFFIX, is_video_file, predict_video

    names = output_names(list(inputs))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def done(path):
        outputs = ([out_dir / f"{names[path]}{OVERLAY_SUFFIX}"] if is_video_file(path)
                   else photo_outputs(out_dir, names[path]))
        return not overwrite and all(output.is_file() for output in outputs)

    todo = [path for path in inputs if not done(path)]
    written, skipped = [], []
    for video in [path for path in todo if is_video_file(path)]:
        try:
            overlay, masks, _, share = predict_video(model, video, out_dir, names[video], threshold, batch_size, tta,
                                                     masks=video_masks, progress=progress, tiles=tiles)
            written.append(Prediction(video, masks, overlay, share))
        except DatasetError as error:
            skipped.append(str(error))
            print(f"skipped {error}")
    photos = [path for path in todo if not is_video_file(path)]
    bar = display.progress_bar(len(photos), "predict", "img", enabled=progress)
    for chunk in batched(photos, batch_size):
        loaded = []
        for path in chunk:
            try:
                loaded.append((path, read_image(path)))
            except DatasetError as error:
                skipped.append(str(error))
                print(f"skipped {error}")
        if loaded:
            probabilities = predict_probabilities(model, [image for _, image in loaded], tta, tiles)
            for (path, image), prob in zip(loaded, probabilities):
                mask = (prob > threshold).astype(np.uint8)
                mask_path, overlay_path = photo_outputs(out_dir, names[path])
                with atomic_path(mask_path) as tmp:
                    Image.fromarray(mask * 255).save(tmp, format="PNG")
                with atomic_path(overlay_path) as tmp:
                    Image.fromarray(plots.overlay(image, mask)).save(tmp, format="JPEG", quality=90)
                written.append(Prediction(path, mask_path, overlay_path, float(mask.mean())))
        bar.update(len(chunk))
    bar.close()
    return written, skipped, len(inputs) - len(todo)
