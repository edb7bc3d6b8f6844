"""Spoken words as fixed-size log-mel spectrograms: what the speech judge and the audio tokenizer eat.

A clip (float32 ``(n_samples,)`` at 22,050 Hz, from :mod:`course_lib.data.speech`) is zero-padded at
the end (or cut) to ``(n_frames - 1) * HOP`` samples, about 1.0 s for the default ``N_FRAMES = 88``
(every digit word measured was shorter than 0.8 s, so nothing is cut), then turned into a log-mel
with :func:`course_lib.audio.log_mel` and its defaults (n_fft 1024, hop 256, 80 mels up to 8 kHz):

* :func:`clips_to_log_mels`: a list of N clips -> float32 ``(N, N_MELS, n_frames)``, natural log of
  mel magnitudes, from ``log(1e-5) = -11.5`` (silence) to about +6.
* :func:`speech_log_mels`: ``make_speech(n_per_word, seed=, split=)`` -> ``(log_mels, labels)``
  with labels long ``(N,)`` indexing ``DIGIT_WORDS`` (sets of up to 2,000 clips remembered, in memory).
* :func:`log_mels_to_audio`: back to waveforms ``(N, (n_frames - 1) * HOP)`` to listen to
  (Griffin-Lim, :func:`course_lib.audio.mel_to_audio`).
"""
from __future__ import annotations

import numpy as np
import torch

from .audio import log_mel, mel_to_audio
from .validate import check_choice, check_int, check_tensor

N_MELS = 80
HOP = 256
N_FFT = 1024
N_FRAMES = 88  # (88 - 1) * 256 = 22,272 samples = 1.01 s; divisible by 2, 4 and 8
SILENCE = float(np.log(1e-5))  # the log-mel of a zero-padded frame
CHUNK = 128  # clips per STFT in clips_to_log_mels (bounds its memory)


def clips_to_log_mels(clips, n_frames: int = N_FRAMES) -> torch.Tensor:
    """N clips (1-D float arrays or tensors at 22,050 Hz) -> float32 ``(N, N_MELS, n_frames)``.

    Each clip is zero-padded at the end, or cut, to ``(n_frames - 1) * HOP`` samples first.
    """
    n_frames = check_int("n_frames", n_frames, min_value=4)
    if not isinstance(clips, (list, tuple)):
        raise TypeError(f"clips must be a list of 1-D arrays (e.g. make_speech(...).clips); got {type(clips).__name__}")
    n_samples = (n_frames - 1) * HOP
    wave = torch.zeros(len(clips), n_samples)
    for i, c in enumerate(clips):
        if not isinstance(c, (np.ndarray, torch.Tensor)) or c.ndim != 1:
            raise TypeError(f"clips[{i}] must be a 1-D NumPy array or tensor; got {type(c).__name__}"
                            + (f" of shape {tuple(c.shape)}" if hasattr(c, "shape") else ""))
        a = torch.as_tensor(np.asarray(c, dtype=np.float32))[:n_samples]
        wave[i, :len(a)] = a
    if not len(clips):
        return torch.empty(0, N_MELS, n_frames)
    # in chunks: the complex STFT of 2,000 clips at once took ~1.9 GB (each row is computed alone either way)
    return torch.cat([log_mel(wave[s:s + CHUNK], n_fft=N_FFT, hop=HOP, n_mels=N_MELS) for s in range(0, len(wave), CHUNK)])


def speech_log_mels(split: str, n_per_word: int, seed: int = 0, n_frames: int = N_FRAMES):
    """Synthesise ``make_speech(n_per_word, seed=seed, split=split)`` (the ten digit words) and return
    ``(log_mels float32 (10 * n_per_word, N_MELS, n_frames), labels long (10 * n_per_word,))``.
    Raises ``RuntimeError`` with :func:`~course_lib.data.speech.speech_available`'s reason where
    eSpeak NG cannot be loaded.

    Sets of up to ``MEMO_MAX_CLIPS`` clips are remembered (at most ``MEMO_MAX_BYTES`` in all, the
    oldest forgotten first): the synthesis is deterministic, so asking again (notebook 08 asks for the
    training and test voices the audio tokenizer, the judge and the evaluation share) returns copies
    of the same tensors without synthesising them again."""
    from .data.speech import SPEECH_SPLITS, make_speech
    # checked before the memo is asked, so 2.0 or True never stands in for 2 or 1
    key = (check_choice("split", split, SPEECH_SPLITS), check_int("n_per_word", n_per_word, min_value=0),
           check_int("seed", seed, min_value=0), check_int("n_frames", n_frames, min_value=4))
    if key in _MEMO:
        _MEMO[key] = _MEMO.pop(key)   # most recently used last
        return tuple(t.clone() for t in _MEMO[key])
    ds = make_speech(n_per_word, seed=seed, split=split)
    out = clips_to_log_mels(ds.clips, n_frames), torch.as_tensor(ds.labels, dtype=torch.long)
    if len(ds.labels) <= MEMO_MAX_CLIPS:
        _MEMO[key] = tuple(t.clone() for t in out)
        while sum(t.nbytes for pair in _MEMO.values() for t in pair) > MEMO_MAX_BYTES:
            _MEMO.pop(next(iter(_MEMO)))
    return out


MEMO_MAX_CLIPS = 2000      # ~56 MB of log-mels at 88 frames
MEMO_MAX_BYTES = 160 * 2 ** 20
_MEMO: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def log_mels_to_audio(log_mels: torch.Tensor, n_iter: int = 32, seed: int = 0) -> torch.Tensor:
    """``(N, N_MELS, frames)`` (or ``(N_MELS, frames)``) -> waveforms at 22,050 Hz via Griffin-Lim."""
    check_tensor("log_mels", log_mels, floating=True, finite=True)
    if log_mels.ndim not in (2, 3) or log_mels.shape[-2] != N_MELS:
        raise ValueError(f"log_mels must have shape (N, {N_MELS}, frames) or ({N_MELS}, frames); got shape "
                         f"{tuple(log_mels.shape)}")
    return mel_to_audio(log_mels, n_fft=N_FFT, hop=HOP, n_iter=n_iter, seed=seed)
