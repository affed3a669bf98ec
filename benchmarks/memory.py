"""Memory while training: the loader streams from disk, so resident memory must not grow with the dataset.

    python benchmarks/memory.py --images 3000

Generates a synthetic dataset of --images small images, trains the real U-Net for one epoch at 64x96,
and samples the process's resident memory (RSS) every 25 batches. Prints the samples and the growth
from the first sample after warm-up to the last; writes benchmarks/memory.json.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "memory.json"))
    args = parser.parse_args()

    import keras
    import psutil

    from birdseg import devices, loader, synthetic
    from birdseg.model import build_model, compile_model
    from birdseg.recipe import PRETRAINED

    process = psutil.Process()
    samples = []

    class Sampler(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch % 25 == 0:
                samples.append({"batch": batch, "rss_mb": process.memory_info().rss / 2**20})

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "many"
        start = time.perf_counter()
        synthetic.write_dataset(root, {"train": args.images, "val": 8, "test": 1}, seed=1,
                                resolutions=((160, 96), (192, 128), (128, 96)))
        generated = time.perf_counter() - start
        on_disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20
        devices.set_seed(0)
        loader = loader.Dataloader(loader.load_split(root, "train", 64, 96), args.batch_size, True, 0)
        model, _ = build_model(PRETRAINED.override(image_height=64, image_width=96))
        compile_model(model, PRETRAINED.learning_rate, PRETRAINED.loss)
        start = time.perf_counter()
        model.fit(loader.stream(), steps_per_epoch=len(loader), epochs=1, verbose=0, shuffle=False, callbacks=[Sampler()])
        epoch_seconds = time.perf_counter() - start
    warm = samples[min(2, len(samples) - 1)]["rss_mb"]
    result = {
        "images": args.images, "batch_size": args.batch_size, "image_size": "64x96", "dataset_mb_on_disk": on_disk,
        "generation_seconds": generated, "epoch_seconds": epoch_seconds, "rss_samples": samples,
        "rss_after_warmup_mb": warm, "rss_last_mb": samples[-1]["rss_mb"],
        "growth_after_warmup_mb": samples[-1]["rss_mb"] - warm,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for sample in samples:
        print(f"batch {sample['batch']:>5}: RSS {sample['rss_mb']:.0f} MB")
    print(f"{args.images} images ({on_disk:.0f} MB on disk), one epoch in {epoch_seconds:.0f}s: RSS after warm-up "
          f"{warm:.0f} MB, at the end {samples[-1]['rss_mb']:.0f} MB (growth {result['growth_after_warmup_mb']:+.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
