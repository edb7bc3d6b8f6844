"""Checks for the exercises of notebook 07 (asking questions about a picture).

As in :mod:`course_lib.checks.transformer`: each check compares the learner's code with the
library's on small seeded inputs and, when it differs, recognises the classic mistakes to say
which one it is. Checks never touch the notebook's global random state.
"""
from __future__ import annotations

import torch
from torch import nn

from . import exercise_check, expect, expect_close, expect_shape
from ..models.cross_attention import GatedCrossAttentionBlock
from ..vqa import answer_loss, choose_answer
from .transformer import _close, _first, _load_reference

__all__ = ["check_answer_loss", "check_gated_cross_attention", "check_choose_answer"]


def _block(cls, d: int, h: int, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(d, h)


@exercise_check("gated cross-attention block")
def check_gated_cross_attention(cls) -> str:
    """cls(d_model, n_head): the given __init__ (ln1, xattn, ln2, mlp, attn_gate, mlp_gate) and the
    learner's forward(x, memory) -> x (or (x, weights))."""
    d, h = 16, 4
    ref = _block(GatedCrossAttentionBlock, d, h, 71).eval()
    mine = _block(cls, d, h, 71)
    _load_reference(mine, ref, "gated cross-attention block")
    mine.eval()
    g = torch.Generator().manual_seed(72)
    x = torch.randn(2, 5, d, generator=g)
    memory = torch.randn(2, 9, d, generator=g)
    with torch.no_grad():
        # 1. freshly built: both gates are 0, so the block must hand x back unchanged
        out0 = _first(mine(x.clone(), memory.clone()))
        expect_shape("the output of forward(x, memory) for x of shape (2, 5, 16), memory (2, 9, 16)", out0, (2, 5, d))
        if not _close(out0, x, 1e-6):
            expect(not _close(out0, ref.xattn(ref.ln1(x), memory)[0] + x, 1e-5),
                   "with both gates at 0 the block changed x: the cross-attention's output is added without "
                   "the gate. Multiply each sublayer's output by tanh(its gate) before adding it")
            expect(False, "with both gates at 0 (a freshly built block) the output must equal x exactly: the gates "
                          "are what make a new block start as the identity. Add tanh(gate) * sublayer(...) to x, "
                          "and nothing else")
        # 2. open the gates (distinct values, one negative) and make the layer norms distinct
        for block in (ref, mine):
            block.attn_gate.fill_(0.8)
            block.mlp_gate.fill_(-0.6)
        for name in ("ln1", "ln2"):
            gm = torch.Generator().manual_seed(73 if name == "ln1" else 74)
            w = 1 + 0.4 * torch.randn(d, generator=gm)
            b = 0.4 * torch.randn(d, generator=gm)
            for block in (ref, mine):
                getattr(block, name).weight.copy_(w)
                getattr(block, name).bias.copy_(b)
        got = _first(mine(x.clone(), memory.clone()))
        want = ref(x, memory)[0]
        if _close(got, want, 1e-5):
            return "x + tanh(attn_gate) * xattn(ln1(x), memory), then x + tanh(mlp_gate) * mlp(ln2(x)); identity at gate 0"
        ta, tm = torch.tanh(ref.attn_gate), torch.tanh(ref.mlp_gate)

        def xattn(q, kv):
            return ref.xattn(q, kv)[0]

        def finish(y, gate=tm, ln=ref.ln2):
            return y + gate * ref.mlp(ln(y))
        raw = x + ref.attn_gate * xattn(ref.ln1(x), memory)
        if _close(got, raw + ref.mlp_gate * ref.mlp(ref.ln2(raw))):
            expect(False, "the gates are used as they are: squash each through tanh first, so the scale stays in "
                          "(-1, 1) and a gate at 0 still learns (x + tanh(gate) * sublayer(...))")
        sig = x + torch.sigmoid(ref.attn_gate) * xattn(ref.ln1(x), memory)
        if _close(got, sig + torch.sigmoid(ref.mlp_gate) * ref.mlp(ref.ln2(sig))):
            expect(False, "sigmoid gates: sigmoid(0) = 0.5, so a new block would NOT start as the identity. Use tanh")
        swapped = x + tm * xattn(ref.ln1(x), memory)
        if _close(got, swapped + ta * ref.mlp(ref.ln2(swapped))):
            expect(False, "the gates are swapped: attn_gate scales the cross-attention, mlp_gate the MLP")
        selfish = x + ta * xattn(ref.ln1(x), ref.ln1(x))
        if _close(got, finish(selfish)):
            expect(False, "the block attends to the text itself (keys and values from x): in CROSS-attention the "
                          "queries come from the text, the keys and values from the image memory")
        flipped = xattn(memory, ref.ln1(x))                       # (2, 9, 16): the memory's length
        if _close(got, finish(memory + ta * flipped)) or _close(got, flipped):
            expect(False, "queries and memory are swapped: call the attention with the normalised text first "
                          "(queries) and the memory second (keys, values)")
        lnmem = x + ta * xattn(ref.ln1(x), ref.ln1(memory))
        if _close(got, finish(lnmem)):
            expect(False, "the memory went through ln1: ln1 normalises the text (the queries); the memory is "
                          "already normalised by the model and is used as it comes")
        wrapped = ta * (x + xattn(ref.ln1(x), memory))
        if _close(got, wrapped + tm * ref.mlp(ref.ln2(wrapped))) or _close(got, finish(wrapped)):
            expect(False, "the gate multiplies the residual stream too: only the sublayer's output is gated, "
                          "x = x + tanh(gate) * sublayer(...)")
        a = x + ta * xattn(ref.ln1(x), memory)
        if _close(got, a + tm * ref.mlp(ref.ln1(a))):
            expect(False, "ln1 is used for both sublayers: the MLP's input goes through ln2")
        if _close(got, a + tm * ref.mlp(a)) or _close(got, finish(x + ta * xattn(x, memory))):
            expect(False, "a layer norm is missing: each sublayer reads a normalised copy of x (ln1, ln2)")
        if _close(got, x + ta * xattn(ref.ln1(x), memory) + tm * ref.mlp(ref.ln2(x))):
            expect(False, "a parallel block: the MLP reads x from before the cross-attention. Update x with the "
                          "cross-attention first, then the MLP reads the updated x")
        if _close(got, ta * xattn(ref.ln1(x), memory)) or _close(got, finish(ta * xattn(ref.ln1(x), memory))):
            expect(False, "a residual connection is missing: each gated sublayer is ADDED to x")
        expect_close("the output of forward(x, memory)", got, want, atol=1e-5,
                     hint="x = x + tanh(attn_gate) * xattn(ln1(x), memory) (xattn returns a pair: take its first "
                          "element); then x = x + tanh(mlp_gate) * mlp(ln2(x))")
    return "matches the library's GatedCrossAttentionBlock"


# ----------------------------------------------------------------------------- 1. the answer's loss
@exercise_check("answer loss")
def check_answer_loss(fn) -> str:
    """fn(logits (B, T, V), pos (B,), answer (B,)) -> 0-d mean cross-entropy at each row's answer position pos."""
    g = torch.Generator().manual_seed(81)
    B, T, V = 6, 9, 11
    logits = 2 * torch.randn(B, T, V, generator=g)
    pos = torch.tensor([3, 8, 5, 2, 8, 6])          # right-padded rows: only two end in the last column
    answer = torch.randint(0, V, (B,), generator=g)
    got = fn(logits.clone(), pos.clone(), answer.clone())
    expect(isinstance(got, torch.Tensor), f"the loss should be a tensor (so it can be backpropagated); got {type(got).__name__}")
    expect(got.dim() == 0, f"the loss should be one number, a 0-d tensor (the mean over the batch); got shape {tuple(got.shape)}")
    want = answer_loss(logits, pos, answer)
    if _close(got, want, 1e-5):
        leaf = logits.clone().requires_grad_(True)
        fn(leaf, pos, answer).backward()
        expect(leaf.grad is not None and bool((leaf.grad[torch.arange(B), pos].abs().sum(-1) > 0).all()),
               "the loss does not send a gradient to the logits at pos: keep it a torch computation")
        return "mean cross-entropy of the next-token logits at each row's answer position"
    rows = torch.arange(B)
    ce = torch.nn.functional.cross_entropy
    if _close(got, ce(logits[:, -1], answer)):
        expect(False, "you read the logits of the LAST column: the rows are right-padded, so most questions end "
                      "earlier. Take row b's logits at position pos[b]")
    if _close(got, ce(logits[rows, (pos + 1).clamp(max=T - 1)], answer)):
        expect(False, "off by one: the logits AT pos[b] (the word 'answer') predict the next token, the answer. Use position pos[b], "
                      "not pos[b] + 1")
    if _close(got, ce(logits[rows, pos], answer, reduction="sum")):
        expect(False, "you summed over the batch: take the mean, so the learning rate does not depend on the batch size")
    if _close(got, ce(logits[rows, pos].softmax(-1), answer)):
        expect(False, "a softmax before the cross-entropy: cross_entropy takes raw logits (it applies log-softmax itself)")
    expect_close("the loss", got, want, atol=1e-5,
                 hint="pick logits[b, pos[b]] for every row b (one (B, V) tensor), then the mean cross-entropy "
                      "against answer")
    return "matches the library"


# ----------------------------------------------------------------------------- 3. choosing the answer
@exercise_check("choose the answer")
def check_choose_answer(fn) -> str:
    """fn(logits (B, V), allowed (A,) ids) -> (B,) vocabulary ids, the best allowed one per row."""
    g = torch.Generator().manual_seed(82)
    B, V = 7, 20
    logits = torch.randn(B, V, generator=g)
    allowed = torch.tensor([13, 4, 17, 9, 2])
    logits[:, 0] += 5.0                   # a token outside the answer set is the overall favourite
    got = fn(logits.clone(), allowed.clone())
    expect_shape("the output for 7 rows", got, (B,))
    want = choose_answer(logits, allowed)
    if torch.equal(got.long(), want):
        return "the most likely of the allowed answers, as vocabulary ids"
    if torch.equal(got.long(), logits.argmax(1)):
        expect(False, "you took the argmax over the whole vocabulary: the model's favourite may be a word that is no "
                      "answer (or a special token). Compare the allowed ids' logits only")
    if torch.equal(got.long(), logits[:, allowed].argmax(1)):
        expect(False, "these are positions in `allowed` (0..A-1), not vocabulary ids: map them back through allowed")
    if torch.equal(got.long(), allowed[logits[:, allowed].argmin(1)]):
        expect(False, "argmin: the most likely answer has the LARGEST logit")
    expect(False, f"expected {want.tolist()}, got {got.tolist()}. Restrict the logits to the allowed ids, take the "
                  "argmax per row, and return the vocabulary id it stands for")
