"""One fit loop for every notebook.

``fit`` trains any ``nn.Module`` with a loss function you pass in, on tensors (shuffled
mini-batches drawn from them) or on any iterable of batches. It keeps a loss history, shows a
``tqdm.auto`` progress bar (silent when ``TQDM_DISABLE`` is set, as in CI), clips gradients, and
uses bf16 autocast on CUDA (``COURSE_AUTOCAST=bf16`` forces it on any device, ``off`` turns it off:
see :func:`course_lib.device.autocast_dtype`).

No waiting for the device at every step: the losses and logged values stay on the device as 0-d
tensors and are read back to the host together, every ``sync_every`` steps (or about once a second),
when the progress bar is updated, and at the end. Tensor data is moved to the device once; each
batch is then indexed there. The numbers are the same as with a read-back at every step.

Training length is always a fixed number of steps, so every machine learns the same thing; a slower
one only takes longer. ``max_seconds`` is a safety net, not a plan: when it stops a run early it says
so loudly (a printed line and a ``RuntimeWarning``) and the run is listed in :data:`CUT_SHORT`, which
the notebook's metrics file and the course report carry.

The loss function sees ``(model, batch)`` and returns either a scalar loss or
``(loss, {"name": value, ...})``; the extra values are logged beside the loss. A value may be a
Python number or a one-element tensor; prefer a detached tensor (``x.detach()``, not ``float(x)``):
``float`` makes the host wait for the device at every step.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from .device import autocast, seed_offset
from .validate import check_float, check_int

Batch = tuple[torch.Tensor, ...]

# One line per training run that the wall-clock guard stopped early, in this process (see module doc).
CUT_SHORT: list[str] = []

SYNC_EVERY = 50       # steps between read-backs of the loss history from the device (fit's sync_every)
SYNC_SECONDS = 1.0    # ... or sooner, once this much wall-clock time has passed since the last one


@dataclass
class History:
    """What ``fit`` saw: one entry per optimisation step.

    loss: the loss of each step (floats); metrics: name -> the value logged at each step that logged
    it (floats); seconds: training wall-clock time; steps: optimisation steps taken. Within ``fit``
    the newest entries arrive in bulk (see the module doc); an ``on_step`` hook and the caller after
    ``fit`` always see every step.
    """

    loss: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    steps: int = 0
    stopped_by_budget: bool = False

    def smoothed(self, name: str = "loss", window: int = 20) -> list[float]:
        """Running mean of a logged series over ``window`` steps."""
        values = self.loss if name == "loss" else self.metrics[name]
        out, total = [], 0.0
        for i, v in enumerate(values):
            total += v
            if i >= window:
                total -= values[i - window]
            out.append(total / min(i + 1, window))
        return out

    def first_last(self, name: str = "loss", window: int = 20) -> tuple[float, float]:
        """Mean of the first and of the last ``window`` values: did it learn?"""
        values = self.loss if name == "loss" else self.metrics[name]
        w = max(1, min(window, len(values) // 2))
        return sum(values[:w]) / w, sum(values[-w:]) / w


def _batches(data, batch_size: int, generator: torch.Generator, device: torch.device) -> Iterable[Batch]:
    """Endless batches. Tensor data is moved to ``device`` once and indexed there: each epoch's order
    is drawn with the CPU ``generator`` (so every device sees the same batches for the same seed) and
    copied to the device once per epoch, not once per step. Other iterables: as they come."""
    if isinstance(data, torch.Tensor):
        data = (data,)
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data):
        n = len(data[0])
        for t in data:
            if len(t) != n:
                raise ValueError(f"data tensors must have the same length; got {[len(t) for t in data]}")
        if n == 0:
            raise ValueError("data must hold at least one example; got 0")
        data = tuple(t.to(device) for t in data)
        while True:
            order = torch.randperm(n, generator=generator).to(device)
            for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
                idx = order[start:start + batch_size]
                yield tuple(t[idx] for t in data)
    else:
        while True:
            empty = True
            for batch in data:
                empty = False
                yield _move(batch if isinstance(batch, (tuple, list)) else (batch,), device)
            if empty:
                raise ValueError("data yielded no batches")


def _move(batch: Batch, device: torch.device) -> Batch:
    return tuple(t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in batch)


def _to_host(values: list[torch.Tensor]) -> list[float]:
    """0-d tensors -> ``[float(t) for t in values]``, with one copy to the host per (device, dtype)
    (the first waits for the device; the others find their values ready), not one per value."""
    out: list[float] = [0.0] * len(values)
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(values):
        groups.setdefault((t.device, t.dtype), []).append(i)
    for idx in groups.values():
        for i, v in zip(idx, torch.stack([values[i] for i in idx]).cpu().tolist()):
            out[i] = float(v)
    return out


class _Pending:
    """Losses and logged values of the steps not yet read back to the host, and the read-back."""

    def __init__(self, history: History):
        self.history = history
        self.tensors: list[torch.Tensor] = []                    # values still on the device
        self.steps: list[tuple[int, dict[str, int | float]]] = []  # per step: loss slot, {name: slot or float}
        self.last = time.perf_counter()

    def __len__(self) -> int:
        return len(self.steps)

    def _slot(self, value: torch.Tensor) -> int:
        self.tensors.append(value)
        return len(self.tensors) - 1

    def add(self, loss: torch.Tensor, extra: dict) -> None:
        """Keep this step's loss and logged values: tensors by reference (an int slot), numbers as floats."""
        logged: dict[str, int | float] = {}
        for name, value in extra.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise ValueError(f"logged value {name!r} must be a number or a one-element tensor; got a "
                                     f"tensor of shape {tuple(value.shape)}")
                # a copy: the value may be a view of a buffer that later steps change in place
                logged[name] = self._slot(value.detach().reshape(()).clone())
            else:
                logged[name] = float(value)
        self.steps.append((self._slot(loss.detach().reshape(())), logged))

    def flush(self) -> None:
        """Append the pending steps to the history (one wait for the device). A non-finite loss raises
        ``FloatingPointError`` naming its step; the steps before it are kept."""
        if not self.steps:
            return
        host = _to_host(self.tensors)
        steps, self.tensors, self.steps = self.steps, [], []
        self.last = time.perf_counter()
        h = self.history
        for loss_slot, logged in steps:
            loss = host[loss_slot]
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at step {h.steps}; try a smaller lr or check the inputs")
            h.loss.append(loss)
            for name, value in logged.items():
                h.metrics.setdefault(name, []).append(host[value] if isinstance(value, int) else value)
            h.steps += 1


