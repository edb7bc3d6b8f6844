"""VAE pieces: reparameterisation, KL, Bernoulli likelihood, ELBO units, importance sampling, checks."""
import math

import pytest
import torch

from course_lib.checks import ExerciseError
from course_lib.checks.vae import check_gaussian_kl, check_reparameterize
from course_lib.models.vae import (VAE, active_units, bernoulli_baseline_nll, bernoulli_nll, elbo_terms,
                                   gaussian_kl, importance_sampled_nll, kl_per_dim, log_normal, nats_to_bits_per_dim,
                                   negative_elbo, reparameterize, traverse, vae_loss)
from course_lib.train import fit


@pytest.fixture(scope="module")
def digits_like():
    """(64, 1, 28, 28) in [0, 1]: bright strokes on black, like digits."""
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    for i in range(64):
        r = int(torch.randint(4, 20, (1,), generator=gen))
        x[i, 0, r:r + 6, 6:22] = torch.rand(1, generator=gen) * 0.5 + 0.5
    return x


def test_reparameterize_shapes_moments_and_gradients():
    mu = torch.full((50000, 2), 1.5, requires_grad=True)
    logvar = torch.full((50000, 2), math.log(4.0), requires_grad=True)   # sigma = 2
    gen = torch.Generator().manual_seed(0)
    z = reparameterize(mu, logvar, gen)
    assert z.shape == (50000, 2)
    assert abs(z.mean().item() - 1.5) < 0.03 and abs(z.std().item() - 2.0) < 0.03
    z.sum().backward()
    eps = (z.detach() - 1.5) / 2.0
    assert torch.allclose(mu.grad, torch.ones_like(mu))                       # dz/dmu = 1
    assert torch.allclose(logvar.grad, 0.5 * 2.0 * eps, atol=1e-5)            # dz/dlogvar = sigma*eps/2


def test_reparameterize_is_reproducible_with_a_generator():
    mu, logvar = torch.zeros(3, 4), torch.zeros(3, 4)
    a = reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    b = reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_gaussian_kl_closed_form_matches_torch_and_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 3, generator=gen)
    logvar = torch.randn(4, 3, generator=gen) * 0.5
    kl = gaussian_kl(mu, logvar)
    assert kl.shape == (4,)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(kl, torch.distributions.kl_divergence(q, p).sum(1), atol=1e-5)
    # Monte Carlo: KL = E_q[log q(z) - log p(z)]
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200000, 4, 3, generator=gen)
    mc = (log_normal(z, mu, logvar) - log_normal(z)).mean(0)
    assert torch.allclose(kl, mc, atol=0.03, rtol=0.02), (kl, mc)
    assert torch.allclose(gaussian_kl(torch.zeros(2, 5), torch.zeros(2, 5)), torch.zeros(2))


def test_log_normal_matches_torch():
    z, mu, logvar = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    ref = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    assert torch.allclose(log_normal(z, mu, logvar), ref, atol=1e-5)


def test_bernoulli_nll_is_bce_summed_over_pixels():
    x = torch.rand(2, 1, 28, 28)
    logits = torch.randn(2, 1, 28, 28)
    p = torch.sigmoid(logits)
    manual = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(1)
    assert torch.allclose(bernoulli_nll(logits, x), manual, rtol=1e-4)
    # logits 0 -> p = 1/2 -> exactly 784 ln 2 nats = 1 bit per pixel
    half = bernoulli_nll(torch.zeros(1, 1, 28, 28), torch.rand(1, 1, 28, 28))
    assert abs(half.item() - 784 * math.log(2)) < 1e-3
    assert nats_to_bits_per_dim(784 * math.log(2)) == pytest.approx(1.0)


def test_elbo_terms_sign_units_and_bound(digits_like):
    torch.manual_seed(0)
    model = VAE(latent_dim=4, arch="mlp", width=(64,))
    terms = elbo_terms(model, digits_like, beta=0.5)
    for name in ("recon", "kl", "neg_elbo", "loss"):
        assert terms[name].shape == (64,)
    assert (terms["recon"] > 0).all() and (terms["kl"] >= 0).all()
    assert torch.allclose(terms["neg_elbo"], terms["recon"] + terms["kl"])
    assert torch.allclose(terms["loss"], terms["recon"] + 0.5 * terms["kl"])
    # nats per image: an untrained decoder is near 1 bit per pixel
    elbo = negative_elbo(model, digits_like, n_samples=4)
    assert 0.5 < nats_to_bits_per_dim(elbo["neg_elbo"]) < 2.0
    assert elbo["neg_elbo"] == pytest.approx(elbo["recon"] + elbo["kl"])
    # importance sampling tightens the bound: -log p(x) <= -ELBO (up to Monte Carlo noise)
    nll = importance_sampled_nll(model, digits_like, n_samples=64, chunk=16, batch_size=32)
    assert nll.shape == (64,)
    assert nll.mean().item() <= elbo["neg_elbo"] + 0.05


