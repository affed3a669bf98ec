import io
import re
import tarfile

import numpy as np
import pytest
from conftest import cli, sky_with_bird
from PIL import Image

from birdseg import dataset_tools
from birdseg.errors import DatasetError
from birdseg.images import read_mask
from birdseg.pairs import find_pairs


def save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array)
    if mode == "P":
        img = img.convert("P")
    img.save(path)


def make_folders(root, count=10, clips=("alpha", "beta-x", "gamma")):
    """images/<clip>_<frame>.jpg with masks in assorted namings and encodings."""
    encodings = ["plain", "_mask", "-mask", "palette", "rgb", "zero_one", "soft"]
    i = 0
    for clip in clips:
        for frame in range(count):
            image, mask = sky_with_bird(seed=i)
            stem = f"{clip}_{frame:05d}"
            save(root / "images" / f"{stem}.jpg", image)
            kind = encodings[i % len(encodings)]
            fg = mask > 0
            if kind in ("plain", "_mask", "-mask"):
                save(root / "masks" / f"{stem}{'' if kind == 'plain' else kind}.png", mask)
            elif kind == "palette":
                palette = Image.fromarray(fg.astype(np.uint8) * 3, mode="P")  # index 3 = object, like DAVIS
                palette.putpalette([0, 0, 0] * 3 + [200, 0, 0] + [0, 0, 0] * 252)
                (root / "masks").mkdir(parents=True, exist_ok=True)
                palette.save(root / "masks" / f"{stem}.png")
            elif kind == "rgb":
                save(root / "masks" / f"{stem}.png", np.stack([mask] * 3, -1))
            elif kind == "zero_one":
                save(root / "masks" / f"{stem}.png", fg.astype(np.uint8))
            else:  # soft: 5 annotators like CUB, majority above 127
                soft = (fg * 204).astype(np.uint8)
                soft[0, 0] = 51
                save(root / "masks" / f"{stem}.png", soft)
            i += 1
    return root


# ---------------------------------------------------------------- folders


def test_folders_all_mask_variants_grouped_by_clip(tmp_path):
    src = make_folders(tmp_path / "src")
    out = tmp_path / "birds"
    assert cli("make-dataset", "--images", src / "images", "--masks", src / "masks", "--out", out,
               "--group", r"^(.+)_\d+$", "--ratios", 0.4, 0.3, 0.3, "--quiet") == 0
    clips_per_split = {}
    for split in ("train", "val", "test"):
        pairs = find_pairs(out / split)
        clips_per_split[split] = {p[0].stem.rsplit("_", 1)[0] for p in pairs}
        for image_path, mask_path in pairs:
            mask = np.asarray(Image.open(mask_path))
            assert set(np.unique(mask)) <= {0, 255} and mask.max() == 255
            assert Image.open(image_path).size == Image.open(mask_path).size
            original = sky_with_bird(seed=int(["alpha", "beta-x", "gamma"].index(image_path.stem.rsplit("_", 1)[0]) * 10
                                              + int(image_path.stem.rsplit("_", 1)[1])))[1]
            np.testing.assert_array_equal(mask > 0, original > 0)
    assert sorted(len(c) for c in clips_per_split.values()) == [1, 1, 1]
    assert set.union(*clips_per_split.values()) == {"alpha", "beta-x", "gamma"}
    assert not list(tmp_path.glob(".build-*"))


