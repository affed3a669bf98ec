"""LabelMe annotations in: every region shape drawn as LabelMe draws it, photos on disk or embedded, labels chosen,
lines and points left out, and every kind of broken file named with nothing written."""
import base64
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from birdseg.cli import main
from birdseg.images import read_mask
from birdseg.labelme import draw_region
from birdseg.pairs import find_pairs

HEIGHT, WIDTH = 40, 60


def png_base64(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def shape(label, kind, points, **extra):
    return {"label": label, "shape_type": kind, "points": points, "group_id": None, "flags": {}, **extra}


def labelme_file(folder, stem, shapes, embed=False, image_path=None):
    """A photo and its LabelMe file as LabelMe 5 writes them; `embed`: the photo only inside the JSON."""
    photo = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    if not embed:
        (folder / f"{stem}.png").write_bytes(buffer.getvalue())
    document = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": image_path or f"{stem}.png",
                "imageData": base64.b64encode(buffer.getvalue()).decode() if embed else None,
                "imageHeight": HEIGHT, "imageWidth": WIDTH}
    (folder / f"{stem}.json").write_text(json.dumps(document))


def labelme_reference(kind, points):
    """What LabelMe's `shape_to_mask` draws: Pillow, outline and fill."""
    canvas = Image.new("L", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(canvas)
    xy = [tuple(point) for point in points]
    if kind == "polygon":
        draw.polygon(xy, outline=1, fill=1)
    elif kind == "rectangle":
        draw.rectangle(xy, outline=1, fill=1)
    else:
        (cx, cy), (px, py) = xy
        radius = ((px - cx) ** 2 + (py - cy) ** 2) ** 0.5
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=1, fill=1)
    return np.asarray(canvas, bool)


@pytest.mark.parametrize("kind,points", [
    ("polygon", [[10.4, 5.2], [30.7, 8.1], [25.5, 30.9], [8.2, 22.6]]),
    ("rectangle", [[12, 6], [40.5, 25.5]]),
    ("circle", [[30, 20], [30, 31.5]]),
])
def test_each_region_is_drawn_as_labelme_draws_it(kind, points):
    drawn = draw_region(shape("bird", kind, points), HEIGHT, WIDTH)
    assert drawn.any() and np.array_equal(drawn, labelme_reference(kind, points))


def test_a_rectangle_dragged_up_and_left_and_shapes_over_the_edge_cut_there():
    up_left = draw_region(shape("bird", "rectangle", [[40, 25], [12, 6]]), HEIGHT, WIDTH)
    assert np.array_equal(up_left, labelme_reference("rectangle", [[12, 6], [40, 25]]))
    box = np.zeros((10, 8), np.uint8)
    box[2:6, 1:7] = 255
    drawn = draw_region(shape("bird", "mask", [[56, 33], [63, 42]], mask=png_base64(box)), HEIGHT, WIDTH)
    expected = np.zeros((HEIGHT, WIDTH), bool)
    expected[35:39, 57:60] = True  # the box from (56, 33); its columns past 59 are outside the photo
    assert np.array_equal(drawn, expected)
    half_out = draw_region(shape("bird", "polygon", [[50, 10], [80, 10], [80, 30], [50, 30]]), HEIGHT, WIDTH)
    assert half_out[10:31, 50:].all() and half_out.sum() == 21 * 10  # cut at the photo's right edge


