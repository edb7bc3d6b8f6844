"""A small decoder-only transformer over mixed text + image-code sequences (nanoGPT style).

* causal self-attention, pre-norm blocks (``x + attn(ln(x))``, ``x + mlp(ln(x))``);
* input = token embedding + modality embedding (special / text / image) + a position:
  words and special tokens get a learned 1-D position (their index in the sequence); image
  codes get a learned 2-D position (row embedding + column embedding of their place in the grid),
  so code (r, c) means the same place whether the caption came first or not;
* a :class:`KVCache` keeps each layer's keys and values, so sampling feeds one new token per step
  instead of recomputing the whole context.

The positions are worked out from the ids themselves (an image code is any id at or above
``image_offset``; its grid place is its rank among the image codes seen so far), so the model
needs nothing but the token ids.

With ``audio_offset`` set (the omni model of :mod:`course_lib.omni`), ids from ``audio_offset`` up
are audio codes: a fourth modality embedding, and a learned 1-D position like words (an audio span
is a sequence in time); image codes are then the ids in ``image_offset .. audio_offset - 1``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..vocabulary import token_modality
from ..validate import check_codes, check_float, check_int, check_tensor, to_model


@dataclass
class TransformerConfig:
    """vocab_size: ids 0..V-1; image_offset: first image-code id; word_offset: first word id;
    grid: (h, w) codes per image; block_size: longest sequence; sizes of the network;
    audio_offset: first audio-code id, or None (default) for a model without audio."""

    vocab_size: int
    image_offset: int
    word_offset: int
    grid: tuple[int, int]
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    dropout: float = 0.0
    audio_offset: int | None = None

    def __post_init__(self):
        check_int("vocab_size", self.vocab_size, min_value=2)
        check_int("image_offset", self.image_offset, min_value=1, max_value=self.vocab_size - 1)
        check_int("word_offset", self.word_offset, min_value=1, max_value=self.image_offset)
        check_int("block_size", self.block_size, min_value=2)
        check_int("n_layer", self.n_layer, min_value=1)
        check_int("n_head", self.n_head, min_value=1)
        check_int("d_model", self.d_model, min_value=1)
        if self.d_model % self.n_head:
            raise ValueError(f"d_model must be divisible by n_head; got d_model={self.d_model}, n_head={self.n_head}")
        if not isinstance(self.grid, (tuple, list)) or len(self.grid) != 2:
            raise ValueError(f"grid must be (h, w) with positive sizes; got {self.grid!r}")
        self.grid = tuple(check_int(f"grid[{i}]", g, min_value=1) for i, g in enumerate(self.grid))
        check_float("dropout", self.dropout, min_value=0.0, max_value=1.0)
        if self.dropout == 1.0:
            raise ValueError("dropout must be < 1 (1 drops everything); got 1.0")
        if self.audio_offset is not None:
            check_int("audio_offset", self.audio_offset, min_value=self.image_offset + 1, max_value=self.vocab_size - 1)

    @property
    def image_end(self) -> int:
        """One past the last image-code id."""
        return self.vocab_size if self.audio_offset is None else self.audio_offset


class KVCache:
    """Keys and values of every layer for the tokens seen so far.

    k[l], v[l]: (B, n_head, max_len, head_dim), filled up to ``length``. ``n_image``: (B,) how
    many image codes each row has seen (their count gives the next code's grid place).
    """

    def __init__(self, config: TransformerConfig, batch_size: int, max_len: int | None = None,
                 device=None, dtype=torch.float32):
        check_int("batch_size", batch_size, min_value=1)
        max_len = config.block_size if max_len is None else check_int("max_len", max_len, min_value=1)
        hd = config.d_model // config.n_head
        shape = (batch_size, config.n_head, max_len, hd)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0
        self.max_len = max_len
        self.batch_size = batch_size
        self.n_image = torch.zeros(batch_size, dtype=torch.long, device=device)

    def __repr__(self) -> str:
        return f"KVCache(batch={self.batch_size}, length={self.length}/{self.max_len}, layers={len(self.k)})"


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal scaled dot-product attention, written out (the lesson of notebook 05).

    q: (B, H, Tq, d); k, v: (B, H, Tk, d) with Tq <= Tk. The Tq queries are the *last* Tq
    positions of the Tk-token sequence, so query i sits at position Tk - Tq + i and may attend to
    keys 0..Tk - Tq + i (with Tq == Tk the usual lower-triangular mask; with Tq == 1, a new token
    after a KV cache, every key). Returns (out (B, H, Tq, d), weights (B, H, Tq, Tk)); each row of
    weights sums to 1 and is 0 on the future.
    """
    Tq, Tk = q.shape[-2], k.shape[-2]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])            # (B, H, Tq, Tk)
    visible = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(diagonal=Tk - Tq)
    weights = scores.masked_fill(~visible, float("-inf")).softmax(dim=-1)
    return weights @ v, weights


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: one linear map makes queries, keys and values for all
    heads (``qkv``), each head attends on its own ``d_model / n_head`` slice, ``proj`` mixes the heads.

    Training and plain forward passes use torch's fused ``scaled_dot_product_attention`` (the same
    arithmetic as :func:`attention`, faster); ``need_weights=True`` runs :func:`attention` itself.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout

    def forward(self, x, cache: KVCache | None = None, layer: int = 0, need_weights: bool = False):
        """x: (B, T, D) -> (B, T, D) [, attention weights (B, H, T, T_total)]."""
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)
        q, k, v = (t.view(B, T, self.n_head, D // self.n_head).transpose(1, 2) for t in (q, k, v))
        start = 0
        if cache is not None:
            start = cache.length
            cache.k[layer][:, :, start:start + T] = k
            cache.v[layer][:, :, start:start + T] = v
            k = cache.k[layer][:, :, :start + T]
            v = cache.v[layer][:, :, :start + T]
        drop = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            y, weights = attention(q, k, v)
        elif start == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        elif T == 1:  # one new token sees everything cached: no mask needed
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        else:  # a chunk appended after a prefix: token i sees keys up to start + i
            mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(diagonal=start)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        y = y.transpose(1, 2).contiguous().view(B, T, D)
        return self.proj(y), weights


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln1(x)); x + mlp(ln2(x))."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, 4 * config.d_model), nn.GELU(),
                                 nn.Linear(4 * config.d_model, config.d_model), nn.Dropout(config.dropout))

    def forward(self, x, cache=None, layer=0, need_weights=False):
        a, w = self.attn(self.ln1(x), cache, layer, need_weights)
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return x, w


