"""birdseg: bird segmentation with a U-Net / EfficientNetB3 on TensorFlow-Keras.

Layers, each importing only the ones before it:
defaults, files, metrics (numpy only), plots, recipe -> data (loading; + synthetic, dataset_tools: building and checking;
breakdown: scores by what a drawing shows)
-> pretrained -> model -> devices -> runs -> callbacks -> train -> predict -> evaluate -> figures
-> viewer, export -> cli; install (hosted notebooks) stands alone.
"""
import os

# segmentation_models picks its framework at import time; without this it fails on Keras 3.
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
# albumentations otherwise checks PyPI for updates at import, which hangs offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by itself on Intel CPUs only; on an AMD EPYC (AVX2) they made a training
# step of the default run 18 % faster (benchmarks/README.md). Read when TensorFlow loads: import birdseg first.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
