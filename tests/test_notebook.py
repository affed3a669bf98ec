"""The notebook: its cells (the recipe on the page, the parameters cell), headless runs that reproduce themselves,
your own photos, clear errors, and runs killed with SIGKILL that resume to the same history as uninterrupted ones."""
import ast
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time

import albumentations as A
import keras
import nbformat
import numpy as np
import pytest
from conftest import ROOT, TINY, run_notebook
from PIL import Image
from test_train import CPU_DETERMINISTIC, TIMINGS

import birdseg_utils as bu
from birdseg import augment, speedups
from birdseg.model import compile_model
from birdseg.recipe import PRETRAINED, SCRATCH

NOTEBOOK = nbformat.read(ROOT / "Bird_Segmentation_Model.ipynb", as_version=4)
CODE = [cell for cell in NOTEBOOK.cells if cell.cell_type == "code"]


def cell_with(text):
    """The one code cell whose source holds `text`."""
    (cell,) = [cell for cell in CODE if text in cell.source]
    return cell.source


def parameters():
    """{name: (value as written, comment)} of the parameters cell's assignments."""
    found = {}
    for line in CODE[0].source.splitlines():
        match = re.match(r"^([A-Z_]+) = (.+?)(?:\s+# (.*))?$", line)
        if match:
            found[match[1]] = (ast.literal_eval(match[2]), match[3] or "")
    return found


# ---------------------------------------------------------------- the notebook as committed


def test_notebook_is_committed_clean_with_parameters_cell():
    assert "parameters" in CODE[0].metadata.get("tags", [])
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in CODE)
    names = set(parameters())
    assert {key.upper() for key in SCRATCH.parameters()} <= names
    assert {"DATA_DIR", "OUTPUT_DIR", "ENCODER_WEIGHTS", "INIT_MODEL", "RECIPE", "SEED", "MAX_IMAGES_PER_SPLIT", "TTA",
            "MY_PHOTOS", "RESUME", "KEEP_CHECKPOINT", "EXAMPLES_DIR", "MIXED_PRECISION", "JIT_COMPILE"} <= names
    assert parameters()["EXAMPLES_DIR"][0] is None, "a default run writes nothing outside its run folder"


def test_every_parameter_shows_a_value_or_says_what_it_resolves_to():
    for name, (value, comment) in parameters().items():
        assert value is not None or comment, f"{name} is None without a comment saying what it resolves to"


def test_recipe_parameter_comments_give_both_recipes_values():
    """`NAME = None  # <pretrained> | <scratch> ...`: the comment is what the reader sees before running anything."""
    for key in SCRATCH.parameters():
        value, comment = parameters()[key.upper()]
        assert value is None, key
        shown = re.match(r"^(.+?) \| (.+?)(?: \(.*)?$", comment)
        assert shown, f"{key.upper()}: {comment!r}"
        assert [ast.literal_eval(text) for text in shown.groups()] == [getattr(PRETRAINED, key), getattr(SCRATCH, key)]


def test_first_cell_fetches_the_project_only_where_it_cannot_be_imported():
    first = CODE[0].source
    assert first.index("REPOSITORY = ") < first.index('importlib.util.find_spec("birdseg_utils") is None')
    assert '"-m", "birdseg.install"' in first  # the README's hosted instruction
    repository = re.search(r'REPOSITORY = "(.+)"', first)[1]
    colab = f"https://colab.research.google.com/github/{repository.split('github.com/')[1].removesuffix('.git')}/"
    assert colab in NOTEBOOK.cells[0].source and colab in (ROOT / "README.md").read_text()


def test_the_recipe_is_on_the_page():
    augmentation = cell_with("A.Compose(")
    assert "A.HorizontalFlip(p=recipe.flip_probability)" in augmentation
    assert "A.VerticalFlip(p=recipe.flip_probability)" in augmentation
    model = cell_with("sm.Unet(")
    assert "keras.layers.Normalization(" in model and "model.compile(" in model
    assert "optimizer=" in model and "loss=" in model and "metrics=[" in model
    training = cell_with("model.fit(")
    assert "callbacks = [" in training and "callbacks=run.callbacks" in training
    assert "globals()" not in "".join(cell.source for cell in CODE)


def run_cell(text, **namespace):
    """Execute the code cell holding `text` with `namespace` as its globals; returns them."""
    namespace = {"A": A, "keras": keras, "np": np, "bu": bu, "cv2": __import__("cv2"), **namespace}
    exec(cell_with(text), namespace)  # noqa: S102  (the notebook's own cell)
    return namespace


