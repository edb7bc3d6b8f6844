"""Benchmark: the hot paths of notebook 05 on the CPU - transformer training steps through ``fit`` and
text -> image sampling through ``course_lib.sampling.generate`` with a KV cache.

Classroom settings of notebook 05: MixedTransformer(d_model=64, n_layer=4, n_head=4), batch 64,
sequences of ~61 tokens (a digit caption + 7x7 image codes + markers), a vocabulary of ~294 ids
(8 special + the caption words + K=256 codes). The data are synthetic: real digit captions
(``course_lib.data.digit_caption``, all eight templates) with random codes, fed by
``MixedSequenceData.batches`` exactly as the notebook feeds ``fit``; the timings do not depend on
what the codes are.

(a) training: steps/s of ``fit(model, mixed_sequence_loss, data.batches(64), ...)`` (the notebook's
    call: AdamW, weight decay 0.01, warmup + cosine, clipping), measured by ``fit``'s own clock;
    beside it a bare loop (the same batches, loss, backward, clipping and AdamW step with no
    ``fit`` around them) and the time ``MixedSequenceData.batch`` takes alone, to show what ``fit``
    itself costs.
(b) sampling: tokens/s of ``generate`` for 256 prompts at once (the notebook's ``speed_batch``), KV
    cache on, classifier-free guidance on (scale 3, so every step runs the model twice), temperature
    0.5, the image-span constraint as in ``draw``: 50 new tokens per row (49 codes + ``<eoi>``).

Each measurement is repeated (``--repeats``); the median and the best are reported, per wall-clock
second and per CPU second of this process (``time.process_time``). On a shared machine the wall
clock counts the time other programs held the cores; the CPU time does not (with one thread it is
the steadiest number; with two, a thread spinning while the other waits for a core still counts).

Before/after: ``--baseline DIR`` also runs the benchmark on the course_lib in DIR (e.g. an export of
an older commit: ``git archive 46e66d4 | tar -x -C /tmp/orig``), alternating the two in fresh
processes, one at a time, for ``--rounds`` rounds, and reports both and their ratio.

Usage: python benchmarks/bench_hot_paths.py [--threads 2] [--steps 40] [--repeats 3]
                                            [--baseline DIR] [--rounds 2] [--out NAME]
Writes build/bench/bench_hot_paths.json (``--out`` for another name) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MODEL = dict(d_model=64, n_layer=4, n_head=4, dropout=0.0)   # notebook 05, classroom profile
TRAIN = dict(batch_size=64, lr=3e-3, weight_decay=0.01, p_i2t=0.6, p_drop_caption=0.1)
SAMPLE = dict(batch=256, guidance_scale=3.0, temperature=0.5)
N_IMAGES, NUM_CODES, GRID = 4500, 256, (7, 7)


def _git_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _median_best(values: list[float]) -> dict:
    return {"median": statistics.median(values), "best": max(values), "all": values}


def _rates(pairs: list[tuple[float, float]], work: float) -> dict:
    """(wall seconds, CPU seconds) per repeat -> work per second, by either clock."""
    return {"wall": _median_best([work / w for w, _ in pairs]), "cpu": _median_best([work / c for _, c in pairs])}


def _timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def measure(lib: Path, threads: int, steps: int, repeats: int) -> dict:
    """Run both measurements with the course_lib found in ``lib``; returns a JSON-able dict."""
    sys.path.insert(0, str(lib))
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch
    import course_lib
    if Path(course_lib.__file__).resolve().parents[1] != lib.resolve():
        raise RuntimeError(f"imported course_lib from {course_lib.__file__}, not from {lib}")
    from torch import nn
    from course_lib.data import digit_caption
    from course_lib.mixed_data import MixedSequenceData, mixed_sequence_loss
    from course_lib.models.transformer import MixedTransformer, TransformerConfig
    from course_lib.sampling import generate, image_span_constraint, text_to_image_prompt
    from course_lib.train import fit
    from course_lib.vocabulary import MixedVocabulary, WordTokenizer

    torch.set_num_threads(threads)
    rng = random.Random(0)
    labels = [rng.randrange(10) for _ in range(N_IMAGES)]
    captions = [[digit_caption(d, template=t) for t in range(8)] for d in labels]
    vocab = MixedVocabulary(WordTokenizer.from_texts(c for v in captions for c in v), NUM_CODES, GRID)
    codes = torch.randint(0, NUM_CODES, (N_IMAGES, *GRID), generator=torch.Generator().manual_seed(0))
    data = MixedSequenceData(vocab, codes, captions, p_i2t=TRAIN["p_i2t"], p_drop_caption=TRAIN["p_drop_caption"],
                             seed=0)
    config = TransformerConfig(vocab_size=len(vocab), image_offset=vocab.image_offset, word_offset=vocab.word_offset,
                               grid=vocab.grid, block_size=data.block_size, **MODEL)

    def new_model():
        torch.manual_seed(0)
        return MixedTransformer(config)

    def train(model, n):
        return fit(model, mixed_sequence_loss, data.batches(TRAIN["batch_size"]), steps=n,
                   batch_size=TRAIN["batch_size"], lr=TRAIN["lr"], warmup_steps=min(50, n // 5), cosine=True,
                   weight_decay=TRAIN["weight_decay"], device="cpu", desc="bench")

    def bare_loop(model, n):
        """What fit does per step, with nothing around it: the floor fit's own work sits on."""
        opt = torch.optim.AdamW(model.parameters(), lr=TRAIN["lr"], weight_decay=TRAIN["weight_decay"])
        batches = data.batches(TRAIN["batch_size"])
        model.train()
        for _ in range(n):
            loss, _ = mixed_sequence_loss(model, next(batches))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

    train(new_model(), 5)                             # warm-up: allocator, oneDNN primitives
    fit_times, bare_times, batch_times = [], [], []
    for _ in range(repeats):
        model = new_model()
        fit_times.append(_timed(lambda: train(model, steps)))
        model = new_model()
        bare_times.append(_timed(lambda: bare_loop(model, steps)))
        batch_times.append(_timed(lambda: [data.batch(TRAIN["batch_size"]) for _ in range(20)]))
    seq = data.batch(TRAIN["batch_size"])[0]

    model = new_model().eval()                        # untrained: sampling cost does not depend on the weights
    prompts = [text_to_image_prompt(vocab, vocab.encode_text(digit_caption(d % 10, template=0)))
               for d in range(SAMPLE["batch"])]
    prompt = torch.tensor(prompts)
    uncond = torch.tensor([text_to_image_prompt(vocab, [])] * SAMPLE["batch"])
    n_new = vocab.n_image_tokens + 1

    def sample():
        out = generate(model, prompt, n_new, temperature=SAMPLE["temperature"],
                       guidance_scale=SAMPLE["guidance_scale"], uncond_prompt=uncond,
                       allowed=image_span_constraint(vocab), use_cache=True,
                       generator=torch.Generator().manual_seed(7))
        assert out.shape == (SAMPLE["batch"], n_new)

    sample()                                          # warm-up
    sample_times = [_timed(sample) for _ in range(repeats)]
    return {
        "lib": str(lib), "commit": _git_commit(lib), "threads": threads, "torch": torch.__version__,
        "vocab_size": len(vocab), "sequence_tokens": int(seq.shape[1]), "parameters": model.num_parameters(),
        "train_steps": steps, "sample_new_tokens": SAMPLE["batch"] * n_new,
        "train_steps_per_s": _rates(fit_times, steps),
        "bare_loop_steps_per_s": _rates(bare_times, steps),
        "batch_build_ms": 1e3 / 20 * statistics.median(w for w, _ in batch_times),
        "sample_tokens_per_s": _rates(sample_times, SAMPLE["batch"] * n_new),
    }


