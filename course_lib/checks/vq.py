"""Exercise checks for notebooks 03 (VQ-VAE) and 04 (vector quantization)."""
from __future__ import annotations

import math

import torch

from . import exercise_check, expect, expect_close, expect_shape

__all__ = ["check_quantize", "check_vq_losses", "check_ema_update", "check_perplexity", "check_lloyd_step",
           "check_fsq_round"]


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
    # code 2 is chosen by no vector: its count must still be there (0), so every code gets an entry
    try:
        out = ema_update(cluster_size.clone(), embed_sum.clone(), z, idx, decay)
    except RuntimeError as err:
        if "must match the size" in str(err) or "shape" in str(err):
            expect(False, "a shape mismatch: with K = 3 codes and no vector choosing code 2, your per-code counts "
                          "or sums have fewer than K entries. Counting stops at the largest index present "
                          "unless you tell it how many codes there are; every code needs an entry, even an "
                          f"unused one (your code raised: {err})")
        raise
    expect(isinstance(out, tuple) and len(out) == 3,
           "ema_update should return (new_cluster_size, new_embed_sum, new_codebook)")
    n, s, codebook = out
    if isinstance(n, torch.Tensor) and n.shape == (2,):
        expect(False, "new_cluster_size has 2 entries for K = 3 codes: code 2, which no vector chose, is missing. "
                      "Every code needs a count, even an unused one")
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
        expect(isinstance(got, (int, float)) or (isinstance(got, torch.Tensor) and got.numel() == 1),
               f"return one number for the whole set of indices; got {type(got).__name__}"
               + (f" of shape {tuple(got.shape)}" if isinstance(got, torch.Tensor) else ""))
        got = float(got)
        p = torch.bincount(idx.flatten(), minlength=k).double() / idx.numel()
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        expect(not math.isnan(got), f"perplexity of {idx.tolist()} with K={k} is NaN: unused codes have p = 0 and "
                                    "0 * log 0 evaluates to NaN in floating point; their share of the entropy is 0")
        if len(torch.unique(idx)) != want and abs(got - len(torch.unique(idx))) < 1e-6:
            expect(False, f"for {idx.tolist()} you returned the number of distinct codes ({got:g}); perplexity "
                          f"weighs codes by how often they are used, so a rarely used code counts for less "
                          f"(expected {want:.4g})")
        if entropy > 0 and abs(got - entropy) < 1e-4:
            expect(False, f"for {idx.tolist()} you returned the entropy ({got:.4g} nats); perplexity is its "
                          f"exponential, an effective number of codes")
        if abs(got - 2 ** entropy) < 1e-4 and abs(got - want) > 1e-4:
            expect(False, f"for {idx.tolist()} you mixed bases: 2 ** (entropy in nats); use the same base for "
                          f"the logarithm and the power")
        expect_close(f"perplexity of {idx.tolist()} with K={k}", float(got), want, atol=1e-4,
                     hint="count each code, divide by the total to get p, then exp(-sum p log p) over codes with p > 0")
    return "uniform use of 4 codes gives 4, a single code gives 1"


@exercise_check("codebook and commitment losses")
def check_vq_losses(fn) -> str:
    """fn(z (B, D, H, W), code (B, D, H, W), beta) -> scalar: ||sg[z] - code||^2 + beta ||z - sg[code]||^2,
    each a mean over all entries; the gradient of the first reaches only the code, of the second only z."""
    g = torch.Generator().manual_seed(6)
    z0 = torch.randn(2, 4, 3, 3, generator=g)
    c0 = torch.randn(2, 4, 3, 3, generator=g)
    beta, n = 0.25, z0.numel()
    z = z0.clone().requires_grad_(True)
    code = c0.clone().requires_grad_(True)
    loss = fn(z, code, beta)
    expect(isinstance(loss, torch.Tensor) and loss.numel() == 1,
           f"return one number (a scalar tensor), the loss of the batch; got "
           f"{type(loss).__name__}{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}")
    want_value = (1 + beta) * float((z0 - c0).pow(2).mean())
    got_value = float(loss.detach())
    if abs(got_value - want_value * n) < 1e-3 * want_value * n:
        expect(False, f"your loss is {n} times too large ({got_value:.4g} vs {want_value:.4g}): both terms are "
                      "means over all entries, not sums")
    expect_close("the loss value", got_value, want_value, atol=1e-4, rtol=1e-4,
                 hint="the two terms have the same value in the forward pass; only beta tells them apart")
    expect(loss.requires_grad, "the loss has no gradient at all: you detached both sides of both terms")
    loss.backward()
    gz = z.grad if z.grad is not None else torch.zeros_like(z0)
    gc = code.grad if code.grad is not None else torch.zeros_like(c0)
    want_gz = beta * 2 * (z0 - c0) / n
    want_gc = 2 * (c0 - z0) / n
    if torch.allclose(gz, (1 + beta) * 2 * (z0 - c0) / n, atol=1e-7):
        expect(False, "the encoder output z receives gradient from both terms: the codebook term must not move z "
                      "(stop the gradient on its z side), only the code")
    if torch.allclose(gz, 2 * (z0 - c0) / n, atol=1e-7) and torch.allclose(gc, beta * want_gc, atol=1e-7):
        expect(False, "beta weights the wrong term: it belongs to the commitment term, the one whose gradient "
                      "reaches the encoder output z")
    if torch.allclose(gc, (1 + beta) * want_gc, atol=1e-7):
        expect(False, "the code receives gradient from both terms: the commitment term must not move the code "
                      "(stop the gradient on its code side), only z")
    expect_close("d loss / d z (commitment only)", gz, want_gz, atol=1e-6,
                 hint="z should feel only beta times the pull of its code")
    expect_close("d loss / d code (codebook term only)", gc, want_gc, atol=1e-6,
                 hint="the code should feel only the pull of the encoder outputs, with weight 1")
    return "right value; the codebook term moves only the codes, beta x commitment moves only z"


