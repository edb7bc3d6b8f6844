"""Visual question answering on Sort-of-CLEVR-like scenes (notebook 07): data, three models, scores.

Three ways to answer a question about a scene, trained on the same questions for the same number
of steps, scored per question type on test scenes no model has seen:

* ``"blind"``: ``[BOS, BOT, question.., EOT]`` through a :class:`MixedTransformer`, no image at all
  (how much does the question give away?);
* ``"early"``: early fusion (LLaVA): a :class:`~course_lib.models.scene_encoder.SceneEncoder` turns
  the 64 image codes into 16 cell vectors, placed *before* ``[BOS, BOT, question.., EOT]`` in the
  same causal transformer (:class:`EarlyFusionModel`): the question attends to the whole image;
* ``"cross"`` (Flamingo): :class:`~course_lib.models.cross_attention.CrossAttentionDecoder`, the
  question through a text decoder whose gated cross-attention blocks read the same kind of cell
  vectors as a memory.

Training has two stages, as LLaVA's (Liu et al., 2023): first every model learns to **describe**
scenes (``describe_steps``): how many of each shape and size, then every object, every attribute
(``describe_counts``; "1 circles 1 squares 0 triangles 1 small 1 large : red small circle top left ,
blue large square bottom right"), one supervised token after another: the picture gets tied to
words), while the scene encoder's head learns what each cell holds (``cell_weight``); then to
**answer** (``steps``). Measured on ideal one-code-per-cell scenes, 2,250 steps: answering only, 57%
of test questions right; describing 750 steps then answering 1,500, 76% (shape and size 100%).
Without stage 1 the answers stay near the blind ones for thousands of steps.

**Point, then answer** (``point``; Shikra and Molmo ground their answers the same way): after
``<eot>`` a model writes the cells it looks at (:data:`POINT_WORDS` ``cella`` .. ``cellp``, the
cells of :func:`~course_lib.data.scenes.question_points`: the object the question names and, for
closest / furthest, the object the answer is about), then :data:`ANSWER_WORD`, whose next token is
the answer. Training is teacher-forced (the true cells; their cross-entropy is added to the
answer's, ``point_weight``); at test time the model points greedily (:func:`point_first`) and
answers (:func:`answer_questions`), the choice limited to the closed answer set (``ANSWERS``).
**Say the shape** (``say_shape``, a short chain of thought): where the answer hinges on the named
object's shape, the model writes it after the cell (:func:`~course_lib.data.scenes.question_words`):
"is there a red square?" -> ``cellf circle square answer no`` (the red object, its shape, the shape
asked: the answer compares the two words before it); "how many others share the red object's
shape?" -> ``cellf circle answer 2``.

Measured while choosing this (early fusion, classroom recipe, 500 validation scenes, one run each,
2-core AMD EPYC; non-relational / relational / counting, with closest / furthest / exists)::

    answer at <eot>, no pointing (point=False)        91.8 / 59.3 / 89.0   (42.8 / 46.2 / 68.9)
    pointing, answer after the last cell                94.4 / 74.9 / 44.8   (82.7 / 97.0 / 79.8)
    pointing every counted object too (Molmo)           89.8 / 73.4 / 32.8   (it pointed at too few
        or too many cells for 67% of count questions; given the right cells it counted 99.6% right)
    pointing + the word "answer"                        99.0 / 72.2 / 46.8   (74.1 / 87.8 / 98.2)
    ... with a quarter of the pointing loss            98.1 / 63.5 / 57.2
    ... + counts in the descriptions                    94.3 / 59.7 / 79.0   (43.6 / 48.8 / 79.6)
    ... the same, model_seed 1                          94.6 / 58.4 / 91.6   (41.2 / 48.8 / 80.0)
    ... + pointing words tied to their cells            90.1 / 81.7 / 77.6   (75.7 / 87.2 / 62.7)
    ... + "is there" points at the object asked about   89.2 / 86.4 / 88.0   (78.1 / 90.2 / 59.3)
        (recipe 4; cross-attention: 89.1 / 75.7 / 85.0)
    "is there" points at the coloured object, says its shape    91.8 / 77.0 / 83.8   (68.3 / 70.6 / 68.9)
        (it pointed and said the shape right for 98.8% of "is there" questions, yet answered "yes" for
        82% of the *training* questions whose colour was there with another shape)
    ... then says the shape asked too                             99.2 / 82.2 / 88.4   (79.5 / 92.2 / 98.8)
    ... the shape asked first, then the cell and its shape        99.1 / 77.5 / 84.2   (73.5 / 87.6 / 98.8)
    ... + "how many share its shape" says the shape               99.6 / 85.3 / 81.2   (75.7 / 91.0 / 99.2)
        (cross-attention: 99.2 / 62.9 / 84.0, "closest" pointed right 38%)
    ... + count questions point at every counted object          99.1 / 79.7 / 37.0   (Molmo's way; the
        counted cells exactly for only 21% of count questions, tied pointing words or not)
    ... + count questions first list every object's shape / size  99.2 / 74.7 / 88.0   (the list right for 74%)
    ... + row / column embeddings initialised as Fourier features 99.3 / 59.9 / 93.0   (model_seed 1:
        99.1 / 69.4 / 88.4; "closest" read wrong)
    say the shapes, 3,000 answer steps instead of 2,000 (this recipe)
                                                                  99.4 / 89.0 / 94.6   (82.5 / 91.0 / 99.2)
    ... model_seed 1                                              99.5 / 92.7 / 96.0   (88.0 / 96.4 / 99.6)
        (the rows from "count questions point" on: a position table 2 rows longer, another initialisation)

Runs differ: "closest" was pointed right 39-77% and counting 81-93% across the one-change runs above,
so a single row's gain of a few points is within noise; "say the shapes" (exists 69 -> 99%) and
3,000 steps (both seeds above every target) are not.

Pointing lifts the questions about one object, and counts in the descriptions bring counting back.
**Tied pointing words** (``tie_points``, :class:`PointTiedEmbedding`): the embedding of ``cellk`` adds
the scene encoder's row and column embeddings of cell k, the vectors that mark that cell in the
picture. Without the tie, "closest" / "furthest" depended on the initialisation: in two runs the
model pointed at the right neighbour 75-87% / 90-93% of the time, yet answered only 41-43% of
"closest" right even given the true cells, while other runs (another initialisation) read the
neighbour's attribute 94-99% right given the cells. With the tie both models read it 94-99% right
given the true cells; what is left is finding the neighbour (66-77% of "closest" pointed right).
"is there a red square?" stayed hard (59-63%) while its answer had to come in one step after the
pointing, whether the model pointed at the red object and answered from its shape or pointed at the
red square only if it was there (recipe 4); writing the shapes out (``say_shape``) solved it.

Notebook 07, classroom, this recipe (recipe 5; 2-core AMD EPYC, scenes tokenizer loaded: 694 s in
all), test questions right (non-relational / relational / counting / all)::

    blind                          45.5 / 27.6 / 33.2 / 37.3    (majority answer per type: 29.1 all)
    early fusion                   99.5 / 91.1 / 94.6 / 95.7    (training 288 s; pointed right: 99.9 / 91.1)
    cross-attention                99.4 / 82.8 / 93.6 / 92.5    (training 195 s; pointed right: 99.7 / 76.1)

("pointed right": cells and shape words as taught, non-relational and relational questions;
closest / furthest: early 84.3 / 90.4, cross 53.8 / 76.0; "is there a ...?" answered 99.4 / 99.2.)
Recipe 4 (no shape words, 2,000 answer steps), the same machine, 693 s: early 89.7 / 86.1 / 84.2 /
87.6, cross 88.7 / 73.6 / 85.0 / 82.6 ("is there" 61.2 / 57.8).

Measured before pointing (notebook 07 on 2 idle cores of an earlier, faster machine, tokenizer
trained fresh: 344 s in all), test questions right (non-relational / relational / counting / all)::

    blind                          45.2 / 27.1 / 33.2 / 36.9    (majority answer per type: 29.1 all)
    early fusion                   90.6 / 50.3 / 72.8 / 73.3    (training 135 s)
    cross-attention                94.1 / 46.6 / 57.0 / 71.6    (training  88 s)

::

    recipe = vqa_recipe(profile)
    tok = get_tokenizer("scenes")
    train, test = vqa_split(recipe, tok, "train"), vqa_split(recipe, tok, "test")
    model = new_vqa_model("cross", recipe, train.vocab)
    histories = train_vqa(model, train, recipe)        # {"describe": History, "answer": History}
    scores = vqa_accuracy(model, test)      # {"shape": 0.99, ..., "relational": 0.9, "all": 0.95}
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data.scenes import (ANSWERS, GRID, PALETTE, POINT_WORDS, QUESTION_GROUPS, QUESTION_TYPES, SHAPES, SIZES, check_objects,
                          make_questions, make_scenes, question_tokens, question_vocabulary, _scenes_list)
from .device import seed_everything, seed_offset
from .image_tokenizer import ImageTokenizer
from .artifacts import recipe_hash
from .models.cross_attention import CrossAttentionDecoder, GatedCrossAttentionBlock, check_image_ids
from .models.scene_encoder import SceneEncoder
from .models.transformer import MixedTransformer, TransformerConfig
from .profiles import get_profile
from .train import History, fit
from .validate import check_choice, check_int, reads_values
from .vocabulary import BOS, BOT, EOT, PAD, MixedVocabulary, WordTokenizer, pad_sequences

KINDS = ("blind", "early", "cross")
ANSWER_WORD = "answer"  # a pointing model writes it after its cells; the answer is its next token
MAX_POINTS = 4  # the most tokens before the answer: "is there": a cell, its shape, the shape asked, then "answer"
RECIPE_VERSION = 5
CELL_CLASSES = ("empty",) + tuple(f"{c} {sh} {sz}" for c in PALETTE for sh in SHAPES for sz in SIZES)


def cell_labels(scenes) -> torch.Tensor:
    """scenes (a :func:`make_scenes` dataset or a list of scenes) -> (S, GRID*GRID) long: what each
    cell holds, row by row, as an index into :data:`CELL_CLASSES` (0: empty)."""
    out = []
    for objects in _scenes_list(scenes):
        row = [0] * (GRID * GRID)
        for o in objects:
            row[o.row * GRID + o.col] = CELL_CLASSES.index(f"{o.color} {o.shape} {o.size}")
        out.append(row)
    return torch.tensor(out, dtype=torch.long)


def vqa_recipe(profile=None, tokenizer: ImageTokenizer | None = None, **overrides) -> dict:
    """Every setting of notebook 07's three models (JSON-serialisable); the same for all three."""
    profile = get_profile(profile)
    recipe = dict(version=RECIPE_VERSION, course_seed=seed_offset(),
                  tokenizer=None if tokenizer is None else recipe_hash(tokenizer.hparams),
                  n_head=4, batch_size=64, lr=1e-3, warmup_steps=50, weight_decay=0.01,
                  model_seed=0, data_seed=0, questions_per_scene=8, init_std=0.1, encoder_layers=1, cell_weight=1.0,
                  point=True, point_weight=1.0, describe_counts=True, tie_points=True, say_shape=True)
    recipe.update(profile.choose(
        smoke=dict(n_layer=2, d_model=64, describe_steps=400, steps=300, n_train=800, n_test=200),
        classroom=dict(n_layer=4, d_model=64, describe_steps=750, steps=3000, n_train=6000, n_test=500),
        gpu=dict(d_model=128, describe_steps=3000, steps=8000, n_train=20000, n_test=1000, batch_size=128)))
    unknown = set(overrides) - set(recipe)
    if unknown:
        raise ValueError(f"unknown recipe settings {sorted(unknown)}; known: {sorted(recipe)}")
    recipe.update(overrides)
    return recipe


