"""Command line: `python -m birdseg_utils <command> --help`.

Heavy imports (TensorFlow) happen inside the commands that need them, so data commands start fast.
"""
import argparse
import sys
from pathlib import Path

from birdseg.defaults import (
    CUB_VAL_RATIO,
    EXPORT_FORMATS,
    MASK_THRESHOLD,
    PREDICT_BATCH_SIZE,
    RUNTIME,
    RUNTIMES,
    SPLIT_RATIOS,
    THRESHOLD,
    TILE_CHOICES,
    TILES,
    TTA,
    TTA_VIEWS,
)
from birdseg.randomised import EMBEDDED_STYLE, STYLES
from birdseg.synthetic import DEFAULT_COUNTS, DEFAULT_SEED


def cmd_make_synthetic(args):
    from birdseg import synthetic

    counts = {"train": args.train, "val": args.val, "test": args.test}
    sample = STYLES[args.style]
    if args.zip:
        path = synthetic.write_zip(Path(args.out).with_suffix(".zip"), counts, args.seed, top=Path(args.out).name,
                                   sample=sample)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {sum(counts.values())} synthetic images)")
    else:
        count = synthetic.write_dataset(args.out, counts, args.seed, sample=sample)
        print(f"wrote {args.out}/ ({count} synthetic images)")
    return 0


def cmd_make_dataset(args):
    from birdseg import dataset_tools

    sources = [bool(args.masks), bool(args.cub), bool(args.davis), bool(args.coco), bool(args.labelme)]
    if sum(sources) != 1 and not (args.images and not any(sources)):
        raise ValueError("give exactly one source: --images DIR --masks DIR, --coco FILE --images DIR, --labelme DIR, "
                         "--cub ARCHIVE, or --davis DIR")
    if args.category and not (args.coco or args.labelme):
        raise ValueError("--category goes with --coco or --labelme")
    if args.mask_values and not (args.masks or args.davis):
        raise ValueError("--mask-values goes with --masks or --davis (mask files to read)")
    ratios = tuple(args.ratios)
    if args.cub:
        if not args.cub_segmentations:
            raise ValueError("--cub needs --cub-segmentations segmentations.tgz")
        report = dataset_tools.build_cub(
            args.cub, args.cub_segmentations, args.out, val_ratio=args.val_ratio, group_species=args.group == "species",
            ratios=ratios, seed=args.seed, threshold=args.threshold, overwrite=args.overwrite, progress=not args.quiet,
        )
    else:
        if args.coco:
            from birdseg.coco import samples_from_coco

            if not args.images:
                raise ValueError("--coco needs --images, the folder of the photos it names")
            annotated = samples_from_coco(args.coco, args.images, args.category, args.group)
            print(annotated.summary())
            samples = annotated.samples
        elif args.labelme:
            from birdseg.labelme import samples_from_labelme

            annotated = samples_from_labelme(args.labelme, args.category, args.group)
            print(annotated.summary())
            samples = annotated.samples
        elif args.davis:
            samples = dataset_tools.samples_from_davis(args.davis, clips=args.clips)
        else:
            if not (args.images and args.masks):
                raise ValueError("--images and --masks go together")
            samples = dataset_tools.samples_from_folders(args.images, args.masks, args.group, args.only_masked)
        by_split = dataset_tools.assign_splits(samples, ratios, args.seed)
        report = dataset_tools.build_dataset(by_split, args.out, args.threshold, args.overwrite,
                                             progress=not args.quiet, bird_values=args.mask_values)
    print(report.summary())
    if args.zip:
        print(f"wrote {dataset_tools.zip_dataset(report.out)}")
    return 0


def cmd_check_dataset(args):
    from birdseg.dataset_check import check_dataset

    report = check_dataset(args.path, quick=args.quick)
    print(report.summary())
    if args.strict and report.warnings:
        print("  --strict: warnings count as failures")
    return 0 if report.ok(strict=args.strict) else 1


