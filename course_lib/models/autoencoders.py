"""Autoencoders for 28x28 grey images: an MLP one, a convolutional one, and their losses.

An autoencoder squeezes an image through a small code and rebuilds it:

    x (B, 1, 28, 28) --encode--> z (B, latent_dim) --decode--> x_hat (B, 1, 28, 28)

The decoder's output is *linear* (no sigmoid): trained with mean squared error, a sigmoid output
can saturate and get stuck predicting all-black images. Clip to [0, 1] only for display.

    model = ConvAutoencoder(latent_dim=16)
    history = fit(model, ae_loss, (x_train,), steps=..., batch_size=128, lr=2e-3)
    test_mse = reconstruction_error(model, x_test)
"""
from __future__ import annotations

import torch
from torch import nn

from ..validate import check_float, check_int, check_tensor, to_model

IMAGE_SHAPE = (1, 28, 28)


def _check_images(name: str, x, nonempty: bool = False) -> torch.Tensor:
    """x: (B, 1, 28, 28) floating, finite (and with B >= 1 when ``nonempty``)."""
    return check_tensor(name, x, shape=(None, *IMAGE_SHAPE), floating=True, finite=True, nonempty=nonempty,
                        what="image", hot=True)


class ConvEncoder(nn.Module):
    """x: (B, 1, 28, 28) -> (B, out_dim). Two stride-2 convolutions (28 -> 14 -> 7), then a linear
    map (through one hidden layer of size ``hidden`` when given)."""

    def __init__(self, out_dim: int, channels: int = 16, hidden: int | None = None):
        super().__init__()
        check_int("out_dim", out_dim, min_value=1)
        check_int("channels", channels, min_value=1)
        c = channels
        head = [nn.Linear(2 * c * 7 * 7, out_dim)]
        if hidden is not None:
            check_int("hidden", hidden, min_value=1)
            head = [nn.Linear(2 * c * 7 * 7, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)]
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.ReLU(),        # (B, c, 14, 14)
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.ReLU(),    # (B, 2c, 7, 7)
            nn.Flatten(),
            *head,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """z: (B, latent_dim) -> (B, 1, 28, 28) unbounded outputs (pixel values or logits)."""

    def __init__(self, latent_dim: int, channels: int = 16, hidden: int | None = None):
        super().__init__()
        check_int("latent_dim", latent_dim, min_value=1)
        check_int("channels", channels, min_value=1)
        c = channels
        head = [nn.Linear(latent_dim, 2 * c * 7 * 7), nn.ReLU()]
        if hidden is not None:
            check_int("hidden", hidden, min_value=1)
            head = [nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * c * 7 * 7), nn.ReLU()]
        self.net = nn.Sequential(
            *head,
            nn.Unflatten(1, (2 * c, 7, 7)),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.ReLU(),   # (B, c, 14, 14)
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),                  # (B, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def _mlp(widths: list[int]) -> list[nn.Module]:
    """Linear layers between consecutive ``widths`` with ReLU between them (none after the last)."""
    layers = []
    for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(w_in, w_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return layers


class MLPEncoder(nn.Module):
    """x: (B, 1, 28, 28) -> (B, out_dim) through fully connected layers of sizes ``hidden``."""

    def __init__(self, out_dim: int, hidden: tuple[int, ...] = (512, 256)):
        super().__init__()
        check_int("out_dim", out_dim, min_value=1)
        hidden = [check_int("hidden", h, min_value=1) for h in hidden]
        self.net = nn.Sequential(nn.Flatten(), *_mlp([28 * 28, *hidden, out_dim]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    """z: (B, latent_dim) -> (B, 1, 28, 28) unbounded outputs; ``hidden`` listed from the code outwards."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...] = (256, 512)):
        super().__init__()
        check_int("latent_dim", latent_dim, min_value=1)
        hidden = [check_int("hidden", h, min_value=1) for h in hidden]
        self.net = nn.Sequential(*_mlp([latent_dim, *hidden, 28 * 28]), nn.Unflatten(1, IMAGE_SHAPE))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Autoencoder(nn.Module):
    """encoder + decoder with ``encode``, ``decode`` and ``forward`` = decode(encode(x)).

    x: (B, 1, 28, 28) in [0, 1] -> z: (B, latent_dim) -> x_hat: (B, 1, 28, 28), linear output.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int):
        super().__init__()
        self.encoder, self.decoder, self.latent_dim = encoder, decoder, latent_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) finite, on the model's device -> z: (B, latent_dim).

        float64/float16 input is converted to the model's dtype (see ``course_lib.validate``).
        """
        return self.encoder(to_model("x", _check_images("x", x), self))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) finite, on the model's device -> x_hat: (B, 1, 28, 28)"""
        check_tensor("z", z, shape=(None, self.latent_dim), floating=True, finite=True, hot=True)
        return self.decoder(to_model("z", z, self))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) -> x_hat: (B, 1, 28, 28)"""
        return self.decoder(self.encode(x))


class MLPAutoencoder(Autoencoder):
    """Fully connected autoencoder: 784 -> 512 -> 256 -> latent_dim -> 256 -> 512 -> 784."""

    def __init__(self, latent_dim: int = 16, hidden: tuple[int, ...] = (512, 256)):
        check_int("latent_dim", latent_dim, min_value=1)
        hidden = tuple(hidden)
        super().__init__(MLPEncoder(latent_dim, hidden), MLPDecoder(latent_dim, hidden[::-1]), latent_dim)


class ConvAutoencoder(Autoencoder):
    """Convolutional autoencoder: two stride-2 convs down to 7x7, a linear bottleneck (through a
    hidden layer of size ``hidden`` when given), two transposed convs back up. ``channels`` = width
    of the first conv (the second has twice as many)."""

    def __init__(self, latent_dim: int = 16, channels: int = 16, hidden: int | None = None):
        check_int("latent_dim", latent_dim, min_value=1)
        super().__init__(ConvEncoder(latent_dim, channels, hidden), ConvDecoder(latent_dim, channels, hidden),
                         latent_dim)


def reconstruction_mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error. x_hat, x: (B, 1, 28, 28) finite -> (B,)"""
    check_tensor("x_hat", x_hat, floating=True, finite=True, hot=True)
    check_tensor("x", x, floating=True, finite=True, hot=True)
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat must have the same shape as x {tuple(x.shape)}; got shape {tuple(x_hat.shape)}")
    return ((x_hat - x) ** 2).flatten(1).mean(1)