def scene_description(objects, counts: bool = False) -> str:
    """What stage 1 teaches to write: every object, row by row, as "colour size shape top|bottom
    left|right", joined by " , " (e.g. "red small circle top left , blue large square bottom right").
    ``counts``: first how many of each shape and size ("1 circles 1 squares 0 triangles 1 small 1 large :")."""
    objects = check_objects(objects)
    head = ""
    if counts:
        head = " ".join(f"{sum(o.shape == s for o in objects)} {s}s" for s in SHAPES) + " " + \
            " ".join(f"{sum(o.size == z for o in objects)} {z}" for z in SIZES) + " : "
    return head + " , ".join(f"{o.color} {o.size} {o.shape} {'top' if o.row < GRID // 2 else 'bottom'} "
                      f"{'left' if o.col < GRID // 2 else 'right'}" for o in check_objects(objects))


def vqa_vocabulary(tokenizer: ImageTokenizer) -> MixedVocabulary:
    """Every question word, every answer, every description word, the 16 cells' pointing words
    (:data:`POINT_WORDS`) and :data:`ANSWER_WORD`, plus the tokenizer's image codes, in one vocabulary."""
    words = WordTokenizer(sorted(set(question_vocabulary()) | set(ANSWERS) | {",", ANSWER_WORD} | set(POINT_WORDS)))
    return MixedVocabulary(words, tokenizer.num_codes, tokenizer.grid)


