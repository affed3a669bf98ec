"""Where a model fails: scores on synthetic drawings grouped by what each drawing shows.

The generator says what it drew (`notes` of `synthetic.synthetic_sample` and `randomised.randomised_sample`:
style, scene, layout, distractors, occluded birds); the bird's share of the frame and its contrast against what
surrounds it are measured on the drawing itself. Each group's score pools the pixels of its images, as the test
IoU does, beside the mean per-image IoU of its images that have a bird.
"""
from collections import defaultdict

import cv2
import numpy as np

from birdseg.metrics import scores_from_counts

SHARE_BINS = ((0.005, "under 0.5 %"), (0.03, "0.5-3 %"), (0.10, "3-10 %"), (np.inf, "10 % or more"))
CONTRAST_BINS = ((10.0, "faint (dE < 10)"), (25.0, "moderate (dE 10-25)"), (np.inf, "clear (dE 25 or more)"))
RING = 0.5  # the surround a bird's contrast is measured against: this share of its size (the square root of its area)
ATTRIBUTES = ("style", "scene", "layout", "bird share", "contrast", "occluded", "distractors")


def bin_label(value, bins):
    """The label of the first (upper bound, label) in `bins` that `value` lies below."""
    return next(label for bound, label in bins if value < bound)


def bird_contrast(image, mask):
    """How far the bird's colour is from its surround: the CIE Lab distance (delta E, 1976) between the mean colour
    of the bird pixels and that of a ring of background around them, RING times the birds' size wide. None without
    a bird pixel, or without background around it."""
    bird = np.asarray(mask).astype(bool)
    if not bird.any():
        return None
    width = max(2, int(round(RING * np.sqrt(bird.sum()))))
    ring = cv2.dilate(bird.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1,) * 2))
    ring = ring.astype(bool) & ~bird
    if not ring.any():
        return None
    lab = cv2.cvtColor(np.asarray(image, np.float32) / 255, cv2.COLOR_RGB2LAB)
    return float(np.linalg.norm(lab[bird].mean(axis=0) - lab[ring].mean(axis=0)))


def scene_group(scene):
    """A scene's group: its kind, or for two scenes the one below the horizon ("water below a horizon"), where the
    birds stand or swim."""
    above, _, below = scene.rpartition(" over ")
    return f"{below} below a horizon" if above else scene


def drawing_attributes(image, mask, notes):
    """{attribute: group label} of one drawing, for every name in ATTRIBUTES. `notes` is what the generator said
    it drew; `mask` is the drawing's {0, 255} or boolean mask."""
    bird = np.asarray(mask).astype(bool)
    contrast = bird_contrast(image, bird)
    return {
        "style": notes["style"],
        "scene": scene_group(notes["scene"]),
        "layout": notes["layout"],
        "bird share": "no bird" if not bird.any() else bin_label(bird.mean(), SHARE_BINS),
        "contrast": "no bird" if contrast is None else bin_label(contrast, CONTRAST_BINS),
        "occluded": "a bird partly hidden" if notes["occluded"] else "none hidden",
        "distractors": {0: "none", 1: "one"}.get(notes["distractors"], "two or more"),
    }


def grouped_scores(rows, attribute):
    """Scores per value of `attribute` over rows of {"attributes": {...}, "counts": (tp, fp, fn)}: a list of
    {"group", "images", "share" (of all rows), "pooled_iou", "mean_image_iou" (over its images with a bird; None
    when it has none), "pixels" (share of all bird pixels)}, largest groups first."""
    groups = defaultdict(list)
    for row in rows:
        groups[row["attributes"][attribute]].append(row)
    all_bird_pixels = sum(row["counts"][0] + row["counts"][2] for row in rows)
    table = []
    for value, members in groups.items():
        tp, fp, fn = np.sum([member["counts"] for member in members], axis=0)
        with_bird = [scores_from_counts(*member["counts"])["iou"] for member in members
                     if member["counts"][0] + member["counts"][2]]
        table.append({
            "group": value,
            "images": len(members),
            "share": len(members) / len(rows),
            "pooled_iou": scores_from_counts(tp, fp, fn)["iou"],
            "mean_image_iou": float(np.mean(with_bird)) if with_bird else None,
            "pixels": float((tp + fn) / all_bird_pixels) if all_bird_pixels else 0.0,
        })
    return sorted(table, key=lambda entry: (-entry["images"], entry["group"]))


def breakdown_table(rows, attributes=ATTRIBUTES):
    """The grouped scores of every attribute as plain text, one block per attribute."""
    lines = []
    for attribute in attributes:
        lines.append(f"{attribute:<28} {'images':>6} {'bird px':>8} {'pooled IoU':>10} {'per image':>9}")
        for entry in grouped_scores(rows, attribute):
            per_image = "-" if entry["mean_image_iou"] is None else f"{entry['mean_image_iou']:.3f}"
            lines.append(f"  {entry['group'][:26]:<26} {entry['images']:>6} {entry['pixels']:>8.1%} "
                         f"{entry['pooled_iou']:>10.3f} {per_image:>9}")
        lines.append("")
    return "\n".join(lines)
