"""Pretrained encoder weights: ImageNet EfficientNetB3 weights from Keras, or a local .h5 file, copied into the U-Net.

segmentation-models' own ImageNet download (efficientnet 1.0.0's GitHub release) is no longer served (404).
Keras serves the same network's weights (`efficientnetb3_notop.h5`, hash-checked) and its
layers carry the same names and shapes as our encoder, so the weights are copied layer by layer, by name.

Two file layouts are read, told apart by their content (never by the file name):
- "keras": Keras' `efficientnetb3_notop.h5`. It also holds the weights of Keras' `normalization`
  layer; our model normalises with its own `imagenet_normalization` layer, so that one is not copied.
- "efficientnet": the old `efficientnet-b3_weights_tf_dim_ordering_tf_kernels_autoaugment_notop.h5`.
Both are Keras' HDF5 weights layout (attribute `layer_names`, one group per layer).
"""
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras
import numpy as np

KERAS_FILE = "efficientnetb3_notop.h5"
KERAS_URL = "https://storage.googleapis.com/keras-applications/" + KERAS_FILE
LEGACY_FILE = "efficientnet-b3_weights_tf_dim_ordering_tf_kernels_autoaugment_notop.h5"
ENCODER_OUTPUT = "top_activation"  # last layer of the EfficientNetB3 encoder inside the U-Net
# Keras' input normalisation ("normalization", "normalization_1", ... as Keras numbers names in a session);
# our model has its own imagenet_normalization layer instead.
KERAS_NORMALIZATION = re.compile(r"^normalization(_\d+)?$")

# The MD5 Keras itself checks this download against (keras.applications' WEIGHTS_HASHES["b3"][1]; a test keeps
# the two equal). Held here so the check never depends on importing Keras internals.
KERAS_FILE_HASH = "af6d107764bb5b1abb91932881670226"


class WeightsFallbackWarning(UserWarning):
    """The requested encoder weights could not be had; training starts from random initialisation."""


@dataclass(frozen=True)
class EncoderWeights:
    """Where the encoder's weights come from: source "imagenet (keras)", "local file" or "random", and the file."""

    source: str
    file: Path = None


class EncoderWeightsError(ValueError):
    """A weights file that cannot initialise the encoder; the message names the file and what is wrong."""


def keras_home():
    """`$KERAS_HOME`, read now (Keras reads it once at import), else `~/.keras`."""
    return Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser()


def keras_cache_path():
    """Where the downloaded file is kept and looked for: `$KERAS_HOME/models/efficientnetb3_notop.h5`."""
    return keras_home() / "models" / KERAS_FILE


def fetch_imagenet_weights():
    """Path of Keras' EfficientNetB3 ImageNet weights: from the cache when there, else downloaded once.

    Raises whatever the download raises when offline (keras.utils.get_file raises a bare Exception).
    """
    path = keras.utils.get_file(
        KERAS_FILE, KERAS_URL, cache_dir=str(keras_home()), cache_subdir="models", file_hash=KERAS_FILE_HASH
    )
    return Path(path)


