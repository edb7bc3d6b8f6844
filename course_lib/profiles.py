"""Budgets: one switch picks how big and how long every notebook runs.

``COURSE_PROFILE`` = ``auto`` (default) | ``smoke`` | ``classroom`` | ``gpu``.
``auto`` means ``gpu`` when CUDA is available, else ``classroom``.

* ``smoke``: seconds per notebook, what CI executes; proves the code path, not the quality.
* ``classroom``: a 2-core CPU laptop reaches the course's quality targets in minutes.
* ``gpu``: more data, larger models, bf16 autocast.

Profiles change sizes and step counts, never the code path. A notebook states its settings in
plain sight::

    cfg = profile.choose(smoke=dict(epochs=1), classroom=dict(epochs=15), gpu=dict(epochs=30))
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .validate import check_choice

PROFILE_ENV = "COURSE_PROFILE"
PROFILES = ("smoke", "classroom", "gpu")


@dataclass(frozen=True)
class Profile:
    """The active budget. ``name`` is one of ``PROFILES``; ``requested`` is what was asked for."""

    name: str
    requested: str = "auto"

    @property
    def is_smoke(self) -> bool:
        return self.name == "smoke"

    def choose(self, *, smoke, classroom, gpu=None):
        """Return the value for the active profile (``gpu`` falls back to ``classroom``).

        When the values are dicts, ``gpu`` may list only what differs from ``classroom``.
        """
        if self.name == "smoke":
            return smoke
        if self.name == "gpu" and gpu is not None:
            if isinstance(gpu, dict) and isinstance(classroom, dict):
                return {**classroom, **gpu}
            return gpu
        return classroom

    def __str__(self) -> str:
        suffix = f" (from {self.requested!r})" if self.requested != self.name else ""
        return f"{self.name}{suffix}"


def get_profile(name: "str | Profile | None" = None) -> Profile:
    """Resolve the profile from ``name`` (a name or a :class:`Profile`, returned as is) or
    ``COURSE_PROFILE`` (default ``auto``)."""
    if isinstance(name, Profile):
        return name
    if name is not None and not isinstance(name, str):
        raise TypeError(f"profile must be a Profile, a profile name or None; got {type(name).__name__}")
    source = "name" if name is not None else PROFILE_ENV
    requested = name if name is not None else (os.environ.get(PROFILE_ENV) or "auto")
    check_choice(source, requested, ("auto",) + PROFILES)
    if requested == "auto":
        return Profile("gpu" if torch.cuda.is_available() else "classroom", "auto")
    return Profile(requested, requested)
