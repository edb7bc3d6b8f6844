"""A small digit classifier: the independent judge of generated and reconstructed digits.

Notebook 04 uses it to check that tokenized digits stay recognisable; notebook 05 uses it to
score digits drawn from captions. It is trained on the MNIST-5k train split only, and its
test accuracy is reported wherever it judges something.

    clf = get_digit_classifier()             # loads data/artifacts/digit_classifier_<profile>, or trains
    labels = predict_digits(clf, images)     # (B, 1, 28, 28) in [0, 1] -> (B,) long
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from ..validate import check_codes, check_device, check_int, check_tensor, to_model

__all__ = ["DigitCNN", "classifier_recipe", "get_digit_classifier", "predict_digits", "digit_accuracy", "train_digit_classifier"]


class DigitCNN(nn.Module):
    """x: (B, 1, 28, 28) in [0, 1] -> logits (B, 10). Two conv+pool blocks and a small MLP (~110k params)."""

    def __init__(self, hidden: int = 64, dropout: float = 0.3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),     # 14x14
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 7x7
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(32 * 7 * 7, hidden), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) finite, on the model's device (float64 is converted) -> logits (B, 10)."""
        check_tensor("x", x, shape=(None, 1, 28, 28), floating=True, finite=True, hot=True)
        return self.head(self.features(to_model("x", x, self)))


def _shift(x: torch.Tensor, max_shift: int = 2) -> torch.Tensor:
    """Random translations by up to ``max_shift`` pixels (one shift per example): (B, 1, 28, 28)."""
    b, dev = x.shape[0], x.device
    padded = F.pad(x, (max_shift,) * 4)
    # drawn on x's device (the CPU's generator on the CPU, as before): no host -> device copy per batch
    dx = torch.randint(0, 2 * max_shift + 1, (b,), device=dev)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), device=dev)
    rows = dy[:, None] + torch.arange(28, device=dev)[None, :]  # (B, 28)
    cols = dx[:, None] + torch.arange(28, device=dev)[None, :]
    out = padded[torch.arange(b, device=dev)[:, None, None], 0, rows[:, :, None], cols[:, None, :]]
    return out[:, None]


def _loss(model, batch):
    """Loss for ``fit``: cross-entropy on randomly shifted digits; logs the batch accuracy as a 0-d
    tensor (``fit`` reads it back to the host in bulk, not at every step)."""
    x, y = batch
    logits = model(_shift(x))
    loss = F.cross_entropy(logits, y)
    return loss, {"accuracy": (logits.argmax(1) == y).float().mean()}


@torch.no_grad()
def predict_digits(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted labels: x (B, 1, 28, 28) in [0, 1], finite (any device) -> (B,) long on x's device.

    B = 0 gives an empty tensor.
    """
    check_tensor("x", x, shape=(None, 1, 28, 28), floating=True, finite=True)
    check_int("batch_size", batch_size, min_value=1)
    model.eval()
    dev = next(model.parameters()).device
    out = [model(x[i:i + batch_size].to(dev)).argmax(1) for i in range(0, len(x), batch_size)]
    return torch.cat(out).to(x.device) if out else torch.empty(0, dtype=torch.long, device=x.device)


def digit_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` (B, 1, 28, 28) classified as ``y`` (B,) integer labels 0..9; B >= 1."""
    check_tensor("x", x, shape=(None, 1, 28, 28), floating=True, nonempty=True, what="image")
    check_tensor("y", y, ndim=1, integer=True)
    check_codes("y", y, 10)
    if len(y) != len(x):
        raise ValueError(f"x and y must have the same length; got {len(x)} and {len(y)}")
    return float((predict_digits(model, x).cpu() == y.cpu()).double().mean())


def train_digit_classifier(x: torch.Tensor, y: torch.Tensor, *, steps: int, device=None, seed: int = 0,
                           batch_size: int = 64, lr: float = 2e-3, hidden: int = 64, dropout: float = 0.3):
    """Train a :class:`DigitCNN` on x (N, 1, 28, 28), y (N,); returns ``(model, history)``."""
    from ..device import seed_everything
    from ..train import fit
    seed_everything(seed)
    model = DigitCNN(hidden=hidden, dropout=dropout)
    history = fit(model, _loss, (x, y), steps=steps, batch_size=batch_size, lr=lr, device=device, seed=seed,
                  cosine=True, desc="digit classifier")
    return model.eval(), history


def classifier_recipe(profile=None) -> dict:
    """Everything that shapes the judge's weights; its hash is the artifact's identity."""
    from ..device import seed_offset
    from ..profiles import get_profile
    profile = get_profile(profile)
    return dict(version=1, data="mnist5k-train", hidden=64, dropout=0.3, batch_size=64, lr=2e-3,
                steps=profile.choose(smoke=150, classroom=800, gpu=2000), course_seed=seed_offset())


def get_digit_classifier(profile=None, device=None, *, verbose: bool = True) -> DigitCNN:
    """The judge: loads artifact ``digit_classifier_<profile>`` or trains it on the MNIST-5k train split.

    The artifact is used only when it was made by exactly :func:`classifier_recipe` (its stored
    hyperparameters and training settings match); otherwise it is retrained and saved.
    Prints one line: loaded or trained, and its accuracy on the 500 test digits. The model has an
    attribute ``test_accuracy``.
    """
    from ..artifacts import load_artifact, save_artifact
    from ..data import as_tensors, load_digits
    from ..device import pick_device
    from ..profiles import get_profile
    check_device("device", device)
    profile = get_profile(profile)
    device = torch.device(device) if device is not None else pick_device()
    name = f"digit_classifier_{profile.name}"
    recipe = classifier_recipe(profile)
    loaded = load_artifact(name, lambda hp: DigitCNN(hidden=hp["hidden"], dropout=hp["dropout"]), recipe=recipe,
                           verbose=verbose, say_loaded=False)
    if loaded is not None:
        model, meta = loaded
        model.test_accuracy = meta["metrics"]["test_accuracy"]
        if verbose:
            print(f"loaded digit classifier {name!r} from data/artifacts (test accuracy {model.test_accuracy:.1%})")
        return model.to(device).eval()
    dd = load_digits(verbose=False)
    xtr, ytr = as_tensors(dd["train"])
    xte, yte = as_tensors(dd["test"])
    start = time.perf_counter()
    model, _ = train_digit_classifier(xtr, ytr, steps=recipe["steps"], device=device, batch_size=recipe["batch_size"],
                                      lr=recipe["lr"], hidden=recipe["hidden"], dropout=recipe["dropout"])
    seconds = time.perf_counter() - start
    model.test_accuracy = digit_accuracy(model, xte, yte)
    save_artifact(name, model, recipe, metrics={"test_accuracy": model.test_accuracy, "train_seconds": seconds})
    if verbose:
        print(f"trained digit classifier {name!r} in {seconds:.0f} s ({recipe['steps']} steps on the 4,500 train "
              f"digits; test accuracy {model.test_accuracy:.1%}); saved to data/artifacts")
    return model.to(device).eval()
