import numpy as np
import pytest
from conftest import cli

from birdseg import randomised
from birdseg.images import read_image, read_mask
from birdseg.pairs import find_pairs


def test_same_seed_same_sample():
    a = randomised.randomised_sample(np.random.default_rng([5, 1]))
    b = randomised.randomised_sample(np.random.default_rng([5, 1]))
    c = randomised.randomised_sample(np.random.default_rng([5, 2]))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape != c[0].shape or not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("kind", randomised.BACKGROUNDS)
def test_every_background_is_drawn_and_not_flat(kind):
    image = randomised.scene(kind, 60, 90, np.random.default_rng(3))
    assert image.shape == (60, 90, 3) and np.isfinite(image).all()
    assert image.std() > 2, f"{kind} is flat"


@pytest.mark.parametrize("pose", randomised.POSES)
def test_each_pose_draws_a_bird_exactly_where_its_mask_is(pose):
    """On a flat grey frame: the mask is where the drawing changed the frame (give or take its anti-aliased edge and
    motion blur), and nothing far from the mask changed."""
    for seed in range(4):
        image = np.full((120, 160, 3), 128, np.float32)
        mask = np.zeros((120, 160), bool)
        box = randomised.draw_textured_bird(image, mask, (80, 60), 24.0, pose, np.random.default_rng(seed))
        assert box is not None and mask.sum() > 30
        changed = np.abs(image - 128).max(axis=2) > 1
        assert changed[mask].mean() > 0.8, "the bird is drawn where its mask is"
        near = np.zeros((120, 160), np.uint8)
        near[mask] = 1
        import cv2

        near = cv2.dilate(near, np.ones((25, 25), np.uint8)).astype(bool)  # blur is at most 9 px long
        assert not changed[~near].any(), "drawing reached far from the mask"


def test_a_close_up_bird_is_drawn_on_a_bounded_canvas_exactly_where_its_mask_is(monkeypatch):
    sizes = []
    real_fill = randomised.fill_polygon
    monkeypatch.setattr(randomised, "fill_polygon",
                        lambda image, cover, points, fill: sizes.append(image.shape[0]) or
                        real_fill(image, cover, points, fill))
    image = np.full((720, 1280, 3), 128, np.float32)
    mask = np.zeros((720, 1280), bool)
    randomised.draw_textured_bird(image, mask, (640, 360), 1280 / 3, "standing", np.random.default_rng(1))
    assert max(sizes) <= randomised.MAX_CANVAS
    assert mask.mean() > 0.05, "a third of the frame's width"
    changed = np.abs(image - 128).max(axis=2) > 1
    assert changed[mask].mean() > 0.8 and changed[~mask].mean() < 0.01


def test_close_ups_frame_one_or_two_large_birds():
    for seed in range(40):
        layout = randomised.close_up_layout(720, 1280, np.random.default_rng(seed))
        assert len(layout) in (1, 2)
        assert all(1280 / 8 <= length <= 1280 / 3 and 0 < x < 1280 and 0 < y < 720 for (x, y), length in layout)


def test_mixed_style_draws_sky_and_randomised_samples_deterministically(monkeypatch):
    a = randomised.mixed_sample(np.random.default_rng(4), resolution=(160, 96))
    b = randomised.mixed_sample(np.random.default_rng(4), resolution=(160, 96))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    drawn = []
    monkeypatch.setattr(randomised, "synthetic_sample", lambda rng, resolution, notes: drawn.append("sky") or a)
    monkeypatch.setattr(randomised, "randomised_sample", lambda rng, resolution, notes: drawn.append("randomised") or a)
    for seed in range(200):
        randomised.mixed_sample(np.random.default_rng(seed))
    assert abs(drawn.count("sky") / len(drawn) - randomised.SKY_SHARE) < 0.1


def test_a_bird_cut_by_the_frame_keeps_its_visible_part():
    image = np.zeros((80, 120, 3), np.float32)
    mask = np.zeros((80, 120), bool)
    box = randomised.draw_textured_bird(image, mask, (0, 40), 30.0, "standing", np.random.default_rng(0))
    assert box[0] == 0 and 0 < mask.sum() and not mask[:, 60:].any()


@pytest.mark.parametrize("kind", randomised.DISTRACTORS)
def test_distractors_mark_what_they_cover(kind):
    """What a distractor paints is what it reports as covered: in front of a bird, exactly those pixels leave the
    mask."""
    for seed in range(5):
        image = np.full((90, 140, 3), -1.0, np.float32)  # no colour a distractor paints
        cover = np.zeros((90, 140), np.float32)
        randomised.draw_distractor(image, cover, np.random.default_rng(seed), kind)
        painted = (image != -1).any(axis=2)
        np.testing.assert_array_equal(painted, cover > 0.5)


def test_distractors_and_scenes_are_never_bird(monkeypatch):
    monkeypatch.setattr(randomised, "randomised_layout", lambda height, width, rng, notes=None: [])
    for seed in range(12):
        image, mask = randomised.randomised_sample(np.random.default_rng(seed), resolution=(160, 96))
        assert image.shape == (96, 160, 3) and not mask.any()


def test_occluders_take_the_pixels_they_cover_out_of_the_mask():
    for seed in range(6):
        rng = np.random.default_rng(seed)
        image = np.full((100, 150, 3), 128, np.float32)
        mask = np.zeros((100, 150), bool)
        box = randomised.draw_textured_bird(image, mask, (75, 50), 30.0, "flying", rng)
        before, drawn = mask.copy(), image.copy()
        randomised.occlude(image, mask, box, rng)
        assert (mask <= before).all() and mask.sum() < before.sum()
        repainted = (image != drawn).any(axis=2)
        assert not (mask & repainted).any(), "a pixel painted over is still counted as bird"


def test_samples_vary_in_pose_scene_and_bird_size(monkeypatch):
    poses, scenes = [], []
    real_bird, real_scene = randomised.draw_textured_bird, randomised.scene
    monkeypatch.setattr(randomised, "draw_textured_bird",
                        lambda image, mask, centre, length, pose, rng: poses.append(pose) or
                        real_bird(image, mask, centre, length, pose, rng))
    monkeypatch.setattr(randomised, "scene", lambda kind, *args, **kw: scenes.append(kind) or real_scene(kind, *args, **kw))
    fractions = []
    for seed in range(60):
        _, mask = randomised.randomised_sample(np.random.default_rng(seed), resolution=(200, 120))
        assert set(np.unique(mask)) <= {0, 255}
        fractions.append((mask > 0).mean())
    assert set(poses) == set(randomised.POSES) and set(scenes) == set(randomised.BACKGROUNDS)
    assert min(fractions) == 0 and max(fractions) > 0.05


def test_make_synthetic_randomised_style_passes_the_dataset_check(tmp_path, capsys):
    out = tmp_path / "randomised_birds"
    assert cli("make-synthetic", "--out", out, "--style", "randomised", "--train", 3, "--val", 1, "--test", 1) == 0
    assert "birdseg/randomised.py" in (out / "SYNTHETIC.txt").read_text()
    assert "--style randomised" in (out / "SYNTHETIC.txt").read_text()
    assert cli("check-dataset", out) == 0
    image_path, mask_path = find_pairs(out / "train")[0]
    assert read_image(image_path).shape[:2] == read_mask(mask_path).shape
