"""COCO annotations in (as CVAT, Label Studio and Roboflow export them): polygons, RLE compressed or not, iscrowd,
a second category, images without annotations, and every kind of broken file named."""
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from birdseg.cli import main
from birdseg.images import read_mask
from birdseg.pairs import find_pairs

HEIGHT, WIDTH = 40, 60


def rle_mask():
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[5:15, 40:55] = 1
    return mask


@pytest.fixture
def coco(tmp_path):
    """Eight photos in three clips and a COCO file: the first two a bird polygon (the second also a leaf polygon,
    another category), the next two a brush-stroke bird (RLE, uncompressed, iscrowd), then two compressed RLE birds,
    and two photos with nothing."""
    images = tmp_path / "photos"
    images.mkdir()
    entries, annotations = [], []
    compressed = coco_mask.encode(np.asfortranarray(rle_mask()))
    for index in range(8):
        name = f"{'abc'[index // 3]}_{index:03d}.jpg"
        Image.fromarray(np.full((HEIGHT, WIDTH, 3), 30 * index, np.uint8)).save(images / name)
        entries.append({"id": index + 1, "file_name": name, "width": WIDTH, "height": HEIGHT})
        kind = index % 4
        if index < 4 and kind in (0, 1):
            annotations.append({"id": 100 + index, "image_id": index + 1, "category_id": 1, "iscrowd": 0,
                                "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]],
                                "bbox": [10, 10, 20, 20]})  # a 20x20 square of bird, with its box as exports have
            if kind == 1:
                annotations.append({"id": 200 + index, "image_id": index + 1, "category_id": 2, "iscrowd": 0,
                                    "segmentation": [[40, 0, 59, 0, 59, 10, 40, 10]]})  # a leaf
        elif index < 4:
            uncompressed = {"size": [HEIGHT, WIDTH], "counts": rle_counts(rle_mask())}
            decoded = coco_mask.decode(coco_mask.frPyObjects(uncompressed, HEIGHT, WIDTH))
            np.testing.assert_array_equal(decoded, rle_mask())  # the file holds what pycocotools reads as the mask
            annotations.append({"id": 300 + index, "image_id": index + 1, "category_id": 1, "iscrowd": 1,
                                "segmentation": uncompressed})
        elif kind in (0, 1):
            annotations.append({"id": 400 + index, "image_id": index + 1, "category_id": 1, "iscrowd": 1,
                                "segmentation": {"size": [HEIGHT, WIDTH], "counts": compressed["counts"].decode()}})
    document = {"images": entries, "annotations": annotations,
                "categories": [{"id": 1, "name": "Bird"}, {"id": 2, "name": "leaf"}]}
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(document))
    return path, images, document


def rle_counts(mask):
    """Uncompressed COCO RLE counts of a mask: run lengths in column-major order, starting with zeros."""
    flat = mask.flatten(order="F")
    counts, current, run = [], 0, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    return counts + [run]


def make(tmp_path, path, images, *extra):
    return main(["make-dataset", "--coco", str(path), "--images", str(images), "--out", str(tmp_path / "out"),
                 "--quiet", *map(str, extra)])


def masks_by_stem(out):
    return {image.stem: read_mask(mask) for split in ("train", "val", "test") for image, mask in
            (find_pairs(out / split) if any((out / split / "images").iterdir()) else [])}


def test_one_mask_per_image_from_polygons_and_rle_of_the_chosen_category(tmp_path, coco, capsys):
    path, images, _ = coco
    assert make(tmp_path, path, images, "--category", "BIRD", "--group", r"^(\w)_") == 0
    printed = capsys.readouterr().out
    masks = masks_by_stem(tmp_path / "out")
    assert sorted(masks) == [f"{'abc'[i // 3]}_{i:03d}" for i in range(8)]
    square = np.zeros((HEIGHT, WIDTH), bool)
    square[10:30, 10:30] = True
    for stem in ("a_000", "a_001"):  # the leaf of a_001 is not a bird
        assert (masks[stem].astype(bool) ^ square).sum() <= 2 * 21, stem  # pycocotools' polygon edge, at most
    for stem in ("a_002", "b_003", "b_004", "b_005"):  # uncompressed (iscrowd) and compressed RLE: exact
        np.testing.assert_array_equal(masks[stem], rle_mask(), err_msg=stem)
    assert masks["c_006"].sum() == masks["c_007"].sum() == 0
    assert "COCO: 8 image(s), masks from categories Bird" in printed
    assert "2 image(s) without an annotation of these, written with an empty mask: c_006.jpg, c_007.jpg" \
        in printed
    splits = {split: {image.stem[0] for image, _ in find_pairs(tmp_path / "out" / split)}
              for split in ("train", "val", "test") if any((tmp_path / "out" / split / "images").iterdir())}
    assert all(len(clips) == 1 for clips in splits.values())  # --group keeps each clip in one split
    assert main(["check-dataset", str(tmp_path / "out")]) == 0


