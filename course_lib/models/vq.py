"""Vector quantization and the VQ-VAE: continuous latents become grids of integer codes.

Pieces (each one small, each explained in notebooks 03 and 04):

* :func:`nearest_code` - index of the closest codebook vector for every latent vector.
* :func:`kmeans` - Lloyd's algorithm: vector quantization learned offline.
* :class:`VectorQuantizer` - a codebook with the straight-through estimator and
  codebook/commitment losses; options: EMA codebook updates, k-means initialisation on the
  first batch, dead-code restart, cosine-similarity (l2-normalised) codes.
* :class:`FSQ` - finite scalar quantization: round each of a few bounded channels to a few levels.
* :class:`ResidualVQ` - several quantizers in a row, each coding what the previous left over.
* :class:`Encoder`, :class:`Decoder`, :class:`VQVAE` - the conv autoencoder around a quantizer.

Every quantizer maps ``z: (B, D, H, W)`` to a :class:`QuantizerOutput` with the quantized
latents (straight-through: the forward value is the code, the gradient flows to ``z``), the
integer codes and the auxiliary loss to add to the reconstruction loss.

Precision: the nearest-code search, k-means and the EMA statistics always run in float32 (float64
if given float64), also inside a bf16 autocast region such as ``fit``'s on CUDA. bf16 keeps 8
bits of mantissa, an error of ~0.4% on ``v . c``: about the gap between neighbouring codes of a
trained codebook with K = 256-512, so bf16 distances would pick other codes in training than in
evaluation (float32) and feed the EMA sums and k-means the wrong vectors.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..validate import check_choice, check_codes, check_float, check_int, check_tensor, reads_values, to_model

__all__ = ["QuantizerOutput", "nearest_code", "kmeans", "perplexity", "code_counts", "VectorQuantizer",
           "FSQ", "ResidualVQ", "Encoder", "Decoder", "VQVAE", "build_quantizer", "vqvae_loss"]


@dataclass
class QuantizerOutput:
    """What a quantizer returns.

    z_q: (B, D, H, W) quantized latents (straight-through: gradient of z_q flows to z);
    indices: (B, H, W) long codes (``(B, H, W, Q)`` for :class:`ResidualVQ` with Q stages);
    loss: scalar auxiliary loss (codebook + commitment; 0 for FSQ);
    stats: detached 0-d tensors for logging (e.g. the batch's ``perplexity`` and ``used`` fraction);
    ``float()`` one to print it. They stay on the device so that ``fit`` reads them back to the host
    in bulk, every few dozen steps, instead of waiting for the device at every step.
    """

    z_q: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor
    stats: dict


def _flatten(z: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) -> (B*H*W, D)."""
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def _float32(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off for ``device``'s type (a no-op where torch has no autocast for it): inside, a
    matmul of float32 tensors stays float32 even within ``fit``'s bf16 autocast."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for bf16/fp16/fp32, float64 for float64: the precision of codebook arithmetic."""
    return torch.promote_types(dtype, torch.float32)


def _unflatten(flat: torch.Tensor, shape) -> torch.Tensor:
    """(B*H*W, D) -> (B, D, H, W) for ``shape`` = (B, D, H, W)."""
    b, d, h, w = shape
    return flat.reshape(b, h, w, d).permute(0, 3, 1, 2).contiguous()


def nearest_code(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest code (squared Euclidean distance) for each vector.

    vectors: (N, D) finite; codebook: (K, D) finite, K >= 1, on the same device -> (N,) long. Uses
    ||v||^2 - 2 v.c + ||c||^2, without building an (N, K, D) tensor. Vectors of another float dtype
    (float64) are converted to the codebook's. The distances are float32 (float64 for a float64
    codebook) whatever the autocast context: see the module doc for why bf16 would pick wrong codes.
    """
    check_tensor("vectors", vectors, ndim=2, floating=True, finite=True, hot=True)
    check_tensor("codebook", codebook, ndim=2, floating=True, finite=True, nonempty=True, what="code", hot=True)
    if vectors.shape[1] != codebook.shape[1]:
        raise ValueError(f"vectors and codebook must have the same width D; got {vectors.shape[1]} and "
                         f"{codebook.shape[1]}")
    if vectors.device != codebook.device:
        raise ValueError(f"vectors must be on the codebook's device ({codebook.device}); got a tensor on "
                         f"{vectors.device}")
    dtype = _compute_dtype(codebook.dtype)
    with _float32(codebook.device):
        vectors, codebook = vectors.to(dtype), codebook.to(dtype)
        d = (vectors.pow(2).sum(1, keepdim=True) - 2 * vectors @ codebook.t()
             + codebook.pow(2).sum(1)[None, :])
        return d.argmin(dim=1)


@torch.no_grad()
def kmeans(vectors: torch.Tensor, k: int, *, iters: int = 10, generator: torch.Generator | None = None,
           return_history: bool = False):
    """Lloyd's algorithm: k centroids minimising the mean squared distance to ``vectors``.

    vectors: (N, D) -> centroids (k, D) (and, if ``return_history``, the distortion after each
    iteration). Initialised with k distinct random vectors (with repeats if N < k). An empty
    cluster is re-seeded with a random vector, so every centroid stays in use.
    Runs in float32 (float64 for float64 vectors; bf16/fp16 vectors are converted, and so are the
    centroids returned) whatever the autocast context, so it gives the same centroids inside
    ``fit``'s bf16 autocast as outside.
    """
    check_tensor("vectors", vectors, ndim=2, floating=True, finite=True, nonempty=True, what="vector")
    check_int("k", k, min_value=1)
    check_int("iters", iters, min_value=0)
    with _float32(vectors.device):
        return _kmeans(vectors.to(_compute_dtype(vectors.dtype)), k, iters, generator, return_history)


def _kmeans(vectors: torch.Tensor, k: int, iters: int, generator: torch.Generator | None, return_history: bool):
    """:func:`kmeans` after its checks, in float32 or float64 with autocast off."""
    n = vectors.shape[0]
    g = generator
    dev = vectors.device
    if n >= k:
        start = torch.randperm(n, generator=g)[:k]
    else:
        start = torch.randint(n, (k,), generator=g)
    centroids = vectors[start.to(dev)].clone()
    history = []
    for _ in range(iters):
        idx = nearest_code(vectors, centroids)
        counts = torch.bincount(idx, minlength=k).to(vectors.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, idx, vectors)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp(min=1)[:, None])
        if empty.any():
            centroids[empty] = vectors[torch.randint(n, (int(empty.sum()),), generator=g).to(dev)]
        if return_history:
            history.append(float((vectors - centroids[nearest_code(vectors, centroids)]).pow(2).sum(1).mean()))
    return (centroids, history) if return_history else centroids


def code_counts(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """How often each code occurs: indices (any shape, long, each in 0..num_codes-1) -> (num_codes,) float counts."""
    check_tensor("indices", indices, dtype=torch.long)
    check_int("num_codes", num_codes, min_value=1)
    check_codes("indices", indices, num_codes)
    return torch.bincount(indices.reshape(-1), minlength=num_codes).float()


def perplexity(counts: torch.Tensor) -> float:
    """exp(entropy) of the code distribution given by ``counts`` (num_codes,): an effective code count.

    Compute ``counts`` over a whole dataset: a per-batch perplexity depends on the batch size.
    ``counts`` must be finite, non-negative and not all zero (no codes seen has no distribution).
    """
    check_tensor("counts", counts, ndim=1, finite=True, nonempty=True, what="code")
    if counts.dtype == torch.bool:
        raise TypeError(f"counts must be numbers (e.g. from code_counts); got dtype {counts.dtype}")
    lo, hi = torch.stack(torch.aminmax(counts.float())).tolist()
    if lo < 0:
        raise ValueError(f"counts must be >= 0; got a smallest count of {lo:g}")
    if hi <= 0:
        raise ValueError(f"counts must have a positive total (at least one code seen); got all {len(counts)} zero")
    return _perplexity(counts)


def _perplexity(counts: torch.Tensor) -> float:
    """:func:`perplexity` without the checks (1.0 for an empty batch)."""
    return float(_perplexity_tensor(counts))


def _perplexity_tensor(counts: torch.Tensor) -> torch.Tensor:
    """:func:`_perplexity` as a 0-d float32 tensor on ``counts``' device, for a quantizer's per-batch stats."""
    p = counts.float() / counts.float().sum().clamp(min=1e-12)
    entropy = -(p * torch.log(p.clamp(min=1e-12))).sum()
    return torch.exp(entropy)


def rotate_to(z: torch.Tensor, e: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The rotation trick (Fifty et al., 2024): z (N, D) encoder vectors, e (N, D) their codes ->
    (N, D) equal to ``e`` in value, with the gradient of z rotated and scaled.

    Each row returns ``lambda * R z``: R the rotation in the plane of z and e that takes z's direction
    to e's (``R = I - 2 r r^T + 2 e^ z^T`` with ``r = (z^ + e^) / |z^ + e^|``, ^ for unit vectors) and
    ``lambda = |e| / |z|``, both treated as constants. Written without forming R:
    ``R z = z - 2 r (r . z) + 2 e^ (z^ . z)``. A straight-through estimator copies the decoder's
    gradient onto z unchanged; here it is turned by the angle between z and its code, so the vectors
    that share a code receive different gradients depending on where they sit in its cell.
    """
    with torch.no_grad():
        z_norm = z.norm(dim=1, keepdim=True).clamp_min(eps)
        e_norm = e.norm(dim=1, keepdim=True)
        z_hat, e_hat = z / z_norm, e / e_norm.clamp_min(eps)
        r = F.normalize(z_hat + e_hat, dim=1, eps=eps)
        scale = e_norm / z_norm
    rotated = z - 2 * r * (r * z).sum(1, keepdim=True) + 2 * e_hat * (z_hat * z).sum(1, keepdim=True)
    return scale * rotated


class VectorQuantizer(nn.Module):
    """A codebook of ``num_codes`` vectors of width ``dim``: z -> nearest code, straight through.

    Loss (van den Oord et al. 2017): ``||sg[z] - e||^2`` (codebook, only without EMA) +
    ``beta * ||z - sg[e]||^2`` (commitment).

    Options (notebook 04 compares them):
      ema: update codes as exponential moving averages of the vectors assigned to them
        (decay ``decay``) instead of by gradient descent.
      kmeans_init: on the first training batch, set the codebook to k-means centroids of it.
      dead_threshold: after each training step, any code whose EMA usage count (expected number
        of vectors per batch, decay ``usage_decay``) is below this is replaced by a random latent vector
        of the batch ("dead-code restart"); 0 turns it off.
      usage_decay: the decay of that usage count (default: ``decay``). Two time scales: a code's
        position is an average over the last ~1 / (1 - decay) batches, while "is it still used?" can
        be answered from fewer (e.g. 0.8: ~5 batches), so a code the encoder has left is restarted
        sooner, where the data are (benchmarks/bench_vq.py measures what this buys).
      rotation: pass gradients to the encoder by the rotation trick (Fifty et al., 2024) instead of
        straight through: the output is still the code, computed as ``lambda * R z`` with R the rotation
        taking z's direction to the code's and lambda = |e| / |z|, both held constant, so the
        gradient reaching z is turned by R and scaled by lambda (see :func:`rotate_to`).
      ema_warmup: the EMA decay starts low and rises to ``decay``: ``min(decay, t / (t + 9))`` at the
        t-th update (TensorFlow's ``ExponentialMovingAverage(num_updates=...)``), so the codes follow
        the encoder quickly while it changes fastest, at the start.
      cosine: compare l2-normalised vectors (codes live on the unit sphere).

    Precision: everything here (distances, losses, EMA and usage statistics, k-means, restarts) runs
    in float32 with autocast off, whatever the caller's autocast; ``z_q`` is float32 (a decoder under
    autocast casts it back to bf16 itself). Training-time codes are then the codes evaluation sees.
    """

    def __init__(self, num_codes: int, dim: int, *, beta: float = 0.25, ema: bool = False,
                 decay: float = 0.99, eps: float = 1e-5, kmeans_init: bool = False, kmeans_iters: int = 10,
                 dead_threshold: float = 0.0, cosine: bool = False, rotation: bool = False,
                 ema_warmup: bool = False, usage_decay: float | None = None):
        super().__init__()
        self.num_codes = check_int("num_codes", num_codes, min_value=2)
        self.dim = check_int("dim", dim, min_value=1)
        self.beta = check_float("beta", beta, min_value=0.0)
        self.ema = bool(ema)
        self.decay = check_float("decay", decay, min_value=0.0, max_value=1.0)
        self.eps = check_float("eps", eps, min_value=0.0)
        self.kmeans_init = bool(kmeans_init)
        self.kmeans_iters = check_int("kmeans_iters", kmeans_iters, min_value=1)
        self.dead_threshold = check_float("dead_threshold", dead_threshold, min_value=0.0)
        self.cosine = bool(cosine)
        self.rotation = bool(rotation)
        self.ema_warmup = bool(ema_warmup)
        self.usage_decay = self.decay if usage_decay is None else check_float("usage_decay", usage_decay,
                                                                              min_value=0.0, max_value=1.0)
        self.updates = 0  # EMA updates so far (for ema_warmup; not saved)
        init = torch.randn(num_codes, dim)
        if not cosine:
            init = init * 0.1  # small codes near the origin, as in common VQ-VAE code
        self.codebook = nn.Parameter(init, requires_grad=not self.ema)
        # EMA counts and sums start consistent: every code "has seen" one vector, itself, so
        # embed_sum / cluster_size = the initial code. (Counts 0 with sums = codes would divide a
        # code that the first batches miss by ~eps and fling it far away; sonnet#272.)
        self.register_buffer("cluster_size", torch.ones(num_codes))        # EMA counts (EMA mode)
        self.register_buffer("embed_sum", init.clone())                   # EMA sums (EMA mode)
        self.register_buffer("usage", torch.ones(num_codes))               # EMA counts for dead codes
        self.register_buffer("initialized", torch.tensor(not self.kmeans_init))
        self._needs_init = self.kmeans_init  # mirrors ``initialized`` on the host: no device read per step
        self._restarts = 0  # an int on the CPU path; on an accelerator a 0-d tensor, read only when asked

    @property
    def restarts(self) -> int:
        """How many codes were restarted so far (not saved). On an accelerator, reading it waits for the device."""
        return int(self._restarts)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._needs_init = not bool(self.initialized)   # loading is not a hot path: one read here

    def extra_repr(self) -> str:
        return (f"num_codes={self.num_codes}, dim={self.dim}, beta={self.beta}, ema={self.ema}, "
                f"decay={self.decay}, kmeans_init={self.kmeans_init}, dead_threshold={self.dead_threshold}, "
                f"cosine={self.cosine}" + (", rotation=True" if self.rotation else "")
                + (", ema_warmup=True" if self.ema_warmup else "")
                + (f", usage_decay={self.usage_decay}" if self.usage_decay != self.decay else ""))

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if self.cosine else x

    def get_codebook(self) -> torch.Tensor:
        """The codes actually used for lookup: (K, D)."""
        return self._norm(self.codebook)

    @torch.no_grad()
    def _init_kmeans(self, flat: torch.Tensor) -> None:
        centroids = kmeans(flat.float(), self.num_codes, iters=self.kmeans_iters)
        self.codebook.data.copy_(centroids)
        self.embed_sum.copy_(centroids)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)
        self._needs_init = False

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor) -> None:
        """EMA codebook update from a batch: flat (N, D) vectors, idx (N,) their codes, counts (K,) float.

        The statistics are float32 (like the buffers) with autocast off. Determinism: on the CPU (with
        :func:`course_lib.device.deterministic`) the same batch gives the same bits every run. On CUDA
        ``index_add_`` accumulates floats with atomic adds in an order that changes from run to run, so
        ``embed_sum`` and the codes differ between runs in the last digits: CUDA runs are reproducible
        only up to such rounding, not bit for bit.
        """
        flat = flat.float()
        sums = torch.zeros(self.num_codes, self.dim, device=flat.device, dtype=flat.dtype).index_add_(0, idx, flat)
        if self.ema_warmup:      # the t-th update: min(decay, t / (t + 9)), as TensorFlow's num_updates
            self.updates += 1
            decay = min(self.decay, self.updates / (self.updates + 9.0))
        else:
            decay = self.decay
        self.cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        self.embed_sum.mul_(decay).add_(sums, alpha=1 - decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n  # Laplace smoothing
        self.codebook.data.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def _restart_dead(self, flat: torch.Tensor) -> None:
        """Replace codes whose usage is below ``dead_threshold`` by random vectors of the batch."""
        dead = self.usage < self.dead_threshold
        if not reads_values(dead):
            return self._restart_dead_on_device(flat, dead)
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        pick = torch.randint(flat.shape[0], (n_dead,), device=flat.device)
        new = flat[pick]
        self.codebook.data[dead] = new
        self.usage[dead] = self.dead_threshold  # give the new code a chance before it may die again
        if self.ema:
            self.cluster_size[dead] = self.dead_threshold
            self.embed_sum[dead] = new * self.dead_threshold
        self._restarts += n_dead

    @torch.no_grad()
    def _restart_dead_on_device(self, flat: torch.Tensor, dead: torch.Tensor) -> None:
        """:meth:`_restart_dead` without reading the device: a candidate vector is drawn for every code
        and kept where the code is dead (the same rule; other random draws than the CPU path's, which
        draws only as many as there are dead codes)."""
        new = flat[torch.randint(flat.shape[0], (self.num_codes,), device=flat.device)]
        self.codebook.data.copy_(torch.where(dead[:, None], new, self.codebook.data))
        threshold = torch.full_like(self.usage, self.dead_threshold)
        self.usage.copy_(torch.where(dead, threshold, self.usage))
        if self.ema:
            self.cluster_size.copy_(torch.where(dead, threshold, self.cluster_size))
            self.embed_sum.copy_(torch.where(dead[:, None], new * self.dead_threshold, self.embed_sum))
        self._restarts = self._restarts + dead.sum()

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """z: (B, D, H, W) finite -> :class:`QuantizerOutput` (straight-through z_q, indices (B, H, W), loss)."""
        check_tensor("z", z, ndim=4, floating=True, finite=True, hot=True)
        if z.shape[1] != self.dim:
            raise ValueError(f"z must have {self.dim} channels (the code width); got shape {tuple(z.shape)}")
        with _float32(z.device):
            return self._quantize(z.float())

    def _quantize(self, z: torch.Tensor) -> QuantizerOutput:
        """:meth:`forward` after its checks: z (B, D, H, W) float32, autocast off."""
        flat = self._norm(_flatten(z))
        if self.training and self._needs_init:
            self._init_kmeans(flat.detach())
        codebook = self.get_codebook()
        idx = nearest_code(flat.detach(), codebook.detach())
        q_flat = codebook[idx]
        commitment = F.mse_loss(flat, q_flat.detach())
        loss = self.beta * commitment
        if not self.ema:
            loss = loss + F.mse_loss(q_flat, flat.detach())
        if self.rotation:
            q_st = rotate_to(flat, q_flat.detach())  # forward = code, backward = rotated and scaled
        else:
            q_st = flat + (q_flat - flat).detach()  # straight-through: forward = code, backward = identity
        counts = torch.bincount(idx, minlength=self.num_codes).float()
        if self.training:
            with torch.no_grad():
                self.usage.mul_(self.usage_decay).add_(counts, alpha=1 - self.usage_decay)
                if self.ema:
                    self._ema_update(flat.detach(), idx, counts)
                if self.dead_threshold > 0:
                    self._restart_dead(flat.detach())
        stats = {"perplexity": _perplexity_tensor(counts), "used": (counts > 0).float().mean(),
                 "commitment": commitment.detach()}
        return QuantizerOutput(_unflatten(q_st, z.shape), idx.reshape(z.shape[0], z.shape[2], z.shape[3]),
                               loss, stats)

    def codes_to_latents(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, H, W) long -> code vectors (B, D, H, W)."""
        check_tensor("indices", indices, ndim=3, dtype=torch.long)
        check_codes("indices", indices, self.num_codes)
        vecs = self.get_codebook()[indices]  # (B, H, W, D)
        return vecs.permute(0, 3, 1, 2).contiguous()


class FSQ(nn.Module):
    """Finite scalar quantization (Mentzer et al. 2023): no codebook, no auxiliary loss.

    A 1x1 projection maps the ``dim`` latent channels to ``len(levels)`` channels, each squashed
    into a bounded range and rounded to ``levels[i]`` values (straight-through); another 1x1
    projection maps back. The implicit codebook has ``prod(levels)`` codes and every one of them
    is reachable, so it cannot collapse.
    """

    def __init__(self, levels, dim: int):
        super().__init__()
        if not isinstance(levels, (list, tuple)) or not levels:
            raise TypeError(f"levels must be a non-empty list of ints, e.g. [8, 5, 5, 5]; got {levels!r}")
        for i, level in enumerate(levels):
            check_int(f"levels[{i}]", level, min_value=2)
        self.levels = [int(v) for v in levels]
        self.dim = check_int("dim", dim, min_value=1)
        self.num_codes = int(math.prod(self.levels))
        self.project_in = nn.Conv2d(dim, len(levels), 1)
        self.project_out = nn.Conv2d(len(levels), dim, 1)
        self.register_buffer("_levels", torch.tensor(self.levels, dtype=torch.float32), persistent=False)
        basis = torch.cumprod(torch.tensor([1] + self.levels[:-1]), 0)
        self.register_buffer("_basis", basis, persistent=False)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, num_codes={self.num_codes}"

    def _digits(self, h: torch.Tensor) -> torch.Tensor:
        """h: (B, L, H, W) -> integer-valued floats in 0..levels-1 (rounded straight-through)."""
        lv = self._levels.view(1, -1, 1, 1)
        half = (lv - 1) * (1 + 1e-3) / 2
        offset = (lv % 2 == 0).float() * 0.5
        shift = torch.atanh(offset / half)
        bounded = torch.tanh(h + shift) * half - offset  # even L: (-L/2, L/2 - 1); odd: (-(L-1)/2, (L-1)/2)
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        return rounded + torch.div(lv, 2, rounding_mode="floor")

    def _scale(self, digits: torch.Tensor) -> torch.Tensor:
        """digits 0..L-1 -> values in about [-1, 1]."""
        half_width = torch.div(self._levels, 2, rounding_mode="floor").view(1, -1, 1, 1)
        return (digits - half_width) / half_width

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """z: (B, D, H, W) finite -> QuantizerOutput with indices (B, H, W) in 0..prod(levels)-1."""
        check_tensor("z", z, ndim=4, floating=True, finite=True, hot=True)
        if z.shape[1] != self.dim:
            raise ValueError(f"z must have {self.dim} channels; got shape {tuple(z.shape)}")
        digits = self._digits(self.project_in(z.float()))  # (B, L, H, W)
        idx = (digits.detach().round().long() * self._basis.view(1, -1, 1, 1)).sum(1)
        z_q = self.project_out(self._scale(digits))
        counts = torch.bincount(idx.reshape(-1), minlength=self.num_codes).float()
        stats = {"perplexity": _perplexity_tensor(counts), "used": (counts > 0).float().mean()}
        return QuantizerOutput(z_q, idx, z.new_zeros(()), stats)

    def codes_to_latents(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, H, W) long -> latents (B, D, H, W)."""
        check_tensor("indices", indices, ndim=3, dtype=torch.long)
        check_codes("indices", indices, self.num_codes)
        digits = (indices[:, None] // self._basis.view(1, -1, 1, 1)) % self._levels.long().view(1, -1, 1, 1)
        return self.project_out(self._scale(digits.float()))


class ResidualVQ(nn.Module):
    """``num_stages`` vector quantizers in a row: stage s codes the residual z - (sum of earlier codes).

    Indices: (B, H, W, num_stages); bits per cell = num_stages * log2(num_codes).
    Keyword arguments go to each :class:`VectorQuantizer`.
    """

    def __init__(self, num_stages: int, num_codes: int, dim: int, **vq_kwargs):
        super().__init__()
        check_int("num_stages", num_stages, min_value=1)
        self.stages = nn.ModuleList([VectorQuantizer(num_codes, dim, **vq_kwargs) for _ in range(num_stages)])
        self.num_codes = num_codes
        self.dim = dim

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """z: (B, D, H, W) finite -> QuantizerOutput with indices (B, H, W, num_stages)."""
        check_tensor("z", z, ndim=4, floating=True, finite=True, hot=True)
        residual = z.float()
        total = torch.zeros_like(residual)
        loss = z.new_zeros(())
        indices, used, perps = [], [], []
        for vq in self.stages:
            out = vq(residual)
            code = out.z_q.detach()       # this stage's code vectors
            total = total + code
            residual = residual - code    # what is left for the next stage
            loss = loss + out.loss
            indices.append(out.indices)
            used.append(out.stats["used"])
            perps.append(out.stats["perplexity"])
        z_q = z + (total - z).detach()  # straight-through for the whole stack
        stats = {"perplexity": perps[0], "used": sum(used) / len(used)}
        return QuantizerOutput(z_q, torch.stack(indices, dim=-1), loss, stats)

    def codes_to_latents(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, H, W, num_stages) -> latents (B, D, H, W), the sum of each stage's code."""
        check_tensor("indices", indices, ndim=4, dtype=torch.long)
        if indices.shape[-1] != len(self.stages):
            raise ValueError(f"indices must have {len(self.stages)} stages in the last axis; got shape "
                             f"{tuple(indices.shape)}")
        return sum(vq.codes_to_latents(indices[..., s]) for s, vq in enumerate(self.stages))


DOWNSAMPLE = (2, 4, 8)


class Encoder(nn.Module):
    """x: (B, C, S, S) -> z: (B, dim, G, G) with G = ceil(S / downsample).

    downsample 4 (default): two stride-2 4x4 convs (32 then ``hidden`` channels), a 3x3 and a 1x1 conv;
    2 drops the second stride; 8 adds a stride-2 3x3 conv (28 -> 7 -> 4).
    """

    def __init__(self, in_channels: int = 1, hidden: int = 64, dim: int = 16, downsample: int = 4):
        super().__init__()
        h1 = hidden // 2
        layers = [nn.Conv2d(in_channels, h1, 4, stride=2, padding=1), nn.ReLU(),
                  nn.Conv2d(h1, hidden, 4 if downsample > 2 else 3, stride=2 if downsample > 2 else 1, padding=1),
                  nn.ReLU()]
        if downsample == 8:
            layers += [nn.Conv2d(hidden, hidden, 3, stride=2, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """z_q: (B, dim, G, G) -> x_hat: (B, C, S, S), a linear output (no sigmoid; clamp to show).

    Mirrors :class:`Encoder`; ``image_size`` fixes the output size when downsample is 8.
    """

    def __init__(self, out_channels: int = 1, hidden: int = 64, dim: int = 16, downsample: int = 4,
                 image_size: int = 28):
        super().__init__()
        h1 = hidden // 2
        self.mid = image_size // 4  # size after undoing the extra stride of downsample 8
        self.inp = nn.Sequential(nn.Conv2d(dim, hidden, 3, padding=1), nn.ReLU())
        self.up8 = nn.ConvTranspose2d(hidden, hidden, 3, stride=2, padding=1) if downsample == 8 else None
        self.net = nn.Sequential(
            nn.ConvTranspose2d(hidden, h1, 4, stride=2, padding=1) if downsample > 2
            else nn.Conv2d(hidden, h1, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(h1, out_channels, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.inp(z)
        if self.up8 is not None:
            h = torch.relu(self.up8(h, output_size=[self.mid, self.mid]))
        return self.net(h)


QUANTIZERS = ("vq", "fsq", "rvq")


def build_quantizer(kind: str = "vq", *, dim: int = 16, num_codes: int = 512, levels=None,
                    num_stages: int = 2, **vq_kwargs) -> nn.Module:
    """A quantizer by name: ``"vq"`` (:class:`VectorQuantizer`), ``"fsq"`` (:class:`FSQ`, needs
    ``levels``) or ``"rvq"`` (:class:`ResidualVQ`)."""
    check_choice("kind", kind, QUANTIZERS)
    if kind == "vq":
        return VectorQuantizer(num_codes, dim, **vq_kwargs)
    if kind == "fsq":
        return FSQ(levels, dim)
    return ResidualVQ(num_stages, num_codes, dim, **vq_kwargs)


class VQVAE(nn.Module):
    """Encoder -> quantizer -> decoder.

    x: (B, C, S, S) in [0, 1] (S = ``image_size``) -> x_hat (B, C, S, S) (linear output), codes
    (B, G, G) with G = ceil(S / downsample) (``(B, G, G, Q)`` for residual VQ). ``quantizer`` is any
    of the quantizers of this module.
    """

    def __init__(self, quantizer: nn.Module, *, channels: int = 1, hidden: int = 64, dim: int = 16,
                 downsample: int = 4, image_size: int = 28):
        super().__init__()
        self.channels = check_int("channels", channels, min_value=1)
        self.dim = check_int("dim", dim, min_value=1)
        check_int("hidden", hidden, min_value=2)
        if not isinstance(quantizer, nn.Module):
            raise TypeError(f"quantizer must be a quantizer module (e.g. build_quantizer('vq', dim={dim})); got "
                            f"{type(quantizer).__name__}")
        if getattr(quantizer, "dim", dim) != dim:
            raise ValueError(f"quantizer must work on vectors of width dim={dim}; got a quantizer of width "
                             f"{quantizer.dim}")
        if isinstance(downsample, bool) or downsample not in DOWNSAMPLE:
            raise ValueError(f"downsample must be one of {DOWNSAMPLE}; got {downsample!r}")
        self.downsample = downsample
        self.image_size = check_int("image_size", image_size, min_value=8)
        self.grid = -(-image_size // downsample)
        self.encoder = Encoder(channels, hidden, dim, downsample)
        self.quantizer = quantizer
        self.decoder = Decoder(channels, hidden, dim, downsample, image_size)

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, S, S) floating, finite, on the model's device (float64 is converted)."""
        check_tensor("x", x, ndim=4, floating=True)
        s = self.image_size
        if tuple(x.shape[1:]) != (self.channels, s, s):
            raise ValueError(f"x must have shape (B, {self.channels}, {s}, {s}); got shape {tuple(x.shape)}")
        check_tensor("x", x, finite=True, hot=True)
        return to_model("x", x, self)

    def forward(self, x: torch.Tensor):
        """x (B, C, S, S) -> (x_hat (B, C, S, S), QuantizerOutput)."""
        q = self.quantizer(self.encoder(self._check_x(x)))
        return self.decoder(q.z_q), q

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, S, S) -> codes (B, G, G) long (no training updates)."""
        was = self.training
        self.eval()
        out = self.quantizer(self.encoder(self._check_x(x))).indices
        self.train(was)
        return out

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """codes -> x_hat (B, C, S, S) (linear output; clamp to [0, 1] to show)."""
        return self.decoder(self.quantizer.codes_to_latents(indices))


def vqvae_loss(model: VQVAE, batch) -> tuple[torch.Tensor, dict]:
    """Loss for :func:`course_lib.train.fit`: MSE reconstruction + the quantizer's loss.

    The logged values are 0-d tensors (``fit`` reads them back to the host every few dozen steps)."""
    x = batch[0]
    x_hat, q = model(x)
    mse = F.mse_loss(x_hat, x)
    return mse + q.loss, {"mse": mse.detach(), "perplexity": q.stats["perplexity"], "used": q.stats["used"]}
