"""Photos, folders and videos in, masks and overlays out: what `predict` does for files, above the array
prediction of `birdseg.predict` (TTA, tiles) and the video reading and writing of `birdseg.video`.

Every output is written under a temporary name and renamed, so an interrupted run leaves only whole files, and a
rerun into the same folder goes on where it stopped.
"""
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from birdseg import display, plots
from birdseg.defaults import PREDICT_BATCH_SIZE, THRESHOLD, TILES, TTA
from birdseg.errors import DatasetError
from birdseg.files import atomic_path
from birdseg.images import IMAGE_FORMATS, read_image
from birdseg.pairs import is_image_file, is_system_file, listed
from birdseg.pipeline import WriteBehind, read_ahead
from birdseg.predict import batched, predict_probabilities
from birdseg.video import FALLBACK_FPS, OVERLAY_SUFFIX, VIDEO_SUFFIXES, frame_batches, is_video_file, open_video

JPEG_MAX_SIDE = 65500  # pixels: the longest side libjpeg writes


def media_files(path):
    """The photo or video at `path`, or the photos and videos in the folder `path` (sorted), naming the other files
    it leaves out; FileNotFoundError when neither."""
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
    with read_ahead(map(read_photos, batched(photos, batch_size))) as chunks, WriteBehind() as writing:
        for chunk, loaded, errors, notes in chunks:
            for error in errors:
                skipped.append(str(error))
                print(f"skipped {error}")
            for note in notes:
                print(note)
            if loaded:
                probabilities = predict_probabilities(model, [image for _, image in loaded], tta, tiles)
                results = []
                for (path, image), prob in zip(loaded, probabilities):
                    mask = (prob > threshold).astype(np.uint8)
                    if max(image.shape[:2]) > JPEG_MAX_SIDE:
                        print(f"{path}: longer than a JPEG may be ({JPEG_MAX_SIDE} pixels): its overlay is scaled "
                              "down to fit, its mask is full size")
                    mask_path, overlay_path = photo_outputs(out_dir, names[path])
                    results.append((image, mask, mask_path, overlay_path))
                    written.append(Prediction(path, mask_path, overlay_path, float(mask.mean())))
                writing.submit(write_photo_results, results)
            bar.update(len(chunk))
    bar.close()
    return written, skipped, len(inputs) - len(todo)


def read_photos(paths):
    """(paths, [(path, image)] of those that could be read, [DatasetError] of those that could not, notes on those
    read with a fallback (an animated image's first frame))."""
    loaded, errors, notes = [], [], []
    for path in paths:
        try:
            loaded.append((path, read_image(path, notes)))
        except DatasetError as error:
            errors.append(error)
    return paths, loaded, errors, notes


def write_mask(path, mask):
    """A {0, 1} mask as a {0, 255} PNG, written whole or not at all."""
    with atomic_path(path) as tmp:
        Image.fromarray(mask * 255).save(tmp, format="PNG")


def write_photo_results(results):
    """Each photo's mask PNG and overlay JPEG, each written whole or not at all; an overlay longer than a JPEG may
    be is scaled down to fit."""
    for image, mask, mask_path, overlay_path in results:
        write_mask(mask_path, mask)
        overlay = Image.fromarray(plots.overlay(image, mask))
        if max(overlay.size) > JPEG_MAX_SIDE:
            scale = JPEG_MAX_SIDE / max(overlay.size)
            overlay = overlay.resize([max(1, round(side * scale)) for side in overlay.size], Image.Resampling.BOX)
        with atomic_path(overlay_path) as tmp:
            overlay.save(tmp, format="JPEG", quality=90)


def predict_video(model, path, out_dir, name, threshold=THRESHOLD, batch_size=PREDICT_BATCH_SIZE, tta=TTA,
                  masks=False, progress=True, tiles=TILES):
    """Segment every frame of the video at `path`: `<name>_overlay.mp4` (same size, frame count and frame rate) in
    `out_dir`, and with `masks` one `<name>_masks/<name>_<frame>.png` ({0, 255}) per frame.

    Returns (overlay path, masks folder or None, frames written, share of bird pixels over the clip). The overlay is
    written under a temporary name and renamed at the end: an interrupted run leaves no half video behind. A video
    that states no frame rate gets FALLBACK_FPS, one that ends before the frames its header lists keeps those read;
    each is said.
    """
    capture, (width, height, fps, count) = open_video(path)
    if not fps:
        print(f"{path}: states no frame rate; its overlay is written at {FALLBACK_FPS:g} frames/s")
        fps = FALLBACK_FPS
    out_dir = Path(out_dir)
    overlay_path = out_dir / f"{name}{OVERLAY_SUFFIX}"
    masks_dir = out_dir / f"{name}_masks" if masks else None
    if masks_dir:
        masks_dir.mkdir(parents=True, exist_ok=True)
    frames, bird = 0, 0.0
    bar = display.progress_bar(count or None, f"video {Path(path).name}", "frame", enabled=progress)
    try:
        with atomic_path(overlay_path) as tmp:
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
            if not writer.isOpened():
                raise DatasetError(f"{overlay_path}: OpenCV cannot write an MP4 video here")
            try:
                with read_ahead(frame_batches(capture, batch_size)) as batches, WriteBehind() as writing:
                    for batch in batches:
                        frame_masks = [(probability > threshold).astype(np.uint8)
                                       for probability in predict_probabilities(model, batch, tta, tiles=tiles)]
                        mask_paths = [masks_dir / f"{name}_{index:06d}.png" if masks_dir else None
                                      for index in range(frames, frames + len(batch))]
                        writing.submit(write_frame_results, writer, batch, frame_masks, mask_paths)
                        frames += len(batch)
                        bird += sum(float(mask.mean()) for mask in frame_masks)
                        bar.update(len(batch))
            finally:
                writer.release()
            if frames == 0:
                raise DatasetError(f"{path}: cannot read video (no frame could be decoded: it holds none, or a codec "
                                   "OpenCV lacks)")
    finally:
        capture.release()
        bar.close()
    if frames < count:
        print(f"{path}: ends after {frames} of the {count} frames its header lists (truncated?); the overlay holds "
              f"the {frames} read")
    return overlay_path, masks_dir, frames, bird / frames


def write_frame_results(writer, frames, masks, mask_paths):
    """Frames' overlays onto the video `writer`, in order, and each mask PNG where a path is given."""
    for frame, mask, mask_path in zip(frames, masks, mask_paths):
        writer.write(cv2.cvtColor(plots.overlay(frame, mask), cv2.COLOR_RGB2BGR))
        if mask_path:
            write_mask(mask_path, mask)