def test_all_categories_when_none_is_named(tmp_path, coco):
    path, images, _ = coco
    assert make(tmp_path, path, images, "--ratios", 1, 0, 0) == 0
    masks = masks_by_stem(tmp_path / "out")
    assert masks["a_001"].sum() > masks["a_000"].sum() + 150  # the leaf's 19x10 pixels joined the bird's


@pytest.mark.parametrize("breakage,message", [
    (lambda d: d["annotations"].append({"id": 9, "image_id": 77, "category_id": 1, "segmentation": [[0, 0, 1, 0, 1, 1]]}),
     "annotation 9 points at image id 77, which the file does not list"),
    (lambda d: d["annotations"].append({"id": 9, "image_id": 1, "category_id": 5, "segmentation": [[0, 0, 1, 0, 1, 1]]}),
     r"annotation 9 \(a_000.jpg\) has category id 5, which the file does not list"),
    (lambda d: d["annotations"].append({"id": 9, "image_id": 2, "category_id": 1, "segmentation": [[0, 0, 1, 0, 1]]}),
     r"annotation 9 \(a_001.jpg\): malformed segmentation: polygons must be lists of at least three x, y pairs"),
    (lambda d: d["annotations"].append({"id": 9, "image_id": 3, "category_id": 1,
                                        "segmentation": {"size": [10, 10], "counts": [100]}}),
     r"annotation 9 \(a_002.jpg\): malformed segmentation: RLE size \[10, 10\] is not the image's"),
    (lambda d: d["annotations"].append({"id": 9, "image_id": 3, "category_id": 1,
                                        "segmentation": {"size": [HEIGHT, WIDTH], "counts": [5, 7]}}),
     r"uncompressed RLE covers 12 pixels, the image has 2400"),
    (lambda d: d["images"].append({"id": 50, "file_name": "gone.jpg", "width": WIDTH, "height": HEIGHT}),
     "1 image.s. named in it are not in .*: gone.jpg"),
    (lambda d: d["images"].append({**d["images"][0], "file_name": "a_000_copy.jpg"}),
     r"image id 1 is listed twice \(a_000.jpg and a_000_copy.jpg\)"),
    (lambda d: d["annotations"].append({"id": 9, "image_id": 2, "category_id": 1, "bbox": [1, 2, 10, 10],
                                        "segmentation": []}),
     r"annotation 9 \(a_001.jpg\): malformed segmentation: a box without a segmentation: masks need polygons or RLE"),
    (lambda d: d["annotations"].append({"id": 9, "image_id": 2, "category_id": 1, "bbox": [1, 2, 10, 10]}),
     "a box without a segmentation"),
    (lambda d: d["annotations"].append({"id": 9, "image_id": 0, "category_id": 1, "segmentation": [[0, 0, 1, 0, 1, 1]]}),
     "annotation 9 points at image id 0, which the file does not list"),
    (lambda d: d["annotations"].append({"image_id": 0, "category_id": 1, "segmentation": [[0, 0, 1, 0, 1, 1]]}),
     r"annotation \? points at image id 0"),
    (lambda d: d["annotations"].extend([{"id": 9, "image_id": 2, "category_id": 1, "segmentation": [[0, 0, 1, "a", 1, 1]]},
                                        {"id": 10, "image_id": 2, "category_id": 1, "segmentation": [5]}]),
     r"annotation 9 \(a_001.jpg\): malformed segmentation: polygon coordinates must be numbers; annotation 10 "
     r"\(a_001.jpg\): malformed segmentation: polygons must be lists of at least three x, y pairs$"),
    (lambda d: d["annotations"].append({"image_id": 2, "category_id": 1, "segmentation": [[0, 0, 1, 0, 1, 1, 2]]}),
     r"annotation \? \(a_001.jpg\): malformed segmentation: polygons must be lists of at least three x, y pairs"),
    (lambda d: d["annotations"].append({"id": 9, "image_id": 2, "category_id": 1,
                                        "segmentation": {"size": [HEIGHT, WIDTH], "counts": 5}}),
     r"annotation 9 \(a_001.jpg\): malformed segmentation: RLE counts must be a list of numbers or a string$"),
    (lambda d: d["annotations"].append({"id": 9, "image_id": 2, "category_id": 1, "segmentation": {"counts": "x"}}),
     r"malformed segmentation: segmentation is neither polygons nor an RLE with 'size' and 'counts'$"),
    (lambda d: d["annotations"].append({"id": 9, "image_id": 2, "category_id": 1, "segmentation": {"size": [HEIGHT, WIDTH]}}),
     r"segmentation is neither polygons nor an RLE with 'size' and 'counts'$"),
    (lambda d: d["images"].append({"id": 60, "file_name": "x.jpg", "width": WIDTH}),
     r"annotations.json: image entry \{'id': 60, 'file_name': 'x.jpg', 'width': 60\} lacks id, file_name, width or height"),
    (lambda d: d["images"].append("x.jpg"), "image entry x.jpg lacks id, file_name, width or height"),
    (lambda d: d.update(images=[], annotations=[]), r"annotations.json: lists no images$"),
])
def test_broken_files_are_named_and_nothing_is_written(tmp_path, coco, capsys, breakage, message):
    path, images, document = coco
    breakage(document)
    path.write_text(json.dumps(document))
    assert make(tmp_path, path, images) == 2
    error = capsys.readouterr().err
    assert "annotations.json" in error
    assert __import__("re").search(message, error), error
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".build-*"))


