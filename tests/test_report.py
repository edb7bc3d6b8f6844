"""The course report (Markdown + HTML, targets met / not met) and the static site."""
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_lib.paths import build_dir
from course_lib.profiles import get_profile
from course_lib.report import (TARGETS, NotebookRun, check_metric, load_metrics, notebook_checks, write_report)

PNG_1x1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _write(name, profile, seconds, metrics, peak=900.0):
    path = build_dir() / "metrics" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"notebook": name, "profile": profile, "device": "cpu", "seconds": seconds,
                                "metrics": metrics, "peak_memory_mb": peak}))


def test_finish_writes_the_metrics_contract():
    run = NotebookRun("01_autoencoders", profile=get_profile("smoke"))
    import torch
    run.record(pca16_test_mse=torch.tensor(0.0275), per_digit={"0": 0.5, 1: 1})
    assert run.finish(verbose=False) is None   # a notebook's last cell shows no PosixPath(...)
    path = run.metrics_path
    data = json.loads(path.read_text())
    assert path == build_dir() / "metrics" / "01_autoencoders.json"
    assert set(data) == {"notebook", "profile", "device", "seconds", "metrics", "peak_memory_mb", "cut_short"}
    assert data["cut_short"] == []
    assert data["metrics"] == {"pca16_test_mse": pytest.approx(0.0275), "per_digit": {"0": 0.5, "1": 1}}
    assert (data["notebook"], data["profile"], data["device"]) == ("01_autoencoders", "smoke", "cpu")
    with pytest.raises(TypeError, match="metric values must be numbers or dicts of numbers; got str"):
        run.record(bad="x")
    with pytest.raises(ValueError, match="metric values must be finite; got nan"):
        run.record(bad=float("nan"))


def test_targets_scalar_relative_each_mean_and_derived():
    assert check_metric("vq_test_mse", {"vq_test_mse": 0.004}).met is True
    assert check_metric("vq_test_mse", {"vq_test_mse": 0.006}).met is False
    assert check_metric("vae_train_seconds", {"vae_train_seconds": 45.0}).met is True
    assert check_metric("vae_train_seconds", {"vae_train_seconds": 47.0}).target.startswith("<= 46 ")
    # relative to another metric of the same notebook
    m = {"pca16_test_mse": 0.0275, "ae16_test_mse": 0.0130}
    assert check_metric("ae16_test_mse", m).met is True and check_metric("ae16_test_mse", m).target.startswith("<= 0.01375")
    assert check_metric("ae16_test_mse", {"ae16_test_mse": 0.013}).met is None  # PCA not recorded: no verdict
    # per attribute: each must reach 0.9, the weakest is shown
    c = check_metric("shapes_attribute_accuracy", {"shapes_attribute_accuracy": {"shape": 0.99, "color": 0.95, "size": 0.85}})
    assert (c.met, c.compared, c.target.split(" (")[0]) == (False, "min 0.85", "each >= 0.9")
    assert check_metric("shapes_attribute_accuracy", {"shapes_attribute_accuracy": {"shape": 0.91, "color": 1.0}}).met is True
    # a dict for a scalar target compares the mean (per-prompt accuracies)
    c = check_metric("t2i_digit_accuracy", {"t2i_digit_accuracy": {"0": 1.0, "1": 0.9}})
    assert (c.met, c.compared) == (True, "mean 0.95")
    # ... but the per-digit target holds for every digit
    c = check_metric("t2i_digit_accuracy_per_digit", {"t2i_digit_accuracy_per_digit": {"0": 1.0, "8": 0.8}})
    assert (c.met, c.compared) == (False, "min 0.8")
    # the perplexity fraction is derived when only perplexity and codebook size were recorded
    checks = {c.name: c for c in notebook_checks({"metrics": {"vq_perplexity": 300.0, "vq_codebook_size": 512}})}
    assert checks["vq_perplexity_fraction"].derived and checks["vq_perplexity_fraction"].met is True
    assert checks["vq_perplexity"].met is None
    assert set(TARGETS) >= {"ae16_test_mse", "vae_test_neg_elbo", "vae_test_nll_is", "vq_test_mse",
                            "t2i_digit_accuracy", "i2t_digit_accuracy", "shapes_exact_match", "kv_cache_speedup"}


