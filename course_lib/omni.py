"""A tiny omni model: one transformer over text, image and audio tokens (issue 16).

The course's method carried to sound: every modality is a span of integer tokens in one
vocabulary (:class:`~course_lib.vocabulary.MixedVocabulary` with ``num_audio_codes``)::

    0..7 specials, 8 <boa>, 9 <eoa> | words (ten digit names + say/write/draw/read) | image codes | audio codes

and one :class:`~course_lib.models.transformer.MixedTransformer` (with ``audio_offset``) learns four
tasks by next-token prediction. Each task has a fixed layout (every word is one token, an image is
h*w = 49 codes, a clip 22 codes), split into the *prompt* (what generation is given) and the
*target* (what the model writes)::

    t2s  say seven          [BOS BOT say d EOT BOA]           + [audio x22 EOA EOS]
    s2t  transcribe         [BOS BOA audio x22 EOA BOT write] + [d EOT EOS]
    i2s  read aloud         [BOS BOI image x49 EOI BOT read]  + [d EOT BOA audio x22 EOA EOS]
    s2i  draw what you hear [BOS BOA audio x22 EOA BOT draw]  + [d EOT BOI image x49 EOI EOS]

Image <-> speech goes through the word: the model first writes the digit's name, then speaks or
draws it (an "inner monologue", as Moshi writes text tokens before its speech). Without it (the
target span straight after the task word) the classroom model read 43-50% and drew 36-39% right.

The loss weighs the target ``1 - cond_weight`` and the prompt ``cond_weight`` (as notebook 05); in
i2s and s2i the monologue word takes ``word_weight`` of the target's share.
Constrained decoding (:func:`target_constraint`) keeps every generated span in its modality and
length. Evaluation uses the independent judges: the speech judge hears generated clips (decoded by
the audio tokenizer), the digit classifier reads drawn digits (decoded by the image tokenizer).
All voices are synthetic eSpeak NG formant voices, not human speech.

Measured (classroom recipe: d_model 64, 4 layers, 275k parameters, 2,000 steps of 64 sequences,
1 CPU thread on a shared 2-core machine; 30 test-voice clips per word, 500 MNIST test digits;
``get_omni_model("classroom", "cpu")`` then :func:`evaluate_omni`)::

                                           target    task_mix .25/.10/.25/.40    .20/.15/.25/.40 (the recipe)
    speech -> text, held-out voices        >= 97%    95.7%                       96.3%
    speech -> text, held-out accents       (report)  93.0%                       91.7%
    text -> speech, judge, all digits      >= 90%    87.7% (min "one" 23%)       83.7% (min "one" 0%)
    image -> speech, judge                 >= 85%    81.6%                       81.8%
    speech -> image, digit classifier      >= 85%    65.3%                       70.3%
    training seconds                                 402                         406

Notebook 08 with the recipe's 2,500 steps (2 idle cores, judge and audio tokenizer trained fresh: 354 s in
all, 249 s of omni training): speech -> text 94.7% (accents 91.3%), text -> speech 90.3% (worst digit
"one" 50%), image -> speech 87.8%, speech -> image 70.3%; the same notebook at 2,000 steps (297 s):
95.7% / 89.3% (worst 43%) / 84.2% / 71.3%.

Classifier-free guidance for drawing (recipe 4: ``p_uncond_draw`` 0.1 of the drawings without speech
and word, :func:`unconditional_draw_prompt`; the word written greedily, then the image guided), chosen on
*validation* voices (300 clips, the same trained model): no guidance 53.3%; scale 2 / 3 / 4 at
temperature 0.7: 77.7 / 76.7 / 74.3%; scale 3 at 0.5: 80.0% (the recipe), at 0.3: 81.7%;
``p_uncond_draw`` 0.2 instead: 79.0% at (3, 0.5). The model without unconditional rows drew 57.3% at
0.7 (its drawings matched the word it had written only 66% of the time: the drawing, not the
listening, was the weak step). Notebook 08 with it (classroom, judge and audio tokenizer trained
fresh, 306 s): speech -> image **92.3%** (was 70.3%), speech -> text 96.3% (accents 90.3%),
text -> speech 90.0% (worst digits "one" 63%, "nine" 67%), image -> speech 86.2%.

More voices (classroom ``n_per_word`` 200 -> 600 clips per digit, same 2,500 steps; +12 s of synthesis),
chosen on validation voices (one model each; s2t / s2i / t2s / i2s on 500 training images):
200: 89.7 / 78.7 / 90.0 / 88.6%; 400: 93.0 / 86.0 / 92.7 / 90.6%; 600: 94.0 / 89.0 / 95.0 / 94.4%;
800: 95.0 / 81.7 / 94.0 / 93.8%; 1,000: 95.7 / 84.3 / 95.7 / 91.0% (but 3.4 GB peak). Notebook 08 with
600 (classroom, judge and audio tokenizer fresh, 313 s, kernel peak 2.2 GB): speech -> text **98.3%**
(accents 93.7%), text -> speech 95.0% (worst digit "one" 73%, its judge ceiling 67%), image -> speech
91.0%, speech -> image 87.7%: every target but "each digit >= 90%" met.

Guided speaking too (recipe 5: ``p_uncond_say`` 0.1 of the utterances shown as ``[BOS BOT say EOT BOA]``
+ audio, :func:`unconditional_prompt`; :func:`speak` with ``guidance_scale``), chosen on one model per
setting (the same prompts, generator seed 1; t2s all digits / worst digit, 30 prompts per digit):
p 0.1, temperature 0.5: scale 1 (none) 92.3 / 70% ("one"), **1.5: 96.3 / 87%** (the recipe), 2: 95.7 / 83%,
3: 88.3 / 37% ("nine" falls apart); at temperature 0.3: 93.0 / 53, 96.3 / 77, 97.0 / 87, 86.3 / 20%.
p 0.2: 92.3 / 70, 95.0 / 77, 96.3 / 77, 83.3 / 47% (temperature 0.5). Guidance lifts "one" (70 -> 87-93%);
the worst digit is then "one" or "nine", the pair the audio tokenizer blurs (the judge mistakes
tokenized "nine" for "one" and back on real clips too).

A judge that hears the tokenizer, and a wider tokenizer (audio tokenizer recipe 2, ``hidden`` 192;
:func:`~course_lib.models.speech_judge.get_speech_judge` with ``audio_tokenizer``: the judge also
trains on the training clips as the tokenizer returns them). Notebook 08, classroom, every artifact
trained fresh on a 2-core AMD EPYC (709 s; audio tokenizer 178 s, judge 11 s, this model 411 s):
judge ceiling 96.7% (worst digit "zero" 90%; it was 89% / "one" 47% on the same machine before),
speech -> text **98.7%** (accents 92.3%), text -> speech **98.7%**, worst digit **93.3%** ("one"),
image -> speech **91.8%**, speech -> image **89.7%**: every quality target met.

How much of that is the model's seed (recipe 5, one draw per prompt; 2026-12-08, the same data, tokenizers
and judges, ``model_seed`` 0 / 1 / 2, evaluation as in the notebook; ``model_seed`` 0 is the recipe): speech
-> text 98.7 / 98.7 / 98.3% (accents 92.3 / 92.7 / 91.7%), text -> speech 98.7 / 97.3 / 98.3%, image -> speech 91.8 / 89.6 / 91.8%
hold; the worst digit said, 93.3 / **76.7** ("one") / 90.0%, and speech -> image, 89.7 / 91.7 / **81.3%**,
do not: only seed 0 meets every target. The two fragile numbers are the ones the audio tokenizer's
"one"/"nine" blur and the guided drawing decide; 30 prompts per digit also make each digit's rate move in
steps of 3.3 points.

The model checks its own work (recipe 6, ``say_candidates`` = ``draw_candidates`` = 4, as notebook 06's
``candidates``; fixed beforehand, not tuned on the test set): it says each digit four times and keeps the clip
it transcribes most surely as that digit (:func:`pick_best`), and draws each clip four times and keeps the
drawing it reads most surely as the word it transcribed. Same three models, ``model_seed`` 0 / 1 / 2 (0: notebook
08's classroom run, 616 s with the tokenizers, judges and classifier cached; 534 s of training): text -> speech
99.7 / 99.0 / 99.7%, worst digit 96.7 / 90.0 / 96.7%; speech -> image 98.0 / 98.7 / 94.3%; speech -> text
98.7 / 98.7 / 98.3%; image -> speech 92.8 / 90.2 / 90.2%: every target met by every seed. The first candidate
alone (the candidates share the sampling stream, so these single draws differ from the ones above): text ->
speech 97.3 / 98.0 / 98.0%, worst digit 86.7 / 90.0 / 86.7%; speech -> image 93.0 / 93.0 / 78.7%. The worst
digit stays "one", whose judge ceiling is 93%: the self-check cannot give back what the audio tokenizer blurs.

Before guidance: none of the four targets was met at 2,000 steps (and ~7 min of training is over the notebook's
6-min budget). The speech judge's ceiling (tokenized-then-decoded test clips) is 88% over all
digits, and only 43% for "one" and 57% for "three": the audio tokenizer, not this model, loses
"one", so >= 90% for every digit needs a better audio tokenizer first. Equal task shares
(.25 each) with the target straight after the task word (no monologue) gave 98.3% / 70% / 43% /
39%; the monologue raised image -> speech to 80%, the drawing share raised speech -> image from
38% to 65-70%. Sampling: speech at temperature 0.5 (t2s 76% at 0.5 vs 70% at 1.0, 88% near-greedy
on the first model), drawing at 0.7 (43% vs 34% at 1.0 on the second model).
"""
from __future__ import annotations

