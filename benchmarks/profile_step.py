"""Where a training step's time goes: TensorFlow's profiler over a few steps, summed by op type.

    python benchmarks/profile_step.py                       # 384x640, batch 1
    python benchmarks/profile_step.py --shape 192x320x4 --steps 10

Builds our U-Net (random init), takes a few warm-up steps, profiles --steps training steps and prints the
share of device time per op type (self time), grouped into the families that matter for this network
(convolutions and their gradients, depthwise convolutions, BatchNorm, activations, ...). Also prints the
first step's time (tracing + Grappler) and the steady step, and writes the table as JSON with --out.
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

FAMILIES = (  # first match wins, on the op type
    ("depthwise conv gradients", ("DepthwiseConv2dNativeBackprop",)),
    ("depthwise conv", ("DepthwiseConv2dNative",)),
    ("conv gradients", ("Conv2DBackprop", "_MklConv2DBackprop", "_MklNativeConv2DBackprop")),
    ("conv (forward, fused)", ("Conv2D", "_FusedConv2D", "_MklConv2D", "_MklNativeConv2D", "_MklFusedConv2D",
                               "_MklNativeFusedConv2D")),
    ("BatchNorm", ("FusedBatchNorm", "_MklFusedBatchNorm", "_MklNativeFusedBatchNorm")),
    ("activations (swish, sigmoid, relu) and grads", ("Sigmoid", "Relu", "Swish", "_MklSwish", "Elu")),
    ("up-sampling and concat", ("ResizeNearestNeighbor", "ResizeBilinear", "ConcatV2", "_MklConcat")),
    ("optimizer (Adam)", ("ResourceApplyAdam", "AssignVariableOp", "AssignSubVariableOp", "AssignAddVariableOp")),
    ("reductions (SE blocks, loss, metrics)", ("Mean", "Sum", "Max", "Prod")),
)


def family(op_type):
    for name, prefixes in FAMILIES:
        if any(op_type.startswith(prefix) for prefix in prefixes):
            return name
    return "element-wise and other"


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="384x640x1", help="HxWxBATCH")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", help="write the table as JSON here")
    args = parser.parse_args()
    height, width, batch = (int(v) for v in args.shape.split("x"))

    import numpy as np
    import tensorflow as tf

    from birdseg.model import build_model, compile_model

    model, _ = build_model(height, width, encoder_weights=None)
    compile_model(model)
    rng = np.random.default_rng(0)
    x = rng.random((batch, height, width, 3), dtype=np.float32)
    y = (rng.random((batch, height, width, 1)) > 0.9).astype(np.float32)
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
    total = sum(us for _, us in stats)
    by_family = defaultdict(float)
    for op_type, us in stats:
        by_family[family(op_type)] += us
    print(f"{args.shape}: first step {first:.1f} s, steady step {steady:.3f} s; op time per step "
          f"{total / args.steps / 1e6:.3f} s (the rest of the step is host-side Keras and Python)")
    print("\n| op family | share of op time | ms per step |\n|---|---|---|")
    for name, us in sorted(by_family.items(), key=lambda item: -item[1]):
        print(f"| {name} | {100 * us / total:.1f} % | {us / args.steps / 1000:.0f} |")
    print("\n| op type (top 15) | share | ms per step |\n|---|---|---|")
    for op_type, us in stats[:15]:
        print(f"| {op_type} | {100 * us / total:.1f} % | {us / args.steps / 1000:.0f} |")
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