def cmd_predict(args):
    from birdseg.media import media_files, predict_files
    from birdseg.runtimes import load_predictor
    from birdseg.video import is_video_file

    model = load_predictor(args.model, args.runtime)
    files = media_files(args.input)
    written, skipped, done_before = predict_files(model, files, args.out, args.threshold, args.batch_size,
                                                  progress=not args.quiet, tta=args.tta, tiles=args.tiles,
                                                  video_masks=args.masks, overwrite=args.overwrite)
    videos = sum(is_video_file(item.photo) for item in written)
    print(f"{len(written) - videos} photo(s) and {videos} video(s) segmented into {args.out}"
          + (f"; {done_before} already there, skipped (--overwrite to redo them)" if done_before else "")
          + f"; {len(skipped)} unreadable file(s) skipped")
    return 0 if written or done_before or not files else 1


def cmd_evaluate(args):
    from birdseg import evaluate, figures
    from birdseg.files import save_figure
    from birdseg.pairs import find_pairs
    from birdseg.plots import prediction_grid
    from birdseg.runtimes import load_predictor

    rows = []
    names = evaluate.model_names(args.model)  # one folder per model: no result overwrites another
    for model_path, name in zip(args.model, names):
        model = load_predictor(model_path, args.runtime, exact=True)  # "auto": scores as Keras gives them
        pairs = find_pairs(Path(args.data) / args.split)[: args.max_images]
        worst = figures.FigureSamples(gallery_size=0, count=args.worst)
        metrics = evaluate.evaluate_pairs(model, pairs, args.threshold, args.batch_size, progress=not args.quiet,
                                          tta=args.tta, tiles=args.tiles, on_image=worst.add)
        out = Path(args.out) / (name if len(args.model) > 1 else "")
        evaluate.save_metrics(out, metrics)
        save_figure(figures.sweep_figure(metrics, args.split), out / "threshold_sweep.png")
        save_figure(prediction_grid(worst.rows(worst.worst), title=f"Worst {len(worst.worst)} images by IoU"),
                    out / "worst.png")
        print(f"{model_path}: {evaluate.format_metrics(metrics)}\n  -> {out}")
        rows.append((str(model_path), metrics))
    if len(rows) > 1:
        print(evaluate.comparison_table(rows))
    return 0


def cmd_export(args):
    from birdseg.export import export_model, parity
    from birdseg.model import load_model

    model = load_model(args.model)
    path = export_model(model, args.out, args.format)
    difference = parity(model, path, args.format)
    verdict = "ok" if difference <= args.tolerance else f"ABOVE the tolerance {args.tolerance}"
    print(f"wrote {path}; largest difference from the Keras model on random images: {difference:.2e} ({verdict})")
    return 0 if difference <= args.tolerance else 1


def cmd_download_weights(args):
    from birdseg import pretrained
    from birdseg.files import sha256
    from birdseg.model import build_model
    from birdseg.recipe import PRETRAINED

    try:
        path = pretrained.fetch_imagenet_weights()
    except Exception as error:  # noqa: BLE001  (keras.utils.get_file raises a bare Exception offline)
        print(f"error: could not download {pretrained.KERAS_URL} ({error}). On a machine that can, run this command "
              f"and copy the file it prints to {pretrained.keras_cache_path()} here.", file=sys.stderr)
        return 1
    # Proves the file fits the encoder before anyone relies on it.
    build_model(PRETRAINED.override(image_height=32, image_width=32), str(path))
    print(f"{path}\nsha256 {sha256(path)}\nFor an offline machine: copy this file to "
          f"~/.keras/models/{pretrained.KERAS_FILE} there (or $KERAS_HOME/models/), or set ENCODER_WEIGHTS to its path.")
    return 0


