"""Where training runs and how reproducibly: seeds and op determinism, the distribution strategy, the device."""
import json
import os
import platform

import keras
import tensorflow as tf

from birdseg.model import gpu_available
from birdseg.multi_worker import allow_multi_worker_fit


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


def cluster_task():
    """(task type, index) of this process in the TF_CONFIG cluster, or None when it trains alone."""
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task")
    return (task["type"], int(task["index"])) if task else None


def is_chief():
    """Whether this process writes the run's files: it trains alone, or it is the cluster's chief (the "chief"
    task, or worker 0 where the cluster names no chief). The other workers compute the same steps with it."""
    task = cluster_task()
    if task is None or task[0] == "chief":
        return True
    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    return task == ("worker", 0) and "chief" not in cluster


def describe_device():
    """One line for config.json: the GPUs by name, or the CPU and its core count."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return "GPU: " + ", ".join(tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus)
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
