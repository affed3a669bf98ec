"""SYNTHETIC bird images for the embedded default dataset `birds_splitted.zip`.

No public bird dataset may be redistributed with this project, so the default data is drawn by this
module: sky backgrounds (gradients, clouds, haze, sometimes a dark horizon, sensor noise) with zero
to many birds built from body, head, neck, wings and tail in flapping and gliding poses, sizes from a
few pixels to a third of the frame, some with motion blur, at mixed source resolutions. Everything is
deterministic from the seed. The masks are exact: they come from the drawn shapes, before blur.

It proves the pipeline; it is not a substitute for real photos (see `make-dataset` for those).
"""
import io
import re
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from birdseg.errors import DatasetError
from birdseg.files import atomic_path

# More training images win within the budget; 24 validation and test images keep the kept epoch and the test score
# from resting on a few images (benchmarks/README.md).
DEFAULT_COUNTS = {"train": 256, "val": 24, "test": 24}
DEFAULT_SEED = 2026
JPEG_QUALITY = 85  # keeps the embedded zip under the repository's 20 MB per file
# (width, height) of the simulated cameras: resizing to the model's size always has work to do.
RESOLUTIONS = ((640, 384), (720, 480), (854, 480), (800, 600), (960, 640), (1024, 576), (1280, 720), (600, 800))
SKY_PALETTES = {  # (top colour, horizon colour) in RGB
    "clear": ((40, 95, 180), (165, 200, 235)),
    "deep": ((20, 60, 140), (120, 170, 225)),
    "overcast": ((150, 155, 165), (205, 208, 212)),
    "dusk": ((60, 70, 130), (245, 160, 110)),
    "haze": ((150, 180, 210), (225, 230, 232)),
}
BIRD_COLOURS = {  # (body, wing, wing tip)
    "silhouette": ((25, 22, 22), (35, 30, 30), (20, 18, 18)),
    "gull": ((235, 235, 232), (170, 175, 180), (30, 30, 30)),
    "brown": ((95, 70, 50), (120, 95, 70), (60, 45, 35)),
    "grey": ((110, 110, 115), (85, 88, 95), (50, 50, 55)),
}
SUPERSAMPLE = 4
NOTE_FILE = "SYNTHETIC.txt"  # in the dataset's top folder: which generator, seed and style drew it
SYNTHETIC_NOTE = (
    "SYNTHETIC DATA. Every image here was drawn by {generator} (seed {seed}); none is a photo.\n"
    "Regenerate: python -m birdseg_utils make-synthetic --out birds_splitted --zip --style {style}\n"
)


# ---------------------------------------------------------------- backgrounds


def fractal_noise(height, width, rng, octaves=5, base=4):
    """Smooth value noise in [0, 1] (sum of up-sampled random grids), used for clouds."""
    total = np.zeros((height, width), np.float32)
    amplitude, weight = 1.0, 0.0
    for octave in range(octaves):
        cells = base * 2**octave
        grid = rng.random((cells, max(2, int(cells * width / height)))).astype(np.float32)
        total += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        weight += amplitude
        amplitude *= 0.5
    total /= weight
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


def sky_background(height, width, rng):
    """A sky: a gradient from one of SKY_PALETTES, tilted, with fractal clouds over part of it (float RGB)."""
    top, horizon = (np.array(c, np.float32) for c in SKY_PALETTES[rng.choice(list(SKY_PALETTES))])
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    tilt = rng.uniform(-0.15, 0.15) * np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    t = np.clip(rows ** rng.uniform(0.6, 1.6) + tilt, 0, 1)[..., None]
    sky = top * (1 - t) + horizon * t
    coverage = rng.uniform(0.0, 0.8)
    if coverage > 0.1:
        shape, detail = fractal_noise(height, width, rng), fractal_noise(height, width, rng, octaves=6, base=8)
        ramp = np.clip((shape - (1 - coverage)) / 0.35, 0, 1)
        alpha = (ramp * ramp * (3 - 2 * ramp))[..., None] * rng.uniform(0.6, 0.95)  # smoothstep: soft edges
        brightness = rng.uniform(200, 250) - rng.uniform(20, 70) * (1 - detail)  # shaded cloud bodies
        sky = sky * (1 - alpha) + brightness[..., None] * alpha
    if rng.random() < 0.25:
        sky = add_horizon(sky, rng)
    haze = rng.uniform(0, 0.35) * t
    sky = sky * (1 - haze) + np.array([225, 228, 232], np.float32) * haze
    return sky


def add_horizon(sky, rng):
    """A dark tree line or hills along the bottom: dark pixels that are not birds."""
    height, width, _ = sky.shape
    xs = np.arange(width)
    profile = height * (1 - rng.uniform(0.05, 0.2)) + height * 0.04 * np.sin(xs / width * rng.uniform(3, 12) + rng.uniform(0, 6))
    profile += (fractal_noise(1 + 1, width, rng, octaves=4, base=8)[0] - 0.5) * height * 0.06
    ground = np.arange(height)[:, None] > profile[None, :]
    colour = np.array(rng.uniform(15, 60, 3), np.float32)
    sky[ground] = colour
    return sky


