"""Variational autoencoder for 28x28 grey digits, with the ELBO in nats and bits per dimension.

Model (Kingma & Welling 2014):

    q(z|x) = N(mu(x), diag(exp(logvar(x))))       encoder: x (B, 1, 28, 28) -> mu, logvar (B, D)
    p(z)   = N(0, I)                              prior
    p(x|z) = Bernoulli(sigmoid(logits(z)))        decoder: z (B, D) -> logits (B, 1, 28, 28)

Per image, ``-ELBO(x) = E_q[-log p(x|z)] + KL(q(z|x) || p(z))``, both terms summed (over the
784 pixels and the D latent dimensions), in nats. The Bernoulli likelihood is applied to grey
levels in [0, 1], which is binary cross-entropy with logits summed over pixels (the convention of
pytorch/examples and pythae). Bits per dimension = nats / (784 ln 2).

    model = VAE(latent_dim=16)
    fit(model, vae_loss(beta=1.0), (x_train,), steps=..., batch_size=128, lr=2e-3)
    negative_elbo(model, x_test)          # nats per image (an upper bound on the NLL)
    importance_sampled_nll(model, x_test) # a tighter estimate of -log p(x)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..device import draw_device
from ..validate import check_choice, check_float, check_int, check_tensor, to_model
from .autoencoders import IMAGE_SHAPE, ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder

N_PIXELS = 28 * 28
LOG_2PI = math.log(2 * math.pi)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample z ~ N(mu, exp(logvar)) as a differentiable function of mu and logvar.

    mu, logvar: (B, D) -> z: (B, D) = mu + exp(logvar / 2) * eps, eps ~ N(0, I).
    """
    check_tensor("mu", mu, floating=True, finite=True, hot=True)
    check_tensor("logvar", logvar, floating=True, finite=True, hot=True)
    if mu.shape != logvar.shape:
        raise ValueError(f"logvar must have the same shape as mu {tuple(mu.shape)}; got shape {tuple(logvar.shape)}")
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype,
                      device=draw_device(generator, mu.device)).to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ), summed over latent dims, in nats.

    mu, logvar: (B, D) -> (B,). Closed form: 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar).
    """
    check_tensor("mu", mu, ndim=2, floating=True, finite=True, hot=True)
    check_tensor("logvar", logvar, ndim=2, floating=True, finite=True, hot=True)
    if mu.shape != logvar.shape:
        raise ValueError(f"logvar must have the same shape as mu {tuple(mu.shape)}; got shape {tuple(logvar.shape)}")
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) under independent Bernoullis with the given logits, summed over pixels.

    logits, x: (B, 1, 28, 28) (x in [0, 1]; grey levels allowed) -> (B,) nats per image.
    """
    check_tensor("logits", logits, floating=True, finite=True, hot=True)
    check_tensor("x", x, floating=True, finite=True, hot=True)
    if logits.shape != x.shape:
        raise ValueError(f"logits must have the same shape as x {tuple(x.shape)}; got shape {tuple(logits.shape)}")
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def log_normal(z: torch.Tensor, mu: torch.Tensor | float = 0.0, logvar: torch.Tensor | float = 0.0) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dim. z: (..., D) -> (...)"""
    check_tensor("z", z, floating=True, finite=True, hot=True)
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def nats_to_bits_per_dim(nats: float, dims: int = N_PIXELS) -> float:
    """Nats per image -> bits per pixel: nats / (dims * ln 2)."""
    check_float("nats", nats)
    check_int("dims", dims, min_value=1)
    return nats / (dims * math.log(2))


class VAE(nn.Module):
    """A VAE with an MLP (``arch="mlp"``) or convolutional (``arch="conv"``) encoder and decoder.

    encode(x): (B, 1, 28, 28) -> (mu, logvar), each (B, latent_dim)
    decode(z): (B, latent_dim) -> logits (B, 1, 28, 28); pixel probabilities are sigmoid(logits)
    forward(x): -> (logits, mu, logvar) with one reparameterised sample z per image
    ``width``: hidden sizes for the MLP (e.g. (512,)), first conv's channels for the conv net.
    """

    def __init__(self, latent_dim: int = 16, arch: str = "mlp", width=(512,)):
        super().__init__()
        check_int("latent_dim", latent_dim, min_value=1)
        check_choice("arch", arch, ("mlp", "conv"))
        self.latent_dim, self.arch = latent_dim, arch
        if arch == "mlp":
            hidden = (width,) if isinstance(width, int) else tuple(width)
            self.encoder = MLPEncoder(2 * latent_dim, hidden)
            self.decoder = MLPDecoder(latent_dim, hidden[::-1])
        else:
            channels = width if isinstance(width, int) else 16
            self.encoder = ConvEncoder(2 * latent_dim, channels)
            self.decoder = ConvDecoder(latent_dim, channels)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, 1, 28, 28) in [0, 1], finite, on the model's device -> mu, logvar: (B, latent_dim) each.

        float64/float16 input is converted to the model's dtype (see ``course_lib.validate``).
        """
        check_tensor("x", x, shape=(None, *IMAGE_SHAPE), floating=True, finite=True, hot=True)
        mu, logvar = self.encoder(to_model("x", x, self)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) finite, on the model's device -> logits (B, 1, 28, 28)."""
        check_tensor("z", z, shape=(None, self.latent_dim), floating=True, finite=True, hot=True)
        return self.decoder(to_model("z", z, self))

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        return self.decode(z), mu, logvar

    @torch.no_grad()
    def init_output_bias(self, x: torch.Tensor, eps: float = 1e-3) -> "VAE":
        """Start the decoder at the per-pixel mean of x (N, 1, 28, 28): its last bias := logit(mean).

        Without this the first few hundred steps only learn the average digit.
        """
        check_tensor("x", x, shape=(None, *IMAGE_SHAPE), floating=True, finite=True, nonempty=True, what="image")
        check_float("eps", eps, min_value=0.0, max_value=0.5, strict_min=True)
        last = [m for m in self.decoder.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d))][-1]
        p = x.mean(0).clamp(eps, 1 - eps)                                  # (1, 28, 28)
        if last.bias.numel() != p.numel():                                  # conv: one bias per channel
            p = p.mean().reshape(1)
        last.bias.copy_((torch.log(p) - torch.log1p(-p)).reshape(last.bias.shape).to(last.bias.device))
        return self

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images from the prior: z ~ N(0, I) -> sigmoid(logits), (n, 1, 28, 28) in [0, 1]."""
        check_int("n", n, min_value=1)
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return torch.sigmoid(self.decode(z))


def elbo_terms(model: VAE, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
    """One-sample estimate of the ELBO's parts, per image, in nats.

    x: (B, 1, 28, 28) -> {"recon": (B,), "kl": (B,), "neg_elbo": (B,) = recon + kl,
    "loss": (B,) = recon + beta * kl}.
    """
    check_float("beta", beta, min_value=0.0)
    logits, mu, logvar = model(x)
    recon = bernoulli_nll(logits, x)
    kl = gaussian_kl(mu, logvar)
    return {"recon": recon, "kl": kl, "neg_elbo": recon + kl, "loss": recon + beta * kl}


def vae_loss(beta: float = 1.0):
    """Loss for ``fit``: mean over the batch of recon + beta * KL (nats per image), logging both parts."""
    check_float("beta", beta, min_value=0.0)

    def loss(model: VAE, batch):
        terms = elbo_terms(model, batch[0], beta)
        return terms["loss"].mean(), {"recon": terms["recon"].mean().detach(), "kl": terms["kl"].mean().detach()}

    return loss


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


@torch.no_grad()
def negative_elbo(model: VAE, x: torch.Tensor, *, n_samples: int = 10, batch_size: int = 500,
                  seed: int = 0) -> dict[str, float]:
    """Test negative ELBO, nats per image, averaged over ``n_samples`` draws of z per image.

    x: (N, 1, 28, 28) with N >= 1 (any device). Returns {"neg_elbo", "recon", "kl"} (means over
    images; KL is exact).
    """
    check_tensor("x", x, shape=(None, *IMAGE_SHAPE), floating=True, finite=True, nonempty=True, what="image")
    check_int("n_samples", n_samples, min_value=1)
    check_int("batch_size", batch_size, min_value=1)
    check_int("seed", seed)
    model.eval()
    device, gen = _device(model), torch.Generator().manual_seed(seed)
    recon_total = kl_total = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device, _dtype(model))
        mu, logvar = model.encode(xb)
        kl_total += float(gaussian_kl(mu, logvar).sum())
        for _ in range(n_samples):
            z = reparameterize(mu, logvar, gen)
            recon_total += float(bernoulli_nll(model.decode(z), xb).sum()) / n_samples
    n = len(x)
    return {"neg_elbo": (recon_total + kl_total) / n, "recon": recon_total / n, "kl": kl_total / n}


@torch.no_grad()
def importance_sampled_nll(model: VAE, x: torch.Tensor, *, n_samples: int = 200, chunk: int = 50,
                           batch_size: int = 100, seed: int = 0) -> torch.Tensor:
    """Estimate -log p(x) per image with K = ``n_samples`` importance samples from q(z|x):

        log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K

    x: (N, 1, 28, 28) (any device) -> (N,) nats (N = 0 gives an empty tensor). K = 1 gives (a sample
    of) the negative ELBO; the estimate tightens as K grows and is never above the ELBO in expectation.
    """
    check_tensor("x", x, shape=(None, *IMAGE_SHAPE), floating=True, finite=True)
    check_int("seed", seed)
    if len(x) == 0:
        return torch.empty(0)
    check_int("n_samples", n_samples, min_value=1)
    check_int("chunk", chunk, min_value=1)
    check_int("batch_size", batch_size, min_value=1)
    model.eval()
    device, gen = _device(model), torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device, _dtype(model))
        b = len(xb)
        mu, logvar = model.encode(xb)
        log_w = []
        for k0 in range(0, n_samples, chunk):
            k = min(chunk, n_samples - k0)
            eps = torch.randn(k, b, model.latent_dim, generator=gen).to(device)
            z = mu + torch.exp(0.5 * logvar) * eps                                # (k, b, D)
            logits = model.decode(z.reshape(k * b, -1))                           # (k*b, 1, 28, 28)
            log_px_z = -bernoulli_nll(logits, xb.repeat(k, 1, 1, 1)).reshape(k, b)
            log_w.append(log_px_z + log_normal(z) - log_normal(z, mu, logvar))
        log_w = torch.cat(log_w)                                                  # (K, b)
        out.append(-(torch.logsumexp(log_w, 0) - math.log(n_samples)).cpu())
    return torch.cat(out)


def bernoulli_baseline_nll(x_train: torch.Tensor, x_test: torch.Tensor, eps: float = 1e-3) -> float:
    """The trivial model: each pixel an independent Bernoulli with its training-set mean.

    x_train: (N, 1, 28, 28), x_test: (M, 1, 28, 28) -> mean NLL of x_test, nats per image.
    Any VAE worth its training must do better.
    """
    check_tensor("x_train", x_train, shape=(None, *IMAGE_SHAPE), floating=True, finite=True, nonempty=True,
                 what="image")
    check_tensor("x_test", x_test, shape=(None, *IMAGE_SHAPE), floating=True, finite=True, nonempty=True,
                 what="image")
    x_train, x_test = x_train.float(), x_test.float()  # float64 is converted (see course_lib.validate)
    p = x_train.mean(0, keepdim=True).clamp(eps, 1 - eps)
    logits = torch.log(p) - torch.log1p(-p)
    return float(bernoulli_nll(logits.expand_as(x_test), x_test).mean())


@torch.no_grad()
def posterior_means(model: VAE, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """x: (N, 1, 28, 28) (any device) -> mu (N, latent_dim) on the CPU; N = 0 gives (0, latent_dim)."""
    check_tensor("x", x, shape=(None, *IMAGE_SHAPE), floating=True, finite=True)
    check_int("batch_size", batch_size, min_value=1)
    if len(x) == 0:
        return torch.empty(0, model.latent_dim)
    model.eval()
    device = _device(model)
    return torch.cat([model.encode(x[i:i + batch_size].to(device))[0].cpu() for i in range(0, len(x), batch_size)])


def active_units(model: VAE, x: torch.Tensor, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Count latent dims the encoder actually uses (Burda et al. 2016).

    A dim u is active when Var_x[E_q(z|x)[z_u]] > ``threshold``. x: (N, 1, 28, 28) ->
    (count, per-dim variance (latent_dim,)).
    """
    check_float("threshold", threshold, min_value=0.0)
    check_tensor("x", x, shape=(None, *IMAGE_SHAPE), floating=True)
    if len(x) < 2:
        raise ValueError(f"x must hold at least 2 images (a variance over images); got shape {tuple(x.shape)}")
    variance = posterior_means(model, x).var(0)
    return int((variance > threshold).sum()), variance


