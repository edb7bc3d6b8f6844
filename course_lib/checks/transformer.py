"""Checks for the exercises of notebook 05 (a transformer over mixed text + image sequences).

Each check compares the learner's function with the library's answer on small, seeded inputs and,
when it differs, recognises the classic mistakes (by their signature or by a property such as "the
output at position t changed when only later tokens changed") to say which one it is.

Checks never touch the notebook's global random state: inputs come from their own
``torch.Generator``, and modules are built inside ``torch.random.fork_rng``.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from . import exercise_check, expect, expect_close, expect_shape
from ..models.transformer import Block, CausalSelfAttention, MixedTransformer, TransformerConfig
from ..mixed_data import _weights
from ..vocabulary import (I2T, SEG_IMAGE, SEG_NONE, SEG_TEXT, T2I, MixedVocabulary, WordTokenizer,
                          build_sequence, pad_sequences, segment_ids, token_modality)

__all__ = ["check_average_past", "check_attention", "check_self_attention", "check_block",
           "check_mixed_embedding", "check_loss_weights"]


def _close(a, b, atol: float = 1e-4) -> bool:
    """Same shape and values (NaN matching NaN)."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False
    return bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=1e-4, equal_nan=True))


def _first(out):
    """A module may return a tensor or a tuple (y, weights): the tensor."""
    return out[0] if isinstance(out, (tuple, list)) and len(out) > 0 else out


def _small_config(**kw) -> TransformerConfig:
    base = dict(vocab_size=20, image_offset=10, word_offset=4, grid=(2, 2), block_size=16, n_layer=1,
                n_head=4, d_model=16)
    base.update(kw)
    return TransformerConfig(**base)


