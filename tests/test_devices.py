"""GPU-only switches and multi-device training paths, exercised on the CPU so they cannot rot."""
import json
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import ROOT, recipe_at
from harness import unused_ports

from birdseg import devices
from birdseg import model as M

TRAIN_ON_TWO_CPUS = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from birdseg import loader
    from birdseg.devices import distribution_strategy
    from birdseg.model import compile_model
    devices = None if "TF_CONFIG" in os.environ else ["/cpu:0", "/cpu:1"]
    strategy = distribution_strategy(devices)
    with strategy.scope():
        inputs = keras.Input((32, 32, 3))
        outputs = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs)
        model = compile_model(keras.Model(inputs, outputs), 1e-2, "bce_jaccard")
    batches = loader.Dataloader(loader.load_split(sys.argv[1], "train", 32, 32), 4, True, 0)
    history = model.fit(batches.stream(), steps_per_epoch=len(batches), epochs=2, verbose=0, shuffle=False)
    kind = "multi-worker" if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else type(strategy).__name__
    print(json.dumps({"strategy": kind, "replicas": strategy.num_replicas_in_sync,
                      "loss": history.history["loss"]}))
""")


def run_script(dataset, env=None):
    result = subprocess.run([sys.executable, "-c", TRAIN_ON_TWO_CPUS, str(dataset)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mirrored_strategy_trains_on_two_logical_devices(tiny_dataset):
    out = run_script(tiny_dataset)
    assert out["strategy"] == "MirroredStrategy" and out["replicas"] == 2
    assert all(np.isfinite(out["loss"]))


def test_multi_worker_strategy_from_tf_config(tiny_dataset):
    import os

    for _ in range(3):  # TensorFlow's server refuses a shared port, so a port taken meanwhile means: choose again
        config = {"cluster": {"worker": [f"localhost:{unused_ports(1)[0]}"]}, "task": {"type": "worker", "index": 0}}
        result = subprocess.run([sys.executable, "-c", TRAIN_ON_TWO_CPUS, str(tiny_dataset)], cwd=ROOT,
                                capture_output=True, text=True, timeout=300,
                                env={**os.environ, "TF_CONFIG": json.dumps(config)})
        if result.returncode == 0 or "already in use" not in result.stderr:
            break
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["strategy"] == "multi-worker" and all(np.isfinite(out["loss"]))


def test_default_strategy_on_one_cpu():
    from birdseg.devices import distribution_strategy

    assert distribution_strategy().num_replicas_in_sync == 1


def test_mixed_precision_keeps_float32_output():
    try:
        assert devices.set_precision(True) == "mixed_float16"
        built, _ = M.build_model(recipe_at(32, 32), None)
        assert built.layers[-1].name == "probabilities" and built.output.dtype == "float32"
        out = np.asarray(built.predict_on_batch(np.random.rand(1, 32, 32, 3).astype("float32")))
        assert out.dtype == np.float32 and np.isfinite(out).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    try:  # float16 on a GPU; on a CPU it would only be slower
        assert devices.set_precision("auto") == ("mixed_float16" if devices.gpu_available() else "float32")
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
def test_mixed_precision_training_updates_every_weight():
    # Keras wraps the fused Adam in its loss-scale optimizer; the kernel must see the unscaled float32 gradients.
    try:
        devices.set_precision(True)
        keras.utils.set_random_seed(0)
        built, _ = M.build_model(recipe_at(64, 96, drop_connect_rate=0), None)  # no block skipped
        M.compile_model(built, 1e-4, "bce_jaccard")
        assert isinstance(built.optimizer, keras.optimizers.LossScaleOptimizer)
        before = [w.numpy().copy() for w in built.trainable_variables]
        rng = np.random.default_rng(0)
        for _ in range(2):
            built.train_on_batch(rng.random((2, 64, 96, 3), dtype=np.float32),
                                 (rng.random((2, 64, 96, 1)) > 0.5).astype("float32"))
        assert int(built.optimizer.iterations) == 2  # no step skipped for overflow
        assert all(np.isfinite(w.numpy()).all() and not np.array_equal(w.numpy(), old)
                   for w, old in zip(built.trainable_variables, before))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_xla_only_on_a_gpu():
    inputs = keras.Input((8, 8, 3))
    tiny = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    M.compile_model(tiny, 1e-3, "bce_jaccard", jit_compile=True)
    assert tiny.jit_compile is devices.gpu_available()  # on a CPU it made steps several times slower
    M.compile_model(tiny, 1e-3, "bce_jaccard", jit_compile=False)
    assert tiny.jit_compile is False



@pytest.mark.parametrize("tf_config,chief", [
    (None, True),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False),
])
def test_only_the_chief_writes_the_run_folder(tmp_path, monkeypatch, tf_config, chief):
    from birdseg import cluster, runs
    from birdseg.recipe import SCRATCH

    if tf_config:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    else:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cluster.is_chief() is chief
    run_dir, _ = runs.start_run(tmp_path / "runs", SCRATCH, {"SEED": 1})
    assert (run_dir.parent == tmp_path / "runs") is chief
    if not chief:  # a temporary folder of its own, named after its task
        assert run_dir.name.startswith(f"birdseg-{tf_config['task']['type']}0-") or \
            run_dir.name.startswith("birdseg-worker1-")
        assert not (tmp_path / "runs").exists()
        shutil.rmtree(run_dir)