# ---------------------------------------------------------------- birds


def bird_polygons(length, rng):
    """Polygons (name, Nx2 float array, colour key) of one bird in its own frame: flying along +x."""
    pose = rng.choice(["glide", "upstroke", "downstroke", "side"])
    span = length * rng.uniform(0.9, 1.7)  # one wing, shoulder to tip
    body_w = length * rng.uniform(0.16, 0.26)
    parts = [
        ("body", ellipse(0, 0, length / 2, body_w / 2), "body"),
        ("head", ellipse(length * 0.55, 0, length * 0.11, length * 0.1), "body"),
        ("neck", np.array([[length * 0.3, -body_w * 0.3], [length * 0.5, -length * 0.06],
                            [length * 0.5, length * 0.06], [length * 0.3, body_w * 0.3]]), "body"),
        ("beak", np.array([[length * 0.64, -length * 0.03], [length * 0.78, 0], [length * 0.64, length * 0.03]]), "tip"),
        ("tail", np.array([[-length * 0.4, -body_w * 0.3], [-length * rng.uniform(0.65, 0.8), -length * 0.14],
                           [-length * rng.uniform(0.6, 0.75), 0], [-length * rng.uniform(0.65, 0.8), length * 0.14],
                           [-length * 0.4, body_w * 0.3]]), "wing"),
    ]
    reach = {"glide": 1.0, "upstroke": rng.uniform(0.35, 0.7), "downstroke": rng.uniform(0.6, 0.9), "side": 1.0}[pose]
    sweep = {"glide": rng.uniform(-0.1, 0.25), "upstroke": 0.35, "downstroke": -0.1, "side": 0.3}[pose]
    chord = length * rng.uniform(0.22, 0.35)
    sides = (1, 1) if pose == "side" else (1, -1)
    for index, side in enumerate(sides):
        wing_span = span * reach * (rng.uniform(0.55, 0.8) if pose == "side" and index else 1.0)
        wrist = (length * (0.1 - sweep * 0.3), side * (body_w / 2 + wing_span * 0.45))
        tip = (-length * sweep, side * (body_w / 2 + wing_span))
        wing = np.array([
            [length * 0.18, side * body_w * 0.3], wrist, tip,
            [tip[0] - chord * 0.3, tip[1] - side * wing_span * 0.08],
            [wrist[0] - chord, wrist[1] - side * wing_span * 0.05],
            [-length * 0.12, side * body_w * 0.3],
        ])
        parts.append(("wing", wing, "wing"))
        parts.append(("wing tip", np.array([tip, wing[3], [tip[0] + chord * 0.1, tip[1] - side * wing_span * 0.2]]), "tip"))
    return parts


def ellipse(cx, cy, rx, ry, points=24):
    """Polygon points of an ellipse centred at (cx, cy)."""
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


def draw_bird(canvas, alpha, centre, length, angle, rng):
    """Draw one bird into the float RGB `canvas` and the coverage map `alpha` (both at SUPERSAMPLE scale)."""
    colours = BIRD_COLOURS[rng.choice(list(BIRD_COLOURS), p=[0.55, 0.15, 0.15, 0.15])]
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    flip = np.array([1, rng.choice([-1, 1])])  # mirror image: banking left or right
    shade = rng.uniform(0.85, 1.15)
    for _, polygon, colour_key in bird_polygons(length, rng):
        points = (polygon * flip) @ rotation.T + centre
        points = np.round(points * SUPERSAMPLE).astype(np.int32)
        colour = np.clip(np.array(colours[{"body": 0, "wing": 1, "tip": 2}[colour_key]]) * shade, 0, 255)
        cv2.fillPoly(canvas, [points], colour.tolist(), lineType=cv2.LINE_8)
        cv2.fillPoly(alpha, [points], 1.0, lineType=cv2.LINE_8)


def motion_blur(image, length, angle):
    """`image` blurred along a line of `length` pixels at `angle` radians, as a moving bird or camera does."""
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), np.degrees(angle), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))


def bird_layout(height, width, rng, notes=None):
    """(centre, length) of each bird: none, one, a few, or a flock of small ones (the kind goes into `notes`)."""
    kind = rng.choice(["none", "one", "few", "flock"], p=[0.1, 0.45, 0.3, 0.15])
    if notes is not None:
        notes["layout"] = str(kind)
    if kind == "none":
        return []
    short_side = min(height, width)
    if kind == "flock":
        count = int(rng.integers(6, 16))
        centre = np.array([rng.uniform(0.25, 0.75) * width, rng.uniform(0.2, 0.7) * height])
        spread = rng.uniform(0.1, 0.3) * short_side
        length = rng.uniform(4, 0.05 * short_side + 6)
        return [(centre + rng.normal(0, spread, 2), length * rng.uniform(0.7, 1.3)) for _ in range(count)]
    count = 1 if kind == "one" else int(rng.integers(2, 6))
    # Body length from a few pixels to a wingspan of about a third of the frame, skewed towards large.
    low, high = np.log(4), np.log(width / 7.5)
    lengths = np.exp(low + (high - low) * rng.random(count) ** 0.4)
    margin = 0.05 * np.array([width, height])
    return [(rng.uniform(margin, [width, height] - margin), float(length)) for length in lengths]


