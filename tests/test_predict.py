"""Prediction at each photo's own size, and the predict command, on the model trained by the tiny notebook run."""
import numpy as np
import pytest
from PIL import Image

from birdseg import media, predict
from birdseg.cli import main
from birdseg.images import read_image
from birdseg.pairs import find_pairs


def test_predict_image_any_size(trained_model, tiny_dataset):
    for image_path, _ in find_pairs(tiny_dataset / "test"):
        image = read_image(image_path)
        mask = predict.predict_image(trained_model, image)
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    big = np.zeros((1000, 1500, 3), np.uint8)
    assert predict.predict_image(trained_model, big).shape == (1000, 1500)


def test_predict_cli_writes_masks_and_skips_unreadable(run_dir, tiny_dataset, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for image_path, _ in find_pairs(tiny_dataset / "test"):
        (photos / image_path.name).write_bytes(image_path.read_bytes())
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (photos / "notes.txt").write_text("not an image")
    out = tmp_path / "masks"
    assert main(["predict", "--model", str(run_dir), "--input", str(photos), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "skipped" in printed and "broken.jpg: cannot read image" in printed
    assert "3 photo(s) and 0 video(s) segmented into" in printed and "1 unreadable file(s) skipped" in printed
    for image_path, _ in find_pairs(tiny_dataset / "test"):
        mask = np.asarray(Image.open(out / f"{image_path.stem}_mask.png"))
        assert mask.shape == read_image(image_path).shape[:2] and set(np.unique(mask)) <= {0, 255}
        assert (out / f"{image_path.stem}_overlay.jpg").stat().st_size > 0


def test_predict_same_stem_two_formats_writes_both(run_dir, tiny_dataset, tmp_path):
    image_path = find_pairs(tiny_dataset / "test")[0][0]
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(image_path).save(photos / "a.jpg")
    Image.open(image_path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photos / "a.png")
    out = tmp_path / "masks"
    assert main(["predict", "--model", str(run_dir), "--input", str(photos), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_jpg_mask.png", "a_jpg_overlay.jpg", "a_png_mask.png",
                                                     "a_png_overlay.jpg"]


def test_predict_reads_every_supported_format_and_16_bit_photos(run_dir, tiny_dataset, tmp_path, capsys):
    image = read_image(find_pairs(tiny_dataset / "test")[0][0])
    photos = tmp_path / "photos"
    photos.mkdir()
    for suffix in (".bmp", ".tif", ".webp"):
        Image.fromarray(image).save(photos / f"photo{suffix}")
    Image.fromarray(image[..., 1].astype(np.uint16) * 257).save(photos / "grey16.png")
    out = tmp_path / "masks"
    assert main(["predict", "--model", str(run_dir), "--input", str(photos), "--out", str(out), "--quiet"]) == 0
    assert "4 photo(s) and 0 video(s) segmented into" in capsys.readouterr().out
    for name in ("photo_bmp", "photo_tif", "photo_webp", "grey16"):
        assert np.asarray(Image.open(out / f"{name}_mask.png")).shape == image.shape[:2]


def test_media_files_names_what_it_leaves_out(tmp_path, capsys):
    for name in ("b.jpg", "a.HEIC", "clip.MP4", "notes.txt", "scan.pdf", "anim.gif", ".DS_Store", "._b.jpg"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in media.media_files(tmp_path)] == ["a.HEIC", "anim.gif", "b.jpg", "clip.MP4"]
    printed = capsys.readouterr().out
    assert printed.startswith(f"{tmp_path}: 2 file(s) left out, not a photo or video this reads (.jpg/")
    assert printed.endswith("): notes.txt, scan.pdf\n")
    assert media.media_files(tmp_path / "notes.txt") == [tmp_path / "notes.txt"]  # named: predict says if unreadable
    assert capsys.readouterr().out == ""


def test_predict_cli_bad_paths(run_dir, tmp_path, capsys):
    assert main(["predict", "--model", str(tmp_path), "--input", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no saved model here" in capsys.readouterr().err
    assert main(["predict", "--model", str(run_dir), "--input", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err


class PositionModel:
    """A stand-in network whose output is not mirror-symmetric: the photo's red channel times a left-to-right and
    top-to-bottom ramp, so each test-time view gives a different map."""

    input_shape = (None, 4, 6, 3)
    ramp = np.add.outer(np.arange(4.0), np.arange(6.0))[None, :, :, None] / 8.0

    def predict_on_batch(self, batch):
        return batch[..., :1] * self.ramp


def test_tta_averages_the_views_flipped_back():
    image = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)  # the model's size: no resizing
    red = image[..., 0] / 255.0
    ramp = PositionModel.ramp[0, ..., 0]
    expected = {
        "none": red * ramp,
        "hflip": red * (ramp + ramp[:, ::-1]) / 2,
        "flips": red * (ramp + ramp[:, ::-1] + ramp[::-1, :]) / 3,
    }
    for tta, probability in expected.items():
        got = predict.predict_probabilities(PositionModel(), [image], tta=tta)[0]
        np.testing.assert_allclose(got, probability, rtol=1e-6, err_msg=tta)


def test_tta_unknown_value_names_the_choices():
    with pytest.raises(ValueError, match="TTA='rotations': expected 'none', 'hflip', 'flips'"):
        predict.predict_probabilities(PositionModel(), [np.zeros((4, 6, 3), np.uint8)], tta="rotations")


class CountingPositionModel(PositionModel):
    """PositionModel at the tiny model's size that counts the batches it predicts."""

    input_shape = (None, 64, 96, 3)
    ramp = np.add.outer(np.arange(64.0), np.arange(96.0))[None, :, :, None] / 160.0
    calls = 0

    def predict_on_batch(self, batch):
        self.calls += 1
        return super().predict_on_batch(batch) * 2


def test_predict_cli_tta_choice_is_used(tiny_dataset, tmp_path, capsys, monkeypatch):
    image_path = find_pairs(tiny_dataset / "test")[0][0]
    masks = {}
    for tta, passes in (("none", 1), ("flips", 3)):
        model = CountingPositionModel()
        monkeypatch.setattr("birdseg.model.load_model", lambda path: model)
        out = tmp_path / tta
        assert main(["predict", "--model", "m", "--input", str(image_path), "--out", str(out), "--quiet",
                     "--tta", tta, "--runtime", "keras"]) == 0  # the stand-in model runs as it is
        assert model.calls == passes
        masks[tta] = np.asarray(Image.open(out / f"{image_path.stem}_mask.png"))
    assert (masks["none"] != masks["flips"]).any()  # the ramp is not mirror-symmetric: the averaged views differ
    with pytest.raises(SystemExit):
        main(["predict", "--model", "m", "--input", str(image_path), "--out", str(tmp_path), "--tta", "x"])
    assert "invalid choice: 'x'" in capsys.readouterr().err


# ---------------------------------------------------------------- large photos in tiles


class RedModel:
    """A stand-in network at 64x96 whose output at each pixel is that pixel's red channel: predicting in tiles and
    blending must give back exactly the photo's red channel, at the photo's own resolution."""

    input_shape = (None, 64, 96, 3)

    def __init__(self):
        self.tiles = 0

    def predict_on_batch(self, batch):
        self.tiles += len(batch)
        return batch[..., :1]


def test_tiles_cover_every_pixel_overlapping_and_end_flush():
    for length, tile in ((1000, 96), (97, 96), (96, 96), (50, 96)):
        starts = predict.tile_starts(length, tile)
        covered = np.zeros(max(length, tile), bool)
        for start in starts:
            covered[start : start + tile] = True
        assert covered[:length].all() and starts[-1] == max(0, length - tile)
        assert all(b - a <= tile * (1 - predict.TILE_OVERLAP) + 1 for a, b in zip(starts, starts[1:]))


def test_a_small_bird_in_a_photo_of_thousands_of_pixels_keeps_its_pixels_with_tiles_on():
    photo = np.full((2400, 3600, 3), 40, np.uint8)
    photo[1200:1212, 1800:1812] = (250, 40, 40)  # a 12x12 bird: 0.3 pixels a side once the photo is resized to 64x96
    model = RedModel()
    tiled = predict.predict_probabilities(model, [photo], tta="none", tiles="on")[0]  # at the photo's own scale
    assert tiled.shape == (2400, 3600) and model.tiles > 1000
    np.testing.assert_allclose(tiled, photo[..., 0] / 255.0, atol=1e-5)  # blended tiles: the red channel exactly
    mask = predict.predict_image(model, photo, tta="none", tiles="on")
    assert mask[1200:1212, 1800:1812].all() and mask.sum() == 144
    whole = predict.predict_image(RedModel(), photo, tta="none", tiles="off")
    assert whole[1200:1212, 1800:1812].sum() == 0  # resized down as a whole, the bird is gone


def test_tiles_auto_from_twice_the_input_at_twice_the_detail_of_a_whole_resize():
    model = RedModel()
    assert not predict.wants_tiles(np.zeros((127, 191, 3), np.uint8), model)
    assert predict.wants_tiles(np.zeros((128, 100, 3), np.uint8), model)
    assert predict.wants_tiles(np.zeros((10, 10, 3), np.uint8), model, "on")
    with pytest.raises(ValueError, match="tiles='sometimes': expected 'auto', 'on', 'off'"):
        predict.wants_tiles(np.zeros((10, 10, 3), np.uint8), model, "sometimes")
    # 37 times the model's input: "auto" works at 128x192 (twice 64x96), 3x3 overlapping tiles
    photo = np.full((2400, 3600, 3), 40, np.uint8)
    photo[:, 1800:] = 200
    assert predict.tile_scale(photo, model, "auto") == pytest.approx(2 * 64 / 2400)
    probability = predict.predict_probabilities(model, [photo], tta="none")[0]
    assert model.tiles == 9 and probability.shape == (2400, 3600)
    assert probability[:, :1700].max() < 0.2 and probability[:, 1900:].min() > 0.75
    # at most the photo's own scale; "on" scales down only beyond TILE_MAX_SIDE
    assert predict.tile_scale(np.zeros((120, 180, 3), np.uint8), model, "auto") == 1.0
    assert predict.tile_scale(photo, model, "on") == 1.0


def test_tiles_on_beyond_the_largest_side_scaled_down(monkeypatch):
    monkeypatch.setattr(predict, "TILE_MAX_SIDE", 400)
    model = RedModel()
    photo = np.zeros((300, 1000, 3), np.uint8)
    photo[:, 500:] = 200
    assert predict.tile_scale(photo, model, "on") == 0.4
    probability = predict.predict_probabilities(model, [photo], tta="none", tiles="on")[0]
    assert probability.shape == (300, 1000)
    assert probability[:, :480].max() < 0.05 and probability[:, 520:].min() > 0.75  # scaled to 120x400 and back


def test_predict_resumes_skipping_photos_already_done_unless_overwrite(tiny_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("birdseg.model.load_model", lambda path: CountingPositionModel())
    photos = tmp_path / "photos"
    photos.mkdir()
    for image_path, _ in find_pairs(tiny_dataset / "test"):
        (photos / image_path.name).write_bytes(image_path.read_bytes())
    out = tmp_path / "out"
    command = ["predict", "--model", "m", "--input", str(photos), "--out", str(out), "--quiet", "--tta", "none",
               "--runtime", "keras"]
    first = next(photos.iterdir())
    main([*command[:4], str(first), *command[5:]])  # one photo done, as by an interrupted run
    capsys.readouterr()
    before = (out / f"{first.stem}_mask.png").stat().st_mtime_ns
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "2 photo(s) and 0 video(s) segmented" in printed
    assert "1 already there, skipped (--overwrite to redo them)" in printed
    assert (out / f"{first.stem}_mask.png").stat().st_mtime_ns == before
    assert main(command) == 0
    assert "0 photo(s) and 0 video(s) segmented into" in capsys.readouterr().out
    assert main([*command, "--overwrite"]) == 0
    assert "3 photo(s) and 0 video(s) segmented" in capsys.readouterr().out
    assert (out / f"{first.stem}_mask.png").stat().st_mtime_ns != before


# ---------------------------------------------------------------- odd photos


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 100000, 3), (100000, 1, 3)])
@pytest.mark.parametrize("tiles", ["auto", "on", "off"])
def test_a_photo_of_one_pixel_or_one_row_is_predicted_at_its_own_size(shape, tiles):
    photo = np.full(shape, 200, np.uint8)
    probability = predict.predict_probabilities(RedModel(), [photo], tta="flips", tiles=tiles)[0]
    assert probability.shape == shape[:2]
    np.testing.assert_allclose(probability, 200 / 255, atol=1e-5)


def test_a_photo_without_pixels_is_refused_by_its_size():
    with pytest.raises(ValueError, match="an image of 5x0 pixels"):
        predict.predict_probabilities(RedModel(), [np.zeros((0, 5, 3), np.uint8)])


def test_a_folder_of_odd_photos_goes_on_past_the_unreadable_ones(tmp_path, capsys):
    """A 0x0 PNG, a truncated JPEG and a photo that changes while it is read are skipped by name; a 1x1 photo, a
    panorama of 100000x1, a 16-bit RGB PNG, a CMYK JPEG and animated GIF/WebP (first frame, said) are segmented."""
    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "zero.png").write_bytes(png_header_only(0, 0))
    Image.new("RGB", (40, 30), (250, 0, 0)).save(photos / "cut.jpg")
    (photos / "cut.jpg").write_bytes((photos / "cut.jpg").read_bytes()[:200])
    Image.new("RGB", (1, 1), (250, 0, 0)).save(photos / "dot.png")
    Image.new("RGB", (100000, 1), (250, 0, 0)).save(photos / "panorama.png")
    deep = np.zeros((20, 30, 3), np.uint16)
    deep[..., 2] = 65535  # red, in OpenCV's BGR order
    cv2.imwrite(str(photos / "deep.png"), deep)
    Image.new("CMYK", (30, 20), (0, 255, 255, 0)).save(photos / "print.jpg")  # red in print colours
    frames = [Image.new("RGB", (30, 20), colour) for colour in ((250, 0, 0), (0, 0, 250), (0, 250, 0))]
    for suffix in (".gif", ".webp"):
        frames[0].save(photos / f"animated{suffix}", save_all=True, append_images=frames[1:], duration=100)
    Image.new("RGB", (30, 20), (250, 0, 0)).save(photos / "growing.png")

    real_open = Image.open

    def open_while_written(path, *args, **kwargs):  # another program appends to growing.png as it is read
        if str(path).endswith("growing.png"):
            with open(path, "ab") as file:
                file.write(b"more")
        return real_open(path, *args, **kwargs)

    import birdseg.images

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(birdseg.images.Image, "open", open_while_written)
    try:
        written, skipped, _ = media.predict_files(RedModel(), media.media_files(photos), tmp_path / "out",
                                                  progress=False)
    finally:
        monkeypatch.undo()
    printed = capsys.readouterr().out
    assert sorted(p.photo.name for p in written) == ["animated.gif", "animated.webp", "deep.png", "dot.png",
                                                     "panorama.png", "print.jpg"]
    assert all(p.bird_share == 1.0 for p in written)  # every first frame and every format read as red
    assert sorted(message.split(":")[0].rsplit("/", 1)[-1] for message in skipped) == ["cut.jpg", "growing.png",
                                                                                       "zero.png"]
    assert "growing.png: changed while it was read" in printed and "zero.png: cannot read image" in printed
    for suffix in (".gif", ".webp"):
        assert f"animated{suffix}: an animated image of 3 frames; its first frame is used" in printed
    mask = np.asarray(Image.open(tmp_path / "out" / "panorama_mask.png"))
    assert mask.shape == (1, 100000) and mask.min() == 255
    assert Image.open(tmp_path / "out" / "panorama_overlay.jpg").size == (media.JPEG_MAX_SIDE, 1)
    assert "panorama.png: longer than a JPEG may be (65500 pixels): its overlay is scaled down" in printed
    assert not list((tmp_path / "out").glob("growing*")) and not list((tmp_path / "out").glob(".tmp-*"))


def png_header_only(width, height):
    """A PNG whose header says `width` x `height` and that holds no pixel data."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_pairs_without_a_mask_and_tiles_as_asked(tmp_path):
    Image.new("RGB", (400, 300), (250, 0, 0)).save(tmp_path / "a.png")
    Image.new("L", (400, 300), 255).save(tmp_path / "a_mask.png")
    model = RedModel()
    [(pair, image, truth, probability)] = predict.predict_pairs(model, [(tmp_path / "a.png", None)], tiles="off")
    assert truth is None and image.shape == (300, 400, 3) and model.tiles == 3  # one resize, three views
    [(_, _, truth, _)] = predict.predict_pairs(model, [(tmp_path / "a.png", tmp_path / "a_mask.png")], tiles="on")
    assert truth.all() and model.tiles > 3 + 3


def test_tile_weights_ramp_from_the_edges_over_the_overlap():
    weight = predict.tile_weight(4, 8)
    assert weight.dtype == np.float32
    np.testing.assert_allclose(weight[1], [0.25, 0.75, 1, 1, 1, 1, 0.75, 0.25])  # 8 * 0.25 = 2 pixels of ramp
    np.testing.assert_allclose(weight[:, 2], [0.5, 1, 1, 0.5])
    assert predict.tile_weight(1, 100)[0, 0] == pytest.approx(0.05)  # never below 0.05: an edge keeps its prediction
    assert predict.tile_weight(1, 100).max() == 1.0


class HalfModel(RedModel):
    """Every pixel exactly at the threshold."""

    def predict_on_batch(self, batch):
        return np.full(batch.shape[:3] + (1,), 0.5, np.float32)


def test_threshold_and_interpolation_of_whole_and_tiled_photos():
    assert predict.predict_image(HalfModel(), np.zeros((64, 96, 3), np.uint8)).sum() == 0  # bird only above 0.5
    red = np.zeros((64, 96, 3), np.uint8)
    red[..., 0] = 160  # 0.63
    assert predict.predict_image(RedModel(), red).all()
    checker = np.zeros((8, 12, 3), np.uint8)
    checker[::2, ::2, 0] = checker[1::2, 1::2, 0] = 255
    upscaled = predict.predict_probabilities(RedModel(), [checker], tta="none", tiles="off")[0]
    resized = predict.prepare_batch(RedModel(), [checker])[0, ..., 0]
    assert ((resized > 0.1) & (resized < 0.9)).mean() > 0.5 and upscaled.shape == (8, 12)  # linear, not nearest
    fine = np.zeros((1300, 1950, 3), np.uint8)
    fine[::2, ::2, 0] = fine[1::2, 1::2, 0] = 255  # a one-pixel checkerboard tiled at about a tenth: averaged, not sampled
    probability = predict.predict_probabilities(RedModel(), [fine], tta="none", tiles="auto")[0]
    assert abs(probability[100:-100, 100:-100].mean() - 0.5) < 0.02 and probability[100:-100, 100:-100].std() < 0.05
    tall = np.zeros((2400, 1200, 3), np.uint8)  # not the model's proportions: the shorter ratio decides
    assert predict.tile_scale(tall, RedModel(), "auto") == pytest.approx(2 * 64 / 2400)
    wide = np.zeros((600, 3600, 3), np.uint8)
    assert predict.tile_scale(wide, RedModel(), "auto") == pytest.approx(2 * 96 / 3600)
    model = RedModel()
    assert predict.predict_tiled(model, np.zeros((64, 200, 3), np.uint8), tta="none").shape == (64, 200)
    assert model.tiles == 3  # at its own scale by default: 200 pixels in tiles of 96 overlapping by a quarter
