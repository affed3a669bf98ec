"""Accuracy on real birds: leave-one-clip-out on the DAVIS 2016 bird clips, within a CPU time budget.

    python benchmarks/real_birds.py --budget-minutes 30

For each clip, train on the other clips (the last frames of each held back for validation) and test on
the held-out clip, at each photo's own resolution. The budget covers training of all folds, split
evenly; each fold stops when its share is spent. Two baselines show what the model adds: predicting
all background, and Otsu's threshold on brightness (its polarity chosen on the validation frames).
Writes benchmarks/real_birds.json and prints a table. Data: ../shared/data/davis-birds (never copied).
"""
import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "davis-birds"
VAL_FRACTION = 0.15  # last frames of each training clip


class TimeBudget:
    """Stops training when the fold's share of the budget is spent (checked after every batch)."""

    def __init__(self, seconds):
        import keras

        class Stop(keras.callbacks.Callback):
            def on_train_begin(inner, logs=None):
                inner.start = time.perf_counter()

            def on_train_batch_end(inner, batch, logs=None):
                if time.perf_counter() - inner.start > seconds:
                    inner.model.stop_training = True

        self.callback = Stop()


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

    from birdseg.data import read_pair
    from birdseg.model import confusion_counts, scores_from_counts

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
    from birdseg.data import read_mask
    from birdseg.model import scores_from_counts

    return scores_from_counts(0, 0, sum(int(read_mask(mask_path).sum()) for _, mask_path in test))


def run_fold(train_pairs, val_pairs, test_pairs, args, seconds, run_dir):
    from birdseg import data, evaluate, train
    from birdseg.model import build_model, compile_model

    train.set_seed(args.seed)
    augmentation = data.get_training_augmentation(args.height, args.width)
    train_loader = data.Dataloader(data.Dataset(train_pairs, augmentation), args.batch_size, shuffle=True, seed=args.seed)
    val_set = data.Dataset(val_pairs, data.get_validation_augmentation(args.height, args.width))
    model, weights = build_model(args.height, args.width, encoder_weights=args.encoder_weights)
    compile_model(model, args.learning_rate)
    budget = TimeBudget(seconds)
    start = time.perf_counter()
    model.fit(train_loader.stream(), steps_per_epoch=len(train_loader), epochs=args.max_epochs, verbose=0,
              validation_data=data.Dataloader(val_set, args.batch_size), shuffle=False,
              callbacks=[budget.callback, train.BestModelCheckpoint(run_dir / "model.keras")])
    seconds_used = time.perf_counter() - start
    weights = train.best_weights(run_dir)
    if weights is not None:
        model.set_weights(weights)
    val_metrics = evaluate.evaluate_pairs(model, val_pairs, progress=False)
    threshold = evaluate.best_threshold(val_metrics)[0]  # chosen on validation, never on test
    test_metrics = evaluate.evaluate_pairs(model, test_pairs, threshold=threshold, progress=False)
    return test_metrics, threshold, seconds_used, weights


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=30, help="training time for all folds together")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=448)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--encoder-weights", default=None, help="None (random init), imagenet, or a local .h5")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "real_birds.json"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "real_birds"), help="folder for the fold models")
    args = parser.parse_args()
    if args.encoder_weights in ("None", "none", ""):
        args.encoder_weights = None

    import numpy as np

    from birdseg.datasets import samples_from_folders

    data_dir = Path(args.data)
    samples = samples_from_folders(data_dir / "images", data_dir / "masks", r"^(.+)_\d+$")
    pairs = [(data_dir / "images" / s.image_name, Path(s.mask_source)) for s in sorted(samples, key=lambda s: s.stem)]
    clips = clips_of(pairs)
    seconds = args.budget_minutes * 60 / len(clips)
    folds = []
    for clip in sorted(clips):
        train_pairs, val_pairs, test_pairs = split_fold(clips, clip)
        run_dir = Path(args.work) / clip
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics, threshold, used, weights = run_fold(train_pairs, val_pairs, test_pairs, args, seconds, run_dir)
        fold = {
            "clip": clip, "train_frames": len(train_pairs), "val_frames": len(val_pairs), "test_frames": len(test_pairs),
            "threshold": threshold, "train_seconds": round(used, 1),
            **{k: metrics[k] for k in ("iou", "f1", "precision", "recall")},
            "otsu": otsu_baseline(val_pairs, test_pairs), "background": background_baseline(test_pairs),
        }
        folds.append(fold)
        print(f"{clip}: IoU {fold['iou']:.3f} (Otsu {fold['otsu']['iou']:.3f}) in {used:.0f}s", flush=True)
    result = {
        "protocol": "leave-one-clip-out on DAVIS 2016 bird clips; val = last 15% of frames of each training clip; "
                    "metrics at original resolution, threshold chosen on val",
        "budget_minutes": args.budget_minutes,
        "weights": weights or "random init",
        "recipe": {k: getattr(args, k) for k in ("height", "width", "batch_size", "learning_rate", "seed")}
        | {"augmentation": "resize, pad, flips p=0.3", "loss": "BCE + Jaccard"},
        "folds": folds,
        "mean_iou": float(np.mean([f["iou"] for f in folds])),
        "mean_f1": float(np.mean([f["f1"] for f in folds])),
        "mean_otsu_iou": float(np.mean([f["otsu"]["iou"] for f in folds])),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("\n| held-out clip | IoU | F1 | precision | recall | Otsu IoU | background IoU |")
    print("|---|---|---|---|---|---|---|")
    for f in folds:
        print(f"| {f['clip']} | {f['iou']:.3f} | {f['f1']:.3f} | {f['precision']:.3f} | {f['recall']:.3f} | "
              f"{f['otsu']['iou']:.3f} | {f['background']['iou']:.3f} |")
    print(f"| **mean** | **{result['mean_iou']:.3f}** | {result['mean_f1']:.3f} | | | {result['mean_otsu_iou']:.3f} | 0.000 |")
    print(f"\nbudget {args.budget_minutes} min on {result['weights']}, {args.height}x{args.width}, batch {args.batch_size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
