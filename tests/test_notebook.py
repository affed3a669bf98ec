"""End-to-end: the notebook runs headless; a run killed with SIGKILL resumes and matches an uninterrupted one."""
import json
import os
import random
import signal
import subprocess
import time

import nbformat
import numpy as np
import pytest
from conftest import ROOT, TINY, run_notebook
from test_train import CPU_DETERMINISTIC


def test_notebook_is_committed_clean_with_parameters_cell():
    notebook = nbformat.read(ROOT / "Bird_Segmentation_Model.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    for name in ("DATA_DIR", "OUTPUT_DIR", "BATCH_SIZE", "EPOCHS", "IMAGE_HEIGHT", "IMAGE_WIDTH", "LEARNING_RATE",
                 "SEED", "ENCODER_WEIGHTS", "MAX_IMAGES_PER_SPLIT", "EXAMPLES_DIR", "RESUME", "RECIPE",
                 "BN_MOMENTUM", "MAX_TRAINING_MINUTES", "INIT_MODEL", "DROP_CONNECT_RATE", "TTA", "LOSS", "COPY_PASTE",
                 "DECODER_WIDTH"):
        assert f"\n{name} = " in "\n" + code[0].source, name
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in code)


def notebook_text(path):
    """Everything an executed notebook printed."""
    executed = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_notebook_run_outputs(notebook_run, run_dir, trained_model):
    executed = nbformat.read(notebook_run / "out.ipynb", as_version=4)
    text = notebook_text(notebook_run / "out.ipynb")
    assert "images at threshold 0.5, test-time augmentation flips: IoU" in text
    images = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 6, "figures are shown inline"
    assert "VBox(" not in text, "headless: the viewer falls back to static figures, not widgets"
    assert "recipe 'scratch' (the encoder starts from random initialisation" in text
    assert "given explicitly: BATCH_SIZE, EPOCHS, IMAGE_HEIGHT, IMAGE_WIDTH" in text
    assert "encoder weights: random" in text
    random_init = {"source": "random", "file": None, "sha256": None}
    assert json.loads((run_dir / "config.json").read_text())["encoder_weights"] == random_init
    assert json.loads((run_dir / "metrics.json").read_text())["encoder_weights"] == random_init
    examples = sorted(p.name for p in (notebook_run / "examples").iterdir())
    assert {"history.png", "resultbirds-up.png", "resultbirds-bottom.png", "results_epoch_3.png"} <= set(examples)
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 1 + TINY["EPOCHS"]
    prediction = np.asarray(trained_model.predict_on_batch(np.zeros((1, 64, 96, 3), np.float32)))
    assert prediction.shape == (1, 64, 96, 1) and np.isfinite(prediction).all()


def test_bad_image_size_stops_with_clear_error(tmp_path, tiny_dataset):
    result = run_notebook(tmp_path, tiny_dataset, {"IMAGE_WIDTH": 100})
    assert result.returncode != 0
    assert "IMAGE_WIDTH=100 must be a positive multiple of 32, e.g. 96" in result.stdout + result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_truncated_image_stops_before_training_naming_it(tmp_path, tiny_dataset):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    broken = sorted((data / "val" / "images").iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:300])  # the header is intact: only decoding finds it
    result = run_notebook(tmp_path, data)
    assert result.returncode != 0
    assert f"{broken}: cannot read image" in result.stdout + result.stderr
    assert not list((tmp_path / "runs").glob("*/checkpoint")), "it stopped before training"


def test_init_model_starts_from_a_trained_run(tmp_path, tiny_dataset, run_dir):
    result = run_notebook(tmp_path, tiny_dataset, {"INIT_MODEL": str(run_dir), "EPOCHS": 1,
                                                  "ENCODER_WEIGHTS": "imagenet"})  # not used, so never fetched
    assert result.returncode == 0, result.stderr[-3000:]
    text = notebook_text(tmp_path / "out.ipynb")
    assert f"the model starts from {run_dir} (INIT_MODEL)" in text
    assert f"encoder weights: birdseg model {run_dir / 'model.keras'}" in text
    assert "RANDOM INITIALISATION" not in result.stdout + result.stderr + text
    (new_run,) = (tmp_path / "runs").iterdir()
    started = json.loads((new_run / "config.json").read_text())["encoder_weights"]
    assert started["source"] == "birdseg model" and started["file"] == str(run_dir / "model.keras")


def saving_now(runs):
    """A temporary file of a model or checkpoint being written, if there is one right now."""
    return [path for path in runs.glob("*/**/.tmp-*") if path.name.endswith((".keras", ".weights.h5"))]


@CPU_DETERMINISTIC
@pytest.mark.parametrize("moment", ["after the first checkpoint", "in the middle of saving a model",
                                    "at a random moment of the second epoch"])
def test_killed_run_resumes_and_matches_uninterrupted(tmp_path, tiny_dataset, run_dir, moment):
    process = run_notebook(tmp_path, tiny_dataset, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = tmp_path / "runs"
    killed_dir = None
    deadline = time.time() + 600
    try:
        while time.time() < deadline and process.poll() is None:
            if moment.startswith(("after", "at a random")):
                states = list(runs.glob("*/checkpoint/state.json"))
                if states:
                    killed_dir = states[0].parent.parent
                    if moment.startswith("at a random"):  # within the next epoch, which takes longer to save
                        time.sleep(random.Random(0).uniform(0.0, 1.0))
                    break
            else:
                saving = saving_now(runs)
                # not the first save, so that a checkpoint exists to resume from
                if saving and list(runs.glob("*/checkpoint/state.json")):
                    killed_dir = saving[0].relative_to(runs).parts[0]
                    killed_dir = runs / killed_dir
                    break
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the kernel too: it is in the same session
        process.wait()
    assert killed_dir is not None, f"never saw the moment: {moment}"
    state = killed_dir / "checkpoint" / "state.json"
    killed_at = json.loads(state.read_text())["epoch"]
    assert killed_at < TINY["EPOCHS"], "the run finished before it could be killed"
    assert not (killed_dir / "metrics.json").exists()

    result = run_notebook(tmp_path, tiny_dataset, {"RESUME": str(killed_dir)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(runs.iterdir())) == 1, "resuming writes into the same run folder"
    assert len((killed_dir / "history.csv").read_text().splitlines()) == 1 + TINY["EPOCHS"]
    assert not list(killed_dir.rglob(".tmp-*")), "stale temporaries are cleaned"
    resumed = json.loads((killed_dir / "metrics.json").read_text())
    uninterrupted = json.loads((run_dir / "metrics.json").read_text())
    for key in ("iou", "f1", "precision", "recall"):
        assert resumed[key] == pytest.approx(uninterrupted[key], abs=1e-3), key
    if moment != "after the first checkpoint":
        return
    # A finished run resumed again says so and trains no more.
    again = run_notebook(tmp_path, tiny_dataset, {"RESUME": str(killed_dir)})
    assert again.returncode == 0, again.stderr[-3000:]
    assert "this run already finished (all epochs" in notebook_text(tmp_path / "out.ipynb")
