"""The GPU paths, checked where they run: mixed precision, XLA on and off, mirroring across the visible GPUs, and the
time of training steps and inference at 384x640, batch 8. Prints one JSON line.

    python benchmarks/gpu_check.py                 # on a machine with a GPU (tensorflow[and-cuda] installed)
    python benchmarks/gpu_check.py --allow-cpu     # the same checks on a CPU, smaller, to see that the script works

Checks (each is true or false in the JSON, with its numbers):
- mixed precision: the layers compute in float16, the model's output is float32, Keras wraps Adam in its
  loss-scale optimizer, a training step changes every weight and skips none;
- XLA: a compiled and an uncompiled model, the same weights and batch, predict the same within 1e-3, and their
  training step times;
- mirroring: `distribution_strategy()` spans every visible GPU and one step of the global batch trains;
- timings: median seconds per training step and per image of inference, after warm-up.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import timed  # median seconds after warm-up, first step


def median_seconds(step, warmup, repeats):
    return timed(step, warmup, repeats)[0]


def build(recipe, jit_compile):
    from birdseg.model import build_model, compile_model

    model, _ = build_model(recipe)
    return compile_model(model, recipe.learning_rate, recipe.loss, jit_compile=jit_compile)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allow-cpu", action="store_true", help="run on a CPU, at 64x96 batch 2, to test the script")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from birdseg.devices import distribution_strategy, gpu_available, set_precision
    from birdseg.recipe import PRETRAINED

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.allow_cpu:
        print(json.dumps({"error": "no GPU visible; --allow-cpu runs the checks on the CPU"}))
        return 2
    height, width, batch = (384, 640, 8) if gpus else (64, 96, 2)
    recipe = PRETRAINED.override(image_height=height, image_width=width, drop_connect_rate=0.0)
    rng = np.random.default_rng(0)
    x = rng.random((batch, height, width, 3), dtype=np.float32)
    y = (rng.random((batch, height, width, 1)) > 0.9).astype(np.float32)
    result = {"tensorflow": tf.__version__, "keras": keras.__version__, "gpus": [gpu.name for gpu in gpus],
              "shape": [height, width, batch]}

    # Mixed precision.
    policy = set_precision(True)
    model = build(recipe, jit_compile=False)
    before = [w.numpy().copy() for w in model.trainable_variables]
    model.train_on_batch(x, y)
    moved = sum(not np.array_equal(w.numpy(), old) for w, old in zip(model.trainable_variables, before))
    conv = next(layer for layer in model.layers[2].layers if isinstance(layer, keras.layers.Conv2D))
    result["mixed_precision"] = {
        "policy": policy, "compute_dtype": conv.compute_dtype, "output_dtype": str(model.output.dtype),
        "loss_scale_optimizer": isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer),
        "weights_moved": f"{moved}/{len(before)}", "steps": int(model.optimizer.iterations),
        "train_step_s": round(median_seconds(lambda: model.train_on_batch(x, y), 2, args.repeats), 4),
        "inference_per_image_s": round(median_seconds(lambda: model.predict_on_batch(x), 2, args.repeats) / batch, 5),
    }
    result["mixed_precision"]["ok"] = (conv.compute_dtype == "float16" and str(model.output.dtype) == "float32"
                                       and result["mixed_precision"]["loss_scale_optimizer"]
                                       and moved == len(before) and result["mixed_precision"]["steps"] == 1)
    set_precision(False)

    # XLA on and off, float32, the same weights.
    plain, compiled = build(recipe, jit_compile=False), build(recipe, jit_compile=True)
    compiled.set_weights(plain.get_weights())
    difference = float(np.max(np.abs(np.asarray(plain.predict_on_batch(x)) - np.asarray(compiled.predict_on_batch(x)))))
    result["xla"] = {
        "used": bool(compiled.jit_compile), "max_difference": difference,
        "train_step_s": {name: round(median_seconds(lambda m=m: m.train_on_batch(x, y), 2, args.repeats), 4)
                         for name, m in (("off", plain), ("on", compiled))},
        "ok": difference < 1e-3 and bool(compiled.jit_compile) == gpu_available(),
    }

    # Mirroring across the visible GPUs.
    strategy = distribution_strategy()
    with strategy.scope():
        mirrored = build(recipe, jit_compile=False)
    replicas = strategy.num_replicas_in_sync
    global_batch = batch * max(1, replicas)
    xs, ys = np.concatenate([x] * max(1, replicas)), np.concatenate([y] * max(1, replicas))
    loss = mirrored.train_on_batch(xs, ys)
    result["mirrored"] = {"strategy": type(strategy).__name__, "replicas": replicas, "global_batch": global_batch,
                          "finite_loss": bool(np.isfinite(loss).all()),
                          "ok": replicas == max(1, len(gpus)) and bool(np.isfinite(loss).all())}
    result["ok"] = all(result[key]["ok"] for key in ("mixed_precision", "xla", "mirrored"))
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
