"""Peak memory and time of predicting one large photo in tiles ("auto", the default, and "on", at its own scale)
and resized as a whole.

    python benchmarks/large_photo.py --megapixels 50          # prints one JSON line per mode

Each mode runs in a fresh process (peak RSS is per process): the from-scratch recipe's U-Net (random weights: the
cost does not depend on them) at its 192x320 input, one synthetic photo of the given size (a sky with a small dark
bird), test-time augmentation off. Reports the peak resident memory, the seconds for the prediction, the tiles
predicted, and the memory before the photo was made (the model and TensorFlow).
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(megapixels, tiles):
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from birdseg import predict
    from birdseg.model import build_model
    from birdseg.recipe import SCRATCH

    model, _ = build_model(SCRATCH)
    counted = {"tiles": 0}
    predict_on_batch = model.predict_on_batch

    def counting(batch):
        counted["tiles"] += len(batch)
        return predict_on_batch(batch)

    model.predict_on_batch = counting
    predict.predict_probabilities(model, [np.zeros((SCRATCH.image_height, SCRATCH.image_width, 3), np.uint8)], "none")
    counted["tiles"] = 0
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    photo = np.full((height, width, 3), (150, 190, 230), np.uint8)
    photo[height // 2 : height // 2 + 40, width // 2 : width // 2 + 90] = 30
    start = time.perf_counter()
    mask = predict.predict_image(model, photo, tta="none", tiles=tiles)
    seconds = time.perf_counter() - start
    return {"mode": tiles, "photo": f"{width}x{height}", "megapixels": round(width * height / 1e6, 1),
            "seconds": round(seconds, 1), "tiles": counted["tiles"], "mask_shape": list(mask.shape),
            "rss_before_photo_mb": round(before), "peak_rss_mb": round(resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=50)
    parser.add_argument("--mode", choices=("auto", "on", "off"), help=argparse.SUPPRESS)  # one measurement, in-process
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args.megapixels, args.mode)))
        return 0
    for mode in ("auto", "on", "off"):
        subprocess.run([sys.executable, __file__, "--megapixels", str(args.megapixels), "--mode", mode], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