def locate_encoder_weights(encoder_weights):
    """Resolve an ENCODER_WEIGHTS value (None, "imagenet" or a local .h5 path) to an EncoderWeights.

    "imagenet" is Keras' file, from the cache or downloaded once; when it cannot be had (offline, no
    cached file), a loud WeightsFallbackWarning says what to copy where, and the encoder starts random.
    """
    if isinstance(encoder_weights, EncoderWeights):
        return encoder_weights
    if encoder_weights in (None, "", "none", "None"):
        return EncoderWeights("random")
    if encoder_weights != "imagenet":
        path = Path(encoder_weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ENCODER_WEIGHTS={encoder_weights!r}: expected None, 'imagenet' or an existing .h5 file")
        if path.suffix.lower() != ".h5":
            raise ValueError(f"ENCODER_WEIGHTS={encoder_weights!r}: a local weights file must be .h5 (Keras HDF5 weights)")
        return EncoderWeights("local file", path)
    try:
        return EncoderWeights("imagenet (keras)", fetch_imagenet_weights())
    except Exception as error:  # noqa: BLE001  (keras.utils.get_file raises a bare Exception offline)
        warnings.warn(
            f"\n{'!' * 78}\n!! Could not get ImageNet weights for EfficientNetB3 ({type(error).__name__}: {error}).\n"
            "!! Training continues from RANDOM INITIALISATION: expect lower accuracy and longer training.\n"
            "!! Fix: go online once (`python -m birdseg_utils download-weights`), or copy\n"
            f"!! {KERAS_FILE} from a machine that has it to\n!! {keras_cache_path()},\n"
            f"!! or set ENCODER_WEIGHTS to its path.\n{'!' * 78}",
            WeightsFallbackWarning,
            stacklevel=3,
        )
        return EncoderWeights("random")


def read_weights_file(path):
    """Read a Keras HDF5 weights file. Returns {layer name: [arrays in the layer's weight order]}."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            group = handle.get("model_weights", handle)  # the weights of a whole saved model, or a weights file
            if "layer_names" not in group.attrs:
                raise EncoderWeightsError(
                    f"{path}: not a Keras HDF5 weights file (no 'layer_names'); expected {KERAS_FILE} or {LEGACY_FILE}"
                )
            layers = {}
            for raw_name in group.attrs["layer_names"]:
                name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
                weight_names = group[name].attrs.get("weight_names", [])
                arrays = [np.asarray(group[name][w]) for w in weight_names]
                if arrays:
                    layers[name] = arrays
            return layers
    except OSError as error:
        raise EncoderWeightsError(f"{path}: cannot read it as HDF5 ({error})") from error


def encoder_layers(unet):
    """The U-Net's encoder layers that have weights, by name: every layer up to `top_activation`."""
    encoder = keras.Model(unet.input, unet.get_layer(ENCODER_OUTPUT).output)
    return {layer.name: layer for layer in encoder.layers if layer.weights}


def load_encoder_weights(unet, path):
    """Copy the weights in `path` into the encoder of `unet` (a segmentation_models U-Net), by layer name.

    Every encoder layer must receive weights of the right shapes and nothing in the file may be left over;
    otherwise nothing is changed and EncoderWeightsError says what does not match. Returns the layout
    ("keras" or "efficientnet").
    """
    path = Path(path)
    stored = read_weights_file(path)
    normalization = [name for name in stored if KERAS_NORMALIZATION.match(name)]
    layout = "keras" if normalization else "efficientnet"
    for name in normalization:
        del stored[name]
    targets = encoder_layers(unet)
    missing = [name for name in targets if name not in stored]
    extra = [name for name in stored if name not in targets]
    mismatched = [
        f"{name} {[a.shape for a in stored[name]]} instead of {[tuple(w.shape) for w in layer.weights]}"
        for name, layer in targets.items()
        if name in stored and [a.shape for a in stored[name]] != [tuple(w.shape) for w in layer.weights]
    ]
    if missing or extra or mismatched:
        problems = [
            f"{len(missing)} of the {len(targets)} encoder layers have no weights in it (e.g. {_first(missing)})"
            if missing else "",
            f"{len(extra)} layers are not in the encoder (e.g. {_first(extra)})" if extra else "",
            f"{len(mismatched)} layers have other shapes (e.g. {_first(mismatched, 2)})" if mismatched else "",
        ]
        raise EncoderWeightsError(
            f"{path}: not EfficientNetB3 encoder weights without the classifier top: "
            + "; ".join(p for p in problems if p)
            + f". Expected Keras' {KERAS_FILE} or efficientnet's {LEGACY_FILE}."
        )
    for name, layer in targets.items():
        layer.set_weights(stored[name])
    return layout


def _first(items, count=3):
    return ", ".join(items[:count]) + (", ..." if len(items) > count else "")
