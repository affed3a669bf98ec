"""Inference runtimes behind prediction: Keras itself, ONNX Runtime or OpenVINO.

A trained model is converted once per runtime and cached beside it (`runtimes/<runtime>-<model>-<hash>/`, keyed by
the model file's SHA-256, so a new `model.keras` is converted again and the old conversion removed). Each
conversion is checked against the Keras model on a few images before it is kept: a difference above
CHECK_TOLERANCE (bfloat16: masks equal on less than MASK_AGREEMENT of the pixels) is an error that says so, never a
silent change of the masks, and is remembered beside the conversions. The converted model predicts through the same
`predict_on_batch` and `input_shape` as a Keras model, so test-time flips, tiles, thresholds, folders, videos and
resuming work as they do with Keras.
"""
import importlib.util
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from birdseg.defaults import RUNTIME, RUNTIMES, THRESHOLD
from birdseg.files import TMP_PREFIX, sha256, write_text
from birdseg.layout import MODEL_FILE, RUNTIMES_DIR

INSTALL = {  # what each runtime needs beyond the main install, and the command that installs it
    "onnxruntime": (("onnxruntime", "tf2onnx", "onnx"), "pip install -r requirements-export.txt"),
    "openvino": (("openvino",), "pip install -r requirements-export.txt"),
    "openvino-bf16": (("openvino",), "pip install -r requirements-export.txt"),
}
CHECK_TOLERANCE = 2e-3  # largest difference in probability from the Keras model a conversion may have
CHECK_SAMPLES = 3
# bfloat16 keeps 8 bits of mantissa: its probabilities differ from float32's by up to about 0.1 on a trained model, so
# it is checked by what it is used for, its masks: equal to Keras' on this share of the pixels of drawn birds
MASK_AGREEMENT = 0.999
CONVERTED_FILE = {"onnxruntime": "model.onnx", "openvino": "model.xml", "openvino-bf16": "model.xml"}
OPENVINO_PRECISION = {"openvino": "f32", "openvino-bf16": "bf16"}  # on CPUs without bfloat16 arithmetic both are f32
REFUSED_SUFFIX = ".refused"


class RuntimeMissing(ImportError):
    """The runtime asked for is not installed; the message names the install command."""


class RuntimeMismatch(RuntimeError):
    """A converted model predicts differently from the Keras model it came from."""


def check_runtime(runtime, exact=False):
    """The runtime `runtime` names: itself, or for "auto", where OpenVINO is installed, "openvino-bf16" (the fastest
    whose masks agree with Keras') or with `exact` "openvino" (float32: Keras' masks and scores, for evaluation), else
    "keras". ValueError for an unknown name, RuntimeMissing when what a named runtime needs is not installed."""
    if runtime == "auto":
        if importlib.util.find_spec("openvino") is None:
            return "keras"
        return "openvino" if exact else "openvino-bf16"
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r}: expected " + ", ".join(repr(name) for name in ("auto", *RUNTIMES)))
    packages, command = INSTALL.get(runtime, ((), ""))
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeMissing(f"--runtime {runtime} needs {', '.join(missing)}, which is not installed: {command}")
    return runtime


def model_file(path):
    """The .keras file of a run folder or the file itself."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def cache_dir(path, runtime):
    """Where `runtime`'s conversion of the model at `path` is kept: beside the model file, named by its hash."""
    source = model_file(path)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no saved model here (expected a .keras file or a run folder with "
                                f"{MODEL_FILE})")
    return source.parent / RUNTIMES_DIR / f"{runtime}-{source.stem}-{sha256(source)[:16]}"


def refusal_file(path, runtime):
    """Where a refused conversion of the model at `path` for `runtime` keeps its reason: beside the conversion."""
    folder = cache_dir(path, runtime)
    return folder.with_name(folder.name + REFUSED_SUFFIX)


class ConvertedModel:
    """A model converted for an inference runtime, used like a Keras model by prediction: `predict_on_batch(batch)`
    of float32 (batch, height, width, 3) images in [0, 1] gives (batch, height, width, 1) probabilities."""

    def __init__(self, runtime, path):
        self.runtime, self.path = runtime, Path(path)
        if runtime == "onnxruntime":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            name, shape = session.get_inputs()[0].name, session.get_inputs()[0].shape
            self._run = lambda batch: session.run(None, {name: batch})[0]
        else:
            import openvino

            # f32 unless asked: on CPUs with bfloat16 arithmetic OpenVINO would otherwise compute in bfloat16
            compiled = openvino.Core().compile_model(str(self.path), "CPU",
                                                     {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[runtime]})
            shape = [dimension.get_length() if dimension.is_static else None
                     for dimension in compiled.input(0).get_partial_shape()]
            self._run = lambda batch: compiled(batch)[0]
        self.input_shape = (None, *shape[1:])
        self.name = f"{self.path.parent.name} ({runtime})"

    def predict_on_batch(self, batch):
        return np.asarray(self._run(np.ascontiguousarray(batch, dtype=np.float32)))


def convert(keras_model, runtime, out_dir):
    """Write `runtime`'s form of `keras_model` into `out_dir`; returns the file to load."""
    height, width = keras_model.input_shape[1:3]
    target = Path(out_dir) / CONVERTED_FILE[runtime]
    if runtime == "onnxruntime":
        from birdseg.export import export_model

        return export_model(keras_model, out_dir, "onnx")
    import openvino

    with warnings.catch_warnings():  # Keras notes that OpenVINO's tracing passes the input as a tuple: harmless
        warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match", category=UserWarning)
        converted = openvino.convert_model(keras_model, input=[(-1, height, width, 3)])
    openvino.save_model(converted, str(target), compress_to_fp16=False)
    return target


