"""Speed and memory: our U-Net/EfficientNetB3 (TensorFlow) against segmentation_models.pytorch, same machine.

    python -m venv .peer && .peer/bin/pip install -r requirements-bench.txt   # the peer, in its own venv
    python benchmarks/bench.py --peer-python .peer/bin/python   # full table, writes benchmarks/results.json
    python benchmarks/bench.py --peer-python .peer/bin/python --shapes 256x256x8   # one shape

Each framework and shape runs in its own subprocess (so peak memory is its own), with the same number of threads,
random init, float32. Ours runs as the notebook trains it (op determinism on, as `set_seed` makes it on a CPU)
and once without op determinism. Times are the median of --repeats steps after --warmup steps. A training step is
forward + backward + optimizer update (Adam, BCE + Jaccard loss; ours also updates its IoU and F1 metrics); inference
is the forward pass, reported per image.
It also measures the input pipeline: one epoch of the real loader + augmentation alone, and training with
the real loader against the same batches already in memory.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHAPES = ("384x640x1", "384x640x4", "256x256x8")


def parse_shape(text):
    height, width, batch = (int(v) for v in text.split("x"))
    return height, width, batch


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(step, warmup, repeats):
    """(median seconds of `repeats` steps after `warmup` steps, seconds of the very first step)."""
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), first


# ---------------------------------------------------------------- workers (run in subprocesses)


def worker_ours(shapes, threads, warmup, repeats, deterministic):
    """Our model as the notebook trains it: `deterministic` as set_seed makes it (op determinism on CPU)."""
    sys.path.insert(0, str(ROOT))
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    import numpy as np

    from birdseg.devices import set_seed
    from birdseg.model import build_model, compile_model
    from birdseg.recipe import PRETRAINED

    set_seed(0, deterministic=deterministic)

    results = []
    for height, width, batch in shapes:
        model, _ = build_model(PRETRAINED.override(image_height=height, image_width=width))
        compile_model(model, PRETRAINED.learning_rate, PRETRAINED.loss)
        rng = np.random.default_rng(0)
        x = rng.random((batch, height, width, 3), dtype=np.float32)
        y = (rng.random((batch, height, width, 1)) > 0.9).astype(np.float32)
        train, train_first = timed(lambda: model.train_on_batch(x, y), warmup, repeats)
        infer, infer_first = timed(lambda: model.predict_on_batch(x), warmup, repeats)
        infer /= batch
        results.append({"height": height, "width": width, "batch": batch, "train_s": train, "infer_s": infer,
                        "train_first_s": train_first, "infer_first_s": infer_first})
        print(f"ours {height}x{width} b{batch}: train {train:.3f}s/step, infer {infer:.3f}s/img", file=sys.stderr)
    return results


def worker_peer(shapes, threads, warmup, repeats):
    import numpy as np
    import segmentation_models_pytorch as smp
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    results = []
    for height, width, batch in shapes:
        model = smp.Unet("efficientnet-b3", encoder_weights=None, classes=1, activation=None)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        bce, jaccard = torch.nn.BCEWithLogitsLoss(), smp.losses.JaccardLoss("binary", from_logits=True)

        def loss_fn(logits, target):
            return bce(logits, target) + jaccard(logits, target)

        rng = np.random.default_rng(0)
        x = torch.from_numpy(rng.random((batch, 3, height, width), dtype=np.float32))
        y = torch.from_numpy((rng.random((batch, 1, height, width)) > 0.9).astype(np.float32))

        def train_step():
            model.train()
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()

        def infer_step():
            model.eval()
            with torch.inference_mode():
                torch.sigmoid(model(x))

        train, train_first = timed(train_step, warmup, repeats)
        infer, infer_first = timed(infer_step, warmup, repeats)
        infer /= batch
        results.append({"height": height, "width": width, "batch": batch, "train_s": train, "infer_s": infer,
                        "train_first_s": train_first, "infer_first_s": infer_first})
        print(f"smp  {height}x{width} b{batch}: train {train:.3f}s/step, infer {infer:.3f}s/img", file=sys.stderr)
    return results


def worker_pipeline(threads, warmup, repeats, data_dir):
    """Input pipeline cost at the default shape (384x640, batch 1) on the embedded dataset."""
    sys.path.insert(0, str(ROOT))
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    from birdseg import archive, augment, loader
    from birdseg.model import build_model, compile_model
    from birdseg.recipe import PRETRAINED

    root = archive.ensure_dataset(data_dir)
    import albumentations as A

    # The notebook's training augmentation at its default recipe ("flips").
    flips = A.Compose([*augment.get_validation_augmentation(384, 640), A.HorizontalFlip(p=0.3), A.VerticalFlip(p=0.3)])
    dataset = loader.load_split(root, "train", 384, 640, augmentation=flips)
    loader = loader.Dataloader(dataset, batch_size=1, shuffle=True, seed=0)
    start = time.perf_counter()
    batches = [loader[i] for i in range(len(loader))]
    loader_epoch = time.perf_counter() - start

    model, _ = build_model(PRETRAINED.override(image_height=384, image_width=640))
    compile_model(model, PRETRAINED.learning_rate, PRETRAINED.loss)
    steps = min(len(batches), max(20, warmup + repeats))  # enough steps that the host's noise averages out
    model.fit(loader.Dataloader(dataset, 1, True, 0), epochs=1, steps_per_epoch=warmup, verbose=0)  # trace once

    class InMemory(loader.Dataloader):
        def __getitem__(self, index):
            return batches[index % len(batches)]

    def fit_seconds(source):
        start = time.perf_counter()
        model.fit(source, epochs=1, steps_per_epoch=steps, verbose=0)
        return time.perf_counter() - start

    with_loader = min(fit_seconds(loader.Dataloader(dataset, 1, True, 0)) for _ in range(2))
    in_memory = min(fit_seconds(InMemory(dataset, 1, True, 0)) for _ in range(2))
    return {
        "loader_epoch_s": loader_epoch,
        "loader_per_batch_s": loader_epoch / len(batches),
        "fit_with_loader_s": with_loader,
        "fit_in_memory_s": in_memory,
        "steps": steps,
        "pipeline_overhead_pct": 100 * (with_loader - in_memory) / in_memory,
    }


# ---------------------------------------------------------------- driver


def run_worker(kind, args, shape, *extra):
    """One shape in a fresh process: its peak resident memory is that shape's own."""
    python = args.peer_python if kind == "peer" else sys.executable
    command = [python, __file__, "--worker", kind, "--threads", str(args.threads), "--warmup",
               str(args.warmup), "--repeats", str(args.repeats), "--data", args.data, "--shapes", shape, *extra]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if completed.returncode:
        raise RuntimeError(f"{kind} worker failed:\n{completed.stderr[-4000:]}")
    sys.stderr.write(completed.stderr[-2000:])
    return json.loads(completed.stdout.strip().splitlines()[-1])


