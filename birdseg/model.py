"""Model: U-Net with an EfficientNetB3 encoder, its loss and metrics, loading a saved model.

The model takes float RGB images in [0, 1] of the size it was built for and returns the
probability of "bird" per pixel, shape (batch, height, width, 1). ImageNet normalisation is a
layer inside the model, so a saved model needs no outside preprocessing.
"""
from pathlib import Path

import keras
import numpy as np
import segmentation_models as sm  # SM_FRAMEWORK is set by birdseg/__init__.py, which runs first
import tensorflow as tf
from keras import ops

from birdseg import pretrained, speedups
from birdseg.defaults import THRESHOLD
from birdseg.devices import gpu_available
from birdseg.files import sha256
from birdseg.layout import MODEL_FILE
from birdseg.pretrained import WeightsFallbackWarning  # noqa: F401  (re-exported)
from birdseg.recipe import decoder_filters

BACKBONE = "efficientnetb3"
ENCODER_DROP_CONNECT_RATE = 0.2  # efficientnet's default, which segmentation_models builds the encoder with
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMOOTH = 1e-5


def configure_encoder(unet, bn_momentum, drop_connect_rate):
    """Set a recipe's BatchNorm momentum and stochastic depth on a segmentation_models U-Net.

    `bn_momentum` (None: Keras' 0.99) sets every BatchNormalization layer's moving-average momentum. From
    random initialisation, 0.99 leaves the moving statistics mostly at their initial values after a few
    hundred steps, so the model in inference mode predicts garbage while it trains well.

    `drop_connect_rate` scales the encoder's stochastic depth (efficientnet's own is ENCODER_DROP_CONNECT_RATE): in
    training, each block drops its residual branch at this rate times the block's depth share (efficientnet counts
    B3's 26 blocks against B0's 16, so the deepest blocks reach 1.56 times it). It regularises long training; a
    short run from scratch underfits instead.

    Called inside a distribution strategy's scope with several replicas (GPUs, machines), BatchNorm computes its
    statistics over the global batch (`synchronized`), so that every replica keeps the same moving statistics and
    the model is the one a single device would train with that batch; Keras' default keeps each replica's own.
    """
    synchronized = tf.distribute.get_strategy().num_replicas_in_sync > 1
    for layer in unet.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = synchronized or layer.synchronized
            if bn_momentum is not None:
                layer.momentum = float(bn_momentum)
        if isinstance(layer, keras.layers.Dropout):
            # The encoder's only dropouts are its blocks' drop-connect; each keeps its depth share of the rate.
            layer.rate = layer.rate * float(drop_connect_rate) / ENCODER_DROP_CONNECT_RATE


def load_starting_weights(model, encoder_weights, init_model=None):
    """Put the starting weights into a freshly built model; returns what it really started from, for config.json:
    {"source": "imagenet (keras)" | "local file" | "random" | "birdseg model", "file": path or None,
    "sha256": hex or None}.

    `init_model` (a `.keras` file or a run folder) starts the whole U-Net, encoder and decoder, from a model trained
    earlier, at any input size (the network is fully convolutional); `encoder_weights` is then not used. Else
    `encoder_weights` (an ENCODER_WEIGHTS value, or what `pretrained.locate_encoder_weights` made of one) fills the
    encoder: "imagenet" takes Keras' EfficientNetB3 ImageNet weights (downloaded once into ~/.keras/models, then
    read from there; offline without that file, a loud warning and random initialisation), a local file that does
    not fit the encoder is an error (EncoderWeightsError), never a half-loaded encoder.
    """
    if init_model:
        return copy_weights_from(model, init_model)
    weights = pretrained.locate_encoder_weights(encoder_weights)
    weights_used = {"source": weights.source, "file": None, "sha256": None}
    if weights.file is not None:
        unet = next(layer for layer in model.layers if isinstance(layer, keras.Model))
        layout = pretrained.load_encoder_weights(unet, weights.file)
        weights_used.update(file=str(weights.file), sha256=sha256(weights.file), layout=layout)
    return weights_used


def build_model(recipe, encoder_weights=None, init_model=None):
    """The U-Net of `recipe` as the notebook's model cell builds it, for scripts and benchmarks (a test checks the
    two build the same network). Returns (model, weights_used), see `load_starting_weights`.

    A segmentation_models U-Net with an EfficientNetB3 encoder and `recipe.decoder_width` filters in its first
    decoder block, halved in each next one (the first reads the encoder's 1536 top features, so it sets much of a
    step's cost); ImageNet normalisation as a layer inside the model, so the model takes RGB in [0, 1]; the
    probabilities in float32 (under mixed precision the network computes in float16).
    """
    unet = sm.Unet(BACKBONE, encoder_weights=None, classes=1, activation="sigmoid",
                   input_shape=(recipe.image_height, recipe.image_width, 3),
                   decoder_filters=decoder_filters(recipe.decoder_width))
    configure_encoder(unet, recipe.bn_momentum, recipe.drop_connect_rate)
    speedups.speed_up_layers(unet)
    image = keras.Input((recipe.image_height, recipe.image_width, 3), name="image")
    normalized = keras.layers.Normalization(mean=IMAGENET_MEAN, variance=np.square(IMAGENET_STD),
                                            name="imagenet_normalization")(image)
    probabilities = keras.layers.Activation("linear", dtype="float32", name="probabilities")(unet(normalized))
    model = keras.Model(image, probabilities, name=f"unet_{BACKBONE}")
    return model, load_starting_weights(model, encoder_weights, init_model)


