"""Run folders: config.json, resuming with saved parameters, history.csv."""
import pytest

from birdseg import runs
from birdseg.files import read_json


def test_run_dirs_are_new_and_config_complete(tmp_path):
    first, params = runs.start_run({"EPOCHS": 3, "SEED": 1}, tmp_path)
    second, _ = runs.start_run({"EPOCHS": 3, "SEED": 1}, tmp_path)
    assert first != second and first.parent == second.parent == tmp_path
    config = read_json(first / "config.json")
    assert config["parameters"] == {"EPOCHS": 3, "SEED": 1} == params
    assert {"tensorflow", "keras", "segmentation_models", "python"} <= set(config["versions"])
    assert config["device"].startswith(("CPU", "GPU")) and "git_commit" in config and config["created_utc"]


def test_resume_keeps_saved_parameters_and_can_extend_epochs(tmp_path):
    run_dir, _ = runs.start_run({"EPOCHS": 3, "SEED": 1, "MAX_TRAINING_MINUTES": None}, tmp_path)
    # The notebook's default EPOCHS is not a request to extend: only an explicitly given, larger value is.
    _, params = runs.start_run({"EPOCHS": 10, "SEED": 99}, tmp_path, resume=run_dir, extend={"EPOCHS": None})
    assert params == {"EPOCHS": 3, "SEED": 1, "MAX_TRAINING_MINUTES": None}
    _, params = runs.start_run({"EPOCHS": 5, "SEED": 99}, tmp_path, resume=run_dir,
                                extend={"EPOCHS": 5, "MAX_TRAINING_MINUTES": 2})
    assert params == {"EPOCHS": 5, "SEED": 1, "MAX_TRAINING_MINUTES": 2}
    assert read_json(run_dir / "config.json")["parameters"]["EPOCHS"] == 5
    with pytest.raises(FileNotFoundError, match="no config.json there"):
        runs.start_run({}, tmp_path, resume=tmp_path / "nope")


def test_history_csv_roundtrip(tmp_path):
    history = {"loss": [1.0, 0.5], "val_iou_score": [0.1, 0.2]}
    runs.write_history_csv(tmp_path / "history.csv", history)
    assert runs.read_history_csv(tmp_path / "history.csv") == history
