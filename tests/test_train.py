"""The training loop around the notebook's `model.fit`: run files, repeatability, resuming an interrupted run, NaN,
the time budget, finished runs, learning-rate schedules."""
import math

import albumentations as A
import keras
import numpy as np
import pytest
from PIL import Image

from birdseg import callbacks, devices, loader, runs, train
from birdseg.devices import gpu_available
from birdseg.files import read_json
from birdseg.model import compile_model

# set_seed turns TensorFlow op determinism on only on CPU: some GPU kernels have no deterministic version.
CPU_DETERMINISTIC = pytest.mark.skipif(gpu_available(), reason="exact repeatability is promised on CPU only")
SIZE = 32
TIMINGS = ("epoch_seconds",)  # the only columns of a history that may differ between equal runs


def tiny_model(learning_rate=1e-2):
    """A two-layer conv net with dropout: the training loop's mechanics without EfficientNet's cost."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Dropout(0.3)(x)
    return compile_model(keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(x)), learning_rate,
                         "bce_jaccard")


def loaders(dataset_root, seed=0):
    flips = A.Compose([A.Resize(SIZE, SIZE), A.HorizontalFlip(p=0.3), A.VerticalFlip(p=0.3)])
    train_set = loader.load_split(dataset_root, "train", SIZE, SIZE, augmentation=flips)
    val_set = loader.load_split(dataset_root, "val", SIZE, SIZE)
    return loader.Dataloader(train_set, 2, shuffle=True, seed=seed), loader.Dataloader(val_set, 2), val_set


class Interrupted(Exception):
    """Stands in for a kill: raised from inside `fit`."""


class InterruptAt(keras.callbacks.Callback):
    """Raise Interrupted at a batch of an epoch, as a kill in the middle of that epoch would stop the run."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise Interrupted(f"epoch {self.epoch + 1}, batch {batch + 1}")


def fit(run_dir, dataset_root, epochs, seed=0, learning_rate=1e-2, plateau=True, patience=5, max_minutes=None,
        keep_checkpoint=False, train_loader=None, interrupt=None):
    """What the notebook's training cell does, on the tiny model: returns (model, history)."""
    devices.set_seed(seed)
    model = tiny_model(learning_rate)
    default_loader, val_loader, val_set = loaders(dataset_root, seed)
    train_loader = train_loader or default_loader
    recipe_callbacks = [callbacks.BestModelCheckpoint(run_dir / "model.keras"),
                        callbacks.PredictionFigure([val_set[0]], run_dir)]
    if plateau:
        recipe_callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1))
    if patience:
        recipe_callbacks.append(keras.callbacks.EarlyStopping(monitor="val_iou_score", mode="max", patience=patience,
                                                              restore_best_weights=True))
    if max_minutes:
        recipe_callbacks.append(callbacks.TrainingBudget(max_minutes))
    run = train.ResumableRun(run_dir, recipe_callbacks, epochs, seed=seed, keep_checkpoint=keep_checkpoint)
    initial_epoch = run.start(model)
    if not run.finished:
        model.fit(train_loader.stream(initial_epoch), steps_per_epoch=len(train_loader), validation_data=val_loader,
                  epochs=epochs, initial_epoch=initial_epoch, shuffle=False, verbose=0,
                  callbacks=run.callbacks + ([InterruptAt(*interrupt)] if interrupt else []))
    return model, run.finish(model)


def assert_same_history(got, expected):
    """Every metric of every epoch equal (the learning rate and the counters included), the timings aside."""
    assert sorted(got) == sorted(expected)
    for key in expected:
        if key not in TIMINGS:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, err_msg=key)


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


def test_start_makes_the_optimizer_slots_before_the_first_step(tmp_path):
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")  # as the notebook compiles: slots not made yet
    assert not model.optimizer.built
    train.ResumableRun(tmp_path, [], 1, seed=0).start(model)
    assert model.optimizer.built
    assert len(model.optimizer.variables) == 2 * len(model.trainable_variables) + 2  # m, v; iterations, rate


@CPU_DETERMINISTIC
def test_same_seed_same_history(tmp_path, tiny_dataset):
    _, first = fit(tmp_path / "a", tiny_dataset, epochs=2, seed=5)
    _, second = fit(tmp_path / "b", tiny_dataset, epochs=2, seed=5)
    assert_same_history(second, first)
    _, other_seed = fit(tmp_path / "c", tiny_dataset, epochs=2, seed=6)
    assert other_seed["loss"] != first["loss"]