def test_unknown_category_and_not_coco_at_all(tmp_path, coco, capsys):
    path, images, _ = coco
    assert make(tmp_path, path, images, "--category", "owl") == 2
    assert "no categor(y/ies) owl; the file has Bird, leaf" in capsys.readouterr().err
    path.write_text('{"images": []}')
    assert make(tmp_path, path, images) == 2
    assert "not a COCO annotation file (no list 'annotations')" in capsys.readouterr().err
    path.write_text("{broken")
    assert make(tmp_path, path, images) == 2
    assert "annotations.json: cannot read it as JSON" in capsys.readouterr().err
    path.write_text('{"images": [], "categories": []}')
    assert make(tmp_path, path, images) == 2
    assert "not a COCO annotation file (no list 'annotations')" in capsys.readouterr().err
    path.write_bytes(b"\xff\xd8\xff\xe0 a JPEG saved as .json")
    assert make(tmp_path, path, images) == 2
    assert "annotations.json: cannot read it as JSON" in capsys.readouterr().err


def test_a_shared_stem_a_missing_folder_and_nameless_categories_named(tmp_path, coco, capsys):
    path, images, document = coco
    (images / "a_000.png").write_bytes((images / "a_000.jpg").read_bytes())
    document["images"].append({"id": 70, "file_name": "a_000.png", "width": WIDTH, "height": HEIGHT})
    path.write_text(json.dumps(document))
    assert make(tmp_path, path, images) == 2
    assert "annotations.json: two images share the stem 'a_000'" in capsys.readouterr().err
    assert make(tmp_path, path, tmp_path / "nowhere") == 2
    assert "nowhere: --images folder does not exist" in capsys.readouterr().err
    document["images"].pop()
    document["categories"] = [{"id": 1}, {"id": 2, "name": "leaf"}]  # a category without a name goes by its id
    path.write_text(json.dumps(document))
    assert make(tmp_path, path, images, "--category", "1", "leaf") == 0
    assert "masks from categories 1, leaf" in capsys.readouterr().out
    assert make(tmp_path, path, images, "--category", "owl", "hawk") == 2
    assert f"{path}: no categor(y/ies) hawk, owl; the file has 1, leaf" in capsys.readouterr().err
    document["categories"] = []
    path.write_text(json.dumps(document))
    assert make(tmp_path, path, images, "--category", "owl") == 2
    assert "no categor(y/ies) owl; the file has none" in capsys.readouterr().err


def test_samples_in_file_name_order_whatever_the_ids(coco):
    from birdseg.coco import samples_from_coco

    path, images, document = coco
    for entry in document["images"]:
        entry["id"] = 100 - entry["id"]  # ids in the opposite order of the names
    for annotation in document["annotations"]:
        annotation["image_id"] = 100 - annotation["image_id"]
    path.write_text(json.dumps(document))
    found = samples_from_coco(path, images)
    assert [sample.image_name for sample in found.samples] == sorted(entry["file_name"] for entry in document["images"])
    assert found.samples[0].mask_source == "annotations.json: a_000.jpg"
    assert found.summary().startswith("COCO: 8 image(s), masks from categories Bird, leaf")
