"""Every exercise check accepts a correct answer written in another style than the notebook's, and
rejects the classic wrong answers with its specific message (not a generic "is off")."""
from __future__ import annotations

import math

import pytest
import torch

from course_lib.checks import ExerciseError
from course_lib.checks.autoencoders import check_pca_reconstruct, check_principal_angles, check_reconstruction_loss
from course_lib.checks.vae import check_gaussian_kl, check_log_mean_weight, check_reparameterize
from course_lib.checks.vq import (check_ema_update, check_fsq_round, check_lloyd_step, check_perplexity,
                                  check_quantize, check_vq_losses)


def wrong(check, fn, *args, match):
    with pytest.raises(ExerciseError, match=match) as info:
        check(fn, *args)
    assert info.value.status == "wrong", str(info.value)
    return str(info.value)


# ------------------------------------------------------------------ 01 autoencoders
def test_reconstruction_loss():
    assert check_reconstruction_loss(lambda xh, x: torch.mean((xh - x).reshape(len(x), -1) ** 2, dim=1))
    wrong(check_reconstruction_loss, lambda xh, x: ((xh - x) ** 2).flatten(1).sum(1), match="784 times too large")
    wrong(check_reconstruction_loss, lambda xh, x: ((xh - x) ** 2).mean(), match="one number for the whole batch")
    wrong(check_reconstruction_loss, lambda xh, x: ((xh - x) ** 2).flatten(1).mean(1).sqrt(), match="root")


@pytest.fixture(scope="module")
def pca_data():
    from course_lib.models.pca import PCA
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 1, 28, 28, generator=g) * torch.rand(1, 1, 28, 28, generator=g)
    pca = PCA.fit(x, k=32)
    return x.reshape(300, -1), pca.mean, pca.components


def test_pca_reconstruct(pca_data):
    def another_style(x, mean, comps, k):
        v = comps[:k]
        return torch.einsum("nk,kd->nd", torch.einsum("nd,kd->nk", x - mean, v), v) + mean
    assert check_pca_reconstruct(another_style, *pca_data)
    wrong(check_pca_reconstruct, lambda x, m, v, k: x @ v[:k].T @ v[:k], *pca_data, match="subtract the mean")
    wrong(check_pca_reconstruct, lambda x, m, v, k: (x - m) @ v[:k].T @ v[:k], *pca_data, match="is off")
    wrong(check_pca_reconstruct, lambda x, m, v, k: (x - m) @ v.T @ v + m, *pca_data, match="rank-1 reconstruction is off")


def test_principal_angles():
    def via_projection(a, b):          # another style: eigenvalues of the product of the two projectors
        pa = a.T @ torch.linalg.pinv(a.T)
        pb = b.T @ torch.linalg.pinv(b.T)
        ev = torch.linalg.eigvals(pa.double() @ pb.double()).real.sort(descending=True).values[:len(a)]
        return torch.rad2deg(torch.arccos(ev.clamp(0, 1).sqrt())).float()
    assert check_principal_angles(via_projection)

    def ortho(a):
        return torch.linalg.qr(a.T).Q.T

    def right(a, b):
        s = torch.linalg.svdvals(ortho(a) @ ortho(b).T)
        return torch.rad2deg(torch.arccos(s.clamp(-1, 1))).sort().values
    assert check_principal_angles(right)
    wrong(check_principal_angles, lambda a, b: torch.rad2deg(torch.arccos(torch.linalg.svdvals(a @ b.T).clamp(-1, 1))),
          match="orthonormalise")
    wrong(check_principal_angles, lambda a, b: torch.deg2rad(right(a, b)), match="radians")
    wrong(check_principal_angles, lambda a, b: torch.linalg.svdvals(ortho(a) @ ortho(b).T), match="cosines")
    wrong(check_principal_angles, lambda a, b: right(a, b).flip(0), match="ascending")

    def no_clamp(a, b):
        s = torch.linalg.svdvals(ortho(a) @ ortho(b).T)
        return torch.rad2deg(torch.arccos(s * (1 + 1e-6))).sort().values   # rounding that lands above 1
    wrong(check_principal_angles, no_clamp, match="NaN")


