"""Argument checks shared by every public entry point.

Each helper raises ``TypeError`` / ``ValueError`` with one sentence that names the
argument, what was expected and what came, so a learner sees the mistake, not a
stack of library internals.
"""
from __future__ import annotations

import difflib
from typing import Iterable, Sequence

import torch


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def check_choice(name: str, value, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices`` else raise ``ValueError`` listing them."""
    choices = list(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {choices}; got {_describe(value)}")
    if value not in choices:
        close = difflib.get_close_matches(value, choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name} must be one of {choices}; got {value!r}.{hint}")
    return value


def check_int(name: str, value, *, min_value: int | None = None, max_value: int | None = None) -> int:
    """Return ``value`` if it is an int in range, else raise a clear error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {_describe(value)}")
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}; got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}; got {value}")
    return value


def check_float(name: str, value, *, min_value: float | None = None, max_value: float | None = None,
                strict_min: bool = False) -> float:
    """Return ``float(value)`` if it is a real number in range, else raise a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {_describe(value)}")
    value = float(value)
    if min_value is not None and (value < min_value or (strict_min and value == min_value)):
        op = ">" if strict_min else ">="
        raise ValueError(f"{name} must be {op} {min_value}; got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}; got {value}")
    return value


def check_tensor(name: str, value, *, ndim: int | None = None, shape: Sequence[int | None] | None = None,
                 dtype: torch.dtype | Sequence[torch.dtype] | None = None, floating: bool = False) -> torch.Tensor:
    """Check a tensor argument's type, rank, shape (``None`` = any size) and dtype.

    Example: ``check_tensor("x", x, shape=(None, 1, 28, 28), floating=True)``.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {_describe(value)}")
    if shape is not None:
        ndim = len(shape)
    if ndim is not None and value.ndim != ndim:
        if shape is not None:
            want = "shape (" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        else:
            want = f"{ndim} dimensions"
        raise ValueError(f"{name} must have {want}; got shape {tuple(value.shape)}")
    if shape is not None:
        for axis, (want_size, got_size) in enumerate(zip(shape, value.shape)):
            if want_size is not None and want_size != got_size:
                want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
                raise ValueError(f"{name} must have shape {want}; got shape {tuple(value.shape)} "
                                 f"(axis {axis} is {got_size}, expected {want_size})")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {value.dtype}")
    if dtype is not None:
        dtypes = (dtype,) if isinstance(dtype, torch.dtype) else tuple(dtype)
        if value.dtype not in dtypes:
            raise TypeError(f"{name} must have dtype {' or '.join(map(str, dtypes))}; got {value.dtype}")
    return value


def check_codes(name: str, codes: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Integer codes must lie in ``0..num_codes - 1``; the message gives the range that came."""
    if codes.numel():
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi >= num_codes:
            raise ValueError(f"{name} must lie in 0..{num_codes - 1}; got values from {lo} to {hi}")
    return codes