def test_report_markdown_and_html(tmp_path):
    _write("01_autoencoders", "classroom", 100.0, {"pca16_test_mse": 0.0275, "ae16_test_mse": 0.02})
    _write("05_mixed_sequences", "classroom", 850.0,
           {"shapes_attribute_accuracy": {"shape": 0.97, "color": 0.88}, "shapes_exact_match": 0.91,
            "kv_cache_speedup": 6.5}, peak=3500.0)
    (build_dir() / "course_run.json").write_text(json.dumps({
        "profile": "classroom", "complete": True, "wall_seconds": 990.0,
        "notebooks": [{"notebook": "01_autoencoders", "status": "ok", "error": "", "wall_seconds": 101.0},
                      {"notebook": "03_vqvae", "status": "failed", "error": "ExerciseError: [wrong] codebook",
                       "wall_seconds": 5.0},
                      {"notebook": "05_mixed_sequences", "status": "ok", "error": "", "wall_seconds": 860.0}]}))
    md_path = write_report()
    md = md_path.read_text()
    assert md_path == build_dir() / "report.md"
    assert "| 01_autoencoders | classroom | cpu | 100.0 | 900.0 | 0/1 | ae16_test_mse 0.02 (not met) |" in md
    assert "| ae16_test_mse | 0.02 | <= 0.01375 (conv AE (16-d) at most half of PCA-16's test MSE) | not met |" in md
    assert "| shapes_attribute_accuracy | shape: 0.97, color: 0.88 (min 0.88) | each >= 0.9 (each attribute right) | not met |" in md
    assert "| shapes_exact_match | 0.91 | >= 0.9 (every attribute right on seen combinations) | met |" in md
    assert "| 05_mixed_sequences | classroom | cpu | 850.0 | 3500.0 | 2/3 |" in md
    assert "**03_vqvae** recorded no metrics in the last course run (failed: ExerciseError: [wrong] codebook)." in md
    assert "| whole course, sum of notebook seconds | 950.0 s | <= 1500 s (classroom profile) | met |" in md
    assert "| slowest notebook | 850.0 s (05_mixed_sequences) | <= 360 s (classroom profile) | not met |" in md
    assert "| peak memory of any notebook kernel | 3500 MB (05_mixed_sequences) | < 3072 MB | not met |" in md
    page = (build_dir() / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    assert '<td>shapes_exact_match</td><td>0.91</td>' in page and '<span class="met">met</span>' in page
    assert '<span class="notmet">not met</span>' in page and "03_vqvae" in page


def test_smoke_misses_are_marked_as_not_expected():
    _write("03_vqvae", "smoke", 12.0, {"vq_test_mse": 0.05, "vq_perplexity": 40.0, "vq_codebook_size": 512})
    md = write_report().read_text()
    assert "| vq_test_mse | 0.05 | <= 0.005 (7x7 grid, 512 codes) | not met (smoke: not expected) |" in md
    assert "| vq_perplexity_fraction (derived) | 0.07812 |" in md
    assert "| training runs cut short by a wall-clock guard | none | none | met |" in md
    assert "| whole course, sum of notebook seconds | 12.0 s | <= 300 s (smoke profile) | met |" in md
    assert [r["notebook"] for r in load_metrics()] == ["03_vqvae"]


def test_empty_report_says_what_to_do():
    assert "No notebook has recorded metrics yet: run the course first" in write_report().read_text()


def _executed_notebook():
    image = new_output("display_data", data={"image/png": PNG_1x1, "text/plain": "<Figure size 100x100 with 1 Axes>"})
    widget = new_output("display_data", data={"application/vnd.jupyter.widget-view+json":
                                              {"model_id": "abc", "version_major": 2, "version_minor": 0},
                                              "text/plain": "interactive(children=(IntSlider(value=3),))"})
    cells = [new_markdown_cell("# 01 Autoencoders\nText."),
             new_code_cell("plot()", execution_count=1, outputs=[image]),
             new_code_cell("slider()", execution_count=2, outputs=[widget, image])]
    nb = new_notebook(cells=cells)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                             "version_minor": 0}}
    return nb


def test_site_renders_pages_index_and_widget_fallback(tmp_path):
    from course_lib.site import WIDGET_NOTE, build_site

    executed = tmp_path / "executed"
    executed.mkdir()
    nbformat.write(_executed_notebook(), executed / "01_autoencoders.ipynb")
    _write("01_autoencoders", "smoke", 3.0, {"pca16_test_mse": 0.0275, "ae16_test_mse": 0.01})
    index = build_site(executed)
    assert index == build_dir() / "site" / "index.html"
    text = index.read_text()
    assert '<a href="01_autoencoders.html">01_autoencoders</a>: 01 Autoencoders' in text
    assert '<span class="met">met</span>' in text  # the report table is on the index
    page = (index.parent / "01_autoencoders.html").read_text()
    assert page.count("data:image/png;base64," + PNG_1x1) == 2
    assert WIDGET_NOTE in page
    assert "widget-view+json" not in page and "widget-state+json" not in page and "IntSlider" not in page


def test_site_needs_executed_notebooks(tmp_path):
    from course_lib.site import build_site

    with pytest.raises(FileNotFoundError, match=r"executed_dir should be a folder of executed notebooks \(run `make course`"):
        build_site(tmp_path / "nope")


def test_transformer_notebooks_have_a_joint_budget():
    """Notebooks 05 + 06 (the transformer material) must take at most 8 minutes together (classroom)."""
    _write("05_transformer_from_scratch", "classroom", 300.0, {})
    _write("06_sampling_and_measuring", "classroom", 200.0, {})
    md = write_report(html_out=False).read_text()
    assert "| notebooks 05 + 06 together | 500.0 s | <= 480 s (classroom profile) | not met |" in md
    _write("06_sampling_and_measuring", "classroom", 150.0, {})
    md = write_report(html_out=False).read_text()
    assert "| notebooks 05 + 06 together | 450.0 s | <= 480 s (classroom profile) | met |" in md


def test_gpu_peak_memory_is_reported_when_recorded():
    path = build_dir() / "metrics" / "05_transformer_from_scratch.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"notebook": "05_transformer_from_scratch", "profile": "gpu", "device": "cuda",
                                "seconds": 60.0, "metrics": {}, "peak_memory_mb": 900.0, "gpu_peak_memory_mb": 2048.0}))
    md = write_report(html_out=False).read_text()
    assert "| peak GPU memory of any notebook (torch.cuda.max_memory_allocated) | 2048 MB (05_transformer_from_scratch) |" in md
