"""DOMAIN-RANDOMISED synthetic birds: everything but the bird's shape varies, so that shape is what a model learns.

A model trained on `synthetic.py`'s flat-coloured birds over skies finds those birds and marks real textures as
bird (benchmarks/README.md, "Real birds"). Domain randomisation (Tobin et al. 2017; Tremblay et al. 2018) draws
the object over many unrelated scenes, with randomised textures, lighting, colours and camera artefacts, and
adds distractors that are not the object. Here: birds flying, perched, standing or swimming, textured and
shaded, sizes from a few pixels to a third of the frame, partly hidden by branches, leaves, the water line or the
frame's edge; backgrounds of sky, grass, water with ripples and reflections, foliage, rock, built scenes and
procedural textures; distractors (leaves, kites, planes, balls, blobs, polygons) that stay out of the mask.
Deterministic from the seed; the masks are exact (the drawn bird pixels, minus what covers them), before blur.
"""
import cv2
import numpy as np

from birdseg.synthetic import (
    BIRD_COLOURS,
    RESOLUTIONS,
    SUPERSAMPLE,
    bird_layout,
    bird_polygons,
    ellipse,
    fractal_noise,
    motion_blur,
    sky_background,
    synthetic_sample,
)

CLOSE_UP_SHARE = 0.35  # samples with one or two large birds, as photographers frame them
SKY_SHARE = 0.5  # "mixed" style: sky samples among the randomised ones
MAX_CANVAS = 2048  # pixels a side of a bird's supersampled drawing canvas
BACKGROUNDS = ("sky", "grass", "water", "foliage", "rock", "built", "texture")
POSES = ("flying", "perched", "standing", "swimming")
DISTRACTORS = ("leaf", "kite", "plane", "ball", "blob", "polygon")
NATURAL = {  # colour ranges (low RGB, high RGB) of scenes where birds are photographed
    "grass": ((40, 70, 10), (150, 180, 70)),
    "foliage": ((10, 35, 5), (110, 150, 60)),
    "water": ((20, 50, 60), (120, 160, 180)),
    "rock": ((60, 55, 50), (170, 160, 150)),
    "ground": ((70, 50, 30), (170, 140, 100)),
    "wall": ((90, 80, 70), (220, 215, 205)),
    "bark": ((35, 25, 15), (110, 85, 60)),
}


def colour(rng, kind=None):
    """One RGB colour (float32): from a natural range, or anything (a third of the time, or with no `kind`)."""
    if kind is None or rng.random() < 1 / 3:
        return rng.uniform(0, 255, 3).astype(np.float32)
    low, high = NATURAL[kind]
    return rng.uniform(low, high).astype(np.float32)


def colour_ramp(values, rng, kind=None, stops=3):
    """`values` in [0, 1] (HxW) coloured along a ramp through `stops` colours: HxWx3 float32."""
    colours = np.stack([colour(rng, kind) for _ in range(stops)])
    positions = np.linspace(0, 1, stops)
    return np.stack([np.interp(values, positions, colours[:, c]) for c in range(3)], axis=-1).astype(np.float32)


def noise(height, width, rng):
    """Fractal noise of a random grain."""
    return fractal_noise(height, width, rng, octaves=int(rng.integers(3, 7)), base=int(rng.integers(2, 12)))


def procedural_texture(height, width, rng, kind=None):
    """Noise, stripes, a gradient, or clutter of layered shapes, in random or natural colours."""
    style = rng.choice(["noise", "stripes", "gradient", "clutter"])
    if style == "stripes":
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, max(6.0, width / 6))
        wobble = noise(height, width, rng) * rng.uniform(0, 8)
        values = 0.5 + 0.5 * np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period + wobble)
        return colour_ramp(values, rng, kind)
    if style == "gradient":
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        values = xs / width * np.cos(angle) + ys / height * np.sin(angle)
        return colour_ramp((values - values.min()) / max(float(np.ptp(values)), 1e-6), rng, kind, stops=2)
    texture = colour_ramp(noise(height, width, rng), rng, kind)
    if style == "clutter":
        for _ in range(int(rng.integers(20, 120))):
            draw_shape(texture, None, rng, colour(rng, kind), max_size=max(height, width) / 6)
        texture = cv2.GaussianBlur(texture, (0, 0), rng.uniform(0.3, 3))
    return texture


