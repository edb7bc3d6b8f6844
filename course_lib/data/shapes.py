"""Captioned shapes: a seeded generator of small RGB scenes whose every attribute is known.

A scene holds one or two shapes. Each shape has a ``shape`` (circle, square, triangle), a
``color`` (red, green, blue, yellow), a ``size`` (small, large) and a ``position`` (one of four
corners or the center; two-shape scenes use two different corners). Captions come from
templates with synonyms and varied word order, so "a big red disk in the upper left" and
"top left: a large red circle" describe the same scene.

Because the attributes are known, an image can be scored exactly: :func:`read_scene` reads
colour (by hue), position (by centroid), and shape and size by template matching (which ideal
circle, square or triangle of the same area and centroid differs least from the pixels).

Held-out combinations: the (shape, color) pairs in ``HELDOUT_PAIRS`` never appear in the
``"train"`` split; the ``"heldout"`` split holds only them. Every shape and every colour is still
seen in training, so generating a held-out pair tests compositional generalisation.
"""
from __future__ import annotations

import functools
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
_SUPERSAMPLE = 4  # shapes are drawn at 4x resolution and averaged down (anti-aliasing)
_SQUARE_HALF, _TRIANGLE_SCALE = 0.86, 1.1  # a square's half-side and a triangle's half-base, in radii
_TRIANGLE_BASE = 0.8  # a triangle's base lies 0.8 (half-bases) below its centre, its apex 1 above
# area of each shape in units of r**2, and how far a triangle's centroid (2/3 of the way from apex
# to base) lies below its centre, in r
_AREA = {"circle": np.pi, "square": (2 * _SQUARE_HALF) ** 2,
         "triangle": (1 + _TRIANGLE_BASE) * _TRIANGLE_SCALE ** 2}
_CENTROID_DROP = {"circle": 0.0, "square": 0.0, "triangle": (2 * _TRIANGLE_BASE - 1) / 3 * _TRIANGLE_SCALE}
_RADIUS_SPLIT = 0.18  # between small (0.14 +- 8%) and large (0.23 +- 8%)
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


def check_scene(scene, *, allow_empty: bool = False) -> list[ShapeSpec]:
    """A scene is a list of :class:`ShapeSpec` at different positions (two shapes at one position
    would be drawn on top of each other and captioned as two: an error, not a silent overlap)."""
    if isinstance(scene, ShapeSpec):
        raise TypeError("scene must be a list of ShapeSpec; got one ShapeSpec (wrap it in a list: [spec])")
    if not isinstance(scene, (list, tuple)):
        raise TypeError(f"scene must be a list of ShapeSpec; got {type(scene).__name__}")
    if not scene and not allow_empty:
        raise ValueError("scene must hold at least one ShapeSpec; got an empty list")
    seen = {}
    for i, s in enumerate(scene):
        if not isinstance(s, ShapeSpec):
            raise TypeError(f"scene[{i}] must be a ShapeSpec; got {type(s).__name__} {s!r:.60}")
        if s.position in seen:
            raise ValueError(f"scene must place each shape at a different position; got scene[{seen[s.position]}] "
                             f"and scene[{i}] both at {s.position!r}")
        seen[s.position] = i
    return list(scene)


def _check_rng(rng) -> None:
    if rng is not None and not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random (e.g. random.Random(0)) or None; got {type(rng).__name__}")


def _where(position: str, word: str) -> str:
    return word if position == "center" else f"{word} corner"


def describe(scene: list[ShapeSpec], rng: random.Random | None = None, variant: int | None = None) -> str:
    """A caption for ``scene`` (a non-empty list of :class:`ShapeSpec` at different positions);
    synonyms and template drawn from ``rng`` (or fixed by ``variant``, an int >= 0)."""
    check_scene(scene)
    _check_rng(rng)
    if variant is not None:
        check_int("variant", variant, min_value=0)
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
    top, base = cy - r, cy + _TRIANGLE_BASE * r
    t = (yy - top) / (base - top)  # 0 at apex, 1 at base
    return (t >= 0) & (t <= 1) & (np.abs(xx - cx) <= t * r)