# ------------------------------------------------------------------ 02 VAE
def test_reparameterize():
    def another_style(mu, logvar):
        return torch.addcmul(mu, logvar.mul(0.5).exp(), torch.empty_like(mu).normal_())
    assert check_reparameterize(another_style)
    wrong(check_reparameterize, lambda mu, lv: mu + torch.exp(lv) * torch.randn_like(mu), match="the variance")
    wrong(check_reparameterize, lambda mu, lv: mu + 0 * lv, match="z equals mu")
    msg = wrong(check_reparameterize, lambda mu, lv: torch.normal(mu, torch.exp(0.5 * lv)), match="torch.normal")
    assert "gradient with respect to both is zero" in msg
    wrong(check_reparameterize, lambda mu, lv: torch.normal(mu.detach(), torch.exp(0.5 * lv.detach())),
          match="cuts the graph")


def test_gaussian_kl():
    def another_style(mu, logvar):
        var = logvar.exp()
        return torch.sum(-0.5 * (1 + logvar - mu * mu - var), dim=-1)
    assert check_gaussian_kl(another_style)
    wrong(check_gaussian_kl, lambda mu, lv: (mu ** 2 + lv.exp() - 1 - lv).sum(1), match="factor 0.5")
    wrong(check_gaussian_kl, lambda mu, lv: 0.5 * (mu ** 2 + lv.exp() - 1 - lv), match="one KL per latent dimension")
    wrong(check_gaussian_kl, lambda mu, lv: 0.5 * (mu ** 2 + lv.exp() - 1 - lv).mean(1), match="averaged")


def test_log_mean_weight():
    def another_style(log_w):
        m = log_w.max(dim=0, keepdim=True).values
        return (m + torch.log(torch.exp(log_w - m).mean(0, keepdim=True)))[0]
    assert check_log_mean_weight(another_style)
    assert check_log_mean_weight(lambda lw: torch.logsumexp(lw, 0) - math.log(lw.shape[0]))
    wrong(check_log_mean_weight, lambda lw: torch.log(torch.exp(lw).mean(0)), match="underflows")
    wrong(check_log_mean_weight, lambda lw: lw.mean(0), match="ELBO")
    wrong(check_log_mean_weight, lambda lw: torch.logsumexp(lw, 0), match="log K")
    wrong(check_log_mean_weight, lambda lw: torch.logsumexp(lw, 1) - math.log(lw.shape[1]), match="over the images")


# ------------------------------------------------------------------ 03 VQ-VAE
def test_quantize():
    def another_style(z, codebook):
        flat = z.movedim(1, -1)                                     # (B, H, W, D)
        d = ((flat[..., None, :] - codebook) ** 2).sum(-1)          # (B, H, W, K)
        idx = d.argmin(-1)
        q = codebook[idx].movedim(-1, 1)
        return q.detach() + z - z.detach(), idx
    assert check_quantize(another_style)

    def no_st(z, codebook):
        q, idx = another_style(z, codebook)
        return q.detach(), idx
    wrong(check_quantize, no_st, match="no gradient reached z")

    def farthest(z, codebook):
        flat = z.movedim(1, -1)
        idx = ((flat[..., None, :] - codebook) ** 2).sum(-1).argmax(-1)
        return z + (codebook[idx].movedim(-1, 1) - z).detach(), idx
    wrong(check_quantize, farthest, match="not the nearest code")

    def wrong_layout(z, codebook):     # reshapes (B*H*W, D) straight to (B, D, H, W): scrambles the cells
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        idx = torch.cdist(flat, codebook).argmin(1)
        q = codebook[idx].reshape(b, d, h, w)
        return z + (q - z).detach(), idx.reshape(b, h, w)
    wrong(check_quantize, wrong_layout, match="forward value")


