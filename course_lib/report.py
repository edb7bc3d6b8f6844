"""Measured results: each notebook records its numbers; the course gathers them into one report.

In a notebook::

    run = start_notebook("01_autoencoders")    # seeds, starts the clock, notes profile and device
    run.record(pca16_test_mse=0.0275)          # numbers computed in this run
    run.finish()                               # writes build/metrics/01_autoencoders.json

File contract (``gpu_peak_memory_mb`` only on CUDA): ``{"notebook", "profile", "device", "seconds", "metrics": {name: number or
{name: number}}, "peak_memory_mb", "cut_short": [lines]}`` (``cut_short``: training runs the
wall-clock guard stopped early; normally empty). :func:`write_report` turns every such file into
``build/report.md`` and ``build/report.html``: a summary table (per notebook: device, profile,
seconds, peak memory, targets met, key figures), the course-wide budgets, and one table per
notebook with each headline metric checked against its target in :data:`TARGETS` (met / not met).
When ``scripts/run_course.py`` ran, ``build/course_run.json`` adds which notebooks failed and the
course's wall time.
"""
from __future__ import annotations

import html
import json
import math
import numbers
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .artifacts import atomic_write_bytes, atomic_write_json
from .device import pick_device
from .paths import build_dir
from .profiles import get_profile

# Headline targets (classroom profile, from COURSE_DESIGN.md): metric -> (comparison, value, meaning).
# A target written as a string names another metric of the same notebook ("0.5*pca16_test_mse").
TARGETS: dict[str, tuple[str, float | str, str]] = {
    "ae16_test_mse": ("<=", "0.5*pca16_test_mse", "conv AE (16-d) at most half of PCA-16's test MSE"),
    "vae_test_neg_elbo": ("<=", 111.7, "below pythae's VAE (100 epochs), nats/image"),
    "vae_test_nll_is": ("<=", 106.2, "below pythae's VAE (100 epochs), nats/image"),
    "vae_train_seconds": ("<=", 46.0, "less wall time than pythae's VAE (46 s)"),
    "vq_test_mse": ("<=", 0.005, "7x7 grid, 512 codes"),
    "vq_perplexity_fraction": (">=", 0.5, "perplexity at least half of the codebook"),
    "vq_train_seconds": ("<=", 60.0, "VQ-VAE trained within 60 s"),
    "t2i_digit_accuracy": (">=", 0.95, "independent classifier agrees with the prompt (best of t2i_candidates "
                                        "draws, kept by the model's own reading; one draw: t2i_single_draw_accuracy)"),
    "t2i_digit_accuracy_per_digit": (">=", 0.85, "every digit drawn right at least this often (best of t2i_candidates)"),
    "i2t_digit_accuracy": (">=", 0.97, "captions name the right digit"),
    "shapes_attribute_accuracy": (">=", 0.90, "each attribute right"),
    "shapes_exact_match": (">=", 0.90, "every attribute right on seen combinations"),
    "kv_cache_speedup": (">=", 5.0, "cached sampling vs recomputing the context"),
    "vqa_tokenizer_readback": (">=", 0.97, "object attributes read back from the scene tokenizer's reconstructions"),
    "vqa_nonrelational_accuracy": (">=", 0.97, "best VQA model: shape, size, side, is there"),
    "vqa_relational_accuracy": (">=", 0.85, "best VQA model: closest, furthest, same shape (Sort-of-CLEVR's relation network: 0.94)"),
    "vqa_counting_accuracy": (">=", 0.85, "best VQA model: how many"),
    "speech_s2t_accuracy": (">=", 0.97, "speech -> text on held-out voices"),
    "speech_t2s_accuracy": (">=", 0.90, "text -> speech heard right by the speech judge (best of say_candidates "
                                        "clips, kept by the model's own transcription; one clip: "
                                        "speech_t2s_single_draw_accuracy)"),
    "speech_t2s_accuracy_per_digit": (">=", 0.90, "every digit said so the judge hears it (best of say_candidates)"),
    "speech_i2s_accuracy": (">=", 0.85, "image -> speech (a digit read aloud) heard right by the judge"),
    "speech_s2i_accuracy": (">=", 0.85, "speech -> image (the digit heard, drawn) read right by the classifier (best "
                                        "of draw_candidates, kept by the model's own reading; one drawing: "
                                        "speech_s2i_single_draw_accuracy)"),
}
# Targets that a dict metric must meet in every entry (others compare a dict's mean).
EACH = {"shapes_attribute_accuracy", "t2i_digit_accuracy_per_digit", "speech_t2s_accuracy_per_digit"}
# Metrics computed from others when a notebook did not record them itself.
DERIVED = {"vq_perplexity_fraction": ("vq_perplexity", "/", "vq_codebook_size")}
# Course-wide budgets: whole-course seconds per profile, and peak memory of any notebook kernel.
COURSE_SECONDS = {"classroom": 25 * 60, "smoke": 5 * 60}
# Notebooks that together have a budget of their own (classroom profile): the first seven (the
# course before the applications: 15 minutes) and the transformer material.
GROUP_SECONDS = {("00_setup_and_data", "01_autoencoders", "02_variational_autoencoders", "03_vq_vae",
                  "04_vector_quantization", "05_transformer_from_scratch", "06_sampling_and_measuring"): 15 * 60,
                 ("05_transformer_from_scratch", "06_sampling_and_measuring"): 8 * 60}
