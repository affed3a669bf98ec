"""Where a process's memory goes: peak resident memory after imports, building, inference and training steps.

    python benchmarks/memory_stages.py ours                   # our U-Net, 384x640, batch 1
    .peer/bin/python benchmarks/memory_stages.py peer         # segmentation_models.pytorch, same stages
    python benchmarks/memory_stages.py ours --batch 4

Peak RSS is what the operating system charges; comparing the stages of the two frameworks tells whether a
difference comes from the libraries, the model, inference or the training step's working set. For the peer
it also counts the bytes autograd saves for the first step's backward pass (unique storages); for ours,
`profile_step.py --memory` gives the same from TensorFlow's allocator.
"""
import argparse
import json
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def stages_ours(height, width, batch, stages):
    sys.path.insert(0, str(ROOT))
    import numpy as np

    import birdseg  # noqa: F401  (environment for segmentation_models)
    from birdseg.devices import set_seed
    from birdseg.model import build_model, compile_model
    from birdseg.recipe import PRETRAINED

    stages["imports"] = peak_mb()
    set_seed(0)
    model, _ = build_model(PRETRAINED.override(image_height=height, image_width=width))
    compile_model(model, PRETRAINED.learning_rate, PRETRAINED.loss)
    stages["model built"] = peak_mb()
    rng = np.random.default_rng(0)
    x = rng.random((batch, height, width, 3), dtype=np.float32)
    y = (rng.random((batch, height, width, 1)) > 0.9).astype(np.float32)
    model.predict_on_batch(x)
    stages["after inference"] = peak_mb()
    for step in range(4):
        model.train_on_batch(x, y)
        if step == 0:
            stages["after 1 training step"] = peak_mb()
    stages["after 4 training steps"] = peak_mb()


def stages_peer(height, width, batch, stages):
    import segmentation_models_pytorch as smp
    import torch

    torch.set_num_threads(2)
    stages["imports"] = peak_mb()
    model = smp.Unet("efficientnet-b3", encoder_weights=None, classes=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    stages["model built"] = peak_mb()
    x = torch.rand(batch, 3, height, width)
    y = (torch.rand(batch, 1, height, width) > 0.9).float()
    model.eval()
    with torch.inference_mode():
        model(x)
    stages["after inference"] = peak_mb()
    model.train()
    saved = {}  # storage -> bytes of what autograd keeps for the backward pass (counted once per storage)

    def keep(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    for step in range(4):
        optimizer.zero_grad()
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
            prediction = model(x)
        torch.nn.functional.binary_cross_entropy_with_logits(prediction, y).backward()
        optimizer.step()
        if step == 0:
            stages["after 1 training step"] = peak_mb()
            stages["saved for backward (10^6 bytes, not RSS)"] = round(sum(saved.values()) / 1e6)
    stages["after 4 training steps"] = peak_mb()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=("ours", "peer"))
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    stages = {}
    (stages_ours if args.framework == "ours" else stages_peer)(args.height, args.width, args.batch, stages)
    print(args.framework, json.dumps(stages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
