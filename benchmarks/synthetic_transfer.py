"""Transfer from drawn birds to real ones: train the notebook on synthetic data only, score it on real bird clips.

    python benchmarks/synthetic_transfer.py --style randomised             # the recipe's epochs
    python benchmarks/synthetic_transfer.py --style sky --set EPOCHS=3     # a short ranking run

Draws a synthetic dataset with the chosen generator (`make-synthetic --style`, the embedded data's counts unless
--train is given), trains the notebook on it headless (its recipe; `--set NAME=VALUE` overrides a notebook
parameter), then scores the model on every DAVIS 2016 bird clip in ../shared/data/davis-birds (IoU per clip and
their mean, with Otsu and all-background baselines; nothing is chosen on the real frames) and on two synthetic test
sets: the generated data's own and the embedded one. Writes one JSON file. Data: never copied.
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="randomised", help="a make-synthetic --style")
    parser.add_argument("--train", type=int, help="training images (default: the embedded data's count)")
    parser.add_argument("--seed", type=int, default=42, help="the notebook's SEED")
    parser.add_argument("--data-seed", type=int, help="the generator's seed (default: make-synthetic's)")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", help="a notebook parameter, e.g. EPOCHS=3")
    parser.add_argument("--real", default=str(ROOT.parent / "shared" / "data" / "davis-birds"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "synthetic_transfer"))
    parser.add_argument("--out", help="JSON file (default: <work>/<style>_<time>.json)")
    args = parser.parse_args()

    from real_birds import clips_of, notebook_command, parse_settings, real_pairs, score_model

    from birdseg import evaluate, synthetic
    from birdseg.archive import ensure_dataset
    from birdseg.files import read_json, write_json
    from birdseg.layout import METRICS_FILE
    from birdseg.model import load_model
    from birdseg.pairs import find_pairs
    from birdseg.randomised import STYLES
    from birdseg.runs import load_history

    stamp = time.strftime("%Y%m%dT%H%M%S")
    work = Path(args.work) / f"{args.style}_{stamp}"
    counts = dict(synthetic.DEFAULT_COUNTS, **({"train": args.train} if args.train else {}))
    data_dir = work / "data"
    synthetic.write_dataset(data_dir, counts, args.data_seed or synthetic.DEFAULT_SEED, sample=STYLES[args.style])

    settings = parse_settings(args.set)
    parameters = {"DATA_DIR": str(data_dir), "OUTPUT_DIR": str(work / "runs"), "SEED": args.seed,
                  "EXAMPLES_DIR": None, **settings}
    started = time.time()
    subprocess.run(notebook_command(work / "out.ipynb", parameters), check=True)
    notebook_seconds = round(time.time() - started)
    (run_dir,) = (work / "runs").iterdir()

    out = Path(args.out or work.with_suffix(".json"))
    result = score_model(run_dir, clips_of(real_pairs(args.real)), out)
    model = load_model(run_dir)
    embedded = evaluate.evaluate_pairs(model, find_pairs(ensure_dataset(ROOT / "birds_splitted") / "test"), progress=False)
    own = read_json(run_dir / METRICS_FILE)
    result.update(
        command="python benchmarks/synthetic_transfer.py " + " ".join(sys.argv[1:]),
        style=args.style, counts=counts, notebook_parameters=parameters, notebook_seconds=notebook_seconds,
        epochs=len(load_history(run_dir)["loss"]),
        synthetic_test={"own": {k: own[k] for k in ("iou", "f1")},
                        "embedded": {k: embedded[k] for k in ("iou", "f1")}},
    )
    write_json(out, result)
    print(f"{args.style}: real clips mean IoU {result['mean_iou']:.3f} (Otsu {result['mean_otsu_iou']:.3f}); "
          f"synthetic test IoU {own['iou']:.3f} (own), {embedded['iou']:.3f} (embedded); {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
