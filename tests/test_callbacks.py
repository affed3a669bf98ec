"""Callbacks: the standard list and its order, the time budget and the cosine schedule that follows it."""
import numpy as np
import pytest

from birdseg import callbacks


def test_cosine_schedule_follows_the_time_budget():
    budget = callbacks.TrainingBudget(minutes=1, spent_seconds=45)  # three quarters spent
    schedule = callbacks.CosineDecay(1.0, epochs=1000, steps_per_epoch=10, budget=budget)
    assert schedule.progress(batch=0) == pytest.approx(0.75, abs=0.01)  # time binds, not the 1000 epochs
    with pytest.raises(ValueError, match="LR_SCHEDULE='linear'"):
        callbacks.standard_callbacks("unused", 0, 1, 1, 1e-3, lr_schedule="linear")


def test_standard_callbacks_in_order_and_described(tmp_path):
    sample = (np.zeros((32, 32, 3), np.float32), np.zeros((32, 32, 1), np.float32))
    made = callbacks.standard_callbacks(tmp_path, seed=0, epochs=3, steps_per_epoch=4, learning_rate=1e-3,
                                        lr_schedule="plateau", patience=5, max_minutes=2, preview_samples=[sample])
    assert [type(c).__name__ for c in made] == ["EpochSeeds", "StopOnNonFinite", "EpochTimer", "BestModelCheckpoint",
                                                "ReduceLROnPlateau", "EarlyStopping", "PredictionFigure",
                                                "TensorBoard", "TrainingBudget"]
    lines = [callbacks.describe_callback(c) for c in made]
    assert lines[4].startswith("ReduceLROnPlateau(monitor=val_loss, mode=auto, factor=0.5, patience=3, min_lr=1e-06)")
    assert "monitor=val_iou_score" in lines[5] and "restore_best_weights=True" in lines[5]
    assert lines[-1].startswith("TrainingBudget(2 minutes): Stop training once")
    cosine = callbacks.standard_callbacks(tmp_path, 0, 3, 4, 1e-3, lr_schedule="cosine", patience=None,
                                          tensorboard=False)
    assert [type(c).__name__ for c in cosine][4:] == ["CosineDecay"]
