"""PCA as the linear autoencoder: the best a rank-k linear map can do under squared error.

The encoder projects centred images onto the top-k principal directions, the decoder maps back.
By the Eckart-Young theorem no linear encoder/decoder pair with a k-dimensional code has lower
training MSE, which makes PCA the baseline every non-linear autoencoder must beat.

    pca = PCA.fit(x_train, k=16)       # x: (N, 1, 28, 28) or (N, D)
    z = pca.encode(x_test)             # (N, 16)
    x_hat = pca.decode(z)              # (N, 1, 28, 28): same shape as what was fitted
"""
from __future__ import annotations

import torch

from ..validate import check_int, check_tensor


class PCA:
    """Principal components of a set of images (or vectors).

    Attributes: ``mean`` (D,), ``components`` (k, D) orthonormal rows, sorted by variance,
    ``explained_variance`` (k,), ``shape`` the per-example shape seen in :meth:`fit`.
    """

    def __init__(self, mean: torch.Tensor, components: torch.Tensor, explained_variance: torch.Tensor,
                 shape: tuple[int, ...]):
        self.mean = mean
        self.components = components
        self.explained_variance = explained_variance
        self.shape = tuple(shape)

    @property
    def k(self) -> int:
        return self.components.shape[0]

    @classmethod
    def fit(cls, x: torch.Tensor, k: int) -> "PCA":
        """Fit on x: (N, ...) float, finite, N >= k; keep the top ``k`` components."""
        check_tensor("x", x, floating=True, finite=True)
        if x.ndim < 2:
            raise ValueError(f"x must have shape (N, ...) with one row per example; got shape {tuple(x.shape)}")
        flat = x.detach().reshape(len(x), -1).double()
        n, d = flat.shape
        check_int("k", k, min_value=1, max_value=min(n, d))
        mean = flat.mean(0)
        # SVD of the centred data: the right singular vectors are the principal directions.
        _, s, vh = torch.linalg.svd(flat - mean, full_matrices=False)
        var = s ** 2 / max(n - 1, 1)
        return cls(mean.float(), vh[:k].float().contiguous(), var[:k].float(), tuple(x.shape[1:]))

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, floating=True, finite=True)
        if x.ndim < 1:
            raise ValueError(f"x must have shape (N, ...) with one row per example; got shape {tuple(x.shape)}")
        x = x.to(self.mean.dtype)  # float64 is converted (see course_lib.validate)
        flat = x.reshape(len(x), -1)
        if flat.shape[1] != self.mean.numel():
            raise ValueError(f"x must have {self.mean.numel()} values per example (shape (N, "
                             f"{', '.join(map(str, self.shape))})); got shape {tuple(x.shape)}")
        return flat

    def encode(self, x: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """x: (N, ...) -> codes (N, k): coordinates along the first ``k`` components."""
        k = self.k if k is None else check_int("k", k, min_value=1, max_value=self.k)
        return (self._flat(x) - self.mean) @ self.components[:k].T

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (N, k') with k' <= k -> reconstructions (N, ...) in the fitted shape (not clipped)."""
        check_tensor("z", z, ndim=2, floating=True, finite=True)
        z = z.to(self.components.dtype)
        if z.shape[1] > self.k:
            raise ValueError(f"z must have at most {self.k} columns (the fitted k); got shape {tuple(z.shape)}")
        flat = z @ self.components[: z.shape[1]] + self.mean
        return flat.reshape(len(z), *self.shape)

    def reconstruct(self, x: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """x: (N, ...) -> the rank-k reconstruction, same shape."""
        return self.decode(self.encode(x, k))

    def mse_by_rank(self, x: torch.Tensor, ranks) -> dict[int, float]:
        """Mean squared error per pixel of the rank-r reconstruction of x, for each r in ``ranks``."""
        out = {}
        for i, r in enumerate(ranks):
            r = check_int(f"ranks[{i}]", r, min_value=1, max_value=self.k)
            out[r] = float(((self.reconstruct(x, r) - x) ** 2).mean())
        return out
