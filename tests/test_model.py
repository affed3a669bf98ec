import keras
import numpy as np
import pytest
from conftest import recipe_at

from birdseg import metrics, speedups
from birdseg import model as M


@pytest.fixture(scope="module")
def unet():
    built, weights = M.build_model(recipe_at(64, 96), None)
    assert weights == {"source": "random", "file": None, "sha256": None}
    return M.compile_model(built, 1e-4, "bce_jaccard")


def test_output_shape_and_range(unet):
    out = np.asarray(unet.predict_on_batch(np.random.rand(2, 64, 96, 3).astype("float32")))
    assert out.shape == (2, 64, 96, 1)
    assert 0 <= out.min() and out.max() <= 1
    assert M.model_image_size(unet) == (64, 96)


# ---------------------------------------------------------------- loss and metrics


def masks():
    a = np.zeros((1, 8, 8, 1), "float32")
    a[:, 2:6, 2:6] = 1
    b = np.zeros_like(a)
    b[:, 6:, 6:] = 1
    return a, b


def metric_value(kind, y_true, y_pred):
    metric = M.ThresholdScore(kind)
    metric.update_state(y_true, y_pred)
    return float(metric.result())


def test_identical_masks_score_one_and_disjoint_zero():
    a, b = masks()
    for kind in ("iou", "f1"):
        assert metric_value(kind, a, a) == pytest.approx(1.0)
        assert metric_value(kind, a, b) == pytest.approx(0.0)
    assert metrics.scores_from_counts(*metrics.confusion_counts(a, a)[:3])["iou"] == 1.0
    assert metrics.scores_from_counts(*metrics.confusion_counts(a, b)[:3])["iou"] == 0.0


def test_half_overlap_known_values():
    a = np.zeros((1, 4, 4, 1), "float32")
    a[:, :, :2] = 1
    p = np.zeros_like(a)
    p[:, :, 1:3] = 0.9  # thresholded at 0.5: tp 4, fp 4, fn 4
    assert metric_value("iou", a, p) == pytest.approx(4 / 12)
    assert metric_value("f1", a, p) == pytest.approx(8 / 16)
    assert metric_value("precision", a, p) == pytest.approx(0.5)
    assert metric_value("recall", a, p) == pytest.approx(0.5)


def test_metric_accumulates_over_batches_not_mean_of_batches():
    a, b = masks()
    metric = M.ThresholdScore("iou")
    metric.update_state(a, a)  # 16 tp
    metric.update_state(a, b)  # 16 fn, 4 fp
    assert float(metric.result()) == pytest.approx(16 / 36)


def test_empty_truth_and_prediction_is_perfect():
    empty = np.zeros((1, 4, 4, 1), "float32")
    assert metric_value("iou", empty, empty) == 1.0
    assert metrics.scores_from_counts(0, 0, 0) == {"iou": 1.0, "f1": 1.0, "precision": 1.0, "recall": 1.0}


@pytest.mark.parametrize("loss", sorted(M.LOSSES))
def test_loss_zero_for_perfect_and_large_for_wrong(loss):
    a, b = masks()
    perfect = float(M.LOSSES[loss](a, np.clip(a, 1e-7, 1 - 1e-7)))
    wrong = float(M.LOSSES[loss](a, np.clip(b, 1e-7, 1 - 1e-7)))
    assert perfect == pytest.approx(0.0, abs=1e-3)
    assert wrong > 1.5


def test_focal_loss_weighs_uncertain_pixels_more_than_confident_ones():
    a, _ = masks()
    confident = np.where(a > 0, 0.9, 0.1).astype("float32")
    unsure = np.where(a > 0, 0.6, 0.4).astype("float32")
    focal = [float(M.focal_jaccard_loss(a, p) - M.jaccard_loss(a, p)) for p in (confident, unsure)]
    bce = [float(M.bce_jaccard_loss(a, p) - M.jaccard_loss(a, p)) for p in (confident, unsure)]
    assert focal[1] / focal[0] > 2 * bce[1] / bce[0]  # focal's (1 - p)^gamma factor widens the gap


def test_per_image_jaccard_is_segmentation_models_per_image_jaccard():
    import segmentation_models as sm

    rng = np.random.default_rng(0)
    truth = (rng.random((3, 16, 16, 1)) < 0.3).astype("float32")  # a bird in every image
    predicted = rng.random((3, 16, 16, 1)).astype("float32")
    theirs = sm.losses.JaccardLoss(per_image=True, smooth=M.SMOOTH)(truth, predicted)
    assert float(M.per_image_jaccard_loss(truth, predicted)) == pytest.approx(float(theirs), rel=1e-5)


def test_per_image_jaccard_weighs_a_missed_small_bird_like_a_missed_large_one():
    truth = np.zeros((2, 32, 32, 1), "float32")
    truth[0, 2:30, 2:30] = 1  # a bird filling its frame, found
    truth[1, 10:13, 10:13] = 1  # a small bird, missed
    predicted = np.clip(truth.copy(), 1e-7, 1 - 1e-7)
    predicted[1] = 1e-7
    pooled, per_image = float(M.jaccard_loss(truth, predicted)), float(M.per_image_jaccard_loss(truth, predicted))
    assert pooled < 0.02  # 9 missed pixels of 793
    assert per_image == pytest.approx(0.5, abs=1e-3)  # one image of two entirely wrong


