"""Templated captions for digits: ``"a handwritten seven"``, ``"the digit 7"``, ...

Several templates and synonyms per digit, so a model must learn that different sentences
ask for the same picture.
"""
from __future__ import annotations

import random

from ..validate import check_int
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
    """One caption for ``label`` (0..9); a random template from ``rng`` unless ``template`` is given."""
    check_int("label", int(label) if hasattr(label, "item") else label, min_value=0, max_value=9)
    label = int(label)
    if template is None:
        template = (rng or random).randrange(len(DIGIT_TEMPLATES))
    check_int("template", template, min_value=0, max_value=len(DIGIT_TEMPLATES) - 1)
    text = DIGIT_TEMPLATES[template].format(word=DIGIT_NAMES[label], digit=label)
    return text.replace("a eight", "an eight")


def digit_captions(labels, seed: int = 0) -> list[str]:
    """A caption per label, reproducible under ``seed``."""
    rng = random.Random(seed)
    return [digit_caption(int(label), rng) for label in labels]


def caption_vocabulary() -> list[str]:
    """Every word any digit caption can contain (sorted)."""
    words = set()
    for label in range(10):
        for t in range(len(DIGIT_TEMPLATES)):
            words.update(digit_caption(label, template=t).split())
    return sorted(words)