def fit(model: nn.Module, loss_fn: Callable, data, *, steps: int, batch_size: int = 64,
        lr: float = 1e-3, optimizer: torch.optim.Optimizer | None = None,
        device: torch.device | str | None = None, max_seconds: float | None = None,
        clip_grad: float | None = 1.0, weight_decay: float = 0.0, warmup_steps: int = 0,
        cosine: bool = False, seed: int = 0, desc: str = "training", history: History | None = None,
        on_step: Callable[[int, History], None] | None = None, sync_every: int = SYNC_EVERY,
        ema_decay: float | None = None) -> History:
    """Train ``model`` for exactly ``steps`` optimisation steps.

    ``max_seconds`` is only a guard: if it is hit, training stops early, loudly (see module doc).

    data: a tensor, a tuple of equal-length tensors (moved to the device once; shuffled each epoch
    with ``seed``), or an iterable of batches. loss_fn(model, batch) -> loss or (loss, dict) (values:
    numbers or one-element tensors). Returns a :class:`History`; pass one back in to continue a curve.
    ``warmup_steps`` ramps the learning rate up linearly; ``cosine`` then decays it to 10%.
    ``on_step(step, history)`` runs after each step (e.g. to log codebook usage) and sees the history
    up to that step, so with a hook the losses are read back from the device at every step (on a GPU,
    the host then waits for it at every step; on the CPU that costs nothing).
    ``ema_decay``: keep an exponential moving average of the parameters (Polyak averaging; after
    each step ``avg += (1 - ema_decay) * (param - avg)``, on the device) and leave the model holding
    it at the end: the average of the last ~``1 / (1 - ema_decay)`` steps, which is usually a little
    better than the last step's weights. The hook and the history see the raw weights during training.
    ``sync_every``: at most this many steps between read-backs of the losses (see module doc); a
    non-finite loss is caught at the read-back after it (``FloatingPointError`` naming its step), so
    the model may have taken up to ``sync_every`` more steps by then.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (model, batch) -> loss; got {type(loss_fn).__name__}")
    check_int("steps", steps, min_value=1)
    check_int("batch_size", batch_size, min_value=1)
    check_float("lr", lr, min_value=0.0, strict_min=True)
    check_int("sync_every", sync_every, min_value=1)
    if max_seconds is not None:
        check_float("max_seconds", max_seconds, min_value=0.0, strict_min=True)
    if ema_decay is not None:
        check_float("ema_decay", ema_decay, min_value=0.0, max_value=1.0)
        if ema_decay >= 1.0:
            raise ValueError(f"ema_decay must be below 1 (1 would never move the average); got {ema_decay}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    params = [p.detach() for p in model.parameters() if p.requires_grad]   # views: they follow the updates
    average = [p.clone() for p in params] if ema_decay is not None else None
    if optimizer is None:
        # fused AdamW on CUDA: one kernel for the whole update instead of one per parameter tensor
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay,
                                      fused=True if device.type == "cuda" else None)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    history = history or History()
    pending = _Pending(history)
    generator = torch.Generator().manual_seed(seed + seed_offset())
    batches = _batches(data, batch_size, generator, device)
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, leave=False, mininterval=0.5)
    try:
        for step in bar:
            if warmup_steps or cosine:
                if step < warmup_steps:
                    scale = (step + 1) / warmup_steps
                elif cosine:
                    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
                    scale = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
                else:
                    scale = 1.0
                for group, base in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base * scale
            batch = next(batches)
            with autocast(device):
                out = loss_fn(model, batch)
            loss, extra = (out if isinstance(out, tuple) else (out, {}))
            if not isinstance(loss, torch.Tensor):
                raise TypeError(f"loss_fn must return a tensor loss (or (loss, dict)); got {type(loss).__name__}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            optimizer.step()
            if average is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(average, params, 1.0 - ema_decay)
            pending.add(loss, extra)
            if on_step is not None or len(pending) >= sync_every or time.perf_counter() - pending.last >= SYNC_SECONDS:
                pending.flush()
                bar.set_postfix(loss=f"{history.loss[-1]:.4f}", refresh=False)
            if on_step is not None:
                on_step(history.steps, history)
            if max_seconds is not None and time.perf_counter() - start > max_seconds and step + 1 < steps:
                history.stopped_by_budget = True
                message = (f"{desc}: CUT SHORT by the wall-clock guard after {step + 1} of {steps} steps "
                           f"(max_seconds={max_seconds:g}); its results are not those of the profile")
                CUT_SHORT.append(message)
                print(f"WARNING: {message}")
                warnings.warn(message, RuntimeWarning, stacklevel=2)
                break
        pending.flush()
    except Exception as err:
        # a non-finite loss read back only now explains what went wrong after it (say, a NaN check
        # of the next step's activations): report it first; otherwise keep the history up to date
        try:
            pending.flush()
        except FloatingPointError as nan:
            raise nan from err
        except Exception:  # the device itself failed: the original error says more
            pass
        raise
    except BaseException:  # KeyboardInterrupt: keep what was trained in the history
        try:
            pending.flush()
        except Exception:
            pass
        raise
    finally:
        bar.close()
    if average is not None:
        torch._foreach_copy_(params, average)
    history.seconds += time.perf_counter() - start
    model.eval()
    return history


@torch.no_grad()
def evaluate(fn: Callable[[Batch], torch.Tensor], data, *, batch_size: int = 500,
             device: torch.device | str | None = None) -> float:
    """Mean of ``fn(batch)`` (a per-example tensor) over all of ``data`` (tensor or tuple of tensors)."""
    if isinstance(data, torch.Tensor):
        data = (data,)
    n = len(data[0])
    total = 0.0
    for start in range(0, n, batch_size):
        batch = tuple(t[start:start + batch_size] for t in data)
        if device is not None:
            batch = _move(batch, torch.device(device))
        values = fn(batch)
        total += float(values.float().sum())
    return total / n