def test_vae_learns_and_beats_the_pixel_mean_baseline(digits_like):
    torch.manual_seed(0)
    model = VAE(latent_dim=4, arch="mlp", width=(64,))
    history = fit(model, vae_loss(1.0), (digits_like,), steps=200, batch_size=32, lr=3e-3, clip_grad=None)
    first, last = history.first_last()
    assert last < 0.7 * first
    baseline = bernoulli_baseline_nll(digits_like, digits_like)
    assert negative_elbo(model, digits_like)["neg_elbo"] < baseline
    assert set(history.metrics) == {"recon", "kl"}
    # the conv variant runs end to end too
    conv = VAE(latent_dim=4, arch="conv", width=4).init_output_bias(digits_like)
    logits, mu, logvar = conv(digits_like[:5])
    assert logits.shape == (5, 1, 28, 28) and mu.shape == logvar.shape == (5, 4)
    # init_output_bias starts the decoder at the pixel means: its output for z = 0 has the baseline's cost
    mlp = VAE(latent_dim=4, arch="mlp", width=(8,)).init_output_bias(digits_like, eps=1e-6)
    last = mlp.decoder.net[-2]
    torch.nn.init.zeros_(last.weight)
    with torch.no_grad():
        start = bernoulli_nll(mlp.decode(torch.zeros(64, 4)), digits_like).mean().item()
    assert start == pytest.approx(bernoulli_baseline_nll(digits_like, digits_like, eps=1e-6), rel=1e-4)


def test_baseline_nll_is_the_best_constant_model(digits_like):
    base = bernoulli_baseline_nll(digits_like, digits_like, eps=1e-6)
    p = digits_like.mean(0, keepdim=True).clamp(1e-6, 1 - 1e-6)
    for shift in (-0.05, 0.05):
        q = (p + shift).clamp(1e-6, 1 - 1e-6)
        other = bernoulli_nll((torch.log(q) - torch.log1p(-q)).expand_as(digits_like), digits_like).mean()
        assert base <= float(other) + 1e-3


def test_active_units_and_traverse(digits_like):
    model = VAE(latent_dim=3, arch="mlp", width=(32,))
    with torch.no_grad():                    # make dim 0 carry the input, dims 1-2 ignore it
        last = model.encoder.net[-1]
        last.weight.zero_()
        last.bias.zero_()
        last.weight[0] = 10.0
    count, variance = active_units(model, digits_like)
    assert count == 1 and variance.shape == (3,) and variance[1:].abs().max() == 0
    per_dim = kl_per_dim(model, digits_like, batch_size=16)
    assert per_dim.shape == (3,) and per_dim[0] > 0.1 and per_dim[1:].abs().max() < 1e-6
    assert per_dim.sum().item() == pytest.approx(negative_elbo(model, digits_like)["kl"], rel=1e-4)
    path = traverse(model, torch.zeros(3), dim=2, values=[-2, 0, 2])
    assert path.shape == (3, 1, 28, 28) and path.min() >= 0 and path.max() <= 1
    assert model.sample(5, torch.Generator().manual_seed(0)).shape == (5, 1, 28, 28)


def test_vae_error_messages():
    with pytest.raises(ValueError, match="arch must be one of"):
        VAE(arch="transformer")
    with pytest.raises(ValueError, match="logvar must have the same shape as mu"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="logits must have the same shape as x"):
        bernoulli_nll(torch.zeros(2, 784), torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="beta must be >= 0"):
        vae_loss(-1.0)
    with pytest.raises(ValueError, match=r"z must have shape \(\*, 8\)"):
        VAE(latent_dim=8).decode(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        importance_sampled_nll(VAE(latent_dim=2), torch.zeros(2, 1, 28, 28), n_samples=0)


# ---------------------------------------------------------------- exercise checks
def test_checks_pass_the_library_versions(capsys):
    assert check_reparameterize(reparameterize)
    assert check_gaussian_kl(gaussian_kl)
    assert capsys.readouterr().out.count("[ok]") == 2


def test_checks_explain_wrong_answers(capsys):
    with pytest.raises(ExerciseError, match="exp\\(logvar / 2\\)"):
        check_reparameterize(lambda mu, logvar: mu + torch.exp(logvar) * torch.randn_like(mu))
    with pytest.raises(ExerciseError, match="z equals mu"):
        check_reparameterize(lambda mu, logvar: mu + 0 * logvar)
    with pytest.raises(ExerciseError, match="cuts the graph"):
        check_reparameterize(lambda mu, logvar: torch.normal(mu.detach(), torch.exp(0.5 * logvar.detach())))
    with pytest.raises(ExerciseError, match="factor 0.5"):
        check_gaussian_kl(lambda mu, lv: (mu ** 2 + lv.exp() - 1 - lv).sum(1))
    with pytest.raises(ExerciseError, match="one KL per latent dimension"):
        check_gaussian_kl(lambda mu, lv: 0.5 * (mu ** 2 + lv.exp() - 1 - lv))


def test_checks_report_stubs_as_todo(capsys):
    def stub(mu, logvar):
        raise NotImplementedError("z = mu + sigma * eps")

    with pytest.raises(ExerciseError) as err:
        check_reparameterize(stub)
    assert err.value.status == "todo"
