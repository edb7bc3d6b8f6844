"""Benchmark: our best vector quantizer against vector-quantize-pytorch's ``VectorQuantize``.

Same encoder/decoder (course_lib.models.vq.Encoder/Decoder, 7x7x16 latents), same data (MNIST-5k,
4,500 train / 500 test), same optimiser, batch size and step budget; only the quantizer differs:

* ``ours (EMA + k-means + restart)``: course_lib VectorQuantizer(ema=True, decay=0.99 (``--decay``),
  kmeans_init=True, dead_threshold=3.0 (``--threshold``; the notebooks use 1.0)), commitment 0.25;
* ``vector-quantize-pytorch``: VectorQuantize(kmeans_init=True, decay=0.99 (``--library-decay``),
  commitment_weight=0.25, threshold_ema_dead_code=2, rotation_trick=False) - the classic VQ-VAE
  settings (its defaults since v1.18 are the rotation trick, EMA decay 0.8, commitment 1.0);
* ``textbook VQ (EMA, no restarts)``: the collapsing reference of notebook 04 (decay always 0.99).

Perplexity is computed from the code counts over the whole evaluation set (the library returns none).

Decay selection (``--select-decay 0.8 0.9 0.95 0.99``): the EMA decay of ``ours`` and of the library
is chosen on a validation set, never on the test set. A fixed validation set of ``--val-size`` (500)
digits is drawn from the 4,500 training digits (a random permutation with seed ``--val-seed``, 0);
for each of these two kinds and each candidate decay, one model (seed ``--select-seed``, 0) is
trained on the remaining 4,000 digits and scored on the validation digits. Rule: the decay with the
lowest validation MSE wins; MSEs equal when rounded to 5 decimals count as a tie, broken by the
higher validation perplexity (then by the smaller decay). Each kind is then retrained with its
chosen decay on all 4,500 training digits for every ``--seeds`` seed and scored on the test set,
which only these final runs see. ``--decay`` and ``--library-decay`` are ignored in this mode; the
textbook reference keeps 0.99.

Version used for the numbers in the report: vector-quantize-pytorch==1.32.0 (install it into the
venv for this script only: ``.venv/bin/pip install vector-quantize-pytorch==1.32.0``; the course
itself does not need it).

Usage: python benchmarks/bench_vq.py [--steps 1200] [--codes 512] [--seeds 0 1] [--threads 2]
       python benchmarks/bench_vq.py --select-decay 0.8 0.9 0.95 0.99 --seeds 0 1 2
Writes build/bench/bench_vq.json (``--out`` names another file under build/bench): settings,
library version, the selection table and chosen decays (selection mode), every final run, and the
mean/min/max over seeds per quantizer.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.data import as_tensors, load_digits  # noqa: E402
from course_lib.models.vq import (VQVAE, QuantizerOutput, VectorQuantizer, code_counts, perplexity,  # noqa: E402
                                  vqvae_loss)
from course_lib.train import fit  # noqa: E402

PINNED = "1.32.0"
KINDS = ("ours", "library", "textbook")
SELECTABLE = ("ours", "library")  # kinds whose EMA decay --select-decay chooses
TEXTBOOK_DECAY = 0.99


class LibraryVQ(nn.Module):
    """vector-quantize-pytorch's VectorQuantize behind course_lib's quantizer interface."""

    def __init__(self, num_codes: int, dim: int, decay: float = 0.99):
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize
        self.vq = VectorQuantize(dim=dim, codebook_size=num_codes, decay=decay, commitment_weight=0.25,
                                 kmeans_init=True, threshold_ema_dead_code=2, rotation_trick=False,
                                 accept_image_fmap=True)
        self.num_codes = num_codes

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        q, idx, loss = self.vq(z)
        counts = torch.bincount(idx.reshape(-1), minlength=self.num_codes).float()
        return QuantizerOutput(q, idx, loss.sum(), {"perplexity": perplexity(counts),
                                                    "used": float((counts > 0).float().mean())})


def make_quantizer(kind: str, num_codes: int, dim: int, threshold: float = 3.0, decay: float = 0.99) -> nn.Module:
    if kind == "ours":
        return VectorQuantizer(num_codes, dim, ema=True, decay=decay, kmeans_init=True, dead_threshold=threshold)
    if kind == "textbook":
        return VectorQuantizer(num_codes, dim, ema=True, decay=TEXTBOOK_DECAY)
    return LibraryVQ(num_codes, dim, decay=decay)


NAMES = {"ours": "ours (EMA + k-means + restart)", "library": f"vector-quantize-pytorch {PINNED}",
         "textbook": "textbook VQ (EMA, no restarts)"}


def label(kind: str, decay: float, threshold: float) -> str:
    if kind == "ours":
        return f"{NAMES[kind]}, threshold {threshold:g}, decay {decay:g}"
    if kind == "library":
        return f"{NAMES[kind]}, decay {decay:g}"
    return NAMES[kind]


@torch.no_grad()
def evaluate(model: VQVAE, x: torch.Tensor, num_codes: int, split: str = "test") -> dict:
    model.eval()
    x_hat, q = model(x)
    counts = code_counts(q.indices, num_codes)
    ppl = perplexity(counts)
    return {f"{split}_mse": float((x_hat.clamp(0, 1) - x).pow(2).mean()), "perplexity": ppl,
            "perplexity_fraction": ppl / num_codes, "used_fraction": float((counts > 0).float().mean())}


def run_one(kind: str, seed: int, decay: float, args, x_train: torch.Tensor, x_eval: torch.Tensor,
            split: str) -> dict:
    """Train one VQ-VAE with quantizer ``kind`` on ``x_train``, score it on ``x_eval``, print one line."""
    torch.manual_seed(seed)
    model = VQVAE(make_quantizer(kind, args.codes, 16, args.threshold, decay), channels=1, hidden=64, dim=16)
    history = fit(model, vqvae_loss, x_train, steps=args.steps, batch_size=64, lr=args.lr, seed=seed,
                  device="cpu", desc=kind)
    row = {"quantizer": label(kind, decay, args.threshold), "kind": kind,
           "threshold": args.threshold if kind == "ours" else None,
           "decay": TEXTBOOK_DECAY if kind == "textbook" else decay, "seed": seed, "steps": history.steps,
           "train_images": len(x_train), "train_seconds": round(history.seconds, 1),
           **evaluate(model, x_eval, args.codes, split)}
    print(f"{row['quantizer']:<56} seed {seed}: {split} MSE {row[f'{split}_mse']:.5f}  perplexity "
          f"{row['perplexity']:6.1f} ({row['perplexity_fraction']:.0%} of K)  used {row['used_fraction']:.0%}  "
          f"{row['train_seconds']:.0f} s", flush=True)
    return row


def split_validation(x: torch.Tensor, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random ``size`` of the training images -> (rest, validation), both in their original order."""
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[perm[:-size].sort().values], x[perm[-size:].sort().values]


