"""Scoring what the mixed-sequence transformer writes and draws (notebooks 05-06).

* reading captions back: :func:`parse_digit` (the digit a caption names), :func:`parse_shape_caption`
  (the shape attributes it names), :func:`attribute_scores` (per-attribute and exact-match rates);
* samples as a set: :func:`diversity` (unique samples per prompt) and :func:`count_copies`
  (memorisation: generated code grids equal to a training grid).

Images are judged elsewhere, by models that never saw the transformer's output: the digit
classifier (``course_lib.models.classifier``) and the shapes read-back (``course_lib.data.read_scene``).
"""
from __future__ import annotations

from typing import Sequence

import torch

from .validate import check_tensor
from .vocabulary import split_words


# ----------------------------------------------------------------------------- reading captions
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def parse_digit(caption: str) -> int | None:
    """The digit a caption names (a numeral or a number word), or ``None`` if it names none or
    several different ones."""
    found = set()
    for w in split_words(caption):
        if w.isdigit() and len(w) == 1:
            found.add(int(w))
        elif w in _DIGIT_WORDS:
            found.add(_DIGIT_WORDS.index(w))
    return found.pop() if len(found) == 1 else None


_SHAPE_WORDS = {"circle": "circle", "disk": "circle", "square": "square", "box": "square", "triangle": "triangle"}
_SIZE_WORDS = {"small": "small", "little": "small", "tiny": "small", "large": "large", "big": "large"}
_COLOR_WORDS = ("red", "green", "blue", "yellow")


def parse_shape_caption(caption: str) -> dict:
    """Attributes a one-shape caption names: ``{"shape", "color", "size", "position"}`` (``None``
    where the caption names none, or more than one)."""
    words = split_words(caption)

    def one(values):
        values = set(values)
        return values.pop() if len(values) == 1 else None

    vertical = one("top" if w in ("top", "upper") else "bottom" for w in words if w in ("top", "upper", "bottom", "lower"))
    horizontal = one(w for w in words if w in ("left", "right"))
    center = any(w in ("center", "middle") for w in words)
    if center and vertical is None and horizontal is None:
        position = "center"
    elif vertical and horizontal and not center:
        position = f"{vertical} {horizontal}"
    else:
        position = None
    return {"shape": one(_SHAPE_WORDS[w] for w in words if w in _SHAPE_WORDS),
            "color": one(w for w in words if w in _COLOR_WORDS),
            "size": one(_SIZE_WORDS[w] for w in words if w in _SIZE_WORDS),
            "position": position}


def attribute_scores(predicted: Sequence[dict | None], truth: Sequence[dict]) -> tuple[dict, float]:
    """Per-attribute accuracy and exact-match rate of predicted attribute dicts (``None`` = nothing
    read) against the true ones."""
    keys = ("shape", "color", "size", "position")
    if len(predicted) != len(truth):
        raise ValueError(f"predicted and truth must have the same length; got {len(predicted)} and {len(truth)}")
    if not truth:
        raise ValueError("need at least one example to score")
    hits = {k: 0 for k in keys}
    exact = 0
    for p, t in zip(predicted, truth):
        p = p or {}
        ok = [p.get(k) == t[k] for k in keys]
        for k, good in zip(keys, ok):
            hits[k] += good
        exact += all(ok)
    n = len(truth)
    return {k: hits[k] / n for k in keys}, exact / n


# ----------------------------------------------------------------------------- diversity
def diversity(spans: torch.Tensor, groups: Sequence) -> float:
    """Mean over groups (e.g. prompts) of the fraction of unique rows among that group's samples.

    spans: (N, L) ids; groups: N labels, one per row; N >= 1.
    """
    check_tensor("spans", spans, ndim=2, nonempty=True, what="sample")
    if len(groups) != len(spans):
        raise ValueError(f"groups must hold one label per row of spans ({len(spans)}); got {len(groups)}")
    by_group: dict = {}
    for row, g in zip(spans.tolist(), groups):
        by_group.setdefault(g, []).append(tuple(row))
    return sum(len(set(rows)) / len(rows) for rows in by_group.values()) / len(by_group)


def count_copies(spans: torch.Tensor, training_codes: torch.Tensor) -> int:
    """How many generated code grids (N, h*w) equal some training grid exactly (memorisation).

    training_codes: (..., h, w) or (..., h*w) with the same h*w, any leading axes (e.g. (M, versions,
    h, w): every version of every training image counts).
    """
    check_tensor("spans", spans, ndim=2)
    check_tensor("training_codes", training_codes)
    n, shape = spans.shape[1], tuple(training_codes.shape)
    if not ((len(shape) >= 1 and shape[-1] == n) or (len(shape) >= 2 and shape[-2] * shape[-1] == n)):
        raise ValueError(f"training_codes must hold grids of {n} codes like spans, shape (..., h, w) or "
                         f"(..., {n}); got shape {shape}")
    train = {tuple(r) for r in training_codes.reshape(-1, spans.shape[1]).tolist()}
    return sum(tuple(r) in train for r in spans.reshape(len(spans), -1).tolist())
