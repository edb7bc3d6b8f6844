"""A real client: JupyterLab in headless Chromium runs notebooks like a learner would.

Starts ``jupyter lab`` on 127.0.0.1 (a free port, a token, no browser) in a temporary folder that
holds a copy of the notebook, opens it in Debian's Chromium driven by Playwright, runs all cells
from the Run menu, waits for every cell to finish, saves, and checks: no error output (in the
saved file) and the figures rendered (``img`` elements in the output area, with pixels). Screenshots
(the end of the notebook, and the first figure) and the timings go to ``build/browser/``. The server is always shut down.
A second test runs notebook 06 and drives its caption widget: type a caption, press draw, see the
image; type an unknown word, see the tokenizer's message.

Needs the ``playwright`` Python package and ``/usr/bin/chromium`` (Debian's ``chromium``); skips
with the reason when either is missing. ``make test`` installs both (Chromium through apt, as root).
Playwright's own browser downloads are never used.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "build" / "browser"

pytestmark = pytest.mark.slow


def _notebook() -> Path:
    """Notebook 00, or the one named by COURSE_BROWSER_NOTEBOOK (a path), or the first notebook."""
    if os.environ.get("COURSE_BROWSER_NOTEBOOK"):
        return Path(os.environ["COURSE_BROWSER_NOTEBOOK"]).resolve()
    preferred = ROOT / "notebooks" / "00_setup_and_data.ipynb"
    if preferred.exists():
        return preferred
    others = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not others:
        pytest.skip("no notebook in notebooks/ to open")
    return others[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def _settings(folder: Path) -> None:
    """User settings: render every cell (no windowing) and no news/update checks (offline)."""
    files = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
             "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                 {"fetchNews": "false", "checkForUpdates": False}}
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


class Lab:
    """A JupyterLab server in ``root`` for the duration of a ``with`` block."""

    def __init__(self, root: Path, work: Path):
        self.root, self.work = root, work
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def __enter__(self):
        _settings(self.work / "settings")
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
        env.update(COURSE_PROFILE="smoke", TQDM_DISABLE="1", COURSE_BUILD_DIR=str(self.work / "build"),
                   JUPYTERLAB_SETTINGS_DIR=str(self.work / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.work / "workspaces"),
                   JUPYTER_RUNTIME_DIR=str(self.work / "runtime"))
        self.log = open(self.work / "jupyterlab.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
             "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly",
             *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
            cwd=self.root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if _get(f"{self.url}/api/status?token={self.token}")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"jupyter lab did not answer within 90 s: {self.log_tail()}")

    def log_tail(self) -> str:
        self.log.flush()
        return (self.work / "jupyterlab.log").read_text(errors="replace")[-3000:]

    def __exit__(self, *exc):
        if self.proc is None or self.proc.poll() is not None:
            self.log.close()
            return
        try:  # the polite way: the server stops its kernels and exits
            request = urllib.request.Request(f"{self.url}/api/shutdown?token={self.token}", method="POST")
            urllib.request.urlopen(request, timeout=5).close()
            self.proc.wait(timeout=20)
        except Exception:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)  # our own session: the server and its kernels
                    self.proc.wait(timeout=10)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
        self.log.close()


def accept_dialogs(page) -> int:
    """Accept any open dialog (e.g. "Select Kernel" for a notebook without kernelspec metadata)."""
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    if accept.count():
        accept.first.click()
        return 1
    return 0


def wait_for_kernel(page, timeout: float) -> int:
    """Wait until the notebook has a kernel and it is idle; return how many dialogs were accepted."""
    state_js = ("() => [[...document.querySelectorAll('.jp-NotebookPanel .jp-KernelName')].map(e => e.textContent.trim()),"
                " [...document.querySelectorAll('.jp-Notebook-ExecutionIndicator')].map(e => e.dataset.status)]")
    deadline, dialogs, state = time.monotonic() + timeout, 0, None
    while time.monotonic() < deadline:
        dialogs += accept_dialogs(page)
        state = page.evaluate(state_js)
        names, status = state
        if names and "No Kernel" not in names and status == ["idle"]:
            return dialogs
        page.wait_for_timeout(500)
    raise AssertionError(f"the kernel did not start within {timeout} s (kernel name, status: {state})")


def _need_browser():
    pw = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                             "(`make test` installs it)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (`make test` does it when run as root)")
    return pw


def _run_all(page, n_code: int, shot: Path, timeout: float = 300) -> list[str]:
    """Run every cell from the Run menu and wait until all ran (or run-all stopped at an error)."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator("li.lm-Menu-item[data-command='runmenu:run-all']").click()
    prompts_js = ("() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]"
                  ".map(e => e.textContent.trim())")
    deadline, prompts, settled = time.monotonic() + timeout, [], 0
    while time.monotonic() < deadline:
        accept_dialogs(page)
        prompts = page.evaluate(prompts_js)
        if len(prompts) == n_code and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
            break
        # "Run all" stops at an error: nothing queued, kernel idle for a few polls -> done
        idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0
        ran = any(re.fullmatch(r"\[\d+\]:", p) for p in prompts)
        settled = settled + 1 if idle and ran and "[*]:" not in prompts else 0
        if settled >= 6:
            break
        page.wait_for_timeout(500)
    else:
        page.screenshot(path=str(shot), full_page=True)
        pytest.fail(f"cells did not all finish within {timeout:.0f} s; prompts: {prompts}")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    return prompts


