"""Training the mixed-sequence transformer of notebooks 05-06: its recipe, its data, saving and loading.

Notebook 05 builds and trains the two models (digits, shapes) and saves them; notebook 06 samples
from them and measures them::

    recipe = mixed_recipe("digits", profile)               # every setting, JSON, in plain sight
    model, vocab = get_mixed_model("digits", profile=profile, device=device)   # load, or train now

The recipe is the artifact's identity: a saved model is used only if it was trained by exactly
this recipe, on exactly this image tokenizer (its recipe hash is part of the recipe).

Data per dataset (:func:`training_examples`):

* ``"digits"``: the 4,500 MNIST-5k training digits, each tokenized as is and shifted by one pixel
  (``n_shifts`` of :data:`SHIFTS`: up/down/left/right, then the diagonals), with the eight caption
  templates as variants;
* ``"shapes"``: ``n_shapes`` one-shape scenes (three (shape, colour) pairs held out), each with its
  own caption and three more phrasings with synonyms.
"""
from __future__ import annotations

import functools
import random
import time

import torch

from .artifacts import load_artifact, recipe_hash, save_artifact
from .device import pick_device, seed_everything, seed_offset
from .image_tokenizer import ImageTokenizer, get_tokenizer
from .mixed_data import MixedSequenceData, mixed_sequence_loss
from .models.transformer import MixedTransformer, TransformerConfig
from .profiles import get_profile
from .train import History, fit
from .validate import check_choice, check_int
from .vocabulary import DIRECTIONS, MixedVocabulary, WordTokenizer, build_sequence, pad_sequences

DATASETS = ("digits", "shapes")
RECIPE_VERSION = 2   # bump when training changes in a way the recipe does not show (2: batches drawn as tensors)
# one-pixel shifts (dy, dx) used as augmentation for digits (the first n_shifts): the four axes, then the diagonals
SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))


def mixed_recipe(dataset: str, profile=None, tokenizer: ImageTokenizer | None = None, **overrides) -> dict:
    """Every setting of one mixed-sequence model (JSON-serialisable).

    tokenizer: the image tokenizer it reads and writes (its recipe hash becomes part of this
    recipe); default: the one :func:`~course_lib.image_tokenizer.get_tokenizer` gives. ``overrides``
    change single settings (the ablations of notebook 06), and unknown names are an error.
    """
    check_choice("dataset", dataset, DATASETS)
    profile = get_profile(profile)
    if tokenizer is None:
        tokenizer = get_tokenizer(dataset, profile=profile, verbose=False)
    recipe = dict(version=RECIPE_VERSION, course_seed=seed_offset(), dataset=dataset,
                  tokenizer=recipe_hash(tokenizer.hparams),
                  n_layer=4, n_head=4, d_model=64, dropout=0.0, batch_size=64, lr=3e-3, warmup_steps=50,
                  weight_decay=0.01, cond_weight=1 / 8, p_drop_caption=0.1, model_seed=0,
                  data_seed=0 if dataset == "digits" else 1)
    if dataset == "digits":
        # ema_decay: the model keeps the moving average of its weights over the last ~500 steps (see fit)
        recipe.update(p_i2t=0.6, ema_decay=0.998)
        recipe.update(profile.choose(
            smoke=dict(d_model=32, n_layer=2, n_head=2, batch_size=32, steps=600, n_shifts=1, ema_decay=None),
            # classroom: 4,000 steps, all eight shifts and the weight average read and draw the digits better than
            # 2,600 steps and four shifts (test captions 97.8% vs 96.2% on the 2-core AMD EPYC, notebook 06)
            classroom=dict(steps=4000, n_shifts=8),
            gpu=dict(d_model=256, n_layer=6, n_head=8, batch_size=128, steps=4000, n_shifts=8)))
    else:
        # shapes captions are easy to read (image -> text is near perfect even with half the rows), drawing
        # the right shape is what needs the steps: 70% of the rows are text -> image
        recipe.update(profile.choose(
            # smoke: a few hundred steps are checked on reading (captions), so half the rows are image -> text
            smoke=dict(d_model=32, n_layer=2, n_head=2, batch_size=32, steps=400, n_shapes=600, p_i2t=0.5),
            classroom=dict(steps=1700, n_shapes=4000, p_i2t=0.3),
            gpu=dict(d_model=192, n_layer=6, n_head=8, batch_size=128, steps=3000, n_shapes=12000, p_i2t=0.3)))
    unknown = sorted(set(overrides) - set(recipe))
    if unknown:
        raise ValueError(f"overrides must name settings of the recipe ({', '.join(sorted(recipe))}); got {unknown}")
    recipe.update(overrides)
    return recipe