# No single notebook over this, classroom profile.
NOTEBOOK_SECONDS = 6 * 60
PEAK_MEMORY_MB = 3 * 1024


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
        self.metrics_path: Path | None = None
        from .train import CUT_SHORT
        self._cut_short_from = len(CUT_SHORT)
        self._start = time.perf_counter()

    @property
    def cut_short(self) -> list[str]:
        """Training runs of this notebook that the wall-clock guard stopped early (normally none)."""
        from .train import CUT_SHORT
        return CUT_SHORT[self._cut_short_from:]

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def record(self, **metrics) -> None:
        """Add measured numbers (or dicts of numbers, e.g. per-digit accuracy)."""
        for name, value in metrics.items():
            self.metrics[name] = _clean(value)

    def finish(self, verbose: bool = True) -> None:
        """Write ``build/metrics/<notebook>.json`` (its path is kept in ``metrics_path``).

        Returns nothing, so a notebook's last cell ``run.finish()`` shows only the printed line."""
        payload = {"notebook": self.notebook, "profile": self.profile.name, "device": str(self.device),
                   "seconds": round(self.elapsed, 2), "metrics": self.metrics,
                   "peak_memory_mb": _peak_memory_mb(), "cut_short": self.cut_short}
        if self.device.type == "cuda":
            import torch
            payload["gpu_peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        path = build_dir() / "metrics" / f"{self.notebook}.json"
        atomic_write_json(path, payload)
        self.metrics_path = path
        if verbose:
            print(f"{self.notebook}: {len(self.metrics)} metrics, {payload['seconds']:.1f} s on "
                  f"{payload['device']} ({payload['profile']} profile) -> {path}")


# ------------------------------------------------------------------------------ targets

@dataclass(frozen=True)
class Check:
    """One metric of one notebook against its target. ``met`` is None when there is no target."""

    name: str
    value: object          # a number or a dict of numbers
    target: str            # e.g. "<= 0.005 (7x7 grid, 512 codes)"; "" without a target
    met: bool | None
    derived: bool = False  # computed here from other metrics
    compared: str = ""     # what was compared when it is not the value itself ("min 0.93")


def _with_derived(metrics: dict) -> tuple[dict, set]:
    metrics, derived = dict(metrics), set()
    for name, (a, op, b) in DERIVED.items():
        if name not in metrics and isinstance(metrics.get(a), numbers.Real) and isinstance(metrics.get(b), numbers.Real) \
                and metrics[b] != 0:
            metrics[name] = metrics[a] / metrics[b]
            derived.add(name)
    return metrics, derived


def check_metric(name: str, metrics: dict) -> Check:
    """Compare ``metrics[name]`` with its target (other metrics of the notebook may be needed)."""
    value = metrics[name]
    if name not in TARGETS:
        return Check(name, value, "", None)
    op, want, note = TARGETS[name]
    if isinstance(want, str):
        factor, other = want.split("*")
        if not isinstance(metrics.get(other), numbers.Real):
            return Check(name, value, f"{op} {want} ({note}; {other} not recorded)", None)
        want = float(factor) * metrics[other]
    compared = ""
    if isinstance(value, dict):
        numbers_ = [v for v in value.values() if isinstance(v, numbers.Real)]
        if not numbers_:
            return Check(name, value, f"{op} {want:.4g} ({note})", None)
        if name in EACH:
            got = max(numbers_) if op == "<=" else min(numbers_)
            compared = f"{'max' if op == '<=' else 'min'} {got:.4g}"
        else:
            got = sum(numbers_) / len(numbers_)
            compared = f"mean {got:.4g}"
    else:
        got = value
    ok = got <= want if op == "<=" else got >= want
    each = "each " if name in EACH else ""
    return Check(name, value, f"{each}{op} {want:.4g} ({note})", bool(ok), compared=compared)


def notebook_checks(run: dict) -> list[Check]:
    """Every metric of one metrics file, in recorded order, derived ones (e.g. perplexity fraction) after."""
    metrics, derived = _with_derived(run.get("metrics", {}))
    checks = []
    for name in metrics:
        c = check_metric(name, metrics)
        checks.append(Check(c.name, c.value, c.target, c.met, name in derived, c.compared))
    return checks


def _fmt(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _mark(met: bool | None, profile: str) -> str:
    if met is None:
        return ""
    if met:
        return "met"
    return "not met (smoke: not expected)" if profile == "smoke" else "not met"


# ------------------------------------------------------------------------------ gathering

def load_metrics(directory: Path | None = None) -> list[dict]:
    """Every ``build/metrics/*.json``, sorted by notebook name."""
    directory = Path(directory) if directory is not None else build_dir() / "metrics"
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def load_course_run(path: Path | None = None) -> dict | None:
    """``build/course_run.json`` written by ``scripts/run_course.py``, or None."""
    path = Path(path) if path is not None else build_dir() / "course_run.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Summary:
    """Everything the report shows, computed once for the Markdown and HTML versions."""

    runs: list
    checks: dict           # notebook -> list[Check]
    status: dict           # notebook -> "ok" / "failed" / "" (from course_run.json)
    missing: list          # notebooks the course run executed that recorded no metrics
    course: list           # (what, value, target, met or None)


def summarize(runs: list[dict], course_run: dict | None = None) -> Summary:
    checks = {r["notebook"]: notebook_checks(r) for r in runs}
    status, missing = {}, []
    recorded = {r["notebook"] for r in runs}
    for item in (course_run or {}).get("notebooks", []):
        status[item["notebook"]] = item.get("status", "")
        if item["notebook"] not in recorded:
            missing.append(item)
    course = []
    profiles = {r["profile"] for r in runs}
    total = sum(r.get("seconds", 0) for r in runs)
    if runs:
        profile = profiles.pop() if len(profiles) == 1 else None
        budget = COURSE_SECONDS.get(profile) if profile else None
        target = f"<= {budget} s ({profile} profile)" if budget else ""
        course.append(("whole course, sum of notebook seconds", f"{total:.1f} s", target,
                       (total <= budget) if budget else None))
        if course_run and course_run.get("wall_seconds") is not None:
            wall = course_run["wall_seconds"]
            all_ran = not missing and {i["notebook"] for i in course_run.get("notebooks", [])} >= recorded
            course.append(("whole course, wall time of the last `make course`"
                           + ("" if all_ran else " (not every notebook)"), f"{wall:.1f} s",
                           target if all_ran else "", (wall <= budget) if budget and all_ran else None))
        for group, seconds in GROUP_SECONDS.items():
            members = [r for r in runs if r["notebook"] in group]
            if len(members) == len(group) and profile == "classroom":
                spent = sum(r.get("seconds", 0) for r in members)
                course.append((f"notebooks {' + '.join(g[:2] for g in group)} together", f"{spent:.1f} s",
                               f"<= {seconds} s (classroom profile)", spent <= seconds))
        if profile == "classroom":
            slowest = max(runs, key=lambda r: r.get("seconds", 0))
            course.append(("slowest notebook", f"{slowest.get('seconds', 0):.1f} s ({slowest['notebook']})",
                           f"<= {NOTEBOOK_SECONDS} s (classroom profile)", slowest.get("seconds", 0) <= NOTEBOOK_SECONDS))
        cut = [r["notebook"] for r in runs if r.get("cut_short")]
        course.append(("training runs cut short by a wall-clock guard", ", ".join(cut) or "none", "none", not cut))
        peaks = [(r.get("peak_memory_mb"), r["notebook"]) for r in runs if r.get("peak_memory_mb") is not None]
        if peaks:
            peak, where = max(peaks)
            course.append(("peak memory of any notebook kernel", f"{peak:.0f} MB ({where})",
                           f"< {PEAK_MEMORY_MB} MB", peak < PEAK_MEMORY_MB))
        gpu = [(r["gpu_peak_memory_mb"], r["notebook"]) for r in runs if r.get("gpu_peak_memory_mb") is not None]
        if gpu:
            peak, where = max(gpu)
            course.append(("peak GPU memory of any notebook (torch.cuda.max_memory_allocated)",
                           f"{peak:.0f} MB ({where})", "", None))
    return Summary(runs, checks, status, missing, course)


def _key_figures(checks: list[Check]) -> str:
    """The metrics that have a target (the headline ones), compactly."""
    parts = []
    for c in checks:
        if c.met is None:
            continue
        shown = c.compared or _fmt(c.value)
        parts.append(f"{c.name} {shown} ({'met' if c.met else 'not met'})")
    return "; ".join(parts)


def _met_count(checks: list[Check]) -> str:
    judged = [c for c in checks if c.met is not None]
    return f"{sum(c.met for c in judged)}/{len(judged)}" if judged else "-"


# ------------------------------------------------------------------------------ rendering

def render_markdown(summary: Summary) -> str:
    runs = summary.runs
    lines = ["# Course report", "", f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.", ""]
    if not runs and not summary.missing:
        lines.append("No notebook has recorded metrics yet: run the course first (`make course`).")
    if runs:
        lines += ["| notebook | profile | device | seconds | peak memory (MB) | targets met | key figures |",
                  "|---|---|---|---|---|---|---|"]
        for r in runs:
            failed = " (**failed**)" if summary.status.get(r["notebook"]) == "failed" else ""
            lines.append(f"| {r['notebook']}{failed} | {r['profile']} | {r['device']} | {r['seconds']:.1f} | "
                         f"{r.get('peak_memory_mb', '')} | {_met_count(summary.checks[r['notebook']])} | "
                         f"{_key_figures(summary.checks[r['notebook']])} |")
        lines.append("")
    for item in summary.missing:
        lines += [f"**{item['notebook']}** recorded no metrics in the last course run "
                  f"({item.get('status', '?')}: {item.get('error', '')}).", ""]
    if summary.course:
        lines += ["| course | value | target | met |", "|---|---|---|---|"]
        for what, value, target, met in summary.course:
            lines.append(f"| {what} | {value} | {target} | {_mark(met, '')} |")
        lines.append("")
    for r in runs:
        lines += [f"## {r['notebook']}", "",
                  f"Profile `{r['profile']}` on `{r['device']}`, {r['seconds']:.1f} s"
                  + (f", peak memory {r['peak_memory_mb']} MB" if r.get("peak_memory_mb") is not None else "") + ".", "",
                  "| metric | value | target | met |", "|---|---|---|---|"]
        for c in summary.checks[r["notebook"]]:
            value = _fmt(c.value) + (f" ({c.compared})" if c.compared and isinstance(c.value, dict) else "")
            name = c.name + (" (derived)" if c.derived else "")
            lines.append(f"| {name} | {value} | {c.target} | {_mark(c.met, r['profile'])} |")
        lines.append("")
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.met{color:#11691b;font-weight:600}.notmet{color:#b00020;font-weight:600}
.smoke{color:#8a6d00}code{background:#f5f5f5;padding:0 .2em}"""


def _html_mark(met: bool | None, profile: str) -> str:
    text = _mark(met, profile)
    if met is None:
        return ""
    cls = "met" if met else ("smoke" if profile == "smoke" else "notmet")
    return f'<span class="{cls}">{html.escape(text)}</span>'


def render_html_body(summary: Summary, links: dict | None = None) -> str:
    """The report as an HTML fragment (tables); ``links`` maps notebook -> href (the site uses it)."""
    e = html.escape
    links = links or {}
    out = []
    if not summary.runs and not summary.missing:
        out.append("<p>No notebook has recorded metrics yet: run the course first (<code>make course</code>).</p>")
    if summary.runs:
        out.append("<table><tr><th>notebook</th><th>profile</th><th>device</th><th>seconds</th>"
                   "<th>peak memory (MB)</th><th>targets met</th><th>key figures</th></tr>")
        for r in summary.runs:
            name = r["notebook"]
            cell = f'<a href="{e(links[name])}">{e(name)}</a>' if name in links else e(name)
            if summary.status.get(name) == "failed":
                cell += ' <span class="notmet">(failed)</span>'
            out.append(f"<tr><td>{cell}</td><td>{e(r['profile'])}</td><td>{e(r['device'])}</td>"
                       f"<td>{r['seconds']:.1f}</td><td>{e(str(r.get('peak_memory_mb', '')))}</td>"
                       f"<td>{_met_count(summary.checks[name])}</td><td>{e(_key_figures(summary.checks[name]))}</td></tr>")
        out.append("</table>")
    for item in summary.missing:
        out.append(f"<p><b>{e(item['notebook'])}</b> recorded no metrics in the last course run "
                   f"({e(str(item.get('status', '?')))}: {e(str(item.get('error', '')))}).</p>")
    if summary.course:
        out.append("<table><tr><th>course</th><th>value</th><th>target</th><th>met</th></tr>")
        for what, value, target, met in summary.course:
            out.append(f"<tr><td>{e(what)}</td><td>{e(value)}</td><td>{e(target)}</td><td>{_html_mark(met, '')}</td></tr>")
        out.append("</table>")
    for r in summary.runs:
        name = r["notebook"]
        title = f'<a href="{e(links[name])}">{e(name)}</a>' if name in links else e(name)
        out.append(f"<h2 id=\"{e(name)}\">{title}</h2><p>Profile <code>{e(r['profile'])}</code> on "
                   f"<code>{e(r['device'])}</code>, {r['seconds']:.1f} s.</p>")
        out.append("<table><tr><th>metric</th><th>value</th><th>target</th><th>met</th></tr>")
        for c in summary.checks[name]:
            value = _fmt(c.value) + (f" ({c.compared})" if c.compared and isinstance(c.value, dict) else "")
            out.append(f"<tr><td>{e(c.name)}{' (derived)' if c.derived else ''}</td><td>{e(value)}</td>"
                       f"<td>{e(c.target)}</td><td>{_html_mark(c.met, r['profile'])}</td></tr>")
        out.append("</table>")
    return "\n".join(out)


def html_page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def write_report(directory: Path | None = None, out: Path | None = None, html_out: bool = True,
                 course_run: Path | None = None) -> Path:
    """Gather the metric files into ``build/report.md`` (and ``.html`` beside it); return the ``.md`` path.

    ``directory``: the metrics folder (default ``build/metrics``); ``course_run``: the course-run
    file (default ``build/course_run.json``, used only with the default metrics folder).
    """
    runs = load_metrics(directory)
    run_info = load_course_run(course_run) if (course_run is not None or directory is None) else None
    summary = summarize(runs, run_info)
    out = Path(out) if out is not None else build_dir() / "report.md"
    atomic_write_bytes(out, render_markdown(summary).encode())
    if html_out:
        body = (f"<h1>Course report</h1><p>Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>\n"
                + render_html_body(summary))
        atomic_write_bytes(out.with_suffix(".html"), html_page("Course report", body).encode())
    return out


def start_notebook(notebook: str, seed: int = 0) -> NotebookRun:
    """First cell of every notebook: seed everything, pick profile and device, start the clock, and on
    the CPU ask torch for deterministic algorithms (same profile, same numbers: :func:`course_lib.device.deterministic`).

    Prints one line (profile, device, torch version) and returns the :class:`NotebookRun`.
    """
    import torch

    from .device import autocast_dtype, deterministic, fast_math, seed_everything
    seed_everything(seed)
    run = NotebookRun(notebook)
    deterministic(run.device)
    fast_math(run.device)
    amp = "bf16 autocast" if autocast_dtype(run.device) is not None else "float32"
    amp += ", TF32 matmuls" if run.device.type == "cuda" else ""
    print(f"{notebook} | profile: {run.profile} | device: {run.device} ({amp}) | torch {torch.__version__}")
    return run


if __name__ == "__main__":  # python -m course_lib.report
    print(write_report())