def draw_shape(image, cover, rng, fill, max_size, centre=None):
    """A random ellipse, polygon or line on `image` (and 1 on `cover` where it is drawn, if given)."""
    height, width = image.shape[:2]
    cx, cy = centre if centre is not None else (rng.uniform(0, width), rng.uniform(0, height))
    size = rng.uniform(3, max(4.0, max_size))
    kind = rng.choice(["ellipse", "polygon", "line"])
    if kind == "line":
        end = (cx + rng.normal(0, size), cy + rng.normal(0, size))
        points = np.array([[cx, cy], end])
        thickness = int(rng.integers(1, max(2, int(size / 8))))
        for target, value in painted(image, cover, fill):
            cv2.polylines(target, [np.round(points).astype(np.int32)], False, value, thickness)
        return
    if kind == "ellipse":
        points = ellipse(0, 0, size, size * rng.uniform(0.2, 1))
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 9))))
        radii = size * rng.uniform(0.3, 1, len(angles))
        points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    fill_polygon(image, cover, rotate(points, rng.uniform(0, np.pi)) + (cx, cy), fill)


def painted(image, cover, fill):
    """(canvas, value) pairs a shape is drawn into: `image` in `fill`, and 1 on `cover` when there is one."""
    return [(image, fill.tolist())] + ([(cover, 1.0)] if cover is not None else [])


def rotate(points, angle):
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ rotation.T


def fill_polygon(image, cover, points, fill):
    points = np.round(points).astype(np.int32)
    cv2.fillPoly(image, [points], fill.tolist())
    if cover is not None:
        cv2.fillPoly(cover, [points], 1.0)


# ---------------------------------------------------------------- backgrounds


