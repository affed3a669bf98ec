"""Where training runs and how: the GPU if any, float precision, seeds and op determinism, the distribution
strategy, the device in words."""
import os
import platform

import keras
import tensorflow as tf

from birdseg.multi_worker import allow_multi_worker_fit


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


def set_seed(seed, deterministic=None):
    """Seed Python, NumPy and TensorFlow; make TF ops deterministic (default: on CPU only).

    Some GPU kernels (e.g. the up-sampling gradient) have no deterministic version and would raise.
    """
    keras.utils.set_random_seed(seed)
    if deterministic is None:
        deterministic = not gpu_available()
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def distribution_strategy(devices=None):
    """Where to train: several machines when TF_CONFIG describes a cluster (MultiWorkerMirroredStrategy),
    every visible GPU when there are several (or the given `devices`) with MirroredStrategy, else one device.
    Build and compile the model inside `strategy.scope()`; BATCH_SIZE is then the global batch."""
    if "TF_CONFIG" in os.environ:
        allow_multi_worker_fit()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices or len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def describe_device():
    """One line for config.json: the GPUs by name, or the CPU and its core count."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return "GPU: " + ", ".join(tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus)
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
