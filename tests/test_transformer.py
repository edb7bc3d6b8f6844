"""The mixed-sequence transformer (course_lib.models.transformer) and its loss (course_lib.mixed_data)."""
import pytest
import torch
import torch.nn.functional as F

from course_lib.models.transformer import KVCache, MixedTransformer, TransformerConfig
from course_lib.mixed_data import MixedSequenceData, mixed_sequence_loss, segment_weights
from course_lib.scoring import parse_digit, parse_shape_caption
from course_lib.vocabulary import I2T, PAD, T2I, MixedVocabulary, WordTokenizer, build_sequence, pad_sequences

WORDS = ["a", "digit", "seven", "the", "two"]


@pytest.fixture
def vocab():
    return MixedVocabulary(WordTokenizer(WORDS), num_codes=12, grid=(2, 3))


def make_model(vocab, block_size=24, seed=0):
    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=len(vocab), image_offset=vocab.image_offset, word_offset=vocab.word_offset,
                            grid=vocab.grid, block_size=block_size, n_layer=2, n_head=2, d_model=32)
    return MixedTransformer(cfg).eval()


def sequences(vocab, direction="t2i"):
    g = torch.Generator().manual_seed(1)
    out = []
    for caption in ("a seven", "the digit two"):
        codes = torch.randint(0, vocab.num_codes, (6,), generator=g)
        out.append(build_sequence(vocab, vocab.encode_text(caption), vocab.codes_to_ids(codes).tolist(), direction))
    return pad_sequences(out)


def test_causal_no_leak_from_future(vocab):
    model = make_model(vocab)
    seq = sequences(vocab)
    t = 5
    changed = seq.clone()
    changed[:, t + 1:] = torch.randint(0, len(vocab), changed[:, t + 1:].shape)
    a, b = model(seq), model(changed)
    assert torch.allclose(a[:, :t + 1], b[:, :t + 1], atol=1e-5)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:], atol=1e-3)  # the future did change


def test_cached_logits_match_full_forward(vocab):
    model = make_model(vocab)
    seq = sequences(vocab, "i2t")
    full = model(seq)
    cache = model.new_cache(seq.shape[0])
    parts = [model(seq[:, :4], cache=cache)]            # a prompt chunk
    parts.append(model(seq[:, 4:7], cache=cache))       # a chunk after a prefix (needs the offset mask)
    for t in range(7, seq.shape[1]):                    # then one token at a time
        parts.append(model(seq[:, t:t + 1], cache=cache))
    assert cache.length == seq.shape[1]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_image_code_position_independent_of_order(vocab):
    """A code at grid place (r, c) gets the same input vector whether text or image comes first."""
    model = make_model(vocab)
    t2i, i2t = sequences(vocab, "t2i")[:1], sequences(vocab, "i2t")[:1]
    e1, e2 = model.embed(t2i), model.embed(i2t)
    img1, img2 = vocab.is_image(t2i)[0], vocab.is_image(i2t)[0]
    assert torch.equal(t2i[0][img1], i2t[0][img2])
    assert torch.allclose(e1[0][img1], e2[0][img2])


def test_attention_weights_are_causal(vocab):
    model = make_model(vocab)
    seq = sequences(vocab)
    logits, weights = model(seq, need_weights=True)
    assert torch.allclose(logits, model(seq), atol=1e-5)
    w = weights[-1]
    assert w.shape == (2, 2, seq.shape[1], seq.shape[1])
    assert torch.all(w.triu(diagonal=1) == 0) and torch.allclose(w.sum(-1), torch.ones_like(w.sum(-1)))


