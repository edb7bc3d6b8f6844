"""Visual question answering on the scenes: the three fusion styles at equal steps (issue 15's targets).

Usage:  python benchmarks/bench_vqa.py [--profile classroom] [--threads N] [--kinds blind,early,cross]
                                       [--describe-steps N] [--steps N]

Gets the scenes image tokenizer (``get_tokenizer("scenes")``: loaded, or trained with its recipe)
and measures how much of the scenes its reconstructions keep (read back with
``data.scenes.read_objects``: the ceiling). Then trains each model of :mod:`course_lib.vqa` with
the profile's recipe (stage 1: describe scenes; stage 2: answer questions) and scores it on the
test scenes per question type. Prints a table and writes ``build/bench/vqa.json``. A measurement
to re-run, not a test. Targets (classroom): best model non-relational >= 0.97, relational >= 0.85,
counting >= 0.85.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from course_lib.artifacts import atomic_write_json  # noqa: E402
from course_lib.data.scenes import attribute_accuracy, majority_baseline, objects_of, read_objects  # noqa: E402
from course_lib.image_tokenizer import get_tokenizer  # noqa: E402
from course_lib.paths import build_dir  # noqa: E402
from course_lib.vqa import KINDS, new_vqa_model, train_vqa, vqa_accuracy, vqa_recipe, vqa_split  # noqa: E402

TARGETS = {"non-relational": 0.97, "relational": 0.85, "counting": 0.85}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="classroom")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--describe-steps", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: v for k, v in (("describe_steps", args.describe_steps), ("steps", args.steps)) if v is not None}
    t0 = time.perf_counter()
    tok = get_tokenizer("scenes", profile=args.profile, device="cpu")
    tok_seconds = time.perf_counter() - t0
    recipe = vqa_recipe(args.profile, tok, **overrides)
    t0 = time.perf_counter()
    train = vqa_split(recipe, tok, "train")
    test = vqa_split(recipe, tok, "test", vocab=train.vocab)
    data_seconds = time.perf_counter() - t0
    recon = tok.reconstruct(test.images)
    ceiling = sum(attribute_accuracy(read_objects(recon[i]), objects_of(test.scenes[i]))
                  for i in range(len(recon))) / len(recon)
    result = {"profile": args.profile, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
              "recipe": recipe, "tokenizer_seconds": tok_seconds, "data_seconds": data_seconds,
              "tokenizer_readback": ceiling, "n_train_questions": len(train), "n_test_questions": len(test),
              "majority_baseline": majority_baseline(train.questions, test.questions), "models": {}}
    print(f"tokenizer {tok_seconds:.0f} s, read-back of reconstructions {ceiling:.4f}; data {data_seconds:.0f} s; "
          f"{len(train)} train / {len(test)} test questions")
    for kind in args.kinds.split(","):
        model = new_vqa_model(kind, recipe, train.vocab)
        t0 = time.perf_counter()
        hist = train_vqa(model, train, recipe)
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        acc = vqa_accuracy(model, test)
        answer_seconds = time.perf_counter() - t0
        result["models"][kind] = {"accuracy": acc, "parameters": model.num_parameters(), "train_seconds": seconds,
                                  "describe_seconds": hist["describe"].seconds if hist["describe"] else 0.0,
                                  "answers_per_second": len(test) / answer_seconds,
                                  "final_losses": {k: h.first_last()[1] for k, h in hist.items() if h}}
        print(f"{kind:6s} {model.num_parameters():,} params, {seconds:.0f} s: "
              + " ".join(f"{k} {v:.3f}" for k, v in acc.items()), flush=True)
    best = max(result["models"].values(), key=lambda m: m["accuracy"]["all"])
    result["targets"] = {k: {"target": v, "best": best["accuracy"].get(k), "met": best["accuracy"].get(k, 0) >= v}
                         for k, v in TARGETS.items()}
    out = build_dir() / "bench" / "vqa.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    print(json.dumps(result["targets"]), f"\nwrote {out}")


if __name__ == "__main__":
    main()