@pytest.fixture(scope="module")
def augmentation_cell(tiny_dataset):
    """Runs the data cell on `data_dir` (the tiny dataset) with the recipe's `values` (None: the recipe's)."""
    def run(augmentation=None, data_dir=tiny_dataset, **values):
        recipe = SCRATCH.override(image_height=64, image_width=96, augmentation=augmentation, **values)
        return run_cell("A.Compose(", recipe=recipe, data_dir=data_dir, MAX_IMAGES_PER_SPLIT=None, SEED=0,
                        test_pairs=[], plt=__import__("matplotlib.pyplot").pyplot)
    return run


def test_notebook_evaluation_pipeline_is_the_one_prediction_and_scripts_use(augmentation_cell):
    cell = augmentation_cell("flips")
    assert A.to_dict(cell["eval_augmentation"]) == A.to_dict(augment.get_validation_augmentation(64, 96))
    steps = [type(step).__name__ for step in cell["train_augmentation"]]
    assert steps == ["Resize", "PadIfNeeded", "HorizontalFlip", "VerticalFlip"]


def test_photometric_augmentation_keeps_the_mask_on_the_bird(augmentation_cell):
    image = np.full((120, 200, 3), 40, np.uint8)
    mask = np.zeros((120, 200), np.uint8)
    image[40:80, 60:140], mask[40:80, 60:140] = 220, 1
    augmentation = augmentation_cell("photometric")["train_augmentation"]
    assert "ColorJitter" in [type(step).__name__ for step in augmentation]
    for seed in range(20):
        augmentation.set_random_seed(seed)
        sample = augmentation(image=image, mask=mask)
        grey, bird = sample["image"].mean(axis=-1), sample["mask"].astype(bool)
        assert sample["image"].shape == (64, 96, 3) and set(np.unique(sample["mask"])) <= {0, 1}
        assert bird.any() and grey[bird].mean() > grey[~bird].mean() + 60, seed


def test_zoom_augmentation_crops_the_models_size_at_up_to_twice_the_detail(augmentation_cell):
    image = np.zeros((120, 200, 3), np.uint8)
    mask = np.zeros((120, 200), np.uint8)
    image[50:70, 90:110], mask[50:70, 90:110] = 255, 1  # a 20x20 bird in the middle
    augmentation = augmentation_cell("zoom")["train_augmentation"]
    assert [type(step).__name__ for step in augmentation][:2] == ["Resize", "RandomSizedCrop"]
    shares = []
    for seed in range(30):
        augmentation.set_random_seed(seed)
        sample = augmentation(image=image, mask=mask)
        assert sample["image"].shape == (64, 96, 3) and set(np.unique(sample["mask"])) <= {0, 1}
        bird = sample["mask"].astype(bool)
        assert not bird.any() or sample["image"][bird].mean() > 200, seed  # the mask stays on the bird
        shares.append(bird.mean())
    whole = 400 / (120 * 200)  # the bird's share of the frame in a whole-frame resize
    assert min(shares) >= 0 and max(shares) <= 4 * whole * 1.2 and max(shares) > 2 * whole, "scales from 1x to 2x"


def test_fresh_drawings_draw_the_datas_own_style_as_many_as_train_holds(augmentation_cell, tiny_dataset, tmp_path):
    dataset = augmentation_cell(fresh_drawings=True)["train_dataset"]
    assert isinstance(dataset, bu.DrawnDataset) and dataset.style == "sky"
    assert len(dataset) == len(bu.find_pairs(tiny_dataset / "train"))
    image, mask = dataset.get(0, seed=1)
    assert image.shape == (64, 96, 3) and mask.shape == (64, 96, 1)
    photos = tmp_path / "photos"
    shutil.copytree(tiny_dataset, photos, ignore=shutil.ignore_patterns("SYNTHETIC.txt"))
    with pytest.raises(bu.DatasetError, match="photos: not drawn by make-synthetic"):
        augmentation_cell(data_dir=photos, fresh_drawings=True)


def layer_summary(model):
    return [(type(layer).__name__, [tuple(w.shape) for w in layer.weights], getattr(layer, "momentum", None),
             getattr(layer, "rate", None), getattr(layer.call, "__name__", None)) for layer in speedups.nested_layers(model)]


