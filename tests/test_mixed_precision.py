"""bf16 autocast (what ``fit`` uses on CUDA) run on the CPU: the quantizer's code search, k-means and
EMA statistics give the float32 answers inside it; the VAE and transformer losses stay close to
float32; and ``COURSE_AUTOCAST=bf16`` runs fit's GPU code path (autocast on) on the CPU end to end.

Every "bf16 would have been wrong" claim is checked on the same data, so none of these tests can
pass by testing nothing: the plain bf16 distance (the code before the fix) is asserted to pick other
codes on the very batch where the library must match float32.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from course_lib.data import as_tensors
from course_lib.device import AUTOCAST_ENV, autocast, autocast_dtype
from course_lib.models.transformer import MixedTransformer, TransformerConfig
from course_lib.models.vae import VAE, vae_loss
from course_lib.models.vq import VQVAE, VectorQuantizer, build_quantizer, kmeans, nearest_code, vqvae_loss
from course_lib.train import fit

D, K = 16, 512            # code width and codebook size of a trained-looking codebook (notebooks: K = 256-512)
B, G = 64, 7              # one training batch of 7x7 latent grids, as for 28x28 digits


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _latents(n: int, g: torch.Generator) -> torch.Tensor:
    """Encoder-like latents: a 6-dimensional manifold curved into D dimensions, plus a little noise."""
    mix = torch.randn(6, D, generator=torch.Generator().manual_seed(1))
    return torch.tanh(torch.randn(n, 6, generator=g) @ mix) * 2 + 0.1 * torch.randn(n, D, generator=g)


@pytest.fixture(scope="module")
def trained():
    """A K=512 codebook from k-means (float32) of 16k latents, and a fresh batch of 64 x 7 x 7 latents."""
    g = torch.Generator().manual_seed(0)
    codebook = kmeans(_latents(16384, g), K, iters=10, generator=torch.Generator().manual_seed(0))
    return codebook, _latents(B * G * G, g)


def _bf16_matmul_codes(vectors, codebook):
    """The nearest-code search as it was before the fix: ||v||^2 - 2 v.c + ||c||^2 with the caller's
    autocast left on, so the matmul runs in bf16 while the norms stay float32."""
    d = vectors.pow(2).sum(1, keepdim=True) - 2 * vectors @ codebook.t() + codebook.pow(2).sum(1)[None, :]
    return d.argmin(1)


def test_nearest_code_under_bf16_autocast_is_the_float32_code(trained):
    codebook, v = trained
    want = nearest_code(v, codebook)
    assert torch.equal(want, torch.cdist(v.double(), codebook.double()).argmin(1))  # float32 is exact enough here
    with bf16():
        old = _bf16_matmul_codes(v, codebook)
        got = nearest_code(v, codebook)
        got_bf16_codebook = nearest_code(v.bfloat16(), codebook.bfloat16())
    # not vacuous: on this batch bf16 distances pick another code for a few percent of the vectors
    assert (old != want).sum() >= 10, int((old != want).sum())
    assert torch.equal(got, want)
    # a bf16 codebook is searched in float32 too (only the inputs' own rounding remains)
    assert torch.equal(got_bf16_codebook, nearest_code(v.bfloat16().float(), codebook.bfloat16().float()))


def test_kmeans_under_bf16_autocast_gives_the_float32_centroids(trained):
    codebook, _ = trained
    x = _latents(4096, torch.Generator().manual_seed(5))
    start = codebook[:256]
    want = kmeans(x, 256, iters=3, generator=torch.Generator().manual_seed(2))
    with bf16():
        got = kmeans(x, 256, iters=3, generator=torch.Generator().manual_seed(2))
        first_assignment_old = _bf16_matmul_codes(x, start)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    # not vacuous: Lloyd's assignment step with bf16 distances moves vectors to other clusters
    assert (first_assignment_old != nearest_code(x, start)).sum() >= 10
    # bf16 vectors are clustered in float32 and give float32 centroids
    assert kmeans(x.bfloat16(), 8, iters=2, generator=torch.Generator().manual_seed(0)).dtype == torch.float32


def test_one_ema_update_under_bf16_autocast_matches_float32(trained):
    codebook, v = trained
    vq = VectorQuantizer(K, D, ema=True, decay=0.99, dead_threshold=0.0)
    with torch.no_grad():
        vq.codebook.copy_(codebook)
        vq.embed_sum.copy_(codebook)
    ref, amp = copy.deepcopy(vq).train(), copy.deepcopy(vq).train()
    z = v.reshape(B, G, G, D).permute(0, 3, 1, 2).bfloat16()  # (B, D, 7, 7): an encoder's output under autocast
    z32 = z.float()                                            # the same values in float32
    flat = z32.permute(0, 2, 3, 1).reshape(-1, D)
    out_ref = ref(z32)
    with bf16():
        out_amp = amp(z)
        old_idx = _bf16_matmul_codes(flat, codebook)          # what the quantizer computed before the fix
    assert torch.equal(out_amp.indices, out_ref.indices)
    assert out_amp.z_q.dtype == torch.float32 and out_amp.loss.dtype == torch.float32
    torch.testing.assert_close(out_amp.z_q, out_ref.z_q, rtol=0, atol=0)
    for name in ("cluster_size", "embed_sum", "usage", "codebook"):
        torch.testing.assert_close(getattr(amp, name), getattr(ref, name), rtol=1e-6, atol=1e-7, msg=name)
    # not vacuous: the old bf16 assignments would have put other vectors into the EMA sums
    assert (old_idx != out_ref.indices.reshape(-1)).sum() >= 10
    old_sums = torch.zeros(K, D).index_add_(0, old_idx, flat)
    new_sums = torch.zeros(K, D).index_add_(0, out_ref.indices.reshape(-1), flat)
    assert not torch.allclose(old_sums, new_sums, rtol=1e-6, atol=1e-7)


def test_vae_loss_bf16_close_to_float32(digits):
    """The VAE under CPU bf16 autocast: the batch loss (nats per image) within 0.2% of float32's."""
    x = as_tensors(digits["test"])[0][:256]
    torch.manual_seed(0)
    model = VAE(latent_dim=16).eval()

    def loss(amp):
        torch.manual_seed(1)  # the same reparameterisation noise
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            return vae_loss(1.0)(model, (x,))[0]

    want, got = loss(False), loss(True)
    with bf16(), torch.no_grad():
        assert model.encode(x)[0].dtype == torch.bfloat16  # autocast really ran the layers in bf16
    assert got.dtype == torch.float32
    assert abs(float(got) - float(want)) <= 2e-3 * abs(float(want)), (float(got), float(want))