def choose(rows: list[dict]) -> dict:
    """The selection rule of the module doc: lowest validation MSE (5 decimals), then highest perplexity, then smaller decay."""
    return min(rows, key=lambda r: (round(r["val_mse"], 5), -r["perplexity"], r["decay"]))


def select_decays(args, x_train: torch.Tensor) -> tuple[list[dict], dict]:
    x_fit, x_val = split_validation(x_train, args.val_size, args.val_seed)
    print(f"decay selection: {len(x_fit)} training / {len(x_val)} validation digits, seed {args.select_seed}")
    rows, chosen = [], {}
    for kind in [k for k in args.kinds if k in SELECTABLE]:
        kind_rows = [run_one(kind, args.select_seed, d, args, x_fit, x_val, "val") for d in args.select_decay]
        rows += kind_rows
        chosen[kind] = choose(kind_rows)["decay"]
    print(f"\n{'val MSE / perplexity':<20}" + "".join(f"{k:>22}  " for k in chosen))
    for d in args.select_decay:
        cells = [next(r for r in rows if r["kind"] == k and r["decay"] == d) for k in chosen]
        print(f"decay {d:<14g}" + "".join(
            f"{r['val_mse']:>12.5f} / {r['perplexity']:5.1f}{' *' if chosen[r['kind']] == d else '  '}" for r in cells))
    print("chosen (*): " + ", ".join(f"{k} {d:g}" for k, d in chosen.items()) + "\n")
    return rows, chosen


