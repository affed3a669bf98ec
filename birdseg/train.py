"""Training that survives a kill: ResumableRun around `model.fit`, and `train`, the notebook's training cell in
one call.

A run folder (`runs/<UTC time>_<id>/`, see `runs`) holds config.json, model.keras (best epoch, no optimizer
state), history.csv, results_epoch_N.png, logs/ (TensorBoard) and checkpoint/ (last completed epoch with
optimizer and callback state, for resuming). Every file is written atomically.
"""
import math
from pathlib import Path

import keras

from birdseg.callbacks import (
    CHECKPOINT_DIR,
    STATE_FILE,
    BestModelCheckpoint,
    StopOnNonFinite,
    TrainingBudget,
    TrainingCheckpoint,
    best_weights,
    standard_callbacks,
)
from birdseg.files import read_json, remove_stale_temporaries, write_json


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training stopped and the last good files were kept."""


class ResumableRun:
    """Resuming and finishing around `model.fit`, so that a killed run continues where it stopped.

    Give it the run's callbacks; `start(model)` restores a checkpoint if there is one and returns the epoch to
    start at; pass `callbacks` (yours plus the checkpoint, last) to `model.fit`; `finish(model)` records why
    training ended, leaves the best epoch's weights in the model and returns the whole history.

    `max_minutes` (None: no limit) is the time budget the callbacks enforce, counting earlier sessions of the
    run. When training finishes (all epochs, early stopping or the budget), `checkpoint/state.json` records why;
    the checkpoint's weights and optimizer state (about 215 MB) are deleted unless `keep_checkpoint`, which is
    only needed to extend a finished run later. A finished run says so and trains no more (`finished`), unless
    `epochs` or `max_minutes` are larger than when it finished.
    """

    def __init__(self, run_dir, callbacks, epochs, max_minutes=None, keep_checkpoint=False):
        self.run_dir, self.epochs, self.max_minutes = Path(run_dir), epochs, max_minutes
        self.keep_checkpoint, self.finished = keep_checkpoint, False

        def find(kind):
            return next((callback for callback in callbacks if isinstance(callback, kind)), None)

        self.best, self.nan_guard, self.budget = find(BestModelCheckpoint), find(StopOnNonFinite), find(TrainingBudget)
        self.early_stop = find(keras.callbacks.EarlyStopping)
        # The names are keys in state.json: what each one's counters are restored into.
        stateful = {"best_model": self.best, "reduce_lr": find(keras.callbacks.ReduceLROnPlateau),
                    "early_stopping": self.early_stop}
        self.checkpoint = TrainingCheckpoint(self.run_dir, {k: v for k, v in stateful.items() if v is not None})
        self.callbacks = [*callbacks, self.checkpoint]  # last: it records the state the others reached this epoch

    def start(self, model):
        """Restore the last completed epoch if the run was interrupted; returns the epoch to start at."""
        remove_stale_temporaries(self.run_dir)  # what a kill in the middle of a write left behind
        state = read_checkpoint_state(self.run_dir)
        finished = (state or {}).get("finished")
        if finished and not extends(finished, self.epochs, self.max_minutes):
            print(f"{self.run_dir}: this run already finished ({finished['reason']}, after epoch {state['epoch']}); "
                  "nothing to train. Give a larger EPOCHS or MAX_TRAINING_MINUTES to extend it.")
            self.checkpoint.history, self.finished = state["history"], True
            return int(state["epoch"])
        initial_epoch = resume_from_checkpoint(model, self.run_dir, self.checkpoint, state)
        if self.budget is not None:
            self.budget.spent_seconds = sum(self.checkpoint.history.get("epoch_seconds", []))
        if initial_epoch:
            print(f"Resuming {self.run_dir} after epoch {initial_epoch} of {self.epochs}")
        return initial_epoch

    def finish(self, model):
        """Say why training ended, load the best epoch's weights into `model`; returns the whole history.
        Raises TrainingDiverged on a NaN/inf loss; the files of the last good epoch are kept."""
        if not self.finished:
            if self.nan_guard is not None and self.nan_guard.reason:
                kept = (f"the best model so far is {self.best.path}" if self.best and self.best.path.exists()
                        else "no epoch finished, nothing was saved")
                raise TrainingDiverged(
                    f"Training stopped: {self.nan_guard.reason}. Lower LEARNING_RATE or check the data; {kept}; "
                    f"the last completed epoch is in {self.run_dir / CHECKPOINT_DIR}."
                )
            reason = ("time budget" if self.budget is not None and (self.budget.stopped or self.budget.exhausted())
                      else "early stopping" if self.early_stop is not None and self.early_stop.stopped_epoch
                      else "all epochs")
            finish_checkpoint(self.run_dir, {"reason": reason, "epochs": self.epochs, "max_minutes": self.max_minutes},
                              self.keep_checkpoint)
            self.finished = True
        weights = best_weights(self.run_dir)
        if weights is not None:
            model.set_weights(weights)
        return self.checkpoint.history


def train(model, train_loader, val_loader, run_dir, epochs, preview_samples=(), verbose=1, tensorboard=True,
          max_minutes=None, keep_checkpoint=False, patience=5, lr_schedule="plateau"):
    """What the notebook's training cell does, in one call (for scripts and benchmarks): the standard callbacks
    (see `callbacks.standard_callbacks`), resuming from `run_dir/checkpoint` if one is there, and `model.fit`.

    Returns the full history (all epochs, resumed ones included) as {metric: [value per epoch]}. Afterwards the
    model holds the weights of the best epoch, as saved in `run_dir/model.keras`. See ResumableRun for
    `max_minutes` and `keep_checkpoint`; raises TrainingDiverged on a NaN/inf loss.
    """
    learning_rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    callbacks = standard_callbacks(run_dir, train_loader.seed, epochs, len(train_loader), learning_rate, lr_schedule,
                                   patience, max_minutes, preview_samples, tensorboard, verbose)
    run = ResumableRun(run_dir, callbacks, epochs, max_minutes, keep_checkpoint)
    initial_epoch = run.start(model)
    if not run.finished:
        model.fit(train_loader.stream(initial_epoch), steps_per_epoch=len(train_loader), shuffle=False,
                  validation_data=val_loader, epochs=epochs, initial_epoch=initial_epoch, callbacks=run.callbacks,
                  verbose=verbose)
    return run.finish(model)


def extends(finished, epochs, max_minutes):
    """Whether these settings ask a finished run for more training than it was set up for."""
    def more(new, old):
        return (math.inf if new is None else new) > (math.inf if old is None else old)

    return more(epochs, finished["epochs"]) or more(max_minutes, finished["max_minutes"])


def read_checkpoint_state(run_dir):
    """checkpoint/state.json of a run, or None when it has none yet."""
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
