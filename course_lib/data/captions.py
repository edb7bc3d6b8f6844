"""Templated captions for digits: ``"a handwritten seven"``, ``"the digit 7"``, ...

Several templates and synonyms per digit, so a model must learn that different sentences
ask for the same picture.
"""
from __future__ import annotations

import random

import torch

from ..validate import as_int, check_int
from .digits import DIGIT_NAMES

DIGIT_TEMPLATES = (
    "a handwritten {word}",
    "the digit {word}",
    "the number {digit}",
    "a {word}",
    "a drawing of a {word}",
    "digit {digit}",
    "an image of the number {word}",
    "a scribbled {digit}",
)


def digit_caption(label: int, rng: random.Random | None = None, template: int | None = None) -> str:
    """One caption for ``label`` (an int 0..9, or a one-element integer tensor such as ``y[i]``); a random
    template from ``rng`` unless ``template`` is given. Floats (``3.7``, ``torch.tensor(3.0)``) are a ``TypeError``."""
    label = as_int("label", label, min_value=0, max_value=9)
    if rng is not None and not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random or None; got {type(rng).__name__}")
    if template is None:
        template = (rng or random).randrange(len(DIGIT_TEMPLATES))
    check_int("template", template, min_value=0, max_value=len(DIGIT_TEMPLATES) - 1)
    text = DIGIT_TEMPLATES[template].format(word=DIGIT_NAMES[label], digit=label)
    return text.replace("a eight", "an eight")


def digit_captions(labels, seed: int = 0) -> list[str]:
    """A caption per label (ints 0..9, a list or a 1-D integer tensor), reproducible under ``seed``."""
    check_int("seed", seed)
    if isinstance(labels, torch.Tensor):
        if labels.ndim != 1:
            raise ValueError(f"labels must be 1-D, one label per caption; got shape {tuple(labels.shape)}")
        labels = list(labels)
    rng = random.Random(seed)
    return [digit_caption(as_int(f"labels[{i}]", label, min_value=0, max_value=9), rng)
            for i, label in enumerate(labels)]


def caption_vocabulary() -> list[str]:
    """Every word any digit caption can contain (sorted)."""
    words = set()
    for label in range(10):
        for t in range(len(DIGIT_TEMPLATES)):
            words.update(digit_caption(label, template=t).split())
    return sorted(words)
