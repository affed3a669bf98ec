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
    with pytest.raises(ValueError, match="give the same values to resume it, or leave RESUME unset to start a new run$"):
        runs.start_run(tmp_path, SCRATCH, {**SETTINGS, "SEED": 2}, resume=run_dir)
    _, kept = runs.start_run(tmp_path, SCRATCH, {**SETTINGS, "TTA": "none"}, resume=run_dir)  # not about training
    assert kept == SCRATCH


def test_history_csv_roundtrip(tmp_path):
    history = {"loss": [1.0, 0.5], "val_iou_score": [0.1, 0.2]}
    runs.write_history_csv(tmp_path / "history.csv", history)
    assert runs.read_history_csv(tmp_path / "history.csv") == history


def test_history_csv_numbers_epochs_from_one_with_six_significant_digits(tmp_path):
    path = tmp_path / "history.csv"
    runs.write_history_csv(path, {"loss": [1.23456789, 0.5], "iou_score": [0.1, 0.25]})
    assert path.read_bytes() == b"epoch,iou_score,loss\n1,0.1,1.23457\n2,0.25,0.5\n"  # one line end, not csv's \r\n
    assert runs.load_history(tmp_path) == {"iou_score": [0.1, 0.25], "loss": [1.23457, 0.5]}
    path.write_text("epoch,loss\n1,0.5\n")
    assert runs.read_history_csv(path) == {"loss": [0.5]}
    path.write_text("epoch,loss\n")
    assert runs.read_history_csv(path) == {}
    assert runs.load_history(tmp_path / "none") == {}


def test_a_run_folder_is_named_by_its_utc_time_and_never_reused(tmp_path, monkeypatch):
    import re

    first = runs.new_run_dir(tmp_path / "new" / "runs")
    assert re.fullmatch(r"\d{8}T\d{6}Z_[0-9a-f]{6}", first.name) and first.is_dir() and not list(first.iterdir())
    monkeypatch.setattr(runs.secrets, "token_hex", lambda n: first.name.rsplit("_", 1)[1])
    monkeypatch.setattr(runs, "datetime", type("Frozen", (), {"now": staticmethod(
        lambda tz: __import__("datetime").datetime.strptime(first.name[:16], "%Y%m%dT%H%M%SZ"))}))
    with pytest.raises(FileExistsError):
        runs.new_run_dir(tmp_path / "new" / "runs")


def test_encoder_weights_recorded_once(tmp_path):
    run_dir, _ = runs.start_run(tmp_path, SCRATCH, SETTINGS)
    assert runs.record_encoder_weights(run_dir, "imagenet") == "imagenet"
    assert runs.record_encoder_weights(run_dir, None) == "imagenet"  # a resumed run keeps the first record
    assert read_json(run_dir / "config.json")["encoder_weights"] == "imagenet"


def test_package_versions_are_those_imported():
    import numpy
    import tensorflow

    versions = runs.package_versions()
    assert versions["tensorflow"] == tensorflow.__version__ and versions["numpy"] == numpy.__version__
    assert versions["python"].count(".") == 2 and " " not in versions["python"]
    assert set(versions) == {"python", "tensorflow", "keras", "segmentation_models", "albumentations", "numpy"}


def test_git_commit_marks_changed_tracked_files_and_is_none_outside_git(tmp_path, monkeypatch):
    import subprocess

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              capture_output=True, text=True, check=True).stdout.strip()

    assert runs.git_commit(tmp_path) is None
    git("init", "-q")
    (tmp_path / "code.py").write_text("a = 1\n")
    git("add", "code.py")
    git("commit", "-qm", "first")
    head = git("rev-parse", "HEAD")
    (tmp_path / "untracked.txt").write_text("new")
    assert runs.git_commit(tmp_path) == head  # untracked files are not the code
    (tmp_path / "code.py").write_text("a = 2\n")
    assert runs.git_commit(tmp_path) == f"{head}-dirty"
    monkeypatch.chdir(tmp_path)
    assert runs.git_commit() == f"{head}-dirty"  # the current folder's by default


def test_a_worker_that_is_not_the_chief_writes_a_folder_of_its_own(tmp_path, monkeypatch):
    import json

    chief_run, _ = runs.start_run(tmp_path, SCRATCH.override(epochs=3), SETTINGS)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(runs.tempfile, "tempdir", str(tmp_path / "tmp"))  # its temporary folders within the test's
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    run_dir, recipe = runs.start_run(tmp_path / "out", SCRATCH, SETTINGS)
    assert run_dir.name.startswith("birdseg-worker1-") and not (tmp_path / "out").exists()
    config = read_json(run_dir / "config.json")
    assert config["chief"] is False and config["parameters"]["SEED"] == 1 and recipe is SCRATCH
    resumed, kept = runs.start_run(tmp_path / "out", SCRATCH.override(epochs=5), SETTINGS, resume=chief_run)
    assert resumed != chief_run and resumed.name.startswith("birdseg-worker1-") and kept.epochs == 5
    assert read_json(resumed / "config.json")["created_utc"] == read_json(chief_run / "config.json")["created_utc"]
    assert read_json(chief_run / "config.json")["parameters"]["EPOCHS"] == 3  # the chief's folder untouched


def test_a_run_is_stamped_in_utc_whatever_the_local_time_zone(tmp_path, monkeypatch):
    import re
    import time
    from datetime import datetime, timedelta, timezone

    monkeypatch.setenv("TZ", "Asia/Tokyo")  # nine hours from UTC
    time.tzset()
    try:
        run_dir, _ = runs.start_run(tmp_path, SCRATCH, SETTINGS)
    finally:
        monkeypatch.undo()
        time.tzset()
    stamped = datetime.strptime(run_dir.name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - stamped) < timedelta(minutes=5)
    created = datetime.fromisoformat(read_json(run_dir / "config.json")["created_utc"])
    assert created.utcoffset() == timedelta(0) and abs(datetime.now(timezone.utc) - created) < timedelta(minutes=5)
    commit = read_json(run_dir / "config.json")["git_commit"]
    if runs.git_commit(runs.Path(runs.__file__).parent) is not None:  # a checkout: the package's own commit
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", commit)


def test_a_budget_is_kept_when_a_resume_gives_none(tmp_path):
    run_dir, _ = runs.start_run(tmp_path, SCRATCH.override(max_training_minutes=0.5), SETTINGS)
    _, kept = runs.start_run(tmp_path, SCRATCH, SETTINGS, resume=run_dir)
    assert kept.max_training_minutes == 0.5
    assert read_json(run_dir / "config.json")["parameters"]["MAX_TRAINING_MINUTES"] == 0.5
