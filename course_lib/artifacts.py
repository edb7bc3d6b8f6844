"""Save and load trained models safely, so one notebook can hand a model to the next.

An artifact ``NAME`` is **one file**, ``data/artifacts/NAME.pt``, holding the ``state_dict`` and its
metadata together (hyperparameters, the recipe's hash, metrics, versions), written to a temporary
file and renamed. A reader therefore sees the old artifact or the new one, never weights of one
save with the metadata of another, and a save that fails leaves the previous artifact as it was.
Two processes saving the same name at once leave one of the two, intact. ``NAME.json`` beside it
is a readable copy of the metadata for people; loading never depends on it.

**Identity is the recipe.** ``hparams`` should hold everything that shapes the weights (architecture,
data, steps, learning rate, seed, a recipe version). Their canonical hash (:func:`recipe_hash`) is
stored; ``load_artifact(..., recipe=...)`` loads only an artifact made by exactly that recipe and
otherwise says in one line which settings differ, so the caller rebuilds it.

Loading uses ``torch.load(..., weights_only=True)``. A missing, corrupt, stale or foreign artifact
is reported in one line and :func:`load_artifact` returns ``None``.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .paths import artifacts_dir

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name.startswith("."):
        raise ValueError(f"name must be letters, digits, '_', '-' or '.' (a file stem); got {name!r}")
    return name


@functools.lru_cache(maxsize=1)
def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0o666 minus the umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    The file gets the usual permissions (the umask), not the owner-only ones of its temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


FORMAT = 2  # version of the file layout: {"format", "meta" (JSON text), "state_dict"}


def _canonical(value):
    """JSON-ready copy of ``value`` in which tuples are lists and keys are strings, so that
    ``(7, 7)`` and ``[7, 7]`` (what a JSON round-trip makes of a tuple) compare equal."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def recipe_hash(recipe: dict) -> str:
    """A short, stable hash of a recipe dict (order of keys and tuple-vs-list do not matter)."""
    if not isinstance(recipe, dict):
        raise TypeError(f"recipe must be a dict; got {type(recipe).__name__}")
    text = json.dumps(_canonical(recipe), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_artifact(name: str, model: nn.Module, hparams: dict, *, metrics: dict | None = None,
                  directory: Path | None = None) -> Path:
    """Save ``model.state_dict()`` with ``hparams`` (+ ``metrics``) as artifact ``name``; return its path.

    hparams must be JSON-serialisable: they are what :func:`load_artifact` passes back to the
    builder, and their hash is the artifact's identity, so store the full recipe.
    """
    _check_name(name)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(hparams, dict):
        raise TypeError(f"hparams must be a dict; got {type(hparams).__name__}")
    directory = Path(directory) if directory is not None else artifacts_dir()
    meta = {"name": name, "hparams": _canonical(hparams), "recipe_hash": recipe_hash(hparams),
            "metrics": metrics or {}, "torch": torch.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        meta_text = json.dumps(meta, indent=2, sort_keys=True)
    except (TypeError, ValueError) as err:  # fail before writing anything
        raise TypeError(f"hparams and metrics must be JSON-serialisable ({err})") from None
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "meta": meta_text,
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, buffer)
    pt = directory / f"{name}.pt"
    atomic_write_bytes(pt, buffer.getvalue())           # the artifact: weights and metadata as one unit
    atomic_write_bytes(directory / f"{name}.json", (meta_text + "\n").encode())   # a readable copy
    return pt


def _first_misfit(model: nn.Module, state: dict) -> str:
    """One sentence naming the first tensor whose name or shape does not fit ``model``."""
    own = model.state_dict()
    for key, value in state.items():
        if key not in own:
            return f"the file has tensor {key!r}, which the model does not have"
        if tuple(own[key].shape) != tuple(value.shape):
            return (f"tensor {key!r} has shape {tuple(value.shape)} in the file but "
                    f"{tuple(own[key].shape)} in the model")
    missing = [k for k in own if k not in state]
    return f"the model's tensor {missing[0]!r} is missing from the file" if missing else "it does not load"


def load_artifact(name: str, build: Callable[[dict], nn.Module], *, recipe: dict | None = None,
                  expected: dict | None = None, directory: Path | None = None, map_location="cpu",
                  verbose: bool = True, say_loaded: bool = True):
    """Load artifact ``name``: returns ``(model, meta)`` or ``None`` if it must be rebuilt.

    build(hparams) -> an untrained module of the right shape. ``recipe``: the full recipe the
    caller would train with; the artifact is loaded only if it was made by exactly that recipe
    (same hash). ``expected``: a few hparams that must match (tuples and lists compare equal).
    Anything else (missing, corrupt, another recipe, weights that do not fit) is reported in one
    line (when ``verbose``) and returns ``None``. ``say_loaded=False`` leaves the "loaded" line to
    the caller (which can say more about what it loaded).
    """
    _check_name(name)
    directory = Path(directory) if directory is not None else artifacts_dir()
    pt = directory / f"{name}.pt"

    def say(msg):
        if verbose:
            print(f"artifact {name!r}: {msg}")
        return None

    if not pt.exists():
        return say(f"not found in {directory}; it will be rebuilt")
    try:
        blob = torch.load(io.BytesIO(pt.read_bytes()), map_location=map_location, weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            return say(f"written in an older file format than this course_lib reads ({FORMAT}); it will be rebuilt")
        meta = json.loads(blob["meta"])
        state = blob["state_dict"]
    except Exception as err:
        return say(f"unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                   "it will be rebuilt")
    hparams = meta.get("hparams", {})
    if recipe is not None and meta.get("recipe_hash") != recipe_hash(recipe):
        want = _canonical(recipe)
        diff = [f"{k}={hparams.get(k, '<missing>')!r} (wanted {want.get(k, '<missing>')!r})"
                for k in sorted(set(want) | set(hparams)) if hparams.get(k, "<missing>") != want.get(k, "<missing>")]
        return say(f"made by another recipe ({', '.join(diff[:4]) or 'hash differs'}); it will be rebuilt")
    for key, want in (expected or {}).items():
        got = hparams.get(key)
        if got != _canonical(want):
            return say(f"hparam {key}={got!r} but {want!r} is needed; it will be rebuilt")
    try:
        model = build(hparams)
    except Exception as err:
        return say(f"its hparams do not build a model ({type(err).__name__}: {err}); it will be rebuilt")
    try:
        model.load_state_dict(state)
    except Exception:
        return say(f"does not fit the model: {_first_misfit(model, state)}; it will be rebuilt")
    model.eval()
    if verbose and say_loaded:
        print(f"artifact {name!r}: loaded (saved {meta.get('created', '?')})")
    return model, meta