def copy_weights_from(model, path):
    """Set every weight of `model` from a saved birdseg model (a `.keras` file or a run folder).

    The saved model's input size may differ; each weight's shape must match, else a ValueError names the
    file and the first weight that does not fit (another backbone, or not a birdseg model).
    Returns weights_used for config.json: {"source": "birdseg model", "file", "sha256"}.
    """
    model_file = Path(path) / MODEL_FILE if Path(path).is_dir() else Path(path)
    saved = load_model(model_file)
    target = [(weight.path, tuple(weight.shape)) for weight in model.weights]
    source = [(weight.path, tuple(weight.shape)) for weight in saved.weights]
    if len(target) != len(source):
        raise ValueError(f"{model_file}: {len(source)} weights, this model needs {len(target)}: not the same network")
    for (name, shape), (saved_name, saved_shape) in zip(target, source):
        if shape != saved_shape:
            raise ValueError(f"{model_file}: weight {saved_name} has shape {saved_shape}, {name} needs {shape}")
    model.set_weights(saved.get_weights())
    return {"source": "birdseg model", "file": str(model_file), "sha256": sha256(model_file)}


def describe_weights(weights_used):
    """One line for people: "random", "imagenet (keras)", or "<local file|birdseg model> <path> (sha256 <first 12>)"."""
    if weights_used["source"] in ("local file", "birdseg model"):
        return f"{weights_used['source']} {weights_used['file']} (sha256 {weights_used['sha256'][:12]})"
    return weights_used["source"]


def model_image_size(model):
    """(height, width) the model was built for."""
    _, height, width, _ = model.input_shape
    return height, width


# ---------------------------------------------------------------- loss and metrics


def soft_iou(y_true, y_pred, axis=None):
    """The soft IoU of probabilities against a {0, 1} truth, its sums taken over `axis` (None: every pixel of the
    batch at once), smoothed so that an empty truth and prediction score 1."""
    intersection = ops.sum(y_true * y_pred, axis=axis)
    union = ops.sum(y_true, axis=axis) + ops.sum(y_pred, axis=axis) - intersection
    return (intersection + SMOOTH) / (union + SMOOTH)


@keras.saving.register_keras_serializable(package="birdseg")
def jaccard_loss(y_true, y_pred):
    """1 - soft IoU over the whole batch (as segmentation_models' jaccard_loss, per_image=False)."""
    return 1.0 - soft_iou(ops.cast(y_true, y_pred.dtype), y_pred)


@keras.saving.register_keras_serializable(package="birdseg")
def per_image_jaccard_loss(y_true, y_pred):
    """1 - soft IoU of each image, averaged over the batch (as segmentation_models' per_image=True), so a small or
    faint bird weighs as much as one that fills its frame; pooled over the batch, the large birds' pixels outweigh
    every small bird. An image without a bird adds 0: its IoU says nothing about birds (segmentation_models' adds
    a near-constant 1 there), and the cross-entropy already penalises whatever is marked on it."""
    y_true = ops.cast(y_true, y_pred.dtype)
    per_image = tuple(range(1, len(y_pred.shape)))
    has_bird = ops.cast(ops.max(y_true, axis=per_image) > 0, y_pred.dtype)
    return ops.mean(has_bird * (1.0 - soft_iou(y_true, y_pred, axis=per_image)))


def mean_binary_crossentropy(y_true, y_pred):
    return ops.mean(keras.losses.binary_crossentropy(ops.cast(y_true, y_pred.dtype), y_pred))


@keras.saving.register_keras_serializable(package="birdseg")
def bce_jaccard_loss(y_true, y_pred):
    """Binary cross-entropy + Jaccard loss: BCE gives smooth per-pixel gradients, Jaccard fights class imbalance."""
    return mean_binary_crossentropy(y_true, y_pred) + jaccard_loss(y_true, y_pred)


@keras.saving.register_keras_serializable(package="birdseg")
def bce_jaccard_per_image_loss(y_true, y_pred):
    """Binary cross-entropy + the Jaccard loss of each image: the scratch recipe's (benchmarks/README.md)."""
    return mean_binary_crossentropy(y_true, y_pred) + per_image_jaccard_loss(y_true, y_pred)