def _save(page, path: Path, prompts: list[str]):
    """Save from the page (Ctrl+S) and return the saved notebook once it shows the executed cells."""
    page.locator(".jp-NotebookPanel .jp-Notebook").first.click()  # focus, then save
    page.keyboard.press("Control+s")
    saved, deadline = None, time.monotonic() + 30
    while time.monotonic() < deadline:
        saved = nbformat.read(path, as_version=4)
        if sum(1 for c in saved.cells if c.cell_type == "code" and c.execution_count) == \
                sum(bool(re.fullmatch(r"\[\d+\]:", p)) for p in prompts):
            break
        page.wait_for_timeout(500)
    return saved


def _errors(saved) -> list:
    return [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(saved.cells) if c.cell_type == "code"
            for o in c.outputs if o.output_type == "error"]


def test_jupyterlab_runs_notebook_00_in_chromium(tmp_path):
    pw = _need_browser()
    source = _notebook()
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(source, root / source.name)
    n_code = sum(c.cell_type == "code" for c in nbformat.read(source, as_version=4).cells)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{source.stem}.png"
    timings = {}

    t0 = time.perf_counter()
    with Lab(root, tmp_path) as lab:
        timings["server_start_s"] = time.perf_counter() - t0
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t1 = time.perf_counter()
                page.goto(f"{lab.url}/lab/tree/{source.name}?token={lab.token}", wait_until="domcontentloaded")
                page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=120_000)
                dialogs = wait_for_kernel(page, timeout=120)
                timings["open_notebook_s"] = time.perf_counter() - t1

                t2 = time.perf_counter()
                prompts = _run_all(page, n_code, shot)
                timings["run_all_s"] = time.perf_counter() - t2

                images = page.evaluate("() => [...document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output img')]"
                                       ".map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
                page.screenshot(path=str(shot), full_page=True)
                if images:  # a second picture with the first figure in view
                    page.locator(".jp-NotebookPanel .jp-OutputArea-output img").first.scroll_into_view_if_needed()
                    page.screenshot(path=str(SHOTS / f"{source.stem}_figure.png"))
                saved = _save(page, root / source.name, prompts)
            finally:
                browser.close()
    timings["total_s"] = time.perf_counter() - t0
    timings["dialogs_accepted"] = dialogs
    (SHOTS / f"{source.stem}_timings.json").write_text(json.dumps({k: round(v, 1) for k, v in timings.items()}))
    print(f"\nbrowser test timings ({source.name}): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))

    assert lab.proc.poll() is not None, "the JupyterLab server is still running"
    errors = _errors(saved)
    assert not errors, f"error outputs in the browser run: {errors}"
    assert sum(1 for c in saved.cells if c.cell_type == "code" and c.execution_count) == n_code, \
        "the saved notebook does not show every code cell executed"
    pngs = sum("image/png" in o.get("data", {}) for c in saved.cells if c.cell_type == "code" for o in c.outputs)
    assert pngs >= 1, "notebook produced no figures"
    assert len(images) >= pngs and all(done and w > 0 and h > 0 for done, w, h in images), \
        f"figures did not render in the page: {len(images)} img elements for {pngs} PNG outputs: {images}"
    assert shot.stat().st_size > 10_000
    last = [c for c in saved.cells if c.cell_type == "code"][-1]
    shown = "".join(str(o.get("data", {}).get("text/plain", "")) for o in last.outputs)
    assert "PosixPath" not in shown, f"the last cell echoes a path: {shown!r}"


def test_caption_widget_of_notebook_06_draws_and_explains_unknown_words(tmp_path):
    """Notebook 06 (smoke) in JupyterLab: type a caption in the widget, press draw, an image appears in
    the widget's output; a caption with an unknown word shows the tokenizer's message, no traceback."""
    pw = _need_browser()
    source = ROOT / "notebooks" / "06_sampling_and_measuring.ipynb"
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(source, root / source.name)
    n_code = sum(c.cell_type == "code" for c in nbformat.read(source, as_version=4).cells)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with Lab(root, tmp_path) as lab:
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{lab.url}/lab/tree/{source.name}?token={lab.token}", wait_until="domcontentloaded")
                page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=120_000)
                wait_for_kernel(page, timeout=120)
                _run_all(page, n_code, SHOTS / "06_widget_failed.png", timeout=600)

                box = page.locator(".widget-text input").first
                box.wait_for(timeout=30_000)
                output = page.locator(".widget-output").first
                draw = page.locator("button.jupyter-button", has_text="draw").first

                box.scroll_into_view_if_needed()
                box.fill("a handwritten seven")
                draw.click()
                output.locator("img").first.wait_for(timeout=60_000)
                size = output.locator("img").first.evaluate("i => [i.complete, i.naturalWidth, i.naturalHeight]")
                output.scroll_into_view_if_needed()
                page.screenshot(path=str(SHOTS / "06_widget_draw.png"))

                box.fill("a handwriten seven")
                draw.click()
                message = output.get_by_text("unknown word")
                message.first.wait_for(timeout=60_000)
                text = output.inner_text()
                page.screenshot(path=str(SHOTS / "06_widget_unknown_word.png"))
            finally:
                browser.close()
    assert size[0] and size[1] > 0 and size[2] > 0, f"the drawn image did not render: {size}"
    assert "unknown word 'handwriten'" in text and "Did you mean 'handwritten'?" in text, text
    # the callback clears the output first, so only the message is left: no traceback, no stale image
    assert text.strip().startswith("ValueError: unknown word") and "Traceback" not in text, text
