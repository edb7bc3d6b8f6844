"""Sampling: temperature, top-k, guidance, constrained decoding, KV cache (course_lib.sampling)."""
import pytest
import torch

from course_lib.models.transformer import MixedTransformer, TransformerConfig
from course_lib.sampling import (describe_images, draw, filter_logits, generate, guided_logits, rerank, sample_next,
                                 spans_to_images, text_to_image_prompt, valid_image_spans, word_logits_after_image)
from course_lib.vocabulary import BOI, BOS, BOT, EOI, EOT, PAD, MixedVocabulary, WordTokenizer

WORDS = ["a", "digit", "seven", "the", "two"]


@pytest.fixture
def vocab():
    return MixedVocabulary(WordTokenizer(WORDS), num_codes=12, grid=(3, 3))


@pytest.fixture
def model(vocab):
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=len(vocab), image_offset=vocab.image_offset, word_offset=vocab.word_offset,
                            grid=vocab.grid, block_size=32, n_layer=2, n_head=2, d_model=32)
    m = MixedTransformer(cfg).eval()
    with torch.no_grad():  # an untrained model with sharp, word-loving logits: the worst case
        m.head.weight[vocab.word_offset:vocab.image_offset] += 0.5
    return m


def test_guided_logits():
    cond, uncond = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    assert torch.equal(guided_logits(cond, uncond, 1.0), cond)
    assert torch.equal(guided_logits(cond, uncond, 0.0), uncond)
    assert torch.equal(guided_logits(cond, uncond, 3.0), torch.tensor([[4.0, -2.0]]))
    with pytest.raises(ValueError, match="scale must be >= 0.0"):
        guided_logits(cond, uncond, -1.0)


