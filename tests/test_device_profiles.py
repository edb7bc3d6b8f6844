import pytest
import torch

from course_lib import environment_report, get_profile, pick_device, seed_everything
from course_lib.device import autocast
from course_lib.profiles import Profile


def test_pick_device_default_and_override(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert pick_device().type == expected
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert pick_device().type == "cpu"
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match=r"COURSE_DEVICE must be one of \['cuda', 'mps', 'cpu'\]; got 'tpu'"):
        pick_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown on CPU-only machines")
def test_pick_device_missing_cuda_is_clear():
    with pytest.raises(RuntimeError, match="no CUDA device is available"):
        pick_device("cuda")


def test_autocast_only_on_cuda():
    with autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_seed_everything_is_deterministic():
    seed_everything(3)
    a = torch.randn(5)
    g = seed_everything(3)
    b = torch.randn(5)
    assert torch.equal(a, b)
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="seed must be >= 0"):
        seed_everything(-1)


def test_environment_report_has_versions():
    report = environment_report(torch.device("cpu"))
    for key in ("python", "torch", "device", "cpu_threads", "datasets", "mixed_precision"):
        assert key in report
    assert report["torch"] == torch.__version__
    assert report["mixed_precision"].startswith("off")


def test_profiles(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    auto = get_profile()
    assert auto.requested == "auto"
    assert auto.name == ("gpu" if torch.cuda.is_available() else "classroom")
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert get_profile().name == "smoke" and get_profile().is_smoke
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"COURSE_PROFILE must be one of \['auto', 'smoke', 'classroom', 'gpu'\]; got 'fast'"):
        get_profile()
    with pytest.raises(ValueError, match=r"name must be one of"):
        get_profile("huge")


def test_profile_choose_merges_gpu_overrides():
    kw = dict(smoke={"steps": 1}, classroom={"steps": 100, "width": 32}, gpu={"steps": 1000})
    assert Profile("smoke").choose(**kw) == {"steps": 1}
    assert Profile("classroom").choose(**kw) == {"steps": 100, "width": 32}
    assert Profile("gpu").choose(**kw) == {"steps": 1000, "width": 32}
    assert Profile("gpu").choose(smoke=1, classroom=2) == 2


def test_get_profile_passes_a_profile_through_and_rejects_other_types():
    p = Profile("smoke")
    assert get_profile(p) is p
    with pytest.raises(TypeError, match="profile must be a Profile, a profile name or None; got int"):
        get_profile(3)