import dataclasses
import time

import torch
import torch.nn.functional as F

from .artifacts import load_artifact, recipe_hash, save_artifact
from .device import pick_device, seed_offset
from .mixed_training import _from_hparams, new_model, training_examples
from .models.transformer import MixedTransformer
from .profiles import get_profile
from .sampling import generate, rerank, word_logits_after_image
from .train import History, fit
from .validate import check_codes, check_float, check_int, check_tensor
from .vocabulary import (BOA, BOI, BOS, BOT, EOA, EOI, EOS, EOT, PAD, MixedVocabulary, WordTokenizer)

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TASK_WORDS = {"t2s": "say", "s2t": "write", "i2s": "read", "s2i": "draw"}
TASKS = ("t2s", "s2t", "i2s", "s2i")
T2S, S2T, I2S, S2I = range(4)
UNCOND_DRAW = len(TASKS)   # 4: the row id of an unconditional drawing ([BOS BOT draw EOT BOI] + image), for guidance
UNCOND_SAY = len(TASKS) + 1   # 5: the row id of an unconditional utterance ([BOS BOT say EOT BOA] + audio)
UNCOND_ROWS = {S2I: UNCOND_DRAW, T2S: UNCOND_SAY}   # the guided task -> its unconditional row id
TARGET_KIND = {T2S: "audio", S2T: "text", I2S: "audio", S2I: "image"}   # what each task finally writes
RECIPE_VERSION = 6   # 6: best of say_candidates / draw_candidates by the model's own reading; 5: unconditional utterances + guided speaking; 4: unconditional drawing rows + guidance; 3: task_mix; 2: image <-> speech through the digit word (inner monologue)

__all__ = ["TASKS", "T2S", "S2T", "I2S", "S2I", "UNCOND_DRAW", "UNCOND_SAY", "unconditional_prompt", "unconditional_draw_prompt", "build_omni_vocabulary", "task_prompts", "omni_sequences",
           "omni_weights", "omni_loss", "OmniData", "target_constraint", "audio_span_allowed", "omni_recipe",
           "new_omni_model",
           "train_omni", "read_back", "pick_best", "evaluate_omni", "get_omni_model", "transcribe", "speak", "draw_heard"]


# ----------------------------------------------------------------------------- vocabulary and layout
def build_omni_vocabulary(num_image_codes: int, grid: tuple[int, int], num_audio_codes: int) -> MixedVocabulary:
    """Specials + ``<boa>``/``<eoa>``, the digit and task words, image codes, audio codes."""
    words = WordTokenizer(sorted(DIGIT_WORDS + tuple(TASK_WORDS.values())))
    return MixedVocabulary(words, num_image_codes, grid, num_audio_codes=num_audio_codes)


def _word(vocab: MixedVocabulary, word: str) -> int:
    return vocab.encode_text(word)[0]


def digit_word_ids(vocab: MixedVocabulary) -> torch.Tensor:
    """(10,) the vocabulary ids of "zero".."nine"."""
    return torch.tensor([_word(vocab, w) for w in DIGIT_WORDS])