def _worker(lib: Path, args) -> dict:
    """``measure`` in a fresh process (so the two course_libs never meet in one interpreter)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(lib), "--worker-out", str(out),
               "--threads", str(args.threads), "--steps", str(args.steps), "--repeats", str(args.repeats)]
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


RATES = ("train_steps_per_s", "bare_loop_steps_per_s", "sample_tokens_per_s")


def _row(name: str, r: dict, clock: str) -> str:
    t, b, s = (r[k][clock] for k in RATES)
    return (f"{name:<26} {clock:>5} {t['median']:8.2f} {t['best']:7.2f} {b['median']:9.2f} "
            f"{100 * (b['median'] / t['median'] - 1):+8.1f}% {s['median']:9.0f} {s['best']:9.0f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per timed fit (default 40)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each measurement (default 3)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a folder holding another course_lib to measure too (before/after)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating before/after rounds (default 2)")
    parser.add_argument("--out", default=None, help="file name under build/bench (default bench_hot_paths.json)")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        args.worker_out.write_text(json.dumps(measure(args.worker, args.threads, args.steps, args.repeats)))
        return 0

    load_before = os.getloadavg()
    libs = {"this checkout": ROOT} if args.baseline is None else {"baseline": args.baseline, "this checkout": ROOT}
    runs: dict[str, list[dict]] = {name: [] for name in libs}
    for _ in range(args.rounds if args.baseline is not None else 1):
        for name, lib in libs.items():
            runs[name].append(_worker(lib, args))
    merged = {}
    for name, results in runs.items():   # pool the rounds: medians (and bests) over every repeat of every round
        merged[name] = dict(results[0])
        for key in RATES:
            merged[name][key] = {clock: _median_best([v for r in results for v in r[key][clock]["all"]])
                                 for clock in ("wall", "cpu")}
        merged[name]["batch_build_ms"] = statistics.median(r["batch_build_ms"] for r in results)
    report = {"config": {"model": MODEL, "train": TRAIN, "sample": SAMPLE, "threads": args.threads,
                         "steps": args.steps, "repeats": args.repeats, "rounds": args.rounds},
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "load_average_before": load_before, "load_average_after": os.getloadavg()},
              "results": merged}
    if args.baseline is not None:   # after / before, of the medians and of the bests, by either clock
        b, a = merged["baseline"], merged["this checkout"]
        report["speedup"] = {key: {f"{clock}_{stat}": a[key][clock][stat] / b[key][clock][stat]
                                   for clock in ("wall", "cpu") for stat in ("median", "best")}
                             for key in ("train_steps_per_s", "sample_tokens_per_s")}
    out = ROOT / "build" / "bench" / (args.out or "bench_hot_paths.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))

    r0 = next(iter(merged.values()))
    print(f"\nnotebook 05 hot paths on the CPU, {args.threads} threads, {r0['parameters']:,} parameters, "
          f"vocabulary {r0['vocab_size']}, sequences of {r0['sequence_tokens']} tokens")
    print(f"{'':<26} {'clock':>5} {'fit steps/s':>16} {'bare loop':>9} {'fit cost':>9} {'sample tokens/s':>19}")
    print(f"{'':<26} {'':>5} {'median':>8} {'best':>7} {'steps/s':>9} {'':>9} {'median':>9} {'best':>9}")
    for name, r in merged.items():
        for clock in ("wall", "cpu"):
            print(_row(f"{name} ({r['commit'] or '?'})", r, clock))
    print("batch building alone (MixedSequenceData.batch(64)): "
          + ", ".join(f"{name} {r['batch_build_ms']:.1f} ms" for name, r in merged.items()))
    if "speedup" in report:
        for key, label in (("train_steps_per_s", "training steps"), ("sample_tokens_per_s", "sampling tokens")):
            s = report["speedup"][key]
            print(f"after / before, {label}: median {s['wall_median']:.2f}x wall, {s['cpu_median']:.2f}x CPU; "
                  f"best {s['wall_best']:.2f}x wall, {s['cpu_best']:.2f}x CPU")
    print(f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
