"""Word tokenizer, mixed vocabulary and sequence building (course_lib.vocabulary)."""
import pytest
import torch

from course_lib.data import DIGIT_TEMPLATES, digit_caption
from course_lib.vocabulary import (BOI, BOS, BOT, EOI, EOS, EOT, PAD, SEG_IMAGE, SEG_NONE, SEG_TEXT, UNK,
                                    MixedVocabulary, WordTokenizer, build_sequence, pad_sequences,
                                    segment_ids, sequence_table, split_words)

CAPTIONS = [digit_caption(d, template=t) for d in range(10) for t in range(len(DIGIT_TEMPLATES))]


@pytest.fixture
def vocab():
    return MixedVocabulary(WordTokenizer.from_texts(CAPTIONS), num_codes=16, grid=(2, 3))


def test_split_words():
    assert split_words("The digit 17!") == ["the", "digit", "1", "7", "!"]
    assert split_words("top left : one big box") == ["top", "left", ":", "one", "big", "box"]
    with pytest.raises(TypeError, match="text must be a string"):
        split_words(7)


def test_round_trip_every_caption(vocab):
    for caption in CAPTIONS:
        ids = vocab.encode_text(caption)
        assert all(vocab.word_offset <= i < vocab.image_offset for i in ids)
        assert vocab.decode_text(ids) == " ".join(split_words(caption))


def test_vocabulary_layout(vocab):
    tok = vocab.tokenizer
    assert vocab.word_offset == 8 and vocab.image_offset == 8 + len(tok)
    assert len(vocab) == 8 + len(tok) + 16
    assert vocab.token_name(BOS) == "<bos>" and vocab.token_name(vocab.image_offset + 3) == "<code 3>"
    assert tok.words == sorted(tok.words)
    codes = torch.tensor([[0, 5, 15]])
    ids = vocab.codes_to_ids(codes)
    assert ids.tolist() == [[vocab.image_offset, vocab.image_offset + 5, vocab.image_offset + 15]]
    assert vocab.modality(torch.tensor([PAD, UNK, vocab.word_offset, vocab.image_offset])).tolist() == [0, 1, 1, 2]


def test_unknown_word_error_names_word_and_suggests(vocab):
    with pytest.raises(ValueError) as err:
        vocab.encode_text("a handwriten seven")
    msg = str(err.value)
    assert "'handwriten'" in msg and "'handwritten'" in msg and "unknown='unk'" in msg


def test_unknown_word_unk_policy(vocab):
    ids = vocab.encode_text("a purple seven", unknown="unk")
    assert ids[1] == UNK and len(ids) == 3
    assert vocab.decode_text(ids) == "a <unk> seven"
    with pytest.raises(ValueError, match="unknown must be one of"):
        vocab.encode_text("a seven", unknown="skip")


def test_tokenizer_validates_words():
    with pytest.raises(ValueError, match="unique"):
        WordTokenizer(["a", "a"])
    with pytest.raises(ValueError, match="one lower-case token"):
        WordTokenizer(["Two words"])
    with pytest.raises(ValueError, match="at least one word"):
        WordTokenizer([])


def test_codes_out_of_range(vocab):
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 16\)"):
        vocab.codes_to_ids(torch.tensor([[16]]))


def test_build_sequence_both_directions(vocab):
    text = vocab.encode_text("the digit seven")
    image = vocab.codes_to_ids(torch.arange(6)).tolist()
    t2i = build_sequence(vocab, text, image, "t2i")
    i2t = build_sequence(vocab, text, image, "i2t")
    assert t2i == [BOS, BOT, *text, EOT, BOI, *image, EOI, EOS]
    assert i2t == [BOS, BOI, *image, EOI, BOT, *text, EOT, EOS]
    with pytest.raises(ValueError, match="image_ids must hold 6 ids"):
        build_sequence(vocab, text, image[:5])
    with pytest.raises(ValueError, match="text_ids must be word ids"):
        build_sequence(vocab, image[:2], image)
    with pytest.raises(ValueError, match="direction must be one of"):
        build_sequence(vocab, text, image, "sideways")


def test_segment_ids_and_table(vocab):
    text = vocab.encode_text("a seven")
    image = vocab.codes_to_ids(torch.arange(6)).tolist()
    seq = pad_sequences([build_sequence(vocab, text, image, "t2i"),
                         build_sequence(vocab, text, image, "i2t")], length=16)
    seg = segment_ids(seq)
    # text first: BOS | BOT a seven EOT | BOI 6 codes EOI EOS | PAD PAD
    assert seg[0].tolist() == [SEG_NONE] + [SEG_TEXT] * 4 + [SEG_IMAGE] * 9 + [SEG_NONE] * 2
    assert seg[1].tolist() == [SEG_NONE] + [SEG_IMAGE] * 8 + [SEG_TEXT] * 5 + [SEG_NONE] * 2
    rows = sequence_table(vocab, seq[0].tolist())
    assert rows[3]["token"] == "seven" and rows[3]["modality"] == "text"
    assert rows[6]["modality"] == "image" and (rows[6]["row"], rows[6]["col"]) == (0, 0)
    assert (rows[11]["row"], rows[11]["col"]) == (1, 2)
    with pytest.raises(ValueError, match="does not fit length=4"):
        pad_sequences([[1, 2, 3, 4, 5]], length=4)


def test_build_sequences_lays_out_a_batch_like_build_sequence(vocab):
    """The tensor layout of a whole batch equals build_sequence row by row, in both directions, with
    dropped captions (length 0) and captions of different lengths."""
    from course_lib.vocabulary import I2T, T2I, build_sequences
    g = torch.Generator().manual_seed(0)
    captions = ["the digit seven", "a seven", "", "seven", "the digit seven"]
    directions = [T2I, I2T, T2I, I2T, I2T]
    L, block = 3, 6 + 3 + 6
    text = torch.full((5, L), 0, dtype=torch.long)
    length = torch.zeros(5, dtype=torch.long)
    for i, c in enumerate(captions):
        ids = vocab.encode_text(c)
        text[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        text[i, len(ids):] = vocab.word_offset      # junk past the length must be ignored
        length[i] = len(ids)
    image = vocab.codes_to_ids(torch.randint(0, vocab.num_codes, (5, 6), generator=g))
    got = build_sequences(text, length, image, torch.tensor(directions), block)
    want = pad_sequences([build_sequence(vocab, vocab.encode_text(c), image[i].tolist(), ("t2i", "i2t")[d])
                          for i, (c, d) in enumerate(zip(captions, directions))], length=block)
    assert torch.equal(got, want)