def test_per_image_jaccard_leaves_images_without_a_bird_to_the_cross_entropy():
    bird = np.zeros((1, 8, 8, 1), "float32")
    bird[:, 2:6, 2:6] = 1
    predicted = np.full((2, 8, 8, 1), 0.3, "float32")
    both = float(M.per_image_jaccard_loss(np.concatenate([bird, np.zeros_like(bird)]), predicted))
    assert both == pytest.approx(float(M.per_image_jaccard_loss(bird, predicted[:1])) / 2, rel=1e-5)
    empty = np.zeros((2, 8, 8, 1), "float32")
    assert float(M.per_image_jaccard_loss(empty, predicted)) == 0.0
    assert float(M.bce_jaccard_per_image_loss(empty, predicted)) > 0.3  # -log(0.7) per pixel


@pytest.mark.slow
def test_saved_model_reloads_in_fresh_process(unet, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    path = tmp_path / "model.keras"
    keras.Model(unet.inputs, unet.outputs).save(path)
    x = np.random.default_rng(0).random((1, 64, 96, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    expected = np.asarray(unet.predict_on_batch(x))
    script = (
        "import numpy as np, birdseg_utils as bu; "
        f"m = bu.load_model(r'{path}'); np.save(r'{tmp_path / 'y.npy'}', m.predict_on_batch(np.load(r'{tmp_path / 'x.npy'}')))"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, capture_output=True)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-5)


def test_load_model_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved model here"):
        M.load_model(tmp_path)



def test_init_model_copies_every_weight_at_another_input_size(unet, tmp_path):
    keras.Model(unet.inputs, unet.outputs).save(tmp_path / "model.keras")
    started, used = M.build_model(recipe_at(96, 128), "imagenet", init_model=tmp_path)  # imagenet not used
    assert used["source"] == "birdseg model" and used["file"] == str(tmp_path / "model.keras")
    assert len(used["sha256"]) == 64 and "birdseg model" in M.describe_weights(used)
    for mine, theirs in zip(started.get_weights(), unet.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    fresh, _ = M.build_model(recipe_at(96, 128), None)
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), unet.get_weights()))


def test_init_model_of_another_network_is_refused(tmp_path):
    inputs = keras.Input((32, 32, 3))
    keras.Model(inputs, keras.layers.Conv2D(1, 3)(inputs)).save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match=r"other\.keras: 2 weights, this model needs \d+: not the same network"):
        M.build_model(recipe_at(32, 32), None, init_model=tmp_path / "other.keras")


def test_compile_model_uses_the_fused_adam_the_loss_and_both_metrics(unet):
    assert isinstance(unet.optimizer, speedups.FusedAdam)
    assert unet.loss is M.bce_jaccard_loss
    metrics = unet.get_compile_config()["metrics"]
    assert [(metric["config"]["name"], metric["config"]["kind"]) for metric in metrics] == [("iou_score", "iou"),
                                                                                          ("f1_score", "f1")]


def test_every_recipe_loss_has_its_function():
    from birdseg.recipe import LOSS_NAMES

    assert tuple(M.LOSSES) == LOSS_NAMES


def drop_connect_rates(model):
    return [layer.rate for layer in model.layers[2].layers if isinstance(layer, keras.layers.Dropout)]


def test_drop_connect_rate_scales_the_encoders_stochastic_depth(unet, tmp_path):
    default = drop_connect_rates(unet)
    assert len(default) == 19 and max(default) > M.ENCODER_DROP_CONNECT_RATE  # efficientnet's own, deeper blocks more
    half, _ = M.build_model(recipe_at(64, 96, drop_connect_rate=0.1), None)
    np.testing.assert_allclose(drop_connect_rates(half), np.array(default) / 2)
    none, _ = M.build_model(recipe_at(64, 96, drop_connect_rate=0), None)
    none.save(tmp_path / "none.keras")
    assert drop_connect_rates(M.load_model(tmp_path / "none.keras")) == [0.0] * 19


def conv_filters(model):
    return [layer.filters for layer in model.layers[2].layers if layer.name.startswith("decoder_stage")
            and isinstance(layer, keras.layers.Conv2D)]


def test_decoder_width_sets_every_decoder_block_and_survives_save_and_load(unet, tmp_path):
    assert M.decoder_filters(256) == (256, 128, 64, 32, 16)  # segmentation_models' own
    assert conv_filters(unet) == [256, 256, 128, 128, 64, 64, 32, 32, 16, 16]  # two convolutions per block
    narrow, _ = M.build_model(recipe_at(64, 96, decoder_width=32), None)
    assert conv_filters(narrow) == [32, 32, 16, 16, 8, 8, 4, 4, 2, 2]
    assert narrow.count_params() < unet.count_params()
    narrow.save(tmp_path / "narrow.keras")
    reloaded = M.load_model(tmp_path / "narrow.keras")
    assert conv_filters(reloaded) == conv_filters(narrow)
    assert reloaded.predict_on_batch(np.zeros((1, 64, 96, 3))).shape == (1, 64, 96, 1)
    with pytest.raises(ValueError, match=r"narrow\.keras: weight decoder_stage.* has shape .*, .* needs"):
        M.build_model(recipe_at(64, 96), None, init_model=tmp_path / "narrow.keras")  # the default width


@pytest.mark.parametrize("width", [0, 24, 100, 128.0, True, "128"])
def test_decoder_width_checked(width):
    with pytest.raises(ValueError, match=rf"DECODER_WIDTH={width!r}: expected a positive multiple of 16"):
        M.decoder_filters(width)
