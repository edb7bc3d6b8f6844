"""The exercise checks of notebooks 05 (transformer) and 06 (sampling) accept right answers written in
two styles and reject the classic wrong answers with their specific message."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks import ExerciseError
from course_lib.checks.sampling import check_cached_attention_step, check_next_token_logits, check_rerank
from course_lib.checks.transformer import (check_attention, check_average_past, check_block, check_loss_weights,
                                           check_mixed_embedding, check_self_attention)
from course_lib.models.transformer import CausalSelfAttention, attention
from course_lib.sampling import next_token_logits, rerank
from course_lib.vocabulary import SEG_IMAGE, SEG_NONE, SEG_TEXT, T2I, token_modality

NEG = float("-inf")


def wrong(check, fn, *, match):
    with pytest.raises(ExerciseError, match=match) as info:
        check(fn)
    assert info.value.status == "wrong", str(info.value)
    return str(info.value)


def status(check, fn):
    with pytest.raises(ExerciseError) as info:
        check(fn)
    return info.value.status


# ------------------------------------------------------------------ 1. averaging the past
def avg_matrix(x):
    T = x.shape[1]
    wei = torch.tril(torch.ones(T, T))
    return (wei / wei.sum(1, keepdim=True)) @ x


def test_average_past():
    assert check_average_past(avg_matrix)
    assert check_average_past(lambda x: x.cumsum(1) / torch.arange(1, x.shape[1] + 1)[:, None])

    def softmax_style(x):
        T = x.shape[1]
        wei = torch.zeros(T, T).masked_fill(torch.ones(T, T).triu(1).bool(), NEG).softmax(-1)
        return torch.einsum("ts,bsc->btc", wei, x)
    assert check_average_past(softmax_style)

    wrong(check_average_past, lambda x: x.mean(1, keepdim=True).expand_as(x), match="uses the future")
    wrong(check_average_past, lambda x: x.cumsum(1), match="SUM")
    wrong(check_average_past, lambda x: x.cumsum(1) / x.shape[1], match="divided by T")

    def strict(x):
        T = x.shape[1]
        wei = torch.tril(torch.ones(T, T), diagonal=-1)
        return (wei / wei.sum(1, keepdim=True)) @ x                    # row 0: 0 / 0 = NaN
    wrong(check_average_past, strict, match="excludes itself")

    def strict_clamped(x):
        T = x.shape[1]
        wei = torch.tril(torch.ones(T, T), diagonal=-1)
        return (wei / wei.sum(1, keepdim=True).clamp(min=1)) @ x       # row 0: zeros
    wrong(check_average_past, strict_clamped, match="excludes itself")

    def window(x):                                                      # averages t-1, t, t+1
        return (x + x.roll(1, 1) + x.roll(-1, 1)) / 3
    wrong(check_average_past, window, match="uses the future")
    wrong(check_average_past, lambda x: torch.tril(torch.ones(x.shape[1], x.shape[1])) / 2,
          match="averaging matrix")
    wrong(check_average_past, lambda x: x.mean(1), match=r"should have shape \(2, 5, 3\)")


# ------------------------------------------------------------------ 2. causal attention
def make_attention(scale="sqrt", dim=-1, mask="offset", after=False, pair=True):
    def attn(q, k, v):
        Tq, Tk, d = q.shape[-2], k.shape[-2], q.shape[-1]
        s = q @ k.transpose(-2, -1)
        s = s / {"sqrt": math.sqrt(d), "none": 1.0, "d": d}[scale]
        ones = torch.ones(Tq, Tk, dtype=torch.bool)
        visible = {"offset": ones.tril(Tk - Tq), "tril": ones.tril(), "triu": ones.triu(), "none": ones}[mask]
        if after:
            w = s.softmax(dim) * visible
        else:
            w = s.masked_fill(~visible, NEG).softmax(dim)
        return (w @ v, w) if pair else w @ v
    return attn


def test_attention():
    assert check_attention(attention)
    assert check_attention(make_attention())

    def einsum_style(q, k, v):
        Tq, Tk, d = q.shape[-2], k.shape[-2], q.shape[-1]
        s = torch.einsum("bhqd,bhkd->bhqk", q, k) * d ** -0.5
        i = torch.arange(Tq)[:, None] + (Tk - Tq)
        s = torch.where(torch.arange(Tk)[None] <= i, s, torch.tensor(NEG))
        w = torch.exp(s - s.amax(-1, keepdim=True))
        w = w / w.sum(-1, keepdim=True)
        return torch.einsum("bhqk,bhkd->bhqd", w, v), w
    assert check_attention(einsum_style)

    wrong(check_attention, make_attention(scale="none"), match="not scaled")
    wrong(check_attention, make_attention(scale="d"), match="divided by d")
    wrong(check_attention, make_attention(dim=-2), match="wrong axis")
    wrong(check_attention, make_attention(after=True), match="AFTER the softmax")
    wrong(check_attention, make_attention(mask="none"), match="no causal mask")
    wrong(check_attention, make_attention(mask="triu"), match="upper-triangular")
    msg = wrong(check_attention, make_attention(mask="tril"), match="ignores the offset")
    assert "Tq = 3 queries, Tk = 7 keys" in msg
    wrong(check_attention, make_attention(pair=False), match="returned one tensor")

    def one_query_sees_key0(q, k, v):                # right for Tq == Tk, plain tril only when Tq == 1
        if q.shape[-2] == 1:
            return make_attention(mask="tril")(q, k, v)
        return attention(q, k, v)
    wrong(check_attention, one_query_sees_key0, match="with one new token after a cache it would see only key 0")


# ------------------------------------------------------------------ 3. multi-head self-attention
def attention_class(forward):
    class Attention(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.n_head = config.n_head
            self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
            self.proj = nn.Linear(config.d_model, config.d_model)
    Attention.forward = forward
    return Attention


def fwd_reference(self, x):
    B, T, D = x.shape
    q, k, v = self.qkv(x).split(D, dim=2)
    q, k, v = (t.view(B, T, self.n_head, D // self.n_head).transpose(1, 2) for t in (q, k, v))
    y, _ = attention(q, k, v)
    return self.proj(y.transpose(1, 2).contiguous().view(B, T, D))


def make_fwd(merge="transpose", split="heads", proj=True, causal=True, heads=None):
    def forward(self, x):
        B, T, D = x.shape
        H = heads or self.n_head
        hd = D // H
        q, k, v = self.qkv(x).split(D, dim=2)
        if split == "heads":
            q, k, v = (t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v))
        else:
            q, k, v = (t.view(B, T, hd, H).permute(0, 3, 1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        y = y.transpose(1, 2).reshape(B, T, D) if merge == "transpose" else y.reshape(B, T, D)
        return self.proj(y) if proj else y
    return forward


def test_self_attention():
    assert check_self_attention(attention_class(fwd_reference))

    def loop_over_heads(self, x):                   # another style: one head at a time, einsum, a tuple out
        B, T, D = x.shape
        hd = D // self.n_head
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        outs = []
        for h in range(self.n_head):
            sl = slice(h * hd, (h + 1) * hd)
            s = torch.einsum("btd,bsd->bts", q[..., sl], k[..., sl]) / math.sqrt(hd)
            w = torch.where(causal, s, torch.tensor(NEG)).softmax(-1)
            outs.append(torch.einsum("bts,bsd->btd", w, v[..., sl]))
        return self.proj(torch.cat(outs, dim=-1)), None
    assert check_self_attention(attention_class(loop_over_heads))

    class WithMaskBuffer(attention_class(make_fwd())):   # nanoGPT registers its mask as a buffer: fine
        def __init__(self, config):
            super().__init__(config)
            self.register_buffer("bias", torch.ones(16, 16).tril())
    assert check_self_attention(WithMaskBuffer)

    wrong(check_self_attention, attention_class(make_fwd(merge="view")), match="merged without moving them back")
    wrong(check_self_attention, attention_class(make_fwd(split="strided")), match="split in the wrong order")
    wrong(check_self_attention, attention_class(make_fwd(proj=False)), match="output projection is missing")
    wrong(check_self_attention, attention_class(make_fwd(causal=False)), match="token 0 sees the future")
    wrong(check_self_attention, attention_class(make_fwd(heads=1)), match="single head")

    def leaks_last(self, x):                        # a subtler leak: every token also sees the last one
        y = fwd_reference(self, x)
        return y + 0.1 * x[:, -1:]
    wrong(check_self_attention, attention_class(leaks_last), match="token 0 sees the future")

    class Renamed(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.n_head = config.n_head
            self.c_attn = nn.Linear(config.d_model, 3 * config.d_model)
            self.proj = nn.Linear(config.d_model, config.d_model)

        def forward(self, x):
            return x
    wrong(check_self_attention, Renamed, match=r"not named as in the given __init__: missing \['qkv.bias', "
                                               r"'qkv.weight'\]; unexpected \['c_attn.bias'")


# ------------------------------------------------------------------ 4. transformer block
def block_class(forward, attn_cls=CausalSelfAttention):
    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            d = config.d_model
            self.ln1 = nn.LayerNorm(d)
            self.attn = attn_cls(config)
            self.ln2 = nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(config.dropout))
    Block.forward = forward
    return Block


def a(self, x):
    """the attention's output, whether it returns a tensor or a pair"""
    out = self.attn(x)
    return out[0] if isinstance(out, tuple) else out


