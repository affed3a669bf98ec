"""A hosted notebook (Colab, Kaggle), simulated for real: a fresh virtual environment with what such a runtime ships,
the oldest supported TensorFlow and Keras (the GPU build package, which runs on a CPU) and the kernel side of
Jupyter; the notebook opened there alone, without this project beside it. Its first cell must clone the project
(here from a local snapshot of this working tree: there is no network), run the README's installer for real,
keep the runtime's TensorFlow and Keras, and the notebook must then run through with its default paths, leaving
the clone as clean as git found it. The run uses the pretrained recipe (the one a hosted GPU with ImageNet weights
takes) with EPOCHS 3, which it must train exactly."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, TINY

from birdseg import install

HOSTED = [f"{package}=={'.'.join(map(str, oldest))}.*" for package, (oldest, _) in install.SUPPORTED.items()]
HOSTED += ["ipykernel", "ipywidgets"]


def versions(python):
    """{distribution: version} of everything installed for `python`."""
    listing = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                             check=True).stdout
    return {install.canonical(entry["name"]): entry["version"] for entry in json.loads(listing)}


def snapshot_repository(target):
    """A git repository holding this working tree as it is (committed or not), as a clone would see it."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=test", "-c", "user.email=test@localhost",
                                                     "commit", "-q", "-m", "snapshot"]):
        subprocess.run(["git", *command], cwd=target, check=True)
    return target


@pytest.mark.slow
def test_notebook_opened_alone_on_the_oldest_supported_hosted_stack(tmp_path):
    venv = tmp_path / "hosted"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # No byte-compiling of what pip installs (here and by the installer the notebook runs): minutes of a 2-core CPU
    # for the thousands of modules of TensorFlow that the run never imports; Python compiles what it imports.
    no_compile = {"PIP_NO_COMPILE": "1"}
    subprocess.run([str(python), "-m", "pip", "install", "-q", *HOSTED], check=True, capture_output=True,
                   env={**os.environ, **no_compile})
    before = versions(python)
    for package, (oldest, _) in install.SUPPORTED.items():
        assert install.version_tuple(before[package]) == oldest, before[package]
    jupyter = tmp_path / "jupyter"
    subprocess.run([str(python), "-m", "ipykernel", "install", "--prefix", str(jupyter), "--name", "hosted"],
                   check=True, capture_output=True)

    source = snapshot_repository(tmp_path / "source")
    colab = tmp_path / "content"  # what Colab's working folder holds: the notebook, opened alone
    colab.mkdir()
    notebook = (ROOT / "Bird_Segmentation_Model.ipynb").read_text()
    url = next(line for line in notebook.splitlines() if '"REPOSITORY = ' in line).split('\\"')[1]
    (colab / "notebook.ipynb").write_text(notebook.replace(url, str(source), 1))
    parameters = {key: TINY[key] for key in ("IMAGE_HEIGHT", "IMAGE_WIDTH", "BATCH_SIZE", "ENCODER_WEIGHTS")}
    command = [sys.executable, "-m", "papermill", str(colab / "notebook.ipynb"), str(colab / "out.ipynb"),
               "-k", "hosted", "--cwd", str(colab)]
    for name, value in {**parameters, "RECIPE": "pretrained", "EPOCHS": 3, "MAX_IMAGES_PER_SPLIT": 4}.items():
        command += ["-p", name, "None" if value is None else str(value)]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(JUPYTER_PATH=str(jupyter / "share" / "jupyter"), **no_compile)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    after = versions(python)
    for package in install.BOUND_TO_TENSORFLOW + ("tensorflow", "ipykernel", "ipywidgets"):
        assert after.get(package) == before.get(package), f"{package} was changed by the installer"
    assert "segmentation-models" in after and "notebook" not in after  # ours added; the host's front end is its own
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout

    clone = colab / "birdseg"
    (run_dir,) = (clone / "runs").iterdir()  # the default OUTPUT_DIR, inside the clone
    recorded = json.loads((run_dir / "config.json").read_text())["versions"]
    assert (recorded["tensorflow"], recorded["keras"]) == (before["tensorflow"], before["keras"])
    assert json.loads((run_dir / "metrics.json").read_text())["images"] == 4
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3, "-p EPOCHS 3 under the pretrained recipe: exactly 3 epochs"
    status = subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=clone, capture_output=True,
                            text=True, check=True).stdout
    assert status == "", f"a default run left the clone changed:\n{status}"
