"""Sampling from the mixed-sequence transformer: temperature, top-k, classifier-free guidance,
constrained decoding and the KV cache.

One step of sampling (:func:`next_token_logits`, then a draw)::

    cond, uncond = model(context)[:, -1], model(context without caption)[:, -1]   # (B, V) scores
    logits = uncond + s * (cond - uncond)               # classifier-free guidance (s = 1: off), on logits
    logits[~allowed] = -inf                             # constrained decoding, after the mix
    logits = logits / temperature; keep exactly the top k   # temperature, top-k (ties: still k)
    next = multinomial(softmax(logits))                 # (or argmax when temperature == 0)

:func:`generate` runs that loop either with a :class:`~course_lib.models.transformer.KVCache`
(feed one new token per step) or by recomputing the whole context each step; for the same
``generator`` seed both return the same tokens.
"""
from __future__ import annotations

from typing import Callable

import torch

from .vocabulary import BOI, BOS, BOT, EOI, EOT, PAD, MixedVocabulary
from .device import draw_device
from .validate import as_int, check_codes, check_float, check_int, check_tensor

AllowedFn = Callable[[int, torch.Tensor], torch.Tensor]


def guided_logits(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``uncond + scale * (cond - uncond)``.

    cond, uncond: (B, V) finite logits with and without the caption. scale: a finite number >= 0;
    1 = plain conditional sampling, 0 = unconditional, > 1 = pushed towards the caption.
    """
    check_tensor("cond", cond, ndim=2, floating=True, finite=True)
    check_tensor("uncond", uncond, shape=tuple(cond.shape), floating=True, finite=True)
    check_float("scale", scale, min_value=0.0)
    return _guide(cond, uncond, scale)


def _guide(cond, uncond, scale):
    """:func:`guided_logits` without its checks (see :func:`_filter`)."""
    return uncond + scale * (cond - uncond)


def _check_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B, V) float with no NaN or +inf (-inf marks a forbidden id and is allowed)."""
    check_tensor("logits", logits, ndim=2, floating=True)
    if logits.numel() and bool((logits.isnan() | logits.isposinf()).any()):
        n_nan, n_inf = int(logits.isnan().sum()), int(logits.isposinf().sum())
        raise ValueError(f"logits must be finite numbers (or -inf for a forbidden id); got {n_nan} NaN and "
                         f"{n_inf} +inf values (of {logits.numel()})")
    return logits


def _check_temperature_top_k(temperature, top_k) -> None:
    """temperature: a finite number >= 0 (0 = greedy); top_k: None or an int >= 1."""
    check_float("temperature", temperature, min_value=0.0)
    if top_k is not None:
        check_int("top_k", top_k, min_value=1)


def _check_filter_inputs(logits, top_k, allowed) -> None:
    """The checks of :func:`filter_logits` (logits, top_k, the allowed mask), without filtering."""
    _check_logits(logits)
    if top_k is not None:
        check_int("top_k", top_k, min_value=1)
    logits = logits.float()
    if allowed is not None:
        check_tensor("allowed", allowed, dtype=torch.bool)
        if allowed.ndim not in (1, 2) or allowed.shape[-1] != logits.shape[-1] or (
                allowed.ndim == 2 and allowed.shape[0] not in (1, logits.shape[0])):
            raise ValueError(f"allowed must have {logits.shape[-1]} entries per row (the vocabulary); "
                             f"got shape {tuple(allowed.shape)}")
        if not bool(allowed.any(-1).all()):
            raise ValueError("allowed must allow at least one token in every row")
        masked = logits.masked_fill(~allowed.to(logits.device), float("-inf"))
    else:
        masked = logits
    if masked.numel() and not bool(torch.isfinite(masked).any(-1).all()):
        raise ValueError("logits must leave at least one id with a finite score in every row; got a row "
                         "where every id is -inf (forbidden)")


def filter_logits(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                  allowed: torch.Tensor | None = None) -> torch.Tensor:
    """logits: (B, V) -> (B, V) with disallowed ids and all but the ``top_k`` best set to -inf,
    divided by ``temperature`` (a finite number > 0). allowed: (V,) or (B, V) bool.

    logits may hold -inf (a forbidden id) but no NaN or +inf; every row must keep at least one id.
    """
    check_float("temperature", temperature, min_value=0.0, strict_min=True)
    _check_filter_inputs(logits, top_k, allowed)
    return _filter(logits, temperature, top_k, allowed)


def _filter(logits, temperature, top_k, allowed):
    """:func:`filter_logits` without its checks: what :func:`generate` runs at every step on inputs it
    checked once (no per-token host round-trip for validation)."""
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed.to(logits.device), float("-inf"))
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        # keep exactly k ids, even when several tie with the k-th score ("logits >= kth" would keep more)
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, logits.topk(top_k, dim=-1).indices, True)
        logits = logits.masked_fill(~keep, float("-inf"))
    return logits