def test_vq_losses():
    import torch.nn.functional as F

    def another_style(z, code, beta):
        return ((z.detach() - code) ** 2).mean() + beta * ((z - code.detach()) ** 2).mean()
    assert check_vq_losses(another_style)
    assert check_vq_losses(lambda z, c, b: F.mse_loss(c, z.detach()) + b * F.mse_loss(z, c.detach()))
    wrong(check_vq_losses, lambda z, c, b: F.mse_loss(c, z) + b * F.mse_loss(z, c), match="stop the gradient on its z")
    wrong(check_vq_losses, lambda z, c, b: b * F.mse_loss(c, z.detach()) + F.mse_loss(z, c.detach()),
          match="beta weights the wrong term")
    wrong(check_vq_losses, lambda z, c, b: F.mse_loss(c, z.detach(), reduction="sum")
          + b * F.mse_loss(z, c.detach(), reduction="sum"), match="times too large")
    wrong(check_vq_losses, lambda z, c, b: F.mse_loss(c.detach(), z.detach()) * (1 + b), match="no gradient")


def test_perplexity():
    def another_style(indices, num_codes):
        _, counts = torch.unique(indices, return_counts=True)
        p = counts.double() / counts.sum()
        return math.exp(-sum(float(q) * math.log(float(q)) for q in p))
    assert check_perplexity(another_style)

    def with_nan(indices, k):
        p = torch.bincount(indices.flatten(), minlength=k).float() / indices.numel()
        return float(torch.exp(-(p * p.log()).sum()))
    wrong(check_perplexity, with_nan, match="NaN")
    wrong(check_perplexity, lambda idx, k: float(len(torch.unique(idx))), match="number of distinct codes")

    def entropy_only(indices, k):
        p = torch.bincount(indices.flatten(), minlength=k).float() / indices.numel()
        p = p[p > 0]
        return float(-(p * p.log()).sum())
    wrong(check_perplexity, entropy_only, match="returned the entropy")


# ------------------------------------------------------------------ 04 vector quantization
def _ema_reference(cluster_size, embed_sum, z, idx, decay):
    onehot = torch.nn.functional.one_hot(idx, len(cluster_size)).to(z.dtype)       # (N, K): another style
    n = decay * cluster_size + (1 - decay) * onehot.sum(0)
    s = decay * embed_sum + (1 - decay) * onehot.T @ z
    return n, s, s / n[:, None]


def test_ema_update():
    assert check_ema_update(_ema_reference)

    def no_minlength(cluster_size, embed_sum, z, idx, decay):
        counts = torch.bincount(idx).float()
        sums = torch.zeros_like(embed_sum).index_add_(0, idx, z)
        n = decay * cluster_size + (1 - decay) * counts
        s = decay * embed_sum + (1 - decay) * sums
        return n, s, s / n[:, None]
    msg = wrong(check_ema_update, no_minlength, match="shape mismatch")
    assert "every code needs an entry" in msg
    wrong(check_ema_update, lambda n, s, z, i, d: (n, s, s / n[:, None]), match="new_cluster_size is off")

    def decay_swapped(cluster_size, embed_sum, z, idx, decay):
        return _ema_reference(cluster_size, embed_sum, z, idx, 1 - decay)
    wrong(check_ema_update, decay_swapped, match="new_cluster_size is off")

    def batch_mean_as_code(cluster_size, embed_sum, z, idx, decay):
        n, s, _ = _ema_reference(cluster_size, embed_sum, z, idx, decay)
        return n, s, s / cluster_size[:, None]
    wrong(check_ema_update, batch_mean_as_code, match="new_codebook is off")


