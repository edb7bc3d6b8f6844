"""From waveform to log-mel spectrogram and back, in plain torch (no torchaudio).

* :func:`mel_filterbank` -> float32 ``(n_mels, n_fft // 2 + 1)``: triangular filters on the **HTK mel
  scale** (``mel = 2595 * log10(1 + f / 700)``), centres evenly spaced in mel between ``f_min`` and
  ``f_max``. Filter m rises linearly from centre m-1 to 1 at centre m and falls to 0 at centre m+1
  (frequencies of the rfft bins: ``k * sample_rate / n_fft``). With ``norm=None`` each triangle has
  height 1 (the bins sample it, so a row's largest value is <= 1) and, between the first and last
  centres, the rows sum to 1 at every bin; ``norm="slaney"`` divides each filter by its width in Hz
  (times 2), so every filter has the same area.
* :func:`log_mel`: ``(B, T)`` (or ``(T,)``) -> ``(B, n_mels, frames)`` (or ``(n_mels, frames)``),
  ``frames = 1 + T // hop``: natural log of the mel-weighted STFT magnitude (Hann window,
  centred frames), clamped below at ``eps``.
* :func:`griffin_lim`: magnitude ``(B, n_fft // 2 + 1, frames)`` -> waveform ``(B, T)``: phase
  retrieval by alternating projections (:func:`griffin_lim_step`), with the "fast Griffin-Lim"
  momentum (Perraudin et al. 2013) by default.
* :func:`mel_to_audio`: a log-mel back to a waveform: ``exp``, the filterbank's pseudo-inverse
  (clamped at 0), then Griffin-Lim, so any spectrogram can be listened to.
* :func:`spectral_convergence`: ``||S - |STFT(x)|||_F / ||S||_F``, how well a waveform matches a
  target magnitude (0 is perfect; a random phase gives ~0.6-0.8 on speech).
"""
from __future__ import annotations

import math

import torch

from .validate import check_choice, check_float, check_int, check_tensor

MEL_NORMS = (None, "slaney")


def hz_to_mel(f):
    """HTK mel scale: ``2595 * log10(1 + f / 700)`` (numbers or tensors)."""
    if isinstance(f, torch.Tensor):
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    """Inverse of :func:`hz_to_mel`: ``700 * (10 ** (m / 2595) - 1)``."""
    if isinstance(m, torch.Tensor):
        return 700.0 * (torch.pow(10.0, m / 2595.0) - 1.0)
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def _check_band(n_fft, sample_rate, f_min, f_max):
    n_fft = check_int("n_fft", n_fft, min_value=4)
    sample_rate = check_int("sample_rate", sample_rate, min_value=1)
    f_min = check_float("f_min", f_min, min_value=0.0)
    nyquist = sample_rate / 2
    f_max = nyquist if f_max is None else check_float("f_max", f_max, min_value=0.0)
    if f_max > nyquist:
        raise ValueError(f"f_max must be <= sample_rate / 2 = {nyquist:g} Hz (the Nyquist frequency); got {f_max:g}")
    if f_max <= f_min:
        raise ValueError(f"f_max must be > f_min = {f_min:g} Hz; got {f_max:g}")
    return n_fft, sample_rate, f_min, f_max


def _triangles(points_hz: torch.Tensor, bin_hz: torch.Tensor) -> torch.Tensor:
    """(n_mels + 2,) edge/centre frequencies and (F,) bin frequencies -> (n_mels, F) triangles, height 1."""
    lo, mid, hi = points_hz[:-2, None], points_hz[1:-1, None], points_hz[2:, None]
    rise = (bin_hz[None] - lo) / (mid - lo)
    fall = (hi - bin_hz[None]) / (hi - mid)
    return torch.clamp(torch.minimum(rise, fall), min=0.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None,
                   *, norm: str | None = None) -> torch.Tensor:
    """Triangular mel filters, float32 ``(n_mels, n_fft // 2 + 1)``: ``mel_spec = fb @ magnitude``.

    HTK mel scale; ``n_mels + 2`` points evenly spaced in mel from ``hz_to_mel(f_min)`` to
    ``hz_to_mel(f_max)`` (default: ``sample_rate / 2``) give the edges and centres. ``norm=None``:
    height 1; ``norm="slaney"``: each filter times ``2 / (right edge - left edge)`` in Hz. A filter
    that no bin falls inside (too many mels for ``n_fft``) is a ``ValueError``.
    """
    n_mels = check_int("n_mels", n_mels, min_value=1)
    n_fft, sample_rate, f_min, f_max = _check_band(n_fft, sample_rate, f_min, f_max)
    if norm is not None:
        check_choice("norm", norm, ["slaney"])
    n_freqs = n_fft // 2 + 1
    bin_hz = torch.arange(n_freqs, dtype=torch.float64) * sample_rate / n_fft
    mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    points = mel_to_hz(mels)
    fb = _triangles(points, bin_hz)
    empty = (fb.amax(dim=1) <= 0).nonzero().flatten()
    if len(empty):
        raise ValueError(f"n_mels must be small enough that every filter covers a frequency bin; got n_mels={n_mels} "
                         f"with n_fft={n_fft}: filter {int(empty[0])} (centre {points[int(empty[0]) + 1]:.1f} Hz) "
                         f"falls between two bins {sample_rate / n_fft:.1f} Hz apart. Use fewer mels or a larger n_fft")
    if norm == "slaney":
        fb = fb * (2.0 / (points[2:] - points[:-2]))[:, None]
    return fb.float()


