import zipfile

import albumentations as A
import cv2
import numpy as np
import pytest
from conftest import sky_with_bird, write_pair
from PIL import Image

from birdseg import archive, augment, images, loader, pairs, randomised, synthetic
from birdseg.errors import DatasetError


@pytest.fixture
def split(tmp_path):
    folder = tmp_path / "train"
    for i in range(3):
        write_pair(folder, f"bird{i}", *sky_with_bird(seed=i))
    return folder


# ---------------------------------------------------------------- pairing


def test_pairs_by_stem_case_insensitive_and_ignores_junk(split):
    image, mask = sky_with_bird(seed=9)
    Image.fromarray(image).save(split / "images" / "upper.JPEG")
    Image.fromarray(mask).save(split / "mask" / "upper.PNG")
    (split / "images" / ".DS_Store").write_bytes(b"junk")
    (split / "mask" / "Thumbs.db").write_bytes(b"junk")
    found = pairs.find_pairs(split)
    assert [p[0].stem for p in found] == ["bird0", "bird1", "bird2", "upper"]
    assert all(img.stem == msk.stem for img, msk in found)


def test_missing_folder_named(tmp_path):
    (tmp_path / "val" / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"val: missing folder 'mask/'"):
        pairs.find_pairs(tmp_path / "val")


def test_unpaired_files_listed(split):
    (split / "mask" / "bird1.png").unlink()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(split / "mask" / "stray.png")
    with pytest.raises(DatasetError, match=r"images without a mask: bird1\.jpg; masks without an image: stray\.png"):
        pairs.find_pairs(split)


def test_empty_split(tmp_path):
    for sub in ("images", "mask"):
        (tmp_path / "test" / sub).mkdir(parents=True)
    with pytest.raises(DatasetError, match="test: the split is empty"):
        pairs.find_pairs(tmp_path / "test")


@pytest.mark.parametrize("image_ext,mask_ext", [(".bmp", ".bmp"), (".tif", ".tiff"), (".webp", ".png"),
                                                 (".TIFF", ".webp")])
