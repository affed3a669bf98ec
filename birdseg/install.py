"""Install what the notebook needs without fighting what a hosted notebook already has (Colab, Kaggle).

    python -m birdseg.install             # print the plan, then run pip
    python -m birdseg.install --dry-run   # print the plan only

`requirements.txt` pins `tensorflow-cpu` and a Jupyter front end for a fresh machine. Hosted GPU notebooks
come with a GPU build of TensorFlow, Keras and their own Jupyter; installing our pins there would replace the
GPU build with the CPU one, or break the running front end. So:

* No TensorFlow installed: everything in requirements.txt, except that `tensorflow-cpu` becomes
  `tensorflow[and-cuda]` at the same version when an NVIDIA GPU is visible.
* TensorFlow installed (any build) within SUPPORTED, with a Keras within SUPPORTED: what is bound to it (Keras,
  TensorBoard, NumPy, h5py, protobuf, ml-dtypes) and the kernel side of Jupyter (ipykernel, ipywidgets, ...) are
  kept as they are when present; our Jupyter front end is not installed (the host has its own); everything else
  is installed at our pins.
* TensorFlow or Keras outside SUPPORTED: stop with a message that says what is supported. The oldest pair is
  tested for real (tests/test_hosted.py: a fresh virtual environment with it, this installer, the notebook).
"""
import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"
TENSORFLOW_BUILDS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tensorflow-macos",
                     "tf-nightly", "tf-nightly-cpu")
# Built with or pinned by the installed TensorFlow: replacing them breaks it.
BOUND_TO_TENSORFLOW = ("keras", "tensorboard", "numpy", "h5py", "protobuf", "ml-dtypes")
# A hosted notebook runs its own front end: ours is not installed there, and what its kernel uses is kept.
JUPYTER_FRONT_END = ("notebook", "jupyterlab")
JUPYTER_KERNEL_SIDE = ("jupyter-server", "ipykernel", "ipywidgets", "nbformat")
# (oldest, newest) minor versions the notebook is tested with: the newest are requirements.txt's pins, the oldest
# pair is what tests/test_hosted.py installs. docs/hosted.md and the README state the same range.
SUPPORTED = {"tensorflow": ((2, 19), (2, 21)), "keras": ((3, 10), (3, 15))}


class InstallError(RuntimeError):
    """The environment cannot be completed without replacing something it depends on."""


@dataclass
class Plan:
    """What to pip-install, what to keep as installed, and why."""

    install: list = field(default_factory=list)  # requirement strings for pip
    kept: dict = field(default_factory=dict)  # name -> installed version, left as it is
    reason: str = ""

    def describe(self):
        lines = [self.reason]
        lines += [f"  keep    {name}=={version}" for name, version in sorted(self.kept.items())]
        lines += [f"  install {requirement}" for requirement in self.install]
        return "\n".join(lines)


def canonical(name):
    """A distribution name as pip compares them (PEP 503: lower case, runs of -_. as one -)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path=REQUIREMENTS):
    """Pinned requirement lines of a requirements file, comments and blank lines dropped."""
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line]


def requirement_name(requirement):
    """The canonical distribution name of a requirement line ("tensorflow[and-cuda]==2.21.0" -> "tensorflow")."""
    return canonical(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0])


def installed_distributions(paths=None):
    """{canonical name: version} of the installed distributions (of `paths` instead of sys.path when given)."""
    found = metadata.distributions(path=paths) if paths else metadata.distributions()
    return {canonical(dist.metadata["Name"]): dist.version for dist in found if dist.metadata["Name"]}


def version_tuple(version):
    """(major, minor) of a version string."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def supported_range(package):
    """The supported range of `package` ("tensorflow" or "keras") for people: "2.19 to 2.21"."""
    oldest, newest = SUPPORTED[package]
    return f"{'.'.join(map(str, oldest))} to {'.'.join(map(str, newest))}"


def check_supported(package, name, version):
    """InstallError unless `version` of `package` (installed as distribution `name`) is in the supported range."""
    oldest, newest = SUPPORTED[package]
    if not oldest <= version_tuple(version) <= newest:
        raise InstallError(f"{name} {version} is installed; birdseg is tested with TensorFlow "
                           f"{supported_range('tensorflow')} and Keras {supported_range('keras')}. Install a supported "
                           f"{package} first (e.g. `pip install '{package}=={'.'.join(map(str, newest))}.*'`), or use a "
                           "fresh environment with `pip install -r requirements.txt`, then run this again.")


def gpu_visible():
    """Whether an NVIDIA driver is installed (nvidia-smi on PATH)."""
    return shutil.which("nvidia-smi") is not None


def plan_install(requirements, installed, gpu=False):
    """Decide what to install.

    Args:
        requirements: pinned requirement strings (requirements.txt).
        installed: {canonical name: version} of what the environment has.
        gpu: whether an NVIDIA GPU is visible (used only when no TensorFlow is installed).

    Returns:
        Plan: what to pip-install, what to keep and why.
    """
    tensorflow = next(((name, installed[name]) for name in TENSORFLOW_BUILDS if name in installed), None)
    if tensorflow is None:
        install = [re.sub(r"^tensorflow-cpu\b", "tensorflow[and-cuda]", r) if gpu else r for r in requirements]
        reason = ("no TensorFlow installed and an NVIDIA GPU visible: the GPU build at our pinned version"
                  if gpu else "no TensorFlow installed: the pinned CPU stack of requirements.txt")
        return Plan(install=install, reason=reason)
    name, version = tensorflow
    check_supported("tensorflow", name, version)
    if "keras" in installed:
        check_supported("keras", "keras", installed["keras"])
    plan = Plan(reason=f"{name} {version} is installed: keeping it, what is bound to it and the host's Jupyter")
    for requirement in requirements:
        package = requirement_name(requirement)
        if package in TENSORFLOW_BUILDS or package in JUPYTER_FRONT_END:
            continue
        if package in installed and package in (*BOUND_TO_TENSORFLOW, *JUPYTER_KERNEL_SIDE):
            plan.kept[package] = installed[package]
            continue
        plan.install.append(requirement)
    plan.kept.setdefault(name, version)
    return plan


def main(argv=None):
    """Print the plan and run pip (or only print it with --dry-run); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", default=str(REQUIREMENTS))
    parser.add_argument("--dry-run", action="store_true", help="print the plan, install nothing")
    parser.add_argument("--site", nargs="+", help=argparse.SUPPRESS)  # tests: read these folders' metadata
    args = parser.parse_args(argv)
    try:
        plan = plan_install(read_requirements(args.requirements), installed_distributions(args.site), gpu_visible())
    except InstallError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(plan.describe(), flush=True)
    if args.dry_run or not plan.install:
        return 0
    return subprocess.call([sys.executable, "-m", "pip", "install", *plan.install])


if __name__ == "__main__":
    sys.exit(main())