def _window(n_fft: int, ref: torch.Tensor) -> torch.Tensor:
    return torch.hann_window(n_fft, dtype=ref.dtype if ref.is_floating_point() else torch.float32, device=ref.device)


def stft_magnitude(wave: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """``|STFT|``: ``(B, T)`` -> ``(B, n_fft // 2 + 1, 1 + T // hop)`` (Hann window, centred frames)."""
    return torch.stft(wave, n_fft, hop, window=_window(n_fft, wave), center=True, return_complex=True).abs()


def _check_wave(wave, n_fft: int):
    check_tensor("wave", wave, floating=True, finite=True)
    if wave.ndim not in (1, 2):
        raise ValueError(f"wave must have shape (T,) or (B, T); got shape {tuple(wave.shape)}")
    if wave.shape[-1] <= n_fft // 2:
        raise ValueError(f"wave must be longer than n_fft // 2 = {n_fft // 2} samples (the reflect padding); "
                         f"got {wave.shape[-1]}")
    return wave


def log_mel(wave: torch.Tensor, *, sample_rate: int = 22_050, n_fft: int = 1024, hop: int = 256, n_mels: int = 80,
            f_min: float = 0.0, f_max: float | None = 8000.0, eps: float = 1e-5) -> torch.Tensor:
    """Log-mel spectrogram: ``(B, T)`` -> ``(B, n_mels, 1 + T // hop)``; ``(T,)`` -> ``(n_mels, frames)``.

    ``log(clamp(mel_filterbank(...) @ |STFT(wave)|, min=eps))``, natural log of magnitudes (not power),
    Hann window of ``n_fft`` samples, centred frames every ``hop`` samples.
    """
    n_fft = check_int("n_fft", n_fft, min_value=4)
    hop = check_int("hop", hop, min_value=1, max_value=n_fft)
    eps = check_float("eps", eps, min_value=0.0, strict_min=True)
    _check_wave(wave, n_fft)
    fb = mel_filterbank(n_mels, n_fft, sample_rate, f_min, f_max).to(wave.device, wave.dtype)
    mag = stft_magnitude(wave, n_fft, hop)
    return torch.log(torch.clamp(fb @ mag, min=eps))


def griffin_lim_step(magnitude: torch.Tensor, estimate: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """One Griffin-Lim iteration: the complex ``estimate`` (same shape as ``magnitude``, ``(F, frames)``
    or ``(B, F, frames)``) -> the next one: back to a waveform (``istft``), re-analysed (``stft``),
    then the TARGET magnitude with the re-analysed phase: ``magnitude * X / |X|``."""
    window = _window(n_fft, magnitude)
    wave = torch.istft(estimate, n_fft, hop, window=window, center=True)
    rebuilt = torch.stft(wave, n_fft, hop, window=window, center=True, return_complex=True)
    return magnitude * rebuilt / rebuilt.abs().clamp(min=1e-12)


def _check_magnitude(magnitude, n_fft: int):
    check_tensor("magnitude", magnitude, floating=True, finite=True)
    if magnitude.ndim not in (2, 3):
        raise ValueError(f"magnitude must have shape (F, frames) or (B, F, frames); got shape {tuple(magnitude.shape)}")
    if magnitude.shape[-2] != n_fft // 2 + 1:
        raise ValueError(f"magnitude must have n_fft // 2 + 1 = {n_fft // 2 + 1} frequency rows (axis -2) for "
                         f"n_fft={n_fft}; got shape {tuple(magnitude.shape)}")
    if magnitude.shape[-1] < 2:
        raise ValueError(f"magnitude must have at least 2 frames (last axis); got shape {tuple(magnitude.shape)}")
    if bool((magnitude < 0).any()):
        raise ValueError(f"magnitude must be >= 0 (an STFT magnitude, not a log); got values down to "
                         f"{magnitude.min().item():.3g}")


def griffin_lim(magnitude: torch.Tensor, n_fft: int, hop: int, n_iter: int = 32, *, momentum: float = 0.99,
                length: int | None = None, seed: int = 0) -> torch.Tensor:
    """A waveform whose STFT magnitude approximates ``magnitude``: ``(B, F, frames)`` -> ``(B, T)``
    (``(F, frames)`` -> ``(T,)``), ``F = n_fft // 2 + 1``, ``T = length`` or ``hop * (frames - 1)``.

    Starts from a random phase (``seed``: the same call gives the same waveform) and runs ``n_iter``
    projections; ``momentum=0`` is the classic algorithm (``n_iter`` calls of
    :func:`griffin_lim_step`), 0.99 the fast variant, which converges in fewer iterations.
    """
    n_fft = check_int("n_fft", n_fft, min_value=4)
    hop = check_int("hop", hop, min_value=1, max_value=n_fft)
    n_iter = check_int("n_iter", n_iter, min_value=0)
    momentum = check_float("momentum", momentum, min_value=0.0, max_value=1.0)
    seed = check_int("seed", seed, min_value=0)
    if length is not None:
        length = check_int("length", length, min_value=1)
    _check_magnitude(magnitude, n_fft)
    window = _window(n_fft, magnitude)
    g = torch.Generator(device=magnitude.device).manual_seed(seed)
    angles = torch.exp(2j * math.pi * torch.rand(magnitude.shape, generator=g, device=magnitude.device,
                                                 dtype=magnitude.dtype))
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        wave = torch.istft(magnitude * angles, n_fft, hop, window=window, center=True, length=length)
        rebuilt = torch.stft(wave, n_fft, hop, window=window, center=True, return_complex=True)
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / angles.abs().clamp(min=1e-12)
        previous = rebuilt
    return torch.istft(magnitude * angles, n_fft, hop, window=window, center=True, length=length)


def spectral_convergence(magnitude: torch.Tensor, wave: torch.Tensor, n_fft: int, hop: int) -> float:
    """``||magnitude - |STFT(wave)|||_F / ||magnitude||_F`` over the whole batch (0 = a perfect match)."""
    got = stft_magnitude(wave, n_fft, hop)
    frames = min(got.shape[-1], magnitude.shape[-1])
    target = magnitude[..., :frames]
    return float(torch.linalg.vector_norm(target - got[..., :frames]) / torch.linalg.vector_norm(target).clamp(min=1e-12))


def mel_to_audio(log_mel_spec: torch.Tensor, *, sample_rate: int = 22_050, n_fft: int = 1024, hop: int = 256,
                 f_min: float = 0.0, f_max: float | None = 8000.0, n_iter: int = 32, seed: int = 0) -> torch.Tensor:
    """Listen to a log-mel: ``(B, n_mels, frames)`` -> ``(B, hop * (frames - 1))`` (or unbatched).

    ``exp``, then the pseudo-inverse of :func:`mel_filterbank` (same arguments as :func:`log_mel`;
    clamped at 0: magnitudes are not negative), then :func:`griffin_lim`. Frequencies above ``f_max``
    come back silent; the result is an approximation (phase is guessed), good enough to hear words.
    """
    check_tensor("log_mel_spec", log_mel_spec, floating=True, finite=True)
    if log_mel_spec.ndim not in (2, 3):
        raise ValueError(f"log_mel_spec must have shape (n_mels, frames) or (B, n_mels, frames); got shape "
                         f"{tuple(log_mel_spec.shape)}")
    n_mels = log_mel_spec.shape[-2]
    fb = mel_filterbank(n_mels, n_fft, sample_rate, f_min, f_max).to(log_mel_spec.device, torch.float64)
    inverse = torch.linalg.pinv(fb).to(log_mel_spec.dtype)  # (F, n_mels)
    magnitude = torch.clamp(inverse @ torch.exp(log_mel_spec), min=0.0)
    return griffin_lim(magnitude, n_fft, hop, n_iter, seed=seed)
