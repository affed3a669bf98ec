"""The training loop: run files, repeatability, resuming, NaN, the time budget, finished runs."""
import math

import keras
import numpy as np
import pytest
from PIL import Image

from birdseg import data, devices, runs, train
from birdseg.files import read_json
from birdseg.model import compile_model, gpu_available

# set_seed turns TensorFlow op determinism on only on CPU: some GPU kernels have no deterministic version.
CPU_DETERMINISTIC = pytest.mark.skipif(gpu_available(), reason="exact repeatability is promised on CPU only")


def tiny_model(size=32):
    """A two-layer conv net with dropout: the training loop's mechanics without EfficientNet's cost."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Dropout(0.3)(x)
    return compile_model(keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(x)), 1e-2)


def loaders(dataset_root, seed=0, size=32):
    train_set = data.load_split(dataset_root, "train", size, size, training=True)
    val_set = data.load_split(dataset_root, "val", size, size)
    return data.Dataloader(train_set, 2, shuffle=True, seed=seed), data.Dataloader(val_set, 2), val_set


def fit(run_dir, dataset_root, epochs, seed=0, **kwargs):
    devices.set_seed(seed)
    model = tiny_model()
    train_loader, val_loader, val_set = loaders(dataset_root, seed)
    history = train.train(model, train_loader, val_loader, run_dir, epochs, preview_samples=[val_set[0]],
                          verbose=0, tensorboard=False, **kwargs)
    return model, history


def test_train_writes_run_files(tmp_path, tiny_dataset):
    model, history = fit(tmp_path, tiny_dataset, epochs=3)
    assert len(history["loss"]) == 3 and {"val_iou_score", "val_f1_score", "learning_rate"} <= set(history)
    assert runs.load_history(tmp_path)["val_loss"] == pytest.approx(history["val_loss"], rel=1e-5)
    for epoch in (1, 2, 3):
        figure = tmp_path / f"results_epoch_{epoch}.png"
        assert Image.open(figure).size[0] > 300
    assert keras.models.load_model(tmp_path / "model.keras", compile=False).count_params() == model.count_params()
    state = read_json(tmp_path / "checkpoint" / "state.json")
    assert state["epoch"] == 3 and state["finished"]["reason"] == "all epochs"
    assert not list(tmp_path.rglob(".tmp-*"))


@CPU_DETERMINISTIC
def test_same_seed_same_history(tmp_path, tiny_dataset):
    _, first = fit(tmp_path / "a", tiny_dataset, epochs=2, seed=5)
    _, second = fit(tmp_path / "b", tiny_dataset, epochs=2, seed=5)
    for key in ("loss", "val_loss", "val_iou_score"):
        assert first[key] == second[key], key


@CPU_DETERMINISTIC
def test_resumed_run_equals_uninterrupted(tmp_path, tiny_dataset):
    _, full = fit(tmp_path / "full", tiny_dataset, epochs=4, seed=3)
    fit(tmp_path / "cut", tiny_dataset, epochs=2, seed=3, keep_checkpoint=True)  # as if killed after epoch 2
    _, resumed = fit(tmp_path / "cut", tiny_dataset, epochs=4, seed=3)
    assert len(resumed["loss"]) == 4
    np.testing.assert_allclose(resumed["val_loss"], full["val_loss"], rtol=1e-6)
    np.testing.assert_allclose(resumed["learning_rate"], full["learning_rate"])
    full_state = read_json(tmp_path / "full" / "checkpoint" / "state.json")
    cut_state = read_json(tmp_path / "cut" / "checkpoint" / "state.json")
    assert cut_state["callbacks"] == full_state["callbacks"]
    assert cut_state["history"]["val_loss"] == full_state["history"]["val_loss"]


class PoisonedLoader(data.Dataloader):
    """Feeds a batch with NaN targets in the second epoch (NaN images are not enough: oneDNN's ReLU on
    AVX-512 CPUs turns NaN into 0, and the loss stays finite)."""

    def batch(self, epoch, batch_index):
        images, masks = super().batch(epoch, batch_index)
        if epoch == 1 and batch_index == 1:
            masks = np.full_like(masks, np.nan)
        return images, masks


def test_nan_loss_stops_with_clear_message_and_keeps_last_good_epoch(tmp_path, tiny_dataset):
    devices.set_seed(0)
    model = tiny_model()
    _, val_loader, _ = loaders(tiny_dataset)
    train_set = data.load_split(tiny_dataset, "train", 32, 32, training=True)
    poisoned = PoisonedLoader(train_set, 2, shuffle=True)
    with pytest.raises(train.TrainingDiverged, match=r"loss became nan at epoch 2, batch 2.*Lower LEARNING_RATE"):
        train.train(model, poisoned, val_loader, tmp_path, 4, verbose=0, tensorboard=False)
    state = read_json(tmp_path / "checkpoint" / "state.json")
    assert state["epoch"] == 1 and all(math.isfinite(v) for v in state["history"]["loss"])
    assert (tmp_path / "model.keras").is_file()
    reloaded = keras.models.load_model(tmp_path / "model.keras", compile=False)
    assert all(np.isfinite(w).all() for w in reloaded.get_weights())


def test_time_budget_stops_cleanly_and_history_says_so(tmp_path, tiny_dataset, capsys):
    # A budget spent during the first batch: that epoch ends early, is validated and saved, and training stops.
    _, history = fit(tmp_path, tiny_dataset, epochs=50, max_minutes=1e-6)
    assert len(history["loss"]) == 1 and history["stopped_on_budget"] == [1.0]
    assert (tmp_path / "model.keras").is_file() and "stopped_on_budget" in (tmp_path / "history.csv").read_text()
    # Resuming a run whose budget is spent trains no more.
    _, history = fit(tmp_path, tiny_dataset, epochs=50, max_minutes=1e-6)
    assert len(history["loss"]) == 1
    assert "this run already finished (time budget, after epoch 1)" in capsys.readouterr().out


def test_roomy_time_budget_changes_nothing(tmp_path, tiny_dataset):
    _, history = fit(tmp_path, tiny_dataset, epochs=2, max_minutes=60)
    assert history["stopped_on_budget"] == [0.0, 0.0]


def test_finished_run_says_so_and_trains_no_more(tmp_path, tiny_dataset, capsys):
    _, history = fit(tmp_path, tiny_dataset, epochs=2)
    state = read_json(tmp_path / "checkpoint" / "state.json")
    assert state["finished"] == {"reason": "all epochs", "epochs": 2, "max_minutes": None}
    assert not list((tmp_path / "checkpoint").glob("*.h5")), "a finished run keeps no 215 MB checkpoint by default"
    _, again = fit(tmp_path, tiny_dataset, epochs=2)
    assert "this run already finished (all epochs, after epoch 2)" in capsys.readouterr().out
    assert again["loss"] == history["loss"]
    with pytest.raises(FileNotFoundError, match="its resumable checkpoint was removed"):
        fit(tmp_path, tiny_dataset, epochs=3)


def test_finished_run_with_kept_checkpoint_can_be_extended(tmp_path, tiny_dataset):
    fit(tmp_path, tiny_dataset, epochs=2, keep_checkpoint=True)
    assert [p.name for p in (tmp_path / "checkpoint").glob("*.h5")] == ["epoch_2.weights.h5"]
    _, history = fit(tmp_path, tiny_dataset, epochs=3, keep_checkpoint=True)
    assert len(history["loss"]) == 3


def test_resume_removes_stale_temporaries(tmp_path, tiny_dataset):
    fit(tmp_path, tiny_dataset, epochs=1, keep_checkpoint=True)
    stale = [tmp_path / "checkpoint" / ".tmp-999-epoch_2.weights.h5", tmp_path / ".tmp-999-model.keras"]
    for path in stale:
        path.write_bytes(b"half a file")
    fit(tmp_path, tiny_dataset, epochs=2)
    assert not any(path.exists() for path in stale)


def test_cosine_schedule_warms_up_then_decays_to_nearly_zero(tmp_path, tiny_dataset):
    _, history = fit(tmp_path, tiny_dataset, epochs=4, lr_schedule="cosine", patience=None)
    rates = history["learning_rate"]  # the last step's rate of each epoch; the base is 1e-2
    assert rates == sorted(rates, reverse=True) and 4e-3 < rates[1] < 9e-3 and rates[-1] < 5e-4