@dataclass
class VQAData:
    """Questions about scenes as tensors (one row per question; all on one device).

    image: (N, h*w) image-code ids of the question's scene; question: (N, L) word ids, right-padded
    with ``<pad>``; length: (N,) words per question; answer: (N,) vocabulary id of the answer;
    qtype: (N,) index into ``QUESTION_TYPES``; scene: (N,) index into ``scenes``; points: (N, MAX_POINTS)
    vocabulary ids of the cells to point at before answering (:func:`question_points`), the words to
    say (:func:`question_words`, recipe ``say_shape``), then :data:`ANSWER_WORD`, right-padded with ``<pad>``; n_points: (N,) how many (the word included). Per scene (S of
    them): ``scene_image`` (S, h*w) image-code ids, ``description`` (S, Ld) word ids of
    :func:`scene_description` (right-padded), ``description_length`` (S,) and ``cells`` (S, GRID*GRID)
    what each cell holds (:func:`cell_labels`). Also the ``vocab``,
    the ``scenes`` dataset, the ``questions`` dataset and the scenes' images (S, 3, 32, 32).
    """

    image: torch.Tensor
    question: torch.Tensor
    length: torch.Tensor
    answer: torch.Tensor
    qtype: torch.Tensor
    scene: torch.Tensor
    points: torch.Tensor
    n_points: torch.Tensor
    scene_image: torch.Tensor
    description: torch.Tensor
    description_length: torch.Tensor
    cells: torch.Tensor
    vocab: MixedVocabulary
    scenes: object
    questions: object
    images: torch.Tensor

    def __len__(self) -> int:
        return len(self.answer)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """(image, question, length, answer, points, n_points): the batch layout of :func:`vqa_loss`
        and :func:`answer_logits`."""
        return self.image, self.question, self.length, self.answer, self.points, self.n_points

    def describe_tensors(self) -> tuple[torch.Tensor, ...]:
        """(scene_image, description, description_length, cells): the batch layout of :func:`description_loss`."""
        return self.scene_image, self.description, self.description_length, self.cells

    def to(self, device) -> "VQAData":
        moved = {k: getattr(self, k).to(device) for k in ("image", "question", "length", "answer", "qtype", "scene",
                                                          "points", "n_points",
                                                          "scene_image", "description", "description_length", "cells")}
        return VQAData(**moved, vocab=self.vocab, scenes=self.scenes, questions=self.questions, images=self.images)


