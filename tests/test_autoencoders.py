"""PCA, the MLP/conv autoencoders, their losses, and the notebook-01 exercise checks."""
import pytest
import torch

from course_lib.checks import ExerciseError
from course_lib.checks.autoencoders import check_pca_reconstruct, check_reconstruction_loss
from course_lib.models.autoencoders import (ConvAutoencoder, MLPAutoencoder, add_noise, ae_loss, denoising_loss,
                                            encode_all, interpolate, reconstruction_error, reconstruction_mse)
from course_lib.models.pca import PCA
from course_lib.train import fit


@pytest.fixture(scope="module")
def blobs():
    """Synthetic 'images': 200 noisy mixtures of 5 fixed patterns, (200, 1, 28, 28) in [0, 1]."""
    gen = torch.Generator().manual_seed(0)
    basis = torch.rand(5, 784, generator=gen)
    weights = torch.rand(200, 5, generator=gen)
    x = (weights @ basis) / 5 + 0.02 * torch.randn(200, 784, generator=gen)
    return x.clamp(0, 1).reshape(200, 1, 28, 28)


# ---------------------------------------------------------------- PCA
def test_pca_shapes_and_orthonormal_components(blobs):
    pca = PCA.fit(blobs, k=8)
    assert pca.components.shape == (8, 784) and pca.mean.shape == (784,)
    assert torch.allclose(pca.components @ pca.components.T, torch.eye(8), atol=1e-4)
    assert pca.encode(blobs).shape == (200, 8)
    assert pca.decode(pca.encode(blobs)).shape == (200, 1, 28, 28)
    assert (pca.explained_variance[:-1] >= pca.explained_variance[1:]).all()


def test_pca_error_falls_with_rank_and_full_rank_is_exact(blobs):
    pca = PCA.fit(blobs, k=199)
    errors = pca.mse_by_rank(blobs, [1, 2, 5, 20, 199])
    values = list(errors.values())
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert errors[5] < 0.0004 * 1.05 < errors[2]  # 5 patterns: rank 5 leaves only the noise (0.02 ** 2)
    assert errors[199] < 1e-8                     # N - 1 components span the centred data


def test_pca_matches_sklearn(blobs):
    sklearn = pytest.importorskip("sklearn.decomposition")
    flat = blobs.reshape(200, -1).double().numpy()
    ref = sklearn.PCA(n_components=6, svd_solver="full").fit(flat)
    ours = PCA.fit(blobs, k=6)
    recon_ref = torch.as_tensor(ref.inverse_transform(ref.transform(flat)), dtype=torch.float32)
    assert torch.allclose(ours.reconstruct(blobs).reshape(200, -1), recon_ref, atol=1e-4)


def test_pca_error_messages(blobs):
    with pytest.raises(ValueError, match="k must be <= 200"):
        PCA.fit(blobs, k=201)
    pca = PCA.fit(blobs, k=4)
    with pytest.raises(ValueError, match="x must have 784 values per example"):
        pca.encode(torch.zeros(3, 1, 14, 14))
    with pytest.raises(ValueError, match="z must have at most 4 columns"):
        pca.decode(torch.zeros(3, 5))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        PCA.fit(blobs.numpy(), k=2)


# ---------------------------------------------------------------- autoencoders
@pytest.mark.parametrize("cls", [MLPAutoencoder, ConvAutoencoder,
                                 lambda latent_dim: ConvAutoencoder(latent_dim, channels=4, hidden=32)])
def test_autoencoder_shapes(cls, blobs):
    model = cls(latent_dim=7)
    z = model.encode(blobs[:4])
    assert z.shape == (4, 7)
    assert model.decode(z).shape == (4, 1, 28, 28)
    assert model(blobs[:4]).shape == (4, 1, 28, 28)
    assert encode_all(model, blobs, batch_size=64).shape == (200, 7)


def test_autoencoder_error_messages():
    model = ConvAutoencoder(latent_dim=4)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 1, 28, 28\)"):
        model.encode(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"x must have shape \((B|\*), 1, 28, 28\)"):
        model.encode(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match=r"z must have shape \(\*, 4\)"):
        model.decode(torch.zeros(2, 16))
    with pytest.raises(TypeError, match="latent_dim must be an int"):
        ConvAutoencoder(latent_dim=2.5)
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        MLPAutoencoder(latent_dim=0)
    with pytest.raises(ValueError, match="hidden must be >= 1"):
        ConvAutoencoder(latent_dim=4, hidden=0)


