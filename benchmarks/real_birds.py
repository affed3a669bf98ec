"""Accuracy on real birds: leave-one-clip-out on the DAVIS 2016 bird clips, within a CPU time budget.

    python benchmarks/real_birds.py --budget-minutes 30

For each clip, train on the other clips (the last frames of each held back for validation) and test on
the held-out clip, at each photo's own resolution. Training is the notebook itself, run headless on a dataset
folder of the fold (links to the frames, in a temporary folder): the recipe it picks ("scratch" for a random
encoder; any notebook parameter can be given, e.g. `--set IMAGE_HEIGHT=256 --set BATCH_SIZE=2`). The budget
covers the training of all folds, split evenly (the notebook's MAX_TRAINING_MINUTES per fold). Two baselines
show what the model adds: all background, and Otsu's threshold on brightness (polarity chosen on validation).
Each fold's result is written to the JSON file as soon as it exists, so an interrupted run keeps them.

    python benchmarks/real_birds.py --score-model runs/<run> --out benchmarks/real_birds_default_model.json

scores a model trained elsewhere (e.g. the documented default run's, which saw drawn birds only) on every clip,
with no training and nothing chosen on the real frames: the model's own threshold, Otsu's polarity chosen on the
other clips.
Data: ../shared/data/davis-birds (never copied).
"""
import argparse
import ast
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # harness.py
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "davis-birds"
VAL_FRACTION = 0.15  # last frames of each training clip


def real_pairs(data_dir):
    """(image, mask) paths of every frame in a folder of images/ and masks/ (<clip>_<frame> stems), in order."""
    from birdseg.dataset_tools import samples_from_folders

    data_dir = Path(data_dir)
    samples = samples_from_folders(data_dir / "images", data_dir / "masks", r"^(.+)_\d+$")
    return [(data_dir / "images" / s.image_name, Path(s.mask_source)) for s in sorted(samples, key=lambda s: s.stem)]


def notebook_command(out_notebook, parameters):
    """papermill running the notebook headless from the repository root with `parameters`."""
    from harness import papermill_command

    return papermill_command(ROOT / "Bird_Segmentation_Model.ipynb", out_notebook, parameters, ROOT)


def clips_of(pairs):
    clips = {}
    for image_path, mask_path in pairs:
        clips.setdefault(image_path.stem.rsplit("_", 1)[0], []).append((image_path, mask_path))
    return clips


def split_fold(clips, held_out):
    train, val = [], []
    for clip, pairs in clips.items():
        if clip == held_out:
            continue
        cut = int(len(pairs) * (1 - VAL_FRACTION))
        train += pairs[:cut]
        val += pairs[cut:]
    return train, val, clips[held_out]


def otsu_baseline(val, test):
    """Otsu threshold on grayscale; the polarity (bird darker or brighter) that scores best on validation."""
    import cv2

    from birdseg.images import read_pair
    from birdseg.metrics import confusion_counts, scores_from_counts

    def score(pairs, polarity):
        totals = [0, 0, 0]
        for image_path, mask_path in pairs:
            image, truth = read_pair(image_path, mask_path)
            gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            _, bright = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            pred = bright if polarity == "bright" else 1 - bright
            totals = [a + b for a, b in zip(totals, confusion_counts(truth, pred)[:3])]
        return scores_from_counts(*totals)

    polarity = max(("bright", "dark"), key=lambda p: score(val, p)["iou"])
    return {**score(test, polarity), "polarity": polarity}


def background_baseline(test):
    from birdseg.images import read_mask
    from birdseg.metrics import scores_from_counts

    return scores_from_counts(0, 0, sum(int(read_mask(mask_path).sum()) for _, mask_path in test))