def add_prediction_options(parser):
    """What the commands that predict share: the threshold, the batch, --tta, --tiles and --quiet."""
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--batch-size", type=int, default=PREDICT_BATCH_SIZE)
    parser.add_argument("--tta", choices=TTA_VIEWS, default=TTA,
                        help="test-time augmentation: average over the photo and its flips (default: %(default)s)")
    parser.add_argument("--tiles", choices=TILE_CHOICES, default=TILES,
                        help="predict large photos in overlapping tiles. auto: when a side is at least twice the "
                             "model's input, at twice the detail of a whole-photo resize; on: every photo, at its own "
                             "scale (small birds in very large photos) (default: %(default)s)")
    parser.add_argument("--runtime", choices=("auto", *RUNTIMES), default=RUNTIME,
                        help="what runs the model: keras; onnxruntime, openvino or openvino-bf16 (bfloat16 where the "
                             "CPU has it) (converted once, checked against Keras and cached in the run folder; pip "
                             "install -r requirements-export.txt); auto: where OpenVINO is installed, openvino-bf16 "
                             "to predict (float32 openvino where its masks are refused) and openvino to evaluate "
                             "(Keras' scores), else keras (default: %(default)s)")
    add_quiet(parser)


def add_quiet(parser):
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_make_synthetic(commands):
    p = commands.add_parser("make-synthetic", help="generate the SYNTHETIC default dataset (birds_splitted)")
    p.add_argument("--out", default="birds_splitted", help="output folder (its name is the top folder)")
    p.add_argument("--zip", action="store_true", help="write <out>.zip instead of a folder")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    for split in ("train", "val", "test"):
        p.add_argument(f"--{split}", type=int, default=DEFAULT_COUNTS[split])
    p.add_argument("--style", choices=list(STYLES), default=EMBEDDED_STYLE,
                   help="sky: flat-coloured birds over skies; randomised: textured birds in every pose over "
                        "randomised scenes with distractors (domain randomisation); mixed: half of each (default: "
                        "%(default)s, the embedded data's)")
    p.set_defaults(run=cmd_make_synthetic)


def add_make_dataset(commands):
    p = commands.add_parser(
        "make-dataset", help="build the birds_splitted layout from image+mask folders, COCO, LabelMe, DAVIS or "
        "CUB-200-2011",
        description="Pairs images with masks, splits them (whole groups per split) and writes "
        "<out>/{train,val,test}/{images,mask} with PNG masks {0,255}. Built in a temporary folder, renamed at the end.",
    )
    p.add_argument("--images", help="folder of images (with --masks or --coco)")
    p.add_argument("--masks", help="folder of masks: x.png, x_mask.png, x-mask.png, ... for image x.jpg; may be "
                   "--images itself when masks lie beside their photos (Roboflow's segmentation export)")
    p.add_argument("--davis", help="DAVIS root with JPEGImages/480p/<clip> and Annotations/480p/<clip>; grouped by clip")
    p.add_argument("--clips", nargs="+", help="with --davis: only these clips")
    p.add_argument("--coco", help="a COCO annotation file (CVAT, Label Studio, Roboflow exports), with --images: each "
                   "image's mask is the union of its annotations (polygons, RLE)")
    p.add_argument("--labelme", help="a folder of LabelMe .json files (also AnyLabeling's): each photo's mask is the "
                   "union of its polygons, rectangles, circles and masks")
    p.add_argument("--category", nargs="+", help="with --coco: only these categories; with --labelme: only these "
                   "labels (names, any case; default: all)")
    p.add_argument("--cub", help="CUB_200_2011.tgz (read without unpacking)")
    p.add_argument("--cub-segmentations", help="segmentations.tgz of CUB-200-2011")
    p.add_argument("--val-ratio", type=float, default=CUB_VAL_RATIO,
                   help="with --cub: share of the official train list used for val")
    p.add_argument("--out", required=True, help="output folder (refused if it exists, unless --overwrite)")
    p.add_argument("--ratios", nargs=3, type=float, default=SPLIT_RATIOS, metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group", help="regex on the file stem; its first group (or whole match) keeps files together in "
                   "one split, e.g. '^(.+)_\\d+$' for <clip>_<frame>. With --cub: 'species'")
    p.add_argument("--threshold", type=int, default=MASK_THRESHOLD,
                   help="soft 0-255 masks: foreground above this value")
    p.add_argument("--only-masked", action="store_true",
                   help="with --masks: leave out (and count) the images that have no mask, instead of an error")
    p.add_argument("--mask-values", nargs="+", type=int, metavar="VALUE",
                   help="with --masks or --davis: class maps (palette or grey), only these values are bird, e.g. 3 for "
                   "Pascal VOC's SegmentationClass (other classes and the 255 border are not)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (only once the new one is complete)")
    p.add_argument("--zip", action="store_true", help="also write <out>.zip")
    add_quiet(p)
    p.set_defaults(run=cmd_make_dataset)


