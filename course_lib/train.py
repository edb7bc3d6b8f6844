"""One fit loop for every notebook.

``fit`` trains any ``nn.Module`` with a loss function you pass in, on tensors (shuffled
mini-batches drawn from them) or on any iterable of batches. It keeps a loss history, shows a
``tqdm.auto`` progress bar (silent when ``TQDM_DISABLE`` is set, as in CI), clips gradients, and
uses bf16 autocast on CUDA.

Training length is always a fixed number of steps, so every machine learns the same thing; a slower
one only takes longer. ``max_seconds`` is a safety net, not a plan: when it stops a run early it says
so loudly (a printed line and a ``RuntimeWarning``) and the run is listed in :data:`CUT_SHORT`, which
the notebook's metrics file and the course report carry.

The loss function sees ``(model, batch)`` and returns either a scalar loss or
``(loss, {"name": value, ...})``; the extra values are logged beside the loss.
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


@dataclass
class History:
    """What ``fit`` saw: one entry per optimisation step."""

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


def _batches(data, batch_size: int, generator: torch.Generator) -> Iterable[Batch]:
    if isinstance(data, torch.Tensor):
        data = (data,)
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data):
        n = len(data[0])
        for t in data:
            if len(t) != n:
                raise ValueError(f"data tensors must have the same length; got {[len(t) for t in data]}")
        if n == 0:
            raise ValueError("data must hold at least one example; got 0")
        while True:
            order = torch.randperm(n, generator=generator)
            for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
                idx = order[start:start + batch_size].to(data[0].device)
                yield tuple(t[idx] for t in data)
    else:
        while True:
            empty = True
            for batch in data:
                empty = False
                yield batch if isinstance(batch, (tuple, list)) else (batch,)
            if empty:
                raise ValueError("data yielded no batches")


def _move(batch: Batch, device: torch.device) -> Batch:
    return tuple(t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in batch)


def fit(model: nn.Module, loss_fn: Callable, data, *, steps: int, batch_size: int = 64,
        lr: float = 1e-3, optimizer: torch.optim.Optimizer | None = None,
        device: torch.device | str | None = None, max_seconds: float | None = None,
        clip_grad: float | None = 1.0, weight_decay: float = 0.0, warmup_steps: int = 0,
        cosine: bool = False, seed: int = 0, desc: str = "training", history: History | None = None,
        on_step: Callable[[int, History], None] | None = None) -> History:
    """Train ``model`` for exactly ``steps`` optimisation steps.

    ``max_seconds`` is only a guard: if it is hit, training stops early, loudly (see module doc).

    data: a tensor, a tuple of equal-length tensors (shuffled each epoch with ``seed``), or an
    iterable of batches. loss_fn(model, batch) -> loss or (loss, dict). Returns a
    :class:`History`; pass one back in to continue a curve.
    ``warmup_steps`` ramps the learning rate up linearly; ``cosine`` then decays it to 10%.
    ``on_step(step, history)`` runs after each step (e.g. to log codebook usage).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (model, batch) -> loss; got {type(loss_fn).__name__}")
    check_int("steps", steps, min_value=1)
    check_int("batch_size", batch_size, min_value=1)
    check_float("lr", lr, min_value=0.0, strict_min=True)
    if max_seconds is not None:
        check_float("max_seconds", max_seconds, min_value=0.0, strict_min=True)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    history = history or History()
    generator = torch.Generator().manual_seed(seed + seed_offset())
    batches = _batches(data, batch_size, generator)
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, leave=False, mininterval=0.5)
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
        batch = _move(next(batches), device)
        with autocast(device):
            out = loss_fn(model, batch)
        loss, extra = (out if isinstance(out, tuple) else (out, {}))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {history.steps}; "
                                     "try a smaller lr or check the inputs")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        history.loss.append(float(loss.detach()))
        for name, value in extra.items():
            history.metrics.setdefault(name, []).append(float(value))
        history.steps += 1
        if on_step is not None:
            on_step(history.steps, history)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
        if max_seconds is not None and time.perf_counter() - start > max_seconds and step + 1 < steps:
            history.stopped_by_budget = True
            message = (f"{desc}: CUT SHORT by the wall-clock guard after {step + 1} of {steps} steps "
                       f"(max_seconds={max_seconds:g}); its results are not those of the profile")
            CUT_SHORT.append(message)
            print(f"WARNING: {message}")
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            break
    bar.close()
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
