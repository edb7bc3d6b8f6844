"""Checks for the exercises of the speech notebook: the mel filterbank and one Griffin-Lim iteration.

Each check runs the learner's function on small cases, compares it with :mod:`course_lib.audio` and,
when it differs, builds the classic wrong versions (centres evenly spaced in Hz, ``ln`` and ``log10``
mixed up, the wrong normalisation, the wrong bin frequencies; the estimate's magnitude kept, the phase
not normalised, the old phase kept, no window) to say which mistake it is.

The exercises, as the notebook states them:

* ``mel_filterbank(n_mels, n_fft, sample_rate, f_min, f_max)`` -> ``(n_mels, n_fft // 2 + 1)``: HTK
  mel scale ``2595 * log10(1 + f / 700)``, ``n_mels + 2`` points evenly spaced in mel, triangles of
  height 1 at their centre, rfft bin k at ``k * sample_rate / n_fft`` Hz.
* ``griffin_lim_step(magnitude, estimate, n_fft, hop)`` -> the next complex estimate: ``istft`` and
  ``stft`` with ``torch.hann_window(n_fft)``, then the target magnitude times the unit phase ``X / |X|``.
"""
from __future__ import annotations

import math

import torch

from . import exercise_check, expect, expect_shape
from ..audio import _triangles, griffin_lim_step, mel_filterbank, stft_magnitude

__all__ = ["check_mel_filterbank", "check_griffin_lim_step"]


def _close(a, b, atol: float = 1e-4) -> bool:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False
    if a.is_complex() != b.is_complex():
        return False
    return bool(torch.allclose(a.detach().to(b.dtype), b, atol=atol, rtol=1e-3))


# ----------------------------------------------------------------------------- 1. the mel filterbank
_LOG10 = (lambda f: 2595.0 * torch.log10(1 + f / 700.0), lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1))


def _variant(n_mels, n_fft, sr, f_min, f_max, *, to_mel=_LOG10[0], to_hz=_LOG10[1], spacing="mel",
             bin_hz=None, norm=None) -> torch.Tensor:
    """The filterbank built one way or another (float64), for recognising mistakes."""
    f_lo, f_hi = torch.tensor(float(f_min), dtype=torch.float64), torch.tensor(float(f_max), dtype=torch.float64)
    n_freqs = n_fft // 2 + 1
    if bin_hz is None:
        bin_hz = torch.arange(n_freqs, dtype=torch.float64) * sr / n_fft
    if spacing == "mel":
        points = to_hz(torch.linspace(float(to_mel(f_lo)), float(to_mel(f_hi)), n_mels + 2, dtype=torch.float64))
    elif spacing == "hz":
        points = torch.linspace(f_min, f_max, n_mels + 2, dtype=torch.float64)
    else:  # "mel-as-hz": the mel values used as frequencies
        points = torch.linspace(float(to_mel(f_lo)), float(to_mel(f_hi)), n_mels + 2, dtype=torch.float64)
    fb = _triangles(points, bin_hz)
    if norm == "slaney":
        fb = fb * (2.0 / (points[2:] - points[:-2]))[:, None]
    elif norm == "max":
        fb = fb / fb.amax(1, keepdim=True).clamp(min=1e-12)
    elif norm == "sum":
        fb = fb / fb.sum(1, keepdim=True).clamp(min=1e-12)
    return fb


_FB_CASES = ((10, 256, 8000, 0.0, 4000.0), (24, 512, 16000, 100.0, 7000.0))