def machine():
    import psutil

    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_model": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name")), "unknown") if Path("/proc/cpuinfo").exists() else "unknown",
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }


def versions():
    import importlib.metadata as md

    names = ("tensorflow-cpu", "tensorflow", "keras", "segmentation-models", "torch", "segmentation-models-pytorch")
    found = {}
    for name in names:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return found


def table(result):
    lines = ["| phase | shape (HxW, batch) | ours (s) | ours, no op determinism (s) | smp (s) | ours / smp | "
             "no determinism / smp | first step: ours / smp (s) |", "|---|---|---|---|---|---|---|---|"]
    for run in result["runs"]:
        unit = "step" if run["phase"] == "train" else "image"
        lines.append(f"| {run['phase']} (per {unit}) | {run['height']}x{run['width']}, {run['batch']} | "
                     f"{run['ours_s']:.3f} | {run['ours_nondeterministic_s']:.3f} | {run['peer_s']:.3f} | "
                     f"{run['ratio']:.2f} | {run['ratio_nondeterministic']:.2f} | "
                     f"{run['ours_first_s']:.1f} / {run['peer_first_s']:.1f} |")
    lines += ["", "| peak resident memory, one process per shape | ours (MB) | smp (MB) | ours / smp |",
              "|---|---|---|---|"]
    lines += [f"| {m['shape']} | {m['ours_mb']:.0f} | {m['peer_mb']:.0f} | {m['ratio']:.2f} |"
              for m in result["peak_rss_mb"]]
    lines.append("")
    lines.append(f"Input pipeline overhead in `fit` at 384x640, batch 1: {result['pipeline_overhead_pct']:.1f}% "
                 f"({result['pipeline']['loader_per_batch_s'] * 1000:.0f} ms per batch to load and augment).")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(DEFAULT_SHAPES), help="HxWxBATCH")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", default=str(ROOT / "birds_splitted"))
    parser.add_argument("--peer-python", default=sys.executable,
                        help="interpreter of the venv with requirements-bench.txt "
                             "(torch and TensorFlow do not share one)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    parser.add_argument("--worker", choices=("ours", "peer", "pipeline"), help=argparse.SUPPRESS)
    parser.add_argument("--nondeterministic", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shapes = [parse_shape(s) for s in args.shapes]
    if args.worker:
        if args.worker == "pipeline":
            out = worker_pipeline(args.threads, args.warmup, args.repeats, args.data)
        elif args.worker == "ours":
            out = worker_ours(shapes, args.threads, args.warmup, args.repeats, not args.nondeterministic)
        else:
            out = worker_peer(shapes, args.threads, args.warmup, args.repeats)
        print(json.dumps({"results": out, "peak_rss_mb": peak_rss_mb(), "versions": versions()}))
        return 0
    runs, memory = [], []
    for shape in args.shapes:
        ours, plain = run_worker("ours", args, shape), run_worker("ours", args, shape, "--nondeterministic")
        peer = run_worker("peer", args, shape)
        mine, loose, theirs = ours["results"][0], plain["results"][0], peer["results"][0]
        for phase in ("train", "infer"):
            runs.append({"phase": phase, "height": mine["height"], "width": mine["width"], "batch": mine["batch"],
                         "ours_s": mine[f"{phase}_s"], "ours_nondeterministic_s": loose[f"{phase}_s"],
                         "peer_s": theirs[f"{phase}_s"], "ratio": mine[f"{phase}_s"] / theirs[f"{phase}_s"],
                         "ratio_nondeterministic": loose[f"{phase}_s"] / theirs[f"{phase}_s"],
                         "ours_first_s": mine[f"{phase}_first_s"], "peer_first_s": theirs[f"{phase}_first_s"]})
        memory.append({"shape": shape, "ours_mb": ours["peak_rss_mb"], "peer_mb": peer["peak_rss_mb"],
                       "ratio": ours["peak_rss_mb"] / peer["peak_rss_mb"]})
    pipeline = run_worker("pipeline", args, args.shapes[0])
    result = {
        "runs": runs,
        "pipeline_overhead_pct": pipeline["results"]["pipeline_overhead_pct"],
        "pipeline": pipeline["results"],
        "peak_rss_mb": memory,
        "threads": args.threads,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "machine": machine(),
        "versions": {**ours["versions"], **peer["versions"]},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