@torch.no_grad()
def kl_per_dim(model: VAE, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Average KL to the prior carried by each latent dim over x: (N, 1, 28, 28) -> (latent_dim,) nats.

    Sums to the mean KL term of the ELBO; a collapsed dimension carries ~0 nats.
    """
    check_tensor("x", x, shape=(None, *IMAGE_SHAPE), floating=True, finite=True, nonempty=True, what="image")
    check_int("batch_size", batch_size, min_value=1)
    model.eval()
    device, total = _device(model), torch.zeros(model.latent_dim)
    for i in range(0, len(x), batch_size):
        mu, logvar = model.encode(x[i:i + batch_size].to(device))
        total += (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).sum(0).cpu()
    return total / len(x)


@torch.no_grad()
def traverse(model: VAE, z: torch.Tensor, dim: int, values) -> torch.Tensor:
    """Decode copies of one code z (latent_dim,) with dimension ``dim`` set to each of ``values``.

    -> (len(values), 1, 28, 28) pixel probabilities.
    """
    check_tensor("z", z, shape=(model.latent_dim,), floating=True, finite=True)
    check_int("dim", dim, min_value=0, max_value=model.latent_dim - 1)
    if isinstance(values, torch.Tensor):
        values = values.reshape(-1).tolist()
    values = [check_float(f"values[{i}]", v) for i, v in enumerate(values)]
    if not values:
        raise ValueError("values must hold at least one number; got none")
    values = torch.as_tensor(values, dtype=z.dtype)
    codes = z.repeat(len(values), 1)
    codes[:, dim] = values
    return torch.sigmoid(model.decode(codes.to(_device(model)))).cpu()
