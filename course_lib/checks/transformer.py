"""Checks for the exercises of notebook 05 (mixed sequences)."""
from __future__ import annotations

import torch

from . import exercise_check, expect, expect_shape
from ..vocabulary import MixedVocabulary, WordTokenizer, build_sequence


@exercise_check("causal mask")
def check_causal_mask(causal_mask):
    """causal_mask(T) -> (T, T) bool, True where query t may attend to key s (s <= t)."""
    for T in (1, 4, 9):
        mask = causal_mask(T)
        expect_shape(f"causal_mask({T})", mask, (T, T))
        expect(mask.dtype == torch.bool, f"causal_mask({T}) should be a bool tensor; got dtype {mask.dtype}")
        want = torch.ones(T, T, dtype=torch.bool).tril()
        if not torch.equal(mask, want):
            bad = (mask != want).nonzero()[0].tolist()
            expect(False, f"causal_mask({T}) is wrong at query {bad[0]}, key {bad[1]}: expected "
                          f"{bool(want[bad[0], bad[1]])} (a token may see itself and the past, never the future)")
    return "every token sees itself and the past only"


def _toy_vocab() -> MixedVocabulary:
    return MixedVocabulary(WordTokenizer(["a", "digit", "seven", "the"]), num_codes=10, grid=(2, 2))


@exercise_check("a text-first mixed sequence")
def check_text_first(build_text_first):
    """build_text_first(text_ids, image_ids) -> list of ids [BOS, BOT, text, EOT, BOI, image, EOI, EOS]."""
    vocab = _toy_vocab()
    cases = [("the digit seven", [0, 1, 2, 3]), ("a seven", [9, 9, 0, 4]), ("", [5, 6, 7, 8])]
    for text, codes in cases:
        text_ids = vocab.encode_text(text)
        image_ids = vocab.codes_to_ids(torch.tensor(codes)).tolist()
        got = build_text_first(text_ids, image_ids)
        want = build_sequence(vocab, text_ids, image_ids, "t2i")
        got = [int(t) for t in (got.tolist() if isinstance(got, torch.Tensor) else got)]
        expect(len(got) == len(want), f"for caption {text!r} the sequence should have {len(want)} tokens "
                                      f"({len(text_ids)} words + {len(image_ids)} codes + 6 markers); got {len(got)}")
        if got != want:
            i = next(k for k, (a, b) in enumerate(zip(got, want)) if a != b)
            expect(False, f"for caption {text!r} token {i} should be {want[i]} ({vocab.token_name(want[i])}); "
                          f"got {got[i]}")
    return "markers, words and codes in the right order (an empty caption works too)"


@exercise_check("one guided, constrained greedy step")
def check_guided_step(guided_step):
    """guided_step(cond, uncond, scale, allowed) -> (B,) ids: argmax of uncond + scale * (cond - uncond)
    over allowed ids only."""
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(6, 20, generator=g), torch.randn(6, 20, generator=g)
    allowed = torch.zeros(20, dtype=torch.bool)
    allowed[8:] = True
    for scale in (0.0, 1.0, 3.0):
        got = guided_step(cond, uncond, scale, allowed)
        expect_shape(f"guided_step(..., scale={scale})", got, (6,))
        mixed = uncond + scale * (cond - uncond)
        want = mixed.masked_fill(~allowed, float("-inf")).argmax(-1)
        expect(bool((got >= 8).all()), f"with scale={scale} you picked a disallowed id ({got.min().item()}); "
                                       "set the logits of disallowed ids to -inf before the argmax")
        expect(torch.equal(got.long(), want), f"with scale={scale} expected ids {want.tolist()}, got {got.tolist()}; "
                                              "mix as uncond + scale * (cond - uncond)")
    return "scale 0 = unconditional, 1 = conditional, 3 = pushed towards the caption"