def synthetic_sample(rng, resolution=None, notes=None):
    """One (image uint8 HxWx3, mask uint8 HxW {0, 255}) pair. `notes`, a dict if given, receives what was drawn
    (style, scene, layout, distractors, occluded birds: `breakdown.drawing_attributes` reads them); the drawing
    is the same either way."""
    width, height = resolution or RESOLUTIONS[rng.integers(len(RESOLUTIONS))]
    image = sky_background(height, width, rng)
    mask = np.zeros((height, width), np.uint8)
    if notes is not None:
        notes.update(style="sky", scene="sky", distractors=0, occluded=0)
    for centre, length in bird_layout(height, width, rng, notes):
        angle = rng.uniform(-0.6, 0.6) + (np.pi if rng.random() < 0.5 else 0.0)
        canvas = np.zeros((height * SUPERSAMPLE, width * SUPERSAMPLE, 3), np.float32)
        alpha = np.zeros((height * SUPERSAMPLE, width * SUPERSAMPLE), np.float32)
        draw_bird(canvas, alpha, np.asarray(centre, float), length, angle, rng)
        canvas = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA)
        mask[alpha >= 0.5] = 255
        if rng.random() < 0.3:
            blur = int(rng.integers(3, 12)) | 1
            canvas, alpha = motion_blur(canvas, blur, angle), motion_blur(alpha, blur, angle)
        colour = canvas / np.maximum(alpha, 1e-6)[..., None]
        image = image * (1 - alpha[..., None]) + colour * alpha[..., None]
    image += rng.normal(0, rng.uniform(1.0, 5.0), image.shape)  # sensor noise
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), mask


# ---------------------------------------------------------------- writing the dataset


def dataset_members(counts=None, seed=DEFAULT_SEED, resolutions=None, top="birds_splitted", sample=None):
    """Yield (archive path, bytes) of every file of the dataset, in a fixed order. `sample(rng, resolution)` draws
    one pair: `synthetic_sample` (the default) or another generator such as `randomised.randomised_sample`."""
    counts = counts or DEFAULT_COUNTS
    sample = sample or synthetic_sample
    generator = sample.__module__.replace(".", "/") + ".py"
    style = "sky" if sample is synthetic_sample else sample.__name__.removesuffix("_sample")  # randomised.STYLES
    yield f"{top}/{NOTE_FILE}", SYNTHETIC_NOTE.format(generator=generator, seed=seed, style=style).encode()
    for split_index, (split, count) in enumerate(counts.items()):
        for index in range(count):
            resolution = resolutions[index % len(resolutions)] if resolutions else None
            image, mask = drawing(seed, split_index, index, sample, resolution)
            stem = f"{split}_{index:04d}"
            yield f"{top}/{split}/images/{stem}.jpg", encode(image, "JPEG", quality=JPEG_QUALITY)
            yield f"{top}/{split}/mask/{stem}.png", encode(mask, "PNG")


def drawing(seed, split_index, index, sample=None, resolution=None, notes=None):
    """The (image, mask) that `dataset_members` writes as sample `index` of the split at `split_index` (0 train,
    1 val, 2 test): each is drawn from its own seed, so any one can be drawn again alone. `notes` as in
    `synthetic_sample`."""
    return (sample or synthetic_sample)(np.random.default_rng([seed, split_index, index]), resolution, notes)


def synthetic_style(data_dir):
    """The style (`randomised.STYLES`) that drew the dataset in `data_dir`, from the SYNTHETIC.txt written with it;
    DatasetError where there is none (photos, or data drawn before the note named its style)."""
    note = Path(data_dir) / NOTE_FILE
    found = re.search(r"--style (\w+)", note.read_text(encoding="utf-8")) if note.is_file() else None
    if found is None:
        raise DatasetError(f"{data_dir}: not drawn by make-synthetic (no SYNTHETIC.txt naming its --style), so there "
                           "is no generator to draw fresh training images with")
    return found.group(1)


def encode(array, image_format, **options):
    """The bytes of `array` saved as `image_format` (JPEG, PNG) with PIL's `options`."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def write_dataset(out_dir, counts=None, seed=DEFAULT_SEED, resolutions=None, sample=None):
    """Write the dataset as a folder `out_dir` (its name is the top folder). Returns the number of images."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; remove it or choose another --out")
    staging = out_dir.with_name(f".tmp-{out_dir.name}")
    shutil.rmtree(staging, ignore_errors=True)  # left over from an interrupted build
    images = 0
    for name, data in dataset_members(counts, seed, resolutions, top=staging.name, sample=sample):
        path = out_dir.parent / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        images += name.endswith(".jpg")
    staging.rename(out_dir)
    return images


def write_zip(zip_path, counts=None, seed=DEFAULT_SEED, resolutions=None, top="birds_splitted", sample=None):
    """Write the dataset as a zip, byte-identical for the same seed (fixed timestamps and order)."""
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for name, data in dataset_members(counts, seed, resolutions, top=top, sample=sample):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".jpg") else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return Path(zip_path)
