"""Checks for the exercises of notebook 02 (variational autoencoders)."""
from __future__ import annotations

import math

import torch

from . import exercise_check, expect, expect_close, expect_shape


@exercise_check("reparameterisation trick")
def check_reparameterize(fn) -> str:
    """fn(mu, logvar) -> z, all (B, D): z ~ N(mu, exp(logvar)), differentiable in mu and logvar."""
    torch.manual_seed(0)
    mu = torch.full((20000, 2), 2.0)
    logvar = torch.full((20000, 2), math.log(0.25))      # std 0.5
    z = fn(mu, logvar)
    expect_shape("z", z, (20000, 2))
    expect(not torch.allclose(z, mu), "z equals mu: draw noise eps ~ N(0, I) (torch.randn_like) and add sigma * eps")
    mean, std = z.mean().item(), z.std().item()
    expect(abs(mean - 2.0) < 0.03, f"samples should have mean mu = 2.0; got {mean:.3f}")
    if abs(std - 0.25) < 0.02:
        expect(False, "samples have standard deviation 0.25 = exp(logvar), the variance; "
                      "sigma is exp(logvar / 2)")
    expect(abs(std - 0.5) < 0.03, f"samples should have standard deviation exp(logvar / 2) = 0.5; got {std:.3f}")
    # Gradients must reach mu and logvar: d z / d mu = 1, d z / d logvar = 0.5 * sigma * eps.
    mu = torch.zeros(1000, 3, requires_grad=True)
    logvar = torch.zeros(1000, 3, requires_grad=True)
    z = fn(mu, logvar)
    expect(z.requires_grad, "z has no gradient: build it from mu and logvar with tensor operations "
                            "(don't sample with torch.normal(mu, std), which cuts the graph)")
    z.sum().backward()
    expect(mu.grad is not None and logvar.grad is not None, "gradients did not reach mu and logvar")
    expect_close("d sum(z) / d mu", mu.grad, torch.ones(1000, 3), hint="z should be mu + something")
    eps = z.detach()                                     # with mu = 0, logvar = 0: z = eps
    expect_close("d sum(z) / d logvar", logvar.grad, 0.5 * eps, atol=1e-4,
                 hint="sigma = exp(0.5 * logvar), so d z / d logvar = 0.5 * sigma * eps")
    return "right mean and spread, and gradients flow to mu and logvar"


@exercise_check("Gaussian KL divergence")
def check_gaussian_kl(fn) -> str:
    """fn(mu, logvar) -> (B,) KL(N(mu, exp(logvar)) || N(0, I)) summed over the D latent dims."""
    gen = torch.Generator().manual_seed(1)
    mu = torch.randn(6, 4, generator=gen)
    logvar = torch.randn(6, 4, generator=gen)
    got = fn(mu.clone(), logvar.clone())
    expect(isinstance(got, torch.Tensor), f"return a tensor of shape (6,); got {type(got).__name__}")
    if got.ndim == 0:
        expect(False, "you returned one number for the batch; return one KL per example, shape (B,) "
                      "(sum over the latent dimension only: .sum(1))")
    if got.shape == (6, 4):
        expect(False, "you returned one KL per latent dimension; sum them over dim 1, shape (B,)")
    expect_shape("the KL", got, (6,))
    want = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    if torch.allclose(got, 2 * want, rtol=1e-4):
        expect(False, "your KL is twice too large: the closed form has a factor 0.5")
    if torch.allclose(got, want / 4, rtol=1e-4):
        expect(False, "you averaged over the latent dimensions; sum them instead")
    expect_close("the KL", got, want, atol=1e-4,
                 hint="0.5 * sum(mu**2 + exp(logvar) - 1 - logvar) over the latent dims")
    zero = fn(torch.zeros(3, 4), torch.zeros(3, 4))
    expect_close("KL(N(0, I) || N(0, I))", zero, torch.zeros(3), atol=1e-6)
    expect(bool((got >= 0).all()), "a KL divergence is never negative")
    return "matches the closed form, one value per example"