def training_examples(dataset: str, recipe: dict, tokenizer: ImageTokenizer) -> tuple[list, torch.Tensor]:
    """What one model trains on: ``(captions, codes)``.

    captions: one list of caption variants per training image; codes: (N, A, h, w) long, A
    tokenized versions of each image (digits: as is + ``n_shifts`` one-pixel shifts; shapes: A = 1).
    """
    check_choice("dataset", dataset, DATASETS)
    if dataset == "digits":
        from .data import DIGIT_TEMPLATES, as_tensors, digit_caption, load_digits
        x, y = as_tensors(load_digits(verbose=False)["train"])
        captions = [[digit_caption(int(v), template=t) for t in range(len(DIGIT_TEMPLATES))] for v in y]
        # the borders of MNIST are black, so rolling by one pixel is a shift
        versions = [x] + [torch.roll(x, shifts=s, dims=(2, 3)) for s in SHIFTS[:recipe["n_shifts"]]]
        codes = torch.stack([tokenizer.encode(v.to(tokenizer.device)).cpu() for v in versions], dim=1)
        return captions, codes
    from .data import ShapeSpec, describe, make_shapes
    cols = make_shapes(recipe["n_shapes"], seed=0, split="train")[:]
    specs = [ShapeSpec(s[0], c[0], z[0], p[0]) for s, c, z, p in zip(cols["shape"], cols["color"], cols["size"],
                                                                     cols["position"])]
    rng = random.Random(0)
    captions = [[cols["caption"][i]] + [describe([s], rng) for _ in range(3)] for i, s in enumerate(specs)]
    codes = tokenizer.encode(cols["image"].float().to(tokenizer.device)).cpu()[:, None]
    return captions, codes


def build_vocabulary(captions: list, tokenizer: ImageTokenizer) -> MixedVocabulary:
    """Every word of the training captions + the tokenizer's codes, in one vocabulary."""
    words = WordTokenizer.from_texts(c for variants in captions for c in variants)
    return MixedVocabulary(words, tokenizer.num_codes, tokenizer.grid)


def mixed_data(recipe: dict, vocab: MixedVocabulary, captions: list, codes: torch.Tensor, *, device=None,
               seed: int | None = None) -> MixedSequenceData:
    """The endless stream of training sequences of ``recipe`` (both directions, dropped captions), built
    on ``device``; ``seed`` (default: the recipe's ``data_seed``) gives another stream of the same data."""
    return MixedSequenceData(vocab, codes, captions, p_i2t=recipe["p_i2t"], p_drop_caption=recipe["p_drop_caption"],
                             seed=recipe["data_seed"] if seed is None else seed, device=device)


def new_model(recipe: dict, vocab: MixedVocabulary, block_size: int) -> MixedTransformer:
    """An untrained transformer of ``recipe``'s size for ``vocab`` (seeded by ``model_seed``)."""
    config = TransformerConfig(vocab_size=len(vocab), image_offset=vocab.image_offset, word_offset=vocab.word_offset,
                               grid=vocab.grid, block_size=block_size, n_layer=recipe["n_layer"],
                               n_head=recipe["n_head"], d_model=recipe["d_model"], dropout=recipe["dropout"],
                               audio_offset=vocab.audio_offset)
    seed_everything(recipe["model_seed"])
    return MixedTransformer(config)