@exercise_check("a triangular mel filterbank")
def check_mel_filterbank(mel_filterbank_fn) -> str:
    """mel_filterbank_fn(n_mels, n_fft, sample_rate, f_min, f_max) -> (n_mels, n_fft // 2 + 1)."""
    for n_mels, n_fft, sr, f_min, f_max in _FB_CASES:
        case = f"n_mels={n_mels}, n_fft={n_fft}, sample_rate={sr}, f_min={f_min:g}, f_max={f_max:g}"
        got = mel_filterbank_fn(n_mels, n_fft, sr, f_min, f_max)
        n_freqs = n_fft // 2 + 1
        expect(isinstance(got, torch.Tensor), f"for {case} your function returned a {type(got).__name__}; return a "
                                              f"torch.Tensor of shape ({n_mels}, {n_freqs})")
        shape = tuple(got.shape)
        if shape == (n_freqs, n_mels):
            expect(False, f"for {case} you returned shape {shape}: the transpose. One ROW per filter, one column per "
                          f"frequency bin: ({n_mels}, {n_freqs}), so that fb @ magnitude gives the mel spectrogram")
        if shape in ((n_mels, n_fft), (n_mels, n_fft // 2)):
            expect(False, f"for {case} you returned {shape[1]} columns: an rfft of n_fft={n_fft} samples has "
                          f"n_fft // 2 + 1 = {n_freqs} frequency bins (0 Hz to the Nyquist frequency, both included)")
        if shape == (n_mels + 2, n_freqs):
            expect(False, f"for {case} you returned {n_mels + 2} filters: the n_mels + 2 points are the filters' "
                          f"edges and centres; filter m uses points m, m+1, m+2, so there are n_mels = {n_mels}")
        expect_shape(f"mel_filterbank({case})", got, (n_mels, n_freqs))
        expect(got.is_floating_point(), f"for {case} your filterbank has dtype {got.dtype}; it should hold floats")
        fb = got.detach().double().cpu()
        expect(bool(torch.isfinite(fb).all()), f"for {case} your filterbank holds NaN or inf values: a division by "
                                               "zero? (a triangle's sides are (f - left) / (centre - left) and "
                                               "(right - f) / (right - centre))")
        want = mel_filterbank(n_mels, n_fft, sr, f_min, f_max).double()
        if _close(fb, want, 1e-4):
            continue
        kw = (n_mels, n_fft, sr, f_min, f_max)
        k = torch.arange(n_freqs, dtype=torch.float64)
        ln = (lambda f: 2595.0 * torch.log(1 + f / 700.0), lambda m: 700.0 * (torch.exp(m / 2595.0) - 1))
        mistakes = [
            (_variant(*kw, spacing="hz"),
             "your centres are evenly spaced in Hz, not in mel (a Hz/mel confusion): take n_mels + 2 points evenly "
             "spaced between hz_to_mel(f_min) and hz_to_mel(f_max), THEN convert each back to Hz with mel_to_hz"),
            (_variant(*kw, spacing="mel-as-hz"),
             f"your filters stop at {float(_LOG10[0](torch.tensor(f_max))):.0f} Hz = hz_to_mel(f_max): the points "
             "evenly spaced in mel are used as frequencies in Hz. Convert them back with mel_to_hz before building "
             "the triangles (a Hz/mel confusion)"),
            (_variant(*kw, to_mel=ln[0], to_hz=_LOG10[1]),
             "your hz_to_mel and mel_to_hz are not inverses of each other: hz_to_mel uses the natural log (ln) with "
             "2595 while mel_to_hz uses 10 ** (m / 2595). 2595 goes with log10 (2595 * log10(1 + f / 700)); "
             "with ln the constant is 1127"),
            (_variant(*kw, to_mel=_LOG10[0], to_hz=ln[1]),
             "your hz_to_mel and mel_to_hz are not inverses of each other: hz_to_mel uses log10 but mel_to_hz uses "
             "exp(m / 2595). The inverse of 2595 * log10(1 + f / 700) is 700 * (10 ** (m / 2595) - 1)"),
            (_variant(*kw, norm="slaney"),
             "your filters are area-normalised (each divided by its width, as Slaney / librosa do); this exercise "
             "documents triangles of HEIGHT 1 at their centre frequency: leave out the normalisation"),
            (_variant(*kw, norm="max"),
             "you rescaled each filter so its largest value is exactly 1; the triangle is 1 at its centre "
             "FREQUENCY, which usually falls between two bins, so the sampled values may stay below 1. Do not "
             "renormalise"),
            (_variant(*kw, norm="sum"),
             "each of your filters sums to 1; this exercise documents triangles of height 1 at their centre "
             "frequency: leave out the normalisation"),
            (_variant(*kw, bin_hz=k * sr / (2 * n_fft)),
             f"your frequency bins are half as far apart as they should be: rfft bin k sits at "
             f"k * sample_rate / n_fft Hz (bin {n_freqs - 1} at {sr / 2:g} Hz, the Nyquist frequency)"),
            (_variant(*kw, bin_hz=k * 2 * sr / n_fft),
             f"your frequency bins are twice as far apart as they should be: rfft bin k sits at "
             f"k * sample_rate / n_fft Hz (the last bin, {n_freqs - 1}, at {sr / 2:g} Hz, not {sr:g} Hz)"),
            (_variant(*kw, bin_hz=k * sr / n_freqs),
             f"your frequency bins are k * sample_rate / (n_fft // 2 + 1): rfft bin k sits at "
             f"k * sample_rate / n_fft Hz (the last bin exactly at the Nyquist frequency, {sr / 2:g} Hz)"),
        ]
        for wrong, message in mistakes:
            if _close(fb, wrong, 1e-4):
                expect(False, f"for {case} {message}")
        if _close(fb, want.flip(0), 1e-4):
            expect(False, f"for {case} your filters are in reverse order: filter 0 should be the lowest frequencies")
        if bool((fb < -1e-6).any()):
            expect(False, f"for {case} your filterbank has negative values (down to {fb.min().item():.3g}): clamp each "
                          "triangle at 0 outside its two edges")
        peaks_got, peaks_want = fb.argmax(1), want.argmax(1)
        bad = (peaks_got - peaks_want).abs().gt(1).nonzero().flatten()
        if len(bad):
            m = int(bad[0])
            expect(False, f"for {case} filter {m} peaks at bin {int(peaks_got[m])} "
                          f"({int(peaks_got[m]) * sr / n_fft:.0f} Hz) but should peak at bin {int(peaks_want[m])} "
                          f"({int(peaks_want[m]) * sr / n_fft:.0f} Hz): check the centre frequencies")
        row = int((fb - want).abs().amax(1).argmax())
        expect(False, f"for {case} filter {row} differs from the expected triangle by up to "
                      f"{(fb - want).abs().max().item():.3g}. Filter m rises linearly from point m to 1 at point m+1 "
                      "and falls to 0 at point m+2, evaluated at each bin's frequency")
    return (f"{_FB_CASES[1][0]} triangles evenly spaced on the mel scale, height 1, each rising from its left "
            "neighbour's centre and falling to its right neighbour's")


# ----------------------------------------------------------------------------- 2. one Griffin-Lim step
def _signal(n: int, sr: int, g: torch.Generator) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / sr
    f0 = 140 + 60 * torch.rand((), generator=g, dtype=torch.float64)
    x = sum(torch.sin(2 * math.pi * h * f0 * t + h) / h for h in range(1, 6))
    return (x * torch.hann_window(n, dtype=torch.float64) + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
            ).float()


def _step_variant(magnitude, estimate, n_fft, hop, kind: str) -> torch.Tensor:
    window = None if kind == "no-window" else torch.hann_window(n_fft, dtype=magnitude.dtype)
    if kind == "no-window":
        wave = torch.istft(estimate, n_fft, hop, window=torch.ones(n_fft), center=True)
        rebuilt = torch.stft(wave, n_fft, hop, center=True, return_complex=True, window=torch.ones(n_fft))
    else:
        wave = torch.istft(estimate, n_fft, hop, window=window, center=True)
        rebuilt = torch.stft(wave, n_fft, hop, window=window, center=True, return_complex=True)
    if kind == "estimate-magnitude":
        return rebuilt
    if kind == "no-normalise":
        return magnitude * rebuilt
    return magnitude * rebuilt / rebuilt.abs().clamp(min=1e-12)


@exercise_check("one Griffin-Lim iteration")
def check_griffin_lim_step(griffin_lim_step_fn) -> str:
    """griffin_lim_step_fn(magnitude (F, frames), estimate complex (F, frames), n_fft, hop) -> complex (F, frames)."""
    g = torch.Generator().manual_seed(61)
    for n_fft, hop, n in ((256, 64, 2048), (128, 32, 1000)):
        magnitude = stft_magnitude(_signal(n, 8000, g), n_fft, hop)
        phase = torch.exp(2j * math.pi * torch.rand(magnitude.shape, generator=g))
        estimate = magnitude * phase
        case = f"n_fft={n_fft}, hop={hop}, a magnitude of shape {tuple(magnitude.shape)}"
        got = griffin_lim_step_fn(magnitude.clone(), estimate.clone(), n_fft, hop)
        expect(isinstance(got, torch.Tensor), f"for {case} your step returned a {type(got).__name__}; return the next "
                                              "complex estimate as a tensor")
        expect_shape(f"griffin_lim_step({case})", got, tuple(magnitude.shape))
        if not got.is_complex():
            expect(False, f"for {case} your step returned a real tensor (dtype {got.dtype}); return the complex "
                          "estimate magnitude * X / |X| (X: the re-analysed STFT), not only its magnitude or angle")
        got = got.detach().to(torch.complex64)
        want = griffin_lim_step(magnitude, estimate, n_fft, hop)
        if _close(got, want, 1e-3):
            continue
        if _close(got, _step_variant(magnitude, estimate, n_fft, hop, "estimate-magnitude"), 1e-3):
            expect(False, f"for {case} your result keeps the magnitude of the re-analysed estimate, |X|, instead of the "
                          "TARGET magnitude: the step must put back the magnitude you want to hear and keep only "
                          "X's phase: magnitude * X / |X|")
        if _close(got, _step_variant(magnitude, estimate, n_fft, hop, "no-normalise"), 1e-3):
            expect(False, f"for {case} you multiplied the target magnitude by X itself, not by its phase: divide X by "
                          "|X| first (X / |X| has modulus 1), or the magnitudes get multiplied together")
        if _close(got, estimate, 1e-3) or _close(got, magnitude * phase, 1e-3):
            expect(False, f"for {case} your step returned the estimate it was given: the phase must come from "
                          "re-analysing the waveform: wave = istft(estimate), X = stft(wave), then magnitude * X / |X|")
        if _close(got, _step_variant(magnitude, estimate, n_fft, hop, "no-window"), 1e-3):
            expect(False, f"for {case} your stft/istft use no window (a rectangular one); use "
                          "window=torch.hann_window(n_fft) in both, as the spectrogram was made with it")
        err = (got.abs() - magnitude).abs().max().item()
        if err > 1e-3 * max(1.0, magnitude.max().item()):
            expect(False, f"for {case} the magnitude of your result differs from the target magnitude by up to "
                          f"{err:.3g}: the step must return magnitude * (a unit-modulus phase)")
        expect(False, f"for {case} your result has the target magnitude but another phase (largest difference "
                      f"{(got - want).abs().max().item():.3g}): take the phase of stft(istft(estimate)) with "
                      "window=torch.hann_window(n_fft), center=True, in both")
    return "the target magnitude with the phase of the re-analysed estimate, magnitude * X / |X|"
