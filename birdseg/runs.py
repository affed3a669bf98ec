"""Run folders: a new `runs/<UTC time>_<id>/` per run with config.json (every parameter, versions, git commit,
device), resuming one, and its history.csv. Every file is written atomically."""
import csv
import io
import secrets
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from birdseg.cluster import cluster_task, is_chief
from birdseg.devices import describe_device
from birdseg.files import read_json, write_json, write_text
from birdseg.layout import CONFIG_FILE, HISTORY_FILE
from birdseg.recipe import Recipe


def new_run_dir(output_dir):
    """Create and return a new, empty run folder `<output_dir>/<UTC timestamp>_<6 hex>`."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(output_dir) / f"{stamp}_{secrets.token_hex(3)}"
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def package_versions():
    """Versions of Python and the libraries that decide the numbers, for config.json."""
    import albumentations
    import segmentation_models

    return {
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "segmentation_models": segmentation_models.__version__,
        "albumentations": albumentations.__version__,
        "numpy": np.__version__,
    }


def git_commit(directory="."):
    """The commit of the code, with "-dirty" when tracked files have changes; None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


# Parameters a resumed run must be given as it was started with: they decide which batches it sees and how it
# computes. The recipe is kept from the run itself; EPOCHS and MAX_TRAINING_MINUTES may extend it.
RESUME_MUST_MATCH = ("SEED", "DATA_DIR", "MAX_IMAGES_PER_SPLIT", "MIXED_PRECISION")


def start_run(output_dir, recipe, parameters, resume=None):
    """Return (run_dir, recipe) for a new run, or for the run folder `resume` to continue.

    A new run gets a new folder and a config.json with the recipe, every other parameter (`parameters`, by their
    notebook names), package versions, the git commit and the device. A resumed run keeps the recipe it was
    started with, extended to `recipe.epochs` and `recipe.max_training_minutes` where these are larger; the
    parameters in RESUME_MUST_MATCH must be the ones it was started with (a ValueError names those that differ).

    In a cluster (TF_CONFIG) every worker computes the same steps, but only the chief writes the run folder under
    `output_dir`; each other worker writes into a temporary folder of its own (a resumed run: a copy of the
    chief's, which must be readable there), so no worker touches another's files.
    """
    if not is_chief():
        return worker_run(recipe, parameters, resume)
    if resume:
        return resume_run(resume, recipe, parameters)
    run_dir = new_run_dir(output_dir)
    write_json(
        run_dir / CONFIG_FILE,
        {
            "parameters": recorded_parameters(recipe, parameters),
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(),
            "git_commit": git_commit(Path(__file__).resolve().parent),
            "device": describe_device(),
        },
    )
    return run_dir, recipe


def recorded_parameters(recipe, parameters):
    """config.json's parameters: the recipe's name and fields by their notebook names, then every other one."""
    return {"RECIPE": recipe.name, **{key.upper(): value for key, value in recipe.parameters().items()}, **parameters}


def worker_run(recipe, parameters, resume):
    """`start_run` for a worker that is not the chief: a temporary run folder of its own."""
    task_type, index = cluster_task()
    run_dir = Path(tempfile.mkdtemp(prefix=f"birdseg-{task_type}{index}-"))
    if resume:
        shutil.copytree(resume, run_dir, dirs_exist_ok=True)
        return resume_run(run_dir, recipe, parameters)
    write_json(run_dir / CONFIG_FILE, {"parameters": recorded_parameters(recipe, parameters), "chief": False})
    return run_dir, recipe


def resume_run(resume, recipe, parameters):
    """`start_run` for a run folder to continue."""
    run_dir = Path(resume)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"RESUME={resume!r}: no config.json there; is it a run folder?")
    config = read_json(config_path)
    saved = config["parameters"]
    differ = [f"{key}={saved.get(key)!r} (given: {parameters.get(key)!r})" for key in RESUME_MUST_MATCH
              if saved.get(key) != parameters.get(key)]
    if differ:
        raise ValueError(f"RESUME={resume!r}: this run was started with {', '.join(differ)}; give the same values to "
                         "resume it, or leave RESUME unset to start a new run")
    kept = Recipe.from_parameters(saved["RECIPE"], saved)
    raised = {}
    if recipe.epochs > kept.epochs:
        raised["epochs"] = recipe.epochs
    if kept.max_training_minutes and (recipe.max_training_minutes or 0) > kept.max_training_minutes:
        raised["max_training_minutes"] = recipe.max_training_minutes
    if raised:
        config["parameters"] = {**saved, **{key.upper(): value for key, value in raised.items()}}
        write_json(config_path, config)
    return run_dir, kept.override(**raised)


def record_encoder_weights(run_dir, weights_used):
    """Store what the encoder started from in config.json, once: a resumed run keeps the first record.
    Returns the recorded value."""
    config_path = Path(run_dir) / CONFIG_FILE
    config = read_json(config_path)
    if "encoder_weights" not in config:
        config["encoder_weights"] = weights_used
        write_json(config_path, config)
    return config["encoder_weights"]


def write_history_csv(path, history):
    """history.csv from the whole history, written atomically. Not Keras' CSVLogger, which appends per epoch: a
    resumed run would repeat the epochs after its checkpoint, and a kill could leave half a line."""
    keys = ["epoch"] + sorted(history)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(keys)
    for i in range(len(history["loss"])):
        writer.writerow([i + 1] + [f"{history[k][i]:.6g}" for k in keys[1:]])
    write_text(path, buffer.getvalue())


def read_history_csv(path):
    """{metric: [value per epoch]} from a history.csv."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in rows[0] if key != "epoch"} if rows else {}


def load_history(run_dir):
    """The history of a run (from history.csv), as {metric: [value per epoch]}."""
    path = Path(run_dir) / HISTORY_FILE
    return read_history_csv(path) if path.is_file() else {}
