"""A run's resumable checkpoint: `checkpoint/state.json` names the last completed epoch, its weights file, the
learning rate, the history and the callbacks' counters, and, once training has ended, why. Writing it, finishing it
and putting the counters back are plain file and attribute work, kept apart from the callbacks and `ResumableRun`
(`train.py`) that move the weights with Keras.
"""
import math
from pathlib import Path

from birdseg.files import read_json, write_json
from birdseg.layout import CHECKPOINT_DIR, HISTORY_FILE, STATE_FILE
from birdseg.runs import write_history_csv

WEIGHTS_PATTERN = "*.weights.h5"
KERAS_COUNTERS = ("wait", "best", "cooldown_counter", "stopped_epoch", "best_epoch")  # EarlyStopping, ReduceLROnPlateau


def epoch_weights_name(epoch):
    """The checkpoint's weights file after `epoch` (counted from 1)."""
    return f"epoch_{epoch}.weights.h5"


def read_checkpoint_state(run_dir):
    """checkpoint/state.json of a run, or None when it has none yet."""
    state_path = Path(run_dir) / CHECKPOINT_DIR / STATE_FILE
    return read_json(state_path) if state_path.is_file() else None


def record_epoch(run_dir, history, epoch, logs, callback_states):
    """After epoch `epoch` (from 1), whose weights are already in `epoch_weights_name(epoch)`: append `logs` to
    `history`, write state.json (last: it then always points at a complete weights file) and history.csv, and
    remove the weights of earlier epochs."""
    for key, value in logs.items():
        history.setdefault(key, []).append(float(value))
    checkpoint_dir = Path(run_dir) / CHECKPOINT_DIR
    weights_name = epoch_weights_name(epoch)
    state = {"epoch": epoch, "weights": weights_name, "learning_rate": float(logs["learning_rate"]),
             "history": history, "callbacks": callback_states}
    write_json(checkpoint_dir / STATE_FILE, state)
    write_history_csv(Path(run_dir) / HISTORY_FILE, history)
    for old in checkpoint_dir.glob(WEIGHTS_PATTERN):
        if old.name != weights_name:
            old.unlink(missing_ok=True)


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
        for weights in checkpoint_dir.glob(WEIGHTS_PATTERN):
            weights.unlink()


def extends(finished, epochs, max_minutes):
    """Whether these settings ask a finished run for more training than it was set up for (None: no limit)."""
    def more(new, old):
        return (math.inf if new is None else new) > (math.inf if old is None else old)

    return more(epochs, finished["epochs"]) or more(max_minutes, finished["max_minutes"])


def callback_state(callback):
    """What a callback needs to continue after a resume: its own get_state(), or the counters of Keras' built-ins."""
    if hasattr(callback, "get_state"):
        return callback.get_state()
    return {key: float(getattr(callback, key)) for key in KERAS_COUNTERS
            if isinstance(getattr(callback, key, None), (int, float))}


def restore_callback_state(callback, state):
    """Put back what `callback_state` saved (after Keras has reset the counters in on_train_begin), whole numbers
    as whole numbers."""
    if hasattr(callback, "set_state"):
        callback.set_state(state)
        return
    for key, value in state.items():
        current = getattr(callback, key)
        setattr(callback, key, type(current)(value) if isinstance(current, int) else value)
