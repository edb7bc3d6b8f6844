"""Quantizers and the VQ-VAE: straight-through gradients, EMA against a hand computation, dead-code
restart, k-means, FSQ and residual VQ round trips, shapes and error messages, exercise checks."""

import pytest
import torch

from course_lib.checks import ExerciseError
from course_lib.checks.vq import check_ema_update, check_perplexity, check_quantize
from course_lib.models.vq import (FSQ, VQVAE, ResidualVQ, VectorQuantizer, code_counts, kmeans, nearest_code,
                                  perplexity, rotate_to, vqvae_loss)


def test_nearest_code_matches_cdist():
    g = torch.Generator().manual_seed(0)
    v, c = torch.randn(50, 5, generator=g), torch.randn(9, 5, generator=g)
    assert torch.equal(nearest_code(v, c), torch.cdist(v, c).argmin(1))
    with pytest.raises(ValueError, match="same width D"):
        nearest_code(v, torch.randn(9, 4))


def test_straight_through_gradient_and_losses():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 3)
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    out = vq(z)
    assert out.indices.shape == (2, 4, 4) and out.indices.dtype == torch.long
    # forward value: the codes
    assert torch.allclose(out.z_q, vq.codebook[out.indices].permute(0, 3, 1, 2), atol=1e-6)
    w = torch.randn_like(z)
    (out.z_q * w).sum().backward(retain_graph=True)
    assert torch.allclose(z.grad, w)                      # identity gradient to the encoder
    assert vq.codebook.grad is None                       # no gradient to the codes through z_q
    out.loss.backward()
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0  # codebook loss moves codes


def test_ema_update_matches_hand_computation():
    vq = VectorQuantizer(3, 2, ema=True, decay=0.9, eps=0.0)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0]]))
        vq.cluster_size.copy_(torch.tensor([2.0, 1.0, 1.0]))
        vq.embed_sum.copy_(torch.tensor([[2.0, 0.0], [10.0, 10.0], [-10.0, 5.0]]))
    # four vectors at 1x1 spatial size: three nearest code 0, one nearest code 1
    z = torch.tensor([[1.0, 1.0], [0.0, -1.0], [2.0, 0.0], [9.0, 9.0]]).reshape(4, 2, 1, 1)
    vq.train()
    out = vq(z)
    assert out.indices.flatten().tolist() == [0, 0, 0, 1]
    want_n = torch.tensor([0.9 * 2 + 0.1 * 3, 0.9 * 1 + 0.1 * 1, 0.9 * 1])
    want_s = torch.tensor([[0.9 * 2 + 0.1 * 3, 0.1 * 0], [0.9 * 10 + 0.1 * 9, 0.9 * 10 + 0.1 * 9],
                           [-9.0, 4.5]])
    assert torch.allclose(vq.cluster_size, want_n)
    assert torch.allclose(vq.embed_sum, want_s)
    assert torch.allclose(vq.codebook, want_s / want_n[:, None], atol=1e-5)
    assert not vq.codebook.requires_grad  # EMA codes are not trained by the optimiser
    assert torch.allclose(out.loss, 0.25 * ((z.reshape(4, 2) - torch.tensor(
        [[0.0, 0.0]] * 3 + [[10.0, 10.0]])) ** 2).mean())  # commitment only, before the update


def test_dead_code_restart_revives_codes():
    torch.manual_seed(0)
    z = torch.randn(16, 4, 5, 5) + 5.0  # far away from every initial code
    base = VectorQuantizer(32, 4, ema=True, decay=0.9)
    fixed = VectorQuantizer(32, 4, ema=True, decay=0.9, dead_threshold=1.0)
    fixed.load_state_dict(base.state_dict())
    for vq in (base, fixed):
        vq.train()
        for _ in range(30):
            vq(z)
    vq_eval = lambda vq: code_counts(vq.eval()(z).indices, 32)
    used_base, used_fixed = (vq_eval(base) > 0).sum().item(), (vq_eval(fixed) > 0).sum().item()
    assert used_base <= 3, used_base           # collapse: a few codes take everything
    assert used_fixed >= 24, used_fixed        # restart spreads codes over the data
    assert fixed.restarts > 0
    # restarted codes come from the data: they lie near the cloud, not near the origin
    assert fixed.codebook.mean().item() > 3.0


