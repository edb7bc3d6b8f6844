"""Captioned shapes: a seeded generator of small RGB scenes whose every attribute is known.

A scene holds one or two shapes. Each shape has a ``shape`` (circle, square, triangle), a
``color`` (red, green, blue, yellow), a ``size`` (small, large) and a ``position`` (one of four
corners or the center; two-shape scenes use two different corners). Captions come from
templates with synonyms and varied word order, so "a big red disk in the upper left" and
"top left: a large red circle" describe the same scene.

Because the attributes are known, an image can be scored exactly: :func:`read_scene` reads
colour (by hue), position (by centroid), size (by area) and shape (by how much of its bounding
box it fills) back from the pixels.

Held-out combinations: the (shape, color) pairs in ``HELDOUT_PAIRS`` never appear in the
``"train"`` split; the ``"heldout"`` split holds only them. Every shape and every colour is still
seen in training, so generating a held-out pair tests compositional generalisation.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..validate import check_choice, check_float, check_int, check_tensor

SHAPES = ("circle", "square", "triangle")
COLORS = {"red": (0.92, 0.12, 0.10), "green": (0.10, 0.78, 0.22),
          "blue": (0.15, 0.32, 0.98), "yellow": (0.96, 0.86, 0.10)}
SIZES = ("small", "large")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "center")
CORNERS = POSITIONS[:4]
HELDOUT_PAIRS = frozenset({("triangle", "red"), ("square", "blue"), ("circle", "yellow")})
SPLITS = ("train", "heldout", "all")

SYNONYMS = {
    "circle": ("circle", "disk"), "square": ("square", "box"), "triangle": ("triangle",),
    "small": ("small", "little", "tiny"), "large": ("large", "big"),
    "top left": ("top left", "upper left"), "top right": ("top right", "upper right"),
    "bottom left": ("bottom left", "lower left"), "bottom right": ("bottom right", "lower right"),
    "center": ("center", "middle"),
}
_SINGLE_TEMPLATES = (
    "a {size} {color} {shape} in the {where}",
    "in the {where} there is a {size} {color} {shape}",
    "{where}: one {size} {color} {shape}",
    "a {color} {shape}, {size}, in the {where}",
)
_RADIUS = {"small": 0.14, "large": 0.23}  # fraction of the image side
_SIZE_SPLIT = {"circle": 0.375, "square": 0.333, "triangle": 0.375}  # extent / side between sizes
_CENTERS = {"top left": (0.27, 0.27), "top right": (0.73, 0.27), "bottom left": (0.27, 0.73),
            "bottom right": (0.73, 0.73), "center": (0.5, 0.5)}


@dataclass(frozen=True)
class ShapeSpec:
    """One shape in a scene. Every field is checked against the allowed values."""

    shape: str
    color: str
    size: str
    position: str

    def __post_init__(self):
        check_choice("shape", self.shape, SHAPES)
        check_choice("color", self.color, COLORS)
        check_choice("size", self.size, SIZES)
        check_choice("position", self.position, POSITIONS)


def _where(position: str, word: str) -> str:
    return word if position == "center" else f"{word} corner"


def describe(scene: list[ShapeSpec], rng: random.Random | None = None, variant: int | None = None) -> str:
    """A caption for ``scene``; synonyms and template drawn from ``rng`` (or fixed by ``variant``)."""
    rng = rng or random.Random(0 if variant is None else variant)

    def syn(key):
        options = SYNONYMS.get(key, (key,))
        return options[0] if variant is not None else rng.choice(options)

    parts = []
    for i, s in enumerate(scene):
        t = (variant if variant is not None else rng.randrange(len(_SINGLE_TEMPLATES))) % len(_SINGLE_TEMPLATES)
        if len(scene) > 1:
            t = 0  # one template per half keeps two-shape captions readable
        parts.append(_SINGLE_TEMPLATES[t].format(size=syn(s.size), color=s.color, shape=syn(s.shape),
                                                 where=_where(s.position, syn(s.position))))
    if len(parts) == 2 and (variant is None and rng.random() < 0.5):
        parts.reverse()  # word order variety: either shape may be named first
    return " and ".join(parts)


def _triangle_mask(xx, yy, cx, cy, r):
    # upward triangle with apex (cx, cy - r) and base at cy + 0.8 r, half-width r
    top, base = cy - r, cy + 0.8 * r
    t = (yy - top) / (base - top)  # 0 at apex, 1 at base
    return (t >= 0) & (t <= 1) & (np.abs(xx - cx) <= t * r)


def render(scene: list[ShapeSpec], image_size: int = 24, rng: random.Random | None = None,
           jitter: bool = True) -> np.ndarray:
    """Draw a scene: returns float32 (3, image_size, image_size) in [0, 1], black background.

    Anti-aliased by drawing at 4x and averaging. ``jitter`` moves each shape by up to ~5% of the
    side and varies its radius and brightness slightly, so no two images are the same.
    """
    check_int("image_size", image_size, min_value=12, max_value=128)
    rng = rng or random.Random(0)
    ss = 4
    n = image_size * ss
    coords = (np.arange(n) + 0.5) / n
    xx, yy = np.meshgrid(coords, coords)
    canvas = np.zeros((3, n, n), dtype=np.float32)
    for s in scene:
        cx, cy = _CENTERS[s.position]
        r = _RADIUS[s.size]
        if jitter:
            cx += rng.uniform(-0.05, 0.05)
            cy += rng.uniform(-0.05, 0.05)
            r *= rng.uniform(0.92, 1.08)
        if s.shape == "circle":
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r ** 2
        elif s.shape == "square":
            h = 0.86 * r
            mask = (np.abs(xx - cx) <= h) & (np.abs(yy - cy) <= h)
        else:
            mask = _triangle_mask(xx, yy, cx, cy, 1.1 * r)
        gain = rng.uniform(0.9, 1.0) if jitter else 1.0
        for c, value in enumerate(COLORS[s.color]):
            canvas[c][mask] = value * gain
    return canvas.reshape(3, image_size, ss, image_size, ss).mean(axis=(2, 4))


def _random_scene(rng: random.Random, n_shapes: int, split: str) -> list[ShapeSpec]:
    while True:
        positions = ["center"] if n_shapes == 1 and rng.random() < 0.2 else rng.sample(CORNERS, n_shapes)
        scene = [ShapeSpec(rng.choice(SHAPES), rng.choice(list(COLORS)), rng.choice(SIZES), p)
                 for p in positions]
        held = [(s.shape, s.color) in HELDOUT_PAIRS for s in scene]
        if split == "all" or (split == "train" and not any(held)) or (split == "heldout" and all(held)):
            return scene


def make_shapes(n: int, *, seed: int = 0, split: str = "train", image_size: int = 24,
                two_shape_fraction: float = 0.0):
    """Generate ``n`` captioned scenes as a ``datasets.Dataset`` (torch format).

    Columns: ``image`` float32 (3, S, S) in [0, 1]; ``caption`` str; ``n_shapes`` int;
    ``shape``, ``color``, ``size``, ``position``: lists of str, one entry per shape.
    Same arguments, same rows. ``split``: ``"train"`` (no held-out pair), ``"heldout"``
    (only held-out pairs) or ``"all"``.
    """
    import datasets
    check_int("n", n, min_value=1)
    check_int("seed", seed, min_value=0)
    check_choice("split", split, SPLITS)
    check_float("two_shape_fraction", two_shape_fraction, min_value=0.0, max_value=1.0)
    rng = random.Random(f"shapes-{seed}-{split}")
    rows = {"image": [], "caption": [], "n_shapes": [], "shape": [], "color": [], "size": [], "position": []}
    for _ in range(n):
        scene = _random_scene(rng, 2 if rng.random() < two_shape_fraction else 1, split)
        rows["image"].append(render(scene, image_size, rng))
        rows["caption"].append(describe(scene, rng))
        rows["n_shapes"].append(len(scene))
        for key in ("shape", "color", "size", "position"):
            rows[key].append([getattr(s, key) for s in scene])
    features = datasets.Features({
        "image": datasets.Array3D(shape=(3, image_size, image_size), dtype="float32"),
        "caption": datasets.Value("string"), "n_shapes": datasets.Value("int64"),
        **{k: datasets.Sequence(datasets.Value("string")) for k in ("shape", "color", "size", "position")},
    })
    rows["image"] = np.stack(rows["image"])
    return datasets.Dataset.from_dict(rows, features=features).with_format("torch")


def scene_of(row) -> list[ShapeSpec]:
    """The list of :class:`ShapeSpec` stored in one dataset row."""
    return [ShapeSpec(*(row[k][i] for k in ("shape", "color", "size", "position")))
            for i in range(int(row["n_shapes"]))]


# ---------------------------------------------------------------- reading scenes back from pixels
def _nearest_color(rgb: np.ndarray) -> str:
    names = list(COLORS)
    ref = np.array([COLORS[c] for c in names])
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    v = rgb / (np.linalg.norm(rgb) + 1e-8)
    return names[int(np.argmax(ref @ v))]


def read_scene(image, threshold: float = 0.3) -> ShapeSpec | None:
    """Read the attributes of a one-shape image back from its pixels.

    image: (3, S, S) in [0, 1] (tensor or array). Returns a :class:`ShapeSpec`, or ``None`` when
    nothing is drawn. Colour: nearest reference hue of the mean foreground colour. Position:
    the centroid's corner, or center. Shape: a triangle has most of its mass in the lower half of
    its bounding box; a square fills the box's corners, a circle does not. Size: the bounding
    box's longer side against a per-shape split between the two sizes.
    """
    if isinstance(image, torch.Tensor):
        check_tensor("image", image, ndim=3, floating=True)
        image = image.detach().float().cpu().numpy()
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must have shape (3, S, S); got shape {image.shape}")
    side = image.shape[-1]
    mask = image.max(axis=0) > threshold
    if mask.sum() < 2:
        return None
    ys, xs = np.nonzero(mask)
    cx, cy = (xs.mean() + 0.5) / side, (ys.mean() + 0.5) / side
    if abs(cx - 0.5) < 0.12 and abs(cy - 0.5) < 0.12:
        position = "center"
    else:
        position = ("top" if cy < 0.5 else "bottom") + " " + ("left" if cx < 0.5 else "right")
    rgb = image[:, mask].mean(axis=1)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    box = mask[y0:y1 + 1, x0:x1 + 1].astype(np.int64)
    h = box.shape[0]
    top, bottom = box[: h // 2].sum(), box[h - h // 2:].sum()
    corners = (box[0, 0] + box[0, -1] + box[-1, 0] + box[-1, -1]) / 4
    if (bottom - top) / max(1, box.sum()) > 0.25:
        shape = "triangle"  # mass piles up at the base
    elif corners >= 0.5:
        shape = "square"  # a box fills its bounding box's corners, a disk does not
    else:
        shape = "circle"
    extent = max(x1 - x0 + 1, y1 - y0 + 1) / side
    size = "large" if extent > _SIZE_SPLIT[shape] else "small"
    return ShapeSpec(shape, _nearest_color(rgb), size, position)


def scene_dict(spec: ShapeSpec | None) -> dict:
    """A spec as a plain dict (``{}`` for ``None``), handy for tables."""
    return {} if spec is None else asdict(spec)