def _transformer_and_data(d_model=64, n_layer=4):
    cfg = TransformerConfig(vocab_size=300, image_offset=44, word_offset=8, grid=(G, G), block_size=64,
                            n_layer=n_layer, n_head=4, d_model=d_model)   # default: notebook 05's classroom sizes
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n = 512
    word = torch.randint(8, 18, (n, 1), generator=g)        # a one-word caption decides the image codes
    base = 44 + ((word - 8) * 25 + 3 * torch.arange(G * G)[None]) % 256
    noisy = torch.rand(n, G * G, generator=g) < 0.2
    image = torch.where(noisy, 44 + torch.randint(0, 256, (n, G * G), generator=g), base)
    seq = torch.cat([torch.full((n, 1), 1), word, torch.full((n, 1), 3), image, torch.full((n, 1), 4)], 1)
    return MixedTransformer(cfg), seq


def _next_token_loss(model, batch):
    seq = batch[0]
    logits = model(seq[:, :-1])
    return F.cross_entropy(logits.transpose(1, 2).float(), seq[:, 1:])


def test_transformer_loss_bf16_close_to_float32():
    """The mixed transformer (notebook 05 sizes) under CPU bf16 autocast: next-token loss within 0.2%
    of float32's, at initialisation and after a few float32 training steps."""
    model, seq = _transformer_and_data()
    for trained in (False, True):
        if trained:
            fit(model, _next_token_loss, (seq,), steps=20, batch_size=16, lr=3e-3)
        model.eval()
        with torch.no_grad():
            want = _next_token_loss(model, (seq[:64],))
            with bf16():
                assert model(seq[:2, :-1]).dtype == torch.bfloat16  # autocast is on for the layers
                got = _next_token_loss(model, (seq[:64],))
        assert abs(float(got) - float(want)) <= 2e-3 * float(want), (trained, float(got), float(want))


