"""Words and image codes in one vocabulary, and the mixed sequences built from them.

* :class:`WordTokenizer`: a word-level tokenizer built from the captions. Lower case; a word is a
  run of letters, a single numeral, or one punctuation mark. Unknown words follow an explicit
  policy: ``unknown="error"`` (default) raises a ``ValueError`` that names the word and suggests
  close known words; ``unknown="unk"`` maps it to the ``<unk>`` token (which training never
  shows the model, so it is a polite "I don't know" rather than a meaning).
* :class:`MixedVocabulary`: one id space for everything the transformer reads and writes::

      0 .. 7                 special tokens  <pad> <bos> <eos> <boi> <eoi> <bot> <eot> <unk>
      8 .. 8+W-1             words           (sorted, from the tokenizer)
      image_offset .. +K-1   image codes     (code k of the image tokenizer -> image_offset + k)

  With ``num_audio_codes > 0`` (the omni model, :mod:`course_lib.omni`) two more special tokens
  follow the eight, ``8 <boa>`` and ``9 <eoa>`` (begin/end of audio), so the words start at 10, and
  the audio codes come last: ``audio_offset = image_offset + K .. + K_audio - 1``. Without audio the
  layout above is unchanged.

* :func:`build_sequence`: ``[BOS, BOT, words.., EOT, BOI, codes.., EOI, EOS]`` (direction ``"t2i"``:
  draw an image from a caption) or ``[BOS, BOI, codes.., EOI, BOT, words.., EOT, EOS]`` (``"i2t"``:
  caption an image). :func:`segment_ids` labels each position text / image / neither, which the
  loss uses to weight the conditioning segment against the target segment.
"""
from __future__ import annotations

import difflib
import re
from collections import Counter
from typing import Iterable, Sequence

import torch

from .validate import as_int, check_choice, check_codes, check_int, check_tensor

PAD, BOS, EOS, BOI, EOI, BOT, EOT, UNK = range(8)
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<boi>", "<eoi>", "<bot>", "<eot>", "<unk>")
# the two directions of the course, one name each: t2i (caption first, then the image: learn to draw)
# and i2t (image first, then its caption: learn to caption); as numbers in a batch, T2I = 0 and I2T = 1
DIRECTIONS = ("t2i", "i2t")
T2I, I2T = 0, 1
UNKNOWN_POLICIES = ("error", "unk")
# segment labels used by the loss (see segment_ids)
SEG_NONE, SEG_TEXT, SEG_IMAGE = 0, 1, 2
MODALITIES = ("special", "text", "image", "audio")
# the optional audio markers (only in a vocabulary with audio codes): they follow the eight specials
BOA, EOA = 8, 9
AUDIO_SPECIAL_TOKENS = ("<boa>", "<eoa>")

# letter runs (any alphabet: "niño" is one word), single numerals 0-9, any other single character
_WORD = re.compile(r"[^\W\d_]+|[0-9]|\S")


