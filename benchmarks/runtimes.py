"""Inference speed and memory of each runtime (Keras, ONNX Runtime, OpenVINO in float32 and bfloat16) against
segmentation_models.pytorch,
end to end on a folder of photos and a video, and whether the runtimes' masks agree with Keras'.

    python -m venv .peer && .peer/bin/pip install -r requirements-bench.txt     # the peer, in its own venv
    python benchmarks/runtimes.py --model runs/<run> --peer-python .peer/bin/python   # writes runtimes.json

Per image: a random-init U-Net at each shape (HxWxBATCH: 384x640x1, the model's input x1 and x8), each runtime and
the peer in a fresh process (peak resident memory is that process's own), the same threads, float32, the median of
--repeats calls after --warmup; a runtime's one-off conversion is timed apart. End to end: `predict` on a folder of
--photos drawn photos (decode, predict with test-time flips, write masks and overlays) and on a --frames video, with
the run's model, each runtime in its own process; `--baseline-repo` also times the same command in another checkout
(the code before the runtimes and the read-ahead). Agreement: each runtime's masks against Keras' on the embedded
synthetic test set, as `evaluate` predicts it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import peak_rss_mb, timed  # noqa: E402  (this folder: the script's own)

from birdseg.defaults import RUNTIMES  # noqa: E402  (no TensorFlow: the peer's process imports this file too)


def prepare(runtime, shape, folder):
    """A random-init U-Net at `shape` saved in `folder` and converted for `runtime` (in its own process: the
    conversion's memory is not the predicting process's); returns the conversion's seconds."""
    from birdseg.layout import MODEL_FILE
    from birdseg.model import build_model
    from birdseg.recipe import SCRATCH
    from birdseg.runtimes import RuntimeMismatch, cache_dir, convert, load_predictor, refusal_file

    height, width, _ = shape
    model, _ = build_model(SCRATCH.override(image_height=height, image_width=width), None)
    model.save(Path(folder) / MODEL_FILE)
    start = time.perf_counter()
    try:
        load_predictor(folder, runtime)
    except RuntimeMismatch:  # bfloat16 flips the masks of a random-init model (probabilities near 0.5): time it anyway
        refusal_file(folder, runtime).unlink()
        convert(model, runtime, cache_dir(folder, runtime))
    return {"convert_s": time.perf_counter() - start}


def worker_ours(runtime, shape, folder, warmup, repeats):
    """Per-image time of the model in `folder` run by `runtime` (its conversion cached there by `prepare`)."""
    import numpy as np

    from birdseg.runtimes import load_predictor

    height, width, batch = shape
    start = time.perf_counter()
    predictor = load_predictor(folder, runtime)
    load_s = time.perf_counter() - start
    images = np.random.default_rng(0).random((batch, height, width, 3), dtype=np.float32)
    return {"infer_s": timed(lambda: predictor.predict_on_batch(images), warmup, repeats)[0] / batch,
            "load_s": load_s}


def worker_peer(shape, threads, warmup, repeats):
    import numpy as np
    import segmentation_models_pytorch as smp
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    height, width, batch = shape
    model = smp.Unet("efficientnet-b3", encoder_weights=None, classes=1, activation=None).eval()
    images = torch.from_numpy(np.random.default_rng(0).random((batch, 3, height, width), dtype=np.float32))

    def call():
        with torch.inference_mode():
            torch.sigmoid(model(images))

    return {"infer_s": timed(call, warmup, repeats)[0] / batch, "load_s": 0.0}


def run_worker(args, kind, shape, *extra):
    python = args.peer_python if kind == "peer" else sys.executable
    command = [python, __file__, "--worker", kind, "--shape", shape, "--threads", str(args.threads),
               "--warmup", str(args.warmup), "--repeats", str(args.repeats), *extra]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if completed.returncode:
        raise RuntimeError(f"{kind} {shape} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure(args, kind, shape):
    """One runtime (or the peer) at one shape: converted in one process, timed in another."""
    if kind == "peer":
        return run_worker(args, kind, shape)
    with tempfile.TemporaryDirectory(prefix="runtime-bench-") as folder:
        converted = run_worker(args, kind, shape, "--folder", folder, "--prepare")
        return {**run_worker(args, kind, shape, "--folder", folder), "convert_s": converted["convert_s"],
                "convert_peak_rss_mb": converted["peak_rss_mb"]}


def make_inputs(folder, photos, frames):
    """`photos` drawn photos (the synthetic test drawings of another seed, at their own sizes) and one video of
    `frames` frames of 640x360."""
    import cv2

    from birdseg import synthetic
    from birdseg.randomised import STYLES

    (folder / "photos").mkdir(parents=True)
    for index in range(photos):
        image, _ = synthetic.drawing(11, 2, index, STYLES["mixed"])
        (folder / "photos" / f"photo_{index:04d}.jpg").write_bytes(synthetic.encode(image, "JPEG", quality=90))
    writer = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 360))
    for index in range(frames):
        image, _ = synthetic.drawing(11, 2, index % 20, STYLES["sky"], resolution=(640, 360))
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()