def _build(factory, config, seed: int):
    """factory(config), built without touching the notebook's global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = factory(config)
    return module


def _load_reference(mine: nn.Module, ref: nn.Module, what: str) -> None:
    """Copy the reference's parameters into the learner's module, with a clear message if the names
    or shapes differ (extra buffers such as a registered mask are fine)."""
    expect(isinstance(mine, nn.Module), f"{what} should be an nn.Module; got {type(mine).__name__}")
    want = dict(ref.named_parameters())
    got = dict(mine.named_parameters())
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing or extra:
        expect(False, f"the parameters of your {what} are not named as in the given __init__: "
                      + (f"missing {missing}" if missing else "")
                      + ("; " if missing and extra else "")
                      + (f"unexpected {extra}" if extra else "")
                      + ". Keep the __init__ of the exercise as it is (its names let the check load the library's "
                        "weights into your module) and write only forward")
    for name, p in want.items():
        expect(tuple(got[name].shape) == tuple(p.shape),
               f"parameter {name} of your {what} has shape {tuple(got[name].shape)}, expected {tuple(p.shape)}; "
               "keep the __init__ of the exercise as it is")
    mine.load_state_dict(ref.state_dict(), strict=False)


# ----------------------------------------------------------------------------- 1. averaging the past
@exercise_check("averaging the past (a lower-triangular matrix)")
def check_average_past(average_past) -> str:
    """average_past(x (B, T, C)) -> (B, T, C), out[:, t] = mean of x[:, 0..t]."""
    g = torch.Generator().manual_seed(50)
    for B, T, C in ((2, 5, 3), (1, 8, 4)):
        x = torch.randn(B, T, C, generator=g)
        case = f"x of shape {(B, T, C)}"
        got = average_past(x.clone())
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (T, T):
            expect(False, f"for {case} you returned a ({T}, {T}) tensor: that is the averaging matrix; apply it "
                          f"to x (wei @ x) to get the averaged vectors (B, T, C)")
        expect_shape(f"average_past({case})", got, (B, T, C))
        got = got.detach().double()
        xd = x.double()
        counts = torch.arange(1, T + 1, dtype=torch.float64)[None, :, None]
        want = xd.cumsum(1) / counts
        if _close(got, want, 1e-5):
            continue
        if _close(got, xd.mean(1, keepdim=True).expand_as(xd)):
            expect(False, f"for {case} every position got the mean of all {T} tokens: position t uses the future. "
                          "out[:, t] must average only x[:, 0..t] (mask the upper triangle of the matrix)")
        if _close(got, xd.cumsum(1)):
            expect(False, f"for {case} out[:, t] is the SUM of x[:, 0..t], not their mean: divide row t of the "
                          "lower-triangular matrix by its number of ones (t + 1)")
        if _close(got, xd.cumsum(1) / T):
            expect(False, f"for {case} out[:, t] is the sum of x[:, 0..t] divided by T = {T}: divide by the number "
                          "of tokens averaged, t + 1 (normalise each row of the matrix to sum to 1)")
        strict = (xd.cumsum(1) - xd) / (counts - 1).clamp(min=1)
        first_bad = bool(torch.isnan(got[:, 0]).any()) or torch.allclose(got[:, 0], torch.zeros_like(got[:, 0]))
        if T > 1 and (_close(got[:, 1:], strict[:, 1:]) or first_bad):
            expect(False, f"for {case} token t excludes itself: out[:, 0] is "
                          f"{'NaN' if bool(torch.isnan(got[:, 0]).any()) else _fmt(got[0, 0])} instead of x[:, 0], "
                          "and out[:, t] averages x[:, 0..t-1]. Keep the diagonal: tril, not tril(diagonal=-1)")
        x2 = x.clone()
        x2[:, -1] += 10.0
        got2 = average_past(x2).detach().double()
        if not _close(got2[:, :-1], got[:, :-1], 1e-6):
            t = int((got2[:, :-1] - got[:, :-1]).abs().amax(dim=(0, 2)).gt(1e-6).nonzero()[0])
            expect(False, f"for {case} position {t} uses the future: its output changed when only the last token "
                          f"changed. out[:, t] may depend on x[:, 0..t] only")
        expect_close(f"average_past({case})", got, want, atol=1e-5,
                     hint="out[:, t] = (x[:, 0] + ... + x[:, t]) / (t + 1)")
    return "out[:, t] is the mean of x[:, 0..t] (itself and the past, never the future)"


def _fmt(t: torch.Tensor) -> str:
    flat = t.flatten()
    return "[" + ", ".join(f"{v:.3g}" for v in flat[:3].tolist()) + (", ...]" if flat.numel() > 3 else "]")


# ----------------------------------------------------------------------------- 2. causal attention
def _visible(Tq: int, Tk: int) -> torch.Tensor:
    return torch.ones(Tq, Tk, dtype=torch.bool).tril(diagonal=Tk - Tq)


def _weights_with(q, k, scale, visible=None, dim=-1):
    scores = (q @ k.transpose(-2, -1)) * scale
    if visible is not None:
        scores = scores.masked_fill(~visible, float("-inf"))
    return scores.softmax(dim=dim)


@exercise_check("causal scaled dot-product attention")
def check_attention(attention) -> str:
    """attention(q (B, H, Tq, d), k, v (B, H, Tk, d)) -> (out (B, H, Tq, d), weights (B, H, Tq, Tk));
    query i sits at position Tk - Tq + i and sees keys 0..Tk - Tq + i."""
    g = torch.Generator().manual_seed(51)
    for B, H, Tq, Tk, d in ((2, 3, 5, 5, 4), (1, 2, 3, 7, 8), (2, 2, 1, 6, 4)):
        q = 1.5 * torch.randn(B, H, Tq, d, generator=g)
        k = 1.5 * torch.randn(B, H, Tk, d, generator=g)
        v = torch.randn(B, H, Tk, d, generator=g)
        case = f"Tq = Tk = {Tq}" if Tq == Tk else f"Tq = {Tq} quer{'y' if Tq == 1 else 'ies'}, Tk = {Tk} keys"
        res = attention(q.clone(), k.clone(), v.clone())
        if isinstance(res, torch.Tensor):
            expect(False, f"attention should return a pair (out, weights); for {case} you returned one tensor of "
                          f"shape {tuple(res.shape)}. Return the attention weights too: `return weights @ v, weights`")
        expect(isinstance(res, (tuple, list)) and len(res) == 2,
               f"attention should return a pair (out, weights); got {type(res).__name__}"
               + (f" of length {len(res)}" if isinstance(res, (tuple, list)) else ""))
        out, w = res
        expect_shape(f"weights ({case})", w, (B, H, Tq, Tk))
        expect_shape(f"out ({case})", out, (B, H, Tq, d))
        w = w.detach().double()
        out = out.detach().double()
        qd, kd, vd = q.double(), k.double(), v.double()
        vis = _visible(Tq, Tk)
        off = Tk - Tq
        want_w = _weights_with(qd, kd, d ** -0.5, vis)
        if _close(w, want_w, 1e-5) and _close(out, want_w @ vd, 1e-5):
            continue
        if bool(torch.isnan(w).any()):
            i = int(torch.isnan(w).any(-1).nonzero()[0, -1])
            expect(False, f"for {case} the weights of query {i} are NaN: every key of its row was masked (a softmax "
                          f"over -inf only). Query {i} sits at position {off + i} and must see keys 0..{off + i}")
        future = w.masked_fill(vis, 0.0).abs()
        if bool(future.gt(1e-6).any()):
            b, hh, i, j = (int(n) for n in future.gt(1e-6).nonzero()[0])
            past = torch.ones(Tq, Tk, dtype=torch.bool).tril(diagonal=-1)
            if Tq == Tk and Tq > 1 and bool(w[..., past].abs().lt(1e-9).all()):
                expect(False, f"for {case} the mask is upper-triangular: every query sees the future and none sees "
                              f"the past (query {i} gives weight {w[b, hh, i, j].item():.3g} to key {j}). Keep keys "
                              "j <= i: the lower triangle, torch.tril")
            if _close(w, _weights_with(qd, kd, d ** -0.5)):
                expect(False, f"no causal mask: for {case} query {i} gives weight {future.amax().item():.3g} to key "
                              f"{j}, which comes after it (future leak). Set the scores of future keys to -inf before "
                              "the softmax")
            expect(False, f"for {case} query {i} (position {off + i}) gives weight {w[b, hh, i, j].item():.3g} to key "
                          f"{j}, in its future: it may only see keys 0..{off + i}")
        hidden = w.eq(0) & vis
        if bool(hidden.any()):
            _, _, i, j = (int(n) for n in hidden.nonzero()[0])
            if Tq < Tk and bool(w.masked_fill(torch.ones(Tq, Tk, dtype=torch.bool).tril(), 0).eq(0).all()):
                expect(False, f"the mask ignores the offset when there are fewer queries than keys: for {case}, query "
                              f"{i} is the token at position {off + i} and must see keys 0..{off + i}, but your "
                              f"mask lets it see only keys 0..{i} (a plain tril on a ({Tq}, {Tk}) matrix; with one "
                              "new token after a cache it would see only key 0). Shift the diagonal by Tk - Tq: "
                              "tril(diagonal=Tk - Tq)")
            if Tq == Tk and i == j:
                expect(False, f"for {case} query {i} gives no weight to key {i}: a token must see itself as well as "
                              "the past (keep the diagonal of the mask)")
            expect(False, f"for {case} query {i} (position {off + i}) gives no weight to key {j}, which it may see "
                          f"(keys 0..{off + i})")
        if Tq > 1 and _close(w, _weights_with(qd, kd, d ** -0.5, vis, dim=-2)):
            expect(False, f"for {case} the softmax runs over the wrong axis (the queries, dim=-2): each column "
                          "sums to 1 instead of each row. Normalise over the keys, softmax(dim=-1)")
        if _close(w, _weights_with(qd, kd, d ** -0.5) * vis):
            expect(False, f"for {case} the rows of the weights no longer sum to 1 (row 0 sums to "
                          f"{w[0, 0, 0].sum().item():.3g}): you zeroed the future AFTER the softmax. Set the future "
                          "scores to -inf BEFORE the softmax, so each row renormalises over the keys it may see")
        if _close(w, _weights_with(qd, kd, 1.0, vis)):
            expect(False, f"for {case} the scores are not scaled: divide q @ k^T by sqrt(d) = {math.sqrt(d):g} "
                          "before the softmax (otherwise large d makes the softmax nearly one-hot)")
        if _close(w, _weights_with(qd, kd, 1.0 / d, vis)):
            expect(False, f"for {case} the scores are divided by d = {d}; the scale is 1 / sqrt(d) = "
                          f"1 / {math.sqrt(d):g}")
        sums = w.sum(-1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
            i = int((sums - 1).abs().amax(dim=(0, 1)).argmax())
            expect(False, f"for {case} row {i} of the weights sums to {sums[0, 0, i].item():.4g}; every row should "
                          "sum to 1 (a softmax over the keys)")
        expect_close(f"weights ({case})", w, want_w, atol=1e-5,
                     hint="weights = softmax(q @ k^T / sqrt(d) with the future set to -inf, dim=-1)")
        expect_close(f"out ({case})", out, want_w @ vd, atol=1e-5, hint="out = weights @ v")
    return "causal, scaled by 1/sqrt(d), rows sum to 1; Tq < Tk (a cache) sees every earlier key"


# ----------------------------------------------------------------------------- 3. multi-head attention
def _mha(x, attn: CausalSelfAttention, n_head: int, *, split="heads", merge="transpose", causal=True,
         proj=True):
    """The reference multi-head attention with one stage done differently (to recognise mistakes)."""
    B, T, D = x.shape
    hd = D // n_head
    q, k, v = attn.qkv(x).split(D, dim=2)
    if split == "heads":
        q, k, v = (t.view(B, T, n_head, hd).transpose(1, 2) for t in (q, k, v))
    else:  # view(B, T, hd, H): heads taken as strided channels
        q, k, v = (t.view(B, T, hd, n_head).permute(0, 3, 1, 2) for t in (q, k, v))
    w = _weights_with(q, k, hd ** -0.5, torch.ones(T, T, dtype=torch.bool).tril() if causal else None)
    y = w @ v                                                          # (B, H, T, hd)
    if merge == "transpose":
        y = y.transpose(1, 2).reshape(B, T, D)
    elif merge == "inverse":
        y = y.permute(0, 2, 3, 1).reshape(B, T, D)
    else:  # straight view, no transpose back
        y = y.reshape(B, T, D)
    return attn.proj(y) if proj else y


def _future_leak(fn, x, gen):
    """(t, c) for the first output position t < c that changes when only tokens c.. change, or None."""
    base = fn(x)
    T = x.shape[1]
    for c in range(1, T):
        x2 = x.clone()
        x2[:, c:] = torch.randn(x2[:, c:].shape, generator=gen)
        changed = (fn(x2)[:, :c] - base[:, :c]).abs().amax(dim=(0, 2)) > 1e-5
        if bool(changed.any()):
            return int(changed.nonzero()[0]), c
    return None


@exercise_check("multi-head causal self-attention")
def check_self_attention(cls) -> str:
    """cls(config): the given __init__ (n_head, qkv, proj) and the learner's forward(x (B, T, D)) -> (B, T, D)."""
    cfg = _small_config()
    ref = _build(CausalSelfAttention, cfg, 52).eval()
    mine = _build(cls, cfg, 52)
    _load_reference(mine, ref, "attention class")
    mine.eval()
    g = torch.Generator().manual_seed(53)
    B, T, D, H = 2, 7, cfg.d_model, cfg.n_head
    x = torch.randn(B, T, D, generator=g)
    with torch.no_grad():
        got = _first(mine(x.clone()))
        expect_shape("the output of forward(x) for x of shape (2, 7, 16)", got, (B, T, D))
        want = ref(x)[0]
        if _close(got, want, 1e-5):
            return "matches the library's CausalSelfAttention (4 heads, causal, projected)"
        if _close(got, _mha(x, ref, H, merge="view")):
            expect(False, "the heads are merged without moving them back: y of shape (B, H, T, head_dim) was "
                          "viewed straight as (B, T, D), which mixes positions of different heads into one token. "
                          "Transpose back first: y.transpose(1, 2).contiguous().view(B, T, D)")
        if _close(got, _mha(x, ref, H, split="strided")) or _close(got, _mha(x, ref, H, split="strided",
                                                                              merge="inverse")):
            expect(False, "the heads are split in the wrong order: view(B, T, head_dim, n_head) makes each head a "
                          "set of strided channels. Head h owns the contiguous channels h*head_dim..(h+1)*head_dim-1:"
                          " view(B, T, n_head, head_dim).transpose(1, 2)")
        if _close(got, _mha(x, ref, H, proj=False)):
            expect(False, "the output projection is missing: after merging the heads back to (B, T, D), apply "
                          "self.proj (it mixes what the heads found)")
        if _close(got, _mha(x, ref, 1)):
            expect(False, f"a single head: your attention ignores n_head = {H} and attends over all D = {D} "
                          f"channels at once. Split q, k, v into {H} heads of {D // H} channels, attend in each, "
                          "then merge")
        if _close(got, _mha(x, ref, H, causal=False)):
            t, c = _future_leak(lambda z: _mha(z, ref, H, causal=False), x, torch.Generator().manual_seed(54))
            expect(False, f"no causal mask: token {t} sees the future (its output changed when only tokens "
                          f"{c}..{T - 1} changed). Mask the scores of later keys with -inf before the softmax")
        leak = _future_leak(lambda z: _first(mine(z)).detach(), x, torch.Generator().manual_seed(54))
        if leak is not None:
            t, c = leak
            expect(False, f"token {t} sees the future: its output changed when only tokens {c}..{T - 1} changed. "
                          "Each head must attend causally (keys 0..t only)")
        expect_close("the output of forward(x)", got, want, atol=1e-5,
                     hint="q, k, v = self.qkv(x).split(D, dim=2); heads (B, H, T, D/H); causal attention; "
                          "merge back to (B, T, D); self.proj")
    return "matches the library's CausalSelfAttention"