def test_masks_beside_their_images_are_masks_not_images(tmp_path, capsys):
    """Roboflow's semantic-segmentation export: x_jpg.rf.<hash>.jpg beside x_jpg.rf.<hash>_mask.png (0/1)."""
    folder = tmp_path / "export" / "train"
    for i in range(4):
        image, mask = sky_with_bird(seed=i)
        save(folder / f"bird{i}_jpg.rf.{i}f3a.jpg", image)
        save(folder / f"bird{i}_jpg.rf.{i}f3a_mask.png", (mask > 0).astype(np.uint8))
    (folder / "_classes.csv").write_text("Pixel Value, Class\n0, background\n1, bird\n")
    out = tmp_path / "birds"
    assert cli("make-dataset", "--images", folder, "--masks", folder, "--out", out, "--ratios", 1, 0, 0,
               "--quiet") == 0
    pairs = find_pairs(out / "train")
    assert [image.name for image, _ in pairs] == [f"bird{i}_jpg.rf.{i}f3a.jpg" for i in range(4)]
    for i, (_, mask_path) in enumerate(pairs):
        np.testing.assert_array_equal(read_mask(mask_path), sky_with_bird(seed=i)[1] > 0)
    save(folder / "bird9.jpg", sky_with_bird(seed=9)[0])  # a photo without its mask beside it
    assert cli("make-dataset", "--images", folder, "--masks", folder, "--out", tmp_path / "o") == 2
    assert "images without a mask" in capsys.readouterr().err


def test_mask_values_pick_the_bird_class_of_a_class_map(tmp_path, capsys):
    """Pascal VOC's SegmentationClass: palette indices per class (bird 3, person 15), 255 on object borders."""
    images, masks = tmp_path / "JPEGImages", tmp_path / "SegmentationClass"
    classes = np.zeros((48, 80), np.uint8)
    classes[10:20, 10:30] = 3
    classes[30:40, 40:60] = 15
    classes[9, 10:30] = 255
    for stem in ("2008_000001", "2008_000002"):
        save(images / f"{stem}.jpg", sky_with_bird()[0])
        palette = Image.fromarray(classes, mode="P")
        palette.putpalette([value for index in range(256) for value in (index, 0, 255 - index)])
        masks.mkdir(exist_ok=True)
        palette.save(masks / f"{stem}.png")
    save(images / "2008_000003.jpg", sky_with_bird()[0])  # VOC labels a fifth of its photos
    out = tmp_path / "voc_birds"
    assert cli("make-dataset", "--images", images, "--masks", masks, "--mask-values", 3, "--out", out,
               "--ratios", 1, 0, 0, "--quiet") == 2
    assert "images without a mask in" in capsys.readouterr().err
    assert cli("make-dataset", "--images", images, "--masks", masks, "--mask-values", 3, "--only-masked",
               "--out", out, "--ratios", 1, 0, 0, "--quiet") == 0
    assert f"1 image(s) without a mask in {masks} left out (--only-masked): 2008_000003.jpg" in capsys.readouterr().out
    assert [image.stem for image, _ in find_pairs(out / "train")] == ["2008_000001", "2008_000002"]
    for _, mask_path in find_pairs(out / "train"):
        assert np.array_equal(read_mask(mask_path), classes == 3)
    save(masks / "2008_000002.png", np.stack([classes] * 3, -1))  # the same classes as colours: no values to read
    assert cli("make-dataset", "--images", images, "--masks", masks, "--mask-values", 3, "--only-masked",
               "--out", tmp_path / "o", "--ratios", 1, 0, 0) == 2
    assert "2008_000002.png: a RGB mask; mask values name palette indices or grey levels" in capsys.readouterr().err
    assert cli("make-dataset", "--coco", "x.json", "--images", images, "--mask-values", 3, "--out", tmp_path / "o") == 2
    assert "--mask-values goes with --masks or --davis" in capsys.readouterr().err


def test_soft_masks_counted_and_threshold_option(tmp_path, capsys):
    src = make_folders(tmp_path / "src", count=7, clips=("a",))
    assert cli("make-dataset", "--images", src / "images", "--masks", src / "masks", "--out", tmp_path / "o",
               "--ratios", 1, 0, 0, "--quiet") == 0
    assert "1 mask(s) were not binary and were thresholded" in capsys.readouterr().out
    assert read_mask(tmp_path / "o" / "train" / "mask" / "a_00006.png").sum() > 0  # the soft bird is above 127
    # threshold 210 > 204: the soft mask's bird disappears
    assert cli("make-dataset", "--images", src / "images", "--masks", src / "masks", "--out", tmp_path / "t",
               "--ratios", 1, 0, 0, "--threshold", 210, "--quiet") == 0
    assert read_mask(tmp_path / "t" / "train" / "mask" / "a_00006.png").sum() == 0