def test_reconstruction_mse_and_noise():
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(reconstruction_mse(x + 0.1, x), torch.full((3,), 0.01), atol=1e-6)
    with pytest.raises(ValueError, match="x_hat must have the same shape as x"):
        reconstruction_mse(torch.zeros(3, 784), x)
    noisy = add_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1 and not torch.equal(noisy, x)
    assert torch.equal(add_noise(x, 0.0), x)
    with pytest.raises(ValueError, match="std must be >= 0"):
        add_noise(x, -1.0)


def test_conv_autoencoder_learns_and_beats_its_start(blobs):
    torch.manual_seed(0)
    model = ConvAutoencoder(latent_dim=8, channels=4)
    before = reconstruction_error(model, blobs)
    history = fit(model, ae_loss, (blobs,), steps=60, batch_size=32, lr=5e-3)
    after = reconstruction_error(model, blobs)
    first, last = history.first_last()
    assert last < 0.5 * first and after < 0.5 * before


def test_denoising_loss_scores_against_the_clean_image():
    class Identity(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            return self.w * x

    x = torch.full((4, 1, 28, 28), 0.5)
    assert ae_loss(Identity(), (x,)).item() == 0.0           # plain AE: identity is perfect
    assert denoising_loss(0.3)(Identity(), (x,)).item() > 0.01  # denoising: the noise is penalised
    assert reconstruction_error(Identity(), x, noise_std=0.3) > 0.01


def test_interpolation_endpoints(blobs):
    model = MLPAutoencoder(latent_dim=3).eval()
    path = interpolate(model, blobs[0], blobs[1], steps=5)
    assert path.shape == (5, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(path[0], model(blobs[:1])[0], atol=1e-5)
        assert torch.allclose(path[-1], model(blobs[1:2])[0], atol=1e-5)


# ---------------------------------------------------------------- exercise checks
def reference_reconstruction_loss(x_hat, x):
    return ((x_hat - x) ** 2).flatten(1).mean(1)


def reference_pca_reconstruct(x, mean, components, k):
    v = components[:k]
    return (x - mean) @ v.T @ v + mean


def test_notebook_solutions_agree_with_the_library(blobs):
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(reference_reconstruction_loss(x * 0.5, x), reconstruction_mse(x * 0.5, x))
    pca = PCA.fit(blobs, k=16)
    flat = blobs.reshape(200, -1)
    assert torch.allclose(reference_pca_reconstruct(flat, pca.mean, pca.components, 16),
                          pca.reconstruct(blobs).reshape(200, -1), atol=1e-5)


def test_checks_pass_the_solutions(blobs, capsys):
    assert check_reconstruction_loss(reference_reconstruction_loss)
    pca = PCA.fit(blobs, k=16)
    assert check_pca_reconstruct(reference_pca_reconstruct, blobs.reshape(200, -1), pca.mean, pca.components)
    assert capsys.readouterr().out.count("[ok]") == 2


def test_checks_explain_wrong_answers(blobs, capsys):
    with pytest.raises(ExerciseError, match="one number for the whole batch"):
        check_reconstruction_loss(lambda x_hat, x: ((x_hat - x) ** 2).mean())
    with pytest.raises(ExerciseError, match="784 times too large"):
        check_reconstruction_loss(lambda x_hat, x: ((x_hat - x) ** 2).flatten(1).sum(1))
    pca = PCA.fit(blobs, k=16)
    with pytest.raises(ExerciseError, match="subtract the mean"):
        check_pca_reconstruct(lambda x, m, v, k: x @ v[:k].T @ v[:k], blobs.reshape(200, -1), pca.mean,
                              pca.components)


def test_checks_report_stubs_as_todo(capsys):
    def stub(x_hat, x):
        raise NotImplementedError("mean over pixels")

    with pytest.raises(ExerciseError) as err:
        check_reconstruction_loss(stub)
    assert err.value.status == "todo" and "not yet implemented" in str(err.value)
