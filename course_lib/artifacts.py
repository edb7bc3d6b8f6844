"""Save and load trained models safely, so one notebook can hand a model to the next.

An artifact ``NAME`` is two files in ``data/artifacts/``: ``NAME.pt`` (a ``state_dict``) and
``NAME.json`` (hyperparameters, metrics, the ``.pt`` file's SHA-256, versions). Both are written
to a temporary file and renamed, so a crash never leaves half a file. Loading uses
``torch.load(..., weights_only=True)``. A missing, corrupt or mismatched artifact is reported in
one line and :func:`load_artifact` returns ``None`` so the caller rebuilds it.
"""
from __future__ import annotations

import functools
import hashlib
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


def save_artifact(name: str, model: nn.Module, hparams: dict, *, metrics: dict | None = None,
                  directory: Path | None = None) -> Path:
    """Save ``model.state_dict()`` and a JSON of ``hparams`` (+ ``metrics``); return the ``.pt`` path.

    hparams must be JSON-serialisable: they are what :func:`load_artifact` passes back to the
    builder, so store everything needed to rebuild the model.
    """
    _check_name(name)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(hparams, dict):
        raise TypeError(f"hparams must be a dict; got {type(hparams).__name__}")
    directory = Path(directory) if directory is not None else artifacts_dir()
    import io
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    blob = buffer.getvalue()
    meta = {"name": name, "hparams": hparams, "metrics": metrics or {},
            "sha256": hashlib.sha256(blob).hexdigest(), "torch": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    json.dumps(meta)  # fail before writing anything if hparams are not serialisable
    pt = directory / f"{name}.pt"
    atomic_write_bytes(pt, blob)
    atomic_write_json(directory / f"{name}.json", meta)
    return pt


def load_artifact(name: str, build: Callable[[dict], nn.Module], *, expected: dict | None = None,
                  directory: Path | None = None, map_location="cpu", verbose: bool = True):
    """Load artifact ``name``: returns ``(model, meta)`` or ``None`` if it must be rebuilt.

    build(hparams) -> an untrained module of the right shape. ``expected``: hparams that must
    match (e.g. the codebook size notebook 05 wants); a mismatch counts as "rebuild".
    """
    _check_name(name)
    directory = Path(directory) if directory is not None else artifacts_dir()
    pt, js = directory / f"{name}.pt", directory / f"{name}.json"

    def say(msg):
        if verbose:
            print(f"artifact {name!r}: {msg}")
        return None

    if not pt.exists() or not js.exists():
        return say(f"not found in {directory}; it will be rebuilt")
    try:
        meta = json.loads(js.read_text())
        blob = pt.read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
            return say("checksum does not match its JSON (corrupt or half-written); it will be rebuilt")
        import io
        state = torch.load(io.BytesIO(blob), map_location=map_location, weights_only=True)
    except Exception as err:
        return say(f"unreadable ({type(err).__name__}: {err}); it will be rebuilt")
    for key, want in (expected or {}).items():
        got = meta.get("hparams", {}).get(key)
        if got != want:
            return say(f"hparam {key}={got!r} but {want!r} is needed; it will be rebuilt")
    try:
        model = build(meta["hparams"])
        model.load_state_dict(state)
    except Exception as err:
        return say(f"does not fit the model ({type(err).__name__}); it will be rebuilt")
    model.eval()
    if verbose:
        print(f"artifact {name!r}: loaded (saved {meta.get('created', '?')})")
    return model, meta
