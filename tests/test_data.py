import zipfile

import numpy as np
import pytest
from conftest import sky_with_bird, write_pair
from PIL import Image

from birdseg import data
from birdseg.data import DatasetError


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
    pairs = data.find_pairs(split)
    assert [p[0].stem for p in pairs] == ["bird0", "bird1", "bird2", "upper"]
    assert all(img.stem == msk.stem for img, msk in pairs)


def test_missing_folder_named(tmp_path):
    (tmp_path / "val" / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"val: missing folder 'mask/'"):
        data.find_pairs(tmp_path / "val")


def test_unpaired_files_listed(split):
    (split / "mask" / "bird1.png").unlink()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(split / "mask" / "stray.png")
    with pytest.raises(DatasetError, match=r"images without a mask: bird1\.jpg; masks without an image: stray\.png"):
        data.find_pairs(split)


def test_empty_split(tmp_path):
    for sub in ("images", "mask"):
        (tmp_path / "test" / sub).mkdir(parents=True)
    with pytest.raises(DatasetError, match="test: the split is empty"):
        data.find_pairs(tmp_path / "test")


def test_duplicate_stem_is_an_error(split):
    Image.fromarray(sky_with_bird()[0]).save(split / "images" / "bird0.png")
    with pytest.raises(DatasetError, match="two files share the stem 'bird0'"):
        data.find_pairs(split)


# ---------------------------------------------------------------- reading


def test_masks_binarised_at_127(tmp_path):
    values = np.array([[0, 100, 127, 128], [200, 255, 1, 254]], np.uint8)
    Image.fromarray(values).save(tmp_path / "m.png")
    assert data.read_mask(tmp_path / "m.png").tolist() == [[0, 0, 0, 1], [1, 1, 0, 1]]


def test_rgb_mask_read_as_grayscale(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = 255
    Image.fromarray(rgb).save(tmp_path / "m.png")
    assert data.read_mask(tmp_path / "m.png").tolist() == [[1, 0], [0, 0]]


def test_truncated_image_named(split):
    path = split / "images" / "bird0.jpg"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"bird0\.jpg: cannot read image"):
        data.read_image(path)


def test_size_mismatch_named(split):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(split / "mask" / "bird2.png")
    dataset = data.Dataset(split)
    with pytest.raises(DatasetError, match=r"bird2\.png: mask is 10x10 but its image bird2\.jpg is 80x48"):
        dataset[2]


def test_dataset_returns_float_image_and_binary_mask(split):
    image, mask = data.Dataset(split)[0]
    assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1 and image.shape == (48, 80, 3)
    assert mask.shape == (48, 80, 1) and set(np.unique(mask)) == {0.0, 1.0}


# ---------------------------------------------------------------- augmentation


@pytest.mark.parametrize("make", [data.get_training_augmentation, data.get_validation_augmentation])
def test_augmentation_shapes_and_mask_values(split, make):
    dataset = data.Dataset(split, augmentation=make(64, 96))
    for i in range(len(dataset)):
        image, mask = dataset.get(i, seed=i)
        assert image.shape == (64, 96, 3) and mask.shape == (64, 96, 1)
        assert set(np.unique(mask)) <= {0.0, 1.0} and mask.sum() > 0  # nearest-neighbour: still binary


def test_training_augmentation_flips_and_is_seeded(split):
    dataset = data.Dataset(split, augmentation=data.get_training_augmentation(64, 96))
    draws = [dataset.get(0, seed=s)[1] for s in range(30)]
    assert len({d.tobytes() for d in draws}) > 1, "never flipped in 30 draws"
    np.testing.assert_array_equal(dataset.get(0, seed=3)[0], dataset.get(0, seed=3)[0])


@pytest.mark.parametrize("height,width", [(100, 640), (384, 0), (16, 64), (384.0, 640)])
def test_image_size_must_be_multiple_of_32(height, width):
    with pytest.raises(ValueError, match="must be a positive multiple of 32"):
        data.check_image_size(height, width)


# ---------------------------------------------------------------- Dataloader


def test_dataloader_batches_and_shuffles_per_epoch(split):
    dataset = data.Dataset(split, augmentation=data.get_validation_augmentation(32, 64))
    loader = data.Dataloader(dataset, batch_size=2, shuffle=True, seed=1)
    assert len(loader) == 2
    images, masks = loader[0]
    assert images.shape == (2, 32, 64, 3) and masks.shape == (2, 32, 64, 1)
    orders = [tuple(loader.order(epoch)) for epoch in range(6)]
    assert len(set(orders)) > 1 and all(sorted(order) == [0, 1, 2] for order in orders)
    again = data.Dataloader(dataset, batch_size=2, shuffle=True, seed=1)
    assert tuple(again.order(3)) == orders[3]  # a resumed run sees the same order
    loader.set_epoch(4)
    np.testing.assert_array_equal(loader[1][0], again.batch(4, 1)[0])


def test_epoch_stream_is_a_function_of_the_batch_index(split):
    dataset = data.Dataset(split, augmentation=data.get_training_augmentation(32, 64))
    loader = data.Dataloader(dataset, batch_size=2, shuffle=True, seed=1)
    stream = loader.stream(start_epoch=2)
    assert stream.num_batches is None
    np.testing.assert_array_equal(stream[0][1], loader.batch(2, 0)[1])
    np.testing.assert_array_equal(stream[3][1], loader.batch(3, 1)[1])  # 2 batches per epoch


# ---------------------------------------------------------------- embedded dataset


def test_ensure_dataset_unpacks_zip(tmp_path, split):
    archive = tmp_path / "birds.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in split.rglob("*"):
            zf.write(path, f"birds/{path.relative_to(split.parent).as_posix()}")
    root = data.ensure_dataset(tmp_path / "birds")
    assert len(data.find_pairs(root / "train")) == 3
    assert not list(tmp_path.glob(".unpack-*"))


def test_ensure_dataset_rejects_other_top_folder(tmp_path):
    with zipfile.ZipFile(tmp_path / "birds.zip", "w") as zf:
        zf.writestr("other/train/images/a.jpg", b"x")
    with pytest.raises(DatasetError, match=r"birds\.zip: expected one top folder 'birds/', found \['other'\]"):
        data.ensure_dataset(tmp_path / "birds")


def test_ensure_dataset_rejects_corrupt_zip(tmp_path):
    (tmp_path / "birds.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DatasetError, match=r"birds\.zip: not a readable zip archive"):
        data.ensure_dataset(tmp_path / "birds")
    assert not (tmp_path / "birds").exists()


def test_ensure_dataset_missing_everything(tmp_path):
    with pytest.raises(DatasetError, match="no such folder, and no archive"):
        data.ensure_dataset(tmp_path / "birds")
