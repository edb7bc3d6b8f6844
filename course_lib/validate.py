"""Argument checks shared by every public entry point.

Each helper raises ``TypeError`` / ``ValueError`` with one sentence that names the
argument, what was expected and what came, so a learner sees the mistake, not a
stack of library internals.

The policies every public entry point of ``course_lib`` follows:

* **Finite values.** Float tensors holding NaN or +-inf are an error (``ValueError``:
  ``"x must be finite; got 3 NaN values (of 784)"``), and so are NaN and +-inf numbers
  (``"temperature must be a finite number > 0.0; got nan"``). One ``torch.isfinite(x).all()``
  per call; the counts are only worked out when the check fails.
* **Dtypes.** Images and latents are float32. A floating tensor of another precision (float64
  from NumPy, float16, bfloat16) is *converted* to the model's dtype at model entry points
  (:func:`to_model`); integer or bool tensors where floats are meant are a ``TypeError``.
  Codes and token ids are integer tensors (int64 where they index an embedding or codebook).
* **Devices.** A model's own methods (``forward``, ``encode``, ``decode``) want their input
  on the model's device and say so when it is not; the batch helpers documented as taking
  input on "any device" (``reconstruction_error``, ``predict_digits``, ``ImageTokenizer.encode``,
  ...) move each batch there themselves. Tensors on the ``meta`` device hold no data and are
  rejected everywhere. A ``device=`` argument naming hardware this machine lacks (``"cuda"``
  without CUDA) is a ``ValueError`` (:func:`check_device`).
* **Empty batches.** Functions that return one number per image return an empty result for
  zero images; functions that average over the images (``reconstruction_error``,
  ``negative_elbo``, ``digit_accuracy``, ...) raise a ``ValueError``, since a mean of nothing
  has no value.
* **Integer ranges.** Codes and token ids must lie in their range (never a silent negative
  index that wraps around); ints must be real ints: ``True`` is not 1 and ``3.0`` is not 3
  (NumPy integers are accepted; a 0-d integer tensor only where a function says so).
* **No round trips in hot loops.** Checks that must read a tensor's values (ranges, NaNs) run
  everywhere on the CPU; inside hot loops on a GPU they skip the read (:func:`reads_values`)
  unless ``COURSE_STRICT_CHECKS=1``, so a training step or a sampled token never waits for the
  device because of a check.
"""
from __future__ import annotations

import difflib
import math
import numbers
import os
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
    """Return ``value`` as an int if it is an int (or NumPy integer) in range, else raise a clear error.

    Bools, floats (even ``3.0``) and tensors are rejected: see :func:`as_int` for 0-d tensors.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {_describe(value)}")
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}; got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}; got {value}")
    return value


def as_int(name: str, value, *, min_value: int | None = None, max_value: int | None = None) -> int:
    """Like :func:`check_int`, but also takes a one-element integer tensor (e.g. ``y[i]``).

    A float or bool tensor is a ``TypeError`` (``torch.tensor(3.7)`` is not the label 3).
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be an int (or a one-element integer tensor); got {_describe(value)}"
                            + (f" holding {value.item():.6g}" if value.numel() == 1 and value.is_floating_point()
                               else f" holding {value.item()!r}" if value.numel() == 1 else ""))
        value = int(value.item())
    return check_int(name, value, min_value=min_value, max_value=max_value)


def check_float(name: str, value, *, min_value: float | None = None, max_value: float | None = None,
                strict_min: bool = False, finite: bool = True) -> float:
    """Return ``float(value)`` if it is a real number in range, else raise a clear error.

    NaN is always an error; +-inf too unless ``finite=False``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {_describe(value)}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        rng = []
        if min_value is not None:
            rng.append(f"{'>' if strict_min else '>='} {float(min_value)}")
        if max_value is not None:
            rng.append(f"<= {float(max_value)}")
        want = " ".join(["a finite number" if finite else "a number (not NaN)"] + [" and ".join(rng)] * bool(rng))
        raise ValueError(f"{name} must be {want}; got {value}")
    if min_value is not None and (value < min_value or (strict_min and value == min_value)):
        op = ">" if strict_min else ">="
        raise ValueError(f"{name} must be {op} {min_value}; got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}; got {value}")
    return value


def check_tensor(name: str, value, *, ndim: int | None = None, shape: Sequence[int | None] | None = None,
                 dtype: torch.dtype | Sequence[torch.dtype] | None = None, floating: bool = False,
                 integer: bool = False, finite: bool = False, nonempty: bool = False,
                 what: str = "item", hot: bool = False) -> torch.Tensor:
    """Check a tensor argument's type, rank, shape (``None`` = any size) and dtype.

    ``floating``: a float dtype; ``integer``: an integer dtype (not bool); ``finite``: no NaN or
    +-inf (:func:`check_finite`); ``nonempty``: at least one ``what`` along the first axis.
    ``hot``: the call sits in a hot loop (a forward pass, a loss): the finite check then reads values
    only where :func:`reads_values` allows; type, rank, shape and dtype are always checked.
    A tensor on the ``meta`` device (no data) is always rejected.

    Example: ``check_tensor("x", x, shape=(None, 1, 28, 28), floating=True, finite=True)``.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {_describe(value)}")
    if value.is_meta:
        raise ValueError(f"{name} must hold data (a tensor on the CPU or an accelerator); got a tensor of shape "
                         f"{tuple(value.shape)} on the meta device")
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
    if integer and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer tensor (e.g. torch.long); got dtype {value.dtype}")
    if dtype is not None:
        dtypes = (dtype,) if isinstance(dtype, torch.dtype) else tuple(dtype)
        if value.dtype not in dtypes:
            raise TypeError(f"{name} must have dtype {' or '.join(map(str, dtypes))}; got {value.dtype}")
    if nonempty and (value.ndim == 0 or value.shape[0] == 0):
        raise ValueError(f"{name} must hold at least one {what}; got shape {tuple(value.shape)}")
    if finite:
        check_finite(name, value, hot=hot)
    return value