def fold_dataset(folder, train_pairs, val_pairs, test_pairs):
    """A dataset folder in the notebook's layout whose files link to the frames (never copied)."""
    for split, pairs in (("train", train_pairs), ("val", val_pairs), ("test", test_pairs)):
        for sub in ("images", "mask"):
            (folder / split / sub).mkdir(parents=True)
        for image_path, mask_path in pairs:
            (folder / split / "images" / image_path.name).symlink_to(image_path.resolve())
            (folder / split / "mask" / f"{image_path.stem}{mask_path.suffix}").symlink_to(mask_path.resolve())
    return folder


def run_fold(train_pairs, val_pairs, test_pairs, settings, args, minutes, run_root):
    """Train one fold with the notebook; returns (test metrics, threshold, training seconds, weights used)."""
    import subprocess
    import tempfile

    from birdseg import evaluate, metrics, runs
    from birdseg.layout import CONFIG_FILE
    from birdseg.model import load_model

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = fold_dataset(Path(tmp) / "fold", train_pairs, val_pairs, test_pairs)
        parameters = {"DATA_DIR": str(data_dir), "OUTPUT_DIR": str(run_root), "SEED": args.seed, "EXAMPLES_DIR": None,
                      "ENCODER_WEIGHTS": args.encoder_weights, "INIT_MODEL": args.init_model,
                      "MAX_TRAINING_MINUTES": minutes, **settings}
        run_root.mkdir(parents=True, exist_ok=True)
        before = set(run_root.iterdir())
        subprocess.run(notebook_command(run_root / "out.ipynb", parameters), check=True)
        (run_dir,) = [path for path in run_root.iterdir() if path not in before and path.is_dir()]
        seconds = sum(runs.load_history(run_dir)["epoch_seconds"])
        model = load_model(run_dir)
        val_metrics = evaluate.evaluate_pairs(model, val_pairs, progress=False)
        threshold = metrics.best_threshold(val_metrics)[0]  # chosen on validation, never on test
        test_metrics = evaluate.evaluate_pairs(model, test_pairs, threshold=threshold, progress=False)
        weights_used = runs.read_json(run_dir / CONFIG_FILE)["encoder_weights"]
    return test_metrics, threshold, seconds, weights_used


def score_model(model_path, clips, out):
    """Every clip scored by one trained model; returns the result written to `out`."""
    import numpy as np

    from birdseg import evaluate, runs
    from birdseg.files import write_json
    from birdseg.layout import CONFIG_FILE
    from birdseg.model import load_model

    model = load_model(model_path)
    config = Path(model_path) / CONFIG_FILE
    result = {"protocol": "a trained model scored on each DAVIS 2016 bird clip at original resolution, its own "
                          "threshold; Otsu's polarity chosen on the other clips",
              "command": "python benchmarks/real_birds.py " + " ".join(sys.argv[1:]),
              "model": str(model_path), "config": runs.read_json(config) if config.is_file() else None, "clips": []}
    for clip, pairs in sorted(clips.items()):
        others = [pair for name, other in clips.items() if name != clip for pair in other]
        metrics = evaluate.evaluate_pairs(model, pairs, progress=False)
        result["clips"].append({"clip": clip, "frames": len(pairs), "threshold": metrics["threshold"],
                                **{k: metrics[k] for k in ("iou", "f1", "precision", "recall")},
                                "otsu": otsu_baseline(others, pairs), "background": background_baseline(pairs)})
        print(f"{clip}: IoU {metrics['iou']:.3f} precision {metrics['precision']:.3f} recall {metrics['recall']:.3f} "
              f"(Otsu {result['clips'][-1]['otsu']['iou']:.3f})", flush=True)
    result.update(mean_iou=float(np.mean([c["iou"] for c in result["clips"]])),
                  mean_otsu_iou=float(np.mean([c["otsu"]["iou"] for c in result["clips"]])))
    write_json(out, result)
    print(f"mean IoU {result['mean_iou']:.3f} (Otsu {result['mean_otsu_iou']:.3f})")
    return result


