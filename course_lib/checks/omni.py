"""Check for the speech notebook's third exercise: the audio-span constraint of constrained decoding.

The exercise, as the notebook states it: ``audio_span_allowed(vocab, i, n_audio)`` -> ``(V,)`` bool,
what may come at position ``i`` (0-based) of an audio span, once ``<boa>`` is written: the audio codes
only (ids ``vocab.audio_offset`` .. ``len(vocab) - 1``) for ``i < n_audio``, then the ``<eoa>`` only
at ``i == n_audio``, so every clip the model says is exactly ``n_audio`` codes long.

The check runs the learner's function on a small vocabulary and on one of the notebook's size,
compares it with :func:`course_lib.omni.audio_span_allowed` and, when it differs, recognises the
classic mistakes: ``<eoa>`` one step early or late (off by one), ``<eoa>`` allowed together with the
codes (a clip may end early), image codes instead of audio codes, the last audio code left out (an
exclusive end), a range that starts one id early, ``<boa>``/``<eoa>`` counted in the range, a list of
ids instead of a mask.
"""
from __future__ import annotations

import torch

from . import exercise_check, expect
from ..omni import audio_span_allowed, build_omni_vocabulary
from ..vocabulary import BOA, EOA

__all__ = ["check_audio_span_constraint"]

# (image codes, grid, audio codes, n_audio): a small vocabulary, then the notebook's size
_CASES = ((16, (3, 3), 12, 5), (64, (7, 7), 256, 22))


