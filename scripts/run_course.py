"""Execute every notebook in order, save the executed copies under build/notebooks/, and write
build/report.md (+ report.html) from the metrics each notebook recorded, then the static site
build/site/index.html.

Each notebook's old metrics file is removed before it runs, so a notebook that fails cannot be
reported with numbers from an earlier run. build/course_run.json records what this run did
(profile, per-notebook status and wall seconds, whole-course wall seconds).

Usage: python scripts/run_course.py [--profile auto|smoke|classroom|gpu] [notebook stems ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from jupyter_client.manager import KernelManager
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]


def kernel_manager(socket_dir: str) -> KernelManager:
    """A python3 kernel that talks over local sockets (IPC) where the OS has them: no TCP ports open
    and no "Kernel is running over TCP without encryption" warning per notebook. TCP on Windows."""
    if os.name == "nt":
        return KernelManager(kernel_name="python3")
    return KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(socket_dir, "kernel"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=os.environ.get("COURSE_PROFILE", "auto"),
                        choices=["auto", "smoke", "classroom", "gpu"])
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    parser.add_argument("--no-site", action="store_true", help="skip the static HTML site")
    parser.add_argument("notebooks", nargs="*", help="notebook stems to run (default: all, in order)")
    args = parser.parse_args(argv)
    os.environ["COURSE_PROFILE"] = args.profile
    os.environ.setdefault("TQDM_DISABLE", "1")

    sys.path.insert(0, str(ROOT))
    from course_lib.paths import build_dir
    from course_lib.artifacts import atomic_write_json
    from course_lib.report import write_report

    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        known = {p.stem: p for p in paths}
        unknown = [n for n in args.notebooks if n not in known]
        if unknown:
            parser.error(f"unknown notebook(s) {unknown}; choose from {sorted(known)}")
        paths = [known[n] for n in args.notebooks]
    out_dir = build_dir() / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    # metrics of notebooks the course no longer has (renamed or split) would haunt the report
    course = {p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
    for stale in (build_dir() / "metrics").glob("*.json"):
        if stale.stem not in course:
            print(f"removing {stale.name}: no notebook of that name in the course any more")
            stale.unlink()
    failures, start, done = [], time.perf_counter(), []
    socket_dir = tempfile.TemporaryDirectory(prefix="course-kernels-")
    for path in paths:
        t0 = time.perf_counter()
        print(f"==> {path.name} (profile {args.profile})", flush=True)
        (build_dir() / "metrics" / f"{path.stem}.json").unlink(missing_ok=True)
        nb = nbformat.read(path, as_version=4)
        km = kernel_manager(socket_dir.name)
        client = NotebookClient(nb, km=km, timeout=args.timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        status, error = "ok", ""
        try:
            client.execute()
        except CellExecutionError as err:
            status, error = "failed", (str(err).strip().splitlines() or [type(err).__name__])[-1]
        except Exception as err:  # a dead kernel, a timeout: report it and go on with the next notebook
            status, error = "failed", f"{type(err).__name__}: {err}"
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
        if status == "failed":
            failures.append(path.name)
            print(f"    FAILED: {error}", flush=True)
        nbformat.write(nb, out_dir / path.name)
        seconds = time.perf_counter() - t0
        done.append({"notebook": path.stem, "status": status, "error": error, "wall_seconds": round(seconds, 2)})
        print(f"    {seconds:.1f} s -> {out_dir / path.name}", flush=True)
        atomic_write_json(build_dir() / "course_run.json",
                          {"profile": args.profile, "notebooks": done, "complete": False,
                           "wall_seconds": round(time.perf_counter() - start, 2)})
    atomic_write_json(build_dir() / "course_run.json",
                      {"profile": args.profile, "notebooks": done, "complete": True,
                       "wall_seconds": round(time.perf_counter() - start, 2)})
    report = write_report()
    print(f"\nreport: {report}\nwhole course: {time.perf_counter() - start:.1f} s")
    if not args.no_site:
        from course_lib.site import build_site  # the static HTML edition of the executed notebooks
        print(f"site: {build_site(out_dir)}")
    if failures:
        print(f"failed notebooks: {failures}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
