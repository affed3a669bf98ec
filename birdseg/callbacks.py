"""Training callbacks: the ones Keras has are used as they are (ReduceLROnPlateau, EarlyStopping, TensorBoard);
these are the ones it lacks, or whose built-in does not fit (each class says why in one line)."""
import math
import time
from pathlib import Path

import keras
import numpy as np

from birdseg import plots
from birdseg.data import sample_seed
from birdseg.defaults import THRESHOLD
from birdseg.files import atomic_path, save_figure, write_json
from birdseg.model import confusion_counts, scores_from_counts
from birdseg.runs import write_history_csv

LR_SCHEDULES = ("plateau", "cosine")
MONITOR = "val_iou_score"  # best model and early stopping follow the metric users care about
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"


def _finite(logs):
    return all(math.isfinite(v) for v in (logs or {}).values() if isinstance(v, (int, float)))


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop at the first NaN/inf loss and remember why; `train` then raises TrainingDiverged.

    Not Keras' TerminateOnNaN: that one stops without saying where; the error names the epoch and batch.
    """

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
    """Save the model (without optimizer state, so it stays small) whenever `monitor` improves.

    Not Keras' ModelCheckpoint: that one writes in place (a kill mid-save leaves a broken model.keras) and its
    best value is not part of the resumable state.
    """

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

    Not Keras' BackupAndRestore: that restores weights and the epoch only; a resumed run here also needs the
    callbacks' counters, the learning rate, the history and the time spent, and a finished run says why.

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
    """What a callback needs to continue after a resume: its own get_state(), or the counters of Keras' built-ins."""
    if hasattr(callback, "get_state"):
        return callback.get_state()
    keys = ("wait", "best", "cooldown_counter", "stopped_epoch", "best_epoch")
    return {k: float(getattr(callback, k)) for k in keys if isinstance(getattr(callback, k, None), (int, float))}


def restore_callback_state(callback, state):
    """Put back what `callback_state` saved (after Keras has reset the counters in on_train_begin)."""
    if hasattr(callback, "set_state"):
        callback.set_state(state)
        return
    for key, value in state.items():
        current = getattr(callback, key)
        setattr(callback, key, type(current)(value) if isinstance(current, int) else value)


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


def standard_callbacks(run_dir, seed, epochs, steps_per_epoch, learning_rate, lr_schedule="plateau", patience=5,
                       max_minutes=None, preview_samples=(), tensorboard=True, verbose=1):
    """The training callbacks, in the order they run.

    Args:
        run_dir: the run folder (model.keras, results_epoch_N.png and logs/ go there).
        seed: the loader's seed; random layers are reseeded from it per epoch.
        epochs, steps_per_epoch: the run's length, for the cosine schedule.
        learning_rate: the starting learning rate, for the cosine schedule.
        lr_schedule: "plateau" halves the learning rate when the validation loss stalls for 3 epochs (the seed's);
            "cosine" warms up, then decays it to zero over the run's length (EPOCHS or the time budget).
        patience: epochs without a better validation IoU before early stopping (None: none).
        max_minutes: time budget (None: none).
        preview_samples: validation (image, mask) pairs drawn after every epoch (empty: no figures).
        tensorboard: keep TensorBoard logs.

    Returns:
        A list of callbacks for `model.fit` (through `train.ResumableRun`, which adds the checkpoint).
    """
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"LR_SCHEDULE={lr_schedule!r}: expected one of {LR_SCHEDULES}")
    budget = TrainingBudget(max_minutes) if max_minutes is not None else None
    callbacks = [EpochSeeds(seed), StopOnNonFinite(), EpochTimer(), BestModelCheckpoint(Path(run_dir) / "model.keras")]
    if lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-6,
                                                           verbose=verbose))
    else:
        callbacks.append(CosineDecay(learning_rate, epochs, steps_per_epoch, budget))
    if patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=patience,
                                                       restore_best_weights=True, verbose=verbose))
    if preview_samples:
        callbacks.append(PredictionFigure(preview_samples, run_dir))
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(Path(run_dir) / "logs", write_graph=False, profile_batch=0))
    if budget is not None:
        callbacks.append(budget)
    return callbacks


def describe_callback(callback):
    """One line for people: the class, its settings that matter, and what it does."""
    names = ("monitor", "mode", "factor", "patience", "min_lr", "restore_best_weights", "log_dir", "base", "path",
             "out_dir")
    settings = ", ".join(f"{name}={getattr(callback, name)}" for name in names if hasattr(callback, name))
    paragraph = " ".join((type(callback).__doc__ or "").strip().split("\n\n")[0].split())
    what = paragraph.split(". ")[0].rstrip(".") + "."
    minutes = f"{callback.seconds / 60:g} minutes" if isinstance(callback, TrainingBudget) else ""
    return f"{type(callback).__name__}({settings or minutes}): {what}"