def test_lloyd_step():
    def another_style(x, codes):
        idx = torch.cdist(x, codes).argmin(1)
        new = codes.clone()
        for k in idx.unique():
            new[k] = x[idx == k].mean(0)
        return new
    assert check_lloyd_step(another_style)

    def nan_for_empty(x, codes):
        idx = torch.cdist(x, codes).argmin(1)
        onehot = torch.nn.functional.one_hot(idx, len(codes)).float()
        return onehot.T @ x / onehot.sum(0)[:, None]
    wrong(check_lloyd_step, nan_for_empty, match="NaN")

    def sums(x, codes):
        idx = torch.cdist(x, codes).argmin(1)
        return torch.where(torch.bincount(idx, minlength=len(codes))[:, None] > 0,
                           torch.zeros_like(codes).index_add_(0, idx, x), codes)
    wrong(check_lloyd_step, sums, match="sum")

    def clamp_to_origin(x, codes):
        idx = torch.cdist(x, codes).argmin(1)
        cnt = torch.bincount(idx, minlength=len(codes)).float()
        return torch.zeros_like(codes).index_add_(0, idx, x) / cnt.clamp(min=1)[:, None]
    wrong(check_lloyd_step, clamp_to_origin, match="jumped to the origin")


def test_fsq_round():
    def another_style(h, levels):
        b = (levels - 1) / 2 * torch.tanh(h)
        return b + (b.round() - b).detach()
    assert check_fsq_round(another_style)

    class RoundST(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return torch.round(x)

        @staticmethod
        def backward(ctx, g):
            return g
    assert check_fsq_round(lambda h, L: RoundST.apply(torch.tanh(h) * (L - 1) / 2))
    wrong(check_fsq_round, lambda h, L: torch.round(torch.tanh(h) * (L - 1) / 2), match="gradient")
    wrong(check_fsq_round, lambda h, L: h + (torch.round(torch.tanh(h) * (L - 1) / 2) - h).detach(),
          match="skips the tanh")
    wrong(check_fsq_round, lambda h, L: RoundST.apply(torch.tanh(h) * L / 2), match="bound is L / 2")
    wrong(check_fsq_round, lambda h, L: RoundST.apply(torch.clamp(h, -(L - 1) / 2, (L - 1) / 2)),
          match="forward values")


def test_stubs_are_todo():
    def stub(*args):
        raise NotImplementedError("a hint")
    for check in (check_principal_angles, check_log_mean_weight, check_vq_losses, check_lloyd_step, check_fsq_round,
                  check_perplexity, check_ema_update):
        with pytest.raises(ExerciseError) as info:
            check(stub)
        assert info.value.status == "todo"


# ------------------------------------------------------------------ the notebooks' exercise cells
@pytest.mark.parametrize("stem", ["01_autoencoders", "02_variational_autoencoders", "03_vq_vae",
                                  "04_vector_quantization"])
def test_notebook_exercises_nbgrader_metadata_and_hints(stem):
    """At least 3 exercises, each with nbgrader metadata and a hint that names no code (no calls, no torch.)."""
    import re
    from pathlib import Path

    import nbformat

    from course_lib.student import HINT, exercise_cells
    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / f"{stem}.ipynb", as_version=4)
    cells = exercise_cells(nb)
    assert len(cells) >= 3, f"{stem}: {len(cells)} exercises"
    for n, i in enumerate(cells, 1):
        meta = nb.cells[i].metadata
        assert "exercise" in meta.tags
        assert meta["nbgrader"] == {"grade": False, "grade_id": f"{stem}-ex{n}", "locked": False,
                                    "schema_version": 3, "solution": True, "task": False}
        hints = [line.strip()[len(HINT):] for line in nb.cells[i].source.splitlines() if line.strip().startswith(HINT)]
        assert hints, f"{stem} exercise {n} has no hint"
        for hint in hints:
            assert not re.search(r"\w\(|torch\.|\.detach|\*\*|@", hint), f"{stem} exercise {n}: the hint shows code: {hint}"