@CPU_DETERMINISTIC
@pytest.mark.parametrize("schedule", ["plateau", "cosine"])
def test_interrupted_run_resumes_and_equals_uninterrupted(tmp_path, tiny_dataset, schedule):
    """Stopped in the middle of its third epoch (the second's checkpoint on disk), then resumed from the files alone,
    as after a kill: every metric of every epoch, the learning rate and the callbacks' counters as uninterrupted."""
    def learning_rate():
        return (keras.optimizers.schedules.CosineDecay(0.0, 14, alpha=1e-3, warmup_target=1e-2, warmup_steps=2)
                if schedule == "cosine" else 1e-2)

    settings = {"epochs": 4, "seed": 3, "plateau": schedule == "plateau"}
    _, full = fit(tmp_path / "full", tiny_dataset, learning_rate=learning_rate(), **settings)
    with pytest.raises(Interrupted):
        fit(tmp_path / "cut", tiny_dataset, learning_rate=learning_rate(), interrupt=(2, 1), **settings)
    state = read_json(tmp_path / "cut" / "checkpoint" / "state.json")
    assert state["epoch"] == 2 and "finished" not in state  # killed: the third epoch never finished
    _, resumed = fit(tmp_path / "cut", tiny_dataset, learning_rate=learning_rate(), **settings)
    assert len(resumed["loss"]) == 4
    assert_same_history(resumed, full)
    full_state = read_json(tmp_path / "full" / "checkpoint" / "state.json")
    cut_state = read_json(tmp_path / "cut" / "checkpoint" / "state.json")
    assert cut_state["callbacks"] == full_state["callbacks"]
    if schedule == "cosine":  # down to the floor at the last step: the schedule follows the steps, across the resume
        rates = full["learning_rate"]
        assert rates == sorted(rates, reverse=True) and rates[-1] < 1e-4


@CPU_DETERMINISTIC
def test_a_run_on_fresh_drawings_resumes_to_the_uninterrupted_history(tmp_path, tiny_dataset):
    """Training images drawn on the fly (FRESH_DRAWINGS) are a function of (seed, epoch, index): a run killed in its
    third epoch and resumed draws and learns what an uninterrupted one does."""
    def drawn_loader():
        augmentation = A.Compose([A.Resize(SIZE, SIZE), A.HorizontalFlip(p=0.3)])
        return loader.Dataloader(loader.DrawnDataset("mixed", 4, augmentation), 2, shuffle=True, seed=3)

    settings = {"epochs": 3, "seed": 3}
    _, full = fit(tmp_path / "full", tiny_dataset, train_loader=drawn_loader(), **settings)
    with pytest.raises(Interrupted):
        fit(tmp_path / "cut", tiny_dataset, train_loader=drawn_loader(), interrupt=(2, 0), **settings)
    _, resumed = fit(tmp_path / "cut", tiny_dataset, train_loader=drawn_loader(), **settings)
    assert_same_history(resumed, full)
    _, files = fit(tmp_path / "files", tiny_dataset, **settings)
    assert files["loss"] != full["loss"]  # the drawings, not the files, were learnt


class PoisonedLoader(loader.Dataloader):
    """Feeds a batch with NaN targets in the second epoch (NaN images are not enough: oneDNN's ReLU on
    AVX-512 CPUs turns NaN into 0, and the loss stays finite)."""

    def batch(self, epoch, batch_index):
        images, masks = super().batch(epoch, batch_index)
        if epoch == 1 and batch_index == 1:
            masks = np.full_like(masks, np.nan)
        return images, masks


def test_nan_loss_stops_with_clear_message_and_keeps_last_good_epoch(tmp_path, tiny_dataset):
    train_set = loader.load_split(tiny_dataset, "train", SIZE, SIZE)
    poisoned = PoisonedLoader(train_set, 2, shuffle=True)
    with pytest.raises(train.TrainingDiverged, match=r"loss became nan at epoch 2, batch 2.*Lower LEARNING_RATE"):
        fit(tmp_path, tiny_dataset, epochs=4, train_loader=poisoned)
    state = read_json(tmp_path / "checkpoint" / "state.json")
    assert state["epoch"] == 1 and all(math.isfinite(v) for v in state["history"]["loss"])
    assert (tmp_path / "model.keras").is_file()
    reloaded = keras.models.load_model(tmp_path / "model.keras", compile=False)
    assert all(np.isfinite(w).all() for w in reloaded.get_weights())


def test_time_budget_stops_cleanly_and_says_so(tmp_path, tiny_dataset, capsys):
    # A budget spent during the first batch: that epoch ends early, is validated and saved, and training stops.
    _, history = fit(tmp_path, tiny_dataset, epochs=50, max_minutes=1e-6)
    assert len(history["loss"]) == 1 and history["stopped_on_budget"] == [1.0]
    assert (tmp_path / "model.keras").is_file() and "stopped_on_budget" in (tmp_path / "history.csv").read_text()
    assert ("Training ended after epoch 1 of 50: the time budget of 1e-06 minutes (MAX_TRAINING_MINUTES) ran out"
            in capsys.readouterr().out)
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
    assert "Training ended after epoch 2 of 2: all 2 epochs; the model kept is epoch" in capsys.readouterr().out
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