@pytest.mark.parametrize("recipe", [PRETRAINED, SCRATCH], ids=lambda recipe: recipe.name)
def test_notebook_model_cell_builds_and_compiles_what_build_model_does(recipe, tmp_path):
    import segmentation_models as sm

    recipe = recipe.override(image_height=64, image_width=96, epochs=25)  # 100 steps of 4 per epoch
    (tmp_path / "config.json").write_text("{}")
    cell = run_cell("sm.Unet(", sm=sm, recipe=recipe, height=64, width=96, encoder_weights=None, INIT_MODEL=None,
                    train_loader=range(4), MIXED_PRECISION=False, JIT_COMPILE=False, run_dir=tmp_path)
    assert cell["weights_used"] == {"source": "random", "file": None, "sha256": None}
    notebook_model = cell["model"]
    built, _ = bu.build_model(recipe, None)
    compile_model(built, recipe.learning_rate, recipe.loss)
    assert layer_summary(notebook_model) == layer_summary(built)
    assert notebook_model.get_layer("imagenet_normalization").get_config() == \
        built.get_layer("imagenet_normalization").get_config()
    assert type(notebook_model.optimizer) is type(built.optimizer)
    assert notebook_model.get_compile_config()["metrics"] == built.get_compile_config()["metrics"]
    assert notebook_model.loss is built.loss
    schedule = notebook_model.optimizer._learning_rate
    if recipe.lr_schedule == "cosine":  # from a thousandth up to the recipe's rate, then down to a thousandth
        rates = [float(schedule(step)) for step in range(101)]
        assert rates[0] == pytest.approx(recipe.learning_rate * 1e-3)
        assert rates[0] < rates[1] < rates[2] < rates[3] == pytest.approx(recipe.learning_rate)  # 3 % of the steps
        assert rates[3:] == sorted(rates[3:], reverse=True) and rates[100] == pytest.approx(recipe.learning_rate * 1e-3)
    else:
        assert float(notebook_model.optimizer.learning_rate) == pytest.approx(recipe.learning_rate)


# ---------------------------------------------------------------- headless runs


def notebook_text(path):
    """Everything an executed notebook printed."""
    executed = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))


def cell_images(path, text):
    """The PNG figures the executed code cell holding `text` displayed."""
    executed = nbformat.read(path, as_version=4)
    (cell,) = [cell for cell in executed.cells if cell.cell_type == "code" and text in cell.source]
    return [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]


def history_rows(run_dir):
    with open(run_dir / "history.csv", newline="") as handle:
        return [{key: value for key, value in row.items() if key not in TIMINGS} for row in csv.DictReader(handle)]


def test_notebook_run_outputs(notebook_run, run_dir, trained_model):
    out = notebook_run / "out.ipynb"
    text = notebook_text(out)
    assert "images at threshold 0.5, test-time augmentation flips: IoU" in text
    assert "VBox(" not in text and "HBox(" not in text, "headless: text progress and static figures, no widgets"
    assert "recipe 'scratch' (the encoder starts from random initialisation" in text
    assert re.search(r"EPOCHS\s+3\s+given \(recipe: \d+\)", text) and re.search(r"LEARNING_RATE\s+0\.001\n", text)
    assert "encoder weights: random" in text
    assert re.search(r"Training 3 epoch\(s\) of 4 steps at [\d.]+ s per step: about [\d.]+ minutes", text)
    assert "Training ended after epoch 3 of 3: all 3 epochs" in text
    # One prediction figure per epoch, shown in the training cell as it ran, and saved.
    assert len(cell_images(out, "model.fit(")) == TINY["EPOCHS"]
    assert sorted(p.name for p in run_dir.glob("results_epoch_*.png")) == [f"results_epoch_{i}.png" for i in (1, 2, 3)]
    random_init = {"source": "random", "file": None, "sha256": None}
    assert json.loads((run_dir / "config.json").read_text())["encoder_weights"] == random_init
    assert json.loads((run_dir / "metrics.json").read_text())["encoder_weights"] == random_init
    examples = sorted(p.name for p in (notebook_run / "examples").iterdir())  # EXAMPLES_DIR given: copied there
    assert {"history.png", "resultbirds-up.png", "resultbirds-bottom.png", "results_epoch_3.png"} <= set(examples)
    rows = history_rows(run_dir)
    assert len(rows) == TINY["EPOCHS"]
    rates = [float(row["learning_rate"]) for row in rows]
    assert rates == sorted(rates, reverse=True) and rates[-1] < 1e-3 * 0.01  # cosine over the steps, to ~1e-6
    prediction = np.asarray(trained_model.predict_on_batch(np.zeros((1, 64, 96, 3), np.float32)))
    assert prediction.shape == (1, 64, 96, 1) and np.isfinite(prediction).all()