def test_too_long_and_bad_inputs(vocab):
    model = make_model(vocab, block_size=8)
    with pytest.raises(ValueError, match="longer than block_size=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(TypeError, match="dtype"):
        model(torch.zeros(1, 4))
    cache = model.new_cache(2)
    with pytest.raises(ValueError, match="cache was made for 2"):
        model(torch.zeros(3, 2, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="d_model must be divisible by n_head"):
        TransformerConfig(vocab_size=30, image_offset=13, word_offset=8, grid=(2, 3), n_head=3, d_model=32)
    assert isinstance(cache, KVCache)


def mixed_directions(vocab):
    """Row 0: "a seven" text first (shorter: padded); row 1: "the digit two" image first."""
    t2i, i2t = sequences(vocab, "t2i"), sequences(vocab, "i2t")
    return torch.stack([t2i[0], i2t[1]])


def test_segment_weights(vocab):
    seq = mixed_directions(vocab)
    direction = torch.tensor([T2I, I2T])
    w = segment_weights(seq, direction, cond_weight=1 / 8)
    targets = seq[:, 1:]
    assert torch.all(w[targets == PAD] == 0)
    assert torch.allclose(w.sum(1), torch.ones(2))
    image_t = vocab.is_image(targets) | (targets == 3) | (targets == 4)  # codes, <boi>, <eoi>
    # row 0 (text->image): the image span plus <eos> shares 7/8, the text span 1/8
    assert torch.isclose(w[0][image_t[0]].sum() + w[0][targets[0] == 2].sum(), torch.tensor(7 / 8))
    # row 1 (image->text): the image span is the condition: 1/8
    assert torch.isclose(w[1][image_t[1]].sum(), torch.tensor(1 / 8))


def test_loss_ignores_padding_and_matches_manual(vocab):
    model = make_model(vocab, block_size=30)
    seq = mixed_directions(vocab)
    direction = torch.tensor([T2I, I2T])
    loss, parts = mixed_sequence_loss(model, (seq, direction))
    longer = torch.cat([seq, torch.full((2, 5), PAD)], 1)  # more padding: same loss
    loss2, _ = mixed_sequence_loss(model, (longer, direction))
    assert torch.isclose(loss, loss2, atol=1e-5)
    ce = F.cross_entropy(model(seq[:, :-1]).transpose(1, 2), seq[:, 1:], reduction="none")
    manual = (segment_weights(seq, direction) * ce).sum(1).mean()
    assert torch.isclose(loss, manual, atol=1e-6)
    assert set(parts) == {"t2i_text", "t2i_image", "i2t_text", "i2t_image"}
    # cond_weight 0: changing the conditioning tokens' targets does not change the loss gradient target
    w0 = segment_weights(seq, direction, cond_weight=0.0)
    assert torch.all(w0[0][:4] == 0)  # row 0's caption tokens carry no weight


def test_mixed_sequence_data(vocab):
    codes = torch.randint(0, vocab.num_codes, (10, 2, 2, 3))
    captions = [["a seven", "the digit seven"]] * 5 + ["the digit two"] * 5
    data = MixedSequenceData(vocab, codes, captions, p_i2t=0.5, p_drop_caption=1.0, seed=0)
    seq, direction = data.batch(8)
    assert seq.shape == (8, data.block_size) and int(direction.sum()) == 4
    for row, d in zip(seq, direction):
        if d == T2I:  # every caption dropped: [BOS, BOT, EOT, BOI, ...]
            assert row[:4].tolist() == [1, 5, 6, 3]
        else:
            assert row[1] == 3
    with pytest.raises(ValueError, match="one entry per image"):
        MixedSequenceData(vocab, codes, captions[:3])


def test_caption_parsers():
    assert parse_digit("a handwritten seven") == 7 and parse_digit("the number 3") == 3
    assert parse_digit("a drawing") is None and parse_digit("a one and a 2") is None
    assert parse_shape_caption("in the upper left corner there is a tiny blue disk") == {
        "shape": "circle", "color": "blue", "size": "small", "position": "top left"}
    assert parse_shape_caption("middle : one big red box")["position"] == "center"
    assert parse_shape_caption("a red green square")["color"] is None


def test_count_copies_accepts_versions_of_each_training_grid():
    """Notebook 05 passes codes of shape (M, versions, h, w) (shifted copies of each digit)."""
    from course_lib.scoring import count_copies
    train = torch.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    spans = torch.stack([train[1, 2].flatten(), torch.full((4,), 99)])
    assert count_copies(spans, train) == 1
    assert count_copies(spans, train.reshape(6, 4)) == count_copies(spans, train[:, :, None]) == 1


def test_a_training_step_reads_nothing_back_from_the_device(vocab, as_on_a_gpu):
    """Mixed-sequence training (notebook 05): forward, weighted loss and backward make no host read
    where reads cost a round trip (``as_on_a_gpu`` in conftest.py)."""
    model = make_model(vocab, block_size=30).train()
    batch = (mixed_directions(vocab), torch.tensor([T2I, I2T]))
    as_on_a_gpu.clear()                       # building the batch (checked once, on the host) is not the step
    for _ in range(2):
        loss, _ = mixed_sequence_loss(model, batch)
        loss.backward()
    assert as_on_a_gpu == []
