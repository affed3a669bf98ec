"""Encoder weights from Keras' ImageNet file or the old efficientnet file, loaded offline and checked exactly."""
import hashlib

import h5py
import keras
import numpy as np
import pytest
from conftest import recipe_at
from keras.src.legacy.saving import legacy_h5_format

from birdseg import model as M
from birdseg import pretrained

HEIGHT, WIDTH = 64, 96
# What the U-Net decoder takes from the encoder (its skip connections), and the encoder's output.
SKIPS = ("block6a_expand_activation", "block4a_expand_activation", "block3a_expand_activation",
         "block2a_expand_activation", "top_activation")


def save_legacy_h5(model, path):
    """Save weights in Keras' HDF5 layout, the one of efficientnetb3_notop.h5 and of the old efficientnet files."""
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    return path


@pytest.fixture(scope="module")
def keras_encoder(tmp_path_factory):
    """Keras' own EfficientNetB3 (random weights) and its weights file in Keras' layout."""
    encoder = keras.applications.EfficientNetB3(include_top=False, weights=None, input_shape=(HEIGHT, WIDTH, 3))
    return encoder, save_legacy_h5(encoder, tmp_path_factory.mktemp("weights") / "efficientnetb3_notop.h5")


def features(model, first_layer, x):
    """The skip-connection feature maps of `model`, fed with `x` at the input of `first_layer`."""
    sub = keras.Model(model.get_layer(first_layer).input, [model.get_layer(name).output for name in SKIPS])
    return [np.asarray(f) for f in sub(x)]


def assert_same_encoder(built, reference, reference_first_layer):
    """Both encoders, fed the same tensor after their own normalisation, give the same feature maps."""
    unet = built.get_layer(index=2)  # input, imagenet_normalization, U-Net
    x = np.random.default_rng(0).normal(size=(2, HEIGHT, WIDTH, 3)).astype("float32")
    for name, ours, theirs in zip(SKIPS, features(unet, "stem_conv", x), features(reference, reference_first_layer, x)):
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=name)


def test_keras_layout_loads_exactly(keras_encoder):
    encoder, path = keras_encoder
    built, used = M.build_model(recipe_at(HEIGHT, WIDTH), str(path))
    assert used["source"] == "local file" and used["layout"] == "keras"
    assert used["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # Keras pads explicitly before stem_conv (stem_conv_pad); ours pads inside the convolution: same numbers.
    assert_same_encoder(built, encoder, "stem_conv_pad")


def test_random_encoder_differs(keras_encoder):
    """The check above can fail: an encoder that did not get the file's weights gives other features."""
    encoder, _ = keras_encoder
    built, _ = M.build_model(recipe_at(HEIGHT, WIDTH), None)
    with pytest.raises(AssertionError):
        assert_same_encoder(built, encoder, "stem_conv_pad")


def test_old_efficientnet_layout_loads_exactly(tmp_path):
    import efficientnet.tfkeras as efficientnet

    encoder = efficientnet.EfficientNetB3(include_top=False, weights=None, input_shape=(HEIGHT, WIDTH, 3))
    path = save_legacy_h5(encoder, tmp_path / "any-name-at-all.h5")
    built, used = M.build_model(recipe_at(HEIGHT, WIDTH), str(path))
    assert used["layout"] == "efficientnet"
    assert_same_encoder(built, encoder, "stem_conv")


def test_other_network_is_refused_by_name(tmp_path):
    other = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(HEIGHT, WIDTH, 3))
    path = save_legacy_h5(other, tmp_path / "efficientnetb3_notop.h5")  # the name lies; the content decides
    with pytest.raises(pretrained.EncoderWeightsError, match=r"efficientnetb3_notop\.h5: not EfficientNetB3 encoder"):
        M.build_model(recipe_at(HEIGHT, WIDTH), str(path))


def test_classifier_top_is_left_over_and_refused(tmp_path):
    full = keras.applications.EfficientNetB3(include_top=True, weights=None, classes=3, input_shape=(HEIGHT, WIDTH, 3))
    path = save_legacy_h5(full, tmp_path / "efficientnetb3.h5")
    with pytest.raises(pretrained.EncoderWeightsError, match=r"1 layers are not in the encoder \(e\.g\. predictions\)"):
        M.build_model(recipe_at(HEIGHT, WIDTH), str(path))


