"""Where a training step's time goes: TensorFlow's profiler over a few steps, summed by op type.

    python benchmarks/profile_step.py                       # 384x640, batch 1
    python benchmarks/profile_step.py --shape 192x320x4 --steps 10
    python benchmarks/profile_step.py --grappler '{"disable_meta_optimizer": true}'   # Grappler's share
    python benchmarks/profile_step.py --trace-parts         # what the first step's seconds are made of
    python benchmarks/profile_step.py --memory              # which tensors are live at the step's memory peak
    python benchmarks/profile_step.py --inference           # where an inference call's time goes

Builds our U-Net (random init), takes a few warm-up steps, profiles --steps training steps and prints the
share of device time per op type (self time), grouped into the families that matter for this network
(convolutions and their gradients, depthwise convolutions, BatchNorm, activations, ...). Also prints the
first step's time (tracing + Grappler) and the steady step, and writes the table as JSON with --out.
With --memory it also reads the profiler's memory profile of the CPU allocator: the bytes in use at a step's
start, after its forward pass and at its peak, and the tensors live at the peak, summed by the op that made
them and by encoder / decoder. With --inference it profiles --steps `predict_on_batch` calls the same way.
"""
import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAMILIES = (  # first match wins, on a part of the op type (oneDNN's ops are named _MklNative<op>)
    ("depthwise conv gradients", ("DepthwiseConv2dNativeBackprop",)),
    ("depthwise conv", ("DepthwiseConv2dNative",)),
    ("conv gradients", ("Conv2DBackprop",)),
    ("conv (forward, fused)", ("Conv2D",)),
    ("BatchNorm", ("BatchNorm",)),
    ("activations (swish, sigmoid, relu) and grads", ("Sigmoid", "Relu", "Swish", "Elu", "Tanh")),
    ("up-sampling and concat", ("Resize", "Concat")),
    ("optimizer (Adam)", ("ApplyAdam", "AssignVariableOp", "AssignSubVariableOp", "AssignAddVariableOp")),
    ("reductions (SE blocks, BatchNorm statistics, loss, metrics)", ("Mean", "Sum", "Max", "Prod")),
)


def family(op_type):
    for name, parts in FAMILIES:
        if any(part in op_type for part in parts):
            return name
    return "element-wise (Mul, Sub, AddN, Tile, ...) and other"


def op_stats(logdir):
    """[(op type, self time in us)] from the profile in `logdir`, via the profiler's framework_op_stats tool."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    xspaces = sorted(str(p) for p in Path(logdir).rglob("*.xplane.pb"))
    raw, _ = plugin.xspace_to_tools_data(xspaces, "framework_op_stats", {})
    tables = json.loads(raw)
    table = tables[0] if isinstance(tables, list) else tables
    columns = [column["id"] for column in table["cols"]]
    totals = defaultdict(float)
    for row in table["rows"]:
        values = dict(zip(columns, (cell.get("v") if cell else None for cell in row["c"])))
        if values.get("host_or_device") == "Host" and values.get("type") not in (None, "IDLE"):
            totals[values["type"]] += float(values["total_self_time"])
    return sorted(totals.items(), key=lambda item: -item[1])


def memory_profile(logdir):
    """The memory profile in `logdir`: {"start", "after_forward", "peak"} bytes in use by the CPU allocator, and
    {(part, op): bytes} of the tensors live at the peak."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    xspaces = sorted(str(p) for p in Path(logdir).rglob("*.xplane.pb"))
    raw, _ = plugin.xspace_to_tools_data(xspaces, "memory_profile", {})
    allocator = json.loads(raw)["memoryProfilePerAllocator"]
    profile = allocator.get("mklcpu") or next(iter(allocator.values()))
    snapshots = profile["memoryProfileSnapshots"]
    in_time = sorted(snapshots, key=lambda snapshot: int(snapshot["timeOffsetPs"]))
    heap = [int(snapshot["aggregationStats"]["heapAllocatedBytes"]) for snapshot in in_time]
    first_gradient = next(i for i, snapshot in enumerate(in_time)
                          if "gradient" in snapshot["activityMetadata"].get("tfOpName", ""))
    sizes = {"start": heap[0] - int(in_time[0]["activityMetadata"].get("allocationBytes", 0)),
             "after_forward": heap[first_gradient - 1],
             "peak": int(profile["profileSummary"]["peakStats"]["peakBytesInUse"])}
    live = defaultdict(int)
    for allocation in profile["activeAllocations"]:
        index = int(allocation.get("snapshotIndex", -1))
        if index < 0:  # allocations made before the profile started
            continue
        activity = snapshots[index]["activityMetadata"]
        name = activity.get("tfOpName", "")
        part = "decoder" if "decoder" in name or "final" in name else "encoder" if "block" in name or "stem" in name \
            or "top_" in name else "other"
        op = name.rsplit("/", 1)[-1].split("_")[0] or "?"
        live[(part, op)] += int(activity["allocationBytes"]) * int(allocation.get("numOccurrences", 1))
    return sizes, dict(live)