def test_image_without_mask_and_mask_without_image_listed(tmp_path, capsys):
    src = make_folders(tmp_path / "src", count=3, clips=("a",))
    (src / "masks" / "a_00001_mask.png").unlink()
    save(src / "masks" / "stray.png", np.zeros((4, 4), np.uint8))
    assert cli("make-dataset", "--images", src / "images", "--masks", src / "masks", "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "images without a mask" in err and "a_00001.jpg" in err and "masks without an image" in err and "stray.png" in err
    assert not (tmp_path / "o").exists()


def test_mask_size_mismatch_named_and_nothing_written(tmp_path, capsys):
    src = make_folders(tmp_path / "src", count=4, clips=("a",))
    for variant in src.glob("masks/a_00003*"):
        variant.unlink()
    save(src / "masks" / "a_00003.png", np.zeros((5, 5), np.uint8))  # the last one written
    assert cli("make-dataset", "--images", src / "images", "--masks", src / "masks", "--out", tmp_path / "o",
               "--ratios", 1, 0, 0, "--quiet") == 2
    assert re.search(r"a_00003\.png: mask is 5x5 but its image a_00003\.jpg is 80x48", capsys.readouterr().err)
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".build-*"))


def test_truncated_image_named(tmp_path, capsys):
    src = make_folders(tmp_path / "src", count=2, clips=("a",))
    path = src / "images" / "a_00001.jpg"
    path.write_bytes(path.read_bytes()[:150])
    assert cli("make-dataset", "--images", src / "images", "--masks", src / "masks", "--out", tmp_path / "o",
               "--ratios", 1, 0, 0, "--quiet") == 2
    assert "a_00001.jpg: cannot read image" in capsys.readouterr().err


def test_junk_files_ignored(tmp_path):
    src = make_folders(tmp_path / "src", count=3, clips=("a",))
    (src / "images" / ".DS_Store").write_bytes(b"\0junk")
    (src / "masks" / "Thumbs.db").write_bytes(b"\0junk")
    assert cli("make-dataset", "--images", src / "images", "--masks", src / "masks", "--out", tmp_path / "o",
               "--ratios", 1, 0, 0, "--quiet") == 0
    assert len(find_pairs(tmp_path / "o" / "train")) == 3


def test_existing_output_refused_unless_overwrite(tmp_path, capsys):
    src = make_folders(tmp_path / "src", count=3, clips=("a",))
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["make-dataset", "--images", src / "images", "--masks", src / "masks", "--out", out, "--ratios", 1, 0, 0,
            "--quiet"]
    assert cli(*args) == 2 and "already exists; use --overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert cli(*args, "--overwrite") == 0
    assert not (out / "keep.txt").exists() and len(find_pairs(out / "train")) == 3


def test_too_few_groups_for_splits(tmp_path):
    src = make_folders(tmp_path / "src", count=2, clips=("a", "b"))
    samples = dataset_tools.samples_from_folders(src / "images", src / "masks", r"^(.+)_\d+$")
    with pytest.raises(DatasetError, match="only 2 group"):
        dataset_tools.assign_splits(samples)


def test_split_ratios_roughly_respected():
    samples = [dataset_tools.Sample(f"s{i}", "", None, None, f"g{i // 2}") for i in range(200)]
    by_split = dataset_tools.assign_splits(samples, (0.8, 0.1, 0.1), seed=1)
    assert [len(by_split[s]) for s in ("train", "val", "test")] == [160, 20, 20]
    again = dataset_tools.assign_splits(samples, (0.8, 0.1, 0.1), seed=1)
    assert [s.stem for s in again["val"]] == [s.stem for s in by_split["val"]]