def end_to_end(model, inputs, runtime, cwd, out):
    """Seconds and peak memory of one `predict` command; the runtime's conversion is made beforehand."""
    command = [sys.executable, "-m", "birdseg_utils", "predict", "--model", str(model), "--input", str(inputs),
               "--out", str(out), "--quiet", "--overwrite"]
    if runtime:
        command += ["--runtime", runtime]
    start = time.perf_counter()
    completed = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - start
    if completed.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    return {"seconds": seconds, "peak_rss_mb": int(completed.stderr.strip().splitlines()[-1]) / 1024}


def agreement(model_path, data, runtimes):
    """Share of pixels whose mask each runtime gives as Keras does, and each runtime's IoU with Keras' masks."""
    import numpy as np

    from birdseg.metrics import confusion_counts, scores_from_counts
    from birdseg.pairs import find_pairs
    from birdseg.predict import predict_pairs
    from birdseg.runtimes import load_predictor

    pairs = find_pairs(Path(data) / "test")
    masks = {name: [probability > 0.5 for *_, probability in predict_pairs(load_predictor(model_path, name), pairs)]
             for name in ("keras", *runtimes)}
    result = {}
    for name in runtimes:
        equal = np.mean([np.mean(a == b) for a, b in zip(masks["keras"], masks[name])])
        counts = np.sum([confusion_counts(a, b)[:3] for a, b in zip(masks["keras"], masks[name])], axis=0)
        result[name] = {"pixels_equal": float(equal), "iou_with_keras": scores_from_counts(*counts)["iou"]}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a trained run folder, for the end-to-end and agreement parts")
    parser.add_argument("--peer-python", help="the peer's venv interpreter (requirements-bench.txt)")
    parser.add_argument("--shapes", nargs="*", default=["384x640x1", "128x192x1", "128x192x8"],
                        help="HxWxBATCH of each per-image measurement (none: end to end only)")
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--baseline-repo", help="another checkout whose `predict` is timed the same way")
    parser.add_argument("--data", default=str(ROOT / "birds_splitted"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "runtimes.json"))
    parser.add_argument("--worker", choices=(*RUNTIMES, "peer"), help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        shape = tuple(int(value) for value in args.shape.split("x"))
        if args.worker == "peer":
            result = worker_peer(shape, args.threads, args.warmup, args.repeats)
        elif args.prepare:
            result = prepare(args.worker, shape, args.folder)
        else:
            result = worker_ours(args.worker, shape, args.folder, args.warmup, args.repeats)
        print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))
        return 0

    report = {"command": " ".join(sys.argv), "per_image": [], "end_to_end": [], "agreement": None}
    kinds = [*args.runtimes, *(["peer"] if args.peer_python else [])]
    for shape in args.shapes:
        row = {"shape": shape, **{kind: measure(args, kind, shape) for kind in kinds}}
        report["per_image"].append(row)
        print(shape, "  ".join(f"{kind} {row[kind]['infer_s']:.4f} s {row[kind]['peak_rss_mb']:.0f} MB"
                               for kind in kinds), flush=True)
    if args.model:
        with tempfile.TemporaryDirectory(prefix="runtime-e2e-") as tmp:
            tmp = Path(tmp)
            make_inputs(tmp / "inputs", args.photos, args.frames)
            for inputs in (tmp / "inputs" / "photos", tmp / "inputs" / "clip.mp4"):
                for runtime in args.runtimes:
                    subprocess.run([sys.executable, "-c", "import sys; from birdseg.runtimes import load_predictor; "
                                    "load_predictor(sys.argv[1], sys.argv[2])", str(args.model), runtime],
                                   cwd=ROOT, check=True, capture_output=True)  # the conversion, made once, apart
                    row = {"input": inputs.name, "runtime": runtime,
                           **end_to_end(args.model, inputs, runtime, ROOT, tmp / runtime)}
                    report["end_to_end"].append(row)
                    print(row, flush=True)
                if args.baseline_repo:
                    row = {"input": inputs.name, "runtime": "baseline",
                           **end_to_end(Path(args.model).resolve(), inputs, None, args.baseline_repo, tmp / "base")}
                    report["end_to_end"].append(row)
                    print(row, flush=True)
        report["agreement"] = agreement(args.model, args.data, [name for name in args.runtimes if name != "keras"])
        print(report["agreement"], flush=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