# ----------------------------------------------------------------------------- 4. transformer block
@exercise_check("a pre-norm transformer block")
def check_block(cls) -> str:
    """cls(config): the given __init__ (ln1, attn, ln2, mlp) and the learner's forward(x) -> x."""
    cfg = _small_config()
    ref = _build(Block, cfg, 55).eval()
    g = torch.Generator().manual_seed(56)
    with torch.no_grad():  # distinct layer norms, so swapping them shows
        for ln in (ref.ln1, ref.ln2):
            ln.weight.copy_(1 + 0.4 * torch.randn(ln.weight.shape, generator=g))
            ln.bias.copy_(0.4 * torch.randn(ln.bias.shape, generator=g))
    mine = _build(cls, cfg, 55)
    _load_reference(mine, ref, "block")
    mine.eval()
    x = torch.randn(2, 7, cfg.d_model, generator=g)
    with torch.no_grad():
        got = _first(mine(x.clone()))
        expect_shape("the output of forward(x) for x of shape (2, 7, 16)", got, (2, 7, cfg.d_model))
        want = ref(x)[0]
        if _close(got, want, 1e-5):
            return "x + attn(ln1(x)), then x + mlp(ln2(x)), as the library's Block"

        def attn(z):
            return _first(ref.attn(z))
        h = ref.ln1(x + attn(x))
        if _close(got, ref.ln2(h + ref.mlp(h))):
            expect(False, "a post-norm block: you normalise after adding, ln(x + attn(x)). This course's blocks are "
                          "pre-norm: normalise the sublayer's INPUT and add its output to the untouched stream, "
                          "x = x + attn(ln1(x)); x = x + mlp(ln2(x))")
        h = attn(ref.ln1(x))
        h2 = x + h
        if _close(got, ref.mlp(ref.ln2(h))) or _close(got, h + ref.mlp(ref.ln2(h))) or \
                _close(got, ref.mlp(ref.ln2(h2))):
            expect(False, "a residual connection is missing: each sublayer's output is ADDED to its input, "
                          "x = x + attn(ln1(x)); x = x + mlp(ln2(x))")
        if _close(got, x + attn(ref.ln1(x)) + ref.mlp(ref.ln2(x))):
            expect(False, "a parallel block: the MLP reads x from before the attention. In this block the MLP comes "
                          "after it: x = x + attn(ln1(x)), then x = x + mlp(ln2(x)) with the updated x")
        h = x + attn(ref.ln1(x))
        if _close(got, h + ref.mlp(ref.ln1(h))):
            expect(False, "ln1 is used for both sublayers: the MLP's input must go through its own layer norm, "
                          "x = x + mlp(ln2(x))")
        if _close(got, h + ref.mlp(h)) or _close(got, x + attn(x) + ref.mlp(ref.ln2(x + attn(x)))):
            expect(False, "a layer norm is missing: each sublayer reads a normalised copy of x, "
                          "x = x + attn(ln1(x)); x = x + mlp(ln2(x))")
        expect_close("the output of forward(x)", got, want, atol=1e-5,
                     hint="x = x + attn(ln1(x)) (the attention may return a pair: take its first element); "
                          "x = x + mlp(ln2(x))")
    return "matches the library's Block"