# ---------------------------------------------------------------- DAVIS


def make_davis(root, clips=("bird-a", "bird-b", "bird-c"), frames=3):
    for c, clip in enumerate(clips):
        for f in range(frames):
            image, mask = sky_with_bird(seed=c * 10 + f)
            save(root / "JPEGImages" / "480p" / clip / f"{f:05d}.jpg", image)
            save(root / "Annotations" / "480p" / clip / f"{f:05d}.png", mask)
    return root


def test_davis_layout_grouped_by_clip_with_filter(tmp_path):
    davis = make_davis(tmp_path / "DAVIS", clips=("bird-a", "bird-b", "bird-c", "car"))
    out = tmp_path / "birds"
    assert cli("make-dataset", "--davis", davis, "--clips", "bird-a", "bird-b", "bird-c", "--out", out,
               "--ratios", 0.34, 0.33, 0.33, "--quiet") == 0
    stems = {split: {p[0].stem for p in find_pairs(out / split)} for split in ("train", "val", "test")}
    assert all(len({s.rsplit("_", 1)[0] for s in names}) == 1 for names in stems.values())
    assert not any(s.startswith("car") for names in stems.values() for s in names)
    assert "bird-a_00000" in set.union(*stems.values())


def test_davis_missing_annotations_named(tmp_path, capsys):
    davis = make_davis(tmp_path / "DAVIS")
    (davis / "Annotations" / "480p" / "bird-b" / "00001.png").unlink()
    assert cli("make-dataset", "--davis", davis, "--out", tmp_path / "o") == 2
    assert "bird-b: frames without an annotation: 00001" in capsys.readouterr().err


def test_davis_unknown_clip(tmp_path, capsys):
    assert cli("make-dataset", "--davis", make_davis(tmp_path / "D"), "--clips", "nope", "--out", tmp_path / "o") == 2
    assert "no clip(s) nope; available: bird-a, bird-b, bird-c" in capsys.readouterr().err


# ---------------------------------------------------------------- CUB-200-2011


def make_cub(root, species=("001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"), per=4):
    """Fake CUB_200_2011.tgz and segmentations.tgz with the official names and structure."""
    images, splits, members, masks = [], [], [], []
    image_id = 0
    for s, name in enumerate(species):
        for k in range(per):
            image_id += 1
            rel = f"{name}/{name.split('.', 1)[1]}_{k:04d}_{image_id}.jpg"
            image, mask = sky_with_bird(seed=image_id)
            soft = (mask > 0).astype(np.uint8) * 255
            soft[0, :3] = 102  # CUB masks are soft: 2 of 5 annotators, below threshold
            images.append(f"{image_id} {rel}")
            splits.append(f"{image_id} {int(k < per - 1)}")
            members.append((f"CUB_200_2011/images/{rel}", encode(image, "JPEG")))
            masks.append((f"segmentations/{rel[:-4]}.png", encode(soft, "PNG")))
    members = [("CUB_200_2011/images.txt", "\n".join(images).encode()),
               ("CUB_200_2011/train_test_split.txt", "\n".join(splits).encode())] + members
    write_tgz(root / "CUB_200_2011.tgz", members)
    write_tgz(root / "segmentations.tgz", masks)
    return root / "CUB_200_2011.tgz", root / "segmentations.tgz"


