"""Shared fixtures: small synthetic datasets, the real DAVIS frames, and one tiny notebook run (made once per test
session, also when pytest-xdist runs the suite in several worker processes)."""
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DAVIS = ROOT.parent / "shared" / "data" / "davis-birds"
sys.path.insert(0, str(ROOT))

from harness import papermill_command  # noqa: E402

import birdseg  # noqa: E402,F401  (environment for segmentation_models/albumentations)
from birdseg import synthetic  # noqa: E402
from birdseg.recipe import PRETRAINED  # noqa: E402

# Tiny notebook parameters: 64x96, 3 epochs, a handful of images, random init.
TINY = {"IMAGE_HEIGHT": 64, "IMAGE_WIDTH": 96, "EPOCHS": 3, "BATCH_SIZE": 2, "ENCODER_WEIGHTS": None, "SEED": 7}
TINY_COUNTS = {"train": 8, "val": 2, "test": 3}
ODD_RESOLUTIONS = ((97, 61), (130, 90), (75, 113))  # odd sizes and aspect ratios: resizing must cope


def cli(*args):
    """`python -m birdseg_utils ARGS...` in this process; returns its exit code."""
    from birdseg.cli import main

    return main([str(a) for a in args])


def recipe_at(height, width, **fields):
    """The pretrained recipe's network (the encoder's own BatchNorm momentum and stochastic depth) at another size."""
    return PRETRAINED.override(image_height=height, image_width=width, **fields)


def write_pair(folder, stem, image, mask, image_ext=".jpg", mask_ext=".png"):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "mask").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / "images" / f"{stem}{image_ext}")
    Image.fromarray(mask).save(folder / "mask" / f"{stem}{mask_ext}")


def sky_with_bird(height=48, width=80, seed=0):
    """A blue-gradient sky with one dark elliptical 'bird'; returns (image uint8, mask uint8 {0,255})."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height)[:, None, None]
    image = (np.array([60, 110, 200]) * (1 - rows) + np.array([180, 210, 240]) * rows) * np.ones((1, width, 1))
    yy, xx = np.mgrid[:height, :width]
    cy, cx = rng.integers(height // 4, 3 * height // 4), rng.integers(width // 4, 3 * width // 4)
    bird = ((yy - cy) / 4) ** 2 + ((xx - cx) / 9) ** 2 <= 1
    image[bird] = 30
    return image.astype(np.uint8), (bird * 255).astype(np.uint8)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per usable CPU (xdist's own count takes physical cores, 1 on many 2-vCPU machines).
    The suite is CPU-bound (29 CPU-minutes in 17.7 minutes on two workers), so more workers only contend."""
    return len(os.sched_getaffinity(0))


TRAINED_FIXTURES = {"notebook_run", "run_dir", "trained_model"}  # they wait for a notebook run


def pytest_addoption(parser):
    parser.addoption("--unit-only", action="store_true",
                     help="only the unit tests: none that is slow or needs the notebook's trained model (the "
                          "mutation run, tests/mutation.py)")


def pytest_collection_modifyitems(config, items):
    """The slow tests first, so that the workers sharing the suite finish together instead of one of them starting
    a five-minute test at the end; among them first those that do not wait for the shared notebook run, so that no
    worker sits idle while another makes it. A stable sort: the order is the same in every worker, as xdist needs.
    With --unit-only, the slow tests and those that need the trained model are left out."""
    if config.getoption("--unit-only"):
        # mutmut forks each mutant's tests from this process: a progress bar in a forked child would wait forever for
        # tqdm's monitor thread and its multiprocessing lock; a thread lock and no monitor are all one process needs
        import threading

        import tqdm

        tqdm.tqdm.monitor_interval = 0
        tqdm.tqdm.set_lock(threading.RLock())
        kept = [item for item in items
                if item.get_closest_marker("slow") is None and not TRAINED_FIXTURES & set(item.fixturenames)]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, "notebook_run" in item.fixturenames))


def made_once(tmp_path_factory, name, make):
    """The folder `name` that `make(folder)` fills, made once per test session: worker processes share the one made
    by whichever needs it first (the others wait for it) in the session's common temporary folder."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        folder = tmp_path_factory.mktemp(name, numbered=False)
        make(folder)
        return folder
    common = tmp_path_factory.getbasetemp().parent  # the session's folder that holds each worker's own
    folder, done = common / name, common / f"{name}.done"
    with open(common / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # half-made by a worker whose `make` failed
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A small synthetic dataset in the birds_splitted layout, at odd source resolutions."""
    data = made_once(tmp_path_factory, "data", lambda folder: synthetic.write_dataset(
        folder / "birds_tiny", TINY_COUNTS, seed=11, resolutions=ODD_RESOLUTIONS))
    return data / "birds_tiny"


@pytest.fixture(scope="session")
def davis():
    if not (DAVIS / "images").is_dir():
        pytest.skip(f"real DAVIS frames not found at {DAVIS}")
    return DAVIS


def run_notebook(output_dir, data_dir, extra=None, timeout=900, python=sys.executable, executed="out.ipynb",
                 environment=None, **popen):
    """Run the notebook headless with the tiny parameters (with `python`'s papermill and kernel), writing the
    executed notebook to `output_dir / executed`; returns the Popen (or the finished process)."""
    parameters = {**TINY, "DATA_DIR": str(data_dir), "OUTPUT_DIR": str(output_dir / "runs"),
                  "EXAMPLES_DIR": str(output_dir / "examples"), **(extra or {})}
    command = papermill_command(ROOT / "Bird_Segmentation_Model.ipynb", output_dir / executed, parameters, ROOT, python)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(environment or {})}
    if popen:
        return subprocess.Popen(command, env=env, **popen)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def notebook_run(tmp_path_factory, tiny_dataset):
    """One headless run of the notebook with tiny parameters; returns its output folder."""
    def run(out):
        result = run_notebook(out, tiny_dataset)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    return made_once(tmp_path_factory, "notebook", run)


@pytest.fixture(scope="session")
def run_dir(notebook_run):
    runs = sorted((notebook_run / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="session")
def trained_model(run_dir):
    from birdseg.model import load_model

    return load_model(run_dir)