def test_not_hdf5_is_refused(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_text("not weights")
    with pytest.raises(pretrained.EncoderWeightsError, match=r"weights\.h5: cannot read it as HDF5"):
        M.build_model(recipe_at(HEIGHT, WIDTH), str(path))


def test_imagenet_from_keras_cache_without_network(keras_encoder, tmp_path, monkeypatch):
    encoder, path = keras_encoder
    cached = tmp_path / "models" / pretrained.KERAS_FILE
    cached.parent.mkdir()
    cached.write_bytes(path.read_bytes())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    # The real file's hash is Keras'; this stand-in has its own, as the real one would.
    monkeypatch.setattr(pretrained, "KERAS_FILE_HASH", hashlib.md5(cached.read_bytes()).hexdigest())

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", no_network)
    built, used = M.build_model(recipe_at(HEIGHT, WIDTH), "imagenet")
    assert used == {"source": "imagenet (keras)", "file": str(cached), "layout": "keras",
                    "sha256": hashlib.sha256(cached.read_bytes()).hexdigest()}
    assert_same_encoder(built, encoder, "stem_conv_pad")


def test_the_hash_checked_is_keras_own():
    from keras.src.applications.efficientnet import WEIGHTS_HASHES

    assert pretrained.KERAS_FILE_HASH == WEIGHTS_HASHES["b3"][1]


def test_a_cached_file_that_does_not_match_keras_hash_is_not_used(keras_encoder, tmp_path, monkeypatch):
    """With Keras' real hash (not replaced, as the tests above must), the stand-in file in the cache fails the
    check: Keras would download again, which fails offline, so the encoder starts random, loudly."""
    _, path = keras_encoder
    cached = tmp_path / "models" / pretrained.KERAS_FILE
    cached.parent.mkdir()
    cached.write_bytes(path.read_bytes())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    downloads = []

    def offline(url, *args, **kwargs):
        downloads.append(url)
        raise Exception("URL fetch failure")

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", offline)
    with pytest.warns(M.WeightsFallbackWarning, match="RANDOM INITIALISATION"):
        _, used = M.build_model(recipe_at(32, 32), "imagenet")
    assert used["source"] == "random" and downloads == [pretrained.KERAS_URL]


def test_imagenet_offline_without_cache_falls_back_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -2] Name or service not known")

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", offline)
    with pytest.warns(M.WeightsFallbackWarning, match="RANDOM INITIALISATION") as caught:
        built, used = M.build_model(recipe_at(32, 32), "imagenet")
    assert used["source"] == "random" and built.output_shape == (None, 32, 32, 1)
    # The message says which file to copy and where.
    assert str(tmp_path / "models" / "efficientnetb3_notop.h5") in str(caught[0].message)


def test_our_normalisation_equals_keras_imagenet_normalisation():
    """Keras' model: x/255, Normalization with the file's statistics (its 'variance' holds the std, a known
    Keras quirk), then a rescaling by 1/sqrt(std). Ours: (x - mean) / std on [0, 1] input."""
    encoder = keras.applications.EfficientNetB3(include_top=False, weights=None, input_shape=(HEIGHT, WIDTH, 3))
    rescaling, normalization = encoder.layers[1:3]  # named rescaling_N, normalization_N in a busy session
    assert isinstance(rescaling, keras.layers.Rescaling) and isinstance(normalization, keras.layers.Normalization)
    normalization.set_weights([np.array(M.IMAGENET_MEAN, "float32"), np.array(M.IMAGENET_STD, "float32"),
                               np.array(0, normalization.get_weights()[2].dtype)])
    normalization.finalize_state()  # as loading a weights file does
    photo = np.random.default_rng(1).integers(0, 256, (1, HEIGHT, WIDTH, 3)).astype("float32")
    theirs = normalization(rescaling(photo)) / np.sqrt(np.array(M.IMAGENET_STD, "float32"))
    built, _ = M.build_model(recipe_at(HEIGHT, WIDTH), None)
    ours = built.get_layer("imagenet_normalization")(photo / 255.0)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=1e-5)


def test_download_weights_cli_prints_path_and_sha256(keras_encoder, tmp_path, monkeypatch, capsys):
    from birdseg.cli import main

    _, path = keras_encoder
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(pretrained, "KERAS_FILE_HASH", hashlib.md5(path.read_bytes()).hexdigest())
    # Stands in for the download: writes the file where Keras would.
    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve",
                        lambda url, target, *rest: open(target, "wb").write(path.read_bytes()))
    assert main(["download-weights"]) == 0
    out = capsys.readouterr().out
    cached = tmp_path / "models" / pretrained.KERAS_FILE
    assert str(cached) in out and f"sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}" in out


def test_download_weights_cli_offline_says_what_to_copy(tmp_path, monkeypatch, capsys):
    from birdseg.cli import main

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure")

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", offline)
    assert main(["download-weights"]) == 1
    assert str(tmp_path / "models" / pretrained.KERAS_FILE) in capsys.readouterr().err


@pytest.mark.parametrize("value,message", [("missing.h5", "expected None, 'imagenet' or an existing .h5 file"),
                                           (__file__, "must be .h5")])
def test_bad_weights_value(value, message):
    with pytest.raises((FileNotFoundError, ValueError), match=message):
        pretrained.locate_encoder_weights(value)