def test_filter_and_sample():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    kept = filter_logits(logits, top_k=2)
    assert torch.isinf(kept[0, 2:]).all() and torch.isfinite(kept[0, :2]).all()
    allowed = torch.tensor([False, False, True, True])
    assert sample_next(logits, temperature=0, allowed=allowed).item() == 2
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(logits, temperature=1.0, top_k=2, generator=g) for _ in range(200)])
    assert set(draws.flatten().tolist()) == {0, 1}
    with pytest.raises(ValueError, match="temperature must be > 0.0"):
        filter_logits(logits, temperature=0.0)
    with pytest.raises(ValueError, match="at least one token"):
        filter_logits(logits, allowed=torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        filter_logits(logits, top_k=0)


def test_constrained_decoding_never_writes_words_in_images(vocab, model):
    g = torch.Generator().manual_seed(0)
    spans = draw(model, vocab, ["a seven", "the digit two", "a two"] * 4, temperature=1.5, generator=g)
    assert valid_image_spans(vocab, spans).all()
    assert vocab.is_image(spans[:, :9]).all() and (spans[:, 9] == EOI).all()
    free = draw(model, vocab, ["a seven"] * 12, temperature=1.5, constrained=False, generator=g)
    assert not valid_image_spans(vocab, free).all()  # this model writes words inside images when let loose


def test_cache_and_no_cache_give_same_tokens(vocab, model):
    captions = ["a seven", "a two", "the digit two"]
    a = draw(model, vocab, captions, guidance_scale=2.0, top_k=5, generator=torch.Generator().manual_seed(3))
    b = draw(model, vocab, captions, guidance_scale=2.0, top_k=5, use_cache=False,
             generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_generate_needs_uncond_for_guidance(vocab, model):
    prompt = torch.tensor([text_to_image_prompt(vocab, vocab.encode_text("a seven"))])
    with pytest.raises(ValueError, match="needs uncond_prompt"):
        generate(model, prompt, 3, guidance_scale=2.0)
    with pytest.raises(ValueError, match="unknown word 'sevn'"):
        draw(model, vocab, ["a sevn"])


def test_describe_images_writes_only_words(vocab, model):
    codes = torch.randint(0, vocab.num_codes, (5, 3, 3))
    captions = describe_images(model, vocab, codes, temperature=1.0, max_words=6,
                               generator=torch.Generator().manual_seed(0))
    assert len(captions) == 5
    for c in captions:
        assert all(w in WORDS for w in c.split())
    with pytest.raises(ValueError, match=r"codes must have shape \(N, 3, 3\)"):
        describe_images(model, vocab, torch.zeros(2, 2, 2, dtype=torch.long))


def test_stop_id_pads_after_stop(vocab, model):
    from course_lib.sampling import text_span_constraint
    prompt = torch.tensor([[1, 3] + [vocab.image_offset] * 9 + [4, 5]] * 4)
    out = generate(model, prompt, 8, temperature=1.0, allowed=text_span_constraint(vocab), stop_id=EOT,
                   generator=torch.Generator().manual_seed(0))
    for row in out.tolist():
        if EOT in row:
            assert all(t == PAD for t in row[row.index(EOT) + 1:])


def test_spans_to_images_decodes_the_codes_before_eoi():
    from course_lib.image_tokenizer import ImageTokenizer, tokenizer_recipe
    torch.manual_seed(0)
    tok = ImageTokenizer.from_hparams(tokenizer_recipe("shapes", "smoke"))
    vocab = MixedVocabulary(WordTokenizer(WORDS), num_codes=tok.num_codes, grid=tok.grid)
    codes = torch.randint(0, tok.num_codes, (3, *tok.grid))
    spans = torch.cat([vocab.codes_to_ids(codes.reshape(3, -1)), torch.full((3, 1), EOI)], dim=1)
    images = spans_to_images(tok, vocab, spans)
    assert images.shape == (3, 3, 24, 24) and images.device.type == "cpu"
    assert torch.equal(images, tok.decode(codes))


@pytest.mark.parametrize("stop_at", [0, 2, None])
def test_stop_check_every_few_tokens_gives_the_same_tokens(vocab, model, monkeypatch, stop_at):
    """On a GPU the sampler looks at "every row stopped?" every 16 tokens (no per-token device read);
    the tokens and the returned length must equal stopping at once (the CPU's per-token look)."""
    import course_lib.sampling as sampling
    prompt = torch.tensor([[1, 3] + [vocab.image_offset] * 9 + [4, 5]] * 3)
    free = generate(model, prompt, 12, temperature=0)
    stop_id = None if stop_at is None else int(free[0, stop_at])
    kwargs = dict(temperature=1.0, stop_id=stop_id if stop_id is not None else EOT)
    runs = {}
    for every in (1, 4, 16):
        monkeypatch.setattr(sampling, "_stop_check_every", lambda device, n=every: n)
        runs[every] = [generate(model, prompt, 12, temperature=0, stop_id=stop_id),
                       generate(model, prompt, 12, generator=torch.Generator().manual_seed(1), **kwargs)]
    for every in (4, 16):
        for a, b in zip(runs[1], runs[every]):
            assert torch.equal(a, b), (every, a, b)
    if stop_at is not None:
        first = free[0].tolist().index(stop_id)   # greedy rows are equal: all stop at the first stop_id
        assert runs[16][0].shape[1] == first + 1


def test_stop_check_every_is_one_on_the_cpu():
    from course_lib.sampling import _stop_check_every
    assert _stop_check_every(torch.device("cpu")) == 1 and _stop_check_every(torch.device("cuda")) == 16


def test_word_logits_after_image_are_the_models_next_word_scores(vocab, model):
    codes = torch.randint(0, vocab.num_codes, (5, 3, 3), generator=torch.Generator().manual_seed(1))
    got = word_logits_after_image(model, vocab, codes, "the digit", ["seven", "two"], batch_size=2)
    assert got.shape == (5, 2) and got.dtype == torch.float32
    for i in range(5):             # one sequence at a time, written out by hand
        seq = torch.tensor([[BOS, BOI] + vocab.codes_to_ids(codes[i].flatten()).tolist() + [EOI, BOT]
                            + vocab.encode_text("the digit")])
        with torch.no_grad():
            last = model(seq)[0, -1]
        want = last[[vocab.encode_text("seven")[0], vocab.encode_text("two")[0]]]
        assert torch.allclose(got[i], want, atol=1e-5)
    assert word_logits_after_image(model, vocab, codes, "", ["a"]).shape == (5, 1)
    assert word_logits_after_image(model, vocab, codes[:0], "a", ["two"]).shape == (0, 1)
    with pytest.raises(ValueError, match=r"words\[1\] must be one word the vocabulary knows; got 'the digit'"):
        word_logits_after_image(model, vocab, codes, "a", ["seven", "the digit"])
    with pytest.raises(ValueError, match="unknown word 'sevn'"):
        word_logits_after_image(model, vocab, codes, "a", ["sevn"])
    with pytest.raises(TypeError, match="words must be a non-empty list"):
        word_logits_after_image(model, vocab, codes, "a", "seven")
    with pytest.raises(ValueError, match=r"codes must have shape \(N, 3, 3\)"):
        word_logits_after_image(model, vocab, codes[:, :2], "a", ["two"])


def test_rerank_compares_probabilities_not_logits():
    readings = torch.tensor([[[0.0, 1.0, 0.0], [10.0, 10.5, 0.0], [0.0, 0.5, 3.0]]])   # 1 prompt, 3 candidates
    # asked class 1: candidate 0 gives it p = 0.58, candidate 1 (largest raw logit) p = 0.62, candidate 2 p = 0.07
    assert rerank(readings, torch.tensor([1])).tolist() == [1]
    assert rerank(readings, torch.tensor([2])).tolist() == [2]
    shifted = readings + torch.tensor([0.0, -20.0, 5.0])[None, :, None]     # a constant per candidate changes nothing
    assert torch.equal(rerank(shifted, torch.tensor([1])), rerank(readings, torch.tensor([1])))
    with pytest.raises(ValueError, match="asked"):
        rerank(readings, torch.tensor([3]))
    with pytest.raises(ValueError, match="readings"):
        rerank(readings[0], torch.tensor([1]))


def test_guided_constrained_sampling_reads_nothing_back_per_token(vocab, model, as_on_a_gpu):
    """Sampling with a KV cache, guidance, an image-span constraint and a seeded generator: no host read
    per token where reads cost a round trip (``as_on_a_gpu`` in conftest.py; the stop check, which
    looks every 16 tokens on an accelerator, is not asked for here)."""
    from course_lib.sampling import image_span_constraint
    prompt = torch.tensor([text_to_image_prompt(vocab, vocab.encode_text("a seven"))] * 3)
    uncond = torch.tensor([text_to_image_prompt(vocab, [])] * 3)
    as_on_a_gpu.clear()
    out = generate(model, prompt, vocab.n_image_tokens + 1, temperature=0.7, guidance_scale=2.0, uncond_prompt=uncond,
                   allowed=image_span_constraint(vocab), generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, vocab.n_image_tokens + 1)
    # only the range checks of the two prompts, once per call before the loop; nothing per token
    assert [(m, f) for m, f, _ in as_on_a_gpu] == [("tolist", "validate.py")] * 2, as_on_a_gpu[:10]
