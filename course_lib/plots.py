"""Pictures used across notebooks: image grids, loss curves, side-by-side reconstructions."""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .validate import check_tensor


def _to_numpy_images(images) -> np.ndarray:
    """(N, C, H, W) tensor/array in [0, 1] -> (N, H, W) or (N, H, W, 3) float array."""
    if isinstance(images, torch.Tensor):
        check_tensor("images", images, ndim=4)
        images = images.detach().float().cpu().numpy()
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1 or 3, H, W); got shape {images.shape}")
    images = np.clip(images, 0.0, 1.0)
    return images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)


def show_images(images, titles: Sequence[str] | None = None, ncols: int = 10, scale: float = 1.1,
                suptitle: str | None = None, ax_titlesize: int = 8):
    """Show a grid of images (N, 1|3, H, W) in [0, 1]; returns the figure."""
    arr = _to_numpy_images(images)
    n = len(arr)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows * (1.25 if titles else 1)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(arr[i], cmap="gray" if arr.ndim == 3 else None, vmin=0, vmax=1, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=ax_titlesize)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_reconstructions(originals, reconstructions: dict | torch.Tensor, n: int = 10, scale: float = 1.0):
    """Originals on the top row, one row per reconstruction (a dict name -> images) below."""
    if not isinstance(reconstructions, dict):
        reconstructions = {"reconstruction": reconstructions}
    rows = {"original": originals, **reconstructions}
    fig, axes = plt.subplots(len(rows), n, figsize=(scale * n, scale * len(rows) + 0.3), squeeze=False)
    for r, (name, imgs) in enumerate(rows.items()):
        arr = _to_numpy_images(imgs[:n])
        for c in range(n):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(arr):
                ax.imshow(arr[c], cmap="gray" if arr.ndim == 3 else None, vmin=0, vmax=1, interpolation="nearest")
        axes[r, 0].text(-0.1, 0.5, name, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def plot_losses(curves: dict, smooth: int = 20, ylabel: str = "loss", logy: bool = False, ax=None):
    """Plot several loss curves: ``curves`` maps name -> list of per-step values (or a History)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in curves.items():
        if hasattr(values, "smoothed"):
            values = values.smoothed(window=smooth)
        else:
            values = np.convolve(values, np.ones(smooth) / smooth, mode="valid") if len(values) > smooth else values
        ax.plot(values, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    ax.figure.tight_layout()
    return ax.figure