def test_course_autocast_switch(monkeypatch):
    monkeypatch.delenv(AUTOCAST_ENV, raising=False)
    assert autocast_dtype("cpu") is None and autocast_dtype("cuda") == torch.bfloat16
    monkeypatch.setenv(AUTOCAST_ENV, "bf16")
    assert autocast_dtype("cpu") == torch.bfloat16
    with autocast("cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    monkeypatch.setenv(AUTOCAST_ENV, "off")
    assert autocast_dtype("cuda") is None and autocast_dtype("cpu") is None
    monkeypatch.setenv(AUTOCAST_ENV, "fp8")
    with pytest.raises(ValueError, match=r"COURSE_AUTOCAST must be one of \['auto', 'bf16', 'off'\]; got 'fp8'"):
        autocast_dtype("cpu")


def _under_autocast(loss_fn, seen):
    def wrapped(model, batch):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return loss_fn(model, batch)
    return wrapped


def _falling_and_finite(hist, window=5):
    assert all(torch.isfinite(torch.tensor(hist.loss)))
    first, last = hist.first_last(window=window)
    assert last < first, (first, last)


def test_fit_runs_the_gpu_bf16_path_on_the_cpu(monkeypatch, digits):
    """COURSE_AUTOCAST=bf16: fit trains a VQ-VAE (EMA, k-means init, dead-code restart), a VAE and the
    transformer under CPU bf16 autocast; every loss is finite and falls, and the quantizer's training
    codes are the float32 codes of the latents it was given."""
    monkeypatch.setenv(AUTOCAST_ENV, "bf16")
    x = as_tensors(digits["train"])[0][:512]

    seen = []
    torch.manual_seed(0)
    vq = VQVAE(build_quantizer("vq", dim=D, num_codes=64, ema=True, kmeans_init=True, dead_threshold=1.0), hidden=32)
    hist = fit(vq, _under_autocast(vqvae_loss, seen), (x,), steps=30, batch_size=32, lr=2e-3)
    _falling_and_finite(hist)
    assert all(m == (True, torch.bfloat16) for m in seen) and len(seen) == 30
    assert set(hist.metrics) == {"mse", "perplexity", "used"}
    assert all(isinstance(v, float) for v in hist.metrics["perplexity"])
    vq.train()
    with autocast("cpu"), torch.no_grad():
        z = vq.encoder(x[:32])
        assert z.dtype == torch.bfloat16
        before = vq.quantizer.get_codebook().clone()      # a training step moves the codes after choosing them
        codes = vq.quantizer(z).indices
    assert torch.equal(codes.reshape(-1), nearest_code(z.float().permute(0, 2, 3, 1).reshape(-1, D), before))

    seen = []
    torch.manual_seed(0)
    vae = VAE(latent_dim=16)
    hist = fit(vae, _under_autocast(vae_loss(1.0), seen), (x,), steps=30, batch_size=64, lr=2e-3)
    _falling_and_finite(hist)
    assert all(m == (True, torch.bfloat16) for m in seen)

    seen = []
    model, seq = _transformer_and_data(d_model=32, n_layer=2)
    hist = fit(model, _under_autocast(_next_token_loss, seen), (seq,), steps=30, batch_size=16, lr=3e-3)
    _falling_and_finite(hist)
    assert all(m == (True, torch.bfloat16) for m in seen)
