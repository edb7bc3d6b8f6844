"""Shared test setup: unit tests write under a temporary build/data folder, never the network.

The parsed-digits cache (data/cache) is shared: it is rebuildable and saves seconds per test.
"""
import os
import sys

import pytest
import torch

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


HOST_READS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "cpu")


@pytest.fixture
def as_on_a_gpu(monkeypatch):
    """Make the CPU behave as a GPU without strict checks (``reads_values`` -> False in every module
    that asks) and record each read of a tensor's value made from course_lib's code other than
    ``train.py`` (whose read-backs every ``sync_every`` steps are by design). Returns the list of
    reads: (method, file, line)."""
    import course_lib.validate as validate
    import course_lib.vqa  # noqa: F401  (loads the modules that ask, so each is patched below)
    original = validate.reads_values
    for name, module in list(sys.modules.items()):
        if name.startswith("course_lib") and getattr(module, "reads_values", None) is original:
            monkeypatch.setattr(module, "reads_values", lambda t: False)
    reads = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            frame = sys._getframe(1)
            caller = frame.f_code.co_filename.replace("\\", "/")
            if "/course_lib/" in caller and not caller.endswith("/course_lib/train.py"):
                reads.append((_name, caller.rsplit("/course_lib/", 1)[-1], frame.f_lineno))
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, spy)
    return reads
