"""Training data and the weighted loss of the mixed-sequence transformer (notebook 05).

* :class:`MixedSequenceData`: captions + image codes -> an endless stream of training batches.
  Each example is written t2i (caption first: learn to draw) or i2t (image first: learn to caption),
  chosen per example; in text-first examples the caption is dropped (``[BOT, EOT]``) with a
  small probability so the same model also learns the unconditional image distribution that
  classifier-free guidance needs.
* :func:`segment_weights` / :func:`mixed_sequence_loss`: next-token cross-entropy, padding
  masked out, the conditioning segment weighted ``cond_weight`` (DALL-E: 1/8) and the target
  segment ``1 - cond_weight``, each normalised by its own token count.

Scoring what the model writes lives in :mod:`course_lib.scoring`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .device import seed_offset
from .vocabulary import (DIRECTIONS, PAD, SEG_IMAGE, SEG_NONE, SEG_TEXT, T2I, MixedVocabulary, build_sequences,
                         segment_ids)
from .validate import check_codes, check_device, check_float, check_int, check_tensor



class MixedSequenceData:
    """Examples for next-token training on both directions, built as tensors on ``device``.

    vocab: the :class:`MixedVocabulary`; codes: (N, h, w) or (N, A, h, w) long image codes (A
    augmented versions of each image, one drawn per use); captions: N strings, or N lists of
    caption variants (one drawn per use). ``p_i2t``: share of image->text examples (per
    batch exactly ``round(B * p_i2t)`` rows, placed at random); ``p_drop_caption``:
    chance a text->image example loses its caption.

    Everything is tokenized once: image ids (N, A, h*w) and caption ids (N, variants, longest)
    live on ``device``; a batch draws its indices there with its own ``torch.Generator`` (seeded by
    ``seed`` and ``COURSE_SEED``) and lays the sequences out with :func:`build_sequences`, so no
    Python list is built per example and nothing is copied from the host per step.
    """

    def __init__(self, vocab: MixedVocabulary, codes: torch.Tensor, captions: Sequence, *,
                 p_i2t: float = 0.5, p_drop_caption: float = 0.1, seed: int = 0, device=None):
        if not isinstance(vocab, MixedVocabulary):
            raise TypeError(f"vocab must be a MixedVocabulary; got {type(vocab).__name__}")
        check_tensor("codes", codes, integer=True, nonempty=True, what="image")
        if isinstance(captions, (str, bytes)) or not isinstance(captions, Sequence):
            raise TypeError(f"captions must be a list with one caption (or list of variants) per image; got "
                            f"{type(captions).__name__}")
        if codes.ndim == 3:
            codes = codes[:, None]
        if codes.ndim != 4 or tuple(codes.shape[2:]) != vocab.grid:
            raise ValueError(f"codes must have shape (N, {vocab.grid[0]}, {vocab.grid[1]}) or "
                             f"(N, A, {vocab.grid[0]}, {vocab.grid[1]}); got {tuple(codes.shape)}")
        if len(captions) != len(codes):
            raise ValueError(f"captions must hold one entry per image ({len(codes)}); got {len(captions)}")
        check_device("device", device)
        self.vocab = vocab
        self.p_i2t = check_float("p_i2t", p_i2t, min_value=0.0, max_value=1.0)
        self.p_drop_caption = check_float("p_drop_caption", p_drop_caption, min_value=0.0, max_value=1.0)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        cache: dict[str, list[int]] = {}
        encoded = []
        for i, c in enumerate(captions):
            variants = [c] if isinstance(c, str) else list(c)
            if not variants:
                raise ValueError(f"captions[{i}] must hold at least one caption; got none")
            for v in variants:
                if not isinstance(v, str):
                    raise TypeError(f"captions[{i}] must be a string or a list of strings; got {type(v).__name__} {v!r:.60}")
                if v not in cache:
                    cache[v] = vocab.encode_text(v)
            encoded.append([cache[v] for v in variants])
        longest = max(len(t) for variants in encoded for t in variants)
        most = max(len(variants) for variants in encoded)
        text = torch.full((len(encoded), most, max(1, longest)), PAD, dtype=torch.long)
        length = torch.zeros(len(encoded), most, dtype=torch.long)
        for i, variants in enumerate(encoded):
            for j, ids in enumerate(variants):
                text[i, j, :len(ids)] = torch.tensor(ids, dtype=torch.long)
                length[i, j] = len(ids)
        self.text_ids, self.text_length = text.to(self.device), length.to(self.device)
        self.n_variants = torch.tensor([len(v) for v in encoded], device=self.device)
        self.image_ids = vocab.codes_to_ids(codes.reshape(codes.shape[0], codes.shape[1], -1).long()).to(self.device)
        self.block_size = longest + vocab.n_image_tokens + 7  # BOS BOT EOT BOI EOI EOS + room
        # COURSE_SEED shifts the batch order, as in fit
        self.generator = torch.Generator(self.device).manual_seed(seed + seed_offset())

    def __len__(self) -> int:
        return len(self.image_ids)

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> seq (B, block_size) long, direction (B,) long (``T2I`` = 0, ``I2T`` = 1), on ``device``."""
        check_int("batch_size", batch_size, min_value=1)
        g, dev, B = self.generator, self.device, batch_size
        idx = torch.randint(len(self), (B,), generator=g, device=dev)
        variant = (torch.rand(B, generator=g, device=dev) * self.n_variants[idx]).long()
        version = torch.randint(self.image_ids.shape[1], (B,), generator=g, device=dev)
        n_i2t = round(B * self.p_i2t)
        direction = (torch.arange(B, device=dev) < n_i2t).long()[torch.randperm(B, generator=g, device=dev)]  # I2T = 1
        drop = (torch.rand(B, generator=g, device=dev) < self.p_drop_caption) & (direction == T2I)
        length = torch.where(drop, 0, self.text_length[idx, variant])
        seq = build_sequences(self.text_ids[idx, variant], length, self.image_ids[idx, version], direction,
                              self.block_size)
        return seq, direction

    def batches(self, batch_size: int):
        """Endless iterator of :meth:`batch` (what ``course_lib.train.fit`` takes as data)."""
        check_int("batch_size", batch_size, min_value=1)
        while True:
            yield self.batch(batch_size)


