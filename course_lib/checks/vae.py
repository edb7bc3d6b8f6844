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
    expect(bool(mu.grad.abs().sum() > 0) or bool(logvar.grad.abs().sum() > 0),
           "z is connected to mu and logvar, but its gradient with respect to both is zero: a sampler such as "
           "torch.normal(mu, std) draws z without a differentiable path. Draw the noise alone, then build z "
           "from mu, sigma and the noise with ordinary tensor arithmetic")
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


@exercise_check("importance-sampled log-likelihood")
def check_log_mean_weight(fn) -> str:
    """fn(log_w (K, B)) -> (B,) log of the average importance weight, log (1/K) sum_k exp(log_w[k, b])."""
    gen = torch.Generator().manual_seed(5)
    log_w = -400.0 + 3.0 * torch.randn(10, 4, generator=gen, dtype=torch.float64)   # real VAE scale: ~ -100s nats
    log_w = log_w.float()
    got = fn(log_w.clone())
    expect(isinstance(got, torch.Tensor), f"return a tensor of shape (4,); got {type(got).__name__}")
    if tuple(got.shape) == (10,):
        expect(False, "you reduced over the images instead of over the K samples: log_w is (K, B), "
                      "reduce dim 0 and keep one value per image")
    expect_shape("the estimate for 4 images from K = 10 samples", got, (4,))
    got = got.detach().double()
    lw = log_w.double()
    want = torch.logsumexp(lw, 0) - math.log(10)
    expect(bool(torch.isfinite(got).all()),
           f"got {got.tolist()}: exp(-400) underflows to 0 in floating point, and log 0 = -inf. Take the largest "
           "log-weight out before exponentiating and add it back after the log")
    if torch.allclose(got, lw.mean(0), atol=1e-3):
        expect(False, "you averaged the log-weights: that is the ELBO, which Jensen's inequality puts below "
                      "log p(x). Average the weights themselves, then take the log")
    if torch.allclose(got, want + math.log(10), atol=1e-3):
        expect(False, f"your values are log K = log 10 = {math.log(10):.3f} too large: you summed the weights; "
                      "the estimate is the log of their *average*")
    expect_close("log of the mean weight", got, want, atol=1e-3,
                 hint="the log of an average of exponentials, computed without leaving the log domain")
    one = fn(log_w[:1].clone()).detach().double()
    expect_close("the K = 1 estimate (it must equal that single log-weight)", one, lw[0], atol=1e-3)
    return "stable for log-weights near -400 nats, with the 1/K inside the log"
