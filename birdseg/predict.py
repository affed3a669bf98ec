"""Prediction: masks at each photo's own resolution, for arrays, dataset pairs and folders of photos.

A photo is resized to the model's input size, predicted, and the probability map is resized back to the
photo's original size before thresholding, so masks (and the metrics computed from them) are at full
resolution. Test-time augmentation (`tta`) averages the probabilities of the photo and its flipped copies, each
flipped back: "flips" (horizontal and vertical, the flips the training augmentation uses), "hflip" or "none".
"""
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from birdseg import plots
from birdseg.data import DatasetError, is_image_file, read_image, read_pair
from birdseg.defaults import PREDICT_BATCH_SIZE, THRESHOLD, TTA, TTA_VIEWS
from birdseg.files import atomic_path
from birdseg.model import model_image_size


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


def predict_probabilities(model, images, tta=TTA):
    """Probability maps (float32, each at its image's original height x width) for uint8 RGB images."""
    batch = prepare_batch(model, images)
    views = [
        np.flip(np.asarray(model.predict_on_batch(np.ascontiguousarray(np.flip(batch, axes)))), axes)
        for axes in TTA_VIEWS[check_tta(tta)]
    ]
    probabilities = np.mean(views, axis=0)[..., 0]
    return [
        cv2.resize(prob, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        for prob, image in zip(probabilities, images)
    ]


def predict_image(model, image, threshold=THRESHOLD, tta=TTA):
    """Binary mask (uint8 {0, 1}, same height and width as `image`) for one uint8 RGB image of any size."""
    return (predict_probabilities(model, [np.asarray(image)], tta)[0] > threshold).astype(np.uint8)


def batched(items, batch_size):
    """Consecutive slices of `items` of at most `batch_size`."""
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


def predict_pairs(model, pairs, batch_size=PREDICT_BATCH_SIZE, tta=TTA):
    """For (image_path, mask_path) pairs, yield (pair, image, true mask, probability map), reading and predicting
    `batch_size` images at a time: memory does not grow with the number of pairs."""
    for chunk in batched(list(pairs), batch_size):
        loaded = [read_pair(*pair) for pair in chunk]
        probabilities = predict_probabilities(model, [image for image, _ in loaded], tta)
        for pair, (image, truth), probability in zip(chunk, loaded, probabilities):
            yield pair, image, truth, probability


# ---------------------------------------------------------------- a folder of photos


def image_files(path):
    """The photo at `path`, or the images in the folder `path` (sorted); FileNotFoundError when neither."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if is_image_file(p))
    raise FileNotFoundError(f"{path}: no such file or folder")


def output_names(paths):
    """A distinct output name per input: its stem, or `<stem>_<ext>` where stems collide (a.jpg and a.png)."""
    stems = Counter(path.stem for path in paths)
    names = [path.stem if stems[path.stem] == 1 else f"{path.stem}_{path.suffix.lstrip('.').lower()}" for path in paths]
    if len(set(names)) != len(names):
        repeated = sorted(str(path) for path, name in zip(paths, names) if names.count(name) > 1)
        raise ValueError(f"these inputs would write the same output files: {', '.join(repeated)}")
    return dict(zip(paths, names))


def predict_files(model, inputs, out_dir, threshold=THRESHOLD, batch_size=PREDICT_BATCH_SIZE, progress=True,
                  tta=TTA):
    """Write `<name>_mask.png` ({0, 255}) and `<name>_overlay.jpg` for every readable image; the name is the
    image's stem, or `<stem>_<ext>` when two inputs share a stem, so no result overwrites another.

    Unreadable files are skipped with one line each. Returns (written_names, skipped_messages).
    """
    names = output_names(list(inputs))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    bar = tqdm(total=len(inputs), desc="predict", unit="img", disable=not progress)
    for chunk in batched(list(inputs), batch_size):
        loaded = []
        for path in chunk:
            try:
                loaded.append((path, read_image(path)))
            except DatasetError as error:
                skipped.append(str(error))
                print(f"skipped {error}")
        if loaded:
            probabilities = predict_probabilities(model, [image for _, image in loaded], tta)
            for (path, image), prob in zip(loaded, probabilities):
                mask = (prob > threshold).astype(np.uint8)
                with atomic_path(out_dir / f"{names[path]}_mask.png") as tmp:
                    Image.fromarray(mask * 255).save(tmp, format="PNG")
                with atomic_path(out_dir / f"{names[path]}_overlay.jpg") as tmp:
                    Image.fromarray(plots.overlay(image, mask)).save(tmp, format="JPEG", quality=90)
                written.append(names[path])
        bar.update(len(chunk))
    bar.close()
    return written, skipped
