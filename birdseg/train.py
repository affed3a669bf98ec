"""Training that survives a kill: ResumableRun around the notebook's `model.fit`.

A run folder (`runs/<UTC time>_<id>/`, see `runs`) holds config.json, model.keras (best epoch, no optimizer
state), history.csv, results_epoch_N.png, logs/ (TensorBoard) and checkpoint/ (last completed epoch with
optimizer and callback state, for resuming). Every file is written atomically.
"""
from pathlib import Path

import keras

from birdseg.callbacks import (
    BestModelCheckpoint,
    EpochSeeds,
    EpochTimer,
    RunProgress,
    StopOnNonFinite,
    TrainingBudget,
    TrainingCheckpoint,
    best_weights,
)
from birdseg.checkpoint import extends, finish_checkpoint, read_checkpoint_state
from birdseg.files import remove_stale_temporaries
from birdseg.layout import CHECKPOINT_DIR
from birdseg.model import build_optimizer_slots


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training stopped and the last good files were kept."""


class ResumableRun:
    """Resuming and finishing around `model.fit`, so that a killed run continues where it stopped.

    Give it the recipe's callbacks; `start(model)` restores a checkpoint if there is one and returns the epoch to
    start at; pass `callbacks` to `model.fit`: the run's own first (reseed random layers per epoch from `seed`,
    stop on a NaN loss, time each epoch), then yours, then a progress bar over the whole run and the checkpoint,
    last. `finish(model)` says why training ended, leaves the best epoch's weights in the model (those
    `BestModelCheckpoint` saved) and returns the whole history.

    A `TrainingBudget` among the callbacks counts the earlier sessions of the run. When training finishes (all
    epochs, early stopping or the budget), `checkpoint/state.json` records why; the checkpoint's weights and
    optimizer state (about 215 MB) are deleted unless `keep_checkpoint`, which is only needed to extend a finished
    run later. A finished run says so and trains no more (`finished`), unless `epochs` or the budget are larger
    than when it finished.
    """

    def __init__(self, run_dir, callbacks, epochs, seed, keep_checkpoint=False):
        self.run_dir, self.epochs = Path(run_dir), epochs
        self.keep_checkpoint, self.finished = keep_checkpoint, False
        self.ended = None  # why training ended, for people (the history figure), once it has

        def find(kind):
            return next((callback for callback in callbacks if isinstance(callback, kind)), None)

        self.best, self.budget = find(BestModelCheckpoint), find(TrainingBudget)
        self.max_minutes = self.budget.seconds / 60 if self.budget is not None else None
        self.early_stop = find(keras.callbacks.EarlyStopping)
        self.nan_guard = StopOnNonFinite()
        # The names are keys in state.json: what each one's counters are restored into.
        stateful = {"best_model": self.best, "reduce_lr": find(keras.callbacks.ReduceLROnPlateau),
                    "early_stopping": self.early_stop}
        self.checkpoint = TrainingCheckpoint(self.run_dir, {k: v for k, v in stateful.items() if v is not None})
        # EpochTimer before the checkpoint, which records its epoch_seconds; the checkpoint last: it records the
        # state the others reached this epoch.
        self.callbacks = [EpochSeeds(seed), self.nan_guard, EpochTimer(), *callbacks, RunProgress(), self.checkpoint]

    def start(self, model):
        """Restore the last completed epoch if the run was interrupted; returns the epoch to start at. The
        optimizer's slots are made here, before the first step (`model.build_optimizer_slots`)."""
        remove_stale_temporaries(self.run_dir)  # what a kill in the middle of a write left behind
        build_optimizer_slots(model)
        state = read_checkpoint_state(self.run_dir)
        finished = (state or {}).get("finished")
        if finished and not extends(finished, self.epochs, self.max_minutes):
            print(f"{self.run_dir}: this run already finished ({finished['reason']}, after epoch {state['epoch']}); "
                  "nothing to train. Give a larger EPOCHS or MAX_TRAINING_MINUTES to extend it.")
            self.checkpoint.history, self.finished = state["history"], True
            self.ended = ended_text(finished["reason"], int(state["epoch"]), finished)
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
            if self.nan_guard.reason:
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
            trained = len(self.checkpoint.history.get("loss", []))
            self.ended = ended_text(reason, trained, {"max_minutes": self.max_minutes, "epochs": self.epochs},
                                    self.early_stop.patience if self.early_stop else None)
            kept = f"; the model kept is epoch {self.best.best_epoch}'s" if self.best and self.best.best_epoch else ""
            print(f"Training ended after epoch {trained} of {self.epochs}: {self.ended}{kept}.")
        weights = best_weights(self.run_dir)
        if weights is not None:
            model.set_weights(weights)
        return self.checkpoint.history


def ended_text(reason, trained, settings, patience=None):
    """Why training ended, for people: "all 10 epochs", "early stopping (5 epochs without a better validation IoU)",
    "the time budget of 17 minutes (MAX_TRAINING_MINUTES) ran out"."""
    if reason == "time budget":
        return f"the time budget of {settings['max_minutes']:g} minutes (MAX_TRAINING_MINUTES) ran out"
    if reason == "early stopping":
        return "early stopping" + (f" ({patience} epochs without a better validation IoU)" if patience else "")
    return f"all {trained} epochs" if trained == settings["epochs"] else f"all epochs ({trained})"


def resume_from_checkpoint(model, run_dir, checkpoint, state):
    """Restore weights, optimizer, learning rate, callback counters and history; return the epoch to start at."""
    if state is None:
        return 0
    if not state["weights"]:
        raise FileNotFoundError(
            f"{run_dir}: this run finished and its resumable checkpoint was removed to save space; it cannot be "
            "extended. Start a new run (set KEEP_CHECKPOINT = True to keep runs extendable)."
        )
    model.load_weights(Path(run_dir) / CHECKPOINT_DIR / state["weights"])  # the optimizer's too: its step, its rate
    checkpoint.resumed_callback_state = state["callbacks"]
    checkpoint.history = {key: list(values) for key, values in state["history"].items()}
    return int(state["epoch"])