def _shape_mask(shape: str, xx, yy, cx: float, cy: float, r: float):
    """Boolean mask of one shape of "radius" r centred at (cx, cy) on the grid (xx, yy) (fractions of the side)."""
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r ** 2
    if shape == "square":
        h = _SQUARE_HALF * r
        return (np.abs(xx - cx) <= h) & (np.abs(yy - cy) <= h)
    return _triangle_mask(xx, yy, cx, cy, _TRIANGLE_SCALE * r)


@functools.lru_cache(maxsize=8)
def _fine_grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (xx, yy) of a side x side image drawn at _SUPERSAMPLE x resolution
    (fractions of the side; read-only, shared by every drawing of that size)."""
    n = side * _SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / n
    grid = np.meshgrid(coords, coords)
    for a in grid:
        a.setflags(write=False)
    return tuple(grid)


def _supersampled_mask(shape: str, side: int, cx: float, cy: float, r: float) -> np.ndarray:
    """(side, side) float coverage of one shape, anti-aliased like :func:`render`."""
    xx, yy = _fine_grid(side)
    ss = _SUPERSAMPLE
    return _shape_mask(shape, xx, yy, cx, cy, r).reshape(side, ss, side, ss).mean(axis=(1, 3))


def render(scene: list[ShapeSpec], image_size: int = 24, rng: random.Random | None = None,
           jitter: bool = True) -> np.ndarray:
    """Draw a scene: returns float32 (3, image_size, image_size) in [0, 1], black background.

    Anti-aliased by drawing at 4x and averaging. ``jitter`` moves each shape by up to ~5% of the
    side and varies its radius and brightness slightly, so no two images are the same. ``scene``:
    a list of :class:`ShapeSpec` at different positions (an empty list draws a black image).
    """
    check_scene(scene, allow_empty=True)
    check_int("image_size", image_size, min_value=12, max_value=128)
    _check_rng(rng)
    rng = rng or random.Random(0)
    ss = _SUPERSAMPLE
    xx, yy = _fine_grid(image_size)
    canvas = np.zeros((3, image_size * ss, image_size * ss), dtype=np.float32)
    for s in scene:
        cx, cy = _CENTERS[s.position]
        r = _RADIUS[s.size]
        if jitter:
            cx += rng.uniform(-0.05, 0.05)
            cy += rng.uniform(-0.05, 0.05)
            r *= rng.uniform(0.92, 1.08)
        mask = _shape_mask(s.shape, xx, yy, cx, cy, r)
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
    """The list of :class:`ShapeSpec` stored in one dataset row (a dict with ``n_shapes``, ``shape``,
    ``color``, ``size`` and ``position``)."""
    missing = [k for k in ("n_shapes", "shape", "color", "size", "position") if not hasattr(row, "keys") or k not in row]
    if missing:
        raise TypeError(f"row must be one row of make_shapes (a dict); got {type(row).__name__} without {missing}")
    return [ShapeSpec(*(row[k][i] for k in ("shape", "color", "size", "position")))
            for i in range(int(row["n_shapes"]))]


# ---------------------------------------------------------------- reading scenes back from pixels
def _nearest_color(rgb: np.ndarray) -> str:
    names = list(COLORS)
    ref = np.array([COLORS[c] for c in names])
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    v = rgb / (np.linalg.norm(rgb) + 1e-8)
    return names[int(np.argmax(ref @ v))]


def soft_mask(image: np.ndarray, threshold: float = 0.3) -> np.ndarray | None:
    """(S, S) coverage in [0, 1]: brightness / the shape's peak brightness, or ``None`` if nothing is drawn.

    Keeps anti-aliased and blurred edge pixels at their partial weight, so areas and centroids
    barely move when a tokenizer reconstructs the image a little blurred.
    """
    v = image.max(axis=0)
    mask = v > threshold
    if mask.sum() < 2:
        return None
    peak = float(np.percentile(v[mask], 90))
    return np.clip(v / peak, 0.0, 1.0) * (v > 0.1)


def match_shape(image: np.ndarray, threshold: float = 0.3) -> dict | None:
    """Which ideal shape explains the pixels best: the heart of :func:`read_scene`.

    For each of circle, square and triangle, the ideal shape is drawn (anti-aliased, like
    :func:`render`) with the same area and centroid as the image's soft mask; the shape whose
    drawing differs least (L1 distance / area) wins. Returns ``None`` when nothing is drawn, else
    ``{"shape", "radius" (fraction of the side), "cx", "cy", "distances" {shape: L1 / area}}``.
    """
    m = soft_mask(image, threshold)
    if m is None:
        return None
    side = m.shape[0]
    coords = (np.arange(side) + 0.5) / side
    mass = m.sum()
    area = mass / side ** 2
    cx, cy = (m.sum(axis=0) * coords).sum() / mass, (m.sum(axis=1) * coords).sum() / mass
    distances, radii = {}, {}
    for shape in SHAPES:
        r = float(np.sqrt(area / _AREA[shape]))
        template = _supersampled_mask(shape, side, cx, cy - _CENTROID_DROP[shape] * r, r)
        distances[shape] = float(np.abs(template - m).sum() / mass)
        radii[shape] = r
    best = min(distances, key=distances.get)
    return {"shape": best, "radius": radii[best], "cx": float(cx), "cy": float(cy), "distances": distances}


def read_scene(image, threshold: float = 0.3) -> ShapeSpec | None:
    """Read the attributes of a one-shape image back from its pixels.

    image: (3, S, S) in [0, 1] (tensor or array). Returns a :class:`ShapeSpec`, or ``None`` when
    nothing is drawn. Colour: nearest reference hue of the mean foreground colour. Position:
    the centroid's corner, or center. Shape: the ideal circle, square or triangle of the same
    area and centroid that differs least from the pixels (:func:`match_shape`). Size: that
    shape's radius against the split between the two sizes. Measured on 1,000 scenes: right on
    every attribute for all 1,000 rendered images and for about 97% of the shapes tokenizer's
    (K=256) reconstructions (tests/test_data.py checks rendered and blurred images).
    """
    if isinstance(image, torch.Tensor):
        check_tensor("image", image, ndim=3, floating=True, finite=True)
        image = image.detach().float().cpu().numpy()
    try:
        image = np.asarray(image, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"image must be a (3, S, S) tensor or array of numbers; got {type(image).__name__}") from None
    if image.ndim != 3 or image.shape[0] != 3 or image.shape[1] != image.shape[2] or image.shape[1] < 4:
        raise ValueError(f"image must have shape (3, S, S); got shape {tuple(image.shape)}")
    if not np.isfinite(image).all():
        raise ValueError(f"image must be finite; got {int((~np.isfinite(image)).sum())} non-finite values "
                         f"(of {image.size})")
    check_float("threshold", threshold, min_value=0.0, max_value=1.0)
    g = match_shape(image, threshold)
    if g is None:
        return None
    cx, cy = g["cx"], g["cy"]
    if abs(cx - 0.5) < 0.12 and abs(cy - 0.5) < 0.12:
        position = "center"
    else:
        position = ("top" if cy < 0.5 else "bottom") + " " + ("left" if cx < 0.5 else "right")
    size = "large" if g["radius"] > _RADIUS_SPLIT else "small"
    rgb = image[:, image.max(axis=0) > threshold].mean(axis=1)
    return ShapeSpec(g["shape"], _nearest_color(rgb), size, position)


def scene_dict(spec: ShapeSpec | None) -> dict:
    """A spec as a plain dict (``{}`` for ``None``), handy for tables."""
    if spec is not None and not isinstance(spec, ShapeSpec):
        raise TypeError(f"spec must be a ShapeSpec or None; got {type(spec).__name__}")
    return {} if spec is None else asdict(spec)