def test_block():
    def pre_norm(self, x):
        x = x + self.attn(self.ln1(x))[0]
        return x + self.mlp(self.ln2(x))
    assert check_block(block_class(pre_norm))

    def other_style(self, x):                       # the learner's own attention class, a tuple out
        h = self.ln1(x)
        x = torch.add(x, a(self, h))
        return torch.add(x, self.mlp(self.ln2(x))), None
    assert check_block(block_class(other_style, attention_class(fwd_reference)))

    def post_norm(self, x):
        x = self.ln1(x + a(self, x))
        return self.ln2(x + self.mlp(x))
    wrong(check_block, block_class(post_norm), match="post-norm")

    def no_residual(self, x):
        x = a(self, self.ln1(x))
        return self.mlp(self.ln2(x))
    wrong(check_block, block_class(no_residual), match="residual connection is missing")

    def parallel(self, x):
        return x + a(self, self.ln1(x)) + self.mlp(self.ln2(x))
    wrong(check_block, block_class(parallel), match="parallel block")

    def one_norm(self, x):
        x = x + a(self, self.ln1(x))
        return x + self.mlp(self.ln1(x))
    wrong(check_block, block_class(one_norm), match="ln1 is used for both")


# ------------------------------------------------------------------ 5. mixed embedding
def embed_reference(model, idx):
    cfg = model.config
    h, w = cfg.grid
    is_img = idx >= cfg.image_offset
    rank = is_img.long().cumsum(1) - 1
    rank = torch.where(is_img, rank, 0)
    pos2d = model.row_emb(rank // w) + model.col_emb(rank % w)
    pos1d = model.pos_emb(torch.arange(idx.shape[1]))[None]
    x = model.tok_emb(idx) + model.mod_emb(token_modality(idx, cfg.word_offset, cfg.image_offset))
    return x + torch.where(is_img[..., None], pos2d, pos1d)


def make_embed(rank="row", place="rowmajor", modality=True, one_d=False):
    def embed(model, idx):
        cfg = model.config
        h, w = cfg.grid
        B, T = idx.shape
        is_img = idx >= cfg.image_offset
        t = torch.arange(T).expand(B, T)
        r_ = {"row": is_img.long().cumsum(1) - 1, "seq": t, "seq_clamped": t.clamp(max=h * w - 1),
              "batch": is_img.flatten().long().cumsum(0).view(B, T) - 1}[rank]
        r_ = torch.where(is_img, r_, 0)
        r, c = {"rowmajor": (r_ // w, r_ % w), "swap": (r_ % w, r_ // w), "colmajor": (r_ % h, r_ // h)}[place]
        x = model.tok_emb(idx)
        if modality:
            x = x + model.mod_emb(token_modality(idx, cfg.word_offset, cfg.image_offset))
        if one_d:
            return x + model.pos_emb(t)
        return x + torch.where(is_img[..., None], model.row_emb(r) + model.col_emb(c), model.pos_emb(t))
    return embed


def test_mixed_embedding():
    assert check_mixed_embedding(embed_reference)
    assert check_mixed_embedding(make_embed())

    def loop_style(model, idx):                     # one token at a time
        cfg = model.config
        rows = []
        for seq in idx.tolist():
            n_img, vecs = 0, []
            for t, tok in enumerate(seq):
                mod = 2 if tok >= cfg.image_offset else (1 if tok >= cfg.word_offset or tok == 7 else 0)
                v = model.tok_emb.weight[tok] + model.mod_emb.weight[mod]
                if mod == 2:
                    r, c = divmod(n_img, cfg.grid[1])
                    v = v + model.row_emb.weight[r] + model.col_emb.weight[c]
                    n_img += 1
                else:
                    v = v + model.pos_emb.weight[t]
                vecs.append(v)
            rows.append(torch.stack(vecs))
        return torch.stack(rows)
    assert check_mixed_embedding(loop_style)

    wrong(check_mixed_embedding, make_embed(one_d=True), match="1-D position pos_emb")
    wrong(check_mixed_embedding, make_embed(rank="seq"), match="counted from the sequence start")
    wrong(check_mixed_embedding, make_embed(rank="seq_clamped"), match="counted from the sequence start")
    wrong(check_mixed_embedding, make_embed(place="swap"), match="rows and columns are swapped")
    wrong(check_mixed_embedding, make_embed(place="colmajor"), match="rows and columns are swapped")
    wrong(check_mixed_embedding, make_embed(modality=False), match="modality embedding is missing")
    wrong(check_mixed_embedding, make_embed(rank="batch"), match="over the whole batch")


# ------------------------------------------------------------------ 6. loss weights
def weights_reference(seg, direction, cond_weight=1 / 8):
    target = torch.where(direction == T2I, SEG_IMAGE, SEG_TEXT)[:, None]
    is_t = seg == target
    is_c = (seg != SEG_NONE) & ~is_t
    return ((1 - cond_weight) * is_t / is_t.sum(1, keepdim=True).clamp(min=1)
            + cond_weight * is_c / is_c.sum(1, keepdim=True).clamp(min=1))


def make_weights(per_token=False, swap=False, pad=False, by_total=False, clamp=True):
    def weights(seg, direction, cond_weight=1 / 8):
        d = 1 - direction if swap else direction
        target = torch.where(d == T2I, SEG_IMAGE, SEG_TEXT)[:, None]
        is_t = seg == target
        is_c = ~is_t if pad else (seg != SEG_NONE) & ~is_t
        if per_token:
            return (1 - cond_weight) * is_t.float() + cond_weight * is_c.float()
        if by_total:
            n = (seg != SEG_NONE).sum(1, keepdim=True)
            return ((1 - cond_weight) * is_t + cond_weight * is_c) / n
        n_t, n_c = is_t.sum(1, keepdim=True), is_c.sum(1, keepdim=True)
        if clamp:
            n_t, n_c = n_t.clamp(min=1), n_c.clamp(min=1)
        return (1 - cond_weight) * is_t / n_t + cond_weight * is_c / n_c
    return weights


def test_loss_weights():
    assert check_loss_weights(weights_reference)
    assert check_loss_weights(make_weights())

    def row_loop(seg, direction, cond_weight=1 / 8):
        out = torch.zeros(seg.shape)
        for b in range(len(seg)):
            target = SEG_IMAGE if int(direction[b]) == T2I else SEG_TEXT
            cond = SEG_TEXT if target == SEG_IMAGE else SEG_IMAGE
            for s, share in ((target, 1 - cond_weight), (cond, cond_weight)):
                where = seg[b] == s
                if where.any():
                    out[b, where] = share / int(where.sum())
        return out
    assert check_loss_weights(row_loop)

    wrong(check_loss_weights, make_weights(per_token=True), match="shares of whole SEGMENTS")
    wrong(check_loss_weights, make_weights(swap=True), match="directions are swapped")
    wrong(check_loss_weights, make_weights(pad=True), match="belongs to no segment")
    wrong(check_loss_weights, make_weights(by_total=True), match="row's total number of tokens")
    wrong(check_loss_weights, make_weights(clamp=False), match=r"row 3 \(t2i, no text segment at all\) has NaN")
    wrong(check_loss_weights, lambda s, d, cw=0.2: make_weights()(s, d, cw), match="weights sum to 0.8")


# ------------------------------------------------------------------ 7. a KV-cache step
def step_reference(q, k, v, cache):
    n = cache["length"]
    cache["k"][:, :, n] = k[:, :, 0]
    cache["v"][:, :, n] = v[:, :, 0]
    cache["length"] = n + 1
    return attention(q, cache["k"][:, :, :n + 1], cache["v"][:, :, :n + 1])[0]


def test_cached_attention_step():
    assert check_cached_attention_step(step_reference)

    def other_style(q, k, v, cache):                # slice assignment, the softmax written out, a pair out
        n = int(cache["length"])
        cache["k"][:, :, n:n + 1] = k
        cache["v"][:, :, n:n + 1] = v
        cache["length"] += 1
        keys, values = cache["k"][:, :, :cache["length"]], cache["v"][:, :, :cache["length"]]
        w = torch.softmax(torch.einsum("bhqd,bhkd->bhqk", q, keys) / q.shape[-1] ** 0.5, dim=-1)
        return torch.einsum("bhqk,bhkd->bhqd", w, values), w
    assert check_cached_attention_step(other_style)

    def attend_first(q, k, v, cache):
        n = cache["length"]
        out = attention(q, cache["k"][:, :, :n], cache["v"][:, :, :n])[0] if n else torch.zeros_like(q)
        cache["k"][:, :, n], cache["v"][:, :, n] = k[:, :, 0], v[:, :, 0]
        cache["length"] = n + 1
        return out
    wrong(check_cached_attention_step, attend_first, match="does not see itself")

    def no_advance(q, k, v, cache):
        n = cache["length"]
        cache["k"][:, :, n], cache["v"][:, :, n] = k[:, :, 0], v[:, :, 0]
        return attention(q, cache["k"][:, :, :n + 1], cache["v"][:, :, :n + 1])[0]
    wrong(check_cached_attention_step, no_advance, match="overwrites slot 0")

    def whole_buffer(q, k, v, cache):
        n = cache["length"]
        cache["k"][:, :, n], cache["v"][:, :, n] = k[:, :, 0], v[:, :, 0]
        cache["length"] = n + 1
        w = (q @ cache["k"].transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
        return w @ cache["v"]
    wrong(check_cached_attention_step, whole_buffer, match="whole preallocated buffer")

    def cat_not_stored(q, k, v, cache):
        n = cache["length"]
        keys = torch.cat([cache["k"][:, :, :n], k], dim=2)
        values = torch.cat([cache["v"][:, :, :n], v], dim=2)
        cache["length"] = n + 1
        return attention(q, keys, values)[0]
    wrong(check_cached_attention_step, cat_not_stored, match="torch.cat makes a NEW tensor")

    def cat_grows(q, k, v, cache):
        cache["k"] = torch.cat([cache["k"], k], dim=2)
        cache["v"] = torch.cat([cache["v"], v], dim=2)
        cache["length"] += 1
        return attention(q, cache["k"], cache["v"])[0]
    wrong(check_cached_attention_step, cat_grows, match="keep its preallocated shape")


# ------------------------------------------------------------------ 8. next-token logits
def make_logits(probs=False, log_probs=False, mask_first=False, ge_kth=False, k_plus_1=False, topk_first=False,
                times_t=False, zero=False):
    def fn(cond, uncond, *, scale, temperature, top_k, allowed):
        if mask_first and allowed is not None:
            cond, uncond = cond.masked_fill(~allowed, NEG), uncond.masked_fill(~allowed, NEG)
        if probs or log_probs:
            x = uncond.softmax(-1) + scale * (cond.softmax(-1) - uncond.softmax(-1))
            x = x.log() if log_probs else x
        else:
            x = uncond + scale * (cond - uncond)
        if topk_first and top_k is not None:
            keep = torch.zeros_like(x, dtype=torch.bool).scatter_(-1, x.topk(top_k, -1).indices, True)
            x = x.masked_fill(~keep, NEG)
        if allowed is not None and not mask_first:
            x = x.masked_fill(~allowed, 0.0 if zero else NEG)
        x = x * temperature if times_t else x / temperature
        if top_k is not None and not topk_first:
            if ge_kth:
                x = x.masked_fill(x < x.topk(top_k, -1).values[:, -1:], NEG)
            else:
                k = min(top_k + 1 if k_plus_1 else top_k, x.shape[-1])
                keep = torch.zeros_like(x, dtype=torch.bool).scatter_(-1, x.topk(k, -1).indices, True)
                x = x.masked_fill(~keep, NEG)
        return x
    return fn


def test_next_token_logits():
    assert check_next_token_logits(next_token_logits)
    assert check_next_token_logits(make_logits())

    def sort_style(cond, uncond, *, scale, temperature, top_k, allowed):
        x = torch.lerp(uncond, cond, scale)                          # uncond + scale * (cond - uncond)
        if allowed is not None:
            x = torch.where(allowed, x, torch.full_like(x, NEG))
        x = x / temperature
        if top_k is not None:
            order = torch.argsort(x, dim=-1, descending=True, stable=True)
            rank = torch.empty_like(order).scatter_(-1, order, torch.arange(x.shape[-1]).expand_as(order))
            x = torch.where(rank < top_k, x, torch.full_like(x, NEG))
        return x
    assert check_next_token_logits(sort_style)

    wrong(check_next_token_logits, make_logits(probs=True), match="mixes probabilities")
    wrong(check_next_token_logits, make_logits(log_probs=True), match="mixes probabilities")
    wrong(check_next_token_logits, make_logits(mask_first=True), match="BEFORE the guidance mix")
    wrong(check_next_token_logits, make_logits(ge_kth=True), match="3 ids tie for place 2")
    wrong(check_next_token_logits, make_logits(k_plus_1=True), match="one more than top_k")
    wrong(check_next_token_logits, make_logits(topk_first=True), match="top-k was taken BEFORE the mask")
    wrong(check_next_token_logits, make_logits(times_t=True), match="multiplied by the temperature")
    wrong(check_next_token_logits, make_logits(zero=True), match="disallowed ids are 0, not -inf")

    def log_softmax_out(cond, uncond, **kw):
        return make_logits()(cond, uncond, **kw).log_softmax(-1)
    wrong(check_next_token_logits, log_softmax_out, match="constant in each row")


# ------------------------------------------------------------------ 9. best of n by the model's own reading
def test_rerank():
    assert check_rerank(rerank)

    def loop_style(readings, asked):                 # right, written with loops and probabilities
        picks = []
        for p in range(readings.shape[0]):
            probs = [torch.softmax(readings[p, i], dim=0)[asked[p]] for i in range(readings.shape[1])]
            picks.append(max(range(len(probs)), key=lambda i: probs[i]))
        return torch.tensor(picks)
    assert check_rerank(loop_style)

    def score(readings, asked):
        return readings.gather(-1, asked[:, None, None].expand(-1, readings.shape[1], 1)).squeeze(-1)
    wrong(check_rerank, lambda r, a: score(r, a).argmax(1), match="raw logits of the asked class")
    wrong(check_rerank, lambda r, a: r.softmax(-1).amax(-1).argmax(1), match="most sure about")
    wrong(check_rerank, lambda r, a: score(r.log_softmax(-1), a).argmin(1), match="LOWEST probability")
    wrong(check_rerank, lambda r, a: score(r.softmax(1), a).argmax(1), match="softmax over the candidates axis")
    wrong(check_rerank, lambda r, a: score(r.log_softmax(-1), a).flatten().topk(r.shape[0]).indices,
          match="own prompt")
    wrong(check_rerank, lambda r, a: score(r.log_softmax(-1), a).amax(1), match="INDICES")
    wrong(check_rerank, lambda r, a: score(r.log_softmax(-1), a).argmax(0), match="shape")


# ------------------------------------------------------------------ every check: todo and error
def _raise(err):
    def fn(*args, **kwargs):
        raise err
    return fn


def _class_raising(err, kind):
    if kind == "attention":
        return attention_class(lambda self, x: _raise(err)())
    return block_class(lambda self, x: _raise(err)())


CHECKS = [check_average_past, check_attention, check_mixed_embedding, check_loss_weights, check_cached_attention_step,
          check_next_token_logits, check_rerank]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_stub_is_todo_and_crash_is_error(check):
    assert status(check, _raise(NotImplementedError("write it"))) == "todo"
    assert status(check, _raise(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))) == "error"


@pytest.mark.parametrize("check,kind", [(check_self_attention, "attention"), (check_block, "block")])
def test_class_stub_is_todo_and_crash_is_error(check, kind):
    assert status(check, _class_raising(NotImplementedError("write forward"), kind)) == "todo"
    assert status(check, _class_raising(RuntimeError("shape mismatch"), kind)) == "error"

    def bad_matmul(self, x):
        return x @ x                                 # (B, T, D) @ (B, T, D): a real crash
    cls = attention_class(bad_matmul) if kind == "attention" else block_class(bad_matmul)
    assert status(check, cls) == "error"


def test_checks_leave_the_global_rng_alone_and_print_only_the_ok_line(capsys):
    def pre_norm(self, x):
        x = x + self.attn(self.ln1(x))[0]
        return x + self.mlp(self.ln2(x))
    right = [(check_average_past, avg_matrix), (check_attention, attention),
             (check_self_attention, attention_class(fwd_reference)), (check_block, block_class(pre_norm)),
             (check_mixed_embedding, embed_reference), (check_loss_weights, weights_reference),
             (check_cached_attention_step, step_reference), (check_next_token_logits, next_token_logits)]
    state = torch.random.get_rng_state()
    for check, fn in right:
        assert check(fn) is True
    assert torch.equal(state, torch.random.get_rng_state())
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(right) and all(line.startswith("[ok] ") for line in lines)