def train_mixed_model(model: MixedTransformer, data: MixedSequenceData, recipe: dict, *, device=None,
                      on_step=None, desc: str | None = None) -> History:
    """``recipe["steps"]`` AdamW steps of the weighted next-token loss: warm-up, then a cosine to 10%."""
    loss = functools.partial(mixed_sequence_loss, cond_weight=recipe["cond_weight"])
    steps = check_int("steps", recipe["steps"], min_value=1)
    return fit(model, loss, data.batches(recipe["batch_size"]), steps=steps, batch_size=recipe["batch_size"],
               lr=recipe["lr"], warmup_steps=min(recipe["warmup_steps"], steps // 5), cosine=True,
               weight_decay=recipe["weight_decay"], device=device, on_step=on_step, ema_decay=recipe.get("ema_decay"),
               desc=desc or f"transformer ({recipe['dataset']})")


def heldout_sequences(vocab: MixedVocabulary, captions: list[str], codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both directions of every held-out (caption, image): ``(seq (2N, T), direction (2N,))``, the
    batch format of :func:`~course_lib.mixed_data.mixed_sequence_loss` (a validation curve)."""
    seqs, directions = [], []
    for caption, grid in zip(captions, codes):
        image = vocab.codes_to_ids(grid.reshape(-1)).tolist()
        for d, name in enumerate(DIRECTIONS):
            seqs.append(build_sequence(vocab, vocab.encode_text(caption), image, name))
            directions.append(d)
    return pad_sequences(seqs), torch.tensor(directions)


@torch.no_grad()
def heldout_losses(model: MixedTransformer, batch, cond_weight: float = 1 / 8) -> dict[str, float]:
    """The four per-direction, per-modality losses (nats/token) of ``batch``, in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    _, parts = mixed_sequence_loss(model, tuple(t.to(device) for t in batch), cond_weight)
    model.train(was_training)
    return {k: float(v) for k, v in parts.items()}


# ----------------------------------------------------------------------------- saving and loading
def model_name(dataset: str, profile) -> str:
    return f"transformer_{dataset}_{get_profile(profile).name}"


def _from_hparams(hparams: dict) -> MixedTransformer:
    return MixedTransformer(TransformerConfig(**{**hparams["config"], "grid": tuple(hparams["config"]["grid"])}))


def _vocabulary(hparams: dict) -> MixedVocabulary:
    return MixedVocabulary(WordTokenizer(hparams["words"]), hparams["num_codes"], tuple(hparams["grid"]))


def save_mixed_model(model: MixedTransformer, vocab: MixedVocabulary, recipe: dict, profile=None,
                     metrics: dict | None = None) -> str:
    """Save a trained model with its recipe and vocabulary as ``transformer_<dataset>_<profile>``."""
    c = model.config
    hparams = {**recipe, "config": dict(vocab_size=c.vocab_size, image_offset=c.image_offset, word_offset=c.word_offset,
                                        grid=list(c.grid), block_size=c.block_size, n_layer=c.n_layer,
                                        n_head=c.n_head, d_model=c.d_model, dropout=c.dropout),
               "words": list(vocab.tokenizer.words), "num_codes": vocab.num_codes, "grid": list(vocab.grid)}
    name = model_name(recipe["dataset"], profile)
    save_artifact(name, model, hparams, metrics=metrics)
    return name


def get_mixed_model(dataset: str, *, profile=None, device=None, verbose: bool = True
                    ) -> tuple[MixedTransformer, MixedVocabulary]:
    """The trained transformer for ``dataset`` and its vocabulary, on ``device``.

    Loads ``transformer_<dataset>_<profile>`` (saved by notebook 05) when it was trained by this
    profile's :func:`mixed_recipe` on the current image tokenizer; otherwise trains it now with the
    same code (minutes in the classroom profile) and saves it. Prints which.
    """
    check_choice("dataset", dataset, DATASETS)
    profile = get_profile(profile)
    device = torch.device(device) if device is not None else pick_device()
    tokenizer = get_tokenizer(dataset, profile=profile, device=device, verbose=verbose)
    recipe = mixed_recipe(dataset, profile, tokenizer)
    name = model_name(dataset, profile)
    loaded = load_artifact(name, _from_hparams, expected=recipe, verbose=verbose, say_loaded=False)
    if loaded is not None:
        model, meta = loaded
        if verbose:
            print(f"loaded transformer {name!r} from data/artifacts ({model.num_parameters():,} parameters, "
                  f"saved {meta.get('created', '?')})")
        return model.to(device).eval(), _vocabulary(meta["hparams"])
    start = time.perf_counter()
    captions, codes = training_examples(dataset, recipe, tokenizer)
    vocab = build_vocabulary(captions, tokenizer)
    data = mixed_data(recipe, vocab, captions, codes, device=device)
    model = new_model(recipe, vocab, data.block_size).to(device)
    history = train_mixed_model(model, data, recipe, device=device)
    save_mixed_model(model, vocab, recipe, profile, {"train_seconds": time.perf_counter() - start,
                                                     "final_loss": history.first_last()[1]})
    if verbose:
        print(f"trained transformer {name!r} in {time.perf_counter() - start:.0f} s (no valid artifact found; "
              f"saved to data/artifacts)")
    return model.eval(), vocab