def split_words(text: str) -> list[str]:
    """Lower-case ``text`` and cut it into words: letter runs (of any alphabet), single numerals,
    punctuation marks.

    ``"The digit 17!"`` -> ``["the", "digit", "1", "7", "!"]``; ``"niño"`` -> ``["niño"]``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string; got {type(text).__name__} {text!r}")
    return _WORD.findall(text.lower())


class WordTokenizer:
    """Word-level tokenizer: ``encode("a handwritten seven") -> [0, 9, 18]`` (indices into ``words``).

    Build it from training captions with :meth:`from_texts`; the word list is sorted so the same
    captions always give the same ids.
    """

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if not words:
            raise ValueError("words must hold at least one word; got an empty list")
        for w in words:
            if not isinstance(w, str) or split_words(w) != [w]:
                raise ValueError(f"every word must be one lower-case token as split_words cuts them; got {w!r}")
        if len(set(words)) != len(words):
            dup = [w for w, c in Counter(words).items() if c > 1]
            raise ValueError(f"words must be unique; repeated: {dup}")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_count: int = 1) -> "WordTokenizer":
        """Every word that occurs at least ``min_count`` times in ``texts`` (an iterable of strings), sorted."""
        check_int("min_count", min_count, min_value=1)
        if isinstance(texts, str):
            raise TypeError(f"texts must be an iterable of captions (strings), not one string; got {texts!r:.60}")
        counts = Counter(w for t in texts for w in split_words(t))
        words = sorted(w for w, c in counts.items() if c >= min_count)
        return cls(words)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def suggest(self, word: str, n: int = 3) -> list[str]:
        """Known words closest in spelling to ``word`` (may be empty)."""
        return difflib.get_close_matches(word, self.words, n=n, cutoff=0.6)

    def encode(self, text: str, unknown: str = "error") -> list[int]:
        """text -> word indices. An unknown word raises ``ValueError`` (``unknown="error"``) or
        becomes ``-1`` (``unknown="unk"``; :class:`MixedVocabulary` maps it to ``<unk>``)."""
        check_choice("unknown", unknown, UNKNOWN_POLICIES)
        out = []
        for w in split_words(text):
            if w in self.index:
                out.append(self.index[w])
            elif unknown == "unk":
                out.append(-1)
            else:
                close = self.suggest(w)
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ValueError(f"unknown word {w!r} in text {text!r}: the tokenizer knows {len(self)} "
                                 f"words from the training captions.{hint} (Pass unknown='unk' to map "
                                 "unknown words to <unk> instead.)")
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """word indices (ints in 0..len-1, or ``-1`` which shows as ``<unk>``) -> text."""
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"ids must be a list of word indices (ints); got {type(ids).__name__} {ids!r:.60}")
        words = []
        for n, i in enumerate(ids):
            i = as_int(f"ids[{n}]", i)
            if not -1 <= i < len(self.words):
                raise ValueError(f"ids[{n}] must lie in 0..{len(self.words) - 1} (or -1 for <unk>); got {i}")
            words.append("<unk>" if i == -1 else self.words[i])
        return " ".join(words)


class MixedVocabulary:
    """One id space: 8 special tokens, then the words, then ``num_codes`` image codes.

    tokenizer: the :class:`WordTokenizer`; num_codes: the image tokenizer's codebook size;
    grid: (h, w) codes per image. ``len(vocab)`` is the transformer's vocabulary size.
    num_audio_codes: 0 (default, no audio) or the audio tokenizer's codebook size: adds ``<boa>``
    and ``<eoa>`` after the eight specials and the audio codes after the image codes
    (``audio_offset``); ``audio_offset`` is ``None`` without audio.
    """

    def __init__(self, tokenizer: WordTokenizer, num_codes: int, grid: tuple[int, int], num_audio_codes: int = 0):
        if not isinstance(tokenizer, WordTokenizer):
            raise TypeError(f"tokenizer must be a WordTokenizer; got {type(tokenizer).__name__}")
        check_int("num_codes", num_codes, min_value=1)
        if not (isinstance(grid, (tuple, list)) and len(grid) == 2
                and all(isinstance(g, int) and not isinstance(g, bool) and g > 0 for g in grid)):
            raise ValueError(f"grid must be (h, w), two positive ints; got {grid!r}")
        check_int("num_audio_codes", num_audio_codes, min_value=0)
        self.tokenizer = tokenizer
        self.num_codes = num_codes
        self.num_audio_codes = num_audio_codes
        self.grid = (int(grid[0]), int(grid[1]))
        self.special_tokens = SPECIAL_TOKENS + (AUDIO_SPECIAL_TOKENS if num_audio_codes else ())
        self.n_special = len(self.special_tokens)
        self.word_offset = self.n_special
        self.image_offset = self.word_offset + len(tokenizer)
        self.audio_offset = self.image_offset + num_codes if num_audio_codes else None
        self.size = self.image_offset + num_codes + num_audio_codes

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        audio = f" + {self.num_audio_codes} audio codes" if self.num_audio_codes else ""
        return (f"MixedVocabulary({self.n_special} special + {len(self.tokenizer)} words + {self.num_codes} image "
                f"codes{audio} = {self.size} ids; grid {self.grid[0]}x{self.grid[1]})")

    @property
    def image_end(self) -> int:
        """One past the last image-code id (the audio codes start there, if any)."""
        return self.image_offset + self.num_codes

    @property
    def n_image_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    # ----------------------------------------------------------------- text
    def encode_text(self, text: str, unknown: str = "error") -> list[int]:
        """text -> vocabulary ids of its words (no special tokens)."""
        return [UNK if i == -1 else self.word_offset + i for i in self.tokenizer.encode(text, unknown)]

    def decode_text(self, ids: Iterable[int]) -> str:
        """vocabulary ids (ints in 0..len(vocab)-1) -> the words among them joined by spaces (special
        tokens and codes skipped, except ``<unk>``)."""
        if isinstance(ids, torch.Tensor):
            check_tensor("ids", ids, ndim=1, integer=True)
            ids = ids.tolist()
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"ids must be a list of vocabulary ids (ints); got {type(ids).__name__} {ids!r:.60}")
        words = []
        for n, i in enumerate(ids):
            i = as_int(f"ids[{n}]", i)
            if not 0 <= i < self.size:
                raise ValueError(f"ids[{n}] must lie in 0..{self.size - 1} (the vocabulary); got {i}")
            if self.word_offset <= i < self.image_offset:
                words.append(self.tokenizer.words[i - self.word_offset])
            elif i == UNK:
                words.append("<unk>")
        return " ".join(words)

    # ---------------------------------------------------------------- image
    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: (..., h, w) or (..., h*w) long in [0, K) -> vocabulary ids, same shape."""
        check_tensor("codes", codes, dtype=(torch.long, torch.int32, torch.int16, torch.uint8))
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.num_codes):
            raise ValueError(f"codes must lie in [0, {self.num_codes}); got values in "
                             f"[{int(codes.min())}, {int(codes.max())}]")
        return codes.long() + self.image_offset

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (B, h*w) image ids -> codes (B, h, w) in [0, K)."""
        check_tensor("ids", ids, ndim=2, integer=True)
        check_codes("ids", ids, self.size)
        if ids.shape[1] != self.n_image_tokens:
            raise ValueError(f"ids must hold {self.n_image_tokens} image tokens per row (grid {self.grid}); "
                             f"got {ids.shape[1]}")
        if not bool(self.is_image(ids).all()):
            bad = ids[~self.is_image(ids)][0].item()
            raise ValueError(f"ids must all be image codes (ids {self.image_offset}..{self.image_end - 1}); "
                             f"found {bad} ({self.token_name(bad)})")
        return (ids - self.image_offset).reshape(-1, *self.grid)

    # ------------------------------------------------------------- per token
    def is_image(self, ids: torch.Tensor) -> torch.Tensor:
        """Boolean mask of image-code ids."""
        return (ids >= self.image_offset) & (ids < self.image_end)

    def is_audio(self, ids: torch.Tensor) -> torch.Tensor:
        """Boolean mask of audio-code ids (all False in a vocabulary without audio)."""
        return ids >= self.image_end if self.num_audio_codes else torch.zeros_like(ids, dtype=torch.bool)

    def audio_codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """audio codes (..., T') long in [0, K_audio) -> vocabulary ids, same shape."""
        if not self.num_audio_codes:
            raise ValueError("this vocabulary has no audio codes (build it with num_audio_codes=K)")
        check_tensor("codes", codes, dtype=(torch.long, torch.int32, torch.int16, torch.uint8))
        check_codes("codes", codes, self.num_audio_codes)
        return codes.long() + self.audio_offset

    def ids_to_audio_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """audio ids (B, T') -> audio codes (B, T') in [0, K_audio)."""
        check_tensor("ids", ids, ndim=2, integer=True)
        check_codes("ids", ids, self.size)
        if not bool(self.is_audio(ids).all()):
            raise ValueError(f"ids must all be audio codes (ids {self.image_end}..{self.size - 1})")
        return ids - self.audio_offset

    def is_word(self, ids: torch.Tensor) -> torch.Tensor:
        """Boolean mask of word ids (``<unk>`` included)."""
        return ((ids >= self.word_offset) & (ids < self.image_offset)) | (ids == UNK)

    def modality(self, ids: torch.Tensor) -> torch.Tensor:
        """0 special, 1 text (words and ``<unk>``), 2 image code, 3 audio code; same shape as ``ids``."""
        return token_modality(ids, self.word_offset, self.image_offset, self.audio_offset)

    def token_name(self, i: int) -> str:
        """The readable name of id ``i`` (an int, or a one-element integer tensor): a special token,
        a word or ``<code k>``."""
        i = as_int("id", i)
        if not 0 <= i < self.size:
            raise ValueError(f"id must lie in [0, {self.size}); got {i}")
        if i < self.n_special:
            return self.special_tokens[i]
        if i < self.image_offset:
            return self.tokenizer.words[i - self.word_offset]
        if i >= self.image_end:
            return f"<audio {i - self.image_end}>"
        return f"<code {i - self.image_offset}>"

    def allowed_mask(self, kind: str) -> torch.Tensor:
        """(V,) bool: ``"image"`` = image codes only; ``"text"`` = words and ``<eot>``; ``"audio"`` =
        audio codes only (a vocabulary with audio)."""
        check_choice("kind", kind, ("image", "text", "audio") if self.num_audio_codes else ("image", "text"))
        mask = torch.zeros(self.size, dtype=torch.bool)
        if kind == "image":
            mask[self.image_offset:self.image_end] = True
        elif kind == "audio":
            mask[self.image_end:] = True
        else:
            mask[self.word_offset:self.image_offset] = True
            mask[EOT] = True
        return mask


def token_modality(ids: torch.Tensor, word_offset: int, image_offset: int,
                   audio_offset: int | None = None) -> torch.Tensor:
    """0 special, 1 text (words and ``<unk>``), 2 image code (3 audio code, ids from ``audio_offset``
    when given), for ids laid out as in :class:`MixedVocabulary`; same shape as ``ids``. The
    transformer embeds this per token."""
    modality = torch.where(ids >= image_offset, 2, torch.where(ids >= word_offset, 1, 0))
    if audio_offset is not None:
        modality = torch.where(ids >= audio_offset, 3, modality)
    return torch.where(ids == UNK, 1, modality)


# --------------------------------------------------------------------------- sequences
def build_sequence(vocab: MixedVocabulary, text_ids: Sequence[int], image_ids: Sequence[int],
                   direction: str = "t2i") -> list[int]:
    """One training sequence (a list of ids).

    text_ids: word ids (from ``vocab.encode_text``; may be empty = caption dropped);
    image_ids: the ``h*w`` image ids (from ``vocab.codes_to_ids``), row by row.
    ``"t2i"`` (draw from a caption): ``[BOS, BOT, text.., EOT, BOI, image.., EOI, EOS]``;
    ``"i2t"`` (caption an image): ``[BOS, BOI, image.., EOI, BOT, text.., EOT, EOS]``.
    """
    check_choice("direction", direction, DIRECTIONS)
    text_ids = [as_int(f"text_ids[{n}]", i) for n, i in enumerate(text_ids)]
    image_ids = [as_int(f"image_ids[{n}]", i) for n, i in enumerate(image_ids)]
    if len(image_ids) != vocab.n_image_tokens:
        raise ValueError(f"image_ids must hold {vocab.n_image_tokens} ids (grid {vocab.grid}); got {len(image_ids)}")
    if any(not (vocab.image_offset <= i < vocab.image_end) for i in image_ids):
        raise ValueError("image_ids must be image-code ids (use vocab.codes_to_ids(codes)); "
                         f"got values outside [{vocab.image_offset}, {vocab.image_end})")
    if any(not (vocab.word_offset <= i < vocab.image_offset or i == UNK) for i in text_ids):
        raise ValueError("text_ids must be word ids (use vocab.encode_text(text)); "
                         f"got {[i for i in text_ids if not (vocab.word_offset <= i < vocab.image_offset)][:3]}")
    text = [BOT, *text_ids, EOT]
    image = [BOI, *image_ids, EOI]
    body = text + image if direction == "t2i" else image + text
    return [BOS, *body, EOS]


def build_sequences(text: torch.Tensor, length: torch.Tensor, image: torch.Tensor, direction: torch.Tensor,
                    block_size: int) -> torch.Tensor:
    """A whole batch of :func:`build_sequence` at once, with tensor operations (no Python loop per example).

    text: (B, L) word ids, row b valid up to ``length[b]`` (0 = caption dropped); image: (B, h*w)
    image ids; direction: (B,) ``T2I`` / ``I2T``. Returns (B, block_size) long, right-padded with
    ``<pad>``; every row must fit (``length + h*w + 6 <= block_size``, the caller's promise: the
    dataset sets ``block_size`` from its longest caption). Same device as the inputs.
    """
    B, L = text.shape
    hw = image.shape[1]
    dev = text.device
    rows = torch.arange(B, device=dev)
    t2i = direction == T2I
    text_start = torch.where(t2i, 2, 4 + hw)              # first word
    image_start = torch.where(t2i, 4 + length, 2)         # first image code
    eot, eoi = text_start + length, image_start + hw
    out = torch.full((B, block_size + L), PAD, dtype=torch.long, device=dev)   # + L spare columns
    out[:, 0] = BOS
    out[rows, text_start - 1] = BOT
    out[rows, eot] = EOT
    out[rows, image_start - 1] = BOI
    out[rows, eoi] = EOI
    out[rows, torch.where(t2i, eoi, eot) + 1] = EOS
    j = torch.arange(L, device=dev)
    # words past a row's length go to the spare columns (one each), which are cut off below
    word_pos = torch.where(j < length[:, None], text_start[:, None] + j, block_size + j)
    out.scatter_(1, word_pos, text)
    out.scatter_(1, image_start[:, None] + torch.arange(hw, device=dev), image)
    return out[:, :block_size]


def segment_ids(seq: torch.Tensor) -> torch.Tensor:
    """seq: (B, T) ids -> (B, T) segment label of each token: 1 text (``<bot>``, words, ``<eot>``),
    2 image (``<boi>``, codes, ``<eoi>``), 0 neither (``<bos>``, ``<pad>``). ``<eos>`` belongs to
    the segment it closes (the second one).

    Works from the span markers, so it needs no vocabulary.
    """
    check_tensor("seq", seq, ndim=2, integer=True)
    is_bot, is_eot = (seq == BOT).long(), (seq == EOT).long()
    is_boi, is_eoi = (seq == BOI).long(), (seq == EOI).long()
    # inside a span: opened at or before t, not closed before t
    in_text = (is_bot.cumsum(1) - is_eot.cumsum(1) + is_eot) > 0
    in_image = (is_boi.cumsum(1) - is_eoi.cumsum(1) + is_eoi) > 0
    zero = torch.zeros_like(seq)
    seg = torch.where(in_image, zero + SEG_IMAGE, torch.where(in_text, zero + SEG_TEXT, zero))   # no host sync
    # <eos> takes the label of the token before it
    prev = torch.cat([torch.zeros_like(seg[:, :1]), seg[:, :-1]], dim=1)
    return torch.where(seq == EOS, prev, seg)


def pad_sequences(seqs: Sequence[Sequence[int]], length: int | None = None) -> torch.Tensor:
    """Right-pad id lists with ``<pad>`` to ``length`` (default: the longest) -> (B, length) long.

    seqs: at least one list of int ids.
    """
    if isinstance(seqs, torch.Tensor) or not isinstance(seqs, Sequence) or isinstance(seqs, str):
        raise TypeError(f"seqs must be a list of id lists; got {type(seqs).__name__}")
    if not seqs:
        raise ValueError("seqs must hold at least one sequence; got an empty list")
    longest = max(len(s) for s in seqs)
    length = longest if length is None else check_int("length", length, min_value=1)
    if longest > length:
        raise ValueError(f"a sequence of {longest} tokens does not fit length={length}")
    out = torch.full((len(seqs), length), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        row = torch.as_tensor(list(s))
        if row.numel() and (row.is_floating_point() or row.dtype == torch.bool):
            raise TypeError(f"seqs[{i}] must hold int ids; got {row.dtype} values")
        out[i, :len(s)] = row.long()
    return out


def sequence_table(vocab: MixedVocabulary, seq: Sequence[int]) -> list[dict]:
    """One row per token: ``{"position", "id", "token", "modality", "segment", "row", "col"}``.

    ``row``/``col`` are the image token's place in the grid (``None`` for other tokens): the 2-D
    position the transformer adds for image codes.
    """
    if isinstance(seq, torch.Tensor):
        check_tensor("seq", seq, ndim=1, integer=True)
        seq = seq.tolist()
    ids = torch.as_tensor([as_int(f"seq[{n}]", i) for n, i in enumerate(seq)], dtype=torch.long)
    seg = segment_ids(ids[None])[0]
    mod = vocab.modality(ids)
    rows, k = [], 0
    for t, i in enumerate(ids.tolist()):
        r = c = None
        if mod[t] == 2:
            r, c = divmod(k, vocab.grid[1])
            k += 1
        rows.append({"position": t, "id": i, "token": vocab.token_name(i), "modality": MODALITIES[int(mod[t])],
                     "segment": ("-", "text", "image")[int(seg[t])], "row": r, "col": c})
    return rows
