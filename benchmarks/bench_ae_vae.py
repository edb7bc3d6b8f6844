"""Time-to-quality for the autoencoder and the VAE of notebooks 01 and 02 (classroom settings).

Usage:  python benchmarks/bench_ae_vae.py [--threads N] [--eval-every STEPS] [--quick]

Trains, on this machine and with the classroom profile's settings of the notebooks,

* the conv autoencoder with a 16-d code: test MSE against PCA at rank 16 (target: at most half);
* the MLP VAE: test negative ELBO and importance-sampled NLL in nats per image (Bernoulli on grey
  levels, summed over pixels), against pythae's default VAE trained 100 epochs on the same
  4,500/500 split (111.7 and 106.2 nats in 46 s on 2 CPU cores).

Every ``--eval-every`` steps it evaluates on the test set (evaluation time is excluded from the
training clock) and notes the first training time at which each target was met. Prints a table and
writes ``build/bench/ae_vae.json``. This is a measurement to re-run, not a test.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from course_lib.artifacts import atomic_write_json  # noqa: E402
from course_lib.data import as_tensors, load_digits  # noqa: E402
from course_lib.models.autoencoders import ConvAutoencoder, ae_loss, reconstruction_error  # noqa: E402
from course_lib.models.pca import PCA  # noqa: E402
from course_lib.models.vae import (VAE, importance_sampled_nll, nats_to_bits_per_dim, negative_elbo,  # noqa: E402
                                   vae_loss)
from course_lib.paths import build_dir  # noqa: E402
from course_lib.train import fit  # noqa: E402

# The classroom settings of notebooks 01 and 02 (keep in step with their `cfg` cells).
AE = dict(latent_dim=16, channels=16, hidden=256, steps=1300, batch_size=64, lr=2e-3)
VAE_CFG = dict(latent_dim=32, width=(512,), steps=2100, batch_size=128, lr=2e-3)
PYTHAE = {"neg_elbo": 111.7, "nll_is": 106.2, "seconds": 46.0}


class Tracker:
    """Evaluates every ``eval_every`` steps (and at the last), keeps the curve, and notes when the
    target was first reached; training seconds exclude the evaluations' own time.

    measure(model) -> float; reached(value) -> bool.
    """

    def __init__(self, model, name: str, measure, reached, eval_every: int, steps: int):
        self.model, self.name, self.measure, self.reached_when = model, name, measure, reached
        self.eval_every, self.steps = eval_every, steps
        self.curve, self.reached, self.paused = [], None, 0.0
        self.start = time.perf_counter()

    def __call__(self, step, history):  # fit's on_step hook
        if step % self.eval_every and step != self.steps:
            return
        t_eval = time.perf_counter()
        seconds = round(t_eval - self.start - self.paused, 2)
        value = self.measure(self.model)
        self.model.train()
        self.curve.append({"step": step, "train_seconds": seconds, self.name: value})
        if self.reached is None and self.reached_when(value):
            self.reached = {"step": step, "train_seconds": seconds}
        self.paused += time.perf_counter() - t_eval


def run_ae(x_train, x_test, pca16: float, eval_every: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = ConvAutoencoder(latent_dim=AE["latent_dim"], channels=AE["channels"], hidden=AE["hidden"])
    track = Tracker(model, "test_mse", lambda m: reconstruction_error(m, x_test), lambda v: v <= 0.5 * pca16,
                    eval_every, steps)
    hist = fit(model, ae_loss, (x_train,), steps=steps, batch_size=AE["batch_size"], lr=AE["lr"], cosine=True,
               device="cpu", desc="conv AE", on_step=track)
    return {"settings": {**AE, "steps": steps}, "train_seconds": round(hist.seconds - track.paused, 2),
            "test_mse": track.curve[-1]["test_mse"], "target_test_mse": 0.5 * pca16,
            "reached_target": track.reached, "curve": track.curve}


def run_vae(x_train, x_test, eval_every: int, steps: int, is_samples: int) -> dict:
    torch.manual_seed(0)
    model = VAE(latent_dim=VAE_CFG["latent_dim"], arch="mlp", width=VAE_CFG["width"]).init_output_bias(x_train)
    track = Tracker(model, "test_neg_elbo", lambda m: negative_elbo(m, x_test, n_samples=4)["neg_elbo"],
                    lambda v: v < PYTHAE["neg_elbo"], eval_every, steps)
    hist = fit(model, vae_loss(1.0), (x_train,), steps=steps, batch_size=VAE_CFG["batch_size"], lr=VAE_CFG["lr"],
               cosine=True, clip_grad=None, device="cpu", desc="VAE", on_step=track)
    final = negative_elbo(model, x_test, n_samples=10)
    nll = importance_sampled_nll(model, x_test, n_samples=is_samples).mean().item()
    return {"settings": {**VAE_CFG, "width": list(VAE_CFG["width"]), "steps": steps, "is_samples": is_samples},
            "train_seconds": round(hist.seconds - track.paused, 2), "test_neg_elbo": final["neg_elbo"],
            "test_recon": final["recon"], "test_kl": final["kl"], "test_nll_is": nll,
            "bits_per_dim": nats_to_bits_per_dim(final["neg_elbo"]), "nll_is_bits_per_dim": nats_to_bits_per_dim(nll),
            "reached_pythae_elbo": track.reached, "pythae_reference": PYTHAE, "curve": track.curve}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--eval-every", type=int, default=100, help="steps between test evaluations")
    parser.add_argument("--is-samples", type=int, default=200, help="importance samples per test image")
    parser.add_argument("--quick", action="store_true", help="a tenth of the steps (to try the script)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default build/bench/ae_vae.json)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    scale = 10 if args.quick else 1
    load_before = os.getloadavg()

    digits = load_digits(verbose=False)
    x_train, _ = as_tensors(digits["train"])
    x_test, _ = as_tensors(digits["test"])
    t0 = time.perf_counter()
    pca16 = PCA.fit(x_train, k=16).mse_by_rank(x_test, [16])[16]
    pca_seconds = time.perf_counter() - t0

    ae = run_ae(x_train, x_test, pca16, args.eval_every, AE["steps"] // scale)
    vae = run_vae(x_train, x_test, args.eval_every, VAE_CFG["steps"] // scale, args.is_samples)
    result = {
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in os.getloadavg()]},
        "quick": args.quick,
        "pca16_test_mse": pca16, "pca_seconds": round(pca_seconds, 2),
        "ae": ae, "vae": vae,
    }

    def when(reached):
        return f"{reached['train_seconds']:.1f} s (step {reached['step']})" if reached else "not reached"

    rows = [
        ("PCA rank 16 test MSE", f"{pca16:.4f}", "", f"{pca_seconds:.1f}"),
        ("conv AE-16 test MSE", f"{ae['test_mse']:.4f}", f"<= {0.5 * pca16:.4f} at {when(ae['reached_target'])}",
         f"{ae['train_seconds']:.1f}"),
        ("VAE test -ELBO (nats)", f"{vae['test_neg_elbo']:.2f}", f"< 111.7 at {when(vae['reached_pythae_elbo'])}",
         f"{vae['train_seconds']:.1f}"),
        (f"VAE test NLL, IS K={args.is_samples} (nats)", f"{vae['test_nll_is']:.2f}", "< 106.2", ""),
        ("VAE test -ELBO (bits/dim)", f"{vae['bits_per_dim']:.4f}", "", ""),
        ("pythae VAE, 100 epochs (reference)", "111.7 / 106.2", "", "46.0"),
    ]
    print(f"\n{'measure':40s} {'value':>14s}  {'target (first met)':40s} {'train s':>8s}")
    for name, value, target, seconds in rows:
        print(f"{name:40s} {value:>14s}  {target:40s} {seconds:>8s}")
    out = args.out or build_dir() / "bench" / "ae_vae.json"
    atomic_write_json(out, result)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
