"""Checks for the exercises of notebook 06 (sampling: a KV cache step, guided and filtered logits,
best of n by the model's own reading).

As in :mod:`course_lib.checks.transformer`, each check compares with the library's answer on seeded
inputs and names the classic mistake when it recognises one. No global random state is touched.
"""
from __future__ import annotations

import math

import torch

from . import exercise_check, expect, expect_close, expect_shape
from ..models.transformer import attention as _ref_attention
from ..sampling import next_token_logits as _ref_next_token_logits
from ..sampling import rerank as _ref_rerank

__all__ = ["check_cached_attention_step", "check_next_token_logits", "check_rerank"]


def _close(a, b, atol: float = 1e-4) -> bool:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False
    return bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=1e-4, equal_nan=True))


def _softmax_attend(q, k, v):
    """Plain attention of q over every key given (no mask)."""
    if k.shape[-2] == 0:
        return torch.zeros_like(q)
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
    return w @ v


# ----------------------------------------------------------------------------- 7. a KV-cache step
@exercise_check("one attention step with a KV cache")
def check_cached_attention_step(step) -> str:
    """step(q, k, v (B, H, 1, d), cache {"k": (B, H, L, d), "v": ..., "length": int}) -> (B, H, 1, d):
    write k, v at slot cache["length"], advance it by 1, attend q over slots 0..length."""
    g = torch.Generator().manual_seed(60)
    B, H, T, d, L = 2, 2, 6, 4, 9
    q = 1.5 * torch.randn(B, H, T, d, generator=g)
    k = 1.5 * torch.randn(B, H, T, d, generator=g)
    v = torch.randn(B, H, T, d, generator=g)
    full = _ref_attention(q, k, v)[0]                                   # (B, H, T, d): row t = token t's output
    cache = {"k": torch.zeros(B, H, L, d), "v": torch.zeros(B, H, L, d), "length": 0}
    for t in range(T):
        qt, kt, vt = (z[:, :, t:t + 1].clone() for z in (q, k, v))
        out = step(qt, kt, vt, cache)
        if isinstance(out, (tuple, list)) and len(out) > 0:
            out = out[0]
        who = f"token {t} (fed after {t} cached token{'s' if t != 1 else ''})"
        expect_shape(f"the output for {who}", out, (B, H, 1, d))
        expect(isinstance(cache, dict) and "length" in cache and "k" in cache and "v" in cache,
               "keep the cache a dict with the keys 'k', 'v' and 'length'")
        try:
            length = int(cache["length"])
        except (TypeError, ValueError):
            length = None
        expect(length is not None, f"cache['length'] should be an int; got {type(cache['length']).__name__}")
        if length == t:
            expect(False, f"after {who} cache['length'] is still {t}: increase it by 1 once the new key and value "
                          f"are written, otherwise the next token overwrites slot {t}")
        expect(length == t + 1, f"after {who} cache['length'] should be {t + 1} (tokens cached so far); got {length}")
        for name, src in (("k", k), ("v", v)):
            buf = cache[name]
            expect(isinstance(buf, torch.Tensor) and tuple(buf.shape) == (B, H, L, d),
                   f"cache['{name}'] should keep its preallocated shape {(B, H, L, d)}; got "
                   + (f"shape {tuple(buf.shape)}" if isinstance(buf, torch.Tensor) else type(buf).__name__)
                   + ". Write the new entry into slot length (cache['k'][:, :, length] = ...) instead of "
                     "concatenating")
            slot = buf[:, :, t].detach()
            if not _close(slot, src[:, :, t], 1e-6):
                if bool(slot.eq(0).all()):
                    expect(False, f"after {who} slot {t} of cache['{name}'] is still zeros: the new {name} was not "
                                  "stored in the cache. torch.cat makes a NEW tensor, which the dict does not see "
                                  f"unless you store it; write into the buffer: cache['{name}'][:, :, length] = {name}")
                expect(False, f"after {who} slot {t} of cache['{name}'] does not hold the new token's {name}: write "
                              f"it at index cache['length'] (= {t} before this step), then increase the length")
            expect(_close(buf[:, :, :t].detach(), src[:, :, :t], 1e-6),
                   f"after {who} the earlier slots 0..{t - 1} of cache['{name}'] changed: write only slot {t}")
        out = out.detach()
        want = full[:, :, t:t + 1]
        if _close(out, want, 1e-5):
            continue
        if _close(out, _softmax_attend(qt, k[:, :, :t], v[:, :, :t]), 1e-5):
            expect(False, f"{who} does not see itself: you attended over the cache before appending its key and "
                          "value. Write k, v into the cache first, then attend over slots 0..length (the new token "
                          "included)")
        buf_k, buf_v = cache["k"], cache["v"]
        if _close(out, _softmax_attend(qt, buf_k, buf_v), 1e-5):
            expect(False, f"for {who} you attended over the whole preallocated buffer ({L} slots), the empty zero "
                          "slots included (a zero key still gets weight exp(0)). Attend over "
                          "cache['k'][:, :, :length] only")
        expect_close(f"the output for {who}", out, want, atol=1e-5,
                     hint="softmax(q @ k^T / sqrt(d)) @ v over the cached slots 0..length-1 (after the update)")
    return f"{T} tokens fed one at a time give the rows of full causal attention; the cache holds them all"