def target_spans(vocab: MixedVocabulary, task: int, n_audio: int) -> list[tuple[str | int, int]]:
    """What the model writes for ``task`` before ``<eos>``, as ``(kind, count)`` pieces: kind
    ``"digit"`` (one digit word), ``"audio"`` / ``"image"`` (codes), or one fixed marker id."""
    word = [("digit", 1), (EOT, 1)]
    return {T2S: [("audio", n_audio), (EOA, 1)], S2T: word,
            I2S: word + [(BOA, 1), ("audio", n_audio), (EOA, 1)],
            S2I: word + [(BOI, 1), ("image", vocab.n_image_tokens), (EOI, 1)]}[task]


def target_length(vocab: MixedVocabulary, task: int, n_audio: int) -> int:
    """Tokens the model writes for ``task`` before ``<eos>``."""
    return sum(n for _, n in target_spans(vocab, task, n_audio))


def task_prompts(vocab: MixedVocabulary, task: int, digits: torch.Tensor, image_ids: torch.Tensor,
                 audio_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prompt (B, P), target (B, L))`` of one task for a batch, as tensors (layouts in the module doc).

    digits: (B,) long 0..9; image_ids: (B, h*w) image ids; audio_ids: (B, T') audio ids (rows a task
    does not read may hold anything of the right shape). ``target`` ends with ``<eos>``.
    """
    B, dev = len(digits), digits.device

    def col(i):
        return torch.full((B, 1), i, dtype=torch.long, device=dev)
    word = digit_word_ids(vocab).to(dev)[digits][:, None]
    task_word = col(_word(vocab, TASK_WORDS[TASKS[task]]))
    image = torch.cat([col(BOI), image_ids, col(EOI)], 1)
    audio = torch.cat([col(BOA), audio_ids, col(EOA)], 1)
    if task == T2S:
        return torch.cat([col(BOS), col(BOT), task_word, word, col(EOT), col(BOA)], 1), torch.cat([audio_ids, col(EOA), col(EOS)], 1)
    if task == S2T:
        return torch.cat([col(BOS), audio, col(BOT), task_word], 1), torch.cat([word, col(EOT), col(EOS)], 1)
    if task == I2S:
        return torch.cat([col(BOS), image, col(BOT), task_word], 1), torch.cat([word, col(EOT), audio, col(EOS)], 1)
    if task == S2I:
        return torch.cat([col(BOS), audio, col(BOT), task_word], 1), torch.cat([word, col(EOT), image, col(EOS)], 1)
    raise ValueError(f"task must be one of 0..3 ({', '.join(TASKS)}); got {task!r}")


def block_size_for(vocab: MixedVocabulary, n_audio: int) -> int:
    """The longest sequence of the four tasks (image <-> speech: 1 + (h*w + 2) + 4 + (T' + 2) + 1)."""
    return vocab.n_image_tokens + n_audio + 10


def omni_sequences(vocab: MixedVocabulary, task: torch.Tensor, digits: torch.Tensor, image_ids: torch.Tensor,
                   audio_ids: torch.Tensor, block_size: int) -> torch.Tensor:
    """A mixed batch: row b laid out as task ``task[b]`` (0..3, or an unconditional row
    ``UNCOND_DRAW`` / ``UNCOND_SAY``), right-padded with ``<pad>`` to
    ``block_size``. Every layout is built for every row with tensor operations and each row keeps its own."""
    check_tensor("task", task, ndim=1, dtype=torch.long)
    check_codes("task", task, len(TASKS) + len(UNCOND_ROWS), hot=True)
    out = torch.full((len(task), block_size), PAD, dtype=torch.long, device=task.device)
    for guided, row_id in UNCOND_ROWS.items():
        span, close = (image_ids, EOI) if guided == S2I else (audio_ids, EOA)
        uncond = torch.cat([unconditional_prompt(vocab, guided, len(task), task.device), span,
                            torch.tensor([[close, EOS]], device=task.device).expand(len(task), 2)], 1)
        out[:, :uncond.shape[1]] = torch.where((task == row_id)[:, None], uncond, out[:, :uncond.shape[1]])
    for t in range(len(TASKS)):
        seq = torch.cat(task_prompts(vocab, t, digits, image_ids, audio_ids), 1)
        if seq.shape[1] > block_size:
            raise ValueError(f"block_size={block_size} is too short for task {TASKS[t]} ({seq.shape[1]} tokens)")
        out[:, :seq.shape[1]] = torch.where((task == t)[:, None], seq, out[:, :seq.shape[1]])
    return out


def omni_weights(vocab: MixedVocabulary, n_audio: int, block_size: int, cond_weight: float = 1 / 8,
                 word_weight: float = 0.25) -> torch.Tensor:
    """(4, block_size - 1) loss weights per task for the targets ``seq[:, 1:]``: the target (with its
    markers and ``<eos>``) shares ``1 - cond_weight``, the prompt after ``<bos>`` shares
    ``cond_weight``; padding 0. In i2s and s2i the monologue word alone takes ``word_weight`` of the
    target's share. Each row sums to 1."""
    check_float("cond_weight", cond_weight, min_value=0.0, max_value=1.0)
    check_float("word_weight", word_weight, min_value=0.0, max_value=1.0)
    w = torch.zeros(len(TASKS), block_size - 1)
    one = torch.zeros(1, dtype=torch.long)
    for t in range(len(TASKS)):
        prompt, target = task_prompts(vocab, t, one, torch.full((1, vocab.n_image_tokens), vocab.image_offset),
                                      torch.full((1, n_audio), vocab.audio_offset))
        P, L = prompt.shape[1], target.shape[1]
        w[t, :P - 1] = cond_weight / (P - 1)
        w[t, P - 1:P - 1 + L] = (1 - cond_weight) / L
        if t in (I2S, S2I):
            w[t, P - 1] = (1 - cond_weight) * word_weight
            w[t, P:P - 1 + L] = (1 - cond_weight) * (1 - word_weight) / (L - 1)
    return w


def unconditional_prompt(vocab: MixedVocabulary, task: int, n: int, device=None) -> torch.Tensor:
    """(n, 5) the prompt of a guided ``task`` with its condition taken out: speech -> image
    ``[BOS BOT draw EOT BOI]`` (no speech, no digit word), text -> speech ``[BOS BOT say EOT BOA]``
    (no digit word). Training shows it before ``p_uncond_draw`` of the drawings / ``p_uncond_say`` of
    the utterances, so the model also learns to draw / say *some* digit; classifier-free guidance
    (:func:`draw_heard`, :func:`speak`) pushes away from that."""
    if task not in UNCOND_ROWS:
        raise ValueError(f"task must be a guided task ({', '.join(TASKS[t] for t in UNCOND_ROWS)}); got {task!r}")
    row = [BOS, BOT, _word(vocab, TASK_WORDS[TASKS[task]]), EOT, BOI if task == S2I else BOA]
    return torch.tensor([row], dtype=torch.long, device=device).expand(n, len(row))


def unconditional_draw_prompt(vocab: MixedVocabulary, n: int, device=None) -> torch.Tensor:
    """(n, 5) ``[BOS BOT draw EOT BOI]``: :func:`unconditional_prompt` of speech -> image."""
    return unconditional_prompt(vocab, S2I, n, device)


def _uncond_weights(vocab: MixedVocabulary, task: int, n_audio: int, block_size: int, cond_weight: float) -> torch.Tensor:
    """(1, block_size - 1) loss weights of ``task``'s unconditional row (same split as the tasks)."""
    w = torch.zeros(1, block_size - 1)
    span = vocab.n_image_tokens if task == S2I else n_audio
    P, L = unconditional_prompt(vocab, task, 1).shape[1], span + 2   # + the closing marker, <eos>
    w[0, :P - 1] = cond_weight / (P - 1)
    w[0, P - 1:P - 1 + L] = (1 - cond_weight) / L
    return w


def omni_loss(model, batch, weights: torch.Tensor, targets: torch.Tensor):
    """Weighted next-token loss for ``fit``: batch = (seq (B, T), task (B,)); weights (6, T-1) from
    :func:`omni_weights` and the two unconditional rows, targets (6, T-1) bool marks each task's target positions (``OmniData``
    holds both). Logs each task's mean target cross-entropy (nats/token; NaN if absent)."""
    seq, task = batch
    logits = model(seq[:, :-1])
    ce = F.cross_entropy(logits.transpose(1, 2).float(), seq[:, 1:], reduction="none")
    w = weights.to(seq.device)[task]
    loss = (w * ce).sum(1).mean()
    with torch.no_grad():
        target = targets.to(seq.device)[task].float()
        parts = {name: (ce * target * (task == t)[:, None]).sum() / (target * (task == t)[:, None]).sum()
                 for t, name in enumerate(TASKS)}
    return loss, parts


class OmniData:
    """Endless mixed batches of the four tasks, built as tensors on ``device``.

    image_codes: (N_i, A, h, w) image codes (A augmented versions, one drawn per use) with labels
    (N_i,); audio_codes: (N_a, T') clip codes with labels (N_a,). A row picks a task (a quarter of
    each batch per task, or ``task_mix`` shares, exactly per batch), a digit, then an image and a clip *of that digit* at random: every image
    meets every voice of its digit.
    """

    def __init__(self, vocab: MixedVocabulary, image_codes: torch.Tensor, image_labels: torch.Tensor,
                 audio_codes: torch.Tensor, audio_labels: torch.Tensor, *, cond_weight: float = 1 / 8,
                 word_weight: float = 0.25, task_mix=(0.25, 0.25, 0.25, 0.25), p_uncond_draw: float = 0.0,
                 p_uncond_say: float = 0.0, seed: int = 0, device=None):
        self.vocab, self.device = vocab, torch.device(device or "cpu")
        if image_codes.ndim == 3:
            image_codes = image_codes[:, None]
        self.n_audio = audio_codes.shape[1]
        order_i, order_a = image_labels.argsort(stable=True), audio_labels.argsort(stable=True)
        self.image_ids = vocab.codes_to_ids(image_codes[order_i].flatten(2)).to(self.device)
        self.audio_ids = vocab.audio_codes_to_ids(audio_codes[order_a]).to(self.device)
        self.image_count = torch.bincount(image_labels, minlength=10).to(self.device)
        self.audio_count = torch.bincount(audio_labels, minlength=10).to(self.device)
        if bool((self.image_count == 0).any()) or bool((self.audio_count == 0).any()):
            raise ValueError("every digit needs at least one image and one clip")
        self.image_start = self.image_count.cumsum(0) - self.image_count
        self.audio_start = self.audio_count.cumsum(0) - self.audio_count
        self.block_size = block_size_for(vocab, self.n_audio)
        uncond = [t for t, _ in sorted(UNCOND_ROWS.items(), key=lambda kv: kv[1])]   # rows 4, 5
        self.weights = torch.cat([omni_weights(vocab, self.n_audio, self.block_size, cond_weight, word_weight)]
                                 + [_uncond_weights(vocab, t, self.n_audio, self.block_size, cond_weight)
                                    for t in uncond]).to(self.device)
        self.targets = torch.cat([omni_weights(vocab, self.n_audio, self.block_size, 0.0, 0.5)]
                                 + [_uncond_weights(vocab, t, self.n_audio, self.block_size, 0.0)
                                    for t in uncond]).to(self.device) > 0
        self.p_uncond_draw = check_float("p_uncond_draw", p_uncond_draw, min_value=0.0, max_value=1.0)
        self.p_uncond_say = check_float("p_uncond_say", p_uncond_say, min_value=0.0, max_value=1.0)
        if len(task_mix) != len(TASKS) or min(task_mix) < 0 or abs(sum(task_mix) - 1) > 1e-6:
            raise ValueError(f"task_mix must be {len(TASKS)} shares ({', '.join(TASKS)}) >= 0 summing to 1; got {task_mix!r}")
        self.task_mix = torch.tensor([float(m) for m in task_mix])
        self._task_columns: dict[int, torch.Tensor] = {}   # batch size -> the unshuffled task column
        self.generator = torch.Generator(self.device).manual_seed(seed + seed_offset())

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        g, dev, B = self.generator, self.device, check_int("batch_size", batch_size, min_value=1)
        task = self._task_column(B)[torch.randperm(B, generator=g, device=dev)]
        digit = torch.randint(10, (B,), generator=g, device=dev)
        i = self.image_start[digit] + (torch.rand(B, generator=g, device=dev) * self.image_count[digit]).long()
        a = self.audio_start[digit] + (torch.rand(B, generator=g, device=dev) * self.audio_count[digit]).long()
        version = torch.randint(self.image_ids.shape[1], (B,), generator=g, device=dev)
        if self.p_uncond_draw > 0 or self.p_uncond_say > 0:   # classifier-free guidance: some rows without their condition
            u = torch.rand(B, generator=g, device=dev)
            task = torch.where((u < self.p_uncond_draw) & (task == S2I), UNCOND_DRAW, task)
            task = torch.where((u < self.p_uncond_say) & (task == T2S), UNCOND_SAY, task)
        seq = omni_sequences(self.vocab, task, digit, self.image_ids[i, version], self.audio_ids[a], self.block_size)
        return seq, task

    def _task_column(self, B: int) -> torch.Tensor:
        """(B,) task ids on the device, ``task_mix`` split by largest remainders: worked out once per batch
        size (no per-step host work), then shuffled by :meth:`batch`."""
        if B not in self._task_columns:
            counts = (self.task_mix * B).floor().long()
            counts[(self.task_mix * B - counts).argsort(descending=True)[:B - int(counts.sum())]] += 1
            self._task_columns[B] = torch.repeat_interleave(torch.arange(len(TASKS)), counts).to(self.device)
        return self._task_columns[B]

    def batches(self, batch_size: int):
        while True:
            yield self.batch(batch_size)


# ----------------------------------------------------------------------------- constrained decoding
def audio_span_allowed(vocab: MixedVocabulary, i: int, n_audio: int) -> torch.Tensor:
    """(V,) bool: what may come at position ``i`` of an audio span of ``n_audio`` codes closed by
    ``<eoa>`` (the ``<boa>`` before it is already written): for ``i < n_audio`` the audio codes only
    (ids ``audio_offset`` .. ``len(vocab) - 1``), for ``i == n_audio`` the ``<eoa>`` only. The
    reference for the notebook's exercise; :func:`target_constraint` builds the same masks."""
    i = check_int("i", i, min_value=0, max_value=n_audio)
    if i < n_audio:
        return vocab.allowed_mask("audio")
    mask = torch.zeros(len(vocab), dtype=torch.bool)
    mask[EOA] = True
    return mask


def _span_masks(vocab: MixedVocabulary, n_audio: int, audio_span) -> list[torch.Tensor]:
    """The ``n_audio + 1`` masks of an audio span and its ``<eoa>`` from ``audio_span(vocab, i, n_audio)``."""
    if not callable(audio_span):
        raise TypeError(f"audio_span must be a function audio_span(vocab, i, n_audio) -> (V,) bool, or None; "
                        f"got {type(audio_span).__name__}")
    masks = []
    for i in range(n_audio + 1):
        mask = audio_span(vocab, i, n_audio)
        check_tensor(f"audio_span(vocab, {i}, {n_audio})", mask, shape=(len(vocab),), dtype=torch.bool)
        if not bool(mask.any()):
            raise ValueError(f"audio_span(vocab, {i}, {n_audio}) must allow at least one token; got an all-False mask")
        masks.append(mask.cpu())
    return masks


def target_constraint(vocab: MixedVocabulary, task: int, n_audio: int, *, audio_span=None):
    """``allowed(step, generated) -> (V,) bool`` for the target of ``task``: step by step, only the
    tokens :func:`target_spans` lays out there (one digit word, audio codes, image codes, or the one
    marker that opens or closes a span), so every span keeps its modality and its length.

    ``audio_span``: your own ``audio_span(vocab, i, n_audio) -> (V,) bool`` (the notebook's exercise,
    see :func:`audio_span_allowed`) for the audio span's ``n_audio`` codes and its closing ``<eoa>``;
    None (default) builds them here (the same masks)."""
    masks = []
    spans = target_spans(vocab, task, n_audio)
    for j, (kind, count) in enumerate(spans):
        if audio_span is not None and kind == "audio":
            masks += _span_masks(vocab, n_audio, audio_span)   # the codes and the <eoa> after them
            continue
        if audio_span is not None and kind == EOA and j > 0 and spans[j - 1][0] == "audio":
            continue
        if kind == "digit":
            mask = torch.zeros(len(vocab), dtype=torch.bool)
            mask[digit_word_ids(vocab)] = True
        elif isinstance(kind, str):
            mask = vocab.allowed_mask(kind)
        else:
            mask = torch.zeros(len(vocab), dtype=torch.bool)
            mask[kind] = True
        masks += [mask] * count

    def allowed(step: int, generated: torch.Tensor) -> torch.Tensor:
        return masks[min(step, len(masks) - 1)]
    return allowed


@torch.no_grad()
def _run(model, vocab, task, digits, image_ids, audio_ids, n_audio, *, temperature, top_k, generator,
         batch_size=500, audio_span=None, guidance_scale=1.0) -> torch.Tensor:
    """What the model writes for ``task`` before ``<eos>``, (B, target_length).

    guidance_scale != 1 (the guided tasks: speech -> image, text -> speech): the tokens before the
    guided span greedily (s2i: the word, ``<eot>``, ``<boi>``; t2s: none), then the span's codes with
    classifier-free guidance against :func:`unconditional_prompt`, then its closing marker (the only
    token the constraint allows there)."""
    out = []
    allowed = target_constraint(vocab, task, n_audio, audio_span=audio_span)
    steps = target_length(vocab, task, n_audio)
    before = _guided_start(vocab, task, n_audio) if guidance_scale != 1.0 else None
    for s in range(0, len(digits), batch_size):
        prompt, _ = task_prompts(vocab, task, digits[s:s + batch_size], image_ids[s:s + batch_size],
                                 audio_ids[s:s + batch_size])
        if before is None:
            ids = generate(model, prompt, steps, temperature=temperature, top_k=top_k, generator=generator,
                           allowed=allowed)
        else:
            first = (generate(model, prompt, before, temperature=0.0, allowed=allowed) if before   # greedy
                     else prompt[:, :0])
            span = generate(model, torch.cat([prompt.to(first.device), first], 1), steps - before - 1,
                            temperature=temperature, top_k=top_k, generator=generator, guidance_scale=guidance_scale,
                            uncond_prompt=unconditional_prompt(vocab, task, len(prompt), first.device),
                            allowed=lambda step, gen: allowed(step + before, gen))
            close = allowed(steps - 1, span).nonzero()[0].to(span.device).expand(len(span), 1)   # <eoi> / <eoa>
            ids = torch.cat([first, span, close], 1)
        out.append(ids.cpu())
    return torch.cat(out)


def _guided_start(vocab, task, n_audio) -> int:
    """Where the guided span's codes start in ``task``'s target (a ValueError for tasks without guidance)."""
    if task not in UNCOND_ROWS:
        raise ValueError(f"guidance_scale != 1 is for drawing (task s2i) and saying (t2s); got task {TASKS[task]}")
    spans = target_spans(vocab, task, n_audio)
    kinds = [kind for kind, _ in spans]
    return sum(n for _, n in spans[:kinds.index("image" if task == S2I else "audio")])


def _dummy(vocab, n, n_audio):
    return (torch.full((n, vocab.n_image_tokens), vocab.image_offset), torch.full((n, n_audio), vocab.audio_offset))


def transcribe(model, vocab, audio_codes: torch.Tensor) -> torch.Tensor:
    """Speech -> text, greedy: audio codes (B, T') -> the digit (B,) the model writes."""
    n_audio = audio_codes.shape[1]
    img, _ = _dummy(vocab, len(audio_codes), n_audio)
    words = _run(model, vocab, S2T, torch.zeros(len(audio_codes), dtype=torch.long), img,
                 vocab.audio_codes_to_ids(audio_codes), n_audio, temperature=0.0, top_k=None, generator=None)
    return _digits(vocab, words[:, 0])


def _digits(vocab, word_ids: torch.Tensor) -> torch.Tensor:
    """digit word ids (B,) -> digits (B,)."""
    return (word_ids[:, None] == digit_word_ids(vocab)[None]).long().argmax(1)


@torch.no_grad()
def read_back(model, vocab, *, audio_codes: torch.Tensor | None = None, image_codes: torch.Tensor | None = None,
              batch_size: int = 500) -> torch.Tensor:
    """How the model itself reads clips or images: (N, 10) logits of "zero".."nine" (not normalised).

    audio_codes (N, T'): the speech -> text prompt ``[BOS BOA audio EOA BOT write]``; image_codes
    (N, h, w): the image -> speech prompt ``[BOS BOI image EOI BOT read]``; either way the next
    token is the digit word, and its logits are kept for the ten digit words only."""
    if (audio_codes is None) == (image_codes is None):
        raise ValueError("pass exactly one of audio_codes= (clips) or image_codes= (images)")
    check_int("batch_size", batch_size, min_value=1)
    if image_codes is not None:   # [BOS BOI image EOI BOT] + "read": notebook 06's image reading, with the task word
        return word_logits_after_image(model, vocab, image_codes, TASK_WORDS["i2s"], list(DIGIT_WORDS),
                                       batch_size=batch_size).float().cpu()
    check_tensor("audio_codes", audio_codes, ndim=2, integer=True)
    n = len(audio_codes)
    img, _ = _dummy(vocab, n, audio_codes.shape[1])
    prompt, _ = task_prompts(vocab, S2T, torch.zeros(n, dtype=torch.long), img, vocab.audio_codes_to_ids(audio_codes).cpu())
    device = next(model.parameters()).device
    cols = digit_word_ids(vocab).to(device)
    was_training = model.training
    model.eval()
    out = [model(prompt[s:s + batch_size].to(device))[:, -1, cols].float().cpu() for s in range(0, n, batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, len(DIGIT_WORDS))


def pick_best(model, vocab, candidates: torch.Tensor, asked: torch.Tensor) -> torch.Tensor:
    """Best of n by the model's own reading (notebook 06's rerank, here for speech and drawings).

    candidates: (P, n, T') audio codes or (P, n, h, w) image codes, n candidates for each of P
    prompts; asked: (P,) the digit each prompt wants. The model reads every candidate
    (:func:`read_back`) and the one with the highest probability of the asked digit is kept:
    (P, T') or (P, h, w). The judges never take part: they score what is kept."""
    check_tensor("candidates", candidates, integer=True, nonempty=True)
    if candidates.ndim not in (3, 4):
        raise ValueError(f"candidates must be (P, n, T') audio codes or (P, n, h, w) image codes; got shape "
                         f"{tuple(candidates.shape)}")
    P, n = candidates.shape[:2]
    flat = candidates.flatten(0, 1)
    readings = (read_back(model, vocab, audio_codes=flat) if candidates.ndim == 3
                else read_back(model, vocab, image_codes=flat)).view(P, n, len(DIGIT_WORDS))
    return candidates[torch.arange(P), rerank(readings, asked).cpu()]


def speak(model, vocab, *, digits: torch.Tensor | None = None, image_codes: torch.Tensor | None = None,
          n_audio: int = 22, temperature: float = 1.0, top_k: int | None = None, generator=None,
          audio_span=None, guidance_scale: float = 1.0, candidates: int = 1) -> torch.Tensor:
    """Text -> speech (``digits`` (B,)) or image -> speech (``image_codes`` (B, h, w)): audio codes (B, T').

    ``audio_span``: your own audio-span constraint (see :func:`target_constraint`); None: the library's.
    guidance_scale != 1 (text -> speech only): each audio code from ``uncond + s * (cond - uncond)``
    where ``uncond`` reads :func:`unconditional_prompt` (``say`` without the digit word) - for a model
    trained with ``p_uncond_say > 0``. ``candidates`` > 1: say each one that many times and keep the
    clip the model itself transcribes best as the digit asked (:func:`pick_best`; reading an image
    aloud: the digit the model reads in the image)."""
    if (digits is None) == (image_codes is None):
        raise ValueError("pass exactly one of digits= (say the word) or image_codes= (read the image aloud)")
    check_float("guidance_scale", guidance_scale, min_value=0.0)
    n = check_int("candidates", candidates, min_value=1)
    if n > 1:
        B = len(digits) if digits is not None else len(image_codes)
        said = speak(model, vocab, digits=None if digits is None else digits.repeat_interleave(n),
                     image_codes=None if image_codes is None else image_codes.repeat_interleave(n, 0),
                     n_audio=n_audio, temperature=temperature, top_k=top_k, generator=generator,
                     audio_span=audio_span, guidance_scale=guidance_scale)
        asked = digits if digits is not None else read_back(model, vocab, image_codes=image_codes).argmax(1)
        return pick_best(model, vocab, said.view(B, n, -1), asked)
    if guidance_scale != 1.0 and digits is None:
        raise ValueError(f"guidance_scale != 1 is for saying a word (digits=); reading an image aloud has no "
                         f"unconditional prompt; got guidance_scale={guidance_scale} with image_codes=")
    B = len(digits) if digits is not None else len(image_codes)
    img, aud = _dummy(vocab, B, n_audio)
    task = T2S if digits is not None else I2S
    if image_codes is not None:
        img = vocab.codes_to_ids(image_codes.flatten(1))
    ids = _run(model, vocab, task, digits if digits is not None else torch.zeros(B, dtype=torch.long), img, aud,
               n_audio, temperature=temperature, top_k=top_k, generator=generator, audio_span=audio_span,
               guidance_scale=guidance_scale)
    return vocab.ids_to_audio_codes(ids[:, -n_audio - 1:-1])


def draw_heard(model, vocab, audio_codes: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
               generator=None, guidance_scale: float = 1.0, batch_size: int = 500, candidates: int = 1) -> torch.Tensor:
    """Speech -> image: audio codes (B, T') -> image codes (B, h, w).

    guidance_scale != 1: the model first writes the word it heard (``d EOT BOI``, greedy as in
    :func:`transcribe`), then draws with
    classifier-free guidance, each image token from ``uncond + s * (cond - uncond)`` where ``uncond``
    reads :func:`unconditional_prompt` (no speech, no word) - for a model trained with
    ``p_uncond_draw > 0``. ``candidates`` > 1: draw each clip that many times and keep the drawing the
    model itself reads best as the word it transcribes from the clip (:func:`pick_best`)."""
    n_audio = audio_codes.shape[1]
    img, _ = _dummy(vocab, len(audio_codes), n_audio)
    check_float("guidance_scale", guidance_scale, min_value=0.0)
    n = check_int("candidates", candidates, min_value=1)
    if n > 1:
        drawn = draw_heard(model, vocab, audio_codes.repeat_interleave(n, 0), temperature=temperature, top_k=top_k,
                           generator=generator, guidance_scale=guidance_scale, batch_size=batch_size)
        return pick_best(model, vocab, drawn.view(len(audio_codes), n, *drawn.shape[1:]),
                         transcribe(model, vocab, audio_codes))
    ids = _run(model, vocab, S2I, torch.zeros(len(audio_codes), dtype=torch.long), img,
               vocab.audio_codes_to_ids(audio_codes), n_audio, temperature=temperature, top_k=top_k,
               generator=generator, batch_size=batch_size, guidance_scale=guidance_scale)
    start = _guided_start(vocab, S2I, n_audio)
    return vocab.ids_to_codes(ids[:, start:start + vocab.n_image_tokens])


# ----------------------------------------------------------------------------- recipe, training, evaluation
def omni_recipe(profile=None, image_tokenizer=None, audio_tokenizer=None, **overrides) -> dict:
    """Every setting of the omni model (JSON); the two tokenizers' recipe hashes are part of it."""
    profile = get_profile(profile)
    recipe = dict(version=RECIPE_VERSION, course_seed=seed_offset(),
                  image_tokenizer=recipe_hash(image_tokenizer.hparams) if image_tokenizer is not None else None,
                  audio_tokenizer=recipe_hash(audio_tokenizer.hparams) if audio_tokenizer is not None else None,
                  n_layer=4, n_head=4, d_model=64, dropout=0.0, batch_size=64, lr=3e-3, warmup_steps=100,
                  weight_decay=0.01, cond_weight=1 / 8, word_weight=0.25, task_mix=[0.2, 0.15, 0.25, 0.4], model_seed=0, data_seed=0, n_shifts=2,
                  speech_temperature=0.5, image_temperature=0.5, top_k=None, p_uncond_draw=0.1, draw_guidance=3.0,
                  p_uncond_say=0.1, say_guidance=1.5, say_candidates=4, draw_candidates=4)
    recipe.update(profile.choose(
        smoke=dict(d_model=32, n_layer=2, n_head=2, batch_size=32, steps=150, n_per_word=20, n_test_per_word=5,
                   n_images=100, n_shifts=0, say_candidates=2, draw_candidates=2),
        classroom=dict(steps=2500, n_per_word=600, n_test_per_word=30, n_images=500),
        gpu=dict(d_model=256, n_layer=6, n_head=8, batch_size=128, steps=5000, n_per_word=1000,
                 n_test_per_word=100, n_images=500)))
    unknown = sorted(set(overrides) - set(recipe))
    if unknown:
        raise ValueError(f"overrides must name settings of the recipe ({', '.join(sorted(recipe))}); got {unknown}")
    recipe.update(overrides)
    return recipe


def new_omni_model(recipe: dict, vocab: MixedVocabulary, block_size: int) -> MixedTransformer:
    """An untrained transformer of ``recipe``'s size for ``vocab`` (with its audio range), seeded by ``model_seed``."""
    return new_model(recipe, vocab, block_size)


def training_data(recipe: dict, image_tokenizer, audio_tokenizer, device=None) -> tuple[MixedVocabulary, OmniData]:
    """Tokenize the MNIST-5k train digits (as is + ``n_shifts`` one-pixel shifts) and ``n_per_word``
    train-voice clips per digit word; returns ``(vocab, data)``."""
    from .data import as_tensors, load_digits
    from .speech_features import speech_log_mels
    _, image_codes = training_examples("digits", {"n_shifts": recipe["n_shifts"]}, image_tokenizer)
    _, image_labels = as_tensors(load_digits(verbose=False)["train"])
    mels, audio_labels = speech_log_mels("train", recipe["n_per_word"], seed=recipe["data_seed"])
    audio_codes = audio_tokenizer.encode(mels).cpu()
    vocab = build_omni_vocabulary(image_tokenizer.num_codes, image_tokenizer.grid, audio_tokenizer.num_codes)
    return vocab, OmniData(vocab, image_codes, image_labels, audio_codes, audio_labels,
                           cond_weight=recipe["cond_weight"], word_weight=recipe["word_weight"],
                           task_mix=recipe["task_mix"], p_uncond_draw=recipe["p_uncond_draw"],
                           p_uncond_say=recipe["p_uncond_say"],
                           seed=recipe["data_seed"], device=device)


def train_omni(model: MixedTransformer, data: OmniData, recipe: dict, *, device=None) -> History:
    """``recipe["steps"]`` AdamW steps with warm-up and a cosine, via :func:`course_lib.train.fit`."""
    steps = check_int("steps", recipe["steps"], min_value=1)
    return fit(model, lambda m, b: omni_loss(m, b, data.weights, data.targets), data.batches(recipe["batch_size"]), steps=steps,
               batch_size=recipe["batch_size"], lr=recipe["lr"], warmup_steps=min(recipe["warmup_steps"], steps // 5),
               cosine=True, weight_decay=recipe["weight_decay"], device=device, desc="omni transformer")


@torch.no_grad()
def evaluate_omni(model, vocab, recipe: dict, image_tokenizer, audio_tokenizer, speech_judge, digit_judge,
                  *, seed: int = 0, audio_span=None) -> dict:
    """The four tasks on held-out data, judged by the independent judges:

    * ``s2t_test`` / ``s2t_test_accent``: word accuracy on held-out voices / accents (greedy);
    * ``t2s`` (and ``t2s_per_digit``, ``t2s_min_digit``): the speech judge hears the clip the model says
      for each digit (``n_test_per_word`` prompts per digit), the best of ``say_candidates`` by the
      model's own reading (:func:`pick_best`); ``t2s_single_draw`` (``_per_digit``, ``_min_digit``): the
      first candidate alone; ``judge_ceiling_test`` (``_per_digit``): the judge on
      tokenized-then-decoded test clips, the ceiling for generated speech;
    * ``i2s``: the model reads the MNIST test digits aloud, the speech judge hears the label;
    * ``s2i``: the model draws what it hears (test voices), the digit classifier reads the label: the best
      of ``draw_candidates`` drawings by the model's own reading; ``s2i_single_draw``: the first alone.

    ``audio_span``: the audio-span constraint that speaking uses (see :func:`target_constraint`).
    """
    from .data import as_tensors, load_digits
    from .models.classifier import predict_digits
    from .models.speech_judge import judge_words
    from .speech_features import speech_log_mels
    n, g = recipe["n_test_per_word"], torch.Generator().manual_seed(seed)
    kw = dict(temperature=recipe["speech_temperature"], top_k=recipe["top_k"], generator=g, audio_span=audio_span)
    out = {}
    for split in ("test", "test_accent"):
        mels, labels = speech_log_mels(split, n, seed=0)
        codes = audio_tokenizer.encode(mels).cpu()
        words = transcribe(model, vocab, codes)
        out[f"s2t_{split}"] = float((words == labels).double().mean())
        if split == "test":
            test_codes, test_labels, test_words = codes, labels, words
            ok = (judge_words(speech_judge, audio_tokenizer.decode(codes)).cpu() == labels).double()
            out["judge_ceiling_test"] = float(ok.mean())
            out["judge_ceiling_per_digit"] = [float(ok[labels == d].mean()) for d in range(10)]
    n_audio = test_codes.shape[1]
    digits = torch.arange(10).repeat_interleave(n)
    k = recipe["say_candidates"]
    said = speak(model, vocab, digits=digits.repeat_interleave(k), n_audio=n_audio,
                 guidance_scale=recipe["say_guidance"], **kw).view(len(digits), k, n_audio)
    for key, clips in (("t2s_single_draw", said[:, 0]), ("t2s", pick_best(model, vocab, said, digits))):
        heard = judge_words(speech_judge, audio_tokenizer.decode(clips)).cpu()
        per_digit = [float((heard[digits == d] == d).double().mean()) for d in range(10)]
        out[key], out[f"{key}_per_digit"], out[f"{key}_min_digit"] = (float((heard == digits).double().mean()),
                                                                       per_digit, min(per_digit))
    x, y = as_tensors(load_digits(verbose=False)["test"])
    x, y = x[:recipe["n_images"]], y[:recipe["n_images"]]
    image_codes = image_tokenizer.encode(x.to(image_tokenizer.device)).cpu()
    read = judge_words(speech_judge, audio_tokenizer.decode(speak(model, vocab, image_codes=image_codes,
                                                                  n_audio=n_audio, **kw))).cpu()
    out["i2s"] = float((read == y).double().mean())
    kw["temperature"] = recipe["image_temperature"]
    del kw["audio_span"]   # a drawing has no audio span
    k = recipe["draw_candidates"]
    drawn = draw_heard(model, vocab, test_codes.repeat_interleave(k, 0), guidance_scale=recipe["draw_guidance"],
                       **kw).view(len(test_codes), k, *image_tokenizer.grid)
    for key, codes in (("s2i_single_draw", drawn[:, 0]),
                       ("s2i", pick_best(model, vocab, drawn, test_words))):   # the word it heard, as transcribed
        images = image_tokenizer.decode(codes.to(image_tokenizer.device))
        out[key] = float((predict_digits(digit_judge, images).cpu() == test_labels).double().mean())
    return out


def get_omni_model(profile=None, device=None, *, verbose: bool = True, evaluate: bool = True):
    """``(model, vocab, recipe, metrics)``: loads artifact ``omni_<profile>`` if this profile's recipe
    (on the current tokenizers) made it; otherwise trains, evaluates and saves it."""
    from .audio_tokenizer import get_audio_tokenizer
    from .image_tokenizer import get_tokenizer
    from .models.classifier import get_digit_classifier
    from .models.speech_judge import get_speech_judge
    profile = get_profile(profile)
    device = torch.device(device) if device is not None else pick_device()
    image_tok = get_tokenizer("digits", profile=profile, device=device, verbose=verbose)
    audio_tok = get_audio_tokenizer(profile=profile, device=device, verbose=verbose)
    recipe = omni_recipe(profile, image_tok, audio_tok)
    name = f"omni_{profile.name}"
    loaded = load_artifact(name, _from_hparams, expected=recipe, verbose=verbose, say_loaded=False)
    if loaded is not None:
        model, meta = loaded
        vocab = build_omni_vocabulary(image_tok.num_codes, image_tok.grid, audio_tok.num_codes)
        return model.to(device).eval(), vocab, recipe, meta.get("metrics", {})
    start = time.perf_counter()
    vocab, data = training_data(recipe, image_tok, audio_tok, device=device)
    model = new_omni_model(recipe, vocab, data.block_size).to(device)
    history = train_omni(model, data, recipe, device=device)
    metrics = {"train_seconds": time.perf_counter() - start, "final_loss": history.first_last()[1]}
    if evaluate:
        t = time.perf_counter()
        metrics.update(evaluate_omni(model.eval(), vocab, recipe, image_tok, audio_tok,
                                     get_speech_judge(profile, device, audio_tokenizer=audio_tok, verbose=verbose),
                                     get_digit_classifier(profile, device, verbose=verbose)))
        metrics["eval_seconds"] = time.perf_counter() - t
    hparams = {**recipe, "config": {**dataclasses.asdict(model.config), "grid": list(model.config.grid)}}
    save_artifact(name, model, hparams, metrics=metrics)
    if verbose:
        print(f"trained omni model {name!r} in {metrics['train_seconds']:.0f} s; saved to data/artifacts")
    return model.eval(), vocab, recipe, metrics