def test_every_supported_format_pairs_and_reads_back_exactly(tmp_path, image_ext, mask_ext):
    image, mask = sky_with_bird(seed=3)
    folder = tmp_path / "val"
    for sub, suffix, array in (("images", image_ext, image), ("mask", mask_ext, mask)):
        (folder / sub).mkdir(parents=True)
        Image.fromarray(array).save(folder / sub / f"bird{suffix}", lossless=True)  # WebP: lossy unless told
    [(image_path, mask_path)] = pairs.find_pairs(folder)
    read_image, read_mask = images.read_pair(image_path, mask_path)
    assert np.array_equal(read_image, image) and np.array_equal(read_mask, mask // 255)


def test_a_phone_photo_in_heic_is_read(tmp_path):
    image, mask = sky_with_bird(seed=4)
    write_pair(tmp_path / "train", "iphone", image, mask, image_ext=".HEIC")
    [(image_path, mask_path)] = pairs.find_pairs(tmp_path / "train")
    read_image, _ = images.read_pair(image_path, mask_path)
    assert read_image.shape == image.shape and np.abs(read_image.astype(int) - image).mean() < 4  # lossy, like JPEG


def test_empty_split_names_the_formats_it_looked_for(tmp_path):
    for sub in ("images", "mask"):
        (tmp_path / "test" / sub).mkdir(parents=True)
    (tmp_path / "test" / "images" / "photo.avif").write_bytes(b"not read")
    with pytest.raises(DatasetError, match=r"no \.jpg/\.jpeg/\.png/\.bmp/\.tif/\.tiff/\.webp/\.gif/\.heic/\.heif in images/"):
        pairs.find_pairs(tmp_path / "test")


def test_masks_named_like_make_dataset_pairs_them_in_mask_or_masks(split):
    (split / "mask" / "bird0.png").rename(split / "mask" / "bird0_mask.png")
    (split / "mask" / "bird1.png").rename(split / "mask" / "bird1-seg.png")
    write_pair(split, "bird2_mask", *sky_with_bird(seed=7))  # a photo named like a mask, with its own mask
    expected = [("bird0.jpg", "bird0_mask.png"), ("bird1.jpg", "bird1-seg.png"), ("bird2.jpg", "bird2.png"),
                ("bird2_mask.jpg", "bird2_mask.png")]
    assert [(image.name, mask.name) for image, mask in pairs.find_pairs(split)] == expected
    (split / "mask").rename(split / "masks")
    assert [(image.name, mask.name) for image, mask in pairs.find_pairs(split)] == expected
    (split / "mask").mkdir()
    with pytest.raises(DatasetError, match="both mask/ and masks/ exist"):
        pairs.find_pairs(split)


def test_a_photo_named_like_a_mask_is_not_another_photos_mask(split):
    (split / "mask" / "bird0.png").unlink()
    write_pair(split, "bird0_mask", *sky_with_bird(seed=7))
    with pytest.raises(DatasetError, match=r"images without a mask: bird0\.jpg$"):
        pairs.find_pairs(split)


def test_duplicate_stem_is_an_error(split):
    Image.fromarray(sky_with_bird()[0]).save(split / "images" / "bird0.png")
    with pytest.raises(DatasetError, match="two files share the stem 'bird0'"):
        pairs.find_pairs(split)


# ---------------------------------------------------------------- reading


def test_masks_binarised_at_127(tmp_path):
    values = np.array([[0, 100, 127, 128], [200, 255, 1, 254]], np.uint8)
    Image.fromarray(values).save(tmp_path / "m.png")
    assert images.read_mask(tmp_path / "m.png").tolist() == [[0, 0, 0, 1], [1, 1, 0, 1]]


def test_rgb_mask_read_as_grayscale(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = 255
    Image.fromarray(rgb).save(tmp_path / "m.png")
    assert images.read_mask(tmp_path / "m.png").tolist() == [[1, 0], [0, 0]]


def square(value=255, dtype=np.uint8, size=(40, 60)):
    """A mask with a 20x20 square of `value` on 0: 400 bird pixels."""
    values = np.zeros(size, dtype)
    values[10:30, 20:40] = value
    return values


def palette_mask():
    """VOC/DAVIS-2017 style: index 1 drawn as (128, 0, 0)."""
    img = Image.fromarray(square(1), mode="P")
    img.putpalette([0, 0, 0, 128, 0, 0] + [0] * (256 * 3 - 6))
    return img


@pytest.mark.parametrize("make,kind", [
    (lambda: Image.fromarray(square(255)), "binary 0/255"),
    (lambda: Image.fromarray(square(1)), "binary 0/1"),  # what many labelling tools export
    (palette_mask, "palette"),
    (lambda: Image.fromarray(np.stack([square(128), square(0), square(0)], axis=-1)), "binary 0/38"),  # red on black
    (lambda: Image.fromarray(np.dstack([np.stack([square(255)] * 3, -1), np.full((40, 60), 255, np.uint8)])), "binary 0/255"),
    (lambda: Image.fromarray(square(65535, np.uint16)), "binary 0/65535 (16-bit)"),
])
def test_every_mask_encoding_reads_the_same_bird(tmp_path, make, kind):
    make().save(tmp_path / "m.png")
    reading = images.decode_mask(tmp_path / "m.png")
    assert reading.kind == kind and reading.warning is None
    assert images.read_mask(tmp_path / "m.png").sum() == 400
    assert images.decode_mask((tmp_path / "m.png").read_bytes()).foreground.sum() == 400


def test_soft_mask_thresholded_and_ambiguous_one_warned(tmp_path):
    soft = square(200)
    soft[10:30, 20:25] = 90  # an anti-aliased edge: background at threshold 127
    Image.fromarray(soft).save(tmp_path / "soft.png")
    reading = images.decode_mask(tmp_path / "soft.png")
    assert reading.kind == "soft, threshold 127" and reading.foreground.sum() == 300 and reading.warning is None
    labels = square(2)
    labels[0:5, 0:5] = 1  # a 0/1/2 label map: nothing above 127
    Image.fromarray(labels).save(tmp_path / "labels.png")
    reading = images.decode_mask(tmp_path / "labels.png")
    assert reading.foreground.sum() == 0
    assert "labels.png: a mask of 3 grey values, all <= 127, read as all background" in reading.warning


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_16_bit_grey_photo_is_scaled_to_8_bits_not_clipped(tmp_path, suffix):
    eight_bit = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    cv2.imwrite(str(tmp_path / f"grey16{suffix}"), eight_bit.astype(np.uint16) * 257)  # 0..65535, the same greys
    with Image.open(tmp_path / f"grey16{suffix}") as img:
        assert img.mode.startswith("I")  # what Pillow's own conversion to RGB would clip above 255
    assert np.array_equal(images.read_image(tmp_path / f"grey16{suffix}"), np.stack([eight_bit] * 3, axis=-1))


def test_a_floating_point_image_is_refused_by_name(tmp_path):
    Image.fromarray(np.ones((4, 4), np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(DatasetError, match=r"float\.tif: a floating-point image; save it with 8 or 16 bits"):
        images.read_image(tmp_path / "float.tif")


def test_exif_rotated_photo_is_upright_everywhere(tmp_path):
    """A phone photo stored landscape with EXIF 'rotate 90', and a mask drawn on the upright (portrait) view."""
    image = np.zeros((30, 50, 3), np.uint8)
    exif = Image.Exif()
    exif[images.EXIF_ORIENTATION] = 6
    (tmp_path / "images").mkdir()
    (tmp_path / "mask").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "phone.jpg", exif=exif)
    Image.fromarray(np.zeros((50, 30), np.uint8)).save(tmp_path / "mask" / "phone.png")
    with Image.open(tmp_path / "images" / "phone.jpg") as img:
        assert img.size == (50, 30) and images.upright_size(img) == (30, 50)
    photo, mask = images.read_pair(tmp_path / "images" / "phone.jpg", tmp_path / "mask" / "phone.png")
    assert photo.shape[:2] == mask.shape == (50, 30)


@pytest.mark.parametrize("orientation,stored_as", [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_90),
                                                    (8, Image.Transpose.ROTATE_270)])
def test_exif_orientation_turns_an_asymmetric_photo_upright_and_its_mask_fits(tmp_path, orientation, stored_as):
    """A camera stores the sensor's pixels and says in EXIF how to turn them; the mask is drawn on the upright view.
    The bird (a red block) is in the upright photo's top-left corner only: a turn the wrong way, or none, moves it."""
    upright = np.zeros((30, 50, 3), np.uint8)
    upright[2:10, 3:15] = (255, 0, 0)
    mask = np.zeros((30, 50), np.uint8)
    mask[2:10, 3:15] = 255
    exif = Image.Exif()
    exif[images.EXIF_ORIENTATION] = orientation
    (tmp_path / "images").mkdir()
    (tmp_path / "mask").mkdir()
    Image.fromarray(upright).transpose(stored_as).save(tmp_path / "images" / "phone.png", exif=exif)
    Image.fromarray(mask).save(tmp_path / "mask" / "phone.png")
    photo, read = images.read_pair(tmp_path / "images" / "phone.png", tmp_path / "mask" / "phone.png")
    np.testing.assert_array_equal(photo, upright)
    red = (photo[..., 0] > 200) & (photo[..., 1] < 50)
    np.testing.assert_array_equal(red, read.astype(bool))  # the mask lies on the bird
    with Image.open(tmp_path / "images" / "phone.png") as img:
        assert images.upright_size(img) == (50, 30)


def test_truncated_image_named(split):
    path = split / "images" / "bird0.jpg"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"bird0\.jpg: cannot read image"):
        images.read_image(path)


def test_size_mismatch_named(split):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(split / "mask" / "bird2.png")
    dataset = loader.Dataset(split)
    with pytest.raises(DatasetError, match=r"bird2\.png: mask is 10x10 but its image bird2\.jpg is 80x48"):
        dataset[2]


def test_dataset_returns_float_image_and_binary_mask(split):
    image, mask = loader.Dataset(split)[0]
    assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1 and image.shape == (48, 80, 3)
    assert mask.shape == (48, 80, 1) and set(np.unique(mask)) == {0.0, 1.0}


def test_preview_takes_an_image_with_a_bird_from_each_part_of_the_split(tmp_path):
    image, mask = sky_with_bird()
    for i, has_bird in enumerate([0, 0, 1, 0, 0, 0, 0, 1, 1]):
        write_pair(tmp_path / "val", f"v{i}", image, mask * has_bird)
    dataset = loader.Dataset(tmp_path / "val")
    assert dataset.preview_indices(3) == [2, 3, 7]  # the middle third has no bird: its first image
    assert dataset.preview_indices(20) == list(range(9))  # more asked than there are: each image once
    assert loader.Dataset([]).preview_indices(3) == []


# ---------------------------------------------------------------- augmentation


def flips(height, width):
    """Resize and random flips: a training augmentation, for the Dataset's own tests (the notebook's is tested with
    the notebook)."""
    return A.Compose([*augment.get_validation_augmentation(height, width), A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])


@pytest.mark.parametrize("make", [flips, augment.get_validation_augmentation])
def test_augmentation_shapes_and_mask_values(split, make):
    dataset = loader.Dataset(split, augmentation=make(64, 96))
    for i in range(len(dataset)):
        image, mask = dataset.get(i, seed=i)
        assert image.shape == (64, 96, 3) and mask.shape == (64, 96, 1)
        assert set(np.unique(mask)) <= {0.0, 1.0} and mask.sum() > 0  # nearest-neighbour: still binary


def test_training_augmentation_flips_and_is_seeded(split):
    dataset = loader.Dataset(split, augmentation=flips(64, 96))
    draws = [dataset.get(0, seed=s)[1] for s in range(30)]
    assert len({d.tobytes() for d in draws}) > 1, "never flipped in 30 draws"
    np.testing.assert_array_equal(dataset.get(0, seed=3)[0], dataset.get(0, seed=3)[0])


@pytest.mark.parametrize("height,width", [(100, 640), (384, 0), (16, 64), (384.0, 640)])
def test_image_size_must_be_multiple_of_32(height, width):
    with pytest.raises(ValueError, match="must be a positive multiple of 32"):
        augment.get_validation_augmentation(height, width)


# ---------------------------------------------------------------- Dataloader


def test_dataloader_batches_and_shuffles_per_epoch(split):
    dataset = loader.Dataset(split, augmentation=augment.get_validation_augmentation(32, 64))
    batches = loader.Dataloader(dataset, batch_size=2, shuffle=True, seed=1)
    assert len(batches) == 2
    image_batch, mask_batch = batches[0]
    assert image_batch.shape == (2, 32, 64, 3) and mask_batch.shape == (2, 32, 64, 1)
    orders = [tuple(batches.order(epoch)) for epoch in range(6)]
    assert len(set(orders)) > 1 and all(sorted(order) == [0, 1, 2] for order in orders)
    again = loader.Dataloader(dataset, batch_size=2, shuffle=True, seed=1)
    assert tuple(again.order(3)) == orders[3]  # a resumed run sees the same order
    np.testing.assert_array_equal(batches[1][0], again.batch(0, 1)[0])  # indexing (validation data): the first epoch


def test_epoch_stream_is_a_function_of_the_batch_index(split):
    dataset = loader.Dataset(split, augmentation=flips(32, 64))
    batches = loader.Dataloader(dataset, batch_size=2, shuffle=True, seed=1)
    stream = batches.stream(start_epoch=2)
    assert stream.num_batches is None
    np.testing.assert_array_equal(stream[0][1], batches.batch(2, 0)[1])
    np.testing.assert_array_equal(stream[3][1], batches.batch(3, 1)[1])  # 2 batches per epoch


def test_drawn_dataset_draws_anew_per_seed_and_the_same_for_one(tmp_path):
    """Fresh drawings: a sample seed (run seed, epoch, index) decides the drawing, so a resumed run draws the same
    images as an uninterrupted one, and each epoch other images; masks exact (the generator's own)."""
    drawn = loader.DrawnDataset("randomised", 4, augmentation=augment.get_validation_augmentation(32, 64))
    assert len(drawn) == 4 and drawn.pairs == []
    batches = loader.Dataloader(drawn, batch_size=2, shuffle=True, seed=5)
    again = loader.Dataloader(loader.DrawnDataset("randomised", 4, drawn.augmentation), batch_size=2, shuffle=True,
                              seed=5)
    for epoch, batch in ((0, 0), (3, 1)):
        for first, second in zip(batches.batch(epoch, batch), again.batch(epoch, batch)):
            np.testing.assert_array_equal(first, second)
    assert not np.array_equal(batches.batch(0, 0)[0], batches.batch(1, 0)[0])  # another epoch, other drawings
    image, mask = drawn.pair(1, seed=7)
    generated = randomised.randomised_sample(np.random.default_rng(loader.sample_seed(7, "drawing")))
    np.testing.assert_array_equal(image, generated[0])
    np.testing.assert_array_equal(mask, generated[1] // 255)
    np.testing.assert_array_equal(drawn.pair(2)[1], drawn.pair(2)[1])  # no seed: sample 2 is one drawing
    assert not np.array_equal(drawn.pair(2)[0], drawn.pair(3)[0])
    with_birds = drawn.preview_indices(2)  # from its drawings, as a folder's from its masks
    assert len(with_birds) == 2 and all(drawn.pair(index)[1].any() for index in with_birds)
    sky = loader.DrawnDataset("sky", 1).pair(0, seed=1)
    np.testing.assert_array_equal(sky[0], synthetic.synthetic_sample(np.random.default_rng(
        loader.sample_seed(1, "drawing")))[0])
    with pytest.raises(ValueError, match="style='photos': expected 'sky' or 'randomised' or 'mixed'"):
        loader.DrawnDataset("photos", 4)


def test_the_style_that_drew_a_dataset_is_read_from_its_note(tmp_path):
    synthetic.write_dataset(tmp_path / "drawn", counts={"train": 1}, sample=randomised.randomised_sample)
    assert synthetic.synthetic_style(tmp_path / "drawn") == "randomised"
    synthetic.write_dataset(tmp_path / "sky", counts={"train": 1})
    assert synthetic.synthetic_style(tmp_path / "sky") == "sky"
    (tmp_path / "photos").mkdir()
    with pytest.raises(DatasetError, match=r"photos: not drawn by make-synthetic .* no generator to draw fresh"):
        synthetic.synthetic_style(tmp_path / "photos")
    (tmp_path / "photos" / "SYNTHETIC.txt").write_text("drawn by hand\n")
    with pytest.raises(DatasetError, match="no SYNTHETIC.txt naming its --style"):
        synthetic.synthetic_style(tmp_path / "photos")


# ---------------------------------------------------------------- embedded dataset


def test_ensure_dataset_unpacks_zip(tmp_path, split):
    zip_path = tmp_path / "birds.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in split.rglob("*"):
            zf.write(path, f"birds/{path.relative_to(split.parent).as_posix()}")
    root = archive.ensure_dataset(tmp_path / "birds")
    assert len(pairs.find_pairs(root / "train")) == 3
    assert not list(tmp_path.glob(".unpack-*"))


def write_archive(zip_path, note, extra=()):
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("birds/SYNTHETIC.txt", note)
        for name in extra:
            zf.writestr(f"birds/{name}", b"x")


def test_a_folder_unpacked_from_an_earlier_archive_is_moved_aside_and_the_new_one_unpacked(tmp_path, capsys):
    zip_path = tmp_path / "birds.zip"
    write_archive(zip_path, "drawn by version 1", ["train/images/a.jpg"])
    root = archive.ensure_dataset(tmp_path / "birds")
    assert archive.ensure_dataset(root) == root and "unpacked" not in capsys.readouterr().out  # same archive: kept
    (root / "train" / "images" / "mine.jpg").write_bytes(b"added by hand")
    write_archive(zip_path, "drawn by version 2", ["train/images/b.jpg"])
    assert archive.ensure_dataset(root) == root
    assert "was unpacked from an earlier birds.zip; moved it to" in capsys.readouterr().out
    assert (root / "SYNTHETIC.txt").read_text() == "drawn by version 2" and (root / "train/images/b.jpg").is_file()
    (aside,) = tmp_path.glob("birds.replaced-*")
    assert (aside / "train" / "images" / "mine.jpg").read_bytes() == b"added by hand", "nothing is lost"


def test_a_folder_from_an_older_unpacker_is_compared_by_its_synthetic_note(tmp_path):
    zip_path = tmp_path / "birds.zip"
    write_archive(zip_path, "drawn by version 2")
    (tmp_path / "birds").mkdir()
    (tmp_path / "birds" / "SYNTHETIC.txt").write_text("drawn by version 2")
    archive.ensure_dataset(tmp_path / "birds")
    assert not list(tmp_path.glob("birds.replaced-*"))
    (tmp_path / "birds" / "SYNTHETIC.txt").write_text("drawn by version 1")
    archive.ensure_dataset(tmp_path / "birds")
    assert len(list(tmp_path.glob("birds.replaced-*"))) == 1


def test_a_folder_of_ones_own_is_never_replaced_by_the_archive(tmp_path):
    write_archive(tmp_path / "birds.zip", "drawn")
    (tmp_path / "birds" / "train").mkdir(parents=True)
    assert archive.ensure_dataset(tmp_path / "birds") == tmp_path / "birds"
    assert not list(tmp_path.glob("birds.replaced-*")) and not (tmp_path / "birds" / "SYNTHETIC.txt").exists()


def test_ensure_dataset_rejects_other_top_folder(tmp_path):
    with zipfile.ZipFile(tmp_path / "birds.zip", "w") as zf:
        zf.writestr("other/train/images/a.jpg", b"x")
    with pytest.raises(DatasetError, match=r"birds\.zip: expected one top folder 'birds/', found \['other'\]"):
        archive.ensure_dataset(tmp_path / "birds")


def test_ensure_dataset_rejects_corrupt_zip(tmp_path):
    (tmp_path / "birds.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DatasetError, match=r"birds\.zip: not a readable zip archive"):
        archive.ensure_dataset(tmp_path / "birds")
    assert not (tmp_path / "birds").exists()


def test_ensure_dataset_missing_everything(tmp_path):
    with pytest.raises(DatasetError, match="no such folder, and no archive"):
        archive.ensure_dataset(tmp_path / "birds")


def test_paste_birds_adds_the_donors_birds_and_keeps_the_rest():
    image, mask = np.full((64, 96, 3), 200, np.uint8), np.zeros((64, 96), np.uint8)
    mask[5:10, 5:10], image[5:10, 5:10] = 1, 30
    donor_image, donor_mask = np.full((128, 192, 3), 90, np.uint8), np.zeros((128, 192), np.uint8)
    donor_mask[60:80, 100:140], donor_image[60:80, 100:140] = 1, 10  # resized to half: a 10x20 bird
    for seed in range(10):
        pasted_image, pasted_mask = augment.paste_birds(image, mask, donor_image, donor_mask, np.random.default_rng(seed))
        assert pasted_mask.dtype == np.uint8 and set(np.unique(pasted_mask)) <= {0, 1}
        assert (pasted_mask >= mask).all(), "the sample's own birds stay"
        new = (pasted_mask == 1) & (mask == 0)
        assert 0.5**2 * 200 - 25 <= new.sum() <= 1.5**2 * 200 + 40  # a 200-pixel bird scaled by 0.5..1.5, less overlap
        # The bird's colour arrives with it (inside, away from the blended edge), the background does not.
        inner = cv2.erode(new.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert (pasted_image[inner] == 10).all()
        near = cv2.dilate(pasted_mask, np.ones((3, 3), np.uint8)).astype(bool)
        np.testing.assert_array_equal(pasted_image[~near], image[~near])
        assert (image == np.where(mask[..., None] == 1, 30, 200)).all(), "inputs are not changed in place"


def test_paste_birds_from_a_donor_without_birds_changes_nothing():
    image, mask = np.full((32, 64, 3), 200, np.uint8), np.zeros((32, 64), np.uint8)
    result = augment.paste_birds(image, mask, np.zeros_like(image), np.zeros_like(mask), np.random.default_rng(0))
    assert result[0] is image and result[1] is mask


def test_copy_paste_is_seeded_and_only_adds_birds(split):
    plain = loader.Dataset(split, augmentation=flips(64, 96))
    pasting = loader.Dataset(split, augmentation=flips(64, 96), copy_paste=1.0)
    grew = 0
    for seed in range(6):
        image, mask = pasting.get(0, seed=seed)
        np.testing.assert_array_equal(image, pasting.get(0, seed=seed)[0])  # a resumed run sees the same samples
        own_mask = plain.get(0, seed=seed)[1]
        assert (mask >= own_mask).all()
        grew += mask.sum() > own_mask.sum()
    assert grew >= 4, "copy-paste at p=1 should paste birds in almost every draw"


@pytest.mark.parametrize("probability", [-0.1, 1.5, "0.5", True, None])
def test_copy_paste_probability_checked(split, probability):
    with pytest.raises(ValueError, match=r"COPY_PASTE=.*expected a probability from 0 \(off\) to 1"):
        loader.Dataset(split, copy_paste=probability)


def test_listed_names_the_first_ones_and_counts_the_rest():
    names = [f"p{i}.jpg" for i in range(23)]
    assert pairs.listed(names) == ", ".join(names[:20]) + " and 3 more"
    assert pairs.listed(names[:20]) == ", ".join(names[:20])
    assert pairs.listed(["a", "b", "c"], 2, separator="; ") == "a; b and 1 more"


def test_only_an_image_of_several_frames_is_said_to_be_animated(tmp_path):
    frames = [Image.new("RGB", (8, 6), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    frames[0].save(tmp_path / "two.gif", save_all=True, append_images=frames[1:])
    for suffix in (".jpg", ".png", ".bmp", ".gif", ".webp"):
        frames[0].save(tmp_path / f"one{suffix}")
    notes = []
    for path in sorted(tmp_path.iterdir()):
        assert images.read_image(path, notes).shape == (6, 8, 3)
    assert notes == [f"{tmp_path / 'two.gif'}: an animated image of 2 frames; its first frame is used"]
    assert images.read_image(tmp_path / "two.gif")[0, 0, 0] > 200  # without a list of notes: the first frame


@pytest.mark.parametrize("mode,dtype,suffix", [("L", np.uint8, ".png"), ("P", np.uint8, ".png"),
                                               ("I;16", "<u2", ".png"), ("I;16B", ">u2", ".tif"),
                                               ("I", np.int32, ".tif")])
def test_class_map_values_of_every_grey_and_palette_mode(tmp_path, mode, dtype, suffix):
    values = np.zeros((6, 8), dtype)
    values[1:3, 1:4], values[4:6, 5:8] = 2, 7  # two classes; 2 is the bird
    img = Image.fromarray(values)
    if mode == "P":
        img = Image.new("P", img.size)
        img.putdata(values.flatten().tolist())
        img.putpalette([level for grey in range(256) for level in (grey, grey, grey)])  # else saving remaps indices
    img.save(tmp_path / f"m{suffix}")
    with Image.open(tmp_path / f"m{suffix}") as saved:
        assert saved.mode == mode
    reading = images.decode_mask(tmp_path / f"m{suffix}", bird_values={7, 2})
    assert reading.foreground.sum() == 6 + 6 and reading.foreground[1, 1] and reading.kind == "values 2, 7"


def test_a_colour_mask_has_no_class_values_to_list(tmp_path):
    Image.new("RGB", (8, 6)).save(tmp_path / "m.png")
    with pytest.raises(DatasetError, match="m.png: a RGB mask; mask values name palette indices or grey levels, so it "
                                           "takes palette or greyscale masks"):
        images.decode_mask(tmp_path / "m.png", bird_values={1})


def test_a_size_mismatch_says_width_by_height_of_each(tmp_path):
    Image.new("RGB", (30, 20)).save(tmp_path / "a.png")
    Image.new("L", (20, 10)).save(tmp_path / "a_mask.png")
    with pytest.raises(DatasetError, match=r"a_mask.png: mask is 20x10 but its image a.png is 30x20 \(width x height\)"):
        images.read_pair(tmp_path / "a.png", tmp_path / "a_mask.png")


def test_a_bird_filling_the_whole_frame_is_all_bird_in_any_binary_encoding(tmp_path):
    for value in (1, 255):
        Image.fromarray(np.full((4, 6), value, np.uint8)).save(tmp_path / "m.png")
        reading = images.decode_mask(tmp_path / "m.png")
        assert reading.foreground.all() and reading.kind == f"binary 0/{value}" and reading.warning is None


@pytest.mark.parametrize("mode", ["LA", "CMYK", "YCbCr"])
def test_a_mask_in_any_colour_mode_reads_by_its_luminance(tmp_path, mode):
    grey = np.zeros((6, 8), np.uint8)
    grey[1:4, 2:6] = 255
    Image.fromarray(grey).convert(mode).save(tmp_path / "m.tif")
    with Image.open(tmp_path / "m.tif") as saved:
        assert saved.mode == mode
    np.testing.assert_array_equal(images.decode_mask(tmp_path / "m.tif").foreground, grey > 0)


def test_a_16_bit_soft_mask_is_cut_at_the_threshold_scaled_to_16_bits(tmp_path):
    values = np.array([[0, 100, 32700, 40000]], np.uint16)  # 127 * 257 = 32639
    Image.fromarray(values).save(tmp_path / "m.png")
    reading = images.decode_mask(tmp_path / "m.png")
    assert reading.kind == "soft, threshold 127 (16-bit)" and reading.foreground.tolist() == [[False, False, True, True]]
    Image.fromarray(np.array([[0, 100, 200]], np.uint16)).save(tmp_path / "low.png")  # 16 bits, small values
    low = images.decode_mask(tmp_path / "low.png")
    assert low.kind == "soft, threshold 127 (16-bit)" and not low.foreground.any()
    assert low.warning.endswith("if its values are class labels, save bird pixels as 255 (or any single value) and "
                                "others as 0")


def test_a_mask_given_as_bytes_is_named_mask_in_messages():
    with pytest.raises(DatasetError, match="^mask: cannot read mask"):
        images.decode_mask(b"not a png")
    with pytest.raises(DatasetError, match="^m.png: cannot read mask"):
        images.decode_mask(b"not a png", name="m.png")
