"""A hosted notebook's stack, simulated for real: a fresh virtual environment with the oldest supported TensorFlow
and Keras (the GPU build package, which runs on a CPU) and the kernel side of Jupyter, as Colab and Kaggle ship
them; then the README's hosted instructions exactly (`python -m birdseg.install`, no dry run); then the notebook,
headless, at the tiny size, in that environment."""
import json
import subprocess
import sys

import pytest
from conftest import ROOT, run_notebook

from birdseg import install

HOSTED = [f"{package}=={'.'.join(map(str, oldest))}.*" for package, (oldest, _) in install.SUPPORTED.items()]
HOSTED += ["ipykernel", "ipywidgets"]


def versions(python):
    """{distribution: version} of everything installed for `python`."""
    listing = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                             check=True).stdout
    return {install.canonical(entry["name"]): entry["version"] for entry in json.loads(listing)}


@pytest.mark.slow
def test_notebook_runs_on_the_oldest_supported_hosted_stack(tmp_path, tiny_dataset):
    venv = tmp_path / "hosted"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", *HOSTED], check=True, capture_output=True)
    before = versions(python)
    for package, (oldest, _) in install.SUPPORTED.items():
        assert install.version_tuple(before[package]) == oldest, before[package]

    installer = subprocess.run([str(python), "-m", "birdseg.install"], cwd=ROOT, capture_output=True, text=True)
    assert installer.returncode == 0, installer.stdout[-2000:] + installer.stderr[-3000:]
    assert f"tensorflow {before['tensorflow']} is installed: keeping it" in installer.stdout
    after = versions(python)
    for package in install.BOUND_TO_TENSORFLOW + ("tensorflow", "ipykernel", "ipywidgets"):
        assert after.get(package) == before.get(package), f"{package} was changed by the installer"
    assert "segmentation-models" in after and "notebook" not in after  # ours added; the host's front end is its own
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout

    result = run_notebook(tmp_path, tiny_dataset, {"EPOCHS": 2}, python=python)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    recorded = json.loads((run_dir / "config.json").read_text())["versions"]
    assert (recorded["tensorflow"], recorded["keras"]) == (before["tensorflow"], before["keras"])
    assert json.loads((run_dir / "metrics.json").read_text())["images"] == 3