# ----------------------------------------------------------------------------- 5. mixed embedding
def _embedding_setup():
    vocab = MixedVocabulary(WordTokenizer(["a", "big", "digit", "seven", "the"]), num_codes=7, grid=(2, 3))
    cfg = TransformerConfig(vocab_size=len(vocab), image_offset=vocab.image_offset, word_offset=vocab.word_offset,
                            grid=vocab.grid, block_size=24, n_layer=1, n_head=2, d_model=8)
    model = _build(MixedTransformer, cfg, 57).eval()
    g = torch.Generator().manual_seed(58)
    with torch.no_grad():  # std 1 instead of 0.02, so every part of the sum is visible
        for emb in (model.tok_emb, model.pos_emb, model.row_emb, model.col_emb, model.mod_emb):
            emb.weight.copy_(torch.randn(emb.weight.shape, generator=g))
    codes = torch.tensor([[0, 1, 2, 3, 4, 5], [6, 6, 2, 0, 1, 5], [3, 4, 4, 0, 6, 1]])
    rows = [("the digit seven", "t2i"), ("a big seven", "i2t"), ("", "t2i")]
    seqs = [build_sequence(vocab, vocab.encode_text(t), vocab.codes_to_ids(c).tolist(), d)
            for (t, d), c in zip(rows, codes)]
    return vocab, model, pad_sequences(seqs), [d for _, d in rows]