def encode_questions(vocab: MixedVocabulary, texts: list[str], unknown: str = "error") -> tuple[torch.Tensor, torch.Tensor]:
    """Questions -> (word ids (N, L) right-padded with ``<pad>``, lengths (N,)). Unknown words raise
    the vocabulary's error naming the word (``unknown="unk"`` maps them to ``<unk>``)."""
    if isinstance(texts, str):
        texts = [texts]
    ids = [vocab.encode_text(" ".join(question_tokens(t)), unknown) for t in texts]
    if any(len(i) == 0 for i in ids):
        raise ValueError("every question must hold at least one word; got an empty question")
    return pad_sequences(ids), torch.tensor([len(i) for i in ids])


def vqa_split(recipe: dict, tokenizer: ImageTokenizer, split: str, vocab: MixedVocabulary | None = None,
              n: int | None = None, device=None) -> VQAData:
    """The questions of one split ("train", "val", "test") as :class:`VQAData`: ``n`` scenes
    (default: the recipe's ``n_train`` / ``n_test``; val uses ``n_test``), ``questions_per_scene``
    questions each, the scenes encoded by ``tokenizer`` (the models never see pixels)."""
    check_choice("split", split, ("train", "val", "test"))
    n = n if n is not None else recipe["n_train" if split == "train" else "n_test"]
    check_int("n", n, min_value=1)
    vocab = vocab if vocab is not None else vqa_vocabulary(tokenizer)
    seed = recipe["data_seed"]
    scenes = make_scenes(n, seed=seed, split=split)
    questions = make_questions(scenes, per_scene=recipe["questions_per_scene"], seed=seed)
    images = scenes[:]["image"].float().contiguous()
    codes = tokenizer.encode(images.to(tokenizer.device)).cpu()
    image_ids = vocab.codes_to_ids(codes.reshape(len(codes), -1))
    cols = questions.with_format(None)[:]
    question, length = encode_questions(vocab, cols["text"])
    scene = torch.tensor(cols["scene"])
    description, description_length = encode_questions(
        vocab, [scene_description(o, counts=recipe.get("describe_counts", False)) for o in _scenes_list(scenes)])
    point_ids = torch.tensor(vocab.encode_text(" ".join(POINT_WORDS)))
    say = recipe.get("say_shape", False)
    sequences = [point_ids[torch.tensor(p, dtype=torch.long)].tolist() +
                 vocab.encode_text(" ".join([*(w if say else []), ANSWER_WORD])) for p, w in zip(cols["points"], cols["say"])]
    n_points = torch.tensor([len(r) for r in sequences])
    points = torch.full((len(n_points), MAX_POINTS), PAD, dtype=torch.long)
    for i, row in enumerate(sequences):
        points[i, :len(row)] = torch.tensor(row)
    data = VQAData(image=image_ids[scene], question=question, length=length, scene_image=image_ids,
                   points=points, n_points=n_points,
                   description=description, description_length=description_length, cells=cell_labels(scenes),
                   answer=torch.tensor([vocab.encode_text(a)[0] for a in cols["answer"]]),
                   qtype=torch.tensor([QUESTION_TYPES.index(t) for t in cols["type"]]), scene=scene,
                   vocab=vocab, scenes=scenes, questions=questions, images=images)
    return data.to(device) if device is not None else data


def answer_ids(vocab: MixedVocabulary) -> torch.Tensor:
    """(len(ANSWERS),) vocabulary ids of the answers, in ``ANSWERS`` order."""
    return torch.tensor([vocab.encode_text(a)[0] for a in ANSWERS])


# ------------------------------------------------------------------------------------- models
class EarlyFusionModel(nn.Module):
    """Early fusion, LLaVA style: ``encoder``'s cell vectors (B, P, D) go *before* the text's token
    embeddings in ``transformer`` (a :class:`MixedTransformer`), one causal sequence: every word of
    the question attends to the whole picture.

    forward(text (B, T) ids, image (B, h*w) image-code ids) -> logits (B, T, V) at the text
    positions [, each layer's self-attention weights from the text positions (B, H, T, P + T):
    the first P columns are the picture's cells].
    """

    def __init__(self, transformer: MixedTransformer, encoder: SceneEncoder):
        super().__init__()
        self.transformer, self.encoder = transformer, encoder
        self.config = transformer.config

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, text: torch.Tensor, image: torch.Tensor, need_weights: bool = False):
        cfg = self.config
        check_image_ids(image, cfg, len(text))
        prefix = self.encoder(image - cfg.image_offset)
        P = prefix.shape[1]
        out = self.transformer(text, need_weights=need_weights, prefix=prefix)
        if not need_weights:
            return out[:, P:]
        logits, weights = out
        return logits[:, P:], [w[:, :, P:] for w in weights]


