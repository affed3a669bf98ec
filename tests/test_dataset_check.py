"""check-dataset: every problem of a dataset folder or zip named before training, as the notebook runs it."""
import re
import zipfile

import numpy as np
import pytest
from conftest import cli
from PIL import Image
from test_dataset_tools import make_folders, save

from birdseg import dataset_tools
from birdseg.images import read_mask


@pytest.fixture
def good(tmp_path):
    src = make_folders(tmp_path / "src", count=3)
    out = tmp_path / "birds"
    dataset_tools.build_dataset(dataset_tools.assign_splits(dataset_tools.samples_from_folders(
        src / "images", src / "masks", r"^(.+)_\d+$")), out, progress=False)
    return out


def test_check_good_dataset(good, capsys):
    assert cli("check-dataset", good) == 0
    out = capsys.readouterr().out
    assert "80x48: 9" in out and "bird pixels" in out and "usable" in out


def test_check_finds_duplicates_across_splits(good, capsys):
    image = next((good / "train" / "images").iterdir())
    (good / "test" / "images" / "copy.jpg").write_bytes(image.read_bytes())
    (good / "test" / "mask" / "copy.png").write_bytes((good / "train" / "mask" / f"{image.stem}.png").read_bytes())
    assert cli("check-dataset", good) == 1
    assert re.search(r"the same image is in several splits: .*train/images/.*test/images/copy\.jpg", capsys.readouterr().out)


def test_check_empty_masks_and_strict_non_binary(good, capsys):
    mask_path = next((good / "val" / "mask").iterdir())
    save(mask_path, np.zeros((48, 80), np.uint8))
    mask_path = next((good / "train" / "mask").iterdir())
    soft = np.asarray(Image.open(mask_path)).copy()
    soft[soft > 0] = 200
    soft[0, 0] = 90
    save(mask_path, soft)
    assert cli("check-dataset", good) == 0
    out = capsys.readouterr().out
    assert "1 image(s) with an empty mask" in out and "1 mask(s) are not binary" in out
    assert cli("check-dataset", good, "--strict") == 1


def test_check_reports_every_problem(good, capsys):
    (good / "val" / "mask" / next((good / "val" / "images").iterdir()).with_suffix(".png").name).unlink()
    bad = next((good / "test" / "images").iterdir())
    bad.write_bytes(bad.read_bytes()[:100])
    assert cli("check-dataset", good) == 1
    out = capsys.readouterr().out
    assert "images without a mask" in out and f"{bad.name}: cannot read image" in out and "NOT usable" in out


def test_check_refuses_a_floating_point_image_and_takes_a_16_bit_one(good, capsys):
    float_image, grey16 = sorted((good / "train" / "images").iterdir())[:2]
    for path, values in ((float_image, np.ones((48, 80), np.float32)), (grey16, np.full((48, 80), 40000, np.uint16))):
        path.unlink()
        Image.fromarray(values).save(path.with_suffix(".tif"))
    assert cli("check-dataset", good) == 1
    out = capsys.readouterr().out
    assert f"{float_image.stem}.tif: a floating-point image; save it with 8 or 16 bits per channel" in out
    assert f"{grey16.stem}.tif" not in out and "NOT usable" in out