def scale_residual_projections(model: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation of the projections that write into the residual stream (attention
    ``proj`` and the MLP's output layer): N(0, 0.02 / sqrt(2 * n_layer)), so the stream's variance
    does not grow with depth."""
    for name, p in model.named_parameters():
        if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
            nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))


class MixedTransformer(nn.Module):
    """Decoder-only transformer: ids (B, T) -> next-token logits (B, T, V)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig; got {type(config).__name__}")
        self.config = config
        d = config.d_model
        self.tok_emb = nn.Embedding(config.vocab_size, d)
        self.pos_emb = nn.Embedding(config.block_size, d)       # 1-D position: words, special tokens
        self.row_emb = nn.Embedding(config.grid[0], d)          # 2-D position: image codes
        self.col_emb = nn.Embedding(config.grid[1], d)
        self.mod_emb = nn.Embedding(3 if config.audio_offset is None else 4, d)   # special / text / image (/ audio)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.vocab_size, bias=False)
        self.apply(self._init)
        scale_residual_projections(self, config.n_layer)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed(self, idx: torch.Tensor, start: int = 0, n_image: torch.Tensor | None = None) -> torch.Tensor:
        """idx: (B, T) ids at sequence positions start..start+T-1 -> (B, T, D) input vectors.

        n_image: (B,) image codes already seen before ``idx`` (from the cache), default 0.
        """
        cfg = self.config
        is_img = (idx >= cfg.image_offset) & (idx < cfg.image_end)
        modality = token_modality(idx, cfg.word_offset, cfg.image_offset, cfg.audio_offset)
        rank = is_img.long().cumsum(1) - 1
        if n_image is not None:
            rank = rank + n_image[:, None]
        rank = rank.clamp(0, cfg.grid[0] * cfg.grid[1] - 1)
        pos2d = self.row_emb(rank // cfg.grid[1]) + self.col_emb(rank % cfg.grid[1])
        pos = torch.arange(start, start + idx.shape[1], device=idx.device)
        pos1d = self.pos_emb(pos)[None]
        x = self.tok_emb(idx) + self.mod_emb(modality) + torch.where(is_img[..., None], pos2d, pos1d)
        return x

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None, need_weights: bool = False,
                prefix: torch.Tensor | None = None):
        """idx: (B, T) long ids in 0..V-1, on the model's device -> logits (B, T, V).

        cache: a :class:`KVCache`; ``idx`` then continues the cached tokens and the cache is
        updated. need_weights: also return each layer's attention weights, a list of
        (B, n_head, T, T_total) tensors (slower; for pictures). prefix: (B, P, D) input vectors
        placed before ``idx``'s embeddings (an image encoder's features, as LLaVA feeds its
        language model; ``idx``'s 1-D positions still start at 0); the logits then cover all
        P + T positions. Not with a cache.
        """
        check_tensor("idx", idx, ndim=2, dtype=torch.long)
        check_codes("idx", idx, self.config.vocab_size, hot=True)
        to_model("idx", idx, self)
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"cache must be a KVCache (model.new_cache(batch_size)) or None; got {type(cache).__name__}")
        B, T = idx.shape
        start = 0 if cache is None else cache.length
        limit = self.config.block_size if cache is None else cache.max_len
        if prefix is not None:
            check_tensor("prefix", prefix, ndim=3)
            if cache is not None:
                raise ValueError("prefix cannot be used with a cache")
            if prefix.shape[0] != B or prefix.shape[2] != self.config.d_model:
                raise ValueError(f"prefix must have shape (B={B}, P, d_model={self.config.d_model}); "
                                 f"got {tuple(prefix.shape)}")
        if start + T > min(limit, self.config.block_size):        # (a prefix takes no 1-D positions)
            raise ValueError(f"sequence of {start + T} tokens is longer than block_size={self.config.block_size}"
                             + (f" (cache max_len={cache.max_len})" if cache is not None else ""))
        if cache is not None and cache.batch_size != B:
            raise ValueError(f"idx has batch size {B} but the cache was made for {cache.batch_size}")
        x = self.embed(idx, start, None if cache is None else cache.n_image)
        if prefix is not None:
            x = torch.cat([prefix.to(x.dtype), x], dim=1)
        x = self.drop(x)
        weights = []
        for i, block in enumerate(self.blocks):
            x, w = block(x, cache, i, need_weights)
            weights.append(w)
        logits = self.head(self.ln_f(x))
        if cache is not None:
            cache.length += T
            cache.n_image += ((idx >= self.config.image_offset) & (idx < self.config.image_end)).sum(1)
        return (logits, weights) if need_weights else logits

    def new_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        p = next(self.parameters())
        return KVCache(self.config, batch_size, max_len, device=p.device, dtype=p.dtype)
