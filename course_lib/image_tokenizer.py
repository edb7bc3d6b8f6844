"""The image tokenizer: a trained VQ-VAE that turns images into grids of integer codes and back.

Notebook 03 builds it, notebook 04 picks the best recipe and saves it, notebook 05 writes
sentences that mix words with these codes::

    tok = get_tokenizer("digits")            # loads data/artifacts/tokenizer_digits_<profile>, or trains
    codes = tok.encode(images)               # (B, 1, 28, 28) in [0, 1] -> (B, 7, 7) long in 0..K-1
    images = tok.decode(codes)               # (B, 7, 7) long -> (B, 1, 28, 28) in [0, 1]

Three datasets: ``"digits"`` (MNIST-5k train split, 28x28x1 -> 7x7 codes), ``"shapes"``
(captioned shapes, 24x24x3 -> 6x6 codes) and ``"scenes"`` (the question-answering scenes of
:mod:`course_lib.data.scenes`, 32x32x3 -> 8x8 codes: each 8-pixel grid cell gets 2x2 codes).
"""
from __future__ import annotations

import time

import torch
from torch import nn

from .artifacts import load_artifact, save_artifact
from .device import pick_device, seed_everything, seed_offset
from .models.vq import VQVAE, build_quantizer, code_counts, perplexity, vqvae_loss
from .profiles import Profile, get_profile
from .train import fit
from .validate import check_choice, check_codes, check_device, check_int, check_range, check_tensor

DATASETS = ("digits", "shapes", "scenes")
_IMAGE = {"digits": (1, 28), "shapes": (3, 24), "scenes": (3, 32)}  # channels, image size
RECIPE_VERSION = 3  # bump when the recipe changes, so cached tokenizers from an older recipe are retrained
# Notebook 04 chooses these by measurement (its rate-distortion sweep) before it saves the tokenizer;
# every other entry of the recipe must match for get_tokenizer to use a cached tokenizer.
CHOSEN_BY_NOTEBOOK_04 = ("quantizer", "num_codes", "levels", "downsample")


def tokenizer_recipe(dataset: str, profile: Profile | str | None = None) -> dict:
    """The hyperparameters :func:`get_tokenizer` trains with (JSON-serialisable).

    The quantizer is the fix found in notebook 04: EMA codebook, k-means initialisation and
    dead-code restart. K = 256 for both datasets: a moderate vocabulary for the transformer of
    notebook 05. (With K = 64 the shapes tokenizer rounded the corners of small squares, and a
    square the decoder cannot draw is a square notebook 05 cannot draw either.)
    """
    check_choice("dataset", dataset, DATASETS)
    profile = get_profile(profile)
    channels, size = _IMAGE[dataset]
    recipe = dict(version=RECIPE_VERSION, course_seed=seed_offset(), dataset=dataset, channels=channels, image_size=size, downsample=4,
                  hidden=64, dim=16, quantizer="vq",
                  num_codes=256, levels=None, ema=True, decay=0.99,
                  kmeans_init=True, dead_threshold=1.0, cosine=False, beta=0.25, batch_size=64, lr=2e-3)
    n_train = {"digits": (1000, 4500, 4500), "shapes": (600, 3000, 6000), "scenes": (600, 4000, 8000)}[dataset]
    recipe.update(profile.choose(smoke=dict(steps=120, n_train=n_train[0]), classroom=dict(steps=1500, n_train=n_train[1]),
                                 gpu=dict(steps=3000, n_train=n_train[2])))
    return recipe


def build_vqvae(hparams: dict) -> VQVAE:
    """An untrained VQ-VAE from a recipe dict (see :func:`tokenizer_recipe`)."""
    quantizer = build_quantizer(hparams.get("quantizer", "vq"), dim=hparams["dim"], num_codes=hparams["num_codes"],
                                levels=hparams.get("levels"), beta=hparams.get("beta", 0.25),
                                ema=hparams.get("ema", True), decay=hparams.get("decay", 0.99),
                                kmeans_init=hparams.get("kmeans_init", False),
                                dead_threshold=hparams.get("dead_threshold", 0.0), cosine=hparams.get("cosine", False))
    return VQVAE(quantizer, channels=hparams["channels"], hidden=hparams["hidden"], dim=hparams["dim"],
                 downsample=hparams.get("downsample", 4), image_size=hparams["image_size"])


