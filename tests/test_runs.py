"""Run folders: config.json, resuming with the run's own recipe, history.csv."""
import pytest

from birdseg import runs
from birdseg.files import read_json
from birdseg.recipe import SCRATCH

SETTINGS = {"SEED": 1, "DATA_DIR": "birds", "MAX_IMAGES_PER_SPLIT": None, "MIXED_PRECISION": "auto", "TTA": "flips"}


def test_run_dirs_are_new_and_config_complete(tmp_path):
    recipe = SCRATCH.override(epochs=3)
    first, kept = runs.start_run(tmp_path, recipe, SETTINGS)
    second, _ = runs.start_run(tmp_path, recipe, SETTINGS)
    assert first != second and first.parent == second.parent == tmp_path and kept is recipe
    parameters = read_json(first / "config.json")["parameters"]
    assert parameters["RECIPE"] == "scratch" and parameters["EPOCHS"] == 3 and parameters["SEED"] == 1
    assert set(parameters) == {"RECIPE", *(key.upper() for key in recipe.parameters()), *SETTINGS}
    config = read_json(first / "config.json")
    assert {"tensorflow", "keras", "segmentation_models", "python"} <= set(config["versions"])
    assert config["device"].startswith(("CPU", "GPU")) and "git_commit" in config and config["created_utc"]


def test_resume_keeps_the_runs_recipe_and_extends_only_to_more(tmp_path):
    run_dir, _ = runs.start_run(tmp_path, SCRATCH.override(epochs=3, batch_size=2, max_training_minutes=5), SETTINGS)
    # The recipe given now (another batch size, fewer epochs) does not change the run: it keeps its own.
    _, kept = runs.start_run(tmp_path, SCRATCH.override(epochs=2), SETTINGS, resume=run_dir)
    assert (kept.epochs, kept.batch_size, kept.max_training_minutes) == (3, 2, 5)
    _, kept = runs.start_run(tmp_path, SCRATCH.override(epochs=5, max_training_minutes=8), SETTINGS, resume=run_dir)
    assert (kept.epochs, kept.batch_size, kept.max_training_minutes) == (5, 2, 8)
    saved = read_json(run_dir / "config.json")["parameters"]
    assert (saved["EPOCHS"], saved["MAX_TRAINING_MINUTES"]) == (5, 8)
    with pytest.raises(FileNotFoundError, match="no config.json there"):
        runs.start_run(tmp_path, SCRATCH, SETTINGS, resume=tmp_path / "nope")


def test_resume_refuses_other_seed_or_data_naming_them(tmp_path):
    run_dir, _ = runs.start_run(tmp_path, SCRATCH, SETTINGS)
    with pytest.raises(ValueError, match=r"this run was started with SEED=1 \(given: 2\), DATA_DIR='birds' \(given: "
                                         r"'other'\); give the same values to resume it"):
        runs.start_run(tmp_path, SCRATCH, {**SETTINGS, "SEED": 2, "DATA_DIR": "other"}, resume=run_dir)
    _, kept = runs.start_run(tmp_path, SCRATCH, {**SETTINGS, "TTA": "none"}, resume=run_dir)  # not about training
    assert kept == SCRATCH


def test_history_csv_roundtrip(tmp_path):
    history = {"loss": [1.0, 0.5], "val_iou_score": [0.1, 0.2]}
    runs.write_history_csv(tmp_path / "history.csv", history)
    assert runs.read_history_csv(tmp_path / "history.csv") == history