def _codes_at_0_and_10(vq: VectorQuantizer) -> None:
    """A 2-code, 1-d EMA quantizer with its codes at 0 and 10 and EMA sums consistent with them."""
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0], [10.0]]))
        vq.embed_sum.copy_(vq.codebook)


def test_usage_decay_sets_the_time_scale_of_dead_code_detection():
    """usage_decay: the usage count is an EMA with its own decay (default: ``decay``), so a code the data
    left is declared dead after fewer batches, while the code positions keep ``decay``."""
    z_a = torch.zeros(1, 1, 1, 1)                       # every vector on code 0 (at 0)
    counts = torch.tensor([1.0, 0.0])
    for usage_decay, expected in ((None, 0.95), (0.5, 0.5)):
        vq = VectorQuantizer(2, 1, ema=True, decay=0.95, usage_decay=usage_decay)
        _codes_at_0_and_10(vq)
        vq.train()
        vq(z_a)
        assert vq.usage_decay == expected
        assert torch.allclose(vq.usage, expected * torch.ones(2) + (1 - expected) * counts)
        assert torch.allclose(vq.cluster_size, 0.95 * torch.ones(2) + 0.05 * counts)   # positions: still decay
    # code 1 is never used: with a fast usage decay it is restarted after fewer batches
    def batches_until_restart(usage_decay):
        vq = VectorQuantizer(2, 1, ema=True, decay=0.95, dead_threshold=0.5, usage_decay=usage_decay)
        _codes_at_0_and_10(vq)
        vq.train()
        for n in range(1, 100):
            vq(z_a)
            if vq.restarts:
                return n
    # usage starts at 1 and falls as decay^n: below 0.5 after 2 batches (0.5^2) or 14 (0.95^14)
    assert batches_until_restart(0.5) == 2 and batches_until_restart(None) == 14
    assert "usage_decay=0.8" in repr(VectorQuantizer(4, 2, ema=True, usage_decay=0.8))
    with pytest.raises(ValueError, match="usage_decay"):
        VectorQuantizer(4, 2, usage_decay=1.5)


