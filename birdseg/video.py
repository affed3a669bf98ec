"""Videos in, videos out: every frame segmented, an overlay video of the same size, frame count and frame rate, and
(optionally) one mask PNG per frame. Frames are read, predicted and written a batch at a time, so memory does not
grow with the clip's length. Any container and codec OpenCV reads is accepted; the overlay is written as MP4."""
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from birdseg import display, plots
from birdseg.data import DatasetError
from birdseg.defaults import PREDICT_BATCH_SIZE, THRESHOLD, TTA
from birdseg.files import atomic_path

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".mts", ".3gp")
OVERLAY_SUFFIX = "_overlay.mp4"


def is_video_file(path):
    """Whether `path` is a video by its extension (any case)."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith("._")


def open_video(path):
    """An opened cv2.VideoCapture and (width, height, frames per second, frame count as the container says);
    DatasetError when OpenCV cannot read a frame of it."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DatasetError(f"{path}: cannot read video (OpenCV could not open it)")
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if width <= 0 or height <= 0:
        capture.release()
        raise DatasetError(f"{path}: cannot read video (no frame size)")
    return capture, (width, height, fps, count)


def frame_batches(capture, batch_size):
    """Yield lists of up to `batch_size` RGB frames until the video ends."""
    batch = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        batch.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_video(model, path, out_dir, name, threshold=THRESHOLD, batch_size=PREDICT_BATCH_SIZE, tta=TTA,
                  masks=False, progress=True, tiles="auto"):
    """Segment every frame of the video at `path`: `<name>_overlay.mp4` (same size, frame count and frame rate) in
    `out_dir`, and with `masks` one `<name>_masks/<name>_<frame>.png` ({0, 255}) per frame.

    Returns (overlay path, masks folder or None, frames written, share of bird pixels over the clip). The overlay is
    written under a temporary name and renamed at the end: an interrupted run leaves no half video behind.
    """
    from birdseg.predict import predict_probabilities

    capture, (width, height, fps, count) = open_video(path)
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
                for batch in frame_batches(capture, batch_size):
                    for frame, probability in zip(batch, predict_probabilities(model, batch, tta, tiles=tiles)):
                        mask = (probability > threshold).astype(np.uint8)
                        writer.write(cv2.cvtColor(plots.overlay(frame, mask), cv2.COLOR_RGB2BGR))
                        if masks_dir:
                            with atomic_path(masks_dir / f"{name}_{frames:06d}.png") as mask_tmp:
                                Image.fromarray(mask * 255).save(mask_tmp, format="PNG")
                        frames += 1
                        bird += float(mask.mean())
                    bar.update(len(batch))
            finally:
                writer.release()
            if frames == 0:
                raise DatasetError(f"{path}: cannot read video (no frame could be decoded)")
    finally:
        capture.release()
        bar.close()
    return overlay_path, masks_dir, frames, bird / frames


def sample_frames(video_path, count=3):
    """`count` RGB frames spread over a video (first, middle, last ...), for showing a clip in a figure."""
    capture, (_, _, _, total) = open_video(video_path)
    frames = []
    try:
        for index in np.linspace(0, max(total - 1, 0), count).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            if ok:
                frames.append((int(index), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
    finally:
        capture.release()
    return frames