def _names(vocab, ids, n: int = 3) -> str:
    ids = [int(i) for i in ids]
    shown = ", ".join(f"{i} {vocab.token_name(i)}" for i in ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


def _mask(vocab, ids) -> torch.Tensor:
    m = torch.zeros(len(vocab), dtype=torch.bool)
    m[list(ids)] = True
    return m


@exercise_check("the audio-span constraint")
def check_audio_span_constraint(audio_span_fn) -> str:
    """audio_span_fn(vocab, i, n_audio) -> (V,) bool for i in 0..n_audio."""
    for k_img, grid, k_aud, n in _CASES:
        vocab = build_omni_vocabulary(k_img, grid, k_aud)
        V, a0 = len(vocab), vocab.audio_offset
        where = f"a vocabulary of {V} ids (audio codes {a0}..{V - 1}) and n_audio={n}"
        codes = vocab.allowed_mask("audio")
        eoa = _mask(vocab, [EOA])
        for i in range(n + 1):
            case = f"for {where}, at i={i}"
            got = audio_span_fn(vocab, i, n)
            if isinstance(got, (list, tuple)) or (isinstance(got, torch.Tensor) and not got.dtype == torch.bool
                                                  and got.ndim == 1 and len(got) != V):
                expect(False, f"{case} you returned {len(got)} values, which look like the allowed ids: return a "
                              f"MASK instead, a bool tensor of shape ({V},) with True at every allowed id "
                              "(the sampler sets the logits of the False ids to -inf)")
            expect(isinstance(got, torch.Tensor), f"{case} your function returned a {type(got).__name__}; return a "
                                                  f"torch.Tensor of shape ({V},) and dtype torch.bool")
            expect(tuple(got.shape) == (V,), f"{case} your mask has shape {tuple(got.shape)}; it needs one entry per "
                                             f"id of the vocabulary: ({V},) (len(vocab))")
            expect(got.dtype == torch.bool, f"{case} your mask has dtype {got.dtype}; make it torch.bool (a float or "
                                            "int tensor would be read as values, not as which ids are allowed)")
            got = got.detach().cpu()
            want = audio_span_allowed(vocab, i, n)
            if torch.equal(got, want):
                continue
            expect(bool(got.any()), f"{case} your mask allows no token at all; the sampler needs at least one "
                                    f"({'an audio code' if i < n else '<eoa>'} here)")
            if i < n:
                if torch.equal(got, eoa):
                    short = "one code" if i == n - 1 else f"{n - i} codes"
                    expect(False, f"{case} you allow only <eoa>: the clip would be closed {short} too early and hold "
                                  f"{i} codes instead of {n}. Positions 0..{n - 1} are the {n} codes; <eoa> comes at "
                                  f"i == n_audio = {n} (count from 0: off by one?)")
                if torch.equal(got, codes | eoa):
                    expect(False, f"{case} you allow <eoa> together with the audio codes: the model could close the "
                                  f"clip early, and its length would no longer be {n} codes (the audio tokenizer "
                                  "decodes exactly n_audio codes). Inside the span, the codes only")
                if torch.equal(got, codes | _mask(vocab, [BOA]) | eoa) or torch.equal(got, codes | _mask(vocab, [BOA])):
                    expect(False, f"{case} your mask also allows <boa> (id {BOA}): <boa> and <eoa> are special "
                                  f"tokens (ids {BOA} and {EOA}), not audio codes; the span is already open")
                if torch.equal(got, vocab.allowed_mask("image")):
                    expect(False, f"{case} you allow the IMAGE codes (ids {vocab.image_offset}..{vocab.image_end - 1}); "
                                  f"the audio codes come after them, from vocab.audio_offset = {a0} to the last id, "
                                  f"{V - 1}")
                if torch.equal(got, codes & ~_mask(vocab, [V - 1])):
                    expect(False, f"{case} the last audio code (id {V - 1}, {vocab.token_name(V - 1)}) is missing: the "
                                  f"{k_aud} audio codes are ids {a0}..{a0 + k_aud - 1}, both ends included (an "
                                  "exclusive end one id too early?)")
                if torch.equal(got, codes & ~_mask(vocab, [a0])):
                    expect(False, f"{case} the first audio code (id {a0}, {vocab.token_name(a0)}) is missing: the "
                                  f"audio codes start AT vocab.audio_offset = {a0}")
                if torch.equal(got, (codes | _mask(vocab, [a0 - 1])) & ~_mask(vocab, [V - 1])) or \
                        torch.equal(got, codes | _mask(vocab, [a0 - 1])):
                    expect(False, f"{case} your range starts one id early, at {a0 - 1} ({vocab.token_name(a0 - 1)}, the "
                                  f"last image code): the audio codes are ids {a0}..{V - 1}")
            else:
                if torch.equal(got, codes):
                    expect(False, f"{case} you still allow the audio codes: after {n} codes (positions 0..{n - 1}) "
                                  f"the span must close, so i == n_audio allows <eoa> only; otherwise the clip gets "
                                  f"{n + 1} codes (off by one?)")
                if torch.equal(got, codes | eoa):
                    expect(False, f"{case} you allow the audio codes as well as <eoa>: at i == n_audio the span is full, "
                                  "so <eoa> only (the model might write a code there, and the clip would never close)")
                if torch.equal(got, _mask(vocab, [BOA])):
                    expect(False, f"{case} you allow <boa> (id {BOA}), which OPENS an audio span; the span is closed "
                                  f"by <eoa> (id {EOA})")
            extra, missing = (got & ~want).nonzero().flatten(), (want & ~got).nonzero().flatten()
            parts = []
            if len(extra):
                parts.append(f"allows {len(extra)} id(s) it should not ({_names(vocab, extra)})")
            if len(missing):
                parts.append(f"forbids {len(missing)} id(s) it should allow ({_names(vocab, missing)})")
            expect(False, f"{case} your mask {' and '.join(parts)}. Positions 0..n_audio-1 allow the audio codes "
                          f"(ids {a0}..{V - 1}) only; position n_audio allows <eoa> (id {EOA}) only")
    k_img, grid, k_aud, n = _CASES[-1]
    return f"positions 0..{n - 1}: the {k_aud} audio codes only; position {n}: <eoa> only"
