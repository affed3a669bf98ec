"""Does Keras' `fit` train with two workers (tf.distribute.MultiWorkerMirroredStrategy) on this stack, on its own
and with birdseg's two replacements (birdseg/multi_worker.py)?

    python benchmarks/multi_worker_check.py            # prints one JSON line

Starts two processes on 127.0.0.1 with a two-worker TF_CONFIG, each training Keras' smallest example (a
convolution on a tf.data dataset, built-in Adam and loss) for one epoch, first as it is, then after
`allow_multi_worker_fit()`, and reports for each whether both workers finished and, where not, the last line of
each error. Run it on a new TensorFlow/Keras pair: when Keras alone trains, the replacements can go.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # harness.py
from harness import unused_ports  # noqa: E402

WORKER = """
import sys
import numpy as np, tensorflow as tf, keras
if sys.argv[1] == "with_birdseg":
    from birdseg.multi_worker import allow_multi_worker_fit
    assert allow_multi_worker_fit()
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs))
    model.compile(optimizer="adam", loss="mse")
x = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros((8, 32, 32, 1), np.float32))).batch(2).repeat()
print("loss", model.fit(dataset, steps_per_epoch=4, epochs=1, verbose=0).history["loss"])
"""


def two_workers(variant):
    """Train the example in two worker processes: {"trained": [bool, bool], "errors": [last error line or None]}."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in unused_ports(2)]}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, variant], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=root,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(
                                    {"cluster": cluster, "task": {"type": "worker", "index": index}})})
               for index in range(2)]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    return {"trained": [worker.returncode == 0 for worker in workers],
            "errors": [next((line for line in reversed(out.splitlines()) if "Error" in line), None)
                       for out in outputs]}


def main():
    import keras
    import tensorflow as tf

    results = {variant: two_workers(variant) for variant in ("keras_alone", "with_birdseg")}
    print(json.dumps({"tensorflow": tf.__version__, "keras": keras.__version__, **results}))
    return 0 if all(results["with_birdseg"]["trained"]) else 1


if __name__ == "__main__":
    sys.exit(main())
