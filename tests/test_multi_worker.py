"""Keras' fit on several machines: the two replacements checked against Keras' own results where Keras' code works
(two replicas on one machine), their off switch, and two workers on 127.0.0.1 running the notebook itself."""
import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, run_notebook
from harness import unused_ports
from test_notebook import notebook_text

from birdseg import multi_worker

AGAINST_KERAS_ON_TWO_REPLICAS = textwrap.dedent("""
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np, segmentation_models as sm
    from keras.src.backend.tensorflow import trainer
    from birdseg import multi_worker
    from birdseg.model import BACKBONE, configure_encoder

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    keras_reduce = trainer.reduce_per_replica
    images = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
    dataset = tf.data.Dataset.from_tensor_slices((images, images[..., :1])).batch(2)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    keras_build_batch = strategy.reduce("MEAN", batch, axis=None)  # what Keras' symbolic build reads shapes from
    ours = multi_worker.local_batch(strategy, batch)

    def per_replica_outputs():
        context = tf.distribute.get_replica_context()
        index = tf.cast(context.replica_id_in_sync_group, tf.float32)
        return {"loss": 1.0 + index, "scores": tf.stack([index, 2.0 * index])}

    outputs = strategy.run(per_replica_outputs)
    with strategy.scope():
        unet = sm.Unet(BACKBONE, encoder_weights=None, classes=1, input_shape=(64, 64, 3))
        configure_encoder(unet, 0.9, 0.0)
    print(json.dumps({
        "build_shapes": [[list(t.shape) for t in keras_build_batch], [list(t.shape) for t in ours]],
        "keras_mean": {k: np.asarray(v).tolist() for k, v in keras_reduce(outputs, strategy, "mean").items()},
        "our_mean": {k: np.asarray(v).tolist() for k, v in multi_worker.mean_over_replicas(outputs, strategy).items()},
        "synchronized": sorted({layer.synchronized for layer in unet.layers
                                if isinstance(layer, keras.layers.BatchNormalization)}),
    }))
""")


def test_replacements_compute_what_keras_does_where_its_own_code_works():
    result = subprocess.run([sys.executable, "-c", AGAINST_KERAS_ON_TWO_REPLICAS], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    keras_shapes, our_shapes = out["build_shapes"]
    assert our_shapes == keras_shapes == [[1, 4, 6, 3], [1, 4, 6, 1]]  # one replica's half of the batch of 2
    assert out["our_mean"] == out["keras_mean"] == {"loss": 1.5, "scores": [0.5, 1.0]}
    assert out["synchronized"] == [True], "two replicas: BatchNorm statistics over the global batch"


def test_off_where_keras_internals_differ(monkeypatch):
    monkeypatch.setattr(multi_worker, "TRAINER_MODULE", "keras.src.backend.no_such_trainer")
    with pytest.warns(UserWarning, match="multi-worker fixes are off"):
        assert multi_worker.allow_multi_worker_fit() is False


def test_replaced_once_and_only_for_several_workers():
    from keras.src.backend.tensorflow import trainer

    assert multi_worker.allow_multi_worker_fit() is True
    replaced = trainer.reduce_per_replica
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert multi_worker.allow_multi_worker_fit() is True
    assert trainer.reduce_per_replica is replaced, "not wrapped twice"
    value = tf.constant([1.0, 3.0])  # one device: Keras' own reduction, untouched
    assert np.array_equal(replaced(value, tf.distribute.get_strategy(), "mean"), value)


@pytest.mark.slow
def test_two_workers_run_the_notebook_and_train_the_same_model(tmp_path, tiny_dataset, run_dir):
    """Two processes on 127.0.0.1 with a two-worker TF_CONFIG, each running the notebook headless (the commands of
    docs/gpu-and-machines.md): both finish with the same weights, only the chief (worker 0) writes the run folder
    and the examples, and the other worker writes only into a temporary folder of its own. Both start from the
    shared tiny run's model (INIT_MODEL: fine-tuning a trained run), with ENCODER_WEIGHTS "imagenet", which
    INIT_MODEL replaces, so it is never fetched."""
    from birdseg.model import load_model

    for _ in range(3):  # TensorFlow's server refuses a taken port: choose new ones and start again
        cluster = {"worker": [f"127.0.0.1:{port}" for port in unused_ports(2)]}
        workers = []
        for index in range(2):
            out = tmp_path / f"worker{index}"
            (out / "tmp").mkdir(parents=True, exist_ok=True)
            environment = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                           "TMPDIR": str(out / "tmp")}
            extra = {"EPOCHS": 1, "MAX_IMAGES_PER_SPLIT": 4, "INIT_MODEL": str(run_dir), "ENCODER_WEIGHTS": "imagenet"}
            workers.append(run_notebook(out, tiny_dataset, extra,
                                        environment=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True))
        logs = [worker.communicate(timeout=900)[0] for worker in workers]
        if all(worker.returncode == 0 for worker in workers) or not any("already in use" in log for log in logs):
            break
    assert [worker.returncode for worker in workers] == [0, 0], "\n\n".join(log[-3000:] for log in logs)

    chief, other = tmp_path / "worker0", tmp_path / "worker1"
    text = notebook_text(chief / "out.ipynb")
    assert f"the model starts from {run_dir} (INIT_MODEL)" in text
    assert f"encoder weights: birdseg model {run_dir / 'model.keras'}" in text
    assert not any("RANDOM INITIALISATION" in log for log in logs) and "RANDOM INITIALISATION" not in text
    (new_run,) = (chief / "runs").iterdir()
    started = json.loads((new_run / "config.json").read_text())["encoder_weights"]
    assert started["source"] == "birdseg model" and started["file"] == str(run_dir / "model.keras")
    assert not (other / "runs").exists() and not (other / "examples").exists()
    assert (chief / "examples" / "history.png").is_file()
    (worker_dir,) = (other / "tmp").glob("birdseg-worker1-*")
    assert json.loads((worker_dir / "config.json").read_text())["chief"] is False
    assert len((new_run / "history.csv").read_text().splitlines()) == 1 + 1
    chief_model, other_model = load_model(new_run), load_model(worker_dir)
    assert [w.path for w in chief_model.weights] == [w.path for w in other_model.weights]
    assert all(np.array_equal(a, b) for a, b in zip(chief_model.get_weights(), other_model.get_weights())), \
        "the same weights, BatchNorm's moving statistics included"
    assert sorted(path.name for path in other.iterdir()) == ["out.ipynb", "tmp"]