def segment_weights(seq: torch.Tensor, direction: torch.Tensor, cond_weight: float = 1 / 8) -> torch.Tensor:
    """Per-target loss weights, (B, T-1) for the targets ``seq[:, 1:]``.

    The target segment (image for text->image, text for image->text) shares ``1 - cond_weight``
    evenly over its tokens, the conditioning segment shares ``cond_weight``; ``<pad>`` and
    ``<bos>`` get 0. Each row's weights sum to 1 (or to ``1 - cond_weight`` if it has no
    conditioning tokens).
    """
    check_tensor("seq", seq, ndim=2, dtype=torch.long)
    check_tensor("direction", direction, shape=(seq.shape[0],), dtype=torch.long)
    check_codes("direction", direction, len(DIRECTIONS), hot=True)
    check_float("cond_weight", cond_weight, min_value=0.0, max_value=1.0)
    return _weights(segment_ids(seq)[:, 1:], direction, cond_weight)


def _weights(seg: torch.Tensor, direction: torch.Tensor, cond_weight: float) -> torch.Tensor:
    """:func:`segment_weights` from the targets' segment ids seg (B, T-1), already computed."""
    target_seg = torch.where(direction == T2I, SEG_IMAGE, SEG_TEXT)[:, None]
    is_target = seg == target_seg
    is_cond = (seg != SEG_NONE) & ~is_target
    w_t = (1 - cond_weight) * is_target / is_target.sum(1, keepdim=True).clamp(min=1)
    w_c = cond_weight * is_cond / is_cond.sum(1, keepdim=True).clamp(min=1)
    return w_t + w_c


def mixed_sequence_loss(model, batch, cond_weight: float = 1 / 8):
    """Weighted next-token loss for ``fit``: batch = (seq (B, T), direction (B,)).

    Returns (loss, {"t2i_text", "t2i_image", "i2t_text", "i2t_image"}): the mean cross-entropy
    (nats/token) of each modality in each direction as 0-d tensors, for the four-curve plot (NaN for
    a direction the batch does not hold).
    """
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"batch must be a pair (seq, direction); got {type(batch).__name__}")
    seq, direction = batch
    check_tensor("seq", seq, ndim=2, dtype=torch.long)
    if seq.shape[1] < 2:
        raise ValueError(f"seq must hold at least 2 tokens per row (an input and a target); got shape {tuple(seq.shape)}")
    check_tensor("direction", direction, shape=(seq.shape[0],), dtype=torch.long)
    check_float("cond_weight", cond_weight, min_value=0.0, max_value=1.0)
    logits = model(seq[:, :-1])
    targets = seq[:, 1:]
    ce = F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none")  # (B, T-1)
    seg = segment_ids(seq)[:, 1:]
    loss = (_weights(seg, direction, cond_weight) * ce).sum(1).mean()
    parts = {}
    with torch.no_grad():   # 0-d tensors, read by fit every few steps (no host round-trip per step)
        for d, dname in enumerate(DIRECTIONS):
            for s, sname in ((SEG_TEXT, "text"), (SEG_IMAGE, "image")):
                m = ((seg == s) & (direction == d)[:, None]).float()
                parts[f"{dname}_{sname}"] = (ce.detach() * m).sum() / m.sum()   # NaN if the batch has none
    return loss, parts