def test_rotation_trick_keeps_the_codes_and_rotates_the_gradient():
    """rotate_to returns the codes; the gradient reaching z is lambda R^T g with R the rotation taking z's
    direction to the code's (checked against the matrix built by hand) and lambda = |e| / |z|."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 5, generator=g).requires_grad_()
    e = torch.randn(6, 5, generator=g)
    out = rotate_to(z, e)
    assert torch.allclose(out, e, atol=1e-5)
    grad_out = torch.randn(6, 5, generator=g)
    out.backward(grad_out)
    for i in range(6):
        zh, eh = z[i].detach() / z[i].detach().norm(), e[i] / e[i].norm()
        r = (zh + eh) / (zh + eh).norm()
        R = torch.eye(5) - 2 * torch.outer(r, r) + 2 * torch.outer(eh, zh)
        assert torch.allclose(R @ R.T, torch.eye(5), atol=1e-5) and torch.allclose(R @ zh, eh, atol=1e-5)
        lam = e[i].norm() / z[i].detach().norm()
        assert torch.allclose(z.grad[i], lam * R.T @ grad_out[i], atol=1e-5)
    vq = VectorQuantizer(8, 3, rotation=True)
    zz = torch.randn(2, 3, 4, 4, requires_grad=True)
    q = vq(zz)
    assert torch.allclose(q.z_q, vq.codebook[q.indices].permute(0, 3, 1, 2), atol=1e-5)
    (q.z_q * torch.ones_like(zz)).sum().backward()
    assert not torch.allclose(zz.grad, torch.ones_like(zz))          # not straight through


def test_ema_warmup_starts_with_a_low_decay():
    """ema_warmup: the t-th EMA update uses min(decay, t / (t + 9)): 0.1, then 2/11, ..., later ``decay``."""
    vq = VectorQuantizer(2, 1, ema=True, decay=0.95, eps=0.0, ema_warmup=True)
    _codes_at_0_and_10(vq)
    z = torch.tensor([1.0, 9.0, 11.0]).reshape(3, 1, 1, 1)
    vq.train()
    n, s = torch.ones(2), torch.tensor([[0.0], [10.0]])
    for t in (1, 2):
        vq(z)
        d = t / (t + 9.0)
        n, s = d * n + (1 - d) * torch.tensor([1.0, 2.0]), d * s + (1 - d) * torch.tensor([[1.0], [20.0]])
        assert torch.allclose(vq.cluster_size, n) and torch.allclose(vq.embed_sum, s), t
    for _ in range(300):
        vq(z)
    assert vq.updates == 302 and torch.allclose(vq.codebook, torch.tensor([[1.0], [10.0]]), atol=1e-4)
    plain = VectorQuantizer(2, 1, ema=True, decay=0.95, eps=0.0)
    _codes_at_0_and_10(plain)
    plain.train()
    plain(z)
    assert torch.allclose(plain.cluster_size, 0.95 * torch.ones(2) + 0.05 * torch.tensor([1.0, 2.0]))


def test_kmeans_init_and_lloyd():
    torch.manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    x = (centers[torch.randint(3, (300,))] + 0.1 * torch.randn(300, 2))
    c, hist = kmeans(x, 3, iters=10, generator=torch.Generator().manual_seed(1), return_history=True)
    assert all(b <= a + 1e-6 for a, b in zip(hist, hist[1:]))  # Lloyd never increases distortion
    assert hist[-1] < 0.05
    vq = VectorQuantizer(3, 2, kmeans_init=True)
    assert not bool(vq.initialized)
    vq.train()
    vq(x.reshape(300, 2, 1, 1))
    assert bool(vq.initialized)
    assert torch.cdist(vq.codebook.detach(), centers).min(1).values.max() < 0.5


def test_perplexity_and_counts():
    assert perplexity(code_counts(torch.tensor([0, 1, 2, 3]), 8)) == pytest.approx(4.0)
    assert perplexity(code_counts(torch.tensor([2, 2, 2]), 8)) == pytest.approx(1.0)
    with pytest.raises(TypeError, match="indices must have dtype torch.int64"):
        code_counts(torch.tensor([0.0, 1.0]), 4)


def test_fsq_round_trip_and_gradient():
    torch.manual_seed(0)
    fsq = FSQ([8, 5, 5], dim=6)
    assert fsq.num_codes == 200
    z = (torch.randn(3, 6, 4, 4) * 3).requires_grad_()
    out = fsq(z)
    assert out.indices.shape == (3, 4, 4) and int(out.indices.min()) >= 0 and int(out.indices.max()) < 200
    assert torch.allclose(fsq.codes_to_latents(out.indices), out.z_q, atol=1e-5)
    out.z_q.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    all_codes = torch.arange(200).reshape(1, 10, 20)
    assert fsq.codes_to_latents(all_codes).shape == (1, 6, 10, 20)
    assert len(torch.unique(fsq.codes_to_latents(all_codes).flatten(2), dim=2)[0].T) == 200  # all distinct
    with pytest.raises(ValueError, match="levels\\[1\\] must be >= 2"):
        FSQ([8, 1], dim=4)


def test_residual_vq_round_trip_and_improves_with_stages():
    torch.manual_seed(0)
    z = torch.randn(8, 4, 3, 3)
    errs = []
    for stages in (1, 3):
        rvq = ResidualVQ(stages, 16, 4, kmeans_init=True)
        rvq.train()
        rvq(z)
        rvq.eval()
        out = rvq(z)
        assert out.indices.shape == (8, 3, 3, stages)
        assert torch.allclose(rvq.codes_to_latents(out.indices), out.z_q, atol=1e-5)
        errs.append(float((out.z_q - z).pow(2).mean()))
    assert errs[1] < errs[0]


def test_vqvae_shapes_errors_and_learning():
    torch.manual_seed(0)
    model = VQVAE(VectorQuantizer(32, 8, ema=True, kmeans_init=True, dead_threshold=0.5), hidden=32, dim=8)
    x = torch.rand(16, 1, 28, 28)
    x_hat, q = model(x)
    assert x_hat.shape == x.shape and q.indices.shape == (16, 7, 7)
    codes = model.encode(x)
    assert torch.allclose(model.decode(codes), model.decoder(model.quantizer.codes_to_latents(codes)))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 28, 28\)"):
        model(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="indices must lie in 0..31"):
        model.decode(torch.full((1, 7, 7), 32))
    with pytest.raises(ValueError, match="z must have 8 channels"):
        model.quantizer(torch.rand(1, 4, 7, 7))
    with pytest.raises(ValueError, match="num_codes must be >= 2"):
        VectorQuantizer(1, 4)
    with pytest.raises(TypeError, match="num_codes must be an int"):
        VectorQuantizer(8.0, 4)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    first = None
    for _ in range(40):
        loss, _ = vqvae_loss(model, (x,))
        first = first if first is not None else float(loss.detach())
        opt.zero_grad(), loss.backward(), opt.step()
    assert float(loss.detach()) < 0.5 * first



def test_stats_and_logged_values_are_detached_tensors():
    """Quantizer stats and vqvae_loss's logged values stay 0-d tensors (fit reads them back in bulk);
    float() of each is the number it used to be."""
    torch.manual_seed(0)
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    for q in (VectorQuantizer(8, 3), ResidualVQ(2, 8, 3), FSQ([3, 3], 3)):
        out = q(z)
        for name, value in out.stats.items():
            assert isinstance(value, torch.Tensor) and value.ndim == 0 and not value.requires_grad, (q, name)
        first = out.indices if out.indices.ndim == 3 else out.indices[..., 0]
        assert abs(float(out.stats["perplexity"]) - perplexity(code_counts(first, q.num_codes))) < 1e-5
    model = VQVAE(VectorQuantizer(16, 8), hidden=16, dim=8)
    _, logged = vqvae_loss(model, (torch.rand(4, 1, 28, 28),))
    assert set(logged) == {"mse", "perplexity", "used"}
    assert all(isinstance(v, torch.Tensor) and v.ndim == 0 and not v.requires_grad for v in logged.values())


def test_nearest_code_precision_follows_the_codebook():
    """float64 codebooks are searched in float64, float32 and bf16 ones in float32."""
    v = torch.tensor([[0.5 + 1e-9, 0.0]], dtype=torch.float64)
    c = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert nearest_code(v, c).tolist() == [1]                   # the 1e-9 survives in float64
    assert nearest_code(v, c.float()).tolist() == [0]           # rounded to float32: a tie, the first code
    assert nearest_code(torch.tensor([[0.9, 0.0]]), c.bfloat16()).tolist() == [1]

# --- exercise checks: the reference solutions pass, wrong ones fail with a clear message -------------

def _quantize_solution(z, codebook):
    b, d, h, w = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, d)
    idx = torch.cdist(flat, codebook).argmin(1)
    q = codebook[idx].reshape(b, h, w, d).permute(0, 3, 1, 2)
    return z + (q - z).detach(), idx.reshape(b, h, w)


def test_check_quantize():
    assert check_quantize(_quantize_solution)

    def no_straight_through(z, codebook):
        q, idx = _quantize_solution(z, codebook)
        return q.detach(), idx
    with pytest.raises(ExerciseError, match="no gradient reached z"):
        check_quantize(no_straight_through)

    def stub(z, codebook):
        raise NotImplementedError("hint")
    with pytest.raises(ExerciseError, match="not yet implemented"):
        check_quantize(stub)


def test_check_ema_update_and_perplexity():
    def ema_update(cluster_size, embed_sum, z, idx, decay):
        counts = torch.bincount(idx, minlength=len(cluster_size)).float()
        sums = torch.zeros_like(embed_sum).index_add_(0, idx, z)
        n = decay * cluster_size + (1 - decay) * counts
        s = decay * embed_sum + (1 - decay) * sums
        return n, s, s / n[:, None]
    assert check_ema_update(ema_update)
    with pytest.raises(ExerciseError, match="new_cluster_size is off"):
        check_ema_update(lambda n, s, z, i, d: (n, s, s / n[:, None]))

    assert check_perplexity(lambda idx, k: perplexity(code_counts(idx, k)))
    with pytest.raises(ExerciseError, match="perplexity of"):
        check_perplexity(lambda idx, k: float(len(torch.unique(idx))))
    with pytest.raises(ValueError, match="counts must have a positive total"):
        perplexity(torch.zeros(4))  # no code seen: no distribution (it used to say 1.0)


@pytest.mark.parametrize("downsample,size,channels,grid", [(2, 28, 1, 14), (4, 28, 1, 7), (8, 28, 1, 4),
                                                          (4, 24, 3, 6), (8, 24, 3, 3)])
def test_grid_sizes(downsample, size, channels, grid):
    model = VQVAE(VectorQuantizer(16, 8), channels=channels, hidden=16, dim=8, downsample=downsample,
                  image_size=size)
    x = torch.rand(2, channels, size, size)
    x_hat, q = model(x)
    assert x_hat.shape == x.shape and q.indices.shape == (2, grid, grid) and model.grid == grid


# --- the inline versions built in notebooks 03/04 agree with the library ----------------------------

class _TinyVQ(torch.nn.Module):
    """Notebook 03's inline quantizer (same code as the notebook cell)."""

    def __init__(self, num_codes, dim, beta=0.25):
        super().__init__()
        self.codebook = torch.nn.Parameter(torch.randn(num_codes, dim) * 0.1)
        self.beta = beta

    def forward(self, z):
        z_q, idx = _quantize_solution(z, self.codebook)
        code = self.codebook[idx].permute(0, 3, 1, 2)
        codebook_loss = torch.nn.functional.mse_loss(code, z.detach())
        commitment = torch.nn.functional.mse_loss(z, code.detach())
        return z_q, idx, codebook_loss + self.beta * commitment