class ImageTokenizer(nn.Module):
    """Wraps a trained VQ-VAE: images <-> grids of integer codes.

    Attributes: ``num_codes`` (K, codes are 0..K-1), ``grid`` ((h, w)), ``channels``,
    ``image_size``, ``hparams`` (the recipe), ``vqvae`` (the model).
    """

    def __init__(self, vqvae: VQVAE, hparams: dict):
        super().__init__()
        self.vqvae = vqvae
        self.hparams = dict(hparams)
        self.num_codes = int(vqvae.quantizer.num_codes)
        self.channels = int(hparams["channels"])
        self.image_size = int(hparams["image_size"])
        self.grid = (vqvae.grid, vqvae.grid)
        self.eval()

    @classmethod
    def from_hparams(cls, hparams: dict) -> "ImageTokenizer":
        return cls(build_vqvae(hparams), hparams)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def num_tokens(self) -> int:
        """Codes per image: h * w."""
        return self.grid[0] * self.grid[1]

    def extra_repr(self) -> str:
        return (f"dataset={self.hparams.get('dataset')!r}, num_codes={self.num_codes}, grid={self.grid}, "
                f"channels={self.channels}, image_size={self.image_size}")

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch_size: int = 1024) -> torch.LongTensor:
        """x: (B, C, S, S) float in [0, 1], finite (any device; float64 is converted) -> codes (B, h, w)
        long on x's device. B = 0 gives an empty (0, h, w) tensor."""
        c, s = self.channels, self.image_size
        check_tensor("x", x, shape=(None, c, s, s), floating=True, finite=True)
        check_range("x", x, 0.0, 1.0, what="pixel values")
        check_int("batch_size", batch_size, min_value=1)
        self.eval()
        out = [self.vqvae.encode(x[i:i + batch_size].to(self.device, torch.float32))
               for i in range(0, len(x), batch_size)]
        if not out:
            return torch.empty(0, *self.grid, dtype=torch.long, device=x.device)
        return torch.cat(out).to(x.device)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """codes: (B, h, w) long in 0..K-1 (any device) -> images (B, C, S, S) float in [0, 1] on codes' device."""
        check_tensor("codes", codes, shape=(None, *self.grid), dtype=torch.long)
        check_codes("codes", codes, self.num_codes)
        check_int("batch_size", batch_size, min_value=1)
        self.eval()
        out = [self.vqvae.decode(codes[i:i + batch_size].to(self.device)).clamp(0, 1)
               for i in range(0, len(codes), batch_size)]
        if not out:
            return torch.empty(0, self.channels, self.image_size, self.image_size, device=codes.device)
        return torch.cat(out).to(codes.device)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(encode(x)): (B, C, S, S) -> (B, C, S, S) in [0, 1]."""
        return self.decode(self.encode(x))


def tokenizer_data(dataset: str, n: int | None = None, split: str = "train") -> torch.Tensor:
    """Images the tokenizer trains/tests on: (N, C, S, S) float in [0, 1].

    digits: the MNIST-5k ``split`` ("train" or "test"); shapes: ``make_shapes(split="all")`` with
    half of the scenes holding two shapes ("train" uses seed 0, "test" seed 1); scenes:
    ``make_scenes(split=split)`` (train and test scenes are disjoint by construction). ``n``: how many
    images (an int >= 1), or ``None`` for the whole split (digits) / the default count (shapes).
    """
    check_choice("dataset", dataset, DATASETS)
    if n is not None:
        check_int("n", n, min_value=1)
    check_choice("split", split, ("train", "test"))
    if dataset == "digits":
        from .data import as_tensors, load_digits
        x, _ = as_tensors(load_digits(verbose=False)[split])
        return x if n is None else x[:n]
    if dataset == "scenes":
        from .data import make_scenes
        ds = make_scenes(n if n is not None else (4000 if split == "train" else 500), seed=0, split=split)
        return ds[:]["image"].float().contiguous()
    from .data import make_shapes
    ds = make_shapes(n if n is not None else (3000 if split == "train" else 500), seed=0 if split == "train" else 1,
                     split="all", two_shape_fraction=0.5)
    return ds[:]["image"].float().contiguous()


def train_tokenizer(recipe: dict, x_train: torch.Tensor | None = None, *, device=None, seed: int = 0):
    """Train a VQ-VAE from ``recipe`` (see :func:`tokenizer_recipe`); returns ``(tokenizer, history)``."""
    device = torch.device(device) if device is not None else pick_device()
    if x_train is None:
        x_train = tokenizer_data(recipe["dataset"], recipe.get("n_train"))
    seed_everything(seed)
    model = build_vqvae(recipe)
    history = fit(model, vqvae_loss, x_train.to(device), steps=recipe["steps"], batch_size=recipe["batch_size"],
                  lr=recipe["lr"], device=device, seed=seed, desc=f"tokenizer ({recipe['dataset']})")
    return ImageTokenizer(model, recipe).to(device).eval(), history


@torch.no_grad()
def evaluate_tokenizer(tok: ImageTokenizer, x: torch.Tensor) -> dict:
    """Test MSE (on [0, 1] images), perplexity over all of ``x``'s codes, fraction of codes used.

    x: (N, C, S, S) in [0, 1] with N >= 1 (a mean over no images is an error)."""
    check_tensor("x", x, nonempty=True, what="image")
    codes = tok.encode(x)
    x_hat = tok.decode(codes)
    counts = code_counts(codes.cpu(), tok.num_codes)
    ppl = perplexity(counts)
    return {"test_mse": float((x_hat.cpu() - x.cpu()).pow(2).mean()), "perplexity": ppl,
            "perplexity_fraction": ppl / tok.num_codes, "used_fraction": float((counts > 0).float().mean())}


def tokenizer_name(dataset: str, profile) -> str:
    return f"tokenizer_{dataset}_{get_profile(profile).name}"


def save_tokenizer(tok: ImageTokenizer, profile=None, metrics: dict | None = None, *, name: str | None = None) -> str:
    """Save ``tok`` as artifact ``name`` (default ``tokenizer_<dataset>_<profile>``, the one notebook 05
    loads); returns the name."""
    if not isinstance(tok, ImageTokenizer):
        raise TypeError(f"tok must be an ImageTokenizer; got {type(tok).__name__}")
    name = name if name is not None else tokenizer_name(tok.hparams["dataset"], profile)
    save_artifact(name, tok, tok.hparams, metrics=metrics)
    return name


def get_tokenizer(dataset: str, *, profile=None, device=None, verbose: bool = True) -> ImageTokenizer:
    """The image tokenizer for ``dataset`` ("digits", "shapes" or "scenes"), ready on ``device``.

    Loads artifact ``tokenizer_<dataset>_<profile>`` from ``data/artifacts`` when it was made by
    this profile's :func:`tokenizer_recipe` (apart from what notebook 04 chooses by measurement:
    ``CHOSEN_BY_NOTEBOOK_04``); otherwise trains one with the recipe (a few seconds in the smoke
    profile) and saves it. Prints what happened (``verbose``).
    """
    check_choice("dataset", dataset, DATASETS)
    check_device("device", device)
    profile = get_profile(profile)
    device = torch.device(device) if device is not None else pick_device()
    name = tokenizer_name(dataset, profile)
    recipe = tokenizer_recipe(dataset, profile)
    loaded = load_artifact(name, ImageTokenizer.from_hparams, verbose=verbose,
                           expected={k: v for k, v in recipe.items() if k not in CHOSEN_BY_NOTEBOOK_04}, say_loaded=False)
    if loaded is not None:
        tok, meta = loaded
        tok = tok.to(device).eval()
        if verbose:
            print(f"loaded tokenizer {name!r} from data/artifacts: K={tok.num_codes} codes, grid "
                  f"{tok.grid[0]}x{tok.grid[1]} (saved {meta.get('created', '?')})")
        return tok
    start = time.perf_counter()
    tok, history = train_tokenizer(recipe, device=device)
    seconds = time.perf_counter() - start
    metrics = evaluate_tokenizer(tok, tokenizer_data(dataset, 500, split="test"))
    metrics["train_seconds"] = seconds
    save_tokenizer(tok, profile, metrics)
    if verbose:
        print(f"trained tokenizer {name!r} in {seconds:.0f} s (no valid artifact found; saved to data/artifacts): "
              f"K={tok.num_codes} codes, grid {tok.grid[0]}x{tok.grid[1]}, test MSE {metrics['test_mse']:.4f}, "
              f"perplexity {metrics['perplexity']:.0f}")
    return tok