@pytest.mark.slow
@CPU_DETERMINISTIC
def test_same_seed_same_history_and_metrics_and_your_photos_segmented(tmp_path, tiny_dataset, run_dir):
    """The default recipe at the tiny size, run again with the same seed: every metric of every epoch and every
    test score the same. This run also segments a folder of photos given as MY_PHOTOS (one of them unreadable)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    originals = [image_path for image_path, _ in bu.find_pairs(tiny_dataset / "test")]
    for image_path in originals:
        shutil.copy(image_path, photos / image_path.name)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    result = run_notebook(tmp_path, tiny_dataset, {"MY_PHOTOS": str(photos), "EXAMPLES_DIR": None})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    (again,) = (tmp_path / "runs").iterdir()
    assert history_rows(again) == history_rows(run_dir)
    assert json.loads((again / "metrics.json").read_text()) == json.loads((run_dir / "metrics.json").read_text())
    assert not (tmp_path / "examples").exists()

    out = tmp_path / "out.ipynb"
    text = notebook_text(out)
    assert f"{len(originals)} photo(s) or video(s) segmented into {again / 'my_photos'}; 1 unreadable skipped" in text
    assert "broken.jpg: cannot read image" in text
    for image_path in originals:
        mask = np.asarray(Image.open(again / "my_photos" / f"{image_path.stem}_mask.png"))
        assert mask.shape == bu.read_image(image_path).shape[:2] and set(np.unique(mask)) <= {0, 255}
    assert len(cell_images(out, "if MY_PHOTOS:")) == 1  # the gallery of their overlays
    assert len(cell_images(out, "bu.show_viewer(")) == 6  # the viewer on them: two photos at three thresholds


def test_bad_image_size_stops_with_clear_error(tmp_path, tiny_dataset):
    result = run_notebook(tmp_path, tiny_dataset, {"IMAGE_WIDTH": 100})
    assert result.returncode != 0
    assert "IMAGE_WIDTH=100 must be a positive multiple of 32, e.g. 96" in result.stdout + result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_truncated_image_stops_before_training_naming_it(tmp_path, tiny_dataset):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    broken = sorted((data / "val" / "images").iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:300])  # the header is intact: only decoding finds it
    result = run_notebook(tmp_path, data)
    assert result.returncode != 0
    assert f"{broken}: cannot read image" in result.stdout + result.stderr
    assert not list((tmp_path / "runs").glob("*/checkpoint")), "it stopped before training"


# ---------------------------------------------------------------- killed and resumed


def saving_now(runs):
    """A temporary file of a model or checkpoint being written, if there is one right now."""
    return [path for path in runs.glob("*/**/.tmp-*") if path.name.endswith((".keras", ".weights.h5"))]


def saved_epoch(run):
    """The last epoch the run's resumable checkpoint holds."""
    return json.loads((run / "checkpoint" / "state.json").read_text())["epoch"]


def run_until_killed(tmp_path, tiny_dataset, moment_reached, extra=None):
    """Start the tiny notebook run, SIGKILL it (its kernel too) the moment `moment_reached(runs folder)` is true;
    return the run folder it wrote and what `moment_reached` last returned."""
    process = run_notebook(tmp_path, tiny_dataset, extra, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    runs, reached = tmp_path / "runs", None
    deadline = time.time() + 600
    try:
        while time.time() < deadline and process.poll() is None and not reached:
            reached = moment_reached(runs)
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the kernel too: it is in the same session
        process.wait()
    assert reached, f"the run ended before the moment {moment_reached.__doc__}"
    (run,) = runs.iterdir()
    return run, reached


@pytest.mark.slow
@CPU_DETERMINISTIC
def test_run_killed_twice_resumes_to_the_uninterrupted_history(tmp_path, tiny_dataset, run_dir):
    """Killed with SIGKILL in the middle of saving a model, resumed, that run killed at a random moment of the
    epoch after the one it completed, resumed again: every metric of every epoch and every test score equal the
    uninterrupted run's."""
    def saving_after_a_checkpoint(runs):
        """in the middle of saving a model, after the first checkpoint (so there is one to resume from)"""
        saving = saving_now(runs)
        return saving[0] if saving and list(runs.glob("*/checkpoint/state.json")) else None

    killed, temporary = run_until_killed(tmp_path, tiny_dataset, saving_after_a_checkpoint)
    assert temporary.exists(), "the kill came after the save finished: not the moment named"
    first_kill = saved_epoch(killed)

    delay = random.uniform(0.0, 1.5)  # after the resumed run's next checkpoint; new every run, printed on failure

    def random_moment_of_the_next_epoch(runs):
        """a random moment of the epoch after the resumed run's first"""
        if saved_epoch(killed) > first_kill:
            time.sleep(delay)
            return True
        return False

    run_until_killed(tmp_path, tiny_dataset, random_moment_of_the_next_epoch, {"RESUME": str(killed)})
    second_kill = saved_epoch(killed)
    assert first_kill < second_kill == first_kill + 1 < TINY["EPOCHS"], \
        f"killed after epochs {first_kill} and {second_kill} (delay {delay:.3f} s)"
    assert not (killed / "metrics.json").exists()

    result = run_notebook(tmp_path, tiny_dataset, {"RESUME": str(killed)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming {killed} after epoch {second_kill} of 3" in notebook_text(tmp_path / "out.ipynb")
    assert len(list((tmp_path / "runs").iterdir())) == 1, "resuming writes into the same run folder"
    assert not list(killed.rglob(".tmp-*")), "stale temporaries are cleaned"
    assert history_rows(killed) == history_rows(run_dir)  # every metric of every epoch
    assert json.loads((killed / "metrics.json").read_text()) == json.loads((run_dir / "metrics.json").read_text())