@exercise_check("one step of Lloyd's algorithm")
def check_lloyd_step(fn) -> str:
    """fn(x (N, D), codes (K, D)) -> new codes (K, D): each code moved to the mean of the vectors nearest
    to it; a code that no vector chose stays where it is."""
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 10.0], [12.0, 10.0]])
    codes = torch.tensor([[0.5, 0.5], [9.0, 9.0], [-50.0, 50.0]])     # code 2 is nearest to nothing
    want = torch.tensor([[1 / 3, 1 / 3], [11.0, 10.0], [-50.0, 50.0]])
    got = fn(x.clone(), codes.clone())
    expect_shape("the new codes", got, (3, 2))
    got = got.detach()
    expect(not torch.isnan(got).any(),
           f"some codes became NaN ({got.tolist()}): code 2 has no members, and the mean of nothing is 0 / 0. "
           "An empty code should keep its position")
    if torch.allclose(got[:2], torch.tensor([[1.0, 1.0], [22.0, 20.0]]), atol=1e-4):
        expect(False, "codes 0 and 1 moved to the *sum* of their members; a code moves to their mean")
    if torch.allclose(got[2], torch.zeros(2), atol=1e-6):
        expect(False, "the empty code 2 jumped to the origin (0 / clamp(count) = 0); an empty code should keep "
                      "its position")
    expect_close("the new codes", got, want, atol=1e-4,
                 hint="assign each vector to its nearest code first (Euclidean distance), then average per code")
    x2 = torch.randn(200, 3, generator=torch.Generator().manual_seed(7))
    c2 = x2[:5].clone()
    before = float((x2[:, None] - c2[None]).pow(2).sum(-1).min(1).values.mean())
    new = fn(x2.clone(), c2.clone()).detach()
    after = float((x2[:, None] - new[None]).pow(2).sum(-1).min(1).values.mean())
    expect(after <= before + 1e-6, f"a Lloyd step must not increase the distortion: {before:.4f} -> {after:.4f}")
    return "means of the members, empty codes kept, distortion never rises"


@exercise_check("FSQ rounding with a straight-through gradient")
def check_fsq_round(fn) -> str:
    """fn(h (B, C), levels (odd int)) -> (B, C) integer-valued floats in -(L-1)/2..(L-1)/2:
    tanh bounds h, rounding picks the level; the gradient is that of the bounding alone."""
    g = torch.Generator().manual_seed(8)
    levels = 5
    h0 = 2.0 * torch.randn(64, 3, generator=g)
    h = h0.clone().requires_grad_(True)
    got = fn(h, levels)
    expect_shape("the rounded values", got, (64, 3))
    half = (levels - 1) / 2
    bounded = torch.tanh(h0) * half
    want = torch.round(bounded)
    vals = got.detach()
    if vals.abs().max() > half + 1e-6:
        expect(False, f"values reach {vals.abs().max().item():g}, outside the {levels} levels "
                      f"-{half:g}..{half:g}: L levels centred on 0 need a bound of (L - 1) / 2")
    expect(torch.allclose(vals, vals.round()), "the forward values must be whole numbers (the chosen levels)")
    if not torch.allclose(vals, want) and torch.allclose(vals, torch.round(torch.tanh(h0) * levels / 2)):
        expect(False, f"your bound is L / 2 = {levels / 2:g}, which lets rounding land between or beyond the "
                      f"{levels} levels -{half:g}..{half:g}: L levels centred on 0 need a bound of (L - 1) / 2")
    expect_close("the forward values (chosen levels)", vals, want, atol=1e-5,
                 hint="bound each channel smoothly to the range of the levels, then round")
    expect(got.requires_grad, "no gradient reaches h: rounding has zero gradient almost everywhere, so it must be "
                              "bypassed in the backward pass (straight-through)")
    w = torch.randn(64, 3, generator=g)
    (got * w).sum().backward()
    grad = h.grad if h.grad is not None else torch.zeros_like(h0)
    want_grad = w * half * (1 - torch.tanh(h0) ** 2)
    expect(bool(grad.abs().sum() > 0), "the gradient reaching h is zero: rounding has zero gradient almost "
                                       "everywhere; let the gradient pass straight through the rounding")
    if torch.allclose(grad, w, atol=1e-5):
        expect(False, "the gradient is the identity: your straight-through skips the tanh bound as well. Only "
                      "the rounding should be bypassed; the bound's own gradient must stay")
    expect_close("the gradient reaching h", grad, want_grad, atol=1e-5,
                 hint="backward should see the bounding function alone, as if there were no rounding")
    return "levels in range in the forward pass; the bound's gradient in the backward pass"