def print_families(stats, calls):
    """Op time per call by family and by op type (top 15), as Markdown tables."""
    total = sum(us for _, us in stats)
    by_family = defaultdict(float)
    for op_type, us in stats:
        by_family[family(op_type)] += us
    print("\n| op family | share of op time | ms per call |\n|---|---|---|")
    for name, us in sorted(by_family.items(), key=lambda item: -item[1]):
        print(f"| {name} | {100 * us / total:.1f} % | {us / calls / 1000:.0f} |")
    print("\n| op type (top 15) | share | ms per call |\n|---|---|---|")
    for op_type, us in stats[:15]:
        print(f"| {op_type} | {100 * us / total:.1f} % | {us / calls / 1000:.1f} |")
    return by_family


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="384x640x1", help="HxWxBATCH")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--grappler", help="tf.config.optimizer.set_experimental_options, as JSON")
    parser.add_argument("--trace-parts", action="store_true",
                        help="also time tracing the forward pass and forward + backward + Adam on their own "
                             "(the first step's time is then not comparable)")
    parser.add_argument("--memory", action="store_true", help="also the tensors live at one step's memory peak")
    parser.add_argument("--inference", action="store_true", help="also profile inference (predict_on_batch)")
    parser.add_argument("--out", help="write the table as JSON here")
    args = parser.parse_args()
    height, width, batch = (int(v) for v in args.shape.split("x"))

    import numpy as np
    import tensorflow as tf

    from birdseg.devices import set_seed
    from birdseg.model import bce_jaccard_loss, build_model, compile_model
    from birdseg.recipe import PRETRAINED

    if args.grappler:
        tf.config.optimizer.set_experimental_options(json.loads(args.grappler))
    set_seed(0)  # as the notebook: op determinism on
    model, _ = build_model(PRETRAINED.override(image_height=height, image_width=width))
    compile_model(model, PRETRAINED.learning_rate, PRETRAINED.loss)
    rng = np.random.default_rng(0)
    x = rng.random((batch, height, width, 3), dtype=np.float32)
    y = (rng.random((batch, height, width, 1)) > 0.9).astype(np.float32)
    if args.trace_parts:
        def step(images, masks):
            with tf.GradientTape() as tape:
                loss = bce_jaccard_loss(masks, model(images, training=True))
            model.optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
            return loss

        specs = (tf.TensorSpec(x.shape), tf.TensorSpec(y.shape))
        for name, function, spec in (("forward", tf.function(lambda images: model(images, training=True)), specs[:1]),
                                     ("forward + backward + Adam", tf.function(step), specs)):
            start = time.perf_counter()
            function.get_concrete_function(*spec)
            print(f"tracing {name}: {time.perf_counter() - start:.1f} s", flush=True)
    start = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - start
    for _ in range(args.warmup - 1):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    steady = (time.perf_counter() - start) / args.steps
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        tf.profiler.experimental.stop()
        stats = op_stats(logdir)
    if args.memory:
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            model.train_on_batch(x, y)
            tf.profiler.experimental.stop()
            sizes, live = memory_profile(logdir)
        print(f"memory: {sizes['start'] / 1e6:.0f} MB of tensors in use at the step's start (weights, Adam's slots), "
              f"{sizes['after_forward'] / 1e6:.0f} MB after the forward pass, peak {sizes['peak'] / 1e6:.0f} MB; "
              f"live at the peak {sum(live.values()) / 1e6:.0f} MB made during the step")
        for part in ("encoder", "decoder", "other"):
            print(f"  {part}: {sum(v for (p, _), v in live.items() if p == part) / 1e6:.0f} MB")
        print("\n| made by (part, op) | MB live at the peak |\n|---|---|")
        for (part, op), size in sorted(live.items(), key=lambda item: -item[1])[:12]:
            print(f"| {part}, {op} | {size / 1e6:.0f} |")
    if args.inference:
        for _ in range(args.warmup):
            model.predict_on_batch(x)
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            for _ in range(args.steps):
                model.predict_on_batch(x)
            tf.profiler.experimental.stop()
            inference = op_stats(logdir)
        print(f"\ninference (predict_on_batch): op time per call "
              f"{sum(us for _, us in inference) / args.steps / 1e6:.3f} s")
        print_families(inference, args.steps)
    total = sum(us for _, us in stats)
    print(f"\n{args.shape}, Grappler {args.grappler or 'default'}: first step {first:.1f} s, steady step "
          f"{steady:.3f} s; op time per step {total / args.steps / 1e6:.3f} s (summed over both threads, so it can "
          "exceed the step)")
    by_family = print_families(stats, args.steps)
    if args.out:
        Path(args.out).write_text(json.dumps({
            "shape": args.shape, "first_step_s": first, "steady_step_s": steady,
            "op_seconds_per_step": total / args.steps / 1e6,
            "families_ms_per_step": {k: v / args.steps / 1000 for k, v in by_family.items()},
            "op_types_ms_per_step": {k: v / args.steps / 1000 for k, v in stats},
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
