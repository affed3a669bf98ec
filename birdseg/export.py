"""Export a trained model for deployment, and check that the export predicts what the Keras model does.

Formats (with the pinned stack, see docs/cli.md, "Export"):
- savedmodel: TensorFlow SavedModel (TF Serving, TF.js converter, TFLite converter input).
- tflite: TensorFlow Lite flatbuffer, float32, for mobile and edge devices.
- onnx: ONNX via tf2onnx, for onnxruntime and other runtimes; needs `pip install -r requirements-export.txt`.
Every export takes float32 RGB images in [0, 1] of the model's size, shape (batch, height, width, 3),
and returns bird probabilities (batch, height, width, 1), like the Keras model.
"""
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from birdseg.defaults import EXPORT_FORMATS
from birdseg.model import model_image_size

FILE_NAMES = {"savedmodel": "savedmodel", "tflite": "model.tflite", "onnx": "model.onnx"}


def export_model(model, out_dir, fmt):
    """Write `model` in format `fmt` into `out_dir`; returns the path. Nothing half-written is left on failure."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / FILE_NAMES[fmt]
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        staged = Path(tmp) / FILE_NAMES[fmt]
        if fmt == "savedmodel":
            model.export(str(staged), format="tf_saved_model", verbose=False)
        elif fmt == "tflite":
            saved = Path(tmp) / "savedmodel"
            model.export(str(saved), format="tf_saved_model", verbose=False)
            staged.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())
        else:
            _require_onnx()
            import tf2onnx

            graph, input_name, output_name = frozen_graph(model)
            tf2onnx.convert.from_graph_def(graph, input_names=[input_name], output_names=[output_name],
                                           output_path=str(staged))
        if target.is_dir():  # a SavedModel is a folder: os.replace cannot replace a non-empty one
            shutil.rmtree(target)
        os.replace(staged, target)  # replaces an earlier file export on every OS (Path.rename fails on Windows)
    return target


def frozen_graph(model):
    """(GraphDef, input tensor name, output tensor name) of `model` with every weight and every tensor its traced
    call captures (the input normalisation's statistics) made a constant, for tf2onnx.

    Keras' own ONNX export refuses a model loaded from a file ("The model provided has never called"), and tf2onnx
    given the traced function turns the captured statistics into ONNX inputs that nobody feeds. Freezing uses
    TensorFlow's `convert_variables_to_constants_v2` (not public API: tf2onnx's own loader uses it); the export
    tests check the ONNX model predicts what the Keras model does.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    height, width = model_image_size(model)
    traced = tf.function(model).get_concrete_function(tf.TensorSpec((None, height, width, 3), tf.float32, name="image"))
    frozen = convert_variables_to_constants_v2(traced)
    return frozen.graph.as_graph_def(), frozen.inputs[0].name, frozen.outputs[0].name


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            f"ONNX export needs tf2onnx and onnx ({error}); install them with: pip install -r requirements-export.txt"
        ) from error


def predict_exported(path, fmt, batch):
    """Run an exported model on a float32 batch; returns probabilities as a NumPy array."""
    batch = np.asarray(batch, np.float32)
    if fmt == "savedmodel":
        serving = tf.saved_model.load(str(path)).signatures["serving_default"]  # what TF Serving calls
        return np.asarray(next(iter(serving(image=tf.constant(batch)).values())))
    if fmt == "tflite":
        interpreter = tf.lite.Interpreter(model_path=str(path))
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        interpreter.resize_tensor_input(inp["index"], batch.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def parity(model, path, fmt, samples=2, seed=0):
    """Largest absolute difference between the Keras model and its export on random images."""
    height, width = model_image_size(model)
    batch = np.random.default_rng(seed).random((samples, height, width, 3), dtype=np.float32)
    expected = np.asarray(model.predict_on_batch(batch))
    return float(np.max(np.abs(predict_exported(path, fmt, batch) - expected)))