def largest_difference(keras_model, converted, samples=CHECK_SAMPLES, seed=0):
    """The largest difference in probability between the two models on random images and their mirror images."""
    height, width = keras_model.input_shape[1:3]
    batch = np.random.default_rng(seed).random((samples, height, width, 3), dtype=np.float32)
    batch = np.concatenate([batch, batch[:, :, ::-1]])
    return float(np.max(np.abs(converted.predict_on_batch(batch) - np.asarray(keras_model.predict_on_batch(batch)))))


def mask_agreement(keras_model, converted, samples=CHECK_SAMPLES, seed=0):
    """The share of pixels whose mask (probability above THRESHOLD) the two models agree on, over drawn scenes with
    birds (`randomised.mixed_sample`, at the model's input size) and their mirror images: inputs where a trained
    model's masks have edges to move, unlike random noise."""
    from birdseg.randomised import mixed_sample

    height, width = keras_model.input_shape[1:3]
    rng = np.random.default_rng(seed)
    batch = np.stack([mixed_sample(rng, (width, height))[0] for _ in range(samples)]).astype(np.float32) / 255
    batch = np.concatenate([batch, batch[:, :, ::-1]])
    expected = np.asarray(keras_model.predict_on_batch(batch)) > THRESHOLD
    return float(np.mean((converted.predict_on_batch(batch) > THRESHOLD) == expected))


def check_conversion(keras_model, converted, runtime, path, tolerance):
    """RuntimeMismatch where `converted` does not predict what `keras_model` does: its probabilities within
    `tolerance`, or for bfloat16 its masks on MASK_AGREEMENT of the pixels."""
    if OPENVINO_PRECISION.get(runtime) == "bf16":
        agreement = mask_agreement(keras_model, converted)
        if agreement < MASK_AGREEMENT:
            raise RuntimeMismatch(f"{model_file(path)}: its {runtime} conversion agrees with the Keras model's masks "
                                  f"on {agreement:.3%} of the pixels (at least {MASK_AGREEMENT:.1%} needed); use "
                                  "--runtime openvino (float32)")
        return
    difference = largest_difference(keras_model, converted)
    if difference > tolerance:
        raise RuntimeMismatch(f"{model_file(path)}: its {runtime} conversion predicts up to {difference:.2g} away "
                              f"from the Keras model (tolerance {tolerance:g}); use --runtime keras")


def load_predictor(path, runtime=RUNTIME, tolerance=CHECK_TOLERANCE, exact=False):
    """The model at `path` (a run folder or a .keras file), ready to predict with `runtime`.

    "keras": the Keras model itself; "auto": see `check_runtime` (`exact` as there). Another runtime: its conversion
    (`converted_predictor`). Where "auto" took "openvino-bf16" and this model's bfloat16 masks were refused, it says so
    in one line and predicts with "openvino" (float32) instead.
    """
    resolved = check_runtime(runtime, exact)
    if resolved == "keras":
        from birdseg.model import load_model

        return load_model(path)
    try:
        return converted_predictor(path, resolved, tolerance)
    except RuntimeMismatch as refusal:
        if runtime != "auto" or resolved != "openvino-bf16":
            raise
        print(f"{refusal.args[0].partition('; use')[0]}: predicting with openvino (float32) instead")
        return converted_predictor(path, "openvino", tolerance)


def converted_predictor(path, runtime, tolerance=CHECK_TOLERANCE):
    """`runtime`'s conversion of the model at `path`: the cached one when there is one for this model file; else the
    model is converted, checked against Keras (`check_conversion`: RuntimeMismatch) and cached, written under a
    temporary name and renamed, replacing earlier model files' conversions. A refused conversion is not kept; its
    reason is (`<conversion folder>.refused`), so the same model file is refused again at once."""
    folder, refused = cache_dir(path, runtime), refusal_file(path, runtime)
    if refused.is_file():
        raise RuntimeMismatch(f"{refused.read_text(encoding='utf-8')} (refused earlier: remove {refused} to check "
                              "again, e.g. after upgrading the runtime)")
    if not folder.is_dir():
        from birdseg.model import load_model  # TensorFlow: only to convert; a cached conversion runs without it

        keras_model = load_model(path)
        folder.parent.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f"{TMP_PREFIX}{runtime}-"))
        try:
            converted = ConvertedModel(runtime, convert(keras_model, runtime, staging))
            try:
                check_conversion(keras_model, converted, runtime, path, tolerance)
            except RuntimeMismatch as mismatch:
                remove_conversions(folder.parent, runtime, model_file(path).stem)
                write_text(refused, mismatch.args[0])
                raise
            remove_conversions(folder.parent, runtime, model_file(path).stem)
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # what a failed conversion left (after the rename: nothing)
    return ConvertedModel(runtime, folder / CONVERTED_FILE[runtime])


def remove_conversions(runtimes_dir, runtime, stem):
    """Every conversion of `runtime`, and every refusal, kept for a model file named `stem` (earlier versions)."""
    for earlier in runtimes_dir.glob(f"{runtime}-{stem}-*"):
        if earlier.is_dir():
            shutil.rmtree(earlier)
        else:
            earlier.unlink()