def test_check_zip_and_bad_zips(good, tmp_path, capsys):
    archive = dataset_tools.zip_dataset(good)
    assert cli("check-dataset", archive) == 0
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("wrong/train/images/a.jpg", b"x")
    assert cli("check-dataset", other) == 1
    assert "expected one top folder 'other/'" in capsys.readouterr().out
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(archive.read_bytes()[: len(archive.read_bytes()) // 2])
    assert cli("check-dataset", corrupt) == 1
    assert "not a readable zip archive" in capsys.readouterr().out


def test_check_missing_split_folder(good, capsys):
    import shutil

    shutil.rmtree(good / "val" / "mask")
    assert cli("check-dataset", good) == 1
    assert "val: missing folder 'mask/'" in capsys.readouterr().out
    (good / "val").rename(good / "valid")  # Roboflow's name for it
    assert cli("check-dataset", good) == 1
    assert (f"val: no such split folder ({good} holds test, train, valid; the splits are named train, val, test)"
            in capsys.readouterr().out)


def test_check_and_training_agree_on_every_mask_kind(good, capsys):
    """0/1 and palette masks used to read as empty in training while check-dataset called them usable."""
    from test_data import palette_mask

    masks = sorted((good / "train" / "mask").iterdir())
    for path in masks:
        truth = read_mask(path)
        if path == masks[0]:
            Image.fromarray(truth).save(path)  # 0/1
        elif path == masks[1]:
            img = Image.fromarray(truth, mode="P")
            img.putpalette(palette_mask().getpalette())
            img.save(path)
    assert cli("check-dataset", good) == 0
    out = capsys.readouterr().out
    assert re.search(r"train: bird pixels .*masks .*binary 0/1: 1.*palette: 1|train: .*palette: 1.*binary 0/1: 1", out)
    for path in masks[:2]:
        assert read_mask(path).sum() > 0


def test_check_warns_about_ambiguous_mask_by_name(good, capsys):
    path = next((good / "val" / "mask").iterdir())
    labels = (read_mask(path) * 2).astype(np.uint8)
    labels[0, 0] = 1
    save(path, labels)
    assert cli("check-dataset", good) == 0
    assert f"{path.name}: a mask of 3 grey values, all <= 127, read as all background" in capsys.readouterr().out


def test_quick_check_uses_upright_size_of_rotated_photo(good, capsys):
    from birdseg.images import EXIF_ORIENTATION

    image_path = next((good / "train" / "images").iterdir())
    photo = Image.open(image_path)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 8  # stored rotated; upright it is the original
    photo.transpose(Image.Transpose.ROTATE_90).save(image_path, exif=exif)
    for quick in ((), ("--quick",)):
        assert cli("check-dataset", good, *quick) == 0, capsys.readouterr().out


def test_an_unusable_dataset_stops_the_notebook_with_the_summary(good):
    from birdseg.dataset_check import check_dataset
    from birdseg.errors import DatasetError

    report = check_dataset(good, quick=True)
    report.raise_if_unusable()  # usable: goes on
    assert report.summary().splitlines()[0].endswith(" (quick check)") and ", " in report.summary().splitlines()[0]
    assert not check_dataset(good).summary().splitlines()[0].endswith(" (quick check)")
    report.warnings.append("masks look odd")
    report.raise_if_unusable()  # a warning is not an error unless strict
    with pytest.raises(DatasetError, match="WARNING: masks look odd"):
        report.raise_if_unusable(strict=True)
    assert report.ok() and not report.ok(strict=True)
    report.errors.append("bird1.png: cannot read mask")
    with pytest.raises(DatasetError, match="(?s)ERROR: bird1.png: cannot read mask.*NOT usable"):
        report.raise_if_unusable()


def test_the_whole_report_of_a_dataset_with_one_problem_of_each_kind(tmp_path, capsys):
    """Every line check-dataset prints, for three splits: a soft mask and a duplicate in train, a val split without
    any bird, a mask of the wrong size in test."""
    from conftest import sky_with_bird, write_pair

    root = tmp_path / "birds"
    for split, count in (("train", 3), ("val", 2), ("test", 2)):
        for index in range(count):
            image, mask = sky_with_bird(seed=10 * len(split) + index)
            write_pair(root / split, f"{split}{index}", image, mask * 0 if split == "val" else mask)
    soft = np.asarray(Image.open(root / "train" / "mask" / "train1.png")).copy()
    soft[soft > 0], soft[0, 0] = 200, 90
    save(root / "train" / "mask" / "train1.png", soft)
    save(root / "test" / "mask" / "test1.png", np.zeros((40, 80), np.uint8))
    (root / "test" / "images" / "copy.jpg").write_bytes((root / "train" / "images" / "train0.jpg").read_bytes())
    (root / "test" / "mask" / "copy.png").write_bytes((root / "train" / "mask" / "train0.png").read_bytes())
    assert cli("check-dataset", root) == 1
    out = capsys.readouterr().out.replace(str(root), "ROOT")
    assert out.splitlines() == [
        "ROOT: train 3, val 2, test 3",
        "  image sizes: 80x48: 7",  # the pair whose sizes differ is not counted
        "  train: bird pixels 2.79% on average; masks binary 0/255: 2, soft, threshold 127: 1",
        "  val: bird pixels 0.00% on average; masks empty: 2",
        "  test: bird pixels 2.79% on average; masks binary 0/255: 2, empty: 1",
        "  2 image(s) with an empty mask (no bird): fine if intended",
        "  WARNING: 1 mask(s) are not binary (binarised at >127): ROOT/train/mask/train1.png",
        "  WARNING: val: no mask has any bird pixel",
        "  ERROR: ROOT/test/mask/test1.png: mask is 80x40 but its image test1.jpg is 80x48 (width x height)",
        "  ERROR: the same image is in several splits: train/images/train0.jpg, test/images/copy.jpg",
        "  NOT usable: fix the errors above",
    ]
    assert cli("check-dataset", root, "--quick") == 1
    quick = capsys.readouterr().out.replace(str(root), "ROOT").splitlines()
    assert quick[0] == "ROOT: train 3, val 2, test 3 (quick check)" and "  WARNING: val: no mask has any bird pixel" not in quick


def test_a_summary_lists_the_six_commonest_sizes_and_counts_the_rest(tmp_path):
    from collections import Counter

    from birdseg.dataset_check import DatasetReport

    sizes = Counter({(10 * i, 20): 10 - i for i in range(1, 9)})
    report = DatasetReport(tmp_path, counts={"train": 44}, sizes=sizes,
                           mask_kinds={"train": Counter({"palette": 3, "empty": 5})}, foreground={"train": 0.123456})
    lines = report.summary().replace(str(tmp_path), "ROOT").splitlines()
    assert lines == ["ROOT: train 44",
                     "  image sizes: 10x20: 9, 20x20: 8, 30x20: 7, 40x20: 6, 50x20: 5, 60x20: 4 (+2 more sizes)",
                     "  train: bird pixels 12.35% on average; masks empty: 5, palette: 3",
                     "  usable"]


def test_the_report_of_a_zip_a_quick_check_and_a_large_split(tmp_path, good, capsys):
    from birdseg.dataset_check import check_dataset

    archive = dataset_tools.zip_dataset(good)
    for quick in (False, True):
        report = check_dataset(archive, quick=quick)
        assert report.root == archive and report.quick is quick and report.ok()
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not a zip")
    report = check_dataset(broken, quick=True)
    assert report.root == broken and report.quick and "not a readable zip archive" in report.errors[0]
    report = check_dataset(tmp_path / "nowhere")
    assert report.errors == [f"{tmp_path / 'nowhere'}: no such folder"]
    unreadable = next((good / "test" / "images").iterdir())
    unreadable.write_bytes(b"not an image")
    report = check_dataset(good, quick=True)
    assert report.errors == [f"{unreadable}: cannot identify image file {str(unreadable)!r}"]
    big = tmp_path / "big"
    image, mask = np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 200, np.uint8)
    mask[0, 0] = 90  # soft: not binary
    for index in range(200):
        image[0, 0] = index  # each photo its own
        save(big / "train" / "images" / f"b{index:03d}.png", image)
        save(big / "train" / "mask" / f"b{index:03d}.png", mask if index % 2 else np.zeros((8, 8), np.uint8))
    image[0, 0] = 255
    for split in ("val", "test"):
        save(big / split / "images" / "a.png", image)
        save(big / split / "mask" / "a.png", np.full((8, 8), 255, np.uint8))
    capsys.readouterr()
    report = check_dataset(big)
    bar = capsys.readouterr().out
    assert "check train: 100%" in bar and "200/200" in bar and "img/s" in bar  # 200 pairs or more: a progress bar
    assert len(report.empty_masks) == 100 and report.empty_masks[0] == str(big / "train" / "mask" / "b000.png")
    assert report.warnings[0].startswith("100 mask(s) are not binary (binarised at >127): ")
    assert report.warnings[0].endswith("train/mask/b019.png and 90 more")
    (big / "test" / "images" / "b.png").write_bytes((big / "val" / "images" / "a.png").read_bytes())
    save(big / "test" / "mask" / "b.png", np.full((8, 8), 255, np.uint8))
    report = check_dataset(big)
    assert report.duplicates == [["val/images/a.png", "test/images/a.png", "test/images/b.png"]]
