"""Where the work runs: device choice, mixed precision, seeding and an environment report.

Device order: ``COURSE_DEVICE`` if set (``cuda``, ``mps`` or ``cpu``), else CUDA, then Apple
MPS, then the CPU. Mixed precision (bf16 autocast) is used on CUDA only; on the CPU it is slower
than float32 for the small models of this course. ``COURSE_AUTOCAST`` overrides that choice (see
:func:`autocast_dtype`): ``bf16`` runs the GPU's mixed-precision code path on any device, so a
laptop can test it; ``off`` keeps CUDA in float32 too.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
import sys

import numpy as np
import torch

from .validate import check_choice, check_int

DEVICE_ENV = "COURSE_DEVICE"
SEED_ENV = "COURSE_SEED"
AUTOCAST_ENV = "COURSE_AUTOCAST"
_DEVICES = ("cuda", "mps", "cpu")
_AUTOCAST = ("auto", "bf16", "off")


def pick_device(name: str | None = None) -> torch.device:
    """Return the device to train on.

    name: ``"cuda"``, ``"mps"``, ``"cpu"`` or ``None`` (read ``COURSE_DEVICE``, else the best available).
    Raises ``ValueError`` for an unknown name and ``RuntimeError`` if the asked-for device is absent.
    """
    if name is None:
        name = os.environ.get(DEVICE_ENV) or None
        source = DEVICE_ENV
    else:
        source = "name"
    if name is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    check_choice(source, name, _DEVICES)
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{source} asks for 'cuda' but no CUDA device is available; use 'cpu'")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError(f"{source} asks for 'mps' but MPS is not available; use 'cpu'")
    return torch.device(name)


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The dtype :func:`autocast` (and so :func:`course_lib.train.fit`) uses on ``device``; None: float32.

    ``COURSE_AUTOCAST`` unset or ``auto``: bf16 on CUDA, float32 elsewhere. ``bf16``: bf16 autocast on
    every device, the CPU included: the GPU's mixed-precision code path, run (slowly) on a laptop or in
    CI to test it. ``off``: float32 everywhere, CUDA included.
    """
    raw = os.environ.get(AUTOCAST_ENV, "").strip().lower() or "auto"
    check_choice(AUTOCAST_ENV, raw, _AUTOCAST)
    if raw == "off":
        return None
    if raw == "bf16" or torch.device(device).type == "cuda":
        return torch.bfloat16
    return None


def autocast(device: torch.device | str):
    """Context manager: bf16 autocast on CUDA, a no-op elsewhere (``COURSE_AUTOCAST`` changes that:
    see :func:`autocast_dtype`)."""
    device = torch.device(device)
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def draw_device(generator: torch.Generator | None, device: torch.device | str) -> torch.device:
    """Where random numbers for a tensor on ``device`` are drawn: on ``generator``'s device when one is
    given (its random stream decides the numbers), else on ``device`` itself (no host-to-device copy).
    Move the draw to ``device`` afterwards (a no-op when they are the same)."""
    return generator.device if generator is not None else torch.device(device)


def seed_offset() -> int:
    """``COURSE_SEED`` (default 0): added to every seed the course sets through :func:`seed_everything`
    and :func:`course_lib.train.fit`, so a robustness sweep can re-run a notebook with other random
    initialisations and batch orders. Data splits and generated datasets keep their own fixed seeds."""
    raw = os.environ.get(SEED_ENV, "").strip()
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{SEED_ENV} must be a non-negative integer; got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{SEED_ENV} must be a non-negative integer; got {value}")
    return value


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) with ``seed + seed_offset()``; return a CPU
    ``torch.Generator`` seeded likewise. With ``COURSE_SEED`` unset the offset is 0."""
    check_int("seed", seed, min_value=0)
    seed = seed + seed_offset()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def deterministic(device: torch.device | str) -> bool:
    """Ask torch for deterministic algorithms where it has them, on the CPU; return whether it did.

    On the CPU a few backward passes accumulate in parallel in an order that changes from run to run
    (indexing a codebook, ``codebook[idx]``, is one), so two runs of a notebook would differ in the
    last digits. With this on, the same profile gives the same numbers on the same machine. On CUDA
    it stays off: some kernels the course uses (``index_add_`` in the EMA update, attention) have no
    deterministic version there, so GPU runs are reproducible only up to such last-digit differences.
    """
    if torch.device(device).type != "cpu":
        return False
    torch.use_deterministic_algorithms(True, warn_only=True)  # an op without a deterministic version warns
    return True


def fast_math(device: torch.device | str) -> bool:
    """On CUDA, let float32 matmuls and convolutions use TF32 tensor cores (what the ``gpu`` profile
    runs with; the bf16 autocast of :func:`autocast` covers most of the work anyway) and reset the
    peak-memory counter the report reads. Returns whether it changed anything (False off CUDA)."""
    if torch.device(device).type != "cuda":
        return False
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.cuda.reset_peak_memory_stats()
    return True


def environment_report(device: torch.device | None = None) -> dict:
    """Versions, device and thread count, as a flat dict of strings/numbers."""
    import matplotlib
    device = device or pick_device()
    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda_available": torch.cuda.is_available(),
        "mixed_precision": "bf16 autocast" if autocast_dtype(device) is not None else "off (float32)",
    }
    for module in ("torchvision", "datasets", "ipywidgets", "sklearn", "mlxtend"):
        try:
            report[module] = __import__(module).__version__
        except Exception:  # pragma: no cover - optional packages
            report[module] = "not installed"
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
        report["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return report
