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


def _orthonormal_rows(a: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(a.T.double()).Q.T


@exercise_check("principal angles between two subspaces")
def check_principal_angles(fn) -> str:
    """fn(a (k, n), b (k, n)) -> (k,) principal angles in degrees, ascending; the rows of a and b
    span the two subspaces and need not be orthonormal."""
    gen = torch.Generator().manual_seed(4)
    basis = torch.linalg.qr(torch.randn(8, 8, generator=gen, dtype=torch.float64)).Q.T   # orthonormal rows of R^8
    angles = torch.tensor([5.0, 30.0, 70.0], dtype=torch.float64)
    rad = torch.deg2rad(angles)
    a_orth = basis[:3]
    b_orth = torch.cos(rad)[:, None] * basis[:3] + torch.sin(rad)[:, None] * basis[3:6]
    # the same subspaces, given by bases that are neither unit-length nor orthogonal
    mix_a = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 1.0, 3.0]], dtype=torch.float64)
    mix_b = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.5, 0.0, 1.0]], dtype=torch.float64)
    a, b = (mix_a @ a_orth).float(), (mix_b @ b_orth).float()
    got = fn(a.clone(), b.clone())
    expect(isinstance(got, torch.Tensor), f"return a tensor of 3 angles; got {type(got).__name__}")
    expect_shape("the angles between two 3-d subspaces", got, (3,))
    got = got.detach().double()
    expect(not torch.isnan(got).any(),
           f"some angles are NaN ({got.tolist()}): a cosine computed as 1.0000001 by rounding has no arccos; "
           "keep the cosines inside [-1, 1]")
    raw = torch.linalg.svdvals(a.double() @ b.double().T)
    if torch.allclose(torch.sort(got).values, torch.sort(torch.rad2deg(torch.arccos(raw.clamp(-1, 1)))).values,
                      atol=1e-2) or torch.allclose(torch.sort(got).values, torch.sort(raw).values, atol=1e-3):
        expect(False, "your angles come from the raw bases; the singular values of A B^T are cosines of the "
                      "angles only when both bases are orthonormal (orthonormalise each set of rows first)")
    if torch.allclose(torch.sort(got).values, torch.deg2rad(angles), atol=1e-3):
        expect(False, "your angles are in radians; return degrees")
    if torch.allclose(torch.sort(got, descending=True).values, torch.cos(rad).flip(0).sort(descending=True).values,
                      atol=1e-3):
        expect(False, "you returned the cosines of the angles; return the angles themselves, in degrees")
    if torch.allclose(got, angles.flip(0), atol=1e-2):
        expect(False, "right angles, wrong order: sort them ascending (smallest angle first)")
    expect_close("the angles (degrees) between two known 3-d subspaces", got, angles, atol=1e-2,
                 hint="orthonormal bases first; then the singular values of their product are the cosines")
    same = fn(a.clone(), (mix_b @ a_orth).float())
    expect(not torch.isnan(same.detach()).any(),
           "the angles between a subspace and itself came out NaN: a cosine rounded to just above 1 has no "
           "arccos; keep the cosines inside [-1, 1]")
    expect_close("the angles between a subspace and itself", same.detach().double(), torch.zeros(3, dtype=torch.float64),
                 atol=0.1, hint="a subspace makes zero angles with itself, whatever basis describes it")
    return "known angles of 5, 30 and 70 degrees recovered from non-orthonormal bases"
