"""Log-mels and Griffin-Lim in torch (course_lib.audio), and the exercise checks of course_lib.checks.audio.

Signals are synthetic harmonic tones (no eSpeak needed), so nothing here skips.
"""
import math

import pytest
import torch

from course_lib import audio
from course_lib.audio import (griffin_lim, griffin_lim_step, hz_to_mel, log_mel, mel_filterbank, mel_to_audio,
                              mel_to_hz, spectral_convergence, stft_magnitude)
from course_lib.checks import ExerciseError
from course_lib.checks.audio import check_griffin_lim_step, check_mel_filterbank


def tone(n=8000, sr=22050, f0=150.0, seed=0):
    """A voiced-like signal: harmonics of a gliding f0, an envelope and a little noise, (n,) float32."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / sr
    phase = 2 * math.pi * (f0 * t + 40 * t ** 2)
    x = sum(torch.sin(h * phase + h) / h for h in range(1, 12)) * torch.hann_window(n, dtype=torch.float64)
    return (0.3 * x + 0.01 * torch.randn(n, generator=g, dtype=torch.float64)).float()


# ----------------------------------------------------------------------------- mel filterbank
def test_mel_scale_round_trip_and_anchor():
    f = torch.tensor([0.0, 700.0, 1000.0, 8000.0], dtype=torch.float64)
    assert torch.allclose(mel_to_hz(hz_to_mel(f)), f)
    assert abs(hz_to_mel(1000.0) - 1000.0) < 0.1  # the HTK scale puts 1000 Hz at ~1000 mel


def test_filterbank_properties():
    n_mels, n_fft, sr, f_min, f_max = 40, 1024, 22050, 50.0, 8000.0
    fb = mel_filterbank(n_mels, n_fft, sr, f_min, f_max).double()
    assert fb.shape == (n_mels, n_fft // 2 + 1) and fb.dtype == torch.float64 and bool((fb >= 0).all())
    bin_hz = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sr / n_fft
    points = mel_to_hz(torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64))
    for m in range(n_mels):
        row = fb[m]
        support = row.gt(0).nonzero().flatten()
        assert bool(row[support.min():support.max() + 1].gt(0).all()), f"filter {m} has a gap"  # one piece
        peak = int(row.argmax())
        assert bool((row[support.min():peak + 1].diff() >= 0).all()) and bool((row[peak:].diff() <= 0).all())
        assert abs(bin_hz[peak] - points[m + 1]) <= sr / n_fft  # peaks at (the bin nearest) its centre
        assert points[m] < bin_hz[support.min()] and bin_hz[support.max()] < points[m + 2]  # inside its edges
        assert 0.5 < row.max() <= 1.0
    # the centres are evenly spaced in mel and widen in Hz
    widths = points[2:] - points[:-2]
    assert bool((widths.diff() > 0).all())
    # covers the range, and between the first and last centres the triangles partition unity
    inside = (bin_hz > points[1]) & (bin_hz < points[-2])
    assert torch.allclose(fb.sum(0)[inside], torch.ones(int(inside.sum()), dtype=torch.float64), atol=1e-6)
    assert bool(fb.sum(0)[(bin_hz > f_min) & (bin_hz < f_max)].gt(0).all())
    assert bool(fb.sum(0)[bin_hz > f_max].eq(0).all()) and bool(fb.sum(0)[bin_hz < f_min].eq(0).all())
    slaney = mel_filterbank(n_mels, n_fft, sr, f_min, f_max, norm="slaney").double()
    areas = (slaney * sr / n_fft).sum(1)  # Riemann sum of each filter's area: ~1 for wide filters
    assert torch.allclose(areas[10:], torch.ones(n_mels - 10, dtype=torch.float64), atol=0.02)


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((0, 512, 16000), {}, ValueError, "n_mels must be >= 1"),
    ((10, 512, 16000, 0.0, 9000.0), {}, ValueError, "f_max must be <= sample_rate / 2 = 8000"),
    ((10, 512, 16000, 4000.0, 3000.0), {}, ValueError, "f_max must be > f_min"),
    ((10, 512.0, 16000), {}, TypeError, "n_fft must be an int"),
    ((128, 256, 22050), {}, ValueError, "n_mels must be small enough that every filter covers a frequency bin"),
    ((10, 512, 16000), dict(norm="area"), ValueError, "norm must be one of"),
])
def test_filterbank_bad_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mel_filterbank(*args, **kwargs)


# ----------------------------------------------------------------------------- log-mel
def test_log_mel_shapes_and_values():
    wave = torch.stack([tone(seed=0), tone(f0=220.0, seed=1)])
    lm = log_mel(wave, n_fft=512, hop=128, n_mels=40)
    assert lm.shape == (2, 40, 1 + 8000 // 128) and lm.dtype == torch.float32
    assert torch.equal(log_mel(wave[1], n_fft=512, hop=128, n_mels=40), lm[1])
    assert lm.min() >= math.log(1e-5) - 1e-6
    silent = log_mel(torch.zeros(1, 4000), n_fft=512, hop=128, n_mels=40)
    assert torch.allclose(silent, torch.full_like(silent, math.log(1e-5)))
    # the loudest band of a ~150-180 Hz tone is its fundamental's: centre below 300 Hz
    centres = mel_to_hz(torch.linspace(0.0, hz_to_mel(8000.0), 42))[1:-1]
    assert centres[int(lm[0].mean(-1).argmax())] < 300


@pytest.mark.parametrize("wave, kwargs, exc, match", [
    (torch.zeros(2, 3, 100), {}, ValueError, r"wave must have shape \(T,\) or \(B, T\)"),
    (torch.zeros(2, 100, dtype=torch.long), {}, TypeError, "wave must be a floating-point tensor"),
    (torch.full((1, 4000), float("nan")), {}, ValueError, "wave must be finite"),
    (torch.zeros(1, 100), {}, ValueError, "wave must be longer than n_fft // 2 = 512"),
    (torch.zeros(1, 4000), dict(hop=0), ValueError, "hop must be >= 1"),
    (torch.zeros(1, 4000), dict(eps=0.0), ValueError, "eps must be > 0"),
])
def test_log_mel_bad_arguments(wave, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        log_mel(wave, **kwargs)


# ----------------------------------------------------------------------------- Griffin-Lim
def test_griffin_lim_converges_and_is_seeded():
    wave = torch.stack([tone(seed=0), tone(f0=220.0, seed=1)])
    n_fft, hop = 512, 128
    mag = stft_magnitude(wave, n_fft, hop)
    sc = {n: spectral_convergence(mag, griffin_lim(mag, n_fft, hop, n, length=wave.shape[1]), n_fft, hop)
          for n in (0, 4, 32)}
    assert sc[0] > 0.4  # a random phase is far off
    assert sc[0] > sc[4] > sc[32], sc  # the error falls with iterations
    assert sc[32] < 0.15, sc  # measured 0.07 on eSpeak speech (n_fft 1024, hop 256), similar here
    plain = [spectral_convergence(mag, griffin_lim(mag, n_fft, hop, n, momentum=0.0), n_fft, hop) for n in (1, 2, 8)]
    assert plain[0] > plain[1] > plain[2]  # the classic algorithm never gets worse
    out = griffin_lim(mag, n_fft, hop, 4, length=wave.shape[1])
    assert out.shape == wave.shape and torch.equal(out, griffin_lim(mag, n_fft, hop, 4, length=wave.shape[1]))
    assert griffin_lim(mag[0], n_fft, hop, 2).shape == (hop * (mag.shape[-1] - 1),)


def test_griffin_lim_without_momentum_iterates_the_step():
    mag = stft_magnitude(tone(n=3000), 256, 64)
    g = torch.Generator().manual_seed(0)
    angles = torch.exp(2j * math.pi * torch.rand(mag.shape, generator=g))
    est = mag * angles
    for _ in range(3):
        est = griffin_lim_step(mag, est, 256, 64)
    expected = torch.istft(est, 256, 64, window=torch.hann_window(256))
    assert torch.allclose(griffin_lim(mag, 256, 64, 3, momentum=0.0, seed=0), expected, atol=1e-5)


def test_mel_to_audio_round_trip():
    wave = tone(n=8000)[None]
    lm = log_mel(wave, n_fft=512, hop=128, n_mels=64)
    back = mel_to_audio(lm, n_fft=512, hop=128, n_iter=32)
    assert back.shape == (1, 128 * (lm.shape[-1] - 1))
    err = (log_mel(back, n_fft=512, hop=128, n_mels=64)[..., :lm.shape[-1]] - lm).abs().mean()
    spread = (lm - lm.mean()).abs().mean()
    assert err < 0.2 * spread, (err, spread)  # measured ~0.1x on eSpeak speech


def test_griffin_lim_bad_arguments():
    mag = stft_magnitude(tone(n=3000), 256, 64)
    with pytest.raises(ValueError, match="magnitude must have n_fft // 2 \\+ 1 = 257 frequency rows"):
        griffin_lim(mag, 512, 64)
    with pytest.raises(ValueError, match="magnitude must be >= 0"):
        griffin_lim(torch.log(mag + 1e-5), 256, 64)
    with pytest.raises(TypeError, match="n_iter must be an int"):
        griffin_lim(mag, 256, 64, 3.0)
    with pytest.raises(ValueError, match="momentum must be <= 1"):
        griffin_lim(mag, 256, 64, momentum=1.5)
    with pytest.raises(ValueError, match="log_mel_spec must have shape"):
        mel_to_audio(torch.zeros(80))


# ----------------------------------------------------------------------------- the exercise checks
def wrong(check, fn, *, match):
    with pytest.raises(ExerciseError, match=match) as info:
        check(fn)
    assert info.value.status == "wrong", str(info.value)
    return str(info.value)


def fb_loops(n_mels, n_fft, sample_rate, f_min, f_max):
    """A right answer written differently: Python loops, natural logs with the 1127 constant."""
    mel = lambda f: 1127.0 * math.log(1 + f / 700.0)
    hz = lambda m: 700.0 * (math.exp(m / 1127.0) - 1)
    lo, hi = mel(f_min), mel(f_max)
    pts = [hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    fb = torch.zeros(n_mels, n_fft // 2 + 1)
    for m in range(n_mels):
        for k in range(n_fft // 2 + 1):
            f = k * sample_rate / n_fft
            if pts[m] < f <= pts[m + 1]:
                fb[m, k] = (f - pts[m]) / (pts[m + 1] - pts[m])
            elif pts[m + 1] < f < pts[m + 2]:
                fb[m, k] = (pts[m + 2] - f) / (pts[m + 2] - pts[m + 1])
    return fb


def _fb(n_mels, n_fft, sr, f_min, f_max, *, points=None, bins=None, norm=None):
    mel = lambda f: 2595 * torch.log10(1 + f / 700)
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)
    if points is None:
        points = hz(torch.linspace(mel(torch.tensor(f_min)), mel(torch.tensor(f_max)), n_mels + 2))
    if bins is None:
        bins = torch.linspace(0, sr / 2, n_fft // 2 + 1)  # equals k * sr / n_fft
    left, mid, right = points[:-2, None], points[1:-1, None], points[2:, None]
    fb = torch.clamp(torch.minimum((bins - left) / (mid - left), (right - bins) / (right - mid)), min=0)
    if norm == "area":
        fb = fb * 2 / (right - left)
    return fb


def test_check_mel_filterbank_accepts_right_answers(capsys):
    assert check_mel_filterbank(fb_loops)
    assert check_mel_filterbank(_fb)
    assert check_mel_filterbank(lambda *a: mel_filterbank(*a))
    assert "[ok]" in capsys.readouterr().out


def test_check_mel_filterbank_names_the_mistake():
    wrong(check_mel_filterbank, lambda n, nf, sr, lo, hi: _fb(n, nf, sr, lo, hi,
                                                              points=torch.linspace(lo, hi, n + 2)),
          match="evenly spaced in Hz, not in mel")

    def mel_as_hz(n, nf, sr, lo, hi):
        mel = lambda f: 2595 * math.log10(1 + f / 700)
        return _fb(n, nf, sr, lo, hi, points=torch.linspace(mel(lo), mel(hi), n + 2))
    wrong(check_mel_filterbank, mel_as_hz, match="used as frequencies in Hz")

    def ln_forward(n, nf, sr, lo, hi):
        mel = lambda f: 2595 * math.log(1 + f / 700)  # natural log with 2595
        hz = lambda m: 700 * (10 ** (m / 2595) - 1)
        return _fb(n, nf, sr, lo, hi, points=hz(torch.linspace(mel(lo), mel(hi), n + 2, dtype=torch.float64)).float())
    wrong(check_mel_filterbank, ln_forward, match="not inverses.*natural log")

    def exp_inverse(n, nf, sr, lo, hi):
        mel = lambda f: 2595 * math.log10(1 + f / 700)
        hz = lambda m: 700 * (torch.exp(m / 2595) - 1)
        return _fb(n, nf, sr, lo, hi, points=hz(torch.linspace(mel(lo), mel(hi), n + 2)))
    wrong(check_mel_filterbank, exp_inverse, match="not inverses.*exp")
    wrong(check_mel_filterbank, lambda *a: _fb(*a, norm="area"), match="area-normalised")
    wrong(check_mel_filterbank, lambda *a: _fb(*a) / _fb(*a).amax(1, keepdim=True), match="largest value is exactly 1")
    wrong(check_mel_filterbank, lambda n, nf, sr, lo, hi: _fb(n, nf, sr, lo, hi,
                                                              bins=torch.linspace(0, sr, nf // 2 + 1)),
          match="twice as far apart")
    wrong(check_mel_filterbank, lambda n, nf, sr, lo, hi: _fb(n, nf, sr, lo, hi,
                                                              bins=torch.arange(nf // 2 + 1) * sr / (nf // 2 + 1)),
          match=r"k \* sample_rate / \(n_fft // 2 \+ 1\)")
    wrong(check_mel_filterbank, lambda *a: _fb(*a).T, match="the transpose")
    wrong(check_mel_filterbank, lambda n, nf, sr, lo, hi: torch.zeros(n, nf), match="n_fft // 2 \\+ 1")


def step_polar(magnitude, estimate, n_fft, hop):
    """A right answer written differently: through angles and torch.polar, explicit length."""
    w = torch.hann_window(n_fft)
    x = torch.istft(estimate, n_fft, hop, window=w, length=hop * (estimate.shape[-1] - 1))
    X = torch.stft(x, n_fft, hop, window=w, return_complex=True)
    return torch.polar(magnitude, torch.angle(X))


def test_check_griffin_lim_step():
    assert check_griffin_lim_step(step_polar)
    assert check_griffin_lim_step(griffin_lim_step)

    def parts(magnitude, estimate, n_fft, hop):
        w = torch.hann_window(n_fft)
        return torch.stft(torch.istft(estimate, n_fft, hop, window=w), n_fft, hop, window=w, return_complex=True)
    wrong(check_griffin_lim_step, parts, match="keeps the magnitude of the re-analysed estimate")
    wrong(check_griffin_lim_step, lambda m, e, n, h: m * parts(m, e, n, h), match="not by its phase: divide X by")
    wrong(check_griffin_lim_step, lambda m, e, n, h: e, match="returned the estimate it was given")
    wrong(check_griffin_lim_step, lambda m, e, n, h: m * torch.angle(parts(m, e, n, h)), match="real tensor")

    def no_window(magnitude, estimate, n_fft, hop):
        w = torch.ones(n_fft)
        X = torch.stft(torch.istft(estimate, n_fft, hop, window=w), n_fft, hop, window=w, return_complex=True)
        return magnitude * X / X.abs()
    wrong(check_griffin_lim_step, no_window, match="no window")


def test_a_linear_filterbank_is_caught():
    """The brief's 'wrong filterbank' case: linear spacing is rejected by the learner's check and visibly
    fails the property that mel filters widen with frequency."""
    linear = lambda n, nf, sr, lo, hi: _fb(n, nf, sr, lo, hi, points=torch.linspace(lo, hi, n + 2))
    msg = wrong(check_mel_filterbank, linear, match="Hz/mel confusion")
    assert msg.startswith("[wrong] a triangular mel filterbank: for n_mels=10")
    widths = linear(10, 256, 8000, 0.0, 4000.0).gt(0).sum(1)
    assert int(widths.max() - widths.min()) <= 1  # every filter equally wide: not a mel filterbank