def next_token_logits(cond: torch.Tensor, uncond: torch.Tensor, *, scale: float = 1.0, temperature: float = 1.0,
                      top_k: int | None = None, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """One sampling step's scores, the library's answer to notebook 06's exercise.

    cond, uncond: (B, V) logits with and without the caption (pass ``cond`` twice when there is no
    guidance). Mix ``uncond + scale * (cond - uncond)`` on the logits, set disallowed ids
    (``allowed``: (V,) or (B, V) bool) to -inf, divide by ``temperature`` (> 0) and keep exactly the
    ``top_k`` best ids. Returns (B, V) float32; ``softmax`` of it is the distribution to draw from.
    """
    check_tensor("cond", cond, ndim=2, floating=True, finite=True)
    check_tensor("uncond", uncond, shape=tuple(cond.shape), floating=True, finite=True)
    check_float("scale", scale, min_value=0.0)
    check_float("temperature", temperature, min_value=0.0, strict_min=True)
    _check_filter_inputs(cond, top_k, allowed)
    return _next_token_logits(cond, uncond, scale=scale, temperature=temperature, top_k=top_k, allowed=allowed)


def _next_token_logits(cond, uncond, *, scale, temperature, top_k, allowed):
    """:func:`next_token_logits` without its checks: the step :func:`generate` runs by default."""
    return _filter(_guide(cond, uncond, scale), temperature, top_k, allowed)


def sample_next(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                allowed: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """logits: (B, V) -> next ids (B,) long. ``temperature`` a finite number >= 0; 0 means greedy
    (argmax, where ``top_k`` changes nothing but is still checked)."""
    _check_temperature_top_k(temperature, top_k)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    _check_filter_inputs(logits, top_k, allowed)
    return _sample(logits, temperature, top_k, allowed, generator)


def _sample(logits, temperature, top_k, allowed, generator):
    """:func:`sample_next` without its checks (see :func:`_filter`)."""
    if temperature == 0:
        return _filter(logits, 1.0, None, allowed).argmax(-1)
    return _draw(_filter(logits, temperature, top_k, allowed).softmax(-1), generator)


def _on_device(generator, device):
    """The random stream for sampling on ``device``: ``generator`` itself when it lives there (the CPU:
    same tokens as always); otherwise a generator on ``device`` seeded once from it, so every draw
    stays on the accelerator (no (B, V) probabilities copied to the host per token)."""
    if generator is None or generator.device.type == torch.device(device).type:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device).manual_seed(seed)


def _masks_on(device, allowed: AllowedFn) -> AllowedFn:
    """``allowed`` whose masks are moved to ``device`` once each (not once per token)."""
    moved: dict = {}
    device = torch.device(device)

    def on_device(step, generated):
        mask = allowed(step, generated)
        if mask.device.type == device.type == "cpu" or mask.device == device:
            return mask
        if id(mask) not in moved:
            moved[id(mask)] = (mask, mask.to(device))    # keep the original alive so its id stays its own
        return moved[id(mask)][1]
    return on_device


def _draw(probs, generator):
    """One id per row of probs (B, V), with ``generator``'s random stream."""
    drawn = torch.multinomial(probs.to(draw_device(generator, probs.device)), 1, generator=generator)
    return drawn.squeeze(1).to(probs.device)


# ------------------------------------------------------------------------------ constraints
def image_span_constraint(vocab: MixedVocabulary) -> AllowedFn:
    """For a prompt that ends with ``<boi>``: steps 0..h*w-1 may only be image codes, step h*w
    only ``<eoi>``. Returns ``allowed(step, generated) -> (V,) bool``."""
    codes, end = vocab.allowed_mask("image"), torch.zeros(len(vocab), dtype=torch.bool)
    end[EOI] = True
    n = vocab.n_image_tokens

    def allowed(step: int, generated: torch.Tensor) -> torch.Tensor:
        return codes if step < n else end
    return allowed


def text_span_constraint(vocab: MixedVocabulary) -> AllowedFn:
    """For a prompt that ends with ``<bot>``: words or ``<eot>`` only (never a code inside text)."""
    mask = vocab.allowed_mask("text")  # words and <eot>; never <unk>, a code or another marker
    return lambda step, generated: mask


# ------------------------------------------------------------------------------ the loop
@torch.no_grad()
def generate(model, prompt: torch.Tensor, steps: int, *, temperature: float = 1.0, top_k: int | None = None,
             guidance_scale: float = 1.0, uncond_prompt: torch.Tensor | None = None,
             allowed: AllowedFn | None = None, stop_id: int | None = None, use_cache: bool = True,
             generator: torch.Generator | None = None, step_logits: Callable | None = None) -> torch.Tensor:
    """Sample ``steps`` tokens after ``prompt``.

    prompt: (B, T0) long ids, the same length in every row. uncond_prompt: (B, T1) the prompt
    without its condition, needed when ``guidance_scale != 1``. allowed(step, generated (B, step))
    -> (V,) or (B, V) bool restricts each step (constrained decoding). stop_id: once a row emits it,
    the row continues with ``<pad>`` and the loop ends early when every row has stopped.
    Returns the new tokens, (B, steps) long (fewer columns if every row stopped early).

    step_logits: your own ``next_token_logits(cond, uncond, *, scale, temperature, top_k, allowed)``
    (notebook 06's exercise) in place of the library's; the loop then draws from ``softmax`` of what
    it returns (the argmax when ``temperature == 0``, where it is called with temperature 1 and no top-k).
    """
    check_tensor("prompt", prompt, ndim=2, dtype=torch.long)
    if step_logits is not None and not callable(step_logits):
        raise TypeError(f"step_logits must be a function like next_token_logits, or None; got "
                        f"{type(step_logits).__name__}")
    step_logits = step_logits or _next_token_logits
    if prompt.shape[0] == 0 or prompt.shape[1] == 0:
        raise ValueError(f"prompt must hold at least one row of at least one token (B, T0); got shape "
                         f"{tuple(prompt.shape)}")
    check_codes("prompt", prompt, model.config.vocab_size)
    check_int("steps", steps, min_value=1)
    _check_temperature_top_k(temperature, top_k)
    check_float("guidance_scale", guidance_scale, min_value=0.0)
    if stop_id is not None:
        check_int("stop_id", stop_id, min_value=0, max_value=model.config.vocab_size - 1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    if allowed is not None and not callable(allowed):
        raise TypeError(f"allowed must be a function allowed(step, generated) -> (V,) bool, or None; "
                        f"got {type(allowed).__name__}")
    if prompt.shape[1] + steps - 1 > model.config.block_size:  # the last sampled token is never fed back
        raise ValueError(f"prompt ({prompt.shape[1]} tokens) + steps ({steps}) - 1 must be at most the model's "
                         f"block_size {model.config.block_size}; got {prompt.shape[1] + steps - 1} tokens")
    guided = guidance_scale != 1.0
    if guided:
        if uncond_prompt is None:
            raise ValueError("guidance_scale != 1 needs uncond_prompt (the prompt with its caption removed)")
        check_tensor("uncond_prompt", uncond_prompt, ndim=2, dtype=torch.long)
        if uncond_prompt.shape[0] != prompt.shape[0]:
            raise ValueError(f"uncond_prompt must have {prompt.shape[0]} rows like prompt; got {uncond_prompt.shape[0]}")
        if uncond_prompt.shape[1] == 0:
            raise ValueError("uncond_prompt must hold at least one token per row; got shape "
                             f"{tuple(uncond_prompt.shape)}")
        check_codes("uncond_prompt", uncond_prompt, model.config.vocab_size)
        if uncond_prompt.shape[1] + steps - 1 > model.config.block_size:
            raise ValueError(f"uncond_prompt ({uncond_prompt.shape[1]} tokens) + steps ({steps}) - 1 must be at most "
                             f"the model's block_size {model.config.block_size}; got {uncond_prompt.shape[1] + steps - 1}")
    was_training = model.training
    model.eval()
    B = prompt.shape[0]
    device = next(model.parameters()).device
    prompt = prompt.to(device)
    contexts = [prompt] + ([uncond_prompt.to(device)] if guided else [])
    generator = _on_device(generator, device)
    if allowed is not None:
        allowed = _masks_on(device, allowed)
    caches = [model.new_cache(B, c.shape[1] + steps) for c in contexts] if use_cache else None
    out = torch.empty(B, 0, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    every = _stop_check_every(device)
    all_done_at = torch.full((), steps, dtype=torch.long, device=device)  # first step after which every row is done
    for step in range(steps):
        if use_cache:
            feeds = contexts if step == 0 else [out[:, -1:]] * len(contexts)
            logits = [model(f, cache=c)[:, -1] for f, c in zip(feeds, caches)]
        else:
            logits = [model(torch.cat([c, out], dim=1))[:, -1] for c in contexts]
        # inputs were checked once above; per step only the arithmetic runs (no validation round-trips)
        cond, uncond = logits[0], logits[1] if guided else logits[0]   # no guidance: mixing cond with itself is cond
        mask = allowed(step, out) if allowed is not None else None
        if temperature == 0:
            nxt = step_logits(cond, uncond, scale=guidance_scale, temperature=1.0, top_k=None, allowed=mask).argmax(-1)
        else:
            scores = step_logits(cond, uncond, scale=guidance_scale, temperature=temperature, top_k=top_k, allowed=mask)
            nxt = _draw(scores.float().softmax(-1), generator)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        out = torch.cat([out, nxt[:, None]], dim=1)
        if stop_id is not None:
            done |= nxt == stop_id
            if every == 1:
                if bool(done.all()):
                    break
            else:  # no per-token read of the device: note when all rows are done, look every few tokens
                all_done_at = torch.where(done.all() & (all_done_at == steps), step, all_done_at)
                if (step + 1) % every == 0 and bool(all_done_at < steps):
                    break
    if every > 1 and stop_id is not None:
        out = out[:, :int(all_done_at) + 1]  # the same tokens as stopping at once (the rest is padding)
    model.train(was_training)
    return out


def _stop_check_every(device: torch.device) -> int:
    """How many tokens the sampler draws between looks at "has every row stopped?": 1 where reading a
    flag is free (the CPU), 16 on accelerators, where each look waits for the device. The tokens and
    the returned length are the same either way."""
    return 1 if torch.device(device).type == "cpu" else 16


# ------------------------------------------------------------------------------ prompts
def text_to_image_prompt(vocab: MixedVocabulary, text_ids: list[int]) -> list[int]:
    """``[BOS, BOT, words.., EOT, BOI]``: what the model sees before drawing. Empty ``text_ids`` gives
    the unconditional prompt used by classifier-free guidance."""
    text_ids = [as_int(f"text_ids[{n}]", i) for n, i in enumerate(text_ids)]
    return [BOS, BOT, *text_ids, EOT, BOI]


def _check_model_vocab(model, vocab) -> None:
    """The model must have been built for ``vocab`` (same number of ids and image grid)."""
    if not isinstance(vocab, MixedVocabulary):
        raise TypeError(f"vocab must be a MixedVocabulary; got {type(vocab).__name__}")
    cfg = model.config
    if (cfg.vocab_size, cfg.image_offset, tuple(cfg.grid)) != (len(vocab), vocab.image_offset, vocab.grid):
        raise ValueError(f"vocab must be the one the model was built for ({cfg.vocab_size} ids, image codes from "
                         f"{cfg.image_offset}, grid {tuple(cfg.grid)}); got {len(vocab)} ids, image codes from "
                         f"{vocab.image_offset}, grid {vocab.grid}")


@torch.no_grad()
def draw(model, vocab: MixedVocabulary, captions: list[str], *, temperature: float = 1.0,
         top_k: int | None = None, guidance_scale: float = 1.0, constrained: bool = True,
         use_cache: bool = True, generator: torch.Generator | None = None,
         unknown: str = "error", batch_size: int = 256, step_logits: Callable | None = None) -> torch.Tensor:
    """Text -> image codes: one sample per caption.

    Returns (N, h*w + 1) ids: the image span after ``<boi>`` (h*w codes then ``<eoi>`` when
    ``constrained``; whatever the model wrote otherwise). Captions of equal token length are
    sampled together (no padding needed). No captions give a (0, h*w + 1) tensor. A caption too
    long for the model's block size is a ``ValueError`` naming it. ``step_logits``: see :func:`generate`.
    """
    if isinstance(captions, str) or not isinstance(captions, (list, tuple)):
        raise TypeError(f"captions must be a list of strings; got {type(captions).__name__}")
    _check_model_vocab(model, vocab)
    for i, c in enumerate(captions):
        if not isinstance(c, str):
            raise TypeError(f"captions[{i}] must be a string; got {type(c).__name__} {c!r:.60}")
    _check_temperature_top_k(temperature, top_k)
    check_float("guidance_scale", guidance_scale, min_value=0.0)
    check_int("batch_size", batch_size, min_value=1)
    encoded = [vocab.encode_text(c, unknown=unknown) for c in captions]
    n = vocab.n_image_tokens
    block = model.config.block_size
    for i, ids in enumerate(encoded):
        need = len(text_to_image_prompt(vocab, ids)) + n  # prompt + the h*w codes fed back before <eoi>
        if need > block:
            short = captions[i] if len(captions[i]) <= 60 else captions[i][:57] + "..."
            raise ValueError(f"captions[{i}] is too long for the model: {len(ids)} words + 4 markers + {n} image "
                             f"codes = {need} tokens > block_size {block}; got {short!r}")
    device = next(model.parameters()).device
    out = torch.empty(len(captions), n + 1, dtype=torch.long, device=device)
    groups: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        groups.setdefault(len(ids), []).append(i)
    allowed = image_span_constraint(vocab) if constrained else None
    for length in sorted(groups):
        members = groups[length]
        for s in range(0, len(members), batch_size):
            idx = members[s:s + batch_size]
            prompt = torch.tensor([text_to_image_prompt(vocab, encoded[i]) for i in idx], device=device)
            uncond = torch.tensor([text_to_image_prompt(vocab, [])] * len(idx), device=device)
            out[idx] = generate(model, prompt, n + 1, temperature=temperature, top_k=top_k,
                                guidance_scale=guidance_scale, uncond_prompt=uncond, allowed=allowed,
                                use_cache=use_cache, generator=generator, step_logits=step_logits)
    return out


def _check_spans(vocab: MixedVocabulary, spans) -> torch.Tensor:
    check_tensor("spans", spans, shape=(None, vocab.n_image_tokens + 1), integer=True)
    return check_codes("spans", spans, len(vocab))


def spans_to_images(tokenizer, vocab: MixedVocabulary, spans: torch.Tensor) -> torch.Tensor:
    """Decode what :func:`draw` wrote: spans (N, h*w + 1) (codes, then ``<eoi>``) -> images
    (N, C, S, S) in [0, 1] on the CPU, through ``tokenizer`` (an ``ImageTokenizer``)."""
    _check_spans(vocab, spans)
    codes = vocab.ids_to_codes(spans[:, :-1].cpu())
    return tokenizer.decode(codes.to(tokenizer.device)).cpu()


def valid_image_spans(vocab: MixedVocabulary, spans: torch.Tensor) -> torch.Tensor:
    """spans: (N, h*w + 1) ids from :func:`draw` -> (N,) bool: exactly h*w codes then ``<eoi>``."""
    _check_spans(vocab, spans)
    n = vocab.n_image_tokens
    return vocab.is_image(spans[:, :n]).all(1) & (spans[:, n] == EOI)


def _image_first_prompts(model, vocab: MixedVocabulary, codes: torch.Tensor, text_ids: list[int] = ()) -> torch.Tensor:
    """codes (N, h, w) long (checked) -> (N, 2 + h*w + 2 + len(text_ids)) ids ``[<bos>, <boi>, codes, <eoi>,
    <bot>] + text_ids`` on the model's device: the prompt of image -> text."""
    _check_model_vocab(model, vocab)
    check_tensor("codes", codes, ndim=3, integer=True)
    if tuple(codes.shape[1:]) != vocab.grid:
        raise ValueError(f"codes must have shape (N, {vocab.grid[0]}, {vocab.grid[1]}); got {tuple(codes.shape)}")
    check_codes("codes", codes, vocab.num_codes)
    device = next(model.parameters()).device
    ids = vocab.codes_to_ids(codes.reshape(len(codes), vocab.n_image_tokens)).to(device)
    before = torch.tensor([BOS, BOI], device=device).expand(len(ids), 2)
    after = torch.tensor([EOI, BOT, *text_ids], dtype=torch.long, device=device).expand(len(ids), -1)
    return torch.cat([before, ids, after], dim=1)


@torch.no_grad()
def describe_images(model, vocab: MixedVocabulary, codes: torch.Tensor, *, temperature: float = 0.0,
                    top_k: int | None = None, max_words: int = 16, use_cache: bool = True,
                    generator: torch.Generator | None = None, batch_size: int = 500) -> list[str]:
    """Image -> text: codes (N, h, w) long -> N captions (greedy when ``temperature == 0``).

    N = 0 gives ``[]``.
    """
    _check_temperature_top_k(temperature, top_k)
    check_int("max_words", max_words, min_value=1)
    check_int("batch_size", batch_size, min_value=1)
    prompts = _image_first_prompts(model, vocab, codes)
    if len(prompts) == 0:
        return []
    room = model.config.block_size - prompts.shape[1]
    if room < 1:
        raise ValueError(f"the model's block_size {model.config.block_size} leaves no room for a caption after "
                         f"an image prompt of {prompts.shape[1]} tokens")
    steps = min(max_words + 1, room)
    captions = []
    for s in range(0, len(prompts), batch_size):
        new = generate(model, prompts[s:s + batch_size], steps, temperature=temperature, top_k=top_k,
                       allowed=text_span_constraint(vocab), stop_id=EOT, use_cache=use_cache,
                       generator=generator)
        captions += [vocab.decode_text(row.tolist()) for row in new]
    return captions


@torch.no_grad()
def word_logits_after_image(model, vocab: MixedVocabulary, codes: torch.Tensor, prefix: str, words: list[str], *,
                            batch_size: int = 500) -> torch.Tensor:
    """How the model reads an image, as scores for a closed set of words.

    codes: (N, h, w) long image codes. The model is fed ``[<bos>, <boi>, codes, <eoi>, <bot>] +``
    the words of ``prefix`` (image -> text, as in :func:`describe_images`), and the logits of its
    next token are kept for ``words`` only (each one word the vocabulary knows). Returns (N,
    len(words)) float logits, not normalised: a softmax over the last axis gives the model's
    probabilities among those words. Notebook 06 uses it to let the model judge its own drawings
    (prefix ``"a handwritten"``, words ``"zero"`` ... ``"nine"``).
    """
    _check_model_vocab(model, vocab)
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string (words before the scored one, may be empty); got "
                        f"{type(prefix).__name__}")
    if isinstance(words, str) or not isinstance(words, (list, tuple)) or not words:
        raise TypeError(f"words must be a non-empty list of single words; got {words!r:.60}")
    word_ids = []
    for i, w in enumerate(words):
        ids = vocab.encode_text(w) if isinstance(w, str) else None
        if ids is None or len(ids) != 1:
            raise ValueError(f"words[{i}] must be one word the vocabulary knows; got {w!r:.60}")
        word_ids.append(ids[0])
    check_int("batch_size", batch_size, min_value=1)
    prompts = _image_first_prompts(model, vocab, codes, vocab.encode_text(prefix) if prefix.strip() else [])
    if prompts.shape[1] > model.config.block_size:
        raise ValueError(f"prefix is too long for the model: {prompts.shape[1]} tokens > block_size "
                         f"{model.config.block_size}")
    was_training = model.training
    model.eval()
    cols = torch.tensor(word_ids, device=prompts.device)
    out = [model(prompts[s:s + batch_size])[:, -1, cols].float() for s in range(0, len(prompts), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, len(words), device=prompts.device)


def rerank(readings: torch.Tensor, asked: torch.Tensor) -> torch.Tensor:
    """Best of n by the model's own reading (notebook 06's exercise 3).

    readings: (P, n, C) logits over C classes (e.g. the ten digit words) for n candidates of each
    of P prompts; asked: (P,) the class each prompt asked for. Returns (P,) long: for each prompt,
    the candidate with the highest *probability* of the asked class (softmax over the C classes:
    logits carry an arbitrary constant per candidate, so they are not compared across candidates).
    """
    check_tensor("readings", readings, ndim=3, floating=True, nonempty=True)
    check_tensor("asked", asked, shape=(readings.shape[0],), integer=True)
    check_codes("asked", asked, readings.shape[2])
    logp = readings.float().log_softmax(-1)                               # (P, n, C)
    index = asked.to(readings.device).long()[:, None, None].expand(-1, readings.shape[1], 1)
    return logp.gather(-1, index).squeeze(-1).argmax(1)
