"""The resumable checkpoint's files: state.json after each epoch, the weights kept, a finished run, counters put back.
No TensorFlow op runs here (the mutation run forks these tests: tests/mutation.py)."""
import pathlib

import keras

from birdseg import checkpoint
from birdseg.files import read_json
from birdseg.runs import read_history_csv


def weights_file(run_dir, epoch):
    path = run_dir / "checkpoint" / checkpoint.epoch_weights_name(epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights")
    return path


def test_each_epoch_extends_the_history_and_keeps_only_its_own_weights(tmp_path):
    history = {}
    first = weights_file(tmp_path, 1)
    checkpoint.record_epoch(tmp_path, history, 1, {"loss": 0.5, "learning_rate": 1e-3}, {"best_model": {"best": 0.1}})
    stray = tmp_path / "checkpoint" / "epoch_7.weights.h5"  # left by an older run: not this epoch's
    stray.write_bytes(b"old")
    second = weights_file(tmp_path, 2)
    checkpoint.record_epoch(tmp_path, history, 2, {"loss": 0.25, "learning_rate": 5e-4}, {"best_model": {"best": 0.3}})
    assert history == {"loss": [0.5, 0.25], "learning_rate": [1e-3, 5e-4]}
    state = checkpoint.read_checkpoint_state(tmp_path)
    assert state == {"epoch": 2, "weights": "epoch_2.weights.h5", "learning_rate": 5e-4, "history": history,
                     "callbacks": {"best_model": {"best": 0.3}}}
    assert second.is_file() and not first.exists() and not stray.exists()
    assert read_history_csv(tmp_path / "history.csv") == history
    assert (tmp_path / "checkpoint" / "state.json").read_text().count("\n") > 1  # for people too


def test_an_old_weights_file_gone_meanwhile_is_no_error(tmp_path, monkeypatch):
    """Between listing the old weights and removing them, another process (a second worker, a person) may remove
    one first."""
    gone = tmp_path / "checkpoint" / "epoch_1.weights.h5"
    listed = pathlib.Path.glob
    monkeypatch.setattr(pathlib.Path, "glob", lambda self, pattern: [*listed(self, pattern), gone])
    weights_file(tmp_path, 2)
    checkpoint.record_epoch(tmp_path, {}, 2, {"loss": 0.5, "learning_rate": 1e-3}, {})
    assert checkpoint.read_checkpoint_state(tmp_path)["epoch"] == 2


def test_values_are_recorded_as_plain_floats(tmp_path):
    history = {}
    checkpoint.record_epoch(tmp_path, history, 1, {"loss": 1, "learning_rate": 2}, {})
    assert history == {"loss": [1.0], "learning_rate": [2.0]} and type(history["loss"][0]) is float
    assert type(checkpoint.read_checkpoint_state(tmp_path)["learning_rate"]) is float


def test_no_state_before_the_first_epoch(tmp_path):
    assert checkpoint.read_checkpoint_state(tmp_path) is None
    checkpoint.finish_checkpoint(tmp_path, {"reason": "all epochs"}, keep_weights=False)  # nothing to finish
    assert not (tmp_path / "checkpoint").exists()


def test_a_finished_run_says_why_and_drops_its_weights_unless_kept(tmp_path):
    for keep in (True, False):
        run_dir = tmp_path / str(keep)
        weights = weights_file(run_dir, 3)
        checkpoint.record_epoch(run_dir, {}, 3, {"loss": 0.1, "learning_rate": 1e-4}, {})
        finished = {"reason": "time budget", "epochs": 10, "max_minutes": 5.0}
        checkpoint.finish_checkpoint(run_dir, finished, keep_weights=keep)
        state = read_json(run_dir / "checkpoint" / "state.json")
        assert state["finished"] == finished and state["epoch"] == 3
        assert state["weights"] == ("epoch_3.weights.h5" if keep else None)
        assert weights.is_file() == keep


def test_a_finished_run_extends_only_to_more_epochs_or_minutes():
    finished = {"epochs": 10, "max_minutes": 5.0}
    assert not checkpoint.extends(finished, 10, 5.0)
    assert not checkpoint.extends(finished, 9, 4.0)
    assert checkpoint.extends(finished, 11, 5.0) and checkpoint.extends(finished, 10, 5.5)
    assert checkpoint.extends(finished, 10, None)  # no budget now: more than 5 minutes
    assert not checkpoint.extends({"epochs": 10, "max_minutes": None}, 10, None)
    assert not checkpoint.extends({"epochs": 10, "max_minutes": None}, 10, 60.0)  # a budget is less than none


def test_callback_counters_survive_a_resume_with_their_types():
    """What a resumed run puts back into Keras' EarlyStopping and ReduceLROnPlateau, and into a callback that keeps
    its own state: the counters as whole numbers, the best value as it was."""
    stopping = keras.callbacks.EarlyStopping(patience=5)
    stopping.wait, stopping.best, stopping.stopped_epoch, stopping.best_epoch = 3, 0.25, 0, 7
    plateau = keras.callbacks.ReduceLROnPlateau(patience=3)
    plateau.wait, plateau.best, plateau.cooldown_counter = 2, 0.5, 1
    saved = {name: checkpoint.callback_state(cb) for name, cb in (("stop", stopping), ("plateau", plateau))}
    assert saved["stop"] == {"wait": 3.0, "best": 0.25, "stopped_epoch": 0.0, "best_epoch": 7.0}
    assert saved["plateau"] == {"wait": 2.0, "best": 0.5, "cooldown_counter": 1.0}
    fresh_stop, fresh_plateau = keras.callbacks.EarlyStopping(patience=5), keras.callbacks.ReduceLROnPlateau(patience=3)
    fresh_stop.on_train_begin(), fresh_plateau.on_train_begin()  # Keras resets its counters here
    checkpoint.restore_callback_state(fresh_stop, saved["stop"])
    checkpoint.restore_callback_state(fresh_plateau, saved["plateau"])
    assert (fresh_stop.wait, fresh_stop.best, fresh_stop.best_epoch) == (3, 0.25, 7) and type(fresh_stop.wait) is int
    assert (fresh_plateau.wait, fresh_plateau.best, fresh_plateau.cooldown_counter) == (2, 0.5, 1)

    class OwnState:
        def __init__(self):
            self.state = None

        def get_state(self):
            return {"sessions": 2}

        def set_state(self, state):
            self.state = state

    own = OwnState()
    assert checkpoint.callback_state(own) == {"sessions": 2}
    checkpoint.restore_callback_state(own, {"sessions": 2})
    assert own.state == {"sessions": 2}
