"""Callbacks: the per-epoch prediction figure, the run's progress bar and estimate, the time budget."""
import keras
import numpy as np
import pytest

from birdseg import callbacks, plots


class ConstantModel:
    """Stands in for the model a callback sees: predicts `value` everywhere."""

    def __init__(self, value):
        self.value = value

    def predict_on_batch(self, images):
        return np.full(images.shape[:3] + (1,), self.value, np.float32)


def test_prediction_figure_says_which_weights_and_scores_an_empty_mask_as_such(tmp_path, monkeypatch):
    bird = np.zeros((32, 32, 1), np.float32)
    bird[8:16, 8:16] = 1
    samples = [(np.zeros((32, 32, 3), np.float32), bird), (np.zeros((32, 32, 3), np.float32), np.zeros_like(bird))]
    drawn = []
    monkeypatch.setattr(plots, "prediction_grid", lambda rows, title: drawn.append((rows, title)) or
                        plots.visualize(image=rows[0]["image"]))
    figure = callbacks.PredictionFigure(samples, tmp_path)
    figure.set_model(ConstantModel(0.9))  # everything predicted bird
    figure.on_epoch_end(2, {"val_iou_score": 0.25})
    (rows, title), = drawn
    assert title == "Validation images, weights after epoch 3 (validation IoU 0.250)"
    assert [row["caption"] for row in rows] == ["IoU 0.062", "no bird, 1024 pixels predicted"]
    assert (tmp_path / "results_epoch_3.png").is_file()
    figure.set_model(ConstantModel(0.1))  # nothing predicted
    figure.on_epoch_end(3, {})
    assert [row["caption"] for row in drawn[1][0]] == ["IoU 0.000", "no bird, none predicted"]


def test_run_progress_counts_every_step_of_the_run_and_estimates_its_length(capsys):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    progress = callbacks.RunProgress(estimate_after=3)
    x, y = np.ones((40, 4), np.float32), np.zeros((40, 1), np.float32)
    model.fit(x, y, batch_size=4, epochs=3, initial_epoch=1, verbose=0, callbacks=[progress])  # resumed after 1
    out = capsys.readouterr().out
    assert "Training 2 epoch(s) of 10 steps at " in out and " s per step: about " in out
    assert "training: 100%" in out and "20/20" in out  # the two epochs left, every step counted once
    assert progress.bar is None  # closed at the end


def test_run_progress_estimates_after_a_short_first_epoch(capsys):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((8, 4)), np.zeros((8, 1)), batch_size=4, epochs=2, verbose=0,
              callbacks=[callbacks.RunProgress(estimate_after=5)])
    assert capsys.readouterr().out.count("Training 2 epoch(s) of 2 steps at ") == 1


def test_time_budget_counts_earlier_sessions():
    budget = callbacks.TrainingBudget(minutes=1, spent_seconds=45)
    budget.on_train_begin()
    assert 45 <= budget.elapsed() < 50 and not budget.exhausted()
    assert callbacks.TrainingBudget(minutes=1, spent_seconds=61).exhausted()


@pytest.mark.parametrize("logs", [{"loss": float("nan")}, {"loss": float("inf")}])
def test_stop_on_non_finite_names_epoch_and_batch(logs):
    inputs = keras.Input((1,))
    stop = callbacks.StopOnNonFinite()
    stop.set_model(keras.Model(inputs, inputs))
    stop.on_epoch_begin(4)
    stop.on_train_batch_end(6, logs)
    assert stop.model.stop_training and stop.reason == f"loss became {logs['loss']} at epoch 5, batch 7"


def random_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dropout(0.5, seed=1)(keras.layers.Dense(3)(inputs))
    inner = keras.Model(inputs, keras.layers.Dropout(0.5, seed=2)(hidden))
    outer_inputs = keras.Input((4,))
    return keras.Model(outer_inputs, inner(outer_inputs))


def test_seed_generators_of_nested_random_layers_are_found_and_reseeded_per_epoch():
    model = random_model()
    generators = callbacks.layer_seed_generators(model)
    dropouts = [layer for layer in callbacks.nested_layers(model) if isinstance(layer, keras.layers.Dropout)]
    assert len(dropouts) == 2 and [id(g) for g in generators] == [id(layer.seed_generator) for layer in dropouts]
    reseed = callbacks.EpochSeeds(seed=3)
    reseed.set_model(model)
    states = []
    for epoch in (0, 1, 0):
        reseed.on_epoch_begin(epoch)
        states.append([tuple(np.asarray(g.state)) for g in generators])
    assert states[0] == states[2] != states[1]


def test_seed_generators_kept_elsewhere_by_keras_switch_reseeding_off_loudly(monkeypatch):
    class RenamedDropout:  # a Keras that keeps a layer's generators under another private name
        def __init__(self, rate, seed=None):
            self.seed_generator = keras.random.SeedGenerator(seed)
            self._random_generators = [self.seed_generator]
            self._seed_generators = []

    monkeypatch.setattr(keras.layers, "Dropout", RenamedDropout)
    with pytest.warns(callbacks.SeedGeneratorsUnreachableWarning, match="resumed run"):
        assert callbacks.layer_seed_generators(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])) == []
