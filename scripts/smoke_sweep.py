"""Prove that the smoke checks hold on any CPU: run notebooks in the smoke profile with 1 and 2 threads
(different reduction orders, a stand-in for another processor) and several seeds (``COURSE_SEED``).

Each (threads, seed) run gets its own build and data folders under ``build/sweep/`` (artifacts are
trained for that seed, nothing is shared), executes the notebooks with ``scripts/run_course.py``, and
the sweep prints one line per notebook and run: ok/failed and the line each check cell printed
starting with ``read by the checks:`` (the numbers the checks compare with their thresholds).

Usage: python scripts/smoke_sweep.py [notebook stems ...] [--threads 1 2] [--seeds 0 1 2]
Exit status 1 when any run failed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checks_read(executed: Path) -> list[str]:
    """The 'read by the checks: ...' lines an executed notebook printed."""
    if not executed.exists():
        return []
    lines = []
    for cell in json.loads(executed.read_text()).get("cells", []):
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            lines += [ln.strip() for ln in text.splitlines() if ln.strip().startswith("read by the checks:")]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("notebooks", nargs="*", help="notebook stems (default: all)")
    args = parser.parse_args(argv)
    failed = False
    for threads in args.threads:
        for seed in args.seeds:
            run_dir = ROOT / "build" / "sweep" / f"threads{threads}_seed{seed}"
            env = dict(os.environ, COURSE_PROFILE="smoke", COURSE_SEED=str(seed), OMP_NUM_THREADS=str(threads),
                       MKL_NUM_THREADS=str(threads), COURSE_BUILD_DIR=str(run_dir / "build"),
                       COURSE_DATA_DIR=str(run_dir / "data"), TQDM_DISABLE="1")
            print(f"== threads {threads}, COURSE_SEED {seed}", flush=True)
            subprocess.run([sys.executable, str(ROOT / "scripts" / "run_course.py"), "--profile", "smoke", "--no-site",
                            *args.notebooks], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
            course = json.loads((run_dir / "build" / "course_run.json").read_text())
            for item in course["notebooks"]:
                failed |= item["status"] != "ok"
                read = checks_read(run_dir / "build" / "notebooks" / f"{item['notebook']}.ipynb")
                detail = item["error"] if item["status"] != "ok" else " | ".join(read) or "(no 'read by the checks' line)"
                print(f"   {item['notebook']:<30} {item['status']:<6} {item['wall_seconds']:6.1f} s  {detail}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
