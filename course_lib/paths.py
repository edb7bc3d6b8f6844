"""Where the course writes: ``build/`` (executed notebooks, metrics, report, site) and
``data/`` (caches and trained artifacts). Override with ``COURSE_BUILD_DIR`` / ``COURSE_DATA_DIR``."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The course checkout (the folder holding ``course_lib``), else the current directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def build_dir() -> Path:
    path = Path(os.environ.get("COURSE_BUILD_DIR") or repo_root() / "build")
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    path = Path(os.environ.get("COURSE_DATA_DIR") or repo_root() / "data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifacts_dir() -> Path:
    path = data_dir() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Rebuildable caches (parsed datasets). ``COURSE_CACHE_DIR`` overrides ``data/cache``."""
    path = Path(os.environ.get("COURSE_CACHE_DIR") or data_dir() / "cache")
    path.mkdir(parents=True, exist_ok=True)
    return path
