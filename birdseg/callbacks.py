"""Training callbacks: the ones Keras has are used as they are (ReduceLROnPlateau, EarlyStopping, TensorBoard);
these are the ones it lacks, or whose built-in does not fit (each class says why in one line). The notebook lists
the recipe's callbacks in plain sight; `train.ResumableRun` adds the run's own (reseeding, NaN stop, timing,
progress, checkpoint)."""
import math
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from birdseg import display, plots
from birdseg.checkpoint import callback_state, epoch_weights_name, record_epoch, restore_callback_state
from birdseg.defaults import THRESHOLD
from birdseg.files import atomic_path, save_figure
from birdseg.layout import CHECKPOINT_DIR, MODEL_FILE, MONITOR, epoch_figure
from birdseg.loader import sample_seed
from birdseg.metrics import score_caption
from birdseg.speedups import nested_layers, predict_on_batch


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
    """After every epoch, predict fixed validation images with the weights just trained: saved as
    `results_epoch_N.png`, and shown in the training cell's output when running in a notebook (live or headless)."""

    def __init__(self, samples, out_dir, threshold=THRESHOLD):
        super().__init__()
        self.images = np.stack([image for image, _ in samples])
        self.masks = [mask for _, mask in samples]
        self.out_dir, self.threshold = Path(out_dir), threshold

    def on_epoch_end(self, epoch, logs=None):
        probabilities = predict_on_batch(self.model, self.images)
        rows = [{"image": image, "true": truth, "pred": prob > self.threshold,
                 "caption": score_caption(truth > 0.5, prob > self.threshold)}
                for image, truth, prob in zip(self.images, self.masks, np.asarray(probabilities))]
        val_iou = (logs or {}).get(MONITOR)
        title = (f"Validation images, weights after epoch {epoch + 1}"
                 + (f" (validation IoU {val_iou:.3f})" if val_iou is not None else ""))
        figure = plots.prediction_grid(rows, title=title)
        save_figure(figure, self.out_dir / epoch_figure(epoch + 1), close=False)
        display.show_figure(figure)


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
        with atomic_path(self.dir / epoch_weights_name(epoch + 1)) as tmp:
            self.model.save_weights(tmp)
        record_epoch(self.run_dir, self.history, epoch + 1, logs,
                     {name: callback_state(callback) for name, callback in self.callbacks.items()})


def best_weights(run_dir):
    """Weights of the best epoch, from `run_dir/model.keras`, or None if no epoch was saved yet."""
    path = Path(run_dir) / MODEL_FILE
    return keras.models.load_model(path, compile=False).get_weights() if path.is_file() else None


class SeedGeneratorsUnreachableWarning(UserWarning):
    """Keras no longer keeps a layer's random generators where `layer_seed_generators` looks for them."""


def layer_seed_generators(model):
    """The random generators of every layer of `model` (Dropout's, drop-connect's), in layer order, through Keras'
    private `_seed_generators` list (Keras has no public one). Where that list no longer holds what a Dropout layer
    draws from (checked once per call against the layer's own `seed_generator`), a SeedGeneratorsUnreachableWarning
    says that resumed runs with random layers may no longer match uninterrupted ones, and there are none."""
    probe = keras.layers.Dropout(0.5, seed=0)
    if not any(generator is getattr(probe, "seed_generator", None) for generator in
               getattr(probe, "_seed_generators", [])):
        warnings.warn(f"Keras {keras.__version__} keeps layers' random generators elsewhere: random layers are not "
                      "reseeded per epoch, so a resumed run with dropout or drop-connect may differ from an "
                      "uninterrupted one", SeedGeneratorsUnreachableWarning, stacklevel=2)
        return []
    return [generator for layer in nested_layers(model) for generator in getattr(layer, "_seed_generators", [])]


class EpochSeeds(keras.callbacks.Callback):
    """Reseed every random layer (dropout, drop-connect) from (seed, epoch) when an epoch starts.

    The generators' states are not part of the checkpoint; reseeding per epoch makes epoch N's
    randomness the same whether or not the run was interrupted before it.
    """

    def __init__(self, seed):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        for index, generator in enumerate(layer_seed_generators(self.model)):
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


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to the logs, so history.csv records the cost of every epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self.start


class RunProgress(keras.callbacks.Callback):
    """One progress bar over all the run's training steps, with the time left; after the first steps (the very
    first, which builds the graph, not counted) a line saying how long training will take."""

    def __init__(self, estimate_after=5):
        super().__init__()
        self.estimate_after = estimate_after
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.bar is None:
            self.first_epoch, self.steps, self.estimated = epoch, self.params["steps"], False
            self.bar = display.progress_bar((self.params["epochs"] - epoch) * self.steps, "training", "step")

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        if self.epoch != self.first_epoch:
            return
        if batch == 0:
            self.after_first_step = time.perf_counter()
        elif batch == self.estimate_after:
            self.estimate(batch)

    def estimate(self, steps_timed):
        seconds = (time.perf_counter() - self.after_first_step) / steps_timed
        epochs = self.params["epochs"] - self.first_epoch
        display.notice(f"Training {epochs} epoch(s) of {self.steps} steps at {seconds:.2f} s per step: about "
                       f"{epochs * self.steps * seconds / 60:.1f} minutes, plus validation after each epoch")
        self.estimated = True

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.first_epoch and not self.estimated and self.steps > 1:
            self.estimate(self.steps - 1)  # an epoch shorter than `estimate_after` steps
        self.bar.set_postfix_str(f"epoch {epoch + 1}/{self.params['epochs']}", refresh=False)

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