def encode(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def write_tgz(path, members):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_cub_official_test_split_and_val_from_train(tmp_path):
    cub, seg = make_cub(tmp_path / "cub")
    out = tmp_path / "birds"
    assert cli("make-dataset", "--cub", cub, "--cub-segmentations", seg, "--out", out, "--val-ratio", 0.25,
               "--quiet") == 0
    counts = {split: len(find_pairs(out / split)) for split in ("train", "val", "test")}
    assert counts == {"train": 7, "val": 2, "test": 3}  # 9 official train images, 3 official test
    assert {p[0].stem.rsplit("_", 1)[1] for p in find_pairs(out / "test")} == {"4", "8", "12"}
    mask = np.asarray(Image.open(next((out / "test" / "mask").iterdir())))
    assert set(np.unique(mask)) == {0, 255} and mask[0, :3].max() == 0  # soft minority pixels dropped


def test_cub_group_species(tmp_path):
    cub, seg = make_cub(tmp_path / "cub")
    out = tmp_path / "birds"
    assert cli("make-dataset", "--cub", cub, "--cub-segmentations", seg, "--out", out, "--group", "species",
               "--ratios", 0.34, 0.33, 0.33, "--quiet") == 0
    for split in ("train", "val", "test"):
        species = {p[0].stem.rsplit("_", 2)[0] for p in find_pairs(out / split)}
        assert len(species) == 1


def test_cub_wrong_archive_named(tmp_path, capsys):
    _, seg = make_cub(tmp_path / "cub")
    assert cli("make-dataset", "--cub", seg, "--cub-segmentations", seg, "--out", tmp_path / "o") == 2
    assert "no CUB_200_2011/images.txt inside; is it CUB_200_2011.tgz?" in capsys.readouterr().err


# ---------------------------------------------------------------- real photos


def test_real_davis_frames_split_by_clip(davis, tmp_path, capsys):
    out = tmp_path / "davis_birds"
    assert cli("make-dataset", "--images", davis / "images", "--masks", davis / "masks", "--group", r"^(.+)_\d+$",
               "--ratios", 0.34, 0.33, 0.33, "--out", out, "--quiet") == 0
    clips = {}
    for split in ("train", "val", "test"):
        for image_path, mask_path in find_pairs(out / split):
            clips.setdefault(image_path.stem.rsplit("_", 1)[0], set()).add(split)
            if image_path.stem.endswith("0"):  # a sample of frames: values and sizes
                mask = np.asarray(Image.open(mask_path))
                assert set(np.unique(mask)) == {0, 255}
                assert Image.open(image_path).size == (mask.shape[1], mask.shape[0])
    assert clips and all(len(splits) == 1 for splits in clips.values()), clips
    assert sum(1 for _ in out.rglob("*.jpg")) == 210
    assert cli("check-dataset", out, "--strict") == 0


def test_folder_messages_name_the_option_and_every_problem(tmp_path, capsys):
    src = make_folders(tmp_path / "src", count=2, clips=("a",))
    assert cli("make-dataset", "--images", tmp_path / "none", "--masks", src / "masks", "--out", tmp_path / "o") == 2
    assert f"{tmp_path / 'none'}: --images folder does not exist" in capsys.readouterr().err
    assert cli("make-dataset", "--images", src / "images", "--masks", tmp_path / "none", "--out", tmp_path / "o") == 2
    assert f"{tmp_path / 'none'}: --masks folder does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli("make-dataset", "--images", tmp_path / "empty", "--masks", tmp_path / "empty", "--out", tmp_path / "o") == 2
    assert f"{tmp_path / 'empty'}: no images (.jpg/" in capsys.readouterr().err
    for index in range(7):  # seven photos without a mask, and a mask without a photo
        save(src / "images" / f"extra_{index}.jpg", np.zeros((8, 8, 3), np.uint8))
    save(src / "masks" / "lonely.png", np.zeros((8, 8), np.uint8))
    assert cli("make-dataset", "--images", src / "images", "--masks", src / "masks", "--out", tmp_path / "o") == 2
    error = capsys.readouterr().err
    assert ("(--only-masked leaves them out); masks without an image in " in error
            and error.rstrip().endswith(": lonely.png"))
    (src / "masks" / "lonely.png").unlink()
    assert cli("make-dataset", "--images", src / "images", "--masks", src / "masks", "--only-masked",
               "--ratios", 1, 0, 0, "--out", tmp_path / "o", "--quiet") == 0
    printed = capsys.readouterr().out
    assert "7 image(s) without a mask in" in printed
    assert "left out (--only-masked): extra_0.jpg, extra_1.jpg, extra_2.jpg, extra_3.jpg, extra_4.jpg and 2 more" in printed


def test_davis_messages_and_frames_named_by_clip(tmp_path, capsys):
    davis = make_davis(tmp_path / "DAVIS", clips=("bird-a",), frames=2)
    (davis / "JPEGImages" / "480p" / "bird-a" / "00000.jpg").rename(davis / "JPEGImages" / "480p" / "bird-a" / "00000.JPG")
    samples = dataset_tools.samples_from_davis(davis)
    assert [(s.stem, s.image_name, s.group) for s in samples] == [("bird-a_00000", "bird-a_00000.jpg", "bird-a"),
                                                                   ("bird-a_00001", "bird-a_00001.jpg", "bird-a")]
    assert samples[0].mask_source == str(davis / "Annotations" / "480p" / "bird-a" / "00000.png")
    with pytest.raises(DatasetError, match=r"JPEGImages/1080p: missing; expected the DAVIS layout "
                                           r"JPEGImages/1080p/<clip>/ and Annotations/1080p/<clip>/"):
        dataset_tools.samples_from_davis(davis, resolution="1080p")
    with pytest.raises(DatasetError, match=r"no clip\(s\) x, y; available: bird-a"):
        dataset_tools.samples_from_davis(davis, clips=["y", "x"])
    (davis / "JPEGImages" / "480p" / "empty").mkdir()
    (davis / "Annotations" / "480p" / "empty").mkdir()
    with pytest.raises(DatasetError, match="DAVIS: no annotated frames found"):
        dataset_tools.samples_from_davis(davis, clips=["empty"])
    (davis / "JPEGImages" / "480p" / "unlabelled").mkdir()
    with pytest.raises(DatasetError, match=r"Annotations/480p/unlabelled: annotations for clip 'unlabelled' are missing"):
        dataset_tools.samples_from_davis(davis, clips=["unlabelled"])


def test_a_summary_lists_ten_empty_masks_and_counts_the_rest():
    from birdseg.dataset_tools import AnnotatedSamples

    found = AnnotatedSamples("COCO", [None] * 12, [f"p{index}.jpg" for index in range(12)], "categories bird")
    lines = found.summary().splitlines()
    assert lines[0] == "COCO: 12 image(s), masks from categories bird"
    assert lines[1].endswith(": p0.jpg, p1.jpg, p2.jpg, p3.jpg, p4.jpg, p5.jpg, p6.jpg, p7.jpg, p8.jpg, p9.jpg "
                             "and 2 more")


def test_cub_build_in_detail(tmp_path, capsys):
    """The seed-0 val draw, whole species per split, the progress bar, the report, an archive without its top folder
    and with decoys (an images.txt and a photo of the same stem outside images/, a photo images.txt does not
    list), and every archive problem named."""
    cub, seg = make_cub(tmp_path / "cub")
    out = tmp_path / "birds"
    dataset_tools.build_cub(cub, seg, out, val_ratio=0.25)
    train = sorted(f"{name.split('.', 1)[1]}_{k:04d}_{4 * s + k + 1}" for s, name in enumerate(
        ("001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross")) for k in range(3))
    chosen = {train_stem for index, train_stem in enumerate(
        [stem for stem in sorted(train, key=lambda stem: int(stem.rsplit("_", 1)[1]))])
        if index in np.random.default_rng(0).permutation(9)[:2]}
    assert {p[0].stem for p in find_pairs(out / "val")} == chosen  # seed 0 draws val from the official training list
    bar = capsys.readouterr().out
    assert "CUB: 100%" in bar and "12/12" in bar and "img/s" in bar  # the progress bar
    with pytest.raises(FileExistsError, match="already exists; use --overwrite to replace it"):
        dataset_tools.build_cub(cub, seg, out)
    report = dataset_tools.build_cub(cub, seg, tmp_path / "species", group_species=True, ratios=(0.34, 0.33, 0.33),
                                     progress=False)
    assert report.out == tmp_path / "species" and report.groups == {
        "train": ["003.Sooty_Albatross"], "val": ["002.Laysan_Albatross"], "test": ["001.Black_footed_Albatross"]}  # seed 0's

    def rebuild(name, change):
        with tarfile.open(cub) as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]
        write_tgz(tmp_path / name, change(members))
        return tmp_path / name

    bare = rebuild("bare.tgz", lambda members: [(name.split("/", 1)[1], data) for name, data in members])
    decoys = rebuild("decoys.tgz", lambda members: [
        ("README", b"x"), ("CUB_200_2011/parts/Black_footed_Albatross_0000_1.jpg", b"not the photo"),
        ("CUB_200_2011/images/004.Other/Other_0000_99.jpg", members[3][1])] + members + [
        ("CUB_200_2011/parts/images.txt", b"not the list")])
    with tarfile.open(seg) as tar:
        masks = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]
    write_tgz(tmp_path / "seg_extra.tgz", masks + [("preview.png", masks[0][1])])
    for archive in (bare, decoys):
        dataset_tools.build_cub(archive, tmp_path / "seg_extra.tgz", tmp_path / archive.stem, val_ratio=0.25,
                                progress=False)
        assert {p[0].stem for p in find_pairs(tmp_path / archive.stem / "val")} == chosen
    dataset_tools.build_cub(cub, seg, tmp_path / "bare", val_ratio=0.25, overwrite=True, progress=False)
    short = rebuild("short.tgz", lambda members: [m for m in members if not m[0].endswith("_12.jpg")])
    with pytest.raises(DatasetError, match="short.tgz: images.txt lists 12 images, the archive holds 11"):
        dataset_tools.build_cub(short, seg, tmp_path / "s", progress=False)
    write_tgz(tmp_path / "fewer.tgz", masks[1:])
    with pytest.raises(DatasetError, match=r"fewer.tgz: no segmentation for 001.Black_footed_Albatross/"
                                           r"Black_footed_Albatross_0000_1.jpg"):
        dataset_tools.build_cub(cub, tmp_path / "fewer.tgz", tmp_path / "f", progress=False)
    write_tgz(tmp_path / "broken.tgz", [(masks[0][0], b"not a png")] + masks[1:])
    with pytest.raises(DatasetError, match=r"broken.tgz:001.Black_footed_Albatross/Black_footed_Albatross_0000_1.png"):
        dataset_tools.build_cub(cub, tmp_path / "broken.tgz", tmp_path / "b", progress=False)
    write_tgz(tmp_path / "none.tgz", [("segmentations/readme.txt", b"x")])
    with pytest.raises(DatasetError, match=r"none.tgz: no segmentations/\*.png inside; is it segmentations.tgz\?"):
        dataset_tools.build_cub(cub, tmp_path / "none.tgz", tmp_path / "n", progress=False)


def test_a_dataset_zipped_beside_it_or_where_asked_compressed(tmp_path):
    import zipfile

    folder = tmp_path / "birds"
    save(folder / "train" / "images" / "a.png", np.zeros((40, 40, 3), np.uint8))
    assert dataset_tools.zip_dataset(folder) == tmp_path / "birds.zip"
    elsewhere = dataset_tools.zip_dataset(folder, tmp_path / "out" / "other.zip")
    assert elsewhere == tmp_path / "out" / "other.zip"
    with zipfile.ZipFile(tmp_path / "birds.zip") as zf:
        [info] = zf.infolist()
        assert info.filename == "birds/train/images/a.png" and info.compress_type == zipfile.ZIP_DEFLATED