def grass(height, width, rng):
    image = colour_ramp(noise(height, width, rng), rng, "grass")
    base = colour(rng, "grass")
    for _ in range(int(height * width / rng.uniform(80, 400))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        length = rng.uniform(3, 25)
        tip = (x + rng.normal(0, length / 3), y - length)
        shade = np.clip(base * rng.uniform(0.6, 1.4), 0, 255)
        cv2.line(image, (int(x), int(y)), (int(tip[0]), int(tip[1])), shade.tolist(), 1)
    return image


def water(height, width, rng, scene_above=None):
    """Water: a gradient with horizontal ripples; a blurred, rippled reflection of `scene_above` when given."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = colour_ramp(ys / height, rng, "water", stops=2)
    frequency = rng.uniform(0.15, 1.2)
    ripples = np.sin(ys * frequency * (1 + ys / height) + noise(height, width, rng) * rng.uniform(4, 14))
    image = base * (1 + rng.uniform(0.05, 0.3) * ripples[..., None])
    if scene_above is not None and rng.random() < 0.6:
        reflection = cv2.resize(scene_above[::-1], (width, height))
        shift = (np.sin(ys * frequency * 2) * rng.uniform(1, 6)).astype(np.float32)
        reflection = cv2.remap(reflection, xs + shift, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        strength = rng.uniform(0.2, 0.6)
        image = image * (1 - strength) + cv2.GaussianBlur(reflection, (0, 0), 2) * strength
    return image


def foliage(height, width, rng):
    image = colour_ramp(noise(height, width, rng), rng, "foliage") * rng.uniform(0.3, 0.8)
    base = colour(rng, "foliage")
    for _ in range(int(height * width / rng.uniform(150, 800))):
        leaf = ellipse(0, 0, rng.uniform(3, 14), rng.uniform(1.5, 6), points=12)
        fill_polygon(image, None, rotate(leaf, rng.uniform(0, np.pi)) + (rng.uniform(0, width), rng.uniform(0, height)),
                     np.clip(base * rng.uniform(0.5, 1.6), 0, 255))
    for _ in range(int(rng.integers(0, 5))):
        draw_branch(image, None, rng)
    return image


def rock(height, width, rng):
    image = colour_ramp(noise(height, width, rng), rng, "rock")
    image *= 0.8 + 0.4 * noise(height, width, rng)[..., None]
    for _ in range(int(rng.integers(3, 30))):
        start = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        crack = start + np.cumsum(rng.normal(0, 12, (int(rng.integers(3, 10)), 2)), axis=0)
        cv2.polylines(image, [np.round(crack).astype(np.int32)], False, (colour(rng, "rock") * 0.4).tolist(), 1)
    return image


def built(height, width, rng):
    image = np.empty((height, width, 3), np.float32)
    image[:] = colour(rng, "wall")
    for _ in range(int(rng.integers(3, 25))):
        x0, y0 = rng.uniform(-0.1, 1, 2) * (width, height)
        w, h = rng.uniform(0.03, 0.4, 2) * (width, height)
        cv2.rectangle(image, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), colour(rng, "wall").tolist(), -1)
        if rng.random() < 0.5:  # windows
            step = rng.uniform(8, 30)
            for wx in np.arange(x0 + 4, x0 + w - 6, step):
                for wy in np.arange(y0 + 4, y0 + h - 6, step * rng.uniform(0.8, 1.5)):
                    cv2.rectangle(image, (int(wx), int(wy)), (int(wx + step / 2), int(wy + step / 2)),
                                  (colour(rng) * 0.5).tolist(), -1)
    for _ in range(int(rng.integers(0, 6))):  # wires and poles
        ends = rng.uniform(0, 1, (2, 2)) * (width, height)
        cv2.line(image, tuple(map(int, ends[0])), tuple(map(int, ends[1])), (colour(rng) * 0.3).tolist(),
                 int(rng.integers(1, 5)))
    return image * (0.85 + 0.3 * noise(height, width, rng)[..., None])


def scene(kind, height, width, rng, above=None):
    """A background of one of BACKGROUNDS; water reflects `above` (a sky when not given)."""
    if kind == "sky":
        return sky_background(height, width, rng)
    if kind == "water":
        return water(height, width, rng, scene_above=above if above is not None else sky_background(height, width, rng))
    if kind == "texture":
        return procedural_texture(height, width, rng, kind=rng.choice([None, "ground", "rock", "grass"]))
    return {"grass": grass, "foliage": foliage, "rock": rock, "built": built}[kind](height, width, rng)


def background(height, width, rng, notes=None):
    """(image, water line or None): one scene over the whole frame, or one above a horizon and another below (the
    scene's name goes into `notes`: "grass", or "sky over water")."""
    if rng.random() < 0.4:
        kind = rng.choice(BACKGROUNDS)
        if notes is not None:
            notes["scene"] = str(kind)
        return scene(kind, height, width, rng), None
    horizon = int(height * rng.uniform(0.25, 0.75))
    above_kind = rng.choice(["sky", "foliage", "built", "texture"])
    above = scene(above_kind, horizon, width, rng)
    below_kind = rng.choice(["grass", "water", "rock", "texture"])
    if notes is not None:
        notes["scene"] = f"{above_kind} over {below_kind}"
    below = scene(below_kind, height - horizon, width, rng, above=above)
    return np.concatenate([above, below]), (horizon if below_kind == "water" else None)


# ---------------------------------------------------------------- birds


def resting_bird_polygons(length, rng, pose):
    """Polygons (name, Nx2, colour key) of a perched, standing or swimming bird facing +x, y pointing down."""
    body_h = length * rng.uniform(0.3, 0.5)
    neck = rng.uniform(0.1, 0.6) if pose == "standing" else rng.uniform(0.05, 0.25)
    head = np.array([length * 0.42, -body_h * 0.4 - length * neck])
    head_r = length * rng.uniform(0.09, 0.14)
    parts = [
        ("body", ellipse(0, 0, length / 2, body_h / 2), "body"),
        ("neck", np.array([[length * 0.2, -body_h * 0.3], head + (-head_r * 0.7, 0), head + (head_r * 0.7, 0),
                           [length * 0.42, 0]]), "body"),
        ("head", ellipse(*head, head_r, head_r * 0.9), "body"),
        ("beak", np.array([head + (head_r * 0.6, -head_r * 0.3), head + (head_r * rng.uniform(1.4, 3.5), 0),
                           head + (head_r * 0.6, head_r * 0.3)]), "tip"),
        ("tail", np.array([[-length * 0.35, -body_h * 0.25], [-length * rng.uniform(0.6, 0.8), -body_h * 0.1],
                           [-length * rng.uniform(0.6, 0.8), body_h * 0.15], [-length * 0.35, body_h * 0.2]]), "wing"),
        ("wing", ellipse(-length * 0.05, -body_h * 0.05, length * 0.38, body_h * 0.3), "wing"),
    ]
    if pose in ("perched", "standing"):
        leg = length * (rng.uniform(0.4, 1.0) if pose == "standing" else rng.uniform(0.1, 0.2))
        for x in (-0.05, 0.08):
            top = np.array([length * x, body_h * 0.4])
            parts.append(("leg", np.array([top, top + (length * 0.04, 0), top + (length * 0.05, leg),
                                           top + (length * 0.01, leg)]), "tip"))
    return parts


def bird_colours(rng):
    """(body, wing, tip) colours: a natural palette, jittered, or anything."""
    if rng.random() < 0.4:
        return [colour(rng) for _ in range(3)]
    natural = BIRD_COLOURS[rng.choice(list(BIRD_COLOURS))]
    return [np.clip(np.array(c, np.float32) * rng.uniform(0.7, 1.3, 3), 0, 255) for c in natural]


def draw_textured_bird(image, mask, centre, length, pose, rng):
    """Draw one bird, shaded and textured, into `image` (float RGB) and its exact pixels into `mask` (bool).
    Returns its box (x0, y0, x1, y1) in the frame, clipped, or None when it lies outside."""
    height, width = mask.shape
    parts = bird_polygons(length, rng) if pose == "flying" else resting_bird_polygons(length, rng, pose)
    angle = rng.uniform(-0.6, 0.6) + (np.pi if rng.random() < 0.5 else 0.0) if pose == "flying" else rng.uniform(-0.3, 0.3)
    mirror = np.array([rng.choice([-1, 1]), rng.choice([-1, 1]) if pose == "flying" else 1])
    size = int(np.ceil(length * 4.5)) + 8  # the local canvas: every pose fits
    local = [(rotate(points * mirror, angle) + size / 2, key) for _, points, key in parts]
    supersample = max(1, min(SUPERSAMPLE, MAX_CANVAS // size))  # a close-up's edges need less, its canvas is large
    canvas = np.zeros((size * supersample, size * supersample, 3), np.float32)
    alpha = np.zeros((size * supersample, size * supersample), np.float32)
    colours = dict(zip(("body", "wing", "tip"), bird_colours(rng)))
    for points, key in local:
        fill_polygon(canvas, alpha, points * supersample, colours[key])
    canvas = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (size, size), interpolation=cv2.INTER_AREA)
    # Shading: light from one side, and a feather-like texture.
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    light = rng.uniform(0, 2 * np.pi)
    shading = 1 + rng.uniform(0, 0.6) * (xs * np.cos(light) + ys * np.sin(light))
    shading *= 1 + rng.uniform(0, 0.4) * (noise(size, size, rng) - 0.5)
    canvas *= shading[..., None] / np.maximum(alpha, 1e-6)[..., None]
    drawn = alpha >= 0.5  # the mask: the drawn shape, before any blur
    if rng.random() < 0.2:
        blur = int(rng.integers(3, 10)) | 1
        canvas, alpha = motion_blur(canvas * alpha[..., None], blur, angle), motion_blur(alpha, blur, angle)
        canvas /= np.maximum(alpha, 1e-6)[..., None]
    x0, y0 = round(centre[0] - size / 2), round(centre[1] - size / 2)
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + size, width), min(y0 + size, height)
    if fx0 >= fx1 or fy0 >= fy1:
        return None
    a = alpha[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0, None]
    region = image[fy0:fy1, fx0:fx1]
    region[:] = region * (1 - a) + canvas[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] * a
    mask[fy0:fy1, fx0:fx1] |= drawn[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    return fx0, fy0, fx1, fy1


def reflect_below(image, box, waterline, rng):
    """A dim, rippled reflection of the region above `waterline` inside `box`, below it: not a bird pixel."""
    x0, y0, x1, y1 = box
    above = image[max(y0, waterline - (y1 - y0)):waterline, x0:x1]
    rows = min(len(above), image.shape[0] - waterline)
    if rows <= 0:
        return
    reflection = above[::-1][:rows]
    strength = rng.uniform(0.2, 0.5)
    target = image[waterline:waterline + rows, x0:x1]
    target[:] = target * (1 - strength) + cv2.GaussianBlur(reflection, (0, 0), 1.5) * strength


def draw_branch(image, cover, rng, through=None):
    """A branch (a thick, bending line with twigs), through the point `through` when given."""
    height, width = image.shape[:2]
    start = (np.array(through) if through is not None else rng.uniform(0, 1, 2) * (width, height)).astype(float)
    direction = rng.uniform(0, 2 * np.pi)
    span = rng.uniform(0.2, 0.8) * max(width, height)
    steps = np.linspace(-span / 2, span / 2, 8)[:, None]
    points = start + steps * (np.cos(direction), np.sin(direction)) + rng.normal(0, span / 40, (8, 2))
    thickness = int(rng.integers(2, max(3, int(min(width, height) / 40))))
    fill = colour(rng, "bark")
    for target, value in painted(image, cover, fill):
        cv2.polylines(target, [np.round(points).astype(np.int32)], False, value, thickness)
    for _ in range(int(rng.integers(0, 4))):
        start = points[rng.integers(8)]
        twig = start + rng.normal(0, span / 8, 2)
        for target, value in painted(image, cover, fill):
            cv2.line(target, tuple(map(int, start)), tuple(map(int, twig)), value, max(1, thickness // 2))


def draw_distractor(image, cover, rng, kind):
    """A thing that is not a bird: leaf, kite, plane, ball, blob or polygon (marked in `cover` if given)."""
    height, width = image.shape[:2]
    size = float(np.exp(rng.uniform(np.log(4), np.log(width / 6))))
    centre = rng.uniform(0, 1, 2) * (width, height)
    angle = rng.uniform(0, 2 * np.pi)
    if kind == "leaf":
        fill_polygon(image, cover, rotate(ellipse(0, 0, size / 2, size / 5, points=16), angle) + centre,
                     colour(rng, "foliage"))
    elif kind == "kite":
        kite = np.array([[0, -size / 2], [size / 3, 0], [0, size / 2], [-size / 3, 0]])
        fill_polygon(image, cover, rotate(kite, angle) + centre, colour(rng))
        tail = centre + np.cumsum(rng.normal(0, size / 5, (6, 2)), axis=0)
        for target, value in painted(image, cover, colour(rng)):
            cv2.polylines(target, [np.round(tail).astype(np.int32)], False, value, 1)
    elif kind == "plane":
        grey = np.full(3, rng.uniform(60, 240), np.float32)
        shapes = [np.array([[-size / 2, -size / 16], [size / 2, -size / 20], [size / 2 + size / 10, 0],
                            [size / 2, size / 20], [-size / 2, size / 16]]),  # fuselage
                  np.array([[size / 10, 0], [-size / 8, -size / 2], [-size / 5, -size / 2], [-size / 10, 0],
                            [-size / 5, size / 2], [-size / 8, size / 2]]),  # straight, swept wings
                  np.array([[-size / 2, 0], [-size * 0.58, -size / 6], [-size * 0.5, -size / 6], [-size * 0.42, 0],
                            [-size * 0.5, size / 6], [-size * 0.58, size / 6]])]  # tailplane
        for shape in shapes:
            fill_polygon(image, cover, rotate(shape, angle) + centre, grey)
    elif kind == "ball":
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        radius = size / 3
        inside = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius**2
        light = 1 - 0.5 * np.clip(((xs - centre[0] + radius / 3) ** 2 + (ys - centre[1] + radius / 3) ** 2)
                                  / max(radius**2, 1), 0, 1)
        image[inside] = (colour(rng) * light[inside][:, None]).astype(np.float32)
        if cover is not None:
            cover[inside] = 1.0
    elif kind == "blob":
        side = max(4, int(size))
        blob = noise(side, side, rng) * (1 - np.hypot(*np.mgrid[-1:1:side * 1j, -1:1:side * 1j]))
        inside = blob > rng.uniform(0.15, 0.3)
        x0, y0 = int(centre[0] - side / 2), int(centre[1] - side / 2)
        fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
        if fx0 < fx1 and fy0 < fy1:
            part = inside[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
            image[fy0:fy1, fx0:fx1][part] = colour(rng)
            if cover is not None:
                cover[fy0:fy1, fx0:fx1][part] = 1.0
    else:
        draw_shape(image, cover, rng, colour(rng), size / 2, centre=centre)


def occlude(image, mask, box, rng):
    """Hide part of a bird behind a branch or leaves in front of it: those pixels leave the mask."""
    x0, y0, x1, y1 = box
    rows, columns = np.nonzero(mask[y0:y1, x0:x1])
    if not len(rows):
        return
    pick = rng.integers(len(rows))
    through = (x0 + columns[pick], y0 + rows[pick])  # on the bird
    cover = np.zeros(mask.shape, np.float32)
    if rng.random() < 0.5:
        draw_branch(image, cover, rng, through=through)
    else:
        for _ in range(int(rng.integers(2, 10))):
            leaf = ellipse(0, 0, rng.uniform(2, 6) + (x1 - x0) / 8, rng.uniform(1, 3) + (y1 - y0) / 16, points=12)
            spot = np.array(through) + rng.normal(0, (x1 - x0) / 4 + 1, 2)
            fill_polygon(image, cover, rotate(leaf, rng.uniform(0, np.pi)) + spot, colour(rng, "foliage"))
    mask &= cover < 0.5


# ---------------------------------------------------------------- one sample


def close_up_layout(height, width, rng):
    """(centre, length) of one bird, or two, framed by the photographer: body length from an eighth to a third of
    the frame's width."""
    lengths = np.exp(rng.uniform(np.log(width / 8), np.log(width / 3), 1 if rng.random() < 0.8 else 2))
    return [(rng.uniform(0.3, 0.7, 2) * (width, height), float(length)) for length in lengths]


def randomised_layout(height, width, rng, notes=None):
    """Birds anywhere from a few pixels (a flock) to a third of the frame (a close-up)."""
    if rng.random() < CLOSE_UP_SHARE:
        if notes is not None:
            notes["layout"] = "close-up"
        return close_up_layout(height, width, rng)
    return bird_layout(height, width, rng, notes)


def randomised_sample(rng, resolution=None, notes=None):
    """One (image uint8 HxWx3, mask uint8 HxW {0, 255}) pair, domain-randomised; `notes` as in
    `synthetic_sample`."""
    notes = {} if notes is None else notes
    width, height = resolution or RESOLUTIONS[rng.integers(len(RESOLUTIONS))]
    notes.update(style="randomised", occluded=0)
    image, waterline = background(height, width, rng, notes)
    image = image.astype(np.float32)
    mask = np.zeros((height, width), bool)
    behind = int(rng.poisson(1.2))
    for _ in range(behind):
        draw_distractor(image, None, rng, rng.choice(DISTRACTORS))
    for centre, length in randomised_layout(height, width, rng, notes):
        on_water = waterline is not None and rng.random() < 0.4
        pose = "swimming" if on_water else rng.choice(["flying", "perched", "standing"], p=[0.6, 0.2, 0.2])
        centre = np.array(centre, float)
        if pose == "swimming":
            centre[1] = waterline + rng.uniform(-0.05, 0.1) * length
        elif rng.random() < 0.1:  # cut by the frame's edge
            centre[0] = rng.choice([0.0, width]) + rng.uniform(-0.3, 0.3) * length
        if pose == "perched" and rng.random() < 0.7:
            draw_branch(image, None, rng, through=centre + (0, length * 0.35))
        bird_mask = np.zeros_like(mask)
        before = image.copy() if pose == "swimming" else None
        box = draw_textured_bird(image, bird_mask, centre, length, pose, rng)
        if box is None:
            continue
        if pose == "swimming":  # under the water line: the water as it was, and the bird's reflection
            below = min(round(centre[1] + length * rng.uniform(0.05, 0.15)), height)
            image[below:] = before[below:]
            bird_mask[below:] = False
            reflect_below(image, box, below, rng)
        elif rng.random() < 0.25:
            occlude(image, bird_mask, box, rng)
            notes["occluded"] += 1
        mask |= bird_mask
    in_front = int(rng.poisson(0.6))
    for _ in range(in_front):  # where one covers a bird, that is not bird any more
        cover = np.zeros((height, width), np.float32)
        draw_distractor(image, cover, rng, rng.choice(DISTRACTORS))
        notes["occluded"] += bool((mask & (cover >= 0.5)).any())
        mask &= cover < 0.5
    notes["distractors"] = behind + in_front
    return photometric(image, rng), mask.astype(np.uint8) * 255


def photometric(image, rng):
    """Lighting, colour cast, blur, sensor noise and JPEG artefacts, each randomised: uint8 RGB."""
    image = np.clip(image, 0, 255) / 255
    image = image ** rng.uniform(0.6, 1.6) * rng.uniform(0.6, 1.3) * rng.uniform(0.8, 1.2, 3)  # exposure, cast
    image = (image - 0.5) * rng.uniform(0.6, 1.4) + 0.5  # contrast
    image = np.clip(image * 255, 0, 255).astype(np.float32)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 2.0))
    if rng.random() < 0.1:
        image = motion_blur(image, int(rng.integers(3, 9)) | 1, rng.uniform(0, np.pi))  # camera shake
    image += rng.normal(0, rng.uniform(0.5, 8.0), image.shape)
    image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        quality = int(rng.integers(25, 90))
        _, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(image)


def mixed_sample(rng, resolution=None, notes=None):
    """A sky sample (SKY_SHARE of them: a task the U-Net learns within a few epochs) or a domain-randomised one."""
    return (synthetic_sample if rng.random() < SKY_SHARE else randomised_sample)(rng, resolution, notes)


STYLES = {"sky": synthetic_sample, "randomised": randomised_sample, "mixed": mixed_sample}  # make-synthetic --style
EMBEDDED_STYLE = "mixed"  # birds_splitted.zip: what scored best on real clips (benchmarks/README.md)