def add_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian pixel noise, clipped back to [0, 1]. x: (B, ...) finite -> same shape."""
    check_tensor("x", x, floating=True, finite=True)
    check_float("std", std, min_value=0.0)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return (x + std * noise).clamp(0.0, 1.0)


def ae_loss(model: Autoencoder, batch) -> torch.Tensor:
    """Loss for ``fit``: mean squared error of model(x) against x. batch: (x,) or (x, y)."""
    x = batch[0]
    return reconstruction_mse(model(x), x).mean()


def denoising_loss(std: float):
    """Loss for ``fit`` that corrupts the input with noise of ``std`` but scores against the clean x."""
    check_float("std", std, min_value=0.0)

    def loss(model: Autoencoder, batch) -> torch.Tensor:
        x = batch[0]
        return reconstruction_mse(model(add_noise(x, std)), x).mean()

    return loss


@torch.no_grad()
def reconstruction_error(model: nn.Module, x: torch.Tensor, *, noise_std: float = 0.0,
                         batch_size: int = 500, seed: int = 0) -> float:
    """Mean squared error per pixel of model(x) (or of model(noisy x)) against x, over all of x.

    x: (N, 1, 28, 28) with N >= 1 (a mean over no images is an error), any device. The model's raw
    output is scored (not clipped), like PCA's.
    """
    _check_images("x", x, nonempty=True)
    check_float("noise_std", noise_std, min_value=0.0)
    check_int("batch_size", batch_size, min_value=1)
    check_int("seed", seed)
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        inp = add_noise(xb, noise_std, gen) if noise_std > 0 else xb
        total += float(reconstruction_mse(model(inp.to(device)).cpu(), xb).sum())
    return total / len(x)


@torch.no_grad()
def encode_all(model: Autoencoder, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """x: (N, 1, 28, 28) (any device) -> codes (N, latent_dim) on the CPU; N = 0 gives (0, latent_dim)."""
    _check_images("x", x)
    check_int("batch_size", batch_size, min_value=1)
    if len(x) == 0:
        return torch.empty(0, model.latent_dim)
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model.encode(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


@torch.no_grad()
def interpolate(model: Autoencoder, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Decode straight-line steps between the codes of two images.

    x_a, x_b: (1, 28, 28) or (1, 1, 28, 28) -> (steps, 1, 28, 28); the first is decode(encode(x_a)).
    """
    check_int("steps", steps, min_value=2)
    for name, xi in (("x_a", x_a), ("x_b", x_b)):
        check_tensor(name, xi, floating=True, finite=True)
        if xi.numel() != 784:
            raise ValueError(f"{name} must be one image of shape (1, 28, 28) or (1, 1, 28, 28); got shape "
                             f"{tuple(xi.shape)}")
    x_a = x_a.reshape(1, *IMAGE_SHAPE) if x_a.numel() == 784 else x_a
    x_b = x_b.reshape(1, *IMAGE_SHAPE) if x_b.numel() == 784 else x_b
    model.eval()
    device = next(model.parameters()).device
    z = model.encode(torch.cat([x_a, x_b]).to(device))
    t = torch.linspace(0, 1, steps, device=device)[:, None]
    return model.decode((1 - t) * z[0] + t * z[1]).cpu()
