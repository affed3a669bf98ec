"""Does Keras' own `fit` train with two workers (tf.distribute.MultiWorkerMirroredStrategy) on this stack?

    python benchmarks/multi_worker_check.py            # prints one JSON line

Starts two processes on 127.0.0.1 with a two-worker TF_CONFIG, each training Keras' smallest example (a
convolution on a tf.data dataset, built-in Adam and loss: none of this project's code) for one epoch, and reports
whether both finished and, where not, the last line of each error. This is the check behind the README's
"Several machines" section: run it again on a new TensorFlow/Keras pair before promising multi-worker training.
"""
import json
import os
import socket
import subprocess
import sys

WORKER = """
import numpy as np, tensorflow as tf, keras
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs))
    model.compile(optimizer="adam", loss="mse")
x = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros((8, 32, 32, 1), np.float32))).batch(2).repeat()
print("loss", model.fit(dataset, steps_per_epoch=4, epochs=1, verbose=0).history["loss"])
"""


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def main():
    import keras
    import tensorflow as tf

    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(
                                    {"cluster": cluster, "task": {"type": "worker", "index": index}})})
               for index in range(2)]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    errors = [next((line for line in reversed(out.splitlines()) if "Error" in line), None) for out in outputs]
    print(json.dumps({"tensorflow": tf.__version__, "keras": keras.__version__,
                      "trained": [worker.returncode == 0 for worker in workers], "errors": errors}))
    return 0 if all(worker.returncode == 0 for worker in workers) else 1


if __name__ == "__main__":
    sys.exit(main())
