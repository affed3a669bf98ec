"""Command line: `python -m birdseg_utils <command> --help`.

Heavy imports (TensorFlow) happen inside the commands that need them, so data commands start fast.
"""
import argparse
import sys
from pathlib import Path


def cmd_make_synthetic(args):
    from birdseg import synthetic

    counts = {"train": args.train, "val": args.val, "test": args.test}
    if args.zip:
        path = synthetic.write_zip(Path(args.out).with_suffix(".zip"), counts, args.seed, top=Path(args.out).name)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {sum(counts.values())} synthetic images)")
    else:
        count = synthetic.write_dataset(args.out, counts, args.seed)
        print(f"wrote {args.out}/ ({count} synthetic images)")
    return 0


def cmd_predict(args):
    from birdseg.evaluate import image_files, predict_files
    from birdseg.model import load_model

    model = load_model(args.model, compile=False)
    files = image_files(args.input)
    written, skipped = predict_files(model, files, args.out, args.threshold, args.batch_size, progress=not args.quiet)
    print(f"{len(written)} masks written to {args.out}; {len(skipped)} unreadable file(s) skipped")
    return 0 if written or not files else 1


def cmd_evaluate(args):
    from birdseg import evaluate
    from birdseg.data import find_pairs
    from birdseg.files import save_figure
    from birdseg.model import load_model
    from birdseg.plots import plot_threshold_sweep, prediction_grid

    rows = []
    for model_path in args.model:
        model = load_model(model_path, compile=False)
        pairs = find_pairs(Path(args.data) / args.split)[: args.max_images]
        metrics = evaluate.evaluate_pairs(model, pairs, args.threshold, args.batch_size, progress=not args.quiet)
        out = Path(args.out) / (Path(model_path).stem if len(args.model) > 1 else "")
        evaluate.save_metrics(out, metrics)
        sweep = metrics["sweep"]
        save_figure(plot_threshold_sweep(sweep["thresholds"], sweep["iou"], sweep["f1"],
                                         evaluate.best_threshold(metrics)[0]), out / "threshold_sweep.png")
        worst = sorted(metrics["per_image"], key=lambda entry: entry["iou"])[: args.worst]
        save_figure(prediction_grid(evaluate.figure_rows(model, pairs, worst, args.threshold),
                                    title=f"Worst {len(worst)} images by IoU"), out / "worst.png")
        print(f"{model_path}: {evaluate.format_metrics(metrics)}\n  -> {out}")
        rows.append((str(model_path), metrics))
    if len(rows) > 1:
        print(evaluate.comparison_table(rows))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m birdseg_utils", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("make-synthetic", help="generate the SYNTHETIC default dataset (birds_splitted)")
    p.add_argument("--out", default="birds_splitted", help="output folder (its name is the top folder)")
    p.add_argument("--zip", action="store_true", help="write <out>.zip instead of a folder")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--train", type=int, default=20)
    p.add_argument("--val", type=int, default=6)
    p.add_argument("--test", type=int, default=12)
    p.set_defaults(run=cmd_make_synthetic)

    p = commands.add_parser("predict", help="masks and overlays for your own photos")
    p.add_argument("--model", required=True, help="a run folder or a .keras file")
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="folder for <stem>_mask.png and <stem>_overlay.jpg")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_predict)

    p = commands.add_parser("evaluate", help="metrics, threshold sweep and worst images of one or more models")
    p.add_argument("--model", required=True, nargs="+", help="run folders or .keras files (several: a comparison)")
    p.add_argument("--data", required=True, help="dataset folder with <split>/images and <split>/mask")
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True, help="folder for metrics.json, per_image.csv and figures")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--worst", type=int, default=6, help="images in the worst-k gallery")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_evaluate)
    return parser


def main(argv=None):
    from birdseg.data import DatasetError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (DatasetError, FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