def _embed_variant(model, idx, rank_fn=None, place=None, one_d=False, modality=True, both=False):
    """model.embed with one part done differently; None if a grid index falls outside the tables.

    rank_fn(is_image, t) -> rank; place(rank, h, w) -> (r, c)."""
    cfg = model.config
    h, w = cfg.grid
    is_img = idx >= cfg.image_offset
    t = torch.arange(idx.shape[1]).expand_as(idx)
    rank = rank_fn(is_img, t) if rank_fn else is_img.long().cumsum(1) - 1
    rank = torch.where(is_img, rank, torch.zeros_like(rank))
    r, c = place(rank, h, w) if place else (rank // w, rank % w)
    if r.min() < 0 or c.min() < 0 or r.max() >= model.row_emb.num_embeddings or c.max() >= model.col_emb.num_embeddings:
        return None
    pos2d = model.row_emb(r) + model.col_emb(c)
    pos1d = model.pos_emb(t)
    x = model.tok_emb(idx)
    if modality:
        x = x + model.mod_emb(token_modality(idx, cfg.word_offset, cfg.image_offset))
    if one_d:
        return x + pos1d
    if both:
        return x + pos1d + torch.where(is_img[..., None], pos2d, torch.zeros_like(pos2d))
    return x + torch.where(is_img[..., None], pos2d, pos1d)


def _embedding_variants(hw: int, clamp: bool) -> dict:
    """name -> keyword arguments of _embed_variant, one classic mistake each."""
    cl = (lambda r: r.clamp(0, hw - 1)) if clamp else (lambda r: r)
    return {
        "1d": dict(one_d=True),
        "mod": dict(modality=False),
        "both": dict(both=True),
        "seq": dict(rank_fn=lambda m, t: cl(t)),
        "batch": dict(rank_fn=lambda m, t: cl(m.flatten().long().cumsum(0).view_as(m) - 1)),
        "from1": dict(rank_fn=lambda m, t: cl(m.long().cumsum(1))),
        "swap": dict(place=lambda k, h, w: (k % w, k // w)),          # (c, r) = divmod(rank, w)
        "colmajor": dict(place=lambda k, h, w: (k % h, k // h)),      # (c, r) = divmod(rank, h)
        "divh": dict(place=lambda k, h, w: (k // h, k % h)),          # (r, c) = divmod(rank, h)
    }


_SWAP = ("rows and columns are swapped: with grid (h, w) = {grid} (h rows of w codes, read row by row), code "
         "number k sits at row k // w and column k % w: r, c = divmod(rank, w)")
_EMBED_MESSAGES = {
    "1d": "image codes got the 1-D position pos_emb(t) of their place in the sequence. An image code's position "
          "is 2-D: row_emb(r) + col_emb(c), its place in the grid, so code (r, c) means the same place whichever "
          "segment comes first",
    "mod": "the modality embedding is missing: add model.mod_emb(token_modality(idx, word_offset, image_offset)) "
           "(0 special, 1 text, 2 image) to every token",
    "both": "image codes got both positions: pos_emb(t) AND row_emb(r) + col_emb(c). Words and special tokens take "
            "pos_emb(t); image codes take only their 2-D grid position",
    "seq": "the grid place of an image code was computed from its position t in the sequence (counted from the "
           "sequence start); it comes from its rank among the image codes of its row of idx (how many image codes "
           "come before it): rank = is_image.cumsum(1) - 1",
    "batch": "the rank of an image code was counted over the whole batch (flattened), so the second row's codes "
             "continue where the first row's stopped: count the image codes before it in ITS OWN row of idx, "
             "is_image.cumsum(dim=1) - 1",
    "from1": "the rank of an image code starts at 1: the first code of an image is number 0 (cumsum(1) - 1), "
             "at row 0, column 0",
    "swap": _SWAP,
    "colmajor": _SWAP,
    "divh": "the rank is split with h instead of w: code number k sits at row k // w and column k % w "
            "(w = {w} codes per row of the grid {grid}), r, c = divmod(rank, w)",
}


def _diagnose_embedding(got, model, idx, clamp: bool):
    h, w = model.config.grid
    for name, kw in _embedding_variants(h * w, clamp).items():
        cand = _embed_variant(model, idx, **kw)
        if cand is not None and _close(got, cand, 1e-5):
            return _EMBED_MESSAGES[name].format(grid=model.config.grid, w=w)
    return None


@exercise_check("the input embedding of a mixed sequence")
def check_mixed_embedding(mixed_embedding) -> str:
    """mixed_embedding(model, idx (B, T)) -> (B, T, D): tok_emb + mod_emb + (pos_emb(t) for words and special
    tokens, row_emb(r) + col_emb(c) for image codes, (r, c) = divmod(rank among the row's image codes, w))."""
    vocab, model, idx, directions = _embedding_setup()
    B, T = idx.shape
    D = model.config.d_model
    with torch.no_grad():
        want = model.embed(idx)
        try:
            got = mixed_embedding(model, idx.clone())
        except IndexError as err:
            if "out of range" not in str(err):
                raise
            # find out which index ran off the tables: same weights, larger row/col tables
            probe = copy.deepcopy(model)
            g = torch.Generator().manual_seed(59)
            for name in ("row_emb", "col_emb"):
                old = getattr(probe, name).weight
                big = nn.Embedding(64, D)
                big.weight.copy_(torch.randn(64, D, generator=g))
                big.weight[:old.shape[0]] = old
                setattr(probe, name, big)
            msg = None
            try:
                msg = _diagnose_embedding(mixed_embedding(probe, idx.clone()), probe, idx, clamp=False)
            except Exception:
                pass
            h, w = model.config.grid
            expect(False, (msg + ". " if msg else "")
                   + f"An index ran outside an embedding table ({err}): the grid has h = {h} rows (row_emb) and "
                     f"w = {w} columns (col_emb), so r must lie in 0..{h - 1} and c in 0..{w - 1}")
        expect_shape(f"mixed_embedding(model, idx) for idx of shape {(B, T)}", got, (B, T, D))
        got = got.detach()
        if _close(got, want, 1e-5):
            return "words by sequence position, image codes by grid place (rank per row), plus modality"
        msg = _diagnose_embedding(got, model, idx, clamp=True)
        expect(msg is None, msg or "")
        bad = (got - want).abs().amax(-1) > 1e-5
        b, t = (int(n) for n in bad.nonzero()[0])
        tok = int(idx[b, t])
        if tok >= vocab.image_offset:
            rank = int((idx[b, :t] >= vocab.image_offset).sum())
            what = f"image code number {rank} of its image, grid place {divmod(rank, vocab.grid[1])}"
        else:
            what = f"{vocab.token_name(tok)}, 1-D position {t}"
        expect_close(f"the embedding of row {b} ({directions[b]}), position {t} ({what})", got[b, t], want[b, t],
                     atol=1e-5, hint="tok_emb(idx) + mod_emb(modality) + (pos_emb(t) for words and special tokens, "
                                     "row_emb(r) + col_emb(c) for image codes)")
    return "matches model.embed"


# ----------------------------------------------------------------------------- 6. loss weights
def _ref_weights(seg, direction, cond_weight):
    return _weights(seg, direction, cond_weight).float()


def _loss_weight_batch():
    vocab = MixedVocabulary(WordTokenizer(["a", "big", "digit", "seven", "the"]), num_codes=7, grid=(2, 3))
    codes = vocab.codes_to_ids(torch.tensor([[0, 1, 2, 3, 4, 5], [6, 6, 2, 0, 1, 5], [3, 4, 4, 0, 6, 1]]))
    rows = [("the digit seven", "t2i"), ("a big seven", "i2t"), ("", "t2i")]
    seqs = pad_sequences([build_sequence(vocab, vocab.encode_text(t), c.tolist(), d)
                          for (t, d), c in zip(rows, codes)])
    seg = segment_ids(seqs)[:, 1:]                         # the targets' segments
    L = seg.shape[1]
    lone = torch.zeros(2, L, dtype=torch.long)             # rows with the target segment only
    lone[0, 1:8] = SEG_IMAGE
    lone[1, 0:4] = SEG_TEXT
    seg = torch.cat([seg, lone])
    direction = torch.tensor([T2I, I2T, T2I, T2I, I2T])
    about = ["row 0 (t2i, 3-word caption)", "row 1 (i2t, 3-word caption)", "row 2 (t2i, caption dropped)",
             "row 3 (t2i, no text segment at all)", "row 4 (i2t, no image segment at all)"]
    return seg, direction, about


@exercise_check("loss weights (the target segment against the condition)")
def check_loss_weights(loss_weights) -> str:
    """loss_weights(seg (B, L) long, direction (B,) long, cond_weight=1/8) -> (B, L) float."""
    seg, direction, about = _loss_weight_batch()
    B, L = seg.shape
    for cw in (None, 0.3):
        got = loss_weights(seg.clone(), direction.clone()) if cw is None else \
            loss_weights(seg.clone(), direction.clone(), cw)
        cw_ = 1 / 8 if cw is None else cw
        call = "loss_weights(seg, direction)" if cw is None else f"loss_weights(seg, direction, {cw})"
        expect_shape(call, got, (B, L))
        expect(got.is_floating_point(), f"{call} should be a float tensor; got dtype {got.dtype}")
        got = got.detach().double()
        want = _ref_weights(seg, direction, cw_).double()
        if _close(got, want, 1e-6):
            continue
        nan_rows = torch.isnan(got).any(1).nonzero().flatten().tolist()
        if nan_rows:
            r = nan_rows[0]
            expect(False, f"{call}: {about[r]} has NaN weights. That row has no condition segment, so its count of "
                          "condition tokens is 0 and 0 / 0 = NaN. Clamp the counts to at least 1 "
                          "(count.clamp(min=1)): an empty segment then simply gets no weight")
        none = seg == SEG_NONE
        if bool(got[none].abs().gt(1e-9).any()):
            r, t = (int(n) for n in (got.abs().gt(1e-9) & none).nonzero()[0])
            expect(False, f"{call}: {about[r]} gives weight {got[r, t].item():.4g} to position {t}, which belongs to "
                          "no segment (padding or <bos>); SEG_NONE positions must get weight 0")
        if _close(got, _ref_weights(seg, 1 - direction, cw_)):
            expect(False, f"{call}: the directions are swapped. T2I (0) draws an image from a caption, so its "
                          "target segment is the IMAGE; I2T (1) captions an image, so its target is the TEXT")
        target_seg = torch.where(direction == T2I, SEG_IMAGE, SEG_TEXT)[:, None]
        is_t = seg == target_seg
        is_c = (seg != SEG_NONE) & ~is_t
        if _close(got, (1 - cw_) * is_t + cw_ * is_c):
            expect(False, f"{call}: every target token got {1 - cw_:.4g} and every condition token {cw_:.4g}. "
                          f"These are the shares of whole SEGMENTS: divide them equally among the segment's tokens "
                          f"(in {about[0]} each of the {int(is_t[0].sum())} image tokens gets "
                          f"{(1 - cw_) / int(is_t[0].sum()):.4g})")
        n_tok = (seg != SEG_NONE).sum(1, keepdim=True)
        if _close(got, ((1 - cw_) * is_t + cw_ * is_c) / n_tok) or _close(got, ((1 - cw_) * is_t + cw_ * is_c) / L):
            expect(False, f"{call}: you divided by the row's total number of tokens; divide the target share by "
                          "the number of TARGET tokens and the condition share by the number of CONDITION tokens, "
                          "so each segment gets its share whatever its length")
        sums_t = (got * is_t).sum(1)
        sums_c = (got * is_c).sum(1)
        has_c = is_c.any(1)
        for r in range(B):
            expect(abs(sums_t[r].item() - (1 - cw_)) < 1e-5,
                   f"{call}: in {about[r]} the target tokens' weights sum to {sums_t[r].item():.4g}; the target "
                   f"segment's share is 1 - cond_weight = {1 - cw_:.4g}")
            if bool(has_c[r]):
                expect(abs(sums_c[r].item() - cw_) < 1e-5,
                       f"{call}: in {about[r]} the condition tokens' weights sum to {sums_c[r].item():.4g}; the "
                       f"condition segment's share is cond_weight = {cw_:.4g}")
        expect_close(call, got, want, atol=1e-6,
                     hint="each segment's share is divided equally among its own tokens")
    return "each segment gets its share (7/8 target, 1/8 condition), spread evenly over its tokens; padding 0"
