"""A static, browsable rendering of the executed course: read the results without running anything.

``build_site(executed_dir)`` turns every executed notebook in ``executed_dir`` (what
``make course`` leaves in ``build/notebooks/``) into HTML with nbconvert, offline, and writes
``build/site/index.html``: links to each notebook's page and the course report table (targets
met / not met). Interactive widgets cannot work in a static page: each widget output is replaced
by a short note (the notebooks put a static figure beside every widget), and the saved widget
state is dropped, so the pages load no widget JavaScript from the network.

Command line: ``python -m course_lib.site [EXECUTED_DIR]`` (default ``build/notebooks``).
"""
from __future__ import annotations

import copy
import html
import sys
from pathlib import Path

import nbformat

from .paths import build_dir

__all__ = ["build_site", "static_notebook", "WIDGET_MIME", "WIDGET_NOTE"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "[interactive widget: run the notebook in Jupyter to use it; the static figure beside it shows the result]"


def static_notebook(nb):
    """A copy of ``nb`` fit for a static page: widget views become a note, widget state is dropped."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if out.get("output_type") in ("display_data", "execute_result") and WIDGET_MIME in data:
                note = nbformat.v4.new_output("display_data", data={"text/plain": WIDGET_NOTE})
                if not outputs or outputs[-1].get("data", {}).get("text/plain") != WIDGET_NOTE:
                    outputs.append(note)
                continue
            outputs.append(out)
        cell.outputs = outputs
    return nb


def _exporter():
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = False
    return exporter


def build_site(executed_dir=None, out_dir=None) -> Path:
    """Render ``executed_dir/*.ipynb`` to ``out_dir`` (default ``build/site``); return ``index.html``'s path.

    ``executed_dir``: folder of executed notebooks (default ``build/notebooks``). The index links
    every page and shows the report (from ``build/metrics``) with each page linked.
    """
    from .artifacts import atomic_write_bytes
    from .report import html_page, load_course_run, load_metrics, render_html_body, summarize

    executed_dir = Path(executed_dir) if executed_dir is not None else build_dir() / "notebooks"
    out_dir = Path(out_dir) if out_dir is not None else build_dir() / "site"
    if not executed_dir.is_dir():
        raise FileNotFoundError(f"executed_dir should be a folder of executed notebooks (run `make course` "
                                f"first); got {str(executed_dir)!r}, which does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    exporter = _exporter()
    pages = []
    for path in sorted(executed_dir.glob("*.ipynb")):
        nb = static_notebook(nbformat.read(path, as_version=4))
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
        atomic_write_bytes(out_dir / f"{path.stem}.html", body.encode("utf-8"))
        ran = any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
        title = next((c.source.lstrip("# ").splitlines()[0] for c in nb.cells
                      if c.cell_type == "markdown" and c.source.lstrip().startswith("#")), path.stem)
        pages.append((path.stem, f"{path.stem}.html", title, ran))

    e = html.escape
    parts = ["<h1>Multimodal generation from scratch: the executed course</h1>",
             "<p>Every notebook below was run end to end; the pages show its code, figures and measured "
             "numbers as that run produced them. Widgets are replaced by their static figures.</p>"]
    if pages:
        parts.append("<ul>")
        for stem, href, title, ran in pages:
            extra = "" if ran else " <em>(no outputs: not executed)</em>"
            parts.append(f'<li><a href="{e(href)}">{e(stem)}</a>: {e(title)}{extra}</li>')
        parts.append("</ul>")
    else:
        parts.append(f"<p>No executed notebooks in <code>{e(str(executed_dir))}</code>: run <code>make course</code>.</p>")
    parts.append("<h2>Report</h2>")
    summary = summarize(load_metrics(), load_course_run())
    parts.append(render_html_body(summary, links={stem: href for stem, href, _, _ in pages}))
    index = out_dir / "index.html"
    atomic_write_bytes(index, html_page("Course: executed notebooks", "\n".join(parts)).encode("utf-8"))
    return index


if __name__ == "__main__":  # python -m course_lib.site [EXECUTED_DIR]
    try:
        print(build_site(sys.argv[1] if len(sys.argv) > 1 else None))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
