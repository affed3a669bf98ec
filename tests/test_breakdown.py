import numpy as np
import pytest

from birdseg import breakdown, synthetic
from birdseg.randomised import STYLES


@pytest.mark.parametrize("style", ["sky", "randomised", "mixed"])
def test_notes_describe_the_same_drawing(style):
    """Asking the generator what it drew changes nothing it draws."""
    for index in range(6):
        notes = {}
        image, mask = synthetic.drawing(5, 2, index, STYLES[style], notes=notes)
        again, again_mask = synthetic.drawing(5, 2, index, STYLES[style])
        np.testing.assert_array_equal(image, again)
        np.testing.assert_array_equal(mask, again_mask)
        assert set(notes) == {"style", "scene", "layout", "distractors", "occluded"}
        assert notes["style"] == ("sky" if style == "sky" else notes["style"])
        assert notes["layout"] != "none" or not mask.any()
        attributes = breakdown.drawing_attributes(image, mask, notes)
        assert set(attributes) == set(breakdown.ATTRIBUTES)


def test_drawing_is_what_the_dataset_holds(tmp_path):
    synthetic.write_dataset(tmp_path / "d", {"train": 1, "val": 1, "test": 2}, seed=3, sample=STYLES["mixed"])
    from PIL import Image

    _, mask = synthetic.drawing(3, 2, 1, STYLES["mixed"])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "d/test/mask/test_0001.png")), mask)


def test_occlusion_and_distractors_are_counted():
    seen = {"occluded": set(), "distractors": set(), "layout": set()}
    for index in range(40):
        notes = {}
        synthetic.drawing(1, 0, index, STYLES["randomised"], resolution=(160, 96), notes=notes)
        seen["occluded"].add(notes["occluded"] > 0)
        seen["distractors"].add(min(notes["distractors"], 2))
        seen["layout"].add(notes["layout"])
    assert seen["occluded"] == {True, False} and seen["distractors"] == {0, 1, 2}
    assert "close-up" in seen["layout"] and "flock" in seen["layout"]


def test_contrast_is_the_lab_distance_to_the_surround():
    image = np.full((60, 60, 3), 128, np.uint8)
    mask = np.zeros((60, 60), bool)
    mask[20:40, 20:40] = True
    assert breakdown.bird_contrast(image, mask) == pytest.approx(0.0, abs=1e-3)
    image[mask] = (255, 255, 255)
    # mid grey 128 is L* 53.6, white 100: only lightness differs
    assert breakdown.bird_contrast(image, mask) == pytest.approx(100 - 53.585, abs=0.05)
    image[:] = 0
    image[mask] = 255
    image[0:5] = 255  # bright, but outside the ring of 0.5 * 20 = 10 pixels around the bird
    assert breakdown.bird_contrast(image, mask) == pytest.approx(100.0, abs=0.05)
    assert breakdown.bird_contrast(image, np.zeros((60, 60), bool)) is None
    assert breakdown.bird_contrast(image, np.ones((60, 60), bool)) is None


def test_labels_and_bins():
    assert breakdown.bin_label(0.004, breakdown.SHARE_BINS) == "under 0.5 %"
    assert breakdown.bin_label(0.005, breakdown.SHARE_BINS) == "0.5-3 %"
    assert breakdown.bin_label(0.5, breakdown.SHARE_BINS) == "10 % or more"
    assert breakdown.scene_group("sky over water") == "water below a horizon"
    assert breakdown.scene_group("grass") == "grass"
    mask = np.zeros((100, 100), bool)
    mask[:20, :20] = True  # 4 % of the frame
    notes = {"style": "randomised", "scene": "rock", "layout": "one", "occluded": 1, "distractors": 3}
    attributes = breakdown.drawing_attributes(np.zeros((100, 100, 3), np.uint8), mask, notes)
    assert attributes == {"style": "randomised", "scene": "rock", "layout": "one", "bird share": "3-10 %",
                          "contrast": "faint (dE < 10)", "occluded": "a bird partly hidden",
                          "distractors": "two or more"}


def test_grouped_scores_pool_pixels_per_group():
    rows = [
        {"attributes": {"style": "sky"}, "counts": (90, 10, 0)},     # IoU 0.9, 90 bird pixels
        {"attributes": {"style": "sky"}, "counts": (0, 0, 10)},      # IoU 0, 10 bird pixels
        {"attributes": {"style": "sky"}, "counts": (0, 0, 0)},       # no bird, none found
        {"attributes": {"style": "randomised"}, "counts": (10, 30, 60)},
    ]
    sky, randomised = breakdown.grouped_scores(rows, "style")
    assert sky["group"] == "sky" and sky["images"] == 3 and sky["share"] == 0.75
    assert sky["pooled_iou"] == pytest.approx(90 / 110)
    assert sky["mean_image_iou"] == pytest.approx(0.45)  # the image without a bird left out
    assert sky["pixels"] == pytest.approx(100 / 170)
    assert randomised["pooled_iou"] == pytest.approx(0.1) and randomised["pixels"] == pytest.approx(70 / 170)
    text = breakdown.breakdown_table(rows, attributes=("style",))
    assert "0.818" in text and "0.450" in text and "58.8%" in text
