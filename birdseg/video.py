"""Reading videos: which files are videos, opening one with its size and frame rate, its frames a batch at a time
(so memory does not grow with the clip's length) and a few frames spread over it. Any container and codec OpenCV
reads is accepted; `birdseg.media` segments every frame and writes the overlay as MP4."""
from pathlib import Path

import cv2
import numpy as np

from birdseg.errors import DatasetError

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
