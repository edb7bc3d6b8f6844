"""Exercise checks for notebooks 03 (VQ-VAE) and 04 (vector quantization)."""
from __future__ import annotations

import math

import torch

from . import exercise_check, expect, expect_close, expect_shape

__all__ = ["check_quantize", "check_ema_update", "check_perplexity"]


def _nearest(flat, codebook):
    return torch.cdist(flat, codebook).argmin(1)


@exercise_check("quantize with the straight-through estimator")
def check_quantize(quantize) -> str:
    """quantize(z (B, D, H, W), codebook (K, D)) -> (z_q (B, D, H, W), indices (B, H, W) long)."""
    g = torch.Generator().manual_seed(3)
    codebook = torch.randn(12, 4, generator=g)
    z = torch.randn(2, 4, 3, 5, generator=g, requires_grad=True)
    out = quantize(z, codebook)
    expect(isinstance(out, tuple) and len(out) == 2, "quantize should return a tuple (z_q, indices)")
    z_q, idx = out
    expect_shape("indices", idx, (2, 3, 5))
    expect(idx.dtype == torch.long, f"indices should be a long tensor (integer codes); got dtype {idx.dtype}")
    want_idx = _nearest(z.detach().permute(0, 2, 3, 1).reshape(-1, 4), codebook).reshape(2, 3, 5)
    wrong = int((idx != want_idx).sum())
    expect(wrong == 0, f"{wrong} of 30 indices are not the nearest code (Euclidean distance). Hint: compare "
                       "every latent vector z[b, :, i, j] with every row of the codebook")
    expect_shape("z_q", z_q, (2, 4, 3, 5))
    want_q = codebook[want_idx].permute(0, 3, 1, 2)
    expect_close("z_q (forward value)", z_q.detach(), want_q, atol=1e-5,
                 hint="the forward value of z_q must be the chosen code vectors, laid out as (B, D, H, W)")
    weights = torch.randn(2, 4, 3, 5, generator=g)
    expect(z_q.requires_grad,
           "no gradient reached z: z_q must be computed from z with the straight-through trick "
           "z + (code - z).detach()")
    (z_q * weights).sum().backward()
    expect(z.grad is not None, "no gradient reached z: z_q must be computed from z with the straight-through "
                               "trick z + (code - z).detach()")
    expect_close("gradient of z", z.grad, weights, atol=1e-5,
                 hint="straight-through means dz_q/dz is the identity: z_q = z + (code - z).detach()")
    return "nearest codes in the forward pass, identity gradient in the backward pass"


@exercise_check("EMA codebook update")
def check_ema_update(ema_update) -> str:
    """ema_update(cluster_size (K,), embed_sum (K, D), z (N, D), indices (N,), decay)
    -> (new_cluster_size (K,), new_embed_sum (K, D), new_codebook (K, D))."""
    cluster_size = torch.tensor([2.0, 1.0, 0.5])
    embed_sum = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    z = torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, -2.0], [4.0, 4.0]])
    idx = torch.tensor([0, 0, 1, 0])
    decay = 0.9
    # by hand: counts = [3, 1, 0]; sums = [[8, 6], [0, -2], [0, 0]]
    want_n = torch.tensor([0.9 * 2 + 0.1 * 3, 0.9 * 1 + 0.1 * 1, 0.9 * 0.5])
    want_s = torch.tensor([[0.9 * 2 + 0.1 * 8, 0.1 * 6], [0.0, 0.9 - 0.2], [0.45, 0.45]])
    out = ema_update(cluster_size.clone(), embed_sum.clone(), z, idx, decay)
    expect(isinstance(out, tuple) and len(out) == 3,
           "ema_update should return (new_cluster_size, new_embed_sum, new_codebook)")
    n, s, codebook = out
    expect_close("new_cluster_size", n, want_n, atol=1e-5,
                 hint="cluster_size <- decay * cluster_size + (1 - decay) * (how many vectors chose each code)")
    expect_close("new_embed_sum", s, want_s, atol=1e-5,
                 hint="embed_sum <- decay * embed_sum + (1 - decay) * (sum of the vectors that chose each code)")
    expect_close("new_codebook", codebook, want_s / want_n[:, None], atol=1e-4,
                 hint="each code is its running sum divided by its running count")
    return "counts, sums and codes match the hand computation"


@exercise_check("perplexity of code usage")
def check_perplexity(perplexity_fn) -> str:
    """perplexity_fn(indices (any shape, long), num_codes) -> float = exp(entropy of code frequencies)."""
    cases = [(torch.tensor([0, 1, 2, 3]), 8, 4.0), (torch.tensor([5, 5, 5]), 8, 1.0),
             (torch.tensor([[0, 0], [0, 1]]), 4, math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))]
    for idx, k, want in cases:
        got = perplexity_fn(idx, k)
        expect_close(f"perplexity of {idx.tolist()} with K={k}", float(got), want, atol=1e-4,
                     hint="count each code, divide by the total to get p, then exp(-sum p log p) over codes with p > 0")
    return "uniform use of 4 codes gives 4, a single code gives 1"
