"""Reading videos: which files are videos, opening one with its size and frame rate, its frames a batch at a time
(so memory does not grow with the clip's length) and a few frames spread over it. Any container and codec OpenCV
reads is accepted; `birdseg.media` segments every frame and writes the overlay as MP4."""
import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from birdseg.errors import DatasetError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".mts", ".3gp")
OVERLAY_SUFFIX = "_overlay.mp4"
FALLBACK_FPS = 25.0  # an overlay's frame rate where the video states none (OpenCV's own assumption)


def is_video_file(path):
    """Whether `path` is a video by its extension (any case)."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith("._")


def open_video(path):
    """An opened cv2.VideoCapture and (width, height, frames per second (0 when the file states none), frame count as
    the container says (0 when unknown)); DatasetError says why a file cannot be read as a video."""
    if Path(path).stat().st_size == 0:
        raise DatasetError(f"{path}: cannot read video (the file is empty)")
    still = still_image_format(path)
    if still:
        raise DatasetError(f"{path}: a {still} still image, not a video; give it an image extension to segment it "
                           "as a photo")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DatasetError(f"{path}: cannot read video (OpenCV could not open it: truncated, not a video, or a codec "
                           "it lacks)")
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if math.isfinite(fps) and fps > 0 else 0.0
    count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)  # negative where the container has no count
    if width <= 0 or height <= 0:
        capture.release()
        raise DatasetError(f"{path}: cannot read video (no frame size)")
    return capture, (width, height, fps, count)


def still_image_format(path):
    """The format of a still image saved under a video's extension (OpenCV reads one as a one-frame clip), else
    None. Pillow reads only the header; its MPEG plug-in names real MPEG videos, which are not stills."""
    try:
        with Image.open(path) as img:
            return None if img.format == "MPEG" else img.format
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


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