def check_finite(name: str, value: torch.Tensor, *, hot: bool = False) -> torch.Tensor:
    """Float tensors must hold no NaN or +-inf; the message counts them. Other dtypes pass.

    hot: the call sits in a hot loop; the values are then read only where :func:`reads_values` allows
    (on a GPU a NaN made during training is still caught when ``fit`` reads the losses back)."""
    if hot and not reads_values(value):
        return value
    if (value.is_floating_point() or value.is_complex()) and value.numel() and not bool(torch.isfinite(value).all()):
        n_nan, n_inf = int(torch.isnan(value).sum()), int(torch.isinf(value).sum())
        parts = [f"{n} {kind} value{'s' if n != 1 else ''}" for n, kind in ((n_nan, "NaN"), (n_inf, "infinite")) if n]
        raise ValueError(f"{name} must be finite; got {' and '.join(parts)} (of {value.numel()})")
    return value


def check_range(name: str, value: torch.Tensor, low: float, high: float, tol: float = 1e-3,
                what: str = "values") -> torch.Tensor:
    """Values must lie in [low, high] (up to ``tol``), e.g. pixels in [0, 1]. Assumes a finite tensor."""
    if value.numel():
        lo, hi = torch.stack(torch.aminmax(value)).tolist()
        if lo < low - tol or hi > high + tol:
            raise ValueError(f"{name} must hold {what} in [{low:g}, {high:g}]; got values from {lo:.3g} to {hi:.3g}")
    return value


def to_model(name: str, value: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """A model's input on the model's terms: same device (else a ``ValueError`` naming both), and a
    floating ``value`` of another precision (float64, float16) converted to the model's dtype."""
    param = next(model.parameters(), None)
    if param is None:
        return value
    if value.device != param.device:
        raise ValueError(f"{name} must be on the model's device ({param.device}); got a tensor on {value.device} "
                         f"(move it with {name}.to({str(param.device)!r}))")
    if value.is_floating_point() and value.dtype != param.dtype:
        value = value.to(param.dtype)
    return value


def check_device(name: str, device) -> torch.device | None:
    """``None`` or a device this machine has: ``"cpu"``, ``"cuda"``/``"cuda:N"`` with CUDA, ``"mps"``.

    Returns the ``torch.device`` (or ``None``). Naming hardware that is not there is a
    ``ValueError`` here rather than an error deep inside torch later.
    """
    if device is None:
        return None
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name} must be None, a string such as 'cpu' or 'cuda', or a torch.device; "
                        f"got {_describe(device)}")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"{name} must name a device such as 'cpu', 'cuda' or 'cuda:0'; got {device!r} ({err})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} must be a device this machine has; got {device!r} but CUDA is not available "
                             "(use 'cpu', or None to pick the best device)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name} must be a device this machine has; got {device!r} but there "
                             f"{'is' if torch.cuda.device_count() == 1 else 'are'} only "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"{name} must be a device this machine has; got {device!r} but MPS is not available")
    elif dev.type == "meta":
        raise ValueError(f"{name} must be a device that holds data; got {device!r}")
    elif dev.type != "cpu":
        raise ValueError(f"{name} must be 'cpu', 'cuda' or 'mps'; got {device!r}")
    return dev


def reads_values(t: torch.Tensor) -> bool:
    """May a check read ``t``'s values without a device round trip? Yes on the CPU; on an accelerator
    only when ``COURSE_STRICT_CHECKS=1`` is set.

    Checks in hot loops (a model's forward pass, a training batch, one sampled token) ask this first:
    reading a CUDA tensor's values waits for the GPU to finish everything queued before it, once per
    step. Where they skip, course_lib built those tensors from data it checked once (tokenizers,
    datasets, prompts), and an out-of-range id still stops the run in the embedding lookup's
    device-side assert, only with a blunter message: rerun with ``COURSE_STRICT_CHECKS=1`` (or on the
    CPU) to get the clear one.
    """
    return t.device.type == "cpu" or os.environ.get("COURSE_STRICT_CHECKS", "") == "1"


def check_codes(name: str, codes: torch.Tensor, num_codes: int, *, hot: bool = False) -> torch.Tensor:
    """Integer codes must lie in ``0..num_codes - 1``; the message gives the range that came.

    hot: the call sits in a hot loop; the range is then checked only where :func:`reads_values`
    allows (dtype and shape always)."""
    check_tensor(name, codes, integer=True)
    if hot and not reads_values(codes):
        return codes
    if codes.numel():
        lo, hi = torch.stack(torch.aminmax(codes)).tolist()  # one pass, one sync
        if lo < 0 or hi >= num_codes:
            raise ValueError(f"{name} must lie in 0..{num_codes - 1}; got values from {lo} to {hi}")
    return codes