def add_check_dataset(commands):
    p = commands.add_parser("check-dataset", help="check a dataset folder or zip before training on it")
    p.add_argument("path", help="dataset folder or .zip")
    p.add_argument("--quick", action="store_true",
                   help="only pairing and image headers (the notebook runs the full check, every file decoded)")
    p.add_argument("--strict", action="store_true", help="warnings (e.g. non-binary masks) fail too")
    p.set_defaults(run=cmd_check_dataset)


def add_predict(commands):
    p = commands.add_parser("predict", help="masks and overlays for your own photos and videos")
    p.add_argument("--model", required=True, help="a run folder or a .keras file")
    p.add_argument("--input", required=True, help="a photo, a video, or a folder of them")
    p.add_argument("--out", required=True, help="folder for <stem>_mask.png and <stem>_overlay.jpg (a video: "
                   "<stem>_overlay.mp4); photos whose outputs are there already are skipped")
    p.add_argument("--masks", action="store_true", help="videos: also one mask PNG per frame, in <stem>_masks/")
    p.add_argument("--overwrite", action="store_true", help="predict again what --out already holds")
    add_prediction_options(p)
    p.set_defaults(run=cmd_predict)


def add_evaluate(commands):
    p = commands.add_parser("evaluate", help="metrics, threshold sweep and worst images of one or more models")
    p.add_argument("--model", required=True, nargs="+", help="run folders or .keras files (several: a comparison)")
    p.add_argument("--data", required=True, help="dataset folder with <split>/images and <split>/mask")
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True, help="folder for metrics.json, per_image.csv and figures")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--worst", type=int, default=6, help="images in the worst-k gallery")
    add_prediction_options(p)
    p.set_defaults(run=cmd_evaluate)


def add_export(commands):
    p = commands.add_parser("export", help="export a model (savedmodel, tflite, onnx) and check it predicts the same")
    p.add_argument("--model", required=True, help="a run folder or a .keras file")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed difference in probability")
    p.set_defaults(run=cmd_export)


def add_download_weights(commands):
    p = commands.add_parser("download-weights", help="fetch ImageNet EfficientNetB3 weights into the Keras cache",
                            description="Downloads Keras' efficientnetb3_notop.h5 once (hash-checked) into "
                            "$KERAS_HOME/models (default ~/.keras/models), checks that it fits the encoder, and "
                            "prints its path and sha256, to copy to an offline machine.")
    p.set_defaults(run=cmd_download_weights)


COMMANDS = (add_make_synthetic, add_make_dataset, add_check_dataset, add_predict, add_evaluate, add_export,
            add_download_weights)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m birdseg_utils", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(commands)
    return parser


def main(argv=None):
    from birdseg.errors import DatasetError
    from birdseg.runtimes import RuntimeMissing

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (DatasetError, FileNotFoundError, FileExistsError, ValueError, RuntimeError, RuntimeMissing) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
