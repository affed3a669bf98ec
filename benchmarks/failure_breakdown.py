"""Where a model fails on synthetic drawings: scores grouped by style, scene, layout, the bird's share of the frame,
its contrast, occlusion and distractors (`birdseg.breakdown`).

    python benchmarks/failure_breakdown.py --model runs/<run>                       # 240 held-out drawings, seed 7
    python benchmarks/failure_breakdown.py --model runs/<run> --seed 2026 --split train --count 256   # its own
                                                                                  # training images (embedded zip)
    python benchmarks/failure_breakdown.py --model runs/<run> --recompute-batchnorm 200   # "precise BN" first

Draws the drawings again from the generator (the same pixels `make-synthetic` writes, JPEG included, each from its
own seed: `--seed 7 --split test --count 240` is `make-synthetic --seed 7 --test 240`; the embedded dataset is
seed 2026), predicts each as the notebook scores its test set (test-time flips, tiles "auto" unless `--tiles` says
otherwise, threshold 0.5, at the drawing's own size) and prints one table per attribute; `--out` writes every
drawing's attributes and counts as JSON.
"""
import argparse
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a run folder or .keras file")
    parser.add_argument("--seed", type=int, default=7, help="the generator's seed (the embedded dataset: 2026)")
    parser.add_argument("--split", choices=("train", "val", "test"), default="test")
    parser.add_argument("--count", type=int, default=240)
    parser.add_argument("--style", default="mixed")
    parser.add_argument("--tta", default="flips")
    parser.add_argument("--tiles", default="auto", help="auto, on or off, as `evaluate --tiles`")
    parser.add_argument("--out", help="JSON file for every drawing's attributes and counts")
    parser.add_argument("--recompute-batchnorm", type=int, default=0, metavar="BATCHES",
                        help="first set every BatchNorm layer's moving statistics to the plain mean over this many "
                             "batches of 4 of the embedded training images (\"precise BN\"; 0: as trained)")
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from birdseg import breakdown, display, synthetic
    from birdseg.metrics import confusion_counts, scores_from_counts
    from birdseg.model import load_model
    from birdseg.pairs import SPLITS
    from birdseg.predict import predict_probabilities
    from birdseg.randomised import STYLES

    model = load_model(args.model)
    if args.recompute_batchnorm:
        recompute_batchnorm(model, args.recompute_batchnorm)
    rows, bar = [], display.progress_bar(args.count, "breakdown", "img")
    for index in range(args.count):
        notes = {}
        image, mask = synthetic.drawing(args.seed, SPLITS.index(args.split), index, STYLES[args.style], notes=notes)
        image = np.asarray(Image.open(io.BytesIO(synthetic.encode(image, "JPEG", quality=synthetic.JPEG_QUALITY))))
        truth = mask > 0
        probability = predict_probabilities(model, [image], tta=args.tta, tiles=args.tiles)[0]
        tp, fp, fn, _ = confusion_counts(truth, probability > 0.5)
        rows.append({"index": index, "notes": notes, "attributes": breakdown.drawing_attributes(image, truth, notes),
                     "counts": (tp, fp, fn)})
        bar.update(1)
    bar.close()
    tp, fp, fn = np.sum([row["counts"] for row in rows], axis=0)
    print(f"{args.model}: {args.count} drawings ({args.style}, seed {args.seed}, {args.split}; tta {args.tta}, tiles "
          f"{args.tiles}): pooled IoU "
          f"{scores_from_counts(tp, fp, fn)['iou']:.3f}\n")
    print(breakdown.breakdown_table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1, default=int))


def recompute_batchnorm(model, batches, data=ROOT / "birds_splitted"):
    """Each BatchNorm layer's moving mean and variance as the plain mean of the batch statistics over `batches`
    shuffled batches of 4 training images: at batch k the layers' momentum is k / (k + 1)."""
    import keras

    from birdseg import augment, loader
    from birdseg.speedups import nested_layers

    height, width = model.input_shape[1:3]
    train = loader.Dataloader(loader.Dataset(data / "train", augment.get_validation_augmentation(height, width)),
                              batch_size=4, shuffle=True, seed=123)
    layers = [layer for layer in nested_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    momentum = [layer.momentum for layer in layers]
    for k in range(batches):
        for layer in layers:
            layer.momentum = k / (k + 1)
        model(train.batch(k // len(train), k % len(train))[0], training=True)
    for layer, value in zip(layers, momentum):
        layer.momentum = value


if __name__ == "__main__":
    main()