def summarise(results: list[dict], kinds: list[str]) -> dict:
    summary = {}
    for kind in kinds:
        runs = [r for r in results if r["kind"] == kind]
        summary[kind] = {m: sum(r[m] for r in runs) / len(runs)
                         for m in ("test_mse", "perplexity", "used_fraction", "train_seconds")}
        for m in ("test_mse", "perplexity"):
            summary[kind][f"{m}_min"] = min(r[m] for r in runs)
            summary[kind][f"{m}_max"] = max(r[m] for r in runs)
        summary[kind]["seeds"] = [r["seed"] for r in runs]
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--codes", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=3.0,
                        help="our dead-code restart threshold (EMA count per batch); the library runs with "
                             "threshold_ema_dead_code=2; 3.0 was our best of 1, 2, 3 at 1,200 steps")
    parser.add_argument("--decay", type=float, default=0.99,
                        help="our EMA decay (the notebooks use 0.99); ignored with --select-decay")
    parser.add_argument("--library-decay", type=float, default=0.99,
                        help="the library's EMA decay (its default is 0.8); ignored with --select-decay")
    parser.add_argument("--select-decay", type=float, nargs="+", default=None, metavar="DECAY",
                        help="choose each kind's decay among these on a validation split (module doc)")
    parser.add_argument("--val-size", type=int, default=500, help="validation digits taken from the training set")
    parser.add_argument("--val-seed", type=int, default=0, help="seed of the validation split")
    parser.add_argument("--select-seed", type=int, default=0, help="training seed of the selection runs")
    parser.add_argument("--out", default=None, help="file name under build/bench (default bench_vq.json)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        import vector_quantize_pytorch  # noqa: F401
        from importlib.metadata import version
        lib_version = version("vector-quantize-pytorch")
    except ImportError:
        lib_version = None
        print("vector-quantize-pytorch is NOT installed: the library comparison is skipped. Install it with "
              f"`.venv/bin/pip install vector-quantize-pytorch=={PINNED}` (benchmark only).")
        args.kinds = [k for k in args.kinds if k != "library"]
    if lib_version and lib_version != PINNED:
        print(f"note: vector-quantize-pytorch {lib_version} installed; the reported numbers used {PINNED}")

    start = time.perf_counter()
    dd = load_digits(verbose=False)
    xtr, _ = as_tensors(dd["train"])
    selection, decays = None, {"ours": args.decay, "library": args.library_decay, "textbook": TEXTBOOK_DECAY}
    if args.select_decay:
        selection, chosen = select_decays(args, xtr)
        decays.update(chosen)
    xte, _ = as_tensors(dd["test"])  # the test set: final runs only
    results = [run_one(kind, seed, decays[kind], args, xtr, xte, "test") for kind in args.kinds for seed in args.seeds]
    summary = summarise(results, args.kinds)

    print(f"\ntest, {len(args.seeds)} seed(s) {args.seeds}, {args.steps} steps, K={args.codes}: mean [min, max]")
    for kind, s in summary.items():
        print(f"{label(kind, decays[kind], args.threshold):<56} MSE {s['test_mse']:.5f} "
              f"[{s['test_mse_min']:.5f}, {s['test_mse_max']:.5f}]  perplexity {s['perplexity']:6.1f} "
              f"[{s['perplexity_min']:.1f}, {s['perplexity_max']:.1f}]")
    verdict = None
    if "ours" in summary and "library" in summary:
        o, l_ = summary["ours"], summary["library"]
        verdict = {"mse_ours_le_library": o["test_mse"] <= l_["test_mse"],
                   "perplexity_ours_ge_library": o["perplexity"] >= l_["perplexity"]}
        print(f"\nours vs library: test MSE {o['test_mse']:.5f} vs {l_['test_mse']:.5f} "
              f"({'match or beat' if verdict['mse_ours_le_library'] else 'WORSE'}); perplexity "
              f"{o['perplexity']:.1f} vs {l_['perplexity']:.1f} "
              f"({'match or beat' if verdict['perplexity_ours_ge_library'] else 'WORSE'})")
    wall = round(time.perf_counter() - start, 1)
    print(f"wall time {wall:.0f} s")
    out = ROOT / "build" / "bench" / ("bench_vq.json" if args.out is None else args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"config": vars(args), "library_version": lib_version, "torch_version": torch.__version__,
              "steps": args.steps, "decays": {k: decays[k] for k in args.kinds}}
    if selection is not None:
        record["selection"] = {"train_images": len(xtr) - args.val_size, "val_images": args.val_size,
                               "val_seed": args.val_seed, "seed": args.select_seed,
                               "rule": "lowest val MSE rounded to 5 decimals, then highest perplexity, "
                                       "then smaller decay", "runs": selection, "chosen": chosen}
    record.update({"runs": results, "summary": summary, "verdict": verdict, "wall_seconds": wall,
                   "when": time.strftime("%Y-%m-%d %H:%M:%S")})
    out.write_text(json.dumps(record, indent=2) + "\n")
    print("wrote", out.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
