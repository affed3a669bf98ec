"""At which scale should a photo larger than the model's input be predicted? Whole (resized), or in tiles.

    python benchmarks/tile_scale.py --model runs/<run> --scales off 1 0.75 0.5

Scores one trained model on labelled photos, each prediction made: "off" the whole photo resized to the model's
input (as training saw it); a number s: the photo scaled by s, predicted in overlapping tiles of the model's input
size (`predict.predict_tiled`; 1 is what `--tiles on` does), the map scaled back; "auto": what `--tiles auto` does
(whole below twice the model's input, else tiles at `predict.TILE_MAGNIFICATION` times a whole resize's scale). Pixels pooled over each set
(IoU, precision, recall), at the model's threshold, one pass (`--tta`, default none). Sets: a dataset split (default
the embedded synthetic test split) and, where present, the DAVIS 2016 bird clips in ../shared/data/davis-birds.
"""
import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_birds import real_pairs


def probabilities(model, image, scale, tta):
    from birdseg import predict

    if scale == "off":
        return predict.predict_probabilities(model, [image], tta, tiles="off")[0]
    if scale == "auto":
        return predict.predict_probabilities(model, [image], tta, tiles="auto")[0]
    return predict.predict_tiled(model, image, float(scale), tta)


def score(model, pairs, scale, tta):
    from birdseg.defaults import THRESHOLD
    from birdseg.images import read_pair
    from birdseg.metrics import confusion_counts, scores_from_counts

    totals = [0, 0, 0]
    started = time.time()
    for image_path, mask_path in pairs:
        image, truth = read_pair(image_path, mask_path)
        counts = confusion_counts(truth, probabilities(model, image, scale, tta) > THRESHOLD)[:3]
        totals = [a + b for a, b in zip(totals, counts)]
    scores = scores_from_counts(*totals)
    return {**{k: round(scores[k], 4) for k in ("iou", "precision", "recall")}, "seconds": round(time.time() - started)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run folder or .keras file")
    parser.add_argument("--data", default=str(ROOT / "birds_splitted"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--real", default=str(ROOT.parent / "shared" / "data" / "davis-birds"))
    parser.add_argument("--scales", nargs="+", default=["off", "auto", "1", "0.75", "0.5"])
    parser.add_argument("--tta", default="none")
    args = parser.parse_args()

    from birdseg.archive import ensure_dataset
    from birdseg.model import load_model
    from birdseg.pairs import find_pairs

    model = load_model(args.model)
    sets = {f"{Path(args.data).name}/{args.split}": find_pairs(ensure_dataset(args.data) / args.split)}
    if Path(args.real).is_dir():
        sets["davis-birds"] = real_pairs(args.real)
    for name, pairs in sets.items():
        for scale in args.scales:
            print(json.dumps({"set": name, "images": len(pairs), "scale": scale, "tta": args.tta,
                              **score(model, pairs, scale, args.tta)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
