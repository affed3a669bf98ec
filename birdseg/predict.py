"""Prediction of arrays: masks at each photo's own resolution, for images and dataset pairs (files, folders and
videos: `birdseg.media`).

A photo is resized to the model's input size, predicted, and the probability map is resized back to the
photo's original size before thresholding, so masks (and the metrics computed from them) are at full
resolution. A photo much larger than the model's input is predicted in overlapping tiles instead (`tiles`), so a
small bird keeps its pixels. Test-time augmentation (`tta`) averages the probabilities of the photo and its
flipped copies, each flipped back: "flips" (horizontal and vertical, the flips the training augmentation uses),
"hflip" or "none".
"""
import cv2
import numpy as np

from birdseg.defaults import PREDICT_BATCH_SIZE, THRESHOLD, TILE_CHOICES, TILES, TTA, TTA_VIEWS
from birdseg.images import read_image, read_pair
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
    # at least a pixel each way: a 100000x1 panorama scaled to the model's detail keeps its one row
    work = image if scale == 1.0 else cv2.resize(image, (max(1, round(image.shape[1] * scale)),
                                                         max(1, round(image.shape[0] * scale))),
                                                 interpolation=cv2.INTER_AREA)
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
    resized to the model's input in one batch, large ones in tiles (`tiles`: "auto", "on" or "off"). An image
    without pixels is a ValueError."""
    empty = [image.shape for image in images if not image.shape[0] or not image.shape[1]]
    if empty:
        raise ValueError(f"an image of {empty[0][1]}x{empty[0][0]} pixels (width x height): nothing to predict")
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
