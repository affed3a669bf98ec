"""Videos in, videos out: the overlay video keeps the clip's size, frame count and frame rate; masks per frame."""
import cv2
import numpy as np
import pytest
from PIL import Image
from test_predict import RedModel

from birdseg import media, video
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


# ---------------------------------------------------------------- bad videos


def write_avi(path, frames=20, fps=FPS):
    """An MJPEG AVI of reddish noise (each frame kilobytes): its frames can be read one by one up to where a file
    is cut."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    noise = np.random.default_rng(0).integers(0, 40, (frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for frame in noise:
        writer.write(frame + np.array([0, 0, 210], np.uint8))  # red in BGR
    writer.release()
    return path


@pytest.mark.parametrize("make,message", [
    (lambda path: path.write_bytes(b""), "cannot read video (the file is empty)"),
    (lambda path: path.write_bytes(b"\x00\x00\x00\x18ftypmp42 cut before any frame"), "cannot read video (OpenCV could not open it"),
    (lambda path: cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT)).release(),
     "cannot read video (no frame could be decoded: it holds none"),
    (lambda path: path.write_bytes(write_avi(path.parent.parent / "source.avi").read_bytes().replace(b"MJPG", b"ZZZZ")),
     "cannot read video (OpenCV could not open it: truncated, not a video, or a codec it lacks)"),
    (lambda path: Image.new("RGB", (WIDTH, HEIGHT)).save(path, format="JPEG"),
     "a JPEG still image, not a video; give it an image extension to segment it as a photo"),
])
def test_a_bad_video_is_skipped_by_name_and_the_rest_segmented(tmp_path, clip, capsys, make, message):
    folder = tmp_path / "in"
    folder.mkdir()
    bad = folder / "bad.avi" if "frame could be decoded" in message else folder / "bad.mp4"
    make(bad)
    (folder / "good.mp4").write_bytes(clip.read_bytes())
    written, skipped, _ = media.predict_files(RedModel(), media.media_files(folder), tmp_path / "out", progress=False)
    assert [p.photo.name for p in written] == ["good.mp4"]
    assert len(skipped) == 1 and f"{bad.name}: {message}" in skipped[0], skipped
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["good_overlay.mp4"]


def test_a_video_cut_in_the_middle_keeps_the_frames_read_and_says_so(tmp_path, capsys):
    whole = write_avi(tmp_path / "whole.avi")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    overlay, masks, frames, share = media.predict_video(RedModel(), cut, tmp_path / "out", "cut", masks=True,
                                                        progress=False)
    assert 0 < frames < 20 and share > 0.9 and len(list(masks.iterdir())) == frames
    assert f"cut.avi: ends after {frames} of the 20 frames its header lists (truncated?)" in capsys.readouterr().out
    capture, (_, _, _, count) = open_video(overlay)
    capture.release()
    assert count == frames


def test_a_video_without_a_frame_rate_is_written_at_the_fallback_and_says_so(tmp_path, clip, capsys, monkeypatch):
    opencv_capture = cv2.VideoCapture

    class NoFrameRate:  # what OpenCV reports for a container that states none
        def __init__(self, *args):
            self.capture = opencv_capture(*args)

        def get(self, prop):
            return 0.0 if prop == cv2.CAP_PROP_FPS else self.capture.get(prop)

        def __getattr__(self, name):
            return getattr(self.capture, name)

    monkeypatch.setattr(cv2, "VideoCapture", NoFrameRate)
    overlay, _, frames, _ = media.predict_video(RedModel(), clip, tmp_path, "clip", progress=False)
    monkeypatch.undo()
    assert "clip.mp4: states no frame rate; its overlay is written at 25 frames/s" in capsys.readouterr().out
    capture, (_, _, fps, count) = open_video(overlay)
    capture.release()
    assert (fps, count, frames) == (video.FALLBACK_FPS, FRAMES, FRAMES)
