"""birdseg: bird segmentation with a U-Net / EfficientNetB3 on TensorFlow-Keras.

One concept per module, in layers (LAYERS, lowest first): a module imports only modules of earlier layers
(tests/test_layers.py checks every import, inside functions too, so no cycle can hide). TensorFlow loads from the
`speedups` layer on; `metrics`, `figures` and `evaluate` (until it is given a model to run) import none.
"""
import os

# segmentation_models picks its framework at import time; without this it fails on Keras 3.
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
# albumentations otherwise checks PyPI for updates at import, which hangs offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by itself on Intel CPUs only; on AMD EPYC CPUs they make training steps
# faster too (benchmarks/HISTORY.md). Read when TensorFlow loads: import birdseg first.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

LAYERS = (  # lowest first; the first: foundations that import no other birdseg module
    ("defaults", "layout", "errors", "files", "display", "metrics", "recipe", "cluster", "pipeline", "install"),
    ("images", "video", "augment", "archive", "plots", "synthetic", "breakdown"),  # reading and drawing data
    ("pairs", "randomised"),  # a split's image/mask pairs; domain-randomised drawings
    ("dataset_tools",),  # make-dataset
    ("coco", "labelme", "dataset_check"),  # annotation files in; check-dataset
    ("speedups", "multi_worker", "pretrained"),  # TensorFlow from here on
    ("devices",),  # GPU, precision, seeds, distribution
    ("model", "loader"),  # the network, its losses and metrics; Dataset and Dataloader
    ("runs",),  # run folders, config, history
    ("checkpoint",),  # the resumable checkpoint's state.json
    ("callbacks",),
    ("train", "predict"),  # resumable training; prediction of arrays (TTA, tiles)
    ("evaluate", "media", "figures", "viewer", "export"),  # a model on a dataset, on files and videos, in figures
    ("runtimes",),  # the model converted for ONNX Runtime or OpenVINO, checked and cached
    ("cli",),
)
