"""Shared test setup: unit tests write under a temporary build/data folder, never the network.

The parsed-digits cache (data/cache) is shared: it is rebuildable and saves seconds per test.
"""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    from course_lib.paths import cache_dir
    monkeypatch.setenv("COURSE_CACHE_DIR", str(cache_dir()))
    monkeypatch.setenv("COURSE_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    yield


@pytest.fixture(scope="session")
def digits():
    """The offline digits split, loaded once per session."""
    from course_lib.data import load_digits
    return load_digits(verbose=False)
