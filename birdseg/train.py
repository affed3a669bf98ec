"""Training: seeding, run folders, callbacks, and a `train` that can resume a killed run.

A run folder (`runs/<UTC time>_<id>/`) holds config.json, model.keras (best epoch, no optimizer
state), history.csv, results_epoch_N.png, logs/ (TensorBoard) and checkpoint/ (last completed
epoch with optimizer and callback state, for resuming). Every file is written atomically.
"""
import csv
import io
import math
import os
import platform
import secrets
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from birdseg import plots
from birdseg.data import sample_seed
from birdseg.files import atomic_path, read_json, remove_stale_temporaries, save_figure, write_json, write_text
from birdseg.model import THRESHOLD, confusion_counts, gpu_available, scores_from_counts

LR_SCHEDULES = ("plateau", "cosine")
MONITOR = "val_iou_score"  # best model and early stopping follow the metric users care about
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training stopped and the last good files were kept."""


# ---------------------------------------------------------------- seeds and devices


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
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices or len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def describe_device():
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return "GPU: " + ", ".join(tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus)
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


# ---------------------------------------------------------------- run folders and config


def new_run_dir(output_dir):
    """Create and return a new, empty run folder `<output_dir>/<UTC timestamp>_<6 hex>`."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(output_dir) / f"{stamp}_{secrets.token_hex(3)}"
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def package_versions():
    import albumentations
    import segmentation_models

    return {
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "segmentation_models": segmentation_models.__version__,
        "albumentations": albumentations.__version__,
        "numpy": np.__version__,
    }


def git_commit(directory="."):
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def start_run(parameters, output_dir, resume=None, extend=None):
    """Return (run_dir, parameters) for a new run, or for the run folder `resume` to continue.

    A new run gets a new folder and a config.json with every parameter, package versions, the git
    commit and the device. A resumed run keeps its saved parameters: the ones given here are ignored,
    except the values in `extend` (e.g. {"EPOCHS": 20}; None: not given) that are larger than the saved
    ones, which extend the run.
    """
    if resume:
        run_dir = Path(resume)
        config_path = run_dir / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"RESUME={resume!r}: no config.json there; is it a run folder?")
        config = read_json(config_path)
        saved = dict(config["parameters"])
        raised = {key: value for key, value in (extend or {}).items()
                  if value is not None and (saved.get(key) is None or value > saved[key])}
        if raised:
            saved.update(raised)
            config["parameters"] = saved
            write_json(config_path, config)
        return run_dir, saved
    run_dir = new_run_dir(output_dir)
    write_json(
        run_dir / "config.json",
        {
            "parameters": parameters,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(),
            "git_commit": git_commit(Path(__file__).resolve().parent),
            "device": describe_device(),
        },
    )
    return run_dir, dict(parameters)


def record_encoder_weights(run_dir, weights_used):
    """Store what the encoder started from in config.json, once: a resumed run keeps the first record.
    Returns the recorded value."""
    config_path = Path(run_dir) / "config.json"
    config = read_json(config_path)
    if "encoder_weights" not in config:
        config["encoder_weights"] = weights_used
        write_json(config_path, config)
    return config["encoder_weights"]


# ---------------------------------------------------------------- callbacks