def parse_settings(pairs):
    """--set NAME=VALUE pairs, values as Python literals (None, 0.9, 256, 'cosine')."""
    settings = {}
    for pair in pairs or []:
        name, _, value = pair.partition("=")
        try:
            settings[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            settings[name] = value
    return settings


def table(result):
    lines = ["| held-out clip | IoU | F1 | precision | recall | Otsu IoU | background IoU | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for f in result["folds"]:
        lines.append(f"| {f['clip']} | {f['iou']:.3f} | {f['f1']:.3f} | {f['precision']:.3f} | {f['recall']:.3f} | "
                     f"{f['otsu']['iou']:.3f} | {f['background']['iou']:.3f} | {f['train_seconds']:.0f} |")
    if "mean_iou" in result:
        lines.append(f"| **mean** | **{result['mean_iou']:.3f}** | {result['mean_f1']:.3f} | | | "
                     f"{result['mean_otsu_iou']:.3f} | 0.000 | |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=30, help="training time for all folds together")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", help="a notebook parameter, e.g. EPOCHS=20")
    parser.add_argument("--clips", nargs="+", help="held-out clips to run (default: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--encoder-weights", default=None, help="None (random init), imagenet, or a local .h5")
    parser.add_argument("--init-model", default=None,
                        help="start every fold from this trained model (.keras or run folder), e.g. one trained on "
                             "the synthetic birds by the notebook")
    parser.add_argument("--score-model", help="no training: score this trained model (run folder or .keras) on "
                                              "every clip")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "real_birds.json"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "real_birds"), help="folder for the fold runs")
    args = parser.parse_args()

    import numpy as np

    from birdseg.files import write_json

    settings = parse_settings(args.set)
    clips = clips_of(real_pairs(args.data))
    if args.score_model:
        score_model(args.score_model, clips, args.out)
        return 0
    minutes = args.budget_minutes / len(clips)
    result = {
        "protocol": "leave-one-clip-out on DAVIS 2016 bird clips; val = last 15% of frames of each training clip; "
                    "metrics at original resolution, threshold chosen on val",
        "command": "python benchmarks/real_birds.py " + " ".join(sys.argv[1:]),
        "budget_minutes": args.budget_minutes,
        "init_model": args.init_model,
        "notebook_parameters": {**settings, "MAX_TRAINING_MINUTES": minutes},
        "folds": [],
    }
    run_root = Path(args.work) / time.strftime("%Y%m%dT%H%M%S")
    for clip in sorted(args.clips or clips):
        train_pairs, val_pairs, test_pairs = split_fold(clips, clip)
        metrics, threshold, seconds, weights_used = run_fold(train_pairs, val_pairs, test_pairs, settings, args,
                                                             minutes, run_root / clip)
        result["encoder_weights"] = weights_used["source"]
        result["folds"].append({
            "clip": clip, "train_frames": len(train_pairs), "val_frames": len(val_pairs),
            "test_frames": len(test_pairs), "threshold": threshold, "train_seconds": round(seconds, 1),
            **{k: metrics[k] for k in ("iou", "f1", "precision", "recall")},
            "otsu": otsu_baseline(val_pairs, test_pairs), "background": background_baseline(test_pairs),
        })
        write_json(args.out, result)  # after every fold: an interrupted benchmark keeps what it measured
        print(f"{clip}: IoU {metrics['iou']:.3f} (Otsu {result['folds'][-1]['otsu']['iou']:.3f}) in {seconds:.0f}s",
              flush=True)
    folds = result["folds"]
    result.update(mean_iou=float(np.mean([f["iou"] for f in folds])), mean_f1=float(np.mean([f["f1"] for f in folds])),
                  mean_otsu_iou=float(np.mean([f["otsu"]["iou"] for f in folds])))
    write_json(args.out, result)
    print("\n" + table(result))
    print(f"\n{minutes:.1f} min per fold, encoder {result['encoder_weights']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
