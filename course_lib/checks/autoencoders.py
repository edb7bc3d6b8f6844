"""Checks for the exercises of notebook 01 (autoencoders)."""
from __future__ import annotations

import torch

from . import exercise_check, expect, expect_close, expect_shape


@exercise_check("reconstruction loss")
def check_reconstruction_loss(fn) -> str:
    """fn(x_hat, x) -> (B,) mean squared error per image, x_hat and x: (B, 1, 28, 28)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, 28, 28, generator=gen)
    x_hat = torch.rand(5, 1, 28, 28, generator=gen)
    got = fn(x_hat.clone(), x.clone())
    expect(isinstance(got, torch.Tensor), f"return a tensor of shape (5,), one error per image; got {type(got).__name__}")
    if got.ndim == 0:
        expect(False, "you returned one number for the whole batch; return one error per image, shape (B,) "
                      "(average over the pixel dimensions only, e.g. .flatten(1).mean(1))")
    expect_shape("the per-image loss", got, (5,))
    want = ((x_hat - x) ** 2).flatten(1).mean(1)
    if torch.allclose(got, want * 784, rtol=1e-4):
        expect(False, "your values are 784 times too large: average over the pixels, don't sum")
    if torch.allclose(got, want.sqrt(), rtol=1e-4):
        expect(False, "you returned the root of the mean squared error; drop the square root")
    expect_close("the per-image loss", got, want, hint="mean over pixels of (x_hat - x) ** 2")
    zero = fn(x, x.clone())
    expect_close("the loss of a perfect reconstruction", zero, torch.zeros(5))
    return "per-image mean squared error, shape (B,)"


@exercise_check("PCA reconstruction")
def check_pca_reconstruct(fn, x: torch.Tensor, mean: torch.Tensor, components: torch.Tensor) -> str:
    """fn(x, mean, components, k) -> (N, 784) rank-k reconstruction of x (N, 784)."""
    expect(x.ndim == 2, f"pass x as (N, 784) rows; got shape {tuple(x.shape)}")
    x = x[:50]
    for k in (1, 5, 16):
        got = fn(x.clone(), mean, components, k)
        expect_shape(f"the rank-{k} reconstruction", got, tuple(x.shape))
        v = components[:k]
        want = (x - mean) @ v.T @ v + mean
        expect(not torch.allclose(got, x @ v.T @ v, atol=1e-4),
               "subtract the mean before projecting and add it back after decoding")
        expect_close(f"the rank-{k} reconstruction", got, want, atol=1e-4,
                     hint="z = (x - mean) @ V[:k].T, then x_hat = z @ V[:k] + mean")
    return "rank 1, 5 and 16 match the reference"
