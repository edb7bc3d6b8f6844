"""Measured results: each notebook records its numbers; the course gathers them into one report.

In a notebook::

    run = NotebookRun("01_autoencoders")      # starts the clock, notes profile and device
    run.record(pca16_test_mse=0.0275)          # numbers computed in this run
    run.finish()                               # writes build/metrics/01_autoencoders.json

File contract: ``{"notebook", "profile", "device", "seconds", "metrics": {name: number or
{name: number}}, "peak_memory_mb"}``. :func:`write_report` turns every such file into
``build/report.md``, with each headline metric checked against its target in ``TARGETS``.
"""
from __future__ import annotations

import json
import math
import numbers
import resource
import sys
import time
from pathlib import Path

from .artifacts import atomic_write_bytes, atomic_write_json
from .device import pick_device
from .paths import build_dir
from .profiles import get_profile

# Headline targets (classroom profile): metric -> (comparison, value, what it means).
# A target written as a string names another metric of the same notebook ("<= 0.5 * pca16_test_mse").
TARGETS: dict[str, tuple[str, float | str, str]] = {
    "ae16_test_mse": ("<=", "0.5*pca16_test_mse", "conv AE (16-d) at most half of PCA-16's test MSE"),
    "vae_test_neg_elbo": ("<=", 111.7, "below pythae's VAE (100 epochs), nats/image"),
    "vae_test_nll_is": ("<=", 106.2, "below pythae's VAE (100 epochs), nats/image"),
    "vq_test_mse": ("<=", 0.005, "7x7 grid, 512 codes"),
    "vq_perplexity_fraction": (">=", 0.5, "perplexity at least half of the codebook"),
    "t2i_digit_accuracy": (">=", 0.90, "independent classifier agrees with the prompt"),
    "i2t_digit_accuracy": (">=", 0.95, "captions name the right digit"),
    "shapes_exact_match": (">=", 0.80, "every attribute right on seen combinations"),
    "kv_cache_speedup": (">=", 5.0, "cached sampling vs recomputing the context"),
}


def _peak_memory_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _clean(value):
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"metric values must be numbers or dicts of numbers; got {type(value).__name__}")
    value = float(value) if not isinstance(value, int) else value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"metric values must be finite; got {value}")
    return value


class NotebookRun:
    """Clock, profile and device for one notebook run, and the metrics it measured."""

    def __init__(self, notebook: str, profile=None, device=None):
        if not isinstance(notebook, str) or not notebook or "/" in notebook:
            raise ValueError(f"notebook must be the notebook's file stem, e.g. '01_autoencoders'; got {notebook!r}")
        self.notebook = notebook
        self.profile = profile or get_profile()
        self.device = device or pick_device()
        self.metrics: dict = {}
        self._start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def record(self, **metrics) -> None:
        """Add measured numbers (or dicts of numbers, e.g. per-digit accuracy)."""
        for name, value in metrics.items():
            self.metrics[name] = _clean(value)

    def finish(self, verbose: bool = True) -> Path:
        """Write ``build/metrics/<notebook>.json`` and return its path."""
        payload = {"notebook": self.notebook, "profile": self.profile.name, "device": str(self.device),
                   "seconds": round(self.elapsed, 2), "metrics": self.metrics,
                   "peak_memory_mb": _peak_memory_mb()}
        path = build_dir() / "metrics" / f"{self.notebook}.json"
        atomic_write_json(path, payload)
        if verbose:
            print(f"{self.notebook}: {len(self.metrics)} metrics, {payload['seconds']:.1f} s on "
                  f"{payload['device']} ({payload['profile']} profile) -> {path}")
        return path


def _target_status(name: str, metrics: dict):
    if name not in TARGETS:
        return None, ""
    op, want, note = TARGETS[name]
    if isinstance(want, str):
        factor, other = want.split("*")
        if other not in metrics:
            return None, note
        want = float(factor) * metrics[other]
    got = metrics[name]
    ok = got <= want if op == "<=" else got >= want
    return ok, f"{op} {want:.4g} ({note})"


def _fmt(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def load_metrics(directory: Path | None = None) -> list[dict]:
    """Every ``build/metrics/*.json``, sorted by notebook name."""
    directory = Path(directory) if directory is not None else build_dir() / "metrics"
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def write_report(directory: Path | None = None, out: Path | None = None) -> Path:
    """Gather the metric files into ``build/report.md``: a table per notebook, targets marked."""
    runs = load_metrics(directory)
    lines = ["# Course report", "", f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.", ""]
    if not runs:
        lines.append("No notebook has recorded metrics yet: run the course first.")
    total = sum(r.get("seconds", 0) for r in runs)
    if runs:
        lines += ["| notebook | profile | device | seconds | peak memory (MB) |", "|---|---|---|---|---|"]
        for r in runs:
            lines.append(f"| {r['notebook']} | {r['profile']} | {r['device']} | {r['seconds']:.1f} | "
                         f"{r.get('peak_memory_mb', '')} |")
        lines += [f"| **total** | | | {total:.1f} | |", ""]
    for r in runs:
        lines += [f"## {r['notebook']}", "",
                  f"Profile `{r['profile']}` on `{r['device']}`, {r['seconds']:.1f} s.", "",
                  "| metric | value | target | met |", "|---|---|---|---|"]
        for name, value in r["metrics"].items():
            ok, target = _target_status(name, r["metrics"]) if not isinstance(value, dict) else (None, "")
            mark = "" if ok is None else ("yes" if ok else "**no**")
            if ok is not None and r["profile"] == "smoke":
                mark += " (smoke: not expected)" if not ok else ""
            lines.append(f"| {name} | {_fmt(value)} | {target} | {mark} |")
        lines.append("")
    out = Path(out) if out is not None else build_dir() / "report.md"
    atomic_write_bytes(out, "\n".join(lines).encode())
    return out


def start_notebook(notebook: str, seed: int = 0) -> NotebookRun:
    """First cell of every notebook: seed everything, pick profile and device, start the clock.

    Prints one line (profile, device, torch version) and returns the :class:`NotebookRun`.
    """
    import torch

    from .device import seed_everything
    seed_everything(seed)
    run = NotebookRun(notebook)
    amp = "bf16 autocast" if run.device.type == "cuda" else "float32"
    print(f"{notebook} | profile: {run.profile} | device: {run.device} ({amp}) | torch {torch.__version__}")
    return run


if __name__ == "__main__":  # python -m course_lib.report
    print(write_report())