# ----------------------------------------------------------------------------- 8. next-token logits
def _call(fn, cond, uncond, scale, temperature, top_k, allowed):
    out = fn(cond.clone(), uncond.clone(), scale=scale, temperature=temperature, top_k=top_k,
             allowed=None if allowed is None else allowed.clone())
    return out


def _describe(scale, temperature, top_k, allowed):
    mask = "allowed=None" if allowed is None else f"{int(allowed.sum())} of {allowed.numel()} ids allowed"
    return f"scale={scale:g}, temperature={temperature:g}, top_k={top_k}, {mask}"


def _logit_cases(g):
    """(cond, uncond, scale, temperature, top_k, allowed, note) for the filtering cases."""
    B, V = 3, 12
    cases = []
    cond, uncond = 2 * torch.randn(B, V, generator=g), 2 * torch.randn(B, V, generator=g)
    allowed = torch.ones(V, dtype=torch.bool)
    allowed[[0, 3, 7, 8]] = False
    cond[:, [0, 3, 7]] += 6.0           # disallowed ids among the best: the mask must come before top-k
    cases.append((cond, uncond, 3.0, 0.7, 4, allowed, ""))
    cond, uncond = 2 * torch.randn(B, V, generator=g), 2 * torch.randn(B, V, generator=g)
    cases.append((cond, uncond, 0.0, 1.0, 5, allowed, " (scale 0: unconditional)"))
    cases.append((cond, uncond, 1.0, 2.0, None, allowed, " (scale 1: the conditional logits)"))
    few = torch.zeros(V, dtype=torch.bool)
    few[[2, 5, 9]] = True
    cases.append((cond, uncond, 2.0, 1.0, 5, few, " (top_k larger than the number of allowed ids)"))
    ties = torch.tensor([[3.0, 3.0, 3.0, 1.0, 0.0, -1.0, 2.0, 2.0, 0.5, 0.0, -2.0, 1.5],
                         [0.0, 4.0, 2.0, 2.0, 2.0, -1.0, 1.0, 1.0, 0.0, 0.5, -3.0, -1.0],
                         [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    cases.append((ties, ties.clone(), 2.0, 0.5, 2, None, " (ties at the k-th place)"))
    return cases


@exercise_check("guided, constrained, filtered next-token logits")
def check_next_token_logits(fn) -> str:
    """fn(cond, uncond (B, V), *, scale, temperature, top_k, allowed) -> (B, V): uncond + scale * (cond - uncond),
    disallowed ids -inf, divided by temperature, all but the top_k best -inf."""
    g = torch.Generator().manual_seed(61)
    B, V = 3, 12
    # probe 1: the guidance mix alone
    cond, uncond = 2 * torch.randn(B, V, generator=g), 2 * torch.randn(B, V, generator=g)
    what = "with scale=3, temperature=1, top_k=None, allowed=None"
    got = _call(fn, cond, uncond, 3.0, 1.0, None, None)
    expect_shape(f"the logits {what}", got, (B, V))
    got = got.detach().double()
    want = (uncond + 3.0 * (cond - uncond)).double()
    if not _close(got, want, 1e-5):
        diff = got - want
        if bool(torch.isfinite(diff).all()) and bool((diff - diff[:, :1]).abs().max() < 1e-4):
            expect(False, f"{what}: your scores differ from the guided logits by a constant in each row (did you "
                          "return log-probabilities, a log_softmax?). Return the guided logits themselves")
        shifted = _call(fn, cond + 10.0, uncond, 3.0, 1.0, None, None).detach().double()
        p_mix = uncond.softmax(-1) + 3.0 * (cond.softmax(-1) - uncond.softmax(-1))
        if (bool(torch.isnan(got).any()) or _close(shifted, got, 1e-6) or _close(got, p_mix)
                or _close(got, p_mix.log())):
            expect(False, f"{what}: the guidance mixes probabilities (softmax before the mix). Guidance is "
                          "defined on the LOGITS: uncond + scale * (cond - uncond); softmax comes later, when "
                          "drawing (mixing probabilities gives negative 'probabilities' once scale > 1)")
        if _close(got, cond + 3.0 * (uncond - cond)):
            expect(False, f"{what}: cond and uncond are swapped; the mix pushes AWAY from uncond, towards cond: "
                          "uncond + scale * (cond - uncond)")
        expect_close(f"the logits {what}", got, want, atol=1e-5, hint="uncond + scale * (cond - uncond)")
    # probe 2: the temperature alone
    what = "with scale=1, temperature=2, top_k=None, allowed=None"
    got = _call(fn, cond, uncond, 1.0, 2.0, None, None).detach().double()
    expect_shape(f"the logits {what}", got, (B, V))
    if not _close(got, cond / 2.0, 1e-5):
        expect(not _close(got, cond * 2.0), f"{what}: the logits were multiplied by the temperature; divide by "
                                            "it (a high temperature flattens the distribution)")
        expect(not _close(got, cond.double()), f"{what}: the temperature was ignored; divide the logits by it")
        expect_close(f"the logits {what}", got, cond / 2.0, atol=1e-5,
                     hint="scale 1 gives cond; then divide by the temperature")
    # the filtering cases
    for cond, uncond, scale, temperature, top_k, allowed, note in _logit_cases(g):
        what = _describe(scale, temperature, top_k, allowed) + note
        got = _call(fn, cond, uncond, scale, temperature, top_k, allowed)
        expect_shape(f"the logits with {what}", got, tuple(cond.shape))
        got = got.detach().double()
        full = _ref_next_token_logits(cond, uncond, scale=scale, temperature=temperature, top_k=None,
                                      allowed=allowed).double()
        allow = torch.ones_like(got, dtype=torch.bool) if allowed is None else allowed.expand_as(got)
        if bool(torch.isnan(got).any()) or bool(torch.isposinf(got).any()):
            bad = "NaN" if bool(torch.isnan(got).any()) else "+inf"
            expect(allowed is None,
                   f"with {what}: some scores are {bad}: the disallowed ids were set to -inf BEFORE the guidance mix "
                   "(-inf - (-inf) is NaN, and -inf * scale is NaN at scale 0). Mix first, then set the "
                   "disallowed ids to -inf")
            expect(False, f"with {what}: some scores are {bad}; every score should be finite or -inf")
        dis = got[~allow]
        if dis.numel() and not bool(torch.isneginf(dis).all()):
            fin = dis[torch.isfinite(dis)]
            if bool(fin.eq(0).all()):
                expect(False, f"with {what}: the disallowed ids are 0, not -inf: 0 is an ordinary score and softmax "
                              "still gives them probability. Set them to float('-inf')")
            if bool(fin.lt(-1e6).all()):
                expect(False, f"with {what}: the disallowed ids got a large negative number ({fin.max().item():.3g}); "
                              "use float('-inf'), which no scale or temperature can bring back")
            expect(False, f"with {what}: some disallowed ids keep a finite score: set every id with allowed False to "
                          "-inf after the guidance mix")
        kept = torch.isfinite(got)
        n_allowed = allow.sum(1)
        for r in range(got.shape[0]):
            want_n = int(n_allowed[r]) if top_k is None else min(top_k, int(n_allowed[r]))
            n = int(kept[r].sum())
            if n > want_n:
                kth = full[r][allow[r]].sort(descending=True).values[want_n - 1]
                n_ge = int((full[r][allow[r]] >= kth - 1e-6).sum())
                if n == n_ge and n_ge > want_n:
                    expect(False, f"with {what}: row {r} keeps {n} ids instead of top_k = {top_k}: {n_ge} ids "
                                  f"tie for place {top_k} (the k-th best score) and `logits >= kth value` keeps "
                                  "them all. Keep exactly k ids (e.g. the indices from torch.topk, scattered into "
                                  "a mask)")
                if top_k is not None and n == want_n + 1:
                    expect(False, f"with {what}: row {r} keeps {n} ids, one more than top_k = {top_k}: an "
                                  "off-by-one in the k-th place")
                expect(False, f"with {what}: row {r} keeps {n} finite scores, expected {want_n}"
                              + (f" (top_k = {top_k})" if top_k is not None else " (every allowed id)"))
            if n < want_n:
                ids = f"{n} id{'s' if n != 1 else ''}"
                if allowed is not None and top_k is not None:
                    expect(False, f"with {what}: row {r} keeps only {ids}, expected {want_n}: the top-k was taken "
                                  "BEFORE the mask, so some of the k best were disallowed ids that the mask then "
                                  "removed. Set disallowed ids to -inf first, then keep the k best of what remains")
                expect(False, f"with {what}: row {r} keeps only {ids} with a finite score, expected {want_n}")
        expect(bool((kept <= allow).all()), f"with {what}: a disallowed id is kept")
        if not _close(got[kept], full[kept], 1e-5):
            if _close(got[kept], full[kept] * temperature ** 2, 1e-5):
                expect(False, f"with {what}: the logits were multiplied by the temperature; divide by it")
            expect_close(f"the kept scores with {what}", got[kept], full[kept], atol=1e-5,
                         hint="(uncond + scale * (cond - uncond)) / temperature on the ids you keep")
        for r in range(got.shape[0]):
            dropped = allow[r] & ~kept[r]
            if bool(dropped.any()):
                lo, hi = full[r][kept[r]].min().item(), full[r][dropped].max().item()
                expect(lo >= hi - 1e-6, f"with {what}: row {r} keeps a score {lo:.4g} but drops an allowed id "
                                        f"scoring {hi:.4g}: keep the top_k = {top_k} BEST allowed ids")
    return "guidance on logits, mask after the mix, temperature divides, exactly top_k kept (ties too)"


# ----------------------------------------------------------------------------- 9. best of n
def _rerank_case():
    """readings (P, n, C), asked (P,) where every classic mistake picks another candidate than the right
    answer in at least one prompt (found once from a seeded generator, then fixed)."""
    g = torch.Generator().manual_seed(62)
    P, n, C = 6, 5, 10
    asked = torch.tensor([8, 3, 0, 9, 5, 1])
    while True:
        readings = 2 * torch.randn(P, n, C, generator=g) + 6 * torch.randn(P, n, 1, generator=g)
        picks = [r(readings, asked) for r in _RERANK_MISTAKES.values()]
        right = _ref_rerank(readings, asked)
        if all(not torch.equal(p, right) for p in picks):
            return readings, asked


def _asked(scores, asked):
    """scores (P, n, C), asked (P,) -> (P, n): each candidate's score of the class its prompt asked for."""
    return scores.gather(-1, asked[:, None, None].expand(-1, scores.shape[1], 1)).squeeze(-1)


_RERANK_MISTAKES = {
    "raw": lambda r, a: _asked(r, a).argmax(1),          # a softmax over the candidates axis picks the same
    "confident": lambda r, a: r.softmax(-1).amax(-1).argmax(1),
    "lowest": lambda r, a: _asked(r.log_softmax(-1), a).argmin(1),
}


@exercise_check("best of n by the model's own reading")
def check_rerank(fn) -> str:
    """fn(readings (P, n, C) logits, asked (P,) long) -> (P,) long: per prompt, the candidate whose
    softmax over the C classes gives the asked class the highest probability."""
    readings, asked = _rerank_case()
    P, n, C = readings.shape
    got = fn(readings.clone(), asked.clone())
    expect(isinstance(got, torch.Tensor), f"return a tensor of candidate indices, shape ({P},); got {type(got).__name__}")
    expect_shape("the chosen candidates", got, (P,))
    expect(not got.is_floating_point() and got.dtype != torch.bool,
           f"return candidate INDICES (integers 0..{n - 1}, e.g. from argmax), not scores; got dtype {got.dtype}")
    got = got.detach().long().cpu()
    expect(bool(((got >= 0) & (got < n)).all()),
           f"each index should pick one of the {n} candidates of its own prompt (0..{n - 1}); got {got.tolist()}. "
           "Take the argmax along the candidates axis (dim 1), not over a flattened tensor")
    want = _ref_rerank(readings, asked)
    if torch.equal(got, want):
        return (f"{P} prompts x {n} candidates: the pick is the candidate whose reading gives the asked class the "
                "highest probability")
    hints = {
        "raw": "you compared the raw logits of the asked class across candidates. Logits are only defined up to a "
               "constant per candidate (adding 5 to every logit of a row leaves its softmax unchanged), so a "
               "candidate with large logits everywhere wins without favouring the asked class (a softmax over the "
               "candidates axis, dim 1, picks the same). Turn each candidate's logits into probabilities over the "
               "classes first (softmax or log_softmax over the last axis), then compare",
        "confident": "you picked the candidate the model is most sure about, whatever class it reads. Score each "
                     "candidate by the probability of the ASKED class (asked[p]) instead",
        "lowest": "you picked the candidate with the LOWEST probability of the asked class; take the highest",
    }
    for name, mistake in _RERANK_MISTAKES.items():
        if torch.equal(got, mistake(readings, asked)):
            expect(False, hints[name])
    wrong = [p for p in range(P) if got[p] != want[p]]
    expect(False, f"prompt {wrong[0]} (asked class {int(asked[wrong[0]])}): picked candidate {int(got[wrong[0]])}, "
                  f"expected {int(want[wrong[0]])}, the one with the highest softmax probability of the asked class "
                  "(softmax over the last axis)")