def test_notebook03_inline_quantizer_matches_library():
    torch.manual_seed(0)
    tiny = _TinyVQ(64, 16)
    lib = VectorQuantizer(64, 16)
    lib.codebook.data.copy_(tiny.codebook.data)
    z1 = torch.randn(4, 16, 7, 7, requires_grad=True)
    z2 = z1.detach().clone().requires_grad_()
    zq_a, idx_a, loss_a = tiny(z1)
    out = lib(z2)
    assert torch.equal(idx_a, out.indices)
    assert torch.allclose(zq_a, out.z_q, atol=1e-6)
    assert torch.allclose(loss_a, out.loss, atol=1e-6)
    (zq_a.sum() + loss_a).backward()
    (out.z_q.sum() + out.loss).backward()
    assert torch.allclose(z1.grad, z2.grad, atol=1e-6)
    assert torch.allclose(tiny.codebook.grad, lib.codebook.grad, atol=1e-6)


def test_notebook04_inline_ema_matches_library():
    def ema_update(cluster_size, embed_sum, z, indices, decay):
        counts = torch.bincount(indices, minlength=len(cluster_size)).to(z.dtype)
        sums = torch.zeros_like(embed_sum).index_add_(0, indices, z)
        n = decay * cluster_size + (1 - decay) * counts
        s = decay * embed_sum + (1 - decay) * sums
        return n, s, s / n[:, None]
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, ema=True, decay=0.9, eps=0.0)
    with torch.no_grad():
        vq.cluster_size.fill_(1.0)
        vq.embed_sum.copy_(vq.codebook.data)
    before = (vq.cluster_size.clone(), vq.embed_sum.clone())
    z = torch.randn(4, 16, 3, 3)
    out = vq.train()(z)
    mine = ema_update(*before, z.permute(0, 2, 3, 1).reshape(-1, 16), out.indices.reshape(-1), 0.9)
    assert torch.allclose(mine[0], vq.cluster_size)
    assert torch.allclose(mine[1], vq.embed_sum, atol=1e-6)
    assert torch.allclose(mine[2], vq.codebook.data, atol=1e-5)


def test_ema_statistics_start_consistent():
    """A code that no vector chooses must stay where it started (sonnet#272: counts 0 with sums = codes
    divided such a code by ~eps and flung it away)."""
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, ema=True, decay=0.99)
    start = vq.codebook.detach().clone()
    assert torch.allclose(vq.embed_sum / vq.cluster_size[:, None], start)
    z = start[:2].reshape(2, 4, 1, 1).repeat(1, 1, 3, 3) + 0.01        # only codes 0 and 1 are ever chosen
    for _ in range(5):
        vq.train()(z)
    moved = (vq.codebook.detach() - start).norm(dim=1)
    assert moved[2:].max() < 0.05 * start[2:].norm(dim=1).min(), moved