@keras.saving.register_keras_serializable(package="birdseg")
def focal_jaccard_loss(y_true, y_pred, gamma=2.0, alpha=0.25):
    """Binary focal loss + Jaccard loss: focal loss (Lin et al. 2017, segmentation_models' weights) scales each
    pixel's cross-entropy by (1 - p_correct)^gamma, so the many easy sky pixels count little and the uncertain
    ones (faint birds, edges) much."""
    y_true = ops.cast(y_true, y_pred.dtype)
    p = ops.clip(y_pred, keras.backend.epsilon(), 1.0 - keras.backend.epsilon())
    bird = -y_true * alpha * ops.power(1.0 - p, gamma) * ops.log(p)
    sky = -(1.0 - y_true) * (1.0 - alpha) * ops.power(p, gamma) * ops.log(1.0 - p)
    return ops.mean(bird + sky) + jaccard_loss(y_true, y_pred)


LOSSES = {"bce_jaccard": bce_jaccard_loss, "bce_jaccard_per_image": bce_jaccard_per_image_loss,
          "focal_jaccard": focal_jaccard_loss}


@keras.saving.register_keras_serializable(package="birdseg")
class ThresholdScore(keras.metrics.Metric):
    """IoU, F1, precision or recall of the thresholded prediction, accumulated over all pixels of an epoch.

    Accumulating true/false positives over the epoch gives the dataset-level score, not a mean of
    per-batch scores (which over-weights small batches and empty images). Not Keras' BinaryIoU: that scores
    "no bird and none predicted" as 0 (here 1, as in metrics.scores_from_counts) and has no F1 at the same threshold.
    """

    KINDS = ("iou", "f1", "precision", "recall")

    def __init__(self, kind="iou", threshold=THRESHOLD, name=None, **kwargs):
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        super().__init__(name=name or {"iou": "iou_score", "f1": "f1_score"}.get(kind, kind), **kwargs)
        self.kind = kind
        self.threshold = threshold
        self.tp = self.add_variable(shape=(), initializer="zeros", name="tp")
        self.fp = self.add_variable(shape=(), initializer="zeros", name="fp")
        self.fn = self.add_variable(shape=(), initializer="zeros", name="fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = ops.cast(ops.greater(ops.cast(y_true, "float32"), 0.5), "float32")
        pred = ops.cast(ops.greater(ops.cast(y_pred, "float32"), self.threshold), "float32")
        self.tp.assign_add(ops.sum(truth * pred))
        self.fp.assign_add(ops.sum((1.0 - truth) * pred))
        self.fn.assign_add(ops.sum(truth * (1.0 - pred)))

    def result(self):
        tp, fp, fn = self.tp, self.fp, self.fn
        numerator, denominator = {
            "iou": (tp, tp + fp + fn),
            "f1": (2 * tp, 2 * tp + fp + fn),
            "precision": (tp, tp + fp),
            "recall": (tp, tp + fn),
        }[self.kind]
        # Nothing to find and nothing found is a perfect score, as in metrics.scores_from_counts.
        return ops.where(denominator > 0, numerator / ops.maximum(denominator, 1.0), 1.0)

    def reset_state(self):
        for variable in (self.tp, self.fp, self.fn):
            variable.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "threshold": self.threshold}


def compile_model(model, learning_rate, loss, jit_compile=False):
    """Compile as the notebook's model cell does, for scripts and benchmarks: Adam (`speedups.adam`: TensorFlow's
    fused kernel where it checks out; `learning_rate` a number or a Keras schedule) + `loss` (a name in LOSSES),
    IoU and F1 at threshold 0.5. XLA (`jit_compile`) only on a GPU: on a CPU it made steps several times slower.
    Under a mixed-precision policy Keras wraps Adam in a loss-scale optimizer by itself. Adam's slots are made
    now, as `train.ResumableRun.start` makes them in the notebook."""
    model.compile(optimizer=speedups.adam(learning_rate), loss=LOSSES[loss],
                  metrics=[ThresholdScore("iou"), ThresholdScore("f1")], jit_compile=jit_compile and gpu_available())
    build_optimizer_slots(model)
    return model


def build_optimizer_slots(model):
    """Make the optimizer's slots now, eagerly, once: Keras would make them inside the first training step's
    trace, where each of the 740 variables of this network gets a traced initialiser (about 8 of that step's
    seconds). In the distribution strategy the model was built in, as its slots must be."""
    if not model.optimizer.built:
        with model.distribute_strategy.scope():
            model.optimizer.build(model.trainable_variables)


def load_model(path):
    """A saved model (a `.keras` file, or a run folder holding `model.keras`), ready to predict (not compiled).

    segmentation_models is imported above, which registers the encoder's custom objects (swish, FixedDropout).
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved model here (expected a .keras file or a run folder with model.keras)")
    return keras.models.load_model(path, compile=False)