def _finite(logs):
    return all(math.isfinite(v) for v in (logs or {}).values() if isinstance(v, (int, float)))


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop at the first NaN/inf loss and remember why; `train` then raises TrainingDiverged."""

    def __init__(self):
        super().__init__()
        self.reason = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.reason = f"loss became {float(loss)} at epoch {self.epoch + 1}, batch {batch + 1}"
            self.model.stop_training = True


class BestModelCheckpoint(keras.callbacks.Callback):
    """Save the model (without optimizer state, so it stays small) whenever `monitor` improves."""

    def __init__(self, path, monitor=MONITOR, mode="max"):
        super().__init__()
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch = None

    def improved(self, value):
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not _finite(logs) or not self.improved(float(value)):
            return
        self.best, self.best_epoch = float(value), epoch + 1
        # A fresh functional wrapper shares the layers but not the optimizer: 1/3 of the file size.
        inference_model = keras.Model(self.model.inputs, self.model.outputs, name=self.model.name)
        with atomic_path(self.path) as tmp:
            inference_model.save(tmp)

    def get_state(self):
        return {"best": self.best, "best_epoch": self.best_epoch}

    def set_state(self, state):
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class PredictionFigure(keras.callbacks.Callback):
    """After every epoch, predict fixed validation images and save `results_epoch_N.png`."""

    def __init__(self, samples, out_dir, threshold=THRESHOLD):
        super().__init__()
        self.images = np.stack([image for image, _ in samples])
        self.masks = [mask for _, mask in samples]
        self.out_dir, self.threshold = Path(out_dir), threshold

    def on_epoch_end(self, epoch, logs=None):
        probabilities = self.model.predict_on_batch(self.images)
        rows = []
        for image, truth, prob in zip(self.images, self.masks, np.asarray(probabilities)):
            pred = prob > self.threshold
            iou = scores_from_counts(*confusion_counts(truth > 0.5, pred)[:3])["iou"]
            rows.append({"image": image, "true": truth, "pred": pred, "caption": f"IoU {iou:.3f}"})
        val_iou = (logs or {}).get("val_iou_score")
        title = f"epoch {epoch + 1}" + (f" - validation IoU {val_iou:.3f}" if val_iou is not None else "")
        save_figure(plots.prediction_grid(rows, title=title), self.out_dir / f"results_epoch_{epoch + 1}.png")


class TrainingCheckpoint(keras.callbacks.Callback):
    """Save everything needed to resume after each completed epoch, and the history.

    Weights and optimizer state go to `checkpoint/epoch_N.weights.h5`; `checkpoint/state.json`
    (epoch, learning rate, history, callback counters) is written last and atomically, so it always
    points at a complete weights file: a kill at any moment resumes from the last finished epoch.
    """

    def __init__(self, run_dir, stateful_callbacks):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / CHECKPOINT_DIR
        self.callbacks = stateful_callbacks  # name -> callback with get_state/set_state or known attributes
        self.history = {}
        self.resumed_callback_state = {}

    def on_train_begin(self, logs=None):
        # Keras callbacks reset their counters in on_train_begin; this runs after theirs.
        for name, callback in self.callbacks.items():
            if name in self.resumed_callback_state:
                restore_callback_state(callback, self.resumed_callback_state[name])
                if getattr(callback, "restore_best_weights", False):
                    # EarlyStopping follows the same monitor as the best-model file; without its best
                    # weights it would take the current ones as best and move best_epoch.
                    callback.best_weights = best_weights(self.run_dir)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if not _finite(logs):
            return
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        weights_name = f"epoch_{epoch + 1}.weights.h5"
        with atomic_path(self.dir / weights_name) as tmp:
            self.model.save_weights(tmp)
        state = {
            "epoch": epoch + 1,
            "weights": weights_name,
            "learning_rate": logs["learning_rate"],
            "history": self.history,
            "callbacks": {name: callback_state(cb) for name, cb in self.callbacks.items()},
        }
        write_json(self.dir / STATE_FILE, state)
        write_history_csv(self.run_dir / "history.csv", self.history)
        for old in self.dir.glob("epoch_*.weights.h5"):
            if old.name != weights_name:
                old.unlink(missing_ok=True)


def best_weights(run_dir):
    """Weights of the best epoch, from `run_dir/model.keras`, or None if no epoch was saved yet."""
    path = Path(run_dir) / "model.keras"
    return keras.models.load_model(path, compile=False).get_weights() if path.is_file() else None


def callback_state(callback):
    if hasattr(callback, "get_state"):
        return callback.get_state()
    keys = ("wait", "best", "cooldown_counter", "stopped_epoch", "best_epoch")
    return {k: float(getattr(callback, k)) for k in keys if isinstance(getattr(callback, k, None), (int, float))}


def restore_callback_state(callback, state):
    if hasattr(callback, "set_state"):
        callback.set_state(state)
        return
    for key, value in state.items():
        current = getattr(callback, key)
        setattr(callback, key, type(current)(value) if isinstance(current, int) else value)


def write_history_csv(path, history):
    keys = ["epoch"] + sorted(history)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(keys)
    for i in range(len(history["loss"])):
        writer.writerow([i + 1] + [f"{history[k][i]:.6g}" for k in keys[1:]])
    write_text(path, buffer.getvalue())


def read_history_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in rows[0] if key != "epoch"} if rows else {}


class EpochSeeds(keras.callbacks.Callback):
    """Reseed every random layer (dropout, drop-connect) from (seed, epoch) when an epoch starts.

    The generators' states are not part of the checkpoint; reseeding per epoch makes epoch N's
    randomness the same whether or not the run was interrupted before it.
    """

    def __init__(self, seed):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        generators = [g for layer in self.model._flatten_layers() for g in getattr(layer, "_seed_generators", [])]
        for index, generator in enumerate(generators):
            value = sample_seed(self.seed, "layers", epoch, index) % 2**31
            generator.state.assign(keras.ops.convert_to_tensor([value, 0], dtype=generator.state.dtype))


class TrainingBudget(keras.callbacks.Callback):
    """Stop training once `minutes` of wall time are spent (`spent_seconds` of earlier sessions of the run count).

    Checked after every batch; the epoch in progress then ends early, is validated and checkpointed as usual,
    and its logs get `stopped_on_budget = 1` (0 for every other epoch), so history.csv says why it ended.
    """

    def __init__(self, minutes, spent_seconds=0.0):
        super().__init__()
        self.seconds, self.spent_seconds = minutes * 60.0, spent_seconds
        self.stopped = False

    def elapsed(self):
        return self.spent_seconds + (time.perf_counter() - self.start if hasattr(self, "start") else 0.0)

    def exhausted(self):
        return self.elapsed() >= self.seconds

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.exhausted():
            self.stopped = self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["stopped_on_budget"] = float(self.stopped)


class CosineDecay(keras.callbacks.Callback):
    """Learning rate from `base` down to nearly zero (`base` / 1000) along half a cosine, after a linear warm-up,
    over the run's length: whichever of its limits comes first, `epochs` (counted in steps) or the time budget,
    sets the progress.

    Under a time budget the learning rate thus reaches zero when the budget ends, however fast the machine
    is, which is what a budgeted run needs ("budget-aware" schedules, Li et al., ICLR 2020).
    """

    def __init__(self, base, epochs, steps_per_epoch, budget=None, warmup=0.03):
        super().__init__()
        self.base, self.total_steps, self.steps_per_epoch = base, epochs * steps_per_epoch, steps_per_epoch
        self.budget, self.warmup = budget, warmup
        self.epoch = 0

    def progress(self, batch):
        done = (self.epoch * self.steps_per_epoch + batch) / self.total_steps
        if self.budget is not None:
            done = max(done, self.budget.elapsed() / self.budget.seconds)
        return min(done, 1.0)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        t = self.progress(batch)
        scale = t / self.warmup if t < self.warmup else 0.5 * (1 + math.cos(math.pi * (t - self.warmup) / (1 - self.warmup)))
        self.model.optimizer.learning_rate.assign(self.base * max(scale, 1e-3))


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to the logs, so history.csv records the cost of every epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self.start


# ---------------------------------------------------------------- training


def train(model, train_loader, val_loader, run_dir, epochs, preview_samples=(), verbose=1, tensorboard=True,
          max_minutes=None, keep_checkpoint=False, patience=5, lr_schedule="plateau"):
    """Fit `model` with the standard callbacks, resuming from `run_dir/checkpoint` if one is there.

    `max_minutes` (None: no limit) stops training cleanly once that much wall time is spent, counting the
    earlier sessions of a resumed run; the best model is kept and history["stopped_on_budget"] says so.
    When training finishes (all epochs, early stopping or the budget), `checkpoint/state.json` records why;
    the checkpoint's weights and optimizer state (about 215 MB) are deleted unless `keep_checkpoint`, which is
    only needed to extend a finished run later. Resuming a finished run says so and trains no more, unless
    `epochs` or `max_minutes` are larger than when it finished.

    `patience`: epochs without a better validation IoU before early stopping (None: no early stopping).
    `lr_schedule`: "plateau" halves the learning rate when the validation loss stalls for 3 epochs (the seed's);
    "cosine" warms up, then decays it to zero over the run's length (EPOCHS or the time budget, whichever binds).

    Returns the full history (all epochs, resumed ones included) as {metric: [value per epoch]}.
    Afterwards the model holds the weights of the best epoch, as saved in `run_dir/model.keras`.
    Raises TrainingDiverged on a NaN/inf loss; the files of the last good epoch are kept.
    """
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"LR_SCHEDULE={lr_schedule!r}: expected one of {LR_SCHEDULES}")
    run_dir = Path(run_dir)
    budget = TrainingBudget(max_minutes) if max_minutes is not None else None
    best = BestModelCheckpoint(run_dir / "model.keras")
    stateful = {"best_model": best}
    nan_guard = StopOnNonFinite()
    callbacks = [EpochSeeds(train_loader.seed), nan_guard, EpochTimer(), best]
    if lr_schedule == "plateau":
        stateful["reduce_lr"] = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=3, min_lr=1e-6, verbose=verbose
        )
    else:
        base = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        callbacks.append(CosineDecay(base, epochs, len(train_loader), budget))
    early_stop = None
    if patience is not None:
        early_stop = stateful["early_stopping"] = keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="max", patience=patience, restore_best_weights=True, verbose=verbose
        )
    callbacks += [stateful[name] for name in ("reduce_lr", "early_stopping") if name in stateful]
    if preview_samples:
        callbacks.append(PredictionFigure(preview_samples, run_dir))
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(run_dir / "logs", write_graph=False, profile_batch=0))
    if budget is not None:
        callbacks.append(budget)
    checkpoint = TrainingCheckpoint(run_dir, stateful)
    callbacks.append(checkpoint)  # last: it records the state the others reached this epoch

    remove_stale_temporaries(run_dir)  # what a kill in the middle of a write left behind
    state = read_checkpoint_state(run_dir)
    finished = (state or {}).get("finished")
    if finished and not extends(finished, epochs, max_minutes):
        print(f"{run_dir}: this run already finished ({finished['reason']}, after epoch {state['epoch']}); "
              "nothing to train. Give a larger EPOCHS or MAX_TRAINING_MINUTES to extend it.")
        checkpoint.history = state["history"]
    else:
        initial_epoch = resume_from_checkpoint(model, run_dir, checkpoint, state)
        if budget is not None:
            budget.spent_seconds = sum(checkpoint.history.get("epoch_seconds", []))
        if initial_epoch:
            print(f"Resuming {run_dir} after epoch {initial_epoch} of {epochs}")
        model.fit(
            train_loader.stream(initial_epoch),
            steps_per_epoch=len(train_loader),
            shuffle=False,  # the stream shuffles per epoch itself
            validation_data=val_loader,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )
        if nan_guard.reason:
            kept = f"the best model so far is {best.path}" if best.path.exists() else "no epoch finished, nothing was saved"
            raise TrainingDiverged(
                f"Training stopped: {nan_guard.reason}. Lower LEARNING_RATE or check the data; {kept}; "
                f"the last completed epoch is in {run_dir / CHECKPOINT_DIR}."
            )
        reason = ("time budget" if budget is not None and (budget.stopped or budget.exhausted())
                  else "early stopping" if early_stop is not None and early_stop.stopped_epoch else "all epochs")
        finish_checkpoint(run_dir, {"reason": reason, "epochs": epochs, "max_minutes": max_minutes}, keep_checkpoint)
    weights = best_weights(run_dir)
    if weights is not None:
        model.set_weights(weights)
    return checkpoint.history


def extends(finished, epochs, max_minutes):
    """Whether these settings ask a finished run for more training than it was set up for."""
    def more(new, old):
        return (math.inf if new is None else new) > (math.inf if old is None else old)

    return more(epochs, finished["epochs"]) or more(max_minutes, finished["max_minutes"])


def read_checkpoint_state(run_dir):
    state_path = Path(run_dir) / CHECKPOINT_DIR / STATE_FILE
    return read_json(state_path) if state_path.is_file() else None


def finish_checkpoint(run_dir, finished, keep_weights):
    """Record in state.json why training ended; drop the resumable weights unless they are to be kept."""
    checkpoint_dir = Path(run_dir) / CHECKPOINT_DIR
    state = read_checkpoint_state(run_dir)
    if state is None:
        return
    state["finished"] = finished
    if not keep_weights:
        state["weights"] = None
    write_json(checkpoint_dir / STATE_FILE, state)  # first, so it never points at a deleted file
    if not keep_weights:
        for weights in checkpoint_dir.glob("*.weights.h5"):
            weights.unlink()


def resume_from_checkpoint(model, run_dir, checkpoint, state):
    """Restore weights, optimizer, learning rate, callback counters and history; return the epoch to start at."""
    if state is None:
        return 0
    if not state["weights"]:
        raise FileNotFoundError(
            f"{run_dir}: this run finished and its resumable checkpoint was removed to save space; it cannot be "
            "extended. Start a new run (set KEEP_CHECKPOINT = True to keep runs extendable)."
        )
    model.optimizer.build(model.trainable_variables)  # so its slots exist and load from the file
    model.load_weights(Path(run_dir) / CHECKPOINT_DIR / state["weights"])
    model.optimizer.learning_rate.assign(state["learning_rate"])
    checkpoint.resumed_callback_state = state["callbacks"]
    checkpoint.history = {key: list(values) for key, values in state["history"].items()}
    return int(state["epoch"])


def load_history(run_dir):
    """The history of a run (from history.csv), as {metric: [value per epoch]}."""
    path = Path(run_dir) / "history.csv"
    return read_history_csv(path) if path.is_file() else {}
