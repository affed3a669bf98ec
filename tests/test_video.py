"""Videos in, videos out: the overlay video keeps the clip's size, frame count and frame rate; masks per frame."""
import cv2
import numpy as np
import pytest
from PIL import Image

from birdseg.cli import main
from birdseg.video import open_video, sample_frames

WIDTH, HEIGHT, FPS, FRAMES = 100, 70, 12.0, 11  # odd sizes on purpose


@pytest.fixture
def clip(tmp_path):
    """A short MP4 written with OpenCV: a dark bird crossing a light sky."""
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for frame_index in range(FRAMES):
        frame = np.full((HEIGHT, WIDTH, 3), (230, 200, 160), np.uint8)
        cv2.ellipse(frame, (10 + 7 * frame_index, 35), (9, 4), 0, 0, 360, (30, 30, 30), -1)
        writer.write(frame)
    writer.release()
    return path


def test_video_in_overlay_video_out_with_a_mask_per_frame(run_dir, clip, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", "--model", str(run_dir), "--input", str(clip), "--out", str(out), "--masks",
                 "--batch-size", "4"]) == 0
    printed = capsys.readouterr()
    assert "1 video(s) segmented" in printed.out
    assert "frame/s" in printed.out + printed.err  # the progress bar counts frames per second
    capture, (width, height, fps, count) = open_video(out / "clip_overlay.mp4")
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert (width, height, fps, frames) == (WIDTH, HEIGHT, FPS, FRAMES)
    masks = sorted((out / "clip_masks").iterdir())
    assert [path.name for path in masks] == [f"clip_{index:06d}.png" for index in range(FRAMES)]
    for path in masks:
        mask = np.asarray(Image.open(path))
        assert mask.shape == (HEIGHT, WIDTH) and set(np.unique(mask)) <= {0, 255}
    assert not list(out.glob(".tmp-*"))


def test_a_broken_video_is_skipped_naming_it(run_dir, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.mp4").write_bytes(b"\x00\x00\x00 not a video")
    assert main(["predict", "--model", str(run_dir), "--input", str(tmp_path / "in"), "--out",
                 str(tmp_path / "out"), "--quiet"]) == 1
    assert "broken.mp4: cannot read video" in capsys.readouterr().out
    assert not (tmp_path / "out" / "broken_overlay.mp4").exists()


def test_sample_frames_spread_over_the_clip(clip):
    frames = sample_frames(clip, 3)
    assert [index for index, _ in frames] == [0, FRAMES // 2, FRAMES - 1]
    assert frames[0][1].shape == (HEIGHT, WIDTH, 3)
