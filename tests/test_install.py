"""The install helper for hosted notebooks: keep a preinstalled TensorFlow and Jupyter, add the rest."""
import subprocess
import sys

import pytest
from conftest import ROOT

from birdseg import install

REQUIREMENTS = install.read_requirements()


def test_fresh_machine_gets_requirements_as_pinned():
    plan = install.plan_install(REQUIREMENTS, {"pip": "25.0"})
    assert plan.install == REQUIREMENTS and not plan.kept
    assert any(line.startswith("tensorflow-cpu==") for line in plan.install)


def test_fresh_gpu_machine_gets_the_gpu_build_at_the_same_version():
    plan = install.plan_install(REQUIREMENTS, {}, gpu=True)
    pinned = next(line for line in REQUIREMENTS if line.startswith("tensorflow-cpu=="))
    assert pinned.replace("tensorflow-cpu", "tensorflow[and-cuda]") in plan.install
    assert not any(line.startswith("tensorflow-cpu") for line in plan.install)


def test_hosted_gpu_notebook_keeps_tensorflow_keras_and_jupyter():
    colab = {"tensorflow": "2.19.0", "keras": "3.10.0", "numpy": "2.0.2", "notebook": "6.5.7", "ipykernel": "6.17.1",
             "albumentations": "1.4.20", "tensorboard": "2.19.0"}
    plan = install.plan_install(REQUIREMENTS, colab, gpu=True)
    names = {install.requirement_name(line) for line in plan.install}
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "numpy", "notebook", "ipykernel", "tensorboard"}
    assert "jupyterlab" not in names and "notebook" not in plan.kept  # the host's front end is its own
    assert plan.kept["tensorflow"] == "2.19.0" and plan.kept["keras"] == "3.10.0"
    # ours where the API matters, even if another version is there (albumentations 2.x uses fill=)
    assert {"segmentation-models", "albumentations", "papermill"} <= names
    # bound to TensorFlow but missing: installed at our pin
    assert "h5py" in names


@pytest.mark.parametrize("installed,refused", [
    ({"tensorflow": "2.18.1", "keras": "3.10.0"}, "tensorflow 2.18.1"),  # older than the oldest tested
    ({"tensorflow": "2.22.0", "keras": "3.15.1"}, "tensorflow 2.22.0"),  # newer than the newest tested
    ({"tensorflow-cpu": "2.15.1"}, "tensorflow-cpu 2.15.1"),  # Keras 2
    ({"tensorflow": "2.19.1", "keras": "3.9.2"}, "keras 3.9.2"),
])
def test_tensorflow_or_keras_outside_the_supported_range_is_refused_with_a_way_out(installed, refused):
    with pytest.raises(install.InstallError, match=rf"{refused} is installed; birdseg is tested with TensorFlow "
                       r"2\.19 to 2\.21 and Keras 3\.10 to 3\.15\. Install a supported"):
        install.plan_install(REQUIREMENTS, installed)


def test_the_supported_range_ends_at_our_pins_and_the_readme_states_it():
    pins = dict(line.split("==") for line in REQUIREMENTS if "==" in line)
    assert install.SUPPORTED["tensorflow"][1] == install.version_tuple(pins["tensorflow-cpu"])
    assert install.SUPPORTED["keras"][1] == install.version_tuple(pins["keras"])
    readme = (ROOT / "README.md").read_text()
    assert (f"TensorFlow {install.supported_range('tensorflow')} with Keras {install.supported_range('keras')}"
            in " ".join(readme.split()))


def test_dry_run_reads_a_simulated_environment(tmp_path):
    """A site folder with TensorFlow's and Keras' metadata only, read the way pip's environment is read."""
    for name, version in (("tensorflow", "2.19.0"), ("keras", "3.10.0")):
        info = tmp_path / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    result = subprocess.run([sys.executable, "-m", "birdseg.install", "--dry-run", "--site", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    assert "tensorflow 2.19.0 is installed" in result.stdout
    assert "keep    keras==3.10.0" in result.stdout and "keep    tensorflow==2.19.0" in result.stdout
    assert "install segmentation-models==" in result.stdout and "install tensorflow-cpu" not in result.stdout