def test_folder_of_labelme_files_builds_a_dataset_of_the_chosen_labels(tmp_path, capsys):
    source = tmp_path / "labelled"
    (source / "clip_b").mkdir(parents=True)
    labelme_file(source, "clip_a_000", [shape("Bird", "polygon", [[10, 10], [30, 10], [30, 30], [10, 30]]),
                                        shape("branch", "rectangle", [[40, 0], [59, 10]])])
    labelme_file(source, "clip_a_002", [shape("bird", "rectangle", [[1, 1], [4, 4]])],
                 image_path="..\\labelled\\clip_a_002.png")  # relative, written on Windows
    labelme_file(source, "clip_a_001", [shape("bird", "circle", [[30, 20], [30, 25]]),
                                        shape("bird", "point", [[5, 5]]), shape("bird", "line", [[0, 0], [9, 9]])],
                 embed=True)
    labelme_file(source / "clip_b", "clip_b_000", [shape("branch", "polygon", [[0, 0], [9, 0], [9, 9]])],
                 image_path="C:\\Users\\ana\\birds\\clip_b_000.png")  # another machine's path: found beside
    out = tmp_path / "birds"
    assert main(["make-dataset", "--labelme", str(source), "--category", "BIRD", "--group", r"^(.+)_\d+$",
                 "--ratios", "1", "0", "0", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "LabelMe: 4 image(s), masks from labels Bird, bird" in printed
    assert "1 image(s) without an annotation of these, written with an empty mask: clip_b_000.png" in printed
    assert "shapes without an area, not drawn: 1 line, 1 point" in printed
    masks = {image.stem: read_mask(mask) for image, mask in find_pairs(out / "train")}
    assert masks["clip_a_000"].sum() == 21 * 21  # the square with its outline; the branch left out
    assert np.array_equal(masks["clip_a_001"], labelme_reference("circle", [[30, 20], [30, 25]]))
    assert masks["clip_b_000"].sum() == 0 and masks["clip_a_002"].sum() == 16
    assert (out / "train" / "images" / "clip_a_001.png").is_file()  # the embedded photo written out


@pytest.mark.parametrize("breakage,message", [
    (lambda d: d["shapes"].append(shape("bird", "polygon", [[1, 1], [5, 5]])),
     "clip_0.json: shape 2 ('bird', polygon): a polygon needs at least 3 points, it has 2"),
    (lambda d: d["shapes"].append(shape("bird", "cuboid", [[1, 1], [5, 5]])),
     "clip_0.json: shape 2 has shape_type 'cuboid'"),
    (lambda d: d["shapes"].append(shape("bird", "mask", [[1, 1], [5, 5]], mask="not base64!")),
     "clip_0.json: shape 2 ('bird', mask): its 'mask' is not a base64 PNG"),
    (lambda d: d["shapes"].append(shape("bird", "polygon", [[1, "a"], [5, 5], [1, 5]])),
     "shape 2 ('bird', polygon): points must be [x, y] pairs of numbers"),
    (lambda d: d.update(imageHeight=HEIGHT + 1), f"clip_0.json: says the photo is {WIDTH}x{HEIGHT + 1}"),
    (lambda d: d.update(imagePath="elsewhere.png"), "its photo"),
    (lambda d: d.pop("shapes"), "clip_0.json: not a LabelMe file (no list 'shapes')"),
    (lambda d: d["shapes"].append(shape("bird", "polygon", [[70, 5], [90, 5], [80, 30]])),
     f"clip_0.json: shape 2 ('bird', polygon): it lies wholly outside the {WIDTH}x{HEIGHT} photo"),
    (lambda d: d["shapes"].append(shape("bird", "rectangle", [[-20, -20], [-5, -2]])),
     "shape 2 ('bird', rectangle): it lies wholly outside"),
    (lambda d: d["shapes"].append(shape("bird", "mask", [[-30, 5], [-20, 9]], mask=png_base64(np.full((4, 10), 255, np.uint8)))),
     "shape 2 ('bird', mask): it lies wholly outside"),
    (lambda d: d["shapes"].append(shape("bird", "rectangle", [[1, 1], [5, 5], [9, 9]])),
     "clip_0.json: shape 2 ('bird', rectangle): a rectangle needs exactly 2 points, it has 3"),
    (lambda d: d["shapes"].append(shape("bird", "polygon", [[1, 1, 1], [5, 5, 5], [1, 5, 5]])),
     "clip_0.json: shape 2 ('bird', polygon): points must be [x, y] pairs of numbers"),
    (lambda d: d["shapes"].append(shape("bird", "polygon", [1, 5, 5])),
     "clip_0.json: shape 2 ('bird', polygon): points must be [x, y] pairs of numbers"),
    (lambda d: d["shapes"].append(shape("bird", "polygon", [[1, float("nan")], [5, 5], [1, 5]])),
     "clip_0.json: shape 2 ('bird', polygon): points must be [x, y] pairs of numbers"),
    (lambda d: d["shapes"].append(shape("bird", "mask", [[1, 1], [5, 5]])),
     "clip_0.json: shape 2 ('bird', mask): a mask shape needs its 'mask' (a base64 PNG)"),
    (lambda d: d.update(imagePath=None), "labelled does not exist and the file holds no imageData"),
    (lambda d: d.update(imagePath="gone.png", imageData="abc"), "clip_0.json: its imageData is not base64"),
    (lambda d: d.update(imagePath="gone.png", imageData=base64.b64encode(b"not a photo").decode()),
     "clip_0.json: cannot read its photo gone.png ("),
])
def test_broken_files_are_named_and_nothing_is_written(tmp_path, capsys, breakage, message):
    source = tmp_path / "labelled"
    source.mkdir()
    labelme_file(source, "clip_0", [shape("bird", "rectangle", [[2, 2], [9, 9]])])
    document = json.loads((source / "clip_0.json").read_text())
    breakage(document)
    (source / "clip_0.json").write_text(json.dumps(document))
    assert main(["make-dataset", "--labelme", str(source), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unknown_label_lists_those_there_are(tmp_path, capsys):
    source = tmp_path / "labelled"
    source.mkdir()
    labelme_file(source, "a", [shape("gull", "rectangle", [[2, 2], [9, 9]])])
    assert main(["make-dataset", "--labelme", str(source), "--category", "heron", "--out", str(tmp_path / "o")]) == 2
    assert "no shape labelled heron; the files have gull" in capsys.readouterr().err


def test_draw_region_details_labelme_leaves_open():
    """A shape without a shape_type is a polygon; a circle's radius is the distance to its second point in both
    directions; a mask shape's box may be any image mode, start at the photo's corner and hold 0/1 values; base64 with
    line breaks is read."""
    untyped = draw_region({"label": "bird", "points": [[10, 10], [30, 10], [30, 30]]}, HEIGHT, WIDTH)
    assert np.array_equal(untyped, labelme_reference("polygon", [[10, 10], [30, 10], [30, 30]])) and untyped.dtype == bool
    circle = draw_region(shape("bird", "circle", [[30, 20], [34, 23]]), HEIGHT, WIDTH)
    assert np.array_equal(circle, labelme_reference("circle", [[30, 20], [34, 23]]))  # radius 5
    box = np.zeros((6, 9), np.uint8)
    box[0:5, 0:8] = 1  # a 0/1 PNG, as some tools write, from its first row and column
    encoded = png_base64(box)
    drawn = draw_region(shape("bird", "mask", [[0, 0], [8, 5]], mask=encoded[:20] + "\n" + encoded[20:]), HEIGHT, WIDTH)
    expected = np.zeros((HEIGHT, WIDTH), bool)
    expected[0:5, 0:8] = True
    assert np.array_equal(drawn, expected) and drawn.dtype == bool
    colour = np.zeros((6, 9, 3), np.uint8)
    colour[0:5, 0:8] = (200, 10, 10)
    assert np.array_equal(draw_region(shape("bird", "mask", [[0, 0], [8, 5]], mask=png_base64(colour)), HEIGHT, WIDTH),
                          expected)
    tall = np.full((30, 4), 255, np.uint8)  # taller than wide, cut at the photo's bottom
    drawn = draw_region(shape("bird", "mask", [[50, 25], [53, 54]], mask=png_base64(tall)), HEIGHT, WIDTH)
    assert drawn[25:, 50:54].all() and drawn.sum() == 15 * 4


def test_every_broken_file_is_named_and_shapes_and_marks_counted(tmp_path, capsys):
    source = tmp_path / "labelled"
    source.mkdir()
    labelme_file(source, "a_0", [shape("bird", "cuboid", [[1, 1], [5, 5]])])
    labelme_file(source, "b_0", [shape("bird", "cuboid", [[1, 1], [5, 5]])])
    (source / "c_0.json").write_text("{not json")
    assert main(["make-dataset", "--labelme", str(source), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "c_0.json: cannot read it as JSON" in error
    (source / "c_0.json").unlink()
    assert main(["make-dataset", "--labelme", str(source), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "a_0.json: shape 1 has shape_type 'cuboid', not one of polygon, rectangle, circle, mask, line" in error
    assert "b_0.json: shape 1 has shape_type 'cuboid'" in error  # the files after a broken one are checked too
    for path in source.iterdir():
        path.unlink()
    labelme_file(source, "a_0", [shape("bird", "rectangle", [[1, 1], [4, 4]]), shape("bird", "rectangle", [[10, 10], [11, 11]]),
                                 shape("bird", "line", [[0, 0], [9, 9]]), shape("bird", "line", [[0, 5], [9, 5]])])
    labelme_file(source, "b_0", [shape("bird", "rectangle", [[1, 1], [4, 4]])], embed=True, image_path="")
    out = tmp_path / "out"
    assert main(["make-dataset", "--labelme", str(source), "--ratios", "1", "0", "0", "--out", str(out)]) == 0
    assert "shapes without an area, not drawn: 2 line" in capsys.readouterr().out
    masks = {image.stem: read_mask(mask) for image, mask in find_pairs(out / "train")}
    assert masks["a_0"].sum() == 16 + 4  # both rectangles: the union of the shapes
    assert masks["b_0"].sum() == 16  # an embedded photo without imagePath is named after its JSON file


def test_two_files_of_one_photo_and_a_missing_or_empty_folder_named(tmp_path, capsys):
    source = tmp_path / "labelled"
    (source / "other").mkdir(parents=True)
    labelme_file(source, "a_0", [shape("bird", "rectangle", [[1, 1], [4, 4]])])
    labelme_file(source / "other", "a_0", [shape("bird", "rectangle", [[1, 1], [4, 4]])])
    assert main(["make-dataset", "--labelme", str(source), "--out", str(tmp_path / "out")]) == 2
    assert "both annotate a photo with the stem 'a_0'" in capsys.readouterr().err
    assert main(["make-dataset", "--labelme", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    assert "none: --labelme folder does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["make-dataset", "--labelme", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "empty: no LabelMe .json files in it" in capsys.readouterr().err


def test_groups_come_from_the_photo_names(tmp_path):
    from birdseg.labelme import samples_from_labelme

    for stem in ("clipa_000", "clipa_001", "clipb_000"):
        labelme_file(tmp_path, stem, [shape("bird", "rectangle", [[1, 1], [4, 4]])])
    found = samples_from_labelme(tmp_path, group_regex=r"^(clip\w)_")
    assert [sample.group for sample in found.samples] == ["clipa", "clipa", "clipb"]
    first = found.samples[0]
    assert (first.stem, first.image_name, first.mask_source) == ("clipa_000", "clipa_000.png",
                                                                 str(tmp_path / "clipa_000.json"))
    assert first.read_image_bytes() == (tmp_path / "clipa_000.png").read_bytes() and found.ignored == ""


def test_every_file_is_checked_past_the_broken_ones_and_labels_filtered_shape_by_shape(tmp_path, capsys):
    source = tmp_path / "labelled"
    source.mkdir()
    for stem in ("a_0", "b_0"):  # photos that are not there
        labelme_file(source, stem, [shape("bird", "rectangle", [[1, 1], [4, 4]])], image_path=f"gone_{stem}.png")
    for stem in ("c_0", "d_0"):  # a size that is not the photo's
        labelme_file(source, stem, [shape("bird", "rectangle", [[1, 1], [4, 4]])])
        document = json.loads((source / f"{stem}.json").read_text())
        (source / f"{stem}.json").write_text(json.dumps({**document, "imageWidth": WIDTH + 1}))
    labelme_file(source, "e_0", [shape("bird", "rectangle", [[1, 1], [4, 4]])])
    (source / "sub").mkdir()
    labelme_file(source / "sub", "e_0", [shape("bird", "rectangle", [[1, 1], [4, 4]])])
    labelme_file(source / "sub", "f_0", [shape("bird", "rectangle", [[1, 1], [4, 4]])])
    document = json.loads((source / "sub" / "f_0.json").read_text())
    (source / "sub" / "f_0.json").write_text(json.dumps({**document, "imageHeight": HEIGHT + 1}))
    assert main(["make-dataset", "--labelme", str(source), "--category", "owl", "hawk", "--out",
                 str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert f"error: {source}: no shape labelled hawk, owl; the files have bird; " in error  # named first
    for name in ("a_0.json: its photo", "b_0.json: its photo", "c_0.json: says the photo is", "d_0.json: says",
                 f"{source / 'sub' / 'e_0.json'} and {source / 'e_0.json'} both annotate a photo with the stem 'e_0'",
                 "f_0.json: says the photo is"):
        assert name in error, name
    for path in list(source.rglob("*")):
        if path.is_file():
            path.unlink()
    labelme_file(source, "g_0", [shape("branch", "rectangle", [[20, 20], [29, 29]]),
                                 shape("Bird", "rectangle", [[1, 1], [4, 4]]),
                                 {"label": "bird", "points": [[30, 30], [33, 30], [33, 33], [30, 33]]},  # no type
                                 {"shape_type": "rectangle", "points": [[40, 30], [45, 35]]}])  # no label
    labelme_file(source, "h_0", [])
    out = tmp_path / "built"
    assert main(["make-dataset", "--labelme", str(source), "--category", "bird", "--ratios", "1", "0", "0",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "shapes without an area" not in printed
    masks = {image.stem: read_mask(mask) for image, mask in find_pairs(out / "train")}
    assert masks["g_0"].sum() == 16 + 16 and masks["h_0"].sum() == 0  # the birds after the branch: a polygon too
    assert main(["make-dataset", "--labelme", str(source), "--category", "owl", "--out", str(tmp_path / "x")]) == 2
    assert "no shape labelled owl; the files have Bird, bird, branch\n" in capsys.readouterr().err  # none unlabelled
    (source / "g_0.json").unlink()
    assert main(["make-dataset", "--labelme", str(source), "--category", "owl", "--out", str(tmp_path / "x")]) == 2
    assert "no shape labelled owl; the files have no shapes" in capsys.readouterr().err
