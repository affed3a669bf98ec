"""Model: U-Net with an EfficientNetB3 encoder, its loss and metrics, loading a saved model.

The model takes float RGB images in [0, 1] of the size it was built for and returns the
probability of "bird" per pixel, shape (batch, height, width, 1). ImageNet normalisation is a
layer inside the model, so a saved model needs no outside preprocessing.
"""
import warnings
from pathlib import Path

import keras
import numpy as np
import segmentation_models as sm  # SM_FRAMEWORK is set by birdseg/__init__.py, which runs first
import tensorflow as tf
from keras import ops

from birdseg import pretrained, speedups
from birdseg.data import check_image_size
from birdseg.defaults import THRESHOLD
from birdseg.pretrained import WeightsFallbackWarning  # noqa: F401  (re-exported)

BACKBONE = "efficientnetb3"
ENCODER_DROP_CONNECT_RATE = 0.2  # efficientnet's default, which segmentation_models builds the encoder with
DECODER_WIDTH = 256  # segmentation_models' U-Net decoder: blocks of 256, 128, 64, 32, 16 filters
DECODER_BLOCKS = 5  # one per up-sampling, back to the input size
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMOOTH = 1e-5


def gpu_available():
    """Whether TensorFlow sees a GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def set_precision(mixed_precision="auto"):
    """Set the Keras dtype policy before building: "auto" is mixed float16 on GPU and float32 on CPU
    (float16 is slower on CPUs). Returns the policy name."""
    enabled = gpu_available() if mixed_precision == "auto" else bool(mixed_precision)
    policy = "mixed_float16" if enabled else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def decoder_filters(width):
    """The filters of the decoder's five blocks: `width` (DECODER_WIDTH) for the first, half as many in each next."""
    step = 2 ** (DECODER_BLOCKS - 1)  # the last block keeps at least one filter
    if isinstance(width, bool) or not isinstance(width, int) or width < step or width % step:
        raise ValueError(f"DECODER_WIDTH={width!r}: expected a positive multiple of {step} "
                         f"(each of the {DECODER_BLOCKS} decoder blocks halves it), e.g. {DECODER_WIDTH}")
    return tuple(width // 2**block for block in range(DECODER_BLOCKS))


def build_model(height=384, width=640, encoder_weights="imagenet", bn_momentum=None, backbone=BACKBONE,
                init_model=None, drop_connect_rate=None, decoder_width=DECODER_WIDTH):
    """Build the U-Net. Returns (model, weights_used): what the model really started from, as
    {"source": "imagenet (keras)" | "local file" | "random" | "birdseg model", "file": path or None,
    "sha256": hex or None}. `encoder_weights` is an ENCODER_WEIGHTS value or what
    `pretrained.locate_encoder_weights` made of one.

    `init_model` (a `.keras` file or a run folder) starts the whole U-Net, encoder and decoder, from a model
    trained earlier, at any input size (the network is fully convolutional); `encoder_weights` is then
    not used. This is how a model trained on the synthetic birds is fine-tuned on photos.

    "imagenet" takes Keras' EfficientNetB3 ImageNet weights (downloaded once into ~/.keras/models,
    then read from there); offline without that file, a loud warning is given and the encoder starts
    from random initialisation instead of failing the run. A local file that does not fit the encoder
    is an error (EncoderWeightsError), never a half-loaded encoder.

    `bn_momentum` (None: Keras' 0.99) sets every BatchNormalization layer's moving-average momentum. From
    random initialisation, 0.99 leaves the moving statistics mostly at their initial values after a few
    hundred steps, so the model in inference mode predicts garbage while it trains well.

    `drop_connect_rate` (None: the encoder's own, ENCODER_DROP_CONNECT_RATE) scales the encoder's stochastic
    depth: in training, each block drops its residual branch at this rate times the block's depth share
    (efficientnet counts B3's 26 blocks against B0's 16, so the deepest blocks reach 1.56 times it). It
    regularises long training; a short run from scratch underfits instead.

    `decoder_width` (DECODER_WIDTH) is the first decoder block's filters, halved in each next block. The first
    block reads the encoder's 1536 top features, so it sets much of the step's cost: 128 instead of
    segmentation_models' 256 makes a training step about a quarter cheaper, but from scratch it scored lower in
    the same minutes (benchmarks/README.md).
    """
    check_image_size(height, width)
    filters = decoder_filters(decoder_width)
    weights = pretrained.locate_encoder_weights(None if init_model else encoder_weights)
    unet = sm.Unet(backbone, encoder_weights=None, classes=1, activation="sigmoid", input_shape=(height, width, 3),
                   decoder_filters=filters)
    for layer in unet.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and bn_momentum is not None:
            layer.momentum = float(bn_momentum)
        if isinstance(layer, keras.layers.Dropout) and drop_connect_rate is not None:
            # The encoder's only dropouts are its blocks' drop-connect; each keeps its depth share of the rate.
            layer.rate = layer.rate * float(drop_connect_rate) / ENCODER_DROP_CONNECT_RATE
    speedups.speed_up_layers(unet)
    weights_used = {"source": weights.source, "file": None, "sha256": None}
    if weights.file is not None:
        layout = pretrained.load_encoder_weights(unet, weights.file)
        weights_used.update(file=str(weights.file), sha256=pretrained.sha256(weights.file), layout=layout)
    inputs = keras.Input((height, width, 3), name="image")
    x = keras.layers.Normalization(
        mean=IMAGENET_MEAN, variance=[s * s for s in IMAGENET_STD], name="imagenet_normalization"
    )(inputs)
    outputs = unet(x)
    if keras.mixed_precision.global_policy().compute_dtype != "float32":
        # Under mixed precision the sigmoid ran in float16; the loss and the users want float32.
        outputs = keras.layers.Activation("linear", dtype="float32", name="probabilities")(outputs)
    model = keras.Model(inputs, outputs, name=f"unet_{backbone}")
    if init_model:
        weights_used = copy_weights_from(model, init_model)
    return model, weights_used


def copy_weights_from(model, path):
    """Set every weight of `model` from a saved birdseg model (a `.keras` file or a run folder).

    The saved model's input size may differ; each weight's shape must match, else a ValueError names the
    file and the first weight that does not fit (another backbone, or not a birdseg model).
    Returns weights_used for config.json: {"source": "birdseg model", "file", "sha256"}.
    """
    model_file = Path(path) / "model.keras" if Path(path).is_dir() else Path(path)
    saved = load_model(model_file, compile=False)
    target = [(weight.path, tuple(weight.shape)) for weight in model.weights]
    source = [(weight.path, tuple(weight.shape)) for weight in saved.weights]
    if len(target) != len(source):
        raise ValueError(f"{model_file}: {len(source)} weights, this model needs {len(target)}: not the same network")
    for (name, shape), (saved_name, saved_shape) in zip(target, source):
        if shape != saved_shape:
            raise ValueError(f"{model_file}: weight {saved_name} has shape {saved_shape}, {name} needs {shape}")
    model.set_weights(saved.get_weights())
    return {"source": "birdseg model", "file": str(model_file), "sha256": pretrained.sha256(model_file)}


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


@keras.saving.register_keras_serializable(package="birdseg")
def jaccard_loss(y_true, y_pred):
    """1 - soft IoU over the whole batch (as segmentation_models' jaccard_loss, per_image=False)."""
    y_true = ops.cast(y_true, y_pred.dtype)
    intersection = ops.sum(y_true * y_pred)
    union = ops.sum(y_true) + ops.sum(y_pred) - intersection
    return 1.0 - (intersection + SMOOTH) / (union + SMOOTH)


@keras.saving.register_keras_serializable(package="birdseg")
def bce_jaccard_loss(y_true, y_pred):
    """Binary cross-entropy + Jaccard loss: BCE gives smooth per-pixel gradients, Jaccard fights class imbalance."""
    y_true = ops.cast(y_true, y_pred.dtype)
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    return bce + jaccard_loss(y_true, y_pred)


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


LOSSES = {"bce_jaccard": bce_jaccard_loss, "focal_jaccard": focal_jaccard_loss}


@keras.saving.register_keras_serializable(package="birdseg")
class ThresholdScore(keras.metrics.Metric):
    """IoU, F1, precision or recall of the thresholded prediction, accumulated over all pixels of an epoch.

    Accumulating true/false positives over the epoch gives the dataset-level score, not a mean of
    per-batch scores (which over-weights small batches and empty images). Not Keras' BinaryIoU: that scores
    "no bird and none predicted" as 0 (here 1, as in scores_from_counts) and has no F1 at the same threshold.
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
        # Nothing to find and nothing found is a perfect score, as in scores_from_counts.
        return ops.where(denominator > 0, numerator / ops.maximum(denominator, 1.0), 1.0)

    def reset_state(self):
        for variable in (self.tp, self.fp, self.fn):
            variable.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "threshold": self.threshold}


def confusion_counts(true_mask, pred_mask):
    """(tp, fp, fn, tn) pixel counts of two binary masks of the same shape."""
    truth, pred = np.asarray(true_mask).astype(bool), np.asarray(pred_mask).astype(bool)
    tp = int(np.count_nonzero(truth & pred))
    fp = int(np.count_nonzero(~truth & pred))
    fn = int(np.count_nonzero(truth & ~pred))
    return tp, fp, fn, truth.size - tp - fp - fn


def scores_from_counts(tp, fp, fn):
    """IoU, F1, precision, recall from counts; a score with nothing to find and nothing found is 1."""

    def ratio(numerator, denominator):
        return float(numerator / denominator) if denominator else 1.0

    return {
        "iou": ratio(tp, tp + fp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }


def compile_model(model, learning_rate=1e-4, jit_compile=False, loss="bce_jaccard"):
    """Adam (`speedups.adam`: TensorFlow's fused kernel where it checks out) + `loss` (a name in LOSSES: BCE +
    Jaccard, the seed's, or focal + Jaccard), IoU and F1 at threshold 0.5.

    XLA (`jit_compile=True`) is used on GPU only: on CPU it made training steps several times slower.
    Under a mixed-precision policy Keras wraps Adam in a loss-scale optimizer by itself.
    """
    if jit_compile and not gpu_available():
        warnings.warn("jit_compile=True ignored: XLA is several times slower on CPU", stacklevel=2)
        jit_compile = False
    if loss not in LOSSES:
        raise ValueError(f"LOSS={loss!r}: expected " + " or ".join(repr(name) for name in LOSSES))
    model.compile(
        optimizer=speedups.adam(learning_rate),
        loss=LOSSES[loss],
        metrics=[ThresholdScore("iou"), ThresholdScore("f1")],
        jit_compile=jit_compile,
    )
    # Adam's slots made now, eagerly: Keras would make them inside the first training step's trace, where each
    # of the 740 variables gets a traced initialiser (about 8 of that step's seconds here).
    model.optimizer.build(model.trainable_variables)
    return model


def load_model(path, learning_rate=1e-4, compile=True):
    """Load a saved model (a `.keras` file, or a run folder holding `model.keras`), ready to predict.

    segmentation_models is imported above, which registers the encoder's custom objects (swish,
    FixedDropout); the model is loaded uncompiled and compiled here, which avoids loss deserialisation.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved model here (expected a .keras file or a run folder with model.keras)")
    model = keras.models.load_model(path, compile=False)
    return compile_model(model, learning_rate) if compile else model