class PointTiedEmbedding(nn.Module):
    """Token embeddings in which each pointing word is tied to its cell: the vector of ``cellk``
    (cell k at row r, column c) is its own embedding plus the scene encoder's ``row_emb[r] +
    col_emb[c]``, the very vectors that mark cell k in the picture, so "read the cell I just named"
    becomes a match of shared vectors instead of 16 associations learned from scratch.

    forward(idx (B, T) ids) -> (B, T, D). ``weight`` is the plain embedding table's."""

    def __init__(self, base: nn.Embedding, encoder: SceneEncoder, point_ids: torch.Tensor):
        super().__init__()
        self.base = base
        self._encoder = [encoder]         # a reference, not a submodule: the model owns the encoder
        cell_of = torch.full((base.num_embeddings,), -1, dtype=torch.long)
        cell_of[point_ids] = torch.arange(len(point_ids))
        self.register_buffer("cell_of", cell_of, persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        enc = self._encoder[0]
        cell = self.cell_of[idx]
        c = cell.clamp(min=0)
        tied = enc.row_emb(c // enc.cell_grid[1]) + enc.col_emb(c % enc.cell_grid[1])
        return self.base(idx) + torch.where((cell >= 0)[..., None], tied, torch.zeros_like(tied))


def new_vqa_model(kind: str, recipe: dict, vocab: MixedVocabulary, max_question: int = 44,
                  gated_block=GatedCrossAttentionBlock):
    """An untrained model of ``kind`` ("blind", "early", "cross") of ``recipe``'s size (seeded).

    ``max_question``: the longest text (question or description) in words. ``gated_block``: the
    class of the cross-attention blocks ("cross" only; e.g. the learner's own). "early" and "cross"
    read the picture through a :class:`SceneEncoder` (one vector per scene cell,
    ``encoder_layers`` bidirectional blocks, a head over :data:`CELL_CLASSES`); "blind" is the
    early model's language model alone, so it has the encoder's parameters fewer, and "early" and
    "cross" have about the same number (the cross model has ``n_layer / 2`` pairs of self- and
    cross-attention blocks). Initialisation:
    linear layers as torch's default, embeddings N(0, ``init_std``). (GPT-2's N(0, 0.02) everywhere
    is made for width 768; at width 64 it left the attention nearly uniform for longer: measured,
    54% vs 57% of test questions after 1,500 steps on ideal scene codes.)"""
    check_choice("kind", kind, KINDS)
    d = recipe["d_model"]
    block = max_question + 4 + MAX_POINTS
    config = TransformerConfig(vocab_size=len(vocab), image_offset=vocab.image_offset, word_offset=vocab.word_offset,
                               grid=vocab.grid, block_size=block, n_layer=recipe["n_layer"], n_head=recipe["n_head"],
                               d_model=d)
    seed_everything(recipe["model_seed"])
    if kind == "blind":
        model = MixedTransformer(config)           # the same language model as "early", without the encoder
    else:
        encoder = SceneEncoder(vocab.num_codes, vocab.grid, (GRID, GRID), d, recipe["n_head"],
                               n_layer=recipe["encoder_layers"], n_classes=len(CELL_CLASSES))
        if kind == "early":
            model = EarlyFusionModel(MixedTransformer(config), encoder)
        else:
            # n_layer blocks in all: n_layer / 2 pairs of (self-attention, gated cross-attention), so the
            # three models have about the same number of parameters
            config.n_layer = max(1, recipe["n_layer"] // 2)
            model = CrossAttentionDecoder(config, gated_block=gated_block, encoder=encoder)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.reset_parameters()
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, recipe["init_std"])
    if kind != "blind" and recipe.get("tie_points", False):
        owner = model.transformer if kind == "early" else model
        owner.tok_emb = PointTiedEmbedding(owner.tok_emb, model.encoder, point_ids(vocab))
    model.vqa_kind = kind
    model.vqa_point = bool(recipe.get("point", False))
    model.vqa_point_ids, model.vqa_answer_ids = point_ids(vocab), answer_ids(vocab)
    model.vqa_say_ids = torch.tensor(vocab.encode_text(" ".join(SHAPES)) if recipe.get("say_shape", False) else [],
                                     dtype=torch.long)
    model.vqa_answer_word = torch.tensor(vocab.encode_text(ANSWER_WORD))
    return model


def model_kind(model) -> str:
    kind = getattr(model, "vqa_kind", None)
    if kind not in KINDS:
        raise TypeError(f"model must come from new_vqa_model (kind one of {KINDS}); got {type(model).__name__}")
    return kind


def question_sequences(question: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[BOS, BOT, words.., EOT]`` right-padded: (B, L + 3), and the position of each row's EOT (B,)."""
    B, L = question.shape
    j = torch.arange(L + 3, device=question.device)
    seq = torch.full((B, L + 3), PAD, dtype=torch.long, device=question.device)
    seq[:, 0], seq[:, 1] = BOS, BOT
    seq[:, 2:L + 2] = question
    seq = torch.where(j == length[:, None] + 2, EOT, seq)
    seq = torch.where(j > length[:, None] + 2, PAD, seq)
    return seq, length + 2


def point_ids(vocab: MixedVocabulary) -> torch.Tensor:
    """(GRID*GRID,) vocabulary ids of the cells' pointing words (:data:`POINT_WORDS`), cell by cell."""
    return torch.tensor(vocab.encode_text(" ".join(POINT_WORDS)))


def answer_sequences(question: torch.Tensor, length: torch.Tensor, points: torch.Tensor,
                     n_points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[BOS, BOT, words.., EOT, points..]`` right-padded: (B, L + 3 + P), and the position of each
    row's last token (B,), the one whose next token is the answer. points: (B, P) vocabulary ids,
    the first ``n_points`` (B,) of each row used."""
    seq, eot = question_sequences(question, length)
    B, P = points.shape
    seq = torch.cat([seq, torch.full((B, P), PAD, dtype=seq.dtype, device=seq.device)], dim=1)
    k = torch.arange(seq.shape[1], device=seq.device)[None] - eot[:, None] - 1     # index into points
    fill = (k >= 0) & (k < n_points[:, None])
    seq = torch.where(fill, points.gather(1, k.clamp(0, max(P - 1, 0)).expand(B, -1)) if P else seq, seq)
    return seq, eot + n_points


def pointing(model) -> bool:
    """Whether ``model`` points at cells before it answers (the recipe's ``point``)."""
    return bool(getattr(model, "vqa_point", False))


def model_inputs(kind: str, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The token ids model ``kind`` reads for batch = (image (B, h*w), question (B, L), length (B,),
    answer (B,)[, points (B, P), n_points (B,)]): (ids (B, T), pos (B,)), pos being the position whose
    next-token logits are the answer's. ``[BOS, BOT, question.., EOT]``, then the cells pointed at
    when the batch holds them, for every kind ("early" puts its 16 cell vectors before them, "cross"
    reads them as a memory, "blind" has none). Rows are right-padded with ``<pad>``, so the last
    column is not the answer's position in every row."""
    check_choice("kind", kind, KINDS)
    if len(batch) >= 6:
        return answer_sequences(batch[1], batch[2], batch[4], batch[5])
    return question_sequences(*batch[1:3])


def _model_batch(model, batch):
    """The batch as ``model`` reads it: without the pointing columns when it does not point."""
    return tuple(batch) if pointing(model) else tuple(batch[:4])


def sequence_logits(model, batch, need_weights: bool = False):
    """(logits (B, T, V) at every position of :func:`model_inputs`, pos (B,)) [, each layer's
    attention weights: (B, H, T, cells + T) self-attention for "early" (the cells first),
    (B, H, T, 1 + cells) cross-attention for "cross" (null slot first), None for "blind"]."""
    kind = model_kind(model)
    seq, pos = model_inputs(kind, _model_batch(model, batch))
    out = model(seq, need_weights=need_weights) if kind == "blind" else model(seq, batch[0], need_weights=need_weights)
    if need_weights:
        logits, weights = out
        return logits, pos, weights
    return out, pos


def answer_logits(model, batch, need_weights: bool = False):
    """(B, V): the next-token logits at each row's answer position (after ``<eot>`` and the cells in
    the batch's ``points``, teacher-forced) [, each layer's attention weights from that position:
    (B, H, cells + T) for "early", (B, H, 1 + cells) for "cross", None for "blind"]."""
    out = sequence_logits(model, batch, need_weights)
    logits, pos = out[:2]
    rows = torch.arange(len(pos), device=pos.device)
    if not need_weights:
        return logits[rows, pos]
    return logits[rows, pos], [None if w is None else w[rows, :, pos] for w in out[2]]


def answer_loss(logits: torch.Tensor, pos: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the answer: logits (B, T, V), pos (B,) each row's answer position,
    answer (B,) vocabulary ids -> 0-d tensor (the first exercise of notebook 07)."""
    rows = torch.arange(len(pos), device=pos.device)
    return F.cross_entropy(logits[rows, pos].float(), answer)


def vqa_loss(model, batch, loss_fn=answer_loss, point_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Stage 2 on batch = (image, question, length, answer, points, n_points): ``loss_fn(logits, pos,
    answer)`` (default :func:`answer_loss`), plus, for a model that points, the mean cross-entropy of
    the pointing tokens (each cell predicted from ``<eot>`` and the cells before it)."""
    logits, pos = sequence_logits(model, batch)
    loss = loss_fn(logits, pos, batch[3])
    if not pointing(model):
        return loss, {}
    seq, _ = model_inputs(model_kind(model), batch)
    j = torch.arange(seq.shape[1] - 1, device=seq.device)[None]
    eot = pos - batch[5]
    keep = (j >= eot[:, None]) & (j < pos[:, None])              # positions whose next token is a cell
    if not reads_values(keep):  # on an accelerator: the same mean without reading ``keep`` (no host round trip)
        ce = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), seq[:, 1:], reduction="none")
        point = (ce * keep).sum() / keep.sum().clamp(min=1)
        return loss + point_weight * point, {"answer": loss.detach(), "points": point.detach()}
    if not bool(keep.any()):
        return loss, {"answer": loss.detach()}
    point = F.cross_entropy(logits[:, :-1][keep].float(), seq[:, 1:][keep])
    return loss + point_weight * point, {"answer": loss.detach(), "points": point.detach()}


def choose_answer(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """logits (B, V), allowed (A,) vocabulary ids of the possible answers -> (B,) the vocabulary id
    of the most likely allowed answer (the third exercise of notebook 07)."""
    return allowed[logits[:, allowed].argmax(dim=1)]


def description_loss(model, batch, cell_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Stage 1: mean next-token cross-entropy over the description's words and its ``<eot>``, plus
    ``cell_weight`` x the cross-entropy of the scene encoder's head on what each cell holds
    ("early" and "cross"; the blind model has no encoder).

    batch = (scene_image (B, h*w), description (B, Ld), description_length (B,), cells (B, cells)).
    Every model reads ``[BOS, BOT, description.., EOT]`` ("early" after its cell vectors, "cross"
    with them as its memory, "blind" without the picture).
    """
    image, text, length = batch[:3]
    kind = model_kind(model)
    seq, _ = question_sequences(text, length)
    logits = model(seq[:, :-1]) if kind == "blind" else model(seq[:, :-1], image)
    target = seq[:, 1:]
    keep = (torch.arange(target.shape[1], device=target.device) >= 1) & (target != PAD)   # from <bot> on
    loss = F.cross_entropy(logits[keep].float(), target[keep])
    parts = {"words": loss.detach()}
    if kind != "blind" and cell_weight:
        cells = model.encoder.cell_logits(image - model.config.image_offset)        # (B, cells, classes)
        cell_loss = F.cross_entropy(cells.flatten(0, 1).float(), batch[3].flatten())
        parts["cells"] = cell_loss.detach()
        loss = loss + cell_weight * cell_loss
    return loss, parts


def train_vqa(model, data: VQAData, recipe: dict, *, device=None, desc: str | None = None,
              loss_fn=answer_loss, after_describe=None) -> dict:
    """Stage 1: ``recipe["describe_steps"]`` AdamW steps of :func:`description_loss` on the scenes
    (warm-up, constant rate); stage 2: ``recipe["steps"]`` steps of :func:`vqa_loss` on the
    questions (warm-up, then a cosine to 10%) with ``loss_fn`` (see :func:`vqa_loss`). Returns
    ``{"describe": History, "answer": History}`` (``describe`` is None when ``describe_steps`` is 0),
    and ``"after_describe"``: what ``after_describe(model)`` returned between the two stages (e.g.
    :func:`cell_accuracy`: what the vision encoder sees before answering moves it), or None (no
    ``after_describe``, or no stage 1)."""
    steps = check_int("steps", recipe["steps"], min_value=1)
    describe = check_int("describe_steps", recipe.get("describe_steps", 0), min_value=0)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    name = desc or f"VQA ({model_kind(model)})"
    common = dict(batch_size=recipe["batch_size"], lr=recipe["lr"], weight_decay=recipe["weight_decay"],
                  device=device, seed=recipe["model_seed"])
    out = {"describe": None, "after_describe": None}
    if describe:
        out["describe"] = fit(model, functools.partial(description_loss, cell_weight=recipe["cell_weight"]),
                              tuple(t.to(device) for t in data.describe_tensors()),
                              steps=describe, warmup_steps=min(recipe["warmup_steps"], describe // 5),
                              desc=f"{name}: describe", **common)
        if after_describe is not None:
            out["after_describe"] = after_describe(model)
    out["answer"] = fit(model, functools.partial(vqa_loss, loss_fn=loss_fn, point_weight=recipe.get("point_weight", 1.0)), tuple(t.to(device) for t in data.tensors()), steps=steps,
                        warmup_steps=min(recipe["warmup_steps"], steps // 5), cosine=True,
                        desc=f"{name}: answer", **common)
    return out


def _with_points(batch, points: torch.Tensor, n_points: torch.Tensor) -> tuple:
    """batch's (image, question, length) with the given cells, in :func:`answer_logits`'s layout
    (the answer slot is not read there: it holds ``length`` as a placeholder)."""
    return (*batch[:3], batch[2], points, n_points)


@torch.no_grad()
def point_first(model, batch, choose=choose_answer, max_points: int = MAX_POINTS) -> tuple[torch.Tensor, torch.Tensor]:
    """The cells a pointing model looks at (and the shape words it says) before it answers, greedily:
    at each step ``choose`` among the 16 cells, the shape words (recipe ``say_shape``) and
    :data:`ANSWER_WORD`; a row stops when it writes the word (which the last step forces). batch = (image, question, length, ...) -> (points (B, max_points) vocabulary ids, the
    word included, right-padded with ``<pad>``; n_points (B,)). A model that does not point gets none."""
    image, question, length = batch[:3]
    B, device = len(length), length.device
    points = torch.full((B, max_points), PAD, dtype=torch.long, device=device)
    n = torch.zeros(B, dtype=torch.long, device=device)
    if not pointing(model):
        return points, n
    word = model.vqa_answer_word.to(device)
    allowed = torch.cat([model.vqa_point_ids.to(device), model.vqa_say_ids.to(device), word])
    done = torch.zeros(B, dtype=torch.bool, device=device)
    for step in range(max_points):
        if step == max_points - 1:
            token = word.expand(B)
        else:
            token = choose(answer_logits(model, _with_points(batch, points, n)), allowed)
        rows = (~done).nonzero().squeeze(1)
        points[rows, n[rows]] = token[rows]
        n = n + (~done).long()
        done = done | (token == word)
        if bool(done.all()):
            break
    return points, n


@torch.no_grad()
def answer_questions(model, batch, choose=choose_answer, need_weights: bool = False):
    """Answer as at test time: point first (:func:`point_first`), then ``choose(logits, allowed)`` over
    ``ANSWERS`` at the answer position. batch = (image, question, length, ...) ->
    (answers (B,) vocabulary ids, points (B, MAX_POINTS), n_points (B,)) [, each layer's attention
    weights from the answer position, as :func:`answer_logits` gives them]."""
    image, question, length = batch[:3]
    points, n = point_first(model, batch, choose=choose)
    out = answer_logits(model, _with_points(batch, points, n), need_weights=need_weights)
    logits = out[0] if need_weights else out
    answers = choose(logits, model.vqa_answer_ids.to(logits.device))
    return (answers, points, n, out[1]) if need_weights else (answers, points, n)


@torch.no_grad()
def predict(model, data: VQAData, batch_size: int = 500, choose=choose_answer, return_points: bool = False):
    """(N,) the predicted answer's vocabulary id for every question (:func:`answer_questions`:
    a pointing model points first; ``choose`` reads the answer, default :func:`choose_answer`).
    ``return_points``: also (points (N, MAX_POINTS), n_points (N,)), the cells the model pointed at."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    outs = [answer_questions(model, tuple(t[s:s + batch_size].to(device) for t in data.tensors()[:3]), choose=choose)
            for s in range(0, len(data), batch_size)]
    model.train(was)
    answers, points, n = (torch.cat([o[k] for o in outs]).to(data.answer.device) for k in range(3))
    return (answers, (points, n)) if return_points else answers


def pointed_cells(vocab: MixedVocabulary, points: torch.Tensor, n_points: torch.Tensor) -> list[list[tuple[int, int]]]:
    """points (B, P) pointing ids, n_points (B,) as :func:`point_first` gives them -> for each row the
    (row, column) of every cell pointed at, in order (the word "answer" and anything else left out)."""
    names = [vocab.token_name(int(t)) for t in points.reshape(-1)]
    out = []
    for b in range(len(n_points)):
        row = names[b * points.shape[1]: b * points.shape[1] + int(n_points[b])]
        out.append([divmod(POINT_WORDS.index(w), GRID) for w in row if w in POINT_WORDS])
    return out


def pointing_accuracy(model, data: VQAData, choose=choose_answer) -> dict[str, float]:
    """The fraction of questions whose cells the model points at exactly as taught
    (:func:`question_points`), per question type and group (``accuracy_by_type``)."""
    _, (points, n) = predict(model, data, choose=choose, return_points=True)
    right = (n == data.n_points) & (points == data.points).all(dim=1)
    return accuracy_by_type(right, data.qtype)


def accuracy_by_type(correct: torch.Tensor, qtype: torch.Tensor) -> dict[str, float]:
    """correct: (N,) bool, qtype: (N,) index into QUESTION_TYPES -> accuracy per type, per group
    (``QUESTION_GROUPS``: non-relational, relational, counting; the mean over the group's questions)
    and ``"all"``."""
    out = {}
    for i, t in enumerate(QUESTION_TYPES):
        m = qtype == i
        if bool(m.any()):
            out[t] = float(correct[m].double().mean())
    for g, types in QUESTION_GROUPS.items():
        m = torch.isin(qtype, torch.tensor([QUESTION_TYPES.index(t) for t in types], device=qtype.device))
        if bool(m.any()):
            out[g] = float(correct[m].double().mean())
    out["all"] = float(correct.double().mean())
    return out


@torch.no_grad()
def cell_accuracy(model, data: VQAData) -> dict[str, float]:
    """What the vision encoder of an "early" or "cross" model sees on ``data``'s scenes, read by its
    cell head: the fraction of objects whose colour, shape and size are all right (``"objects"``),
    of each attribute alone, and of empty cells called empty (``"empty"``)."""
    kind = model_kind(model)
    if kind == "blind":
        raise ValueError("the blind model has no vision encoder; pass an 'early' or 'cross' model")
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    codes = data.scene_image.to(device) - model.config.image_offset
    pred = torch.cat([model.encoder.cell_logits(codes[s:s + 500]).argmax(-1) for s in range(0, len(codes), 500)]).cpu()
    model.train(was)
    truth = data.cells.cpu()
    obj = truth > 0
    names = [c.split() for c in CELL_CLASSES]
    out = {"objects": float((pred == truth)[obj].double().mean()), "empty": float((pred == 0)[~obj].double().mean())}
    for i, attr in enumerate(("color", "shape", "size")):
        table = torch.tensor([-1] + [sorted({n[i] for n in names[1:]}).index(n[i]) for n in names[1:]])
        out[attr] = float((table[pred] == table[truth])[obj].double().mean())
    return out


def vqa_accuracy(model, data: VQAData, choose=choose_answer) -> dict[str, float]:
    """Accuracy of ``model`` on ``data`` per question type, per group and overall."""
    return accuracy_by_type(predict(model, data, choose=choose) == data.answer, data.qtype)
