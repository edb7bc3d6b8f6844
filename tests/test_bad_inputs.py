"""Bad input never passes silently: one row per probe of the public API.

Each row of ``BAD`` is a call, the exception it must raise (ours: ``TypeError`` or ``ValueError``)
and the words its message must contain: the argument's name, what was expected and what came.
Each row of ``GOOD`` is an edge case with a defined result (an empty batch, a float64 input that
is converted, a non-ASCII word), checked by value. The policies are written down in
``course_lib/validate.py``'s docstring.
"""
from __future__ import annotations

import functools
import math
import random

import numpy as np
import pytest
import torch

from course_lib import validate as V
from course_lib.data import (ShapeSpec, as_tensors, describe, digit_caption, digit_captions, load_digits,
                             make_shapes, read_scene, render, scene_dict, scene_of)
from course_lib.models.autoencoders import (ConvAutoencoder, MLPAutoencoder, add_noise, denoising_loss, encode_all,
                                            interpolate, reconstruction_error, reconstruction_mse)
from course_lib.models.classifier import DigitCNN, digit_accuracy, get_digit_classifier, predict_digits
from course_lib.models.pca import PCA
from course_lib.models.transformer import MixedTransformer, TransformerConfig
from course_lib.models.vae import (VAE, active_units, bernoulli_baseline_nll, bernoulli_nll, elbo_terms, gaussian_kl,
                                   importance_sampled_nll, kl_per_dim, nats_to_bits_per_dim, negative_elbo,
                                   posterior_means, reparameterize, traverse)
from course_lib.models.vq import (FSQ, VQVAE, ResidualVQ, VectorQuantizer, build_quantizer, code_counts, kmeans,
                                  nearest_code, perplexity)
from course_lib.mixed_data import MixedSequenceData, mixed_sequence_loss, segment_weights
from course_lib.scoring import attribute_scores, count_copies, diversity, parse_digit, parse_shape_caption
from course_lib.sampling import (describe_images, draw, filter_logits, generate, guided_logits, sample_next,
                                 spans_to_images, text_to_image_prompt, valid_image_spans)
from course_lib.vocabulary import (BOS, BOT, MixedVocabulary, WordTokenizer, build_sequence, pad_sequences,
                                    segment_ids, sequence_table, split_words)
from course_lib.image_tokenizer import (ImageTokenizer, build_vqvae, evaluate_tokenizer, get_tokenizer,
                                       tokenizer_data, tokenizer_recipe)

NAN, INF = float("nan"), float("inf")
HAS_CUDA = torch.cuda.is_available()


# ------------------------------------------------------------------ small, untrained models (built once)
@functools.lru_cache(maxsize=None)
def ae():
    torch.manual_seed(0)
    return ConvAutoencoder(8).eval()


@functools.lru_cache(maxsize=None)
def vae():
    torch.manual_seed(0)
    return VAE(8).eval()


@functools.lru_cache(maxsize=None)
def vq():
    torch.manual_seed(0)
    return VectorQuantizer(8, 4).eval()


@functools.lru_cache(maxsize=None)
def vqvae():
    torch.manual_seed(0)
    return VQVAE(VectorQuantizer(8, 4), hidden=8, dim=4).eval()


@functools.lru_cache(maxsize=None)
def rvq():
    torch.manual_seed(0)
    return ResidualVQ(2, 8, 4).eval()


@functools.lru_cache(maxsize=None)
def tok():
    torch.manual_seed(0)
    recipe = tokenizer_recipe("digits", "smoke")
    return ImageTokenizer(build_vqvae(recipe), recipe)


@functools.lru_cache(maxsize=None)
def clf():
    torch.manual_seed(0)
    return DigitCNN().eval()


@functools.lru_cache(maxsize=None)
def pca():
    torch.manual_seed(0)
    return PCA.fit(torch.rand(20, 1, 28, 28), k=4)


CAPTIONS = ["a handwritten seven", "the digit 3", "a one", "the number six"]


@functools.lru_cache(maxsize=None)
def words():
    return WordTokenizer.from_texts(CAPTIONS)


@functools.lru_cache(maxsize=None)
def vocab():
    return MixedVocabulary(words(), num_codes=8, grid=(2, 2))


@functools.lru_cache(maxsize=None)
def gpt():
    torch.manual_seed(0)
    v = vocab()
    cfg = TransformerConfig(vocab_size=len(v), image_offset=v.image_offset, word_offset=v.word_offset,
                            grid=v.grid, block_size=16, n_layer=1, n_head=2, d_model=16)
    return MixedTransformer(cfg).eval()


def images(n=2, fill=None, dtype=torch.float32):
    x = torch.rand(n, 1, 28, 28, dtype=dtype)
    if fill is not None:
        x[0, 0, 0, 0] = fill
    return x


def nan_images(n=2):
    return torch.full((n, 1, 28, 28), NAN)


def meta_images(n=2):
    return torch.empty(n, 1, 28, 28, device="meta")


def scene(*positions):
    return [ShapeSpec("circle", "red", "small", p) for p in positions]


def data():
    codes = torch.randint(0, 8, (4, 2, 2))
    return MixedSequenceData(vocab(), codes, CAPTIONS)


def prompt(*ids):
    return torch.tensor([list(ids) or [BOS, BOT]])


LONG_CAPTION = " ".join(["seven"] * 500)


# ------------------------------------------------------------------ the table
# (id, call, exception type, words the message must contain: argument, expectation, what came)
BAD = [
    # --- validate: the shared checks themselves
    ("check_float-nan", lambda: V.check_float("lr", NAN, min_value=0.0), ValueError, ["lr", "finite number", "nan"]),
    ("check_float-inf", lambda: V.check_float("lr", INF), ValueError, ["lr", "finite number", "inf"]),
    ("check_float-tensor", lambda: V.check_float("lr", torch.tensor(0.1)), TypeError, ["lr", "must be a number", "tensor"]),
    ("check_float-str", lambda: V.check_float("lr", "0.1"), TypeError, ["lr", "must be a number", "str"]),
    ("check_int-bool", lambda: V.check_int("steps", True), TypeError, ["steps", "must be an int", "bool True"]),
    ("check_int-float", lambda: V.check_int("steps", 3.0), TypeError, ["steps", "must be an int", "float 3.0"]),
    ("check_int-tensor", lambda: V.check_int("steps", torch.tensor(3)), TypeError, ["steps", "must be an int", "tensor"]),
    ("as_int-float-tensor", lambda: V.as_int("label", torch.tensor(3.7)), TypeError,
     ["label", "integer tensor", "torch.float32", "3.7"]),
    ("as_int-bool-tensor", lambda: V.as_int("label", torch.tensor(True)), TypeError, ["label", "integer tensor", "bool"]),
    ("as_int-two-elements", lambda: V.as_int("label", torch.tensor([1, 2])), TypeError, ["label", "one-element", "(2,)"]),
    ("check_tensor-meta", lambda: V.check_tensor("x", meta_images()), ValueError, ["x", "must hold data", "meta device"]),
    ("check_tensor-nan", lambda: V.check_tensor("x", nan_images(1), finite=True), ValueError,
     ["x must be finite", "784 NaN values", "(of 784)"]),
    ("check_tensor-inf", lambda: V.check_tensor("x", images(1, fill=-INF), finite=True), ValueError,
     ["x must be finite", "1 infinite value", "(of 784)"]),
    ("check_tensor-empty", lambda: V.check_tensor("x", images(0), nonempty=True, what="image"), ValueError,
     ["x", "at least one image", "(0, 1, 28, 28)"]),
    ("check_tensor-integer", lambda: V.check_tensor("codes", torch.zeros(2), integer=True), TypeError,
     ["codes", "integer tensor", "torch.float32"]),
    ("check_codes-negative", lambda: V.check_codes("codes", torch.tensor([-1, 2]), 4), ValueError,
     ["codes", "0..3", "from -1 to 2"]),
    ("check_codes-float", lambda: V.check_codes("codes", torch.tensor([0.5]), 4), TypeError,
     ["codes", "integer tensor", "float32"]),
    ("check_device-unknown", lambda: V.check_device("device", "tpu"), ValueError, ["device", "'cpu', 'cuda'", "'tpu'"]),
    ("check_device-int", lambda: V.check_device("device", 3), TypeError, ["device", "torch.device", "int 3"]),
    ("check_device-meta", lambda: V.check_device("device", "meta"), ValueError, ["device", "holds data", "'meta'"]),
    pytest.param("check_device-cuda", lambda: V.check_device("device", "cuda"), ValueError,
                 ["device", "this machine has", "'cuda'", "CUDA is not available"],
                 marks=pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")),
    ("to_model-device", lambda: V.to_model("x", torch.rand(2, 2), torch.nn.Linear(2, 2, device="meta")), ValueError,
     ["x", "model's device (meta)", "tensor on cpu"]),
    ("check_range", lambda: V.check_range("x", torch.tensor([-0.5, 2.0]), 0, 1), ValueError,
     ["x", "[0, 1]", "from -0.5 to 2"]),

    # --- autoencoders
    ("ae.encode-nan", lambda: ae().encode(nan_images()), ValueError, ["x must be finite", "NaN"]),
    ("ae.encode-inf", lambda: ae().encode(images(fill=INF)), ValueError, ["x must be finite", "1 infinite value"]),
    ("ae.encode-int", lambda: ae().encode(torch.zeros(2, 1, 28, 28, dtype=torch.long)), TypeError,
     ["x", "floating-point", "torch.int64"]),
    ("ae.encode-meta", lambda: ae().encode(meta_images()), ValueError, ["x", "must hold data", "meta"]),
    ("ae.encode-shape", lambda: ae().encode(torch.rand(2, 28, 28)), ValueError,
     ["x", "(*, 1, 28, 28)", "(2, 28, 28)"]),
    ("ae.encode-list", lambda: ae().encode([[0.0]]), TypeError, ["x", "torch.Tensor", "list"]),
    ("ae.decode-nan", lambda: ae().decode(torch.full((2, 8), NAN)), ValueError, ["z must be finite", "16 NaN"]),
    ("ae.decode-width", lambda: ae().decode(torch.rand(2, 5)), ValueError, ["z", "(*, 8)", "(2, 5)"]),
    ("ae.forward-nan", lambda: ae()(nan_images()), ValueError, ["x must be finite", "NaN"]),
    ("reconstruction_error-empty", lambda: reconstruction_error(ae(), images(0)), ValueError,
     ["x", "at least one image", "(0, 1, 28, 28)"]),
    ("reconstruction_error-nan", lambda: reconstruction_error(ae(), nan_images()), ValueError, ["x must be finite", "NaN"]),
    ("reconstruction_error-noise-nan", lambda: reconstruction_error(ae(), images(), noise_std=NAN), ValueError,
     ["noise_std", "finite", "nan"]),
    ("reconstruction_error-batch-0", lambda: reconstruction_error(ae(), images(), batch_size=0), ValueError,
     ["batch_size", ">= 1", "0"]),
    ("reconstruction_error-batch-bool", lambda: reconstruction_error(ae(), images(), batch_size=True), TypeError,
     ["batch_size", "int", "bool"]),
    ("reconstruction_mse-shapes", lambda: reconstruction_mse(images(2), images(3)), ValueError,
     ["x_hat", "same shape as x", "(2, 1, 28, 28)"]),
    ("reconstruction_mse-nan", lambda: reconstruction_mse(nan_images(), images()), ValueError, ["x_hat must be finite"]),
    ("add_noise-negative", lambda: add_noise(images(), -1.0), ValueError, ["std", ">= 0.0", "-1.0"]),
    ("add_noise-nan", lambda: add_noise(images(), NAN), ValueError, ["std", "finite", "nan"]),
    ("add_noise-x-nan", lambda: add_noise(nan_images(), 0.1), ValueError, ["x must be finite"]),
    ("denoising_loss-inf", lambda: denoising_loss(INF), ValueError, ["std", "finite", "inf"]),
    ("interpolate-steps", lambda: interpolate(ae(), images(1), images(1), steps=1), ValueError, ["steps", ">= 2", "1"]),
    ("interpolate-two-images", lambda: interpolate(ae(), images(2), images(1)), ValueError,
     ["x_a", "one image", "(2, 1, 28, 28)"]),
    ("interpolate-nan", lambda: interpolate(ae(), images(1), nan_images(1)), ValueError, ["x_b must be finite"]),
    ("encode_all-nan", lambda: encode_all(ae(), nan_images()), ValueError, ["x must be finite"]),
    ("MLPAutoencoder-latent-0", lambda: MLPAutoencoder(0), ValueError, ["latent_dim", ">= 1", "0"]),
    ("ConvAutoencoder-latent-float", lambda: ConvAutoencoder(2.5), TypeError, ["latent_dim", "int", "float 2.5"]),
    ("ConvAutoencoder-channels-bool", lambda: ConvAutoencoder(8, channels=True), TypeError, ["channels", "int", "bool"]),

    # --- VAE
    ("vae.encode-nan", lambda: vae().encode(nan_images()), ValueError, ["x must be finite", "NaN"]),
    ("vae.encode-meta", lambda: vae().encode(meta_images()), ValueError, ["x", "must hold data", "meta"]),
    ("vae.decode-inf", lambda: vae().decode(torch.full((1, 8), INF)), ValueError, ["z must be finite", "8 infinite"]),
    ("vae.forward-int", lambda: vae()(torch.ones(1, 1, 28, 28, dtype=torch.uint8)), TypeError,
     ["x", "floating-point", "uint8"]),
    ("negative_elbo-empty", lambda: negative_elbo(vae(), images(0)), ValueError, ["x", "at least one image", "(0, 1, 28, 28)"]),
    ("negative_elbo-nan", lambda: negative_elbo(vae(), nan_images()), ValueError, ["x must be finite"]),
    ("negative_elbo-samples", lambda: negative_elbo(vae(), images(), n_samples=0), ValueError, ["n_samples", ">= 1", "0"]),
    ("importance_sampled_nll-nan", lambda: importance_sampled_nll(vae(), nan_images()), ValueError, ["x must be finite"]),
    ("importance_sampled_nll-chunk", lambda: importance_sampled_nll(vae(), images(), chunk=0), ValueError,
     ["chunk", ">= 1", "0"]),
    ("gaussian_kl-shapes", lambda: gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4)), ValueError,
     ["logvar", "same shape as mu", "(2, 4)"]),
    ("gaussian_kl-nan", lambda: gaussian_kl(torch.zeros(2, 3), torch.full((2, 3), NAN)), ValueError, ["logvar must be finite"]),
    ("reparameterize-nan", lambda: reparameterize(torch.full((2, 3), NAN), torch.zeros(2, 3)), ValueError,
     ["mu must be finite"]),
    ("bernoulli_nll-nan", lambda: bernoulli_nll(nan_images(), images()), ValueError, ["logits must be finite"]),
    ("nats_to_bits-nan", lambda: nats_to_bits_per_dim(NAN), ValueError, ["nats", "finite", "nan"]),
    ("nats_to_bits-dims", lambda: nats_to_bits_per_dim(1.0, dims=0), ValueError, ["dims", ">= 1", "0"]),
    ("bernoulli_baseline-empty", lambda: bernoulli_baseline_nll(images(0), images()), ValueError,
     ["x_train", "at least one image", "(0, 1, 28, 28)"]),
    ("bernoulli_baseline-nan", lambda: bernoulli_baseline_nll(images(), nan_images()), ValueError, ["x_test must be finite"]),
    ("kl_per_dim-empty", lambda: kl_per_dim(vae(), images(0)), ValueError, ["x", "at least one image"]),
    ("active_units-one", lambda: active_units(vae(), images(1)), ValueError, ["x", "at least 2 images", "(1, 1, 28, 28)"]),
    ("posterior_means-nan", lambda: posterior_means(vae(), nan_images()), ValueError, ["x must be finite"]),
    ("traverse-dim", lambda: traverse(vae(), torch.zeros(8), 8, [0.0]), ValueError, ["dim", "<= 7", "8"]),
    ("traverse-values-nan", lambda: traverse(vae(), torch.zeros(8), 0, [0.0, NAN]), ValueError,
     ["values[1]", "finite", "nan"]),
    ("traverse-values-empty", lambda: traverse(vae(), torch.zeros(8), 0, []), ValueError, ["values", "at least one", "none"]),
    ("traverse-z-nan", lambda: traverse(vae(), torch.full((8,), NAN), 0, [0.0]), ValueError, ["z must be finite"]),
    ("VAE-arch", lambda: VAE(8, arch="cnn"), ValueError, ["arch", "'mlp', 'conv'", "'cnn'"]),
    ("vae.sample-0", lambda: vae().sample(0), ValueError, ["n", ">= 1", "0"]),
    ("elbo_terms-beta-nan", lambda: elbo_terms(vae(), images(), beta=NAN), ValueError, ["beta", "finite", "nan"]),
    ("init_output_bias-empty", lambda: VAE(4).init_output_bias(images(0)), ValueError, ["x", "at least one image"]),

    # --- quantizers, VQ-VAE
    ("nearest_code-nan", lambda: nearest_code(torch.full((3, 4), NAN), torch.rand(8, 4)), ValueError,
     ["vectors must be finite", "12 NaN"]),
    ("nearest_code-width", lambda: nearest_code(torch.rand(3, 4), torch.rand(8, 5)), ValueError,
     ["vectors and codebook", "same width", "4 and 5"]),
    ("nearest_code-empty-codebook", lambda: nearest_code(torch.rand(3, 4), torch.rand(0, 4)), ValueError,
     ["codebook", "at least one code", "(0, 4)"]),
    ("nearest_code-codebook-inf", lambda: nearest_code(torch.rand(3, 4), torch.full((2, 4), INF)), ValueError,
     ["codebook must be finite"]),
    ("nearest_code-meta-codebook", lambda: nearest_code(torch.rand(3, 4), torch.empty(8, 4, device="meta")), ValueError,
     ["codebook", "must hold data", "meta"]),
    ("kmeans-empty", lambda: kmeans(torch.rand(0, 4), 2), ValueError, ["vectors", "at least one vector", "(0, 4)"]),
    ("kmeans-k-0", lambda: kmeans(torch.rand(5, 4), 0), ValueError, ["k", ">= 1", "0"]),
    ("kmeans-nan", lambda: kmeans(torch.full((5, 4), NAN), 2), ValueError, ["vectors must be finite"]),
    ("code_counts-out-of-range", lambda: code_counts(torch.tensor([0, 5]), 3), ValueError,
     ["indices", "0..2", "from 0 to 5"]),
    ("code_counts-negative", lambda: code_counts(torch.tensor([-1, 1]), 3), ValueError, ["indices", "0..2", "from -1"]),
    ("code_counts-float", lambda: code_counts(torch.tensor([0.0, 1.0]), 3), TypeError, ["indices", "torch.int64", "float32"]),
    ("code_counts-num-codes", lambda: code_counts(torch.tensor([0]), 0), ValueError, ["num_codes", ">= 1", "0"]),
    ("perplexity-zeros", lambda: perplexity(torch.zeros(8)), ValueError, ["counts", "positive total", "all 8 zero"]),
    ("perplexity-negative", lambda: perplexity(torch.tensor([3.0, -1.0])), ValueError, ["counts", ">= 0", "-1"]),
    ("perplexity-nan", lambda: perplexity(torch.tensor([1.0, NAN])), ValueError, ["counts must be finite", "1 NaN"]),
    ("perplexity-2d", lambda: perplexity(torch.ones(2, 2)), ValueError, ["counts", "1 dimensions", "(2, 2)"]),
    ("perplexity-empty", lambda: perplexity(torch.zeros(0)), ValueError, ["counts", "at least one code", "(0,)"]),
    ("VectorQuantizer-one-code", lambda: VectorQuantizer(1, 4), ValueError, ["num_codes", ">= 2", "1"]),
    ("VectorQuantizer-decay", lambda: VectorQuantizer(8, 4, decay=1.5), ValueError, ["decay", "<= 1.0", "1.5"]),
    ("VectorQuantizer-decay-nan", lambda: VectorQuantizer(8, 4, decay=NAN), ValueError, ["decay", "finite", "nan"]),
    ("vq.forward-nan", lambda: vq()(torch.full((1, 4, 2, 2), NAN)), ValueError, ["z must be finite", "16 NaN"]),
    ("vq.forward-channels", lambda: vq()(torch.rand(1, 3, 2, 2)), ValueError, ["z", "4 channels", "(1, 3, 2, 2)"]),
    ("vq.codes_to_latents-range", lambda: vq().codes_to_latents(torch.full((1, 2, 2), 8)), ValueError,
     ["indices", "0..7", "from 8 to 8"]),
    ("vq.codes_to_latents-negative", lambda: vq().codes_to_latents(torch.full((1, 2, 2), -1)), ValueError,
     ["indices", "0..7", "from -1"]),
    ("FSQ-level-1", lambda: FSQ([1, 5], 4), ValueError, ["levels[0]", ">= 2", "1"]),
    ("FSQ-levels-str", lambda: FSQ("885", 4), TypeError, ["levels", "list of ints", "'885'"]),
    ("FSQ-forward-nan", lambda: FSQ([4, 4], 4)(torch.full((1, 4, 2, 2), NAN)), ValueError, ["z must be finite"]),
    ("ResidualVQ-stages", lambda: ResidualVQ(0, 8, 4), ValueError, ["num_stages", ">= 1", "0"]),
    ("rvq.codes_to_latents-stages", lambda: rvq().codes_to_latents(torch.zeros(1, 2, 2, 3, dtype=torch.long)), ValueError,
     ["indices", "2 stages", "(1, 2, 2, 3)"]),
    ("rvq.forward-inf", lambda: rvq()(torch.full((1, 4, 2, 2), INF)), ValueError, ["z must be finite"]),
    ("vqvae.forward-nan", lambda: vqvae()(nan_images()), ValueError, ["x must be finite", "NaN"]),
    ("vqvae.encode-meta", lambda: vqvae().encode(meta_images()), ValueError, ["x", "must hold data", "meta"]),
    ("vqvae.forward-size", lambda: vqvae()(torch.rand(1, 1, 24, 24)), ValueError, ["x", "(B, 1, 28, 28)", "(1, 1, 24, 24)"]),
    ("vqvae.decode-range", lambda: vqvae().decode(torch.full((1, 7, 7), 9)), ValueError, ["indices", "0..7", "from 9"]),
    ("VQVAE-downsample", lambda: VQVAE(VectorQuantizer(8, 16), downsample=3), ValueError, ["downsample", "(2, 4, 8)", "3"]),
    ("VQVAE-quantizer-width", lambda: VQVAE(VectorQuantizer(8, 4), dim=16), ValueError,
     ["quantizer", "width dim=16", "width 4"]),
    ("VQVAE-quantizer-str", lambda: VQVAE("vq"), TypeError, ["quantizer", "quantizer module", "str"]),
    ("VQVAE-hidden", lambda: VQVAE(VectorQuantizer(8, 16), hidden=0), ValueError, ["hidden", ">= 2", "0"]),
    ("build_quantizer-kind", lambda: build_quantizer("vqq"), ValueError, ["kind", "'vq', 'fsq', 'rvq'", "'vqq'"]),

    # --- PCA
    ("PCA.fit-nan", lambda: PCA.fit(nan_images(5), k=2), ValueError, ["x must be finite"]),
    ("PCA.fit-k", lambda: PCA.fit(images(3), k=5), ValueError, ["k", "<= 3", "5"]),
    ("PCA.fit-1d", lambda: PCA.fit(torch.rand(5), k=1), ValueError, ["x", "(N, ...)", "(5,)"]),
    ("pca.encode-width", lambda: pca().encode(torch.rand(2, 10)), ValueError, ["x", "784 values per example", "(2, 10)"]),
    ("pca.encode-inf", lambda: pca().encode(images(fill=INF)), ValueError, ["x must be finite"]),
    ("pca.decode-columns", lambda: pca().decode(torch.rand(2, 9)), ValueError, ["z", "at most 4 columns", "(2, 9)"]),
    ("pca.mse_by_rank-0", lambda: pca().mse_by_rank(images(), [0]), ValueError, ["ranks[0]", ">= 1", "0"]),
    ("pca.mse_by_rank-float", lambda: pca().mse_by_rank(images(), [2.5]), TypeError, ["ranks[0]", "int", "2.5"]),

    # --- the digit classifier (the judge)
    ("predict_digits-nan", lambda: predict_digits(clf(), nan_images()), ValueError, ["x must be finite", "1568 NaN"]),
    ("predict_digits-shape", lambda: predict_digits(clf(), torch.rand(2, 3, 28, 28)), ValueError,
     ["x", "(*, 1, 28, 28)", "(2, 3, 28, 28)"]),
    ("predict_digits-batch", lambda: predict_digits(clf(), images(), batch_size=0), ValueError, ["batch_size", ">= 1", "0"]),
    ("digit_accuracy-empty", lambda: digit_accuracy(clf(), images(0), torch.zeros(0, dtype=torch.long)), ValueError,
     ["x", "at least one image", "(0, 1, 28, 28)"]),
    ("digit_accuracy-lengths", lambda: digit_accuracy(clf(), images(2), torch.zeros(3, dtype=torch.long)), ValueError,
     ["x and y", "same length", "2 and 3"]),
    ("digit_accuracy-float-y", lambda: digit_accuracy(clf(), images(2), torch.zeros(2)), TypeError,
     ["y", "integer tensor", "float32"]),
    ("digit_accuracy-label-10", lambda: digit_accuracy(clf(), images(2), torch.tensor([3, 10])), ValueError,
     ["y", "0..9", "to 10"]),
    ("digit_accuracy-nan", lambda: digit_accuracy(clf(), nan_images(2), torch.tensor([3, 1])), ValueError,
     ["x must be finite"]),
    ("DigitCNN.forward-inf", lambda: clf()(images(fill=INF)), ValueError, ["x must be finite", "infinite"]),
    ("DigitCNN.forward-meta", lambda: clf()(meta_images()), ValueError, ["x", "must hold data", "meta"]),
    pytest.param("get_digit_classifier-cuda", lambda: get_digit_classifier("smoke", "cuda"), ValueError,
                 ["device", "'cuda'", "CUDA is not available"],
                 marks=pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")),
    ("get_digit_classifier-device-int", lambda: get_digit_classifier("smoke", 0), TypeError, ["device", "'cpu'", "int 0"]),
    ("get_digit_classifier-device-typo", lambda: get_digit_classifier("smoke", "cpuu"), ValueError,
     ["device", "'cpu'", "'cpuu'"]),

    # --- the image tokenizer
    ("tok.encode-nan", lambda: tok().encode(nan_images()), ValueError, ["x must be finite", "1568 NaN"]),
    ("tok.encode-one-nan", lambda: tok().encode(images(fill=NAN)), ValueError, ["x must be finite", "1 NaN value"]),
    ("tok.encode-inf", lambda: tok().encode(images(fill=INF)), ValueError, ["x must be finite", "1 infinite value"]),
    ("tok.encode-range", lambda: tok().encode(images() - 0.5), ValueError, ["x", "pixel values in [0, 1]", "from -0.5"]),
    ("tok.encode-meta", lambda: tok().encode(meta_images()), ValueError, ["x", "must hold data", "meta"]),
    ("tok.encode-batch", lambda: tok().encode(images(), batch_size=0), ValueError, ["batch_size", ">= 1", "0"]),
    ("tok.decode-negative", lambda: tok().decode(torch.full((1, 7, 7), -1)), ValueError, ["codes", "0..255", "from -1"]),
    ("tok.decode-float", lambda: tok().decode(torch.zeros(1, 7, 7)), TypeError, ["codes", "torch.int64", "float32"]),
    ("tokenizer_data-0", lambda: tokenizer_data("digits", 0), ValueError, ["n", ">= 1", "got 0"]),
    ("tokenizer_data-negative", lambda: tokenizer_data("digits", -5), ValueError, ["n", ">= 1", "-5"]),
    ("tokenizer_data-float", lambda: tokenizer_data("digits", 2.5), TypeError, ["n", "int", "float 2.5"]),
    ("tokenizer_data-bool", lambda: tokenizer_data("shapes", True), TypeError, ["n", "int", "bool"]),
    ("tokenizer_data-split", lambda: tokenizer_data("digits", 5, split="val"), ValueError, ["split", "'train', 'test'", "'val'"]),
    ("tokenizer_data-dataset", lambda: tokenizer_data("digit", 5), ValueError, ["dataset", "'digits'", "'digit'"]),
    pytest.param("get_tokenizer-cuda", lambda: get_tokenizer("digits", profile="smoke", device="cuda"), ValueError,
                 ["device", "'cuda'", "CUDA is not available"],
                 marks=pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")),
    ("get_tokenizer-device-unknown", lambda: get_tokenizer("digits", profile="smoke", device="gpu"), ValueError,
     ["device", "'cpu', 'cuda'", "'gpu'"]),

    # --- words and the mixed vocabulary
    ("WordTokenizer.decode-negative", lambda: words().decode([-5]), ValueError, ["ids[0]", "-1 for <unk>", "-5"]),
    ("WordTokenizer.decode-too-big", lambda: words().decode([0, 99]), ValueError, ["ids[1]", f"0..{len(words()) - 1}", "99"]),
    ("WordTokenizer.decode-bool", lambda: words().decode([True]), TypeError, ["ids[0]", "int", "bool"]),
    ("WordTokenizer.decode-float", lambda: words().decode([1.0]), TypeError, ["ids[0]", "int", "float 1.0"]),
    ("WordTokenizer.decode-str", lambda: words().decode("seven"), TypeError, ["ids", "list of word indices", "'seven'"]),
    ("WordTokenizer.encode-non-ascii", lambda: words().encode("a niño"), ValueError,
     ["unknown word 'niño'", "a niño", "unknown='unk'"]),
    ("WordTokenizer.encode-typo", lambda: words().encode("a sevn"), ValueError, ["unknown word 'sevn'", "'seven'"]),
    ("WordTokenizer.encode-int", lambda: words().encode(7), TypeError, ["text", "string", "int 7"]),
    ("WordTokenizer.encode-policy", lambda: words().encode("a one", unknown="skip"), ValueError,
     ["unknown", "'error', 'unk'", "'skip'"]),
    ("WordTokenizer-empty", lambda: WordTokenizer([]), ValueError, ["words", "at least one word", "empty"]),
    ("WordTokenizer-repeat", lambda: WordTokenizer(["a", "a"]), ValueError, ["words", "unique", "'a'"]),
    ("WordTokenizer-two-words", lambda: WordTokenizer(["a b"]), ValueError, ["word", "one lower-case token", "'a b'"]),
    ("from_texts-one-string", lambda: WordTokenizer.from_texts("a handwritten seven"), TypeError,
     ["texts", "iterable of captions", "one string"]),
    ("from_texts-min-count", lambda: WordTokenizer.from_texts(CAPTIONS, min_count=0), ValueError, ["min_count", ">= 1", "0"]),
    ("split_words-int", lambda: split_words(5), TypeError, ["text", "string", "int 5"]),
    ("MixedVocabulary-grid-bool", lambda: MixedVocabulary(words(), 8, (True, 2)), ValueError,
     ["grid", "two positive ints", "(True, 2)"]),
    ("MixedVocabulary-codes-0", lambda: MixedVocabulary(words(), 0, (2, 2)), ValueError, ["num_codes", ">= 1", "0"]),
    ("MixedVocabulary-tokenizer", lambda: MixedVocabulary(CAPTIONS, 8, (2, 2)), TypeError,
     ["tokenizer", "WordTokenizer", "list"]),
    ("decode_text-negative", lambda: vocab().decode_text([-1]), ValueError, ["ids[0]", f"0..{len(vocab()) - 1}", "-1"]),
    ("decode_text-too-big", lambda: vocab().decode_text([BOS, len(vocab())]), ValueError,
     ["ids[1]", "the vocabulary", str(len(vocab()))]),
    ("decode_text-float", lambda: vocab().decode_text([8.5]), TypeError, ["ids[0]", "int", "8.5"]),
    ("codes_to_ids-range", lambda: vocab().codes_to_ids(torch.tensor([[0, 8]])), ValueError, ["codes", "[0, 8)", "8"]),
    ("codes_to_ids-negative", lambda: vocab().codes_to_ids(torch.tensor([[-1, 0]])), ValueError, ["codes", "[0, 8)", "-1"]),
    ("codes_to_ids-float", lambda: vocab().codes_to_ids(torch.tensor([[0.0, 1.0]])), TypeError, ["codes", "dtype", "float32"]),
    ("ids_to_codes-beyond", lambda: vocab().ids_to_codes(torch.full((1, 4), len(vocab()))), ValueError,
     ["ids", f"0..{len(vocab()) - 1}", f"from {len(vocab())}"]),
    ("ids_to_codes-words", lambda: vocab().ids_to_codes(torch.full((1, 4), vocab().word_offset)), ValueError,
     ["ids", "image codes", "found"]),
    ("ids_to_codes-count", lambda: vocab().ids_to_codes(torch.full((1, 3), vocab().image_offset)), ValueError,
     ["ids", "4 image tokens per row", "got 3"]),
    ("token_name-float", lambda: vocab().token_name(2.5), TypeError, ["id", "int", "2.5"]),
    ("token_name-negative", lambda: vocab().token_name(-1), ValueError, ["id", f"[0, {len(vocab())})", "-1"]),
    ("build_sequence-float-id", lambda: build_sequence(vocab(), [8.5], [vocab().image_offset] * 4), TypeError,
     ["text_ids[0]", "int", "8.5"]),
    ("build_sequence-image-count", lambda: build_sequence(vocab(), [], [vocab().image_offset] * 3), ValueError,
     ["image_ids", "4 ids", "got 3"]),
    ("build_sequence-image-ids", lambda: build_sequence(vocab(), [], [0, 1, 2, 3]), ValueError,
     ["image_ids", "image-code ids", "outside"]),
    ("build_sequence-direction", lambda: build_sequence(vocab(), [], [vocab().image_offset] * 4, direction="txt"),
     ValueError, ["direction", "'t2i'", "'txt'"]),
    ("segment_ids-float", lambda: segment_ids(torch.zeros(1, 4)), TypeError, ["seq", "integer tensor", "float32"]),
    ("pad_sequences-empty", lambda: pad_sequences([]), ValueError, ["seqs", "at least one sequence", "empty"]),
    ("pad_sequences-too-long", lambda: pad_sequences([[1, 2, 3]], length=2), ValueError, ["3 tokens", "length=2"]),
    ("pad_sequences-float", lambda: pad_sequences([[1.5, 2.0]]), TypeError, ["seqs[0]", "int ids", "float"]),

    # --- sampling
    ("filter_logits-temperature-nan", lambda: filter_logits(torch.zeros(1, 5), temperature=NAN), ValueError,
     ["temperature", "finite number > 0.0", "nan"]),
    ("filter_logits-temperature-inf", lambda: filter_logits(torch.zeros(1, 5), temperature=INF), ValueError,
     ["temperature", "finite number", "inf"]),
    ("filter_logits-temperature-0", lambda: filter_logits(torch.zeros(1, 5), temperature=0), ValueError,
     ["temperature", "> 0.0", "0.0"]),
    ("filter_logits-logits-nan", lambda: filter_logits(torch.tensor([[0.0, NAN]])), ValueError,
     ["logits", "finite numbers (or -inf", "1 NaN"]),
    ("filter_logits-logits-posinf", lambda: filter_logits(torch.tensor([[0.0, INF]])), ValueError,
     ["logits", "finite numbers", "1 +inf"]),
    ("filter_logits-all-forbidden", lambda: filter_logits(torch.full((1, 3), -INF)), ValueError,
     ["logits", "at least one id", "every id is -inf"]),
    ("filter_logits-top_k-0", lambda: filter_logits(torch.zeros(1, 5), top_k=0), ValueError, ["top_k", ">= 1", "0"]),
    ("filter_logits-allowed-shape", lambda: filter_logits(torch.zeros(2, 5), allowed=torch.ones(4, dtype=torch.bool)),
     ValueError, ["allowed", "5 entries per row", "(4,)"]),
    ("filter_logits-allowed-none", lambda: filter_logits(torch.zeros(1, 5), allowed=torch.zeros(5, dtype=torch.bool)),
     ValueError, ["allowed", "at least one token", "every row"]),
    ("filter_logits-allowed-int", lambda: filter_logits(torch.zeros(1, 5), allowed=torch.ones(5, dtype=torch.long)),
     TypeError, ["allowed", "torch.bool", "int64"]),
    ("sample_next-temperature-nan", lambda: sample_next(torch.zeros(1, 5), temperature=NAN), ValueError,
     ["temperature", "finite", "nan"]),
    ("sample_next-temperature-inf", lambda: sample_next(torch.zeros(1, 5), temperature=INF), ValueError,
     ["temperature", "finite", "inf"]),
    ("sample_next-greedy-top_k", lambda: sample_next(torch.zeros(1, 5), temperature=0, top_k=-3), ValueError,
     ["top_k", ">= 1", "-3"]),
    ("sample_next-greedy-top_k-float", lambda: sample_next(torch.zeros(1, 5), temperature=0, top_k=2.5), TypeError,
     ["top_k", "int", "2.5"]),
    ("sample_next-temperature-negative", lambda: sample_next(torch.zeros(1, 5), temperature=-1), ValueError,
     ["temperature", ">= 0.0", "-1.0"]),
    ("sample_next-greedy-nan", lambda: sample_next(torch.tensor([[NAN, 0.0]]), temperature=0), ValueError,
     ["logits", "finite", "1 NaN"]),
    ("sample_next-generator", lambda: sample_next(torch.zeros(1, 5), generator=0), TypeError,
     ["generator", "torch.Generator", "int"]),
    ("guided_logits-scale-nan", lambda: guided_logits(torch.zeros(1, 5), torch.zeros(1, 5), NAN), ValueError,
     ["scale", "finite", "nan"]),
    ("guided_logits-cond-nan", lambda: guided_logits(torch.full((1, 5), NAN), torch.zeros(1, 5), 2.0), ValueError,
     ["cond must be finite"]),
    ("guided_logits-shapes", lambda: guided_logits(torch.zeros(1, 5), torch.zeros(1, 4), 2.0), ValueError,
     ["uncond", "(1, 5)", "(1, 4)"]),
    ("generate-guidance-nan", lambda: generate(gpt(), prompt(), 2, guidance_scale=NAN, uncond_prompt=prompt()),
     ValueError, ["guidance_scale", "finite", "nan"]),
    ("generate-temperature-inf", lambda: generate(gpt(), prompt(), 2, temperature=INF), ValueError,
     ["temperature", "finite", "inf"]),
    ("generate-greedy-top_k", lambda: generate(gpt(), prompt(), 2, temperature=0, top_k=-3), ValueError,
     ["top_k", ">= 1", "-3"]),
    ("generate-prompt-negative", lambda: generate(gpt(), prompt(BOS, -1), 2), ValueError,
     ["prompt", f"0..{len(vocab()) - 1}", "from -1"]),
    ("generate-prompt-too-big", lambda: generate(gpt(), prompt(BOS, 999), 2), ValueError, ["prompt", "to 999"]),
    ("generate-prompt-float", lambda: generate(gpt(), torch.zeros(1, 2), 2), TypeError, ["prompt", "torch.int64", "float32"]),
    ("generate-prompt-empty", lambda: generate(gpt(), torch.zeros(1, 0, dtype=torch.long), 2), ValueError,
     ["prompt", "at least one token", "(1, 0)"]),
    ("generate-steps-0", lambda: generate(gpt(), prompt(), 0), ValueError, ["steps", ">= 1", "0"]),
    ("generate-guided-no-uncond", lambda: generate(gpt(), prompt(), 2, guidance_scale=2.0), ValueError,
     ["guidance_scale != 1", "uncond_prompt"]),
    ("generate-stop_id", lambda: generate(gpt(), prompt(), 2, stop_id=len(vocab())), ValueError,
     ["stop_id", f"<= {len(vocab()) - 1}", str(len(vocab()))]),
    ("generate-too-long", lambda: generate(gpt(), prompt(), 40), ValueError, ["prompt (2 tokens)", "steps (40)", "block_size 16"]),
    ("generate-allowed-not-callable", lambda: generate(gpt(), prompt(), 2, allowed=torch.ones(5, dtype=torch.bool)),
     TypeError, ["allowed", "function", "Tensor"]),
    ("draw-500-words", lambda: draw(gpt(), vocab(), [LONG_CAPTION]), ValueError,
     ["captions[0]", "too long", "500 words", "block_size 16"]),
    ("draw-captions-str", lambda: draw(gpt(), vocab(), "a seven"), TypeError, ["captions", "list of strings", "str"]),
    ("draw-captions-int", lambda: draw(gpt(), vocab(), ["a seven", 3]), TypeError, ["captions[1]", "string", "int"]),
    ("draw-unknown-word", lambda: draw(gpt(), vocab(), ["a purple seven"]), ValueError, ["unknown word 'purple'"]),
    ("draw-guidance-nan", lambda: draw(gpt(), vocab(), ["a seven"], guidance_scale=NAN), ValueError,
     ["guidance_scale", "finite", "nan"]),
    ("draw-temperature-nan", lambda: draw(gpt(), vocab(), ["a seven"], temperature=NAN), ValueError,
     ["temperature", "finite", "nan"]),
    ("draw-other-vocab", lambda: draw(gpt(), MixedVocabulary(words(), 16, (2, 2)), ["a seven"]), ValueError,
     ["vocab", "the model was built for", f"got {len(vocab()) + 8} ids"]),
    ("describe_images-other-grid", lambda: describe_images(gpt(), MixedVocabulary(words(), 8, (3, 3)),
                                                           torch.zeros(1, 3, 3, dtype=torch.long)), ValueError,
     ["vocab", "grid (2, 2)", "grid (3, 3)"]),
    ("draw-vocab-type", lambda: draw(gpt(), words(), ["a seven"]), TypeError, ["vocab", "MixedVocabulary", "WordTokenizer"]),
    ("text_to_image_prompt-float", lambda: text_to_image_prompt(vocab(), [8.5]), TypeError, ["text_ids[0]", "int", "8.5"]),
    ("sequence_table-float", lambda: sequence_table(vocab(), [BOS, 1.5]), TypeError, ["seq[1]", "int", "1.5"]),
    ("sequence_table-too-big", lambda: sequence_table(vocab(), [BOS, 999]), ValueError, ["id", "[0, ", "999"]),
    ("evaluate_tokenizer-empty", lambda: evaluate_tokenizer(tok(), images(0)), ValueError,
     ["x", "at least one image", "(0, 1, 28, 28)"]),
    ("describe_images-range", lambda: describe_images(gpt(), vocab(), torch.full((1, 2, 2), 8)), ValueError,
     ["codes", "0..7", "from 8"]),
    ("describe_images-negative", lambda: describe_images(gpt(), vocab(), torch.full((1, 2, 2), -1)), ValueError,
     ["codes", "0..7", "from -1"]),
    ("describe_images-float", lambda: describe_images(gpt(), vocab(), torch.zeros(1, 2, 2)), TypeError,
     ["codes", "integer tensor", "float32"]),
    ("describe_images-grid", lambda: describe_images(gpt(), vocab(), torch.zeros(1, 3, 3, dtype=torch.long)), ValueError,
     ["codes", "(N, 2, 2)", "(1, 3, 3)"]),
    ("describe_images-max_words", lambda: describe_images(gpt(), vocab(), torch.zeros(1, 2, 2, dtype=torch.long),
                                                          max_words=0), ValueError, ["max_words", ">= 1", "0"]),
    ("spans_to_images-width", lambda: spans_to_images(tok(), vocab(), torch.zeros(1, 3, dtype=torch.long)), ValueError,
     ["spans", "(*, 5)", "(1, 3)"]),
    ("valid_image_spans-float", lambda: valid_image_spans(vocab(), torch.zeros(1, 5)), TypeError,
     ["spans", "integer tensor", "float32"]),
    ("transformer-ids-negative", lambda: gpt()(torch.tensor([[BOS, -3]])), ValueError,
     ["idx", f"0..{len(vocab()) - 1}", "from -3"]),
    ("transformer-ids-too-big", lambda: gpt()(torch.tensor([[BOS, len(vocab())]])), ValueError,
     ["idx", f"0..{len(vocab()) - 1}", f"to {len(vocab())}"]),
    ("transformer-ids-float", lambda: gpt()(torch.zeros(1, 3)), TypeError, ["idx", "torch.int64", "float32"]),
    ("transformer-too-long", lambda: gpt()(torch.zeros(1, 17, dtype=torch.long)), ValueError,
     ["17 tokens", "block_size=16"]),
    ("transformer-cache-type", lambda: gpt()(prompt(), cache="yes"), TypeError, ["cache", "KVCache", "str"]),
    ("TransformerConfig-grid-float", lambda: TransformerConfig(20, 12, 8, (2.5, 2)), TypeError,
     ["grid[0]", "int", "2.5"]),
    ("TransformerConfig-dropout", lambda: TransformerConfig(20, 12, 8, (2, 2), dropout=1.5), ValueError,
     ["dropout", "<= 1.0", "1.5"]),
    ("TransformerConfig-dropout-nan", lambda: TransformerConfig(20, 12, 8, (2, 2), dropout=NAN), ValueError,
     ["dropout", "finite", "nan"]),
    ("TransformerConfig-heads", lambda: TransformerConfig(20, 12, 8, (2, 2), d_model=10, n_head=4), ValueError,
     ["d_model", "divisible by n_head", "d_model=10, n_head=4"]),

    # --- mixed sequences
    ("MixedSequenceData-float-codes", lambda: MixedSequenceData(vocab(), torch.zeros(4, 2, 2), CAPTIONS), TypeError,
     ["codes", "integer tensor", "float32"]),
    ("MixedSequenceData-no-images", lambda: MixedSequenceData(vocab(), torch.zeros(0, 2, 2, dtype=torch.long), []),
     ValueError, ["codes", "at least one image", "(0, 2, 2)"]),
    ("MixedSequenceData-captions-count", lambda: MixedSequenceData(vocab(), torch.zeros(4, 2, 2, dtype=torch.long),
                                                                   CAPTIONS[:3]), ValueError,
     ["captions", "one entry per image (4)", "got 3"]),
    ("MixedSequenceData-captions-str", lambda: MixedSequenceData(vocab(), torch.zeros(4, 2, 2, dtype=torch.long),
                                                                 "abcd"), TypeError, ["captions", "one caption", "str"]),
    ("MixedSequenceData-no-variants", lambda: MixedSequenceData(vocab(), torch.zeros(2, 2, 2, dtype=torch.long),
                                                                [CAPTIONS[0], []]), ValueError,
     ["captions[1]", "at least one caption", "none"]),
    ("MixedSequenceData-caption-int", lambda: MixedSequenceData(vocab(), torch.zeros(2, 2, 2, dtype=torch.long),
                                                                [CAPTIONS[0], [7]]), TypeError,
     ["captions[1]", "string", "int 7"]),
    ("MixedSequenceData-codes-range", lambda: MixedSequenceData(vocab(), torch.full((4, 2, 2), 8), CAPTIONS), ValueError,
     ["codes", "[0, 8)", "8"]),
    ("MixedSequenceData.batch-0", lambda: data().batch(0), ValueError, ["batch_size", ">= 1", "0"]),
    ("segment_weights-direction", lambda: segment_weights(torch.zeros(1, 4, dtype=torch.long), torch.tensor([2])),
     ValueError, ["direction", "0..1", "to 2"]),
    ("segment_weights-cond-nan", lambda: segment_weights(torch.zeros(1, 4, dtype=torch.long), torch.tensor([0]), NAN),
     ValueError, ["cond_weight", "finite", "nan"]),
    ("mixed_sequence_loss-batch", lambda: mixed_sequence_loss(gpt(), torch.zeros(1, 4, dtype=torch.long)), TypeError,
     ["batch", "pair (seq, direction)", "Tensor"]),
    ("mixed_sequence_loss-short", lambda: mixed_sequence_loss(gpt(), (torch.zeros(1, 1, dtype=torch.long),
                                                                      torch.zeros(1, dtype=torch.long))), ValueError,
     ["seq", "at least 2 tokens", "(1, 1)"]),
    ("diversity-empty", lambda: diversity(torch.zeros(0, 5, dtype=torch.long), []), ValueError,
     ["spans", "at least one sample", "(0, 5)"]),
    ("diversity-groups", lambda: diversity(torch.zeros(3, 5, dtype=torch.long), [0, 1]), ValueError,
     ["groups", "one label per row", "got 2"]),
    ("count_copies-width", lambda: count_copies(torch.zeros(2, 4, dtype=torch.long), torch.zeros(3, 3, 3)), ValueError,
     ["training_codes", "grids of 4 codes", "(3, 3, 3)"]),
    ("attribute_scores-empty", lambda: attribute_scores([], []), ValueError, ["at least one example"]),
    ("attribute_scores-lengths", lambda: attribute_scores([None], []), ValueError, ["predicted and truth", "1 and 0"]),
    ("parse_digit-int", lambda: parse_digit(7), TypeError, ["text", "string", "int 7"]),
    ("parse_shape_caption-none", lambda: parse_shape_caption(None), TypeError, ["text", "string", "NoneType"]),

    # --- data: captions, shapes, digits
    ("digit_caption-float-tensor", lambda: digit_caption(torch.tensor(3.7)), TypeError,
     ["label", "integer tensor", "3.7"]),
    ("digit_caption-float", lambda: digit_caption(3.0), TypeError, ["label", "int", "float 3.0"]),
    ("digit_caption-bool", lambda: digit_caption(True), TypeError, ["label", "int", "bool"]),
    ("digit_caption-10", lambda: digit_caption(10), ValueError, ["label", "<= 9", "10"]),
    ("digit_caption-negative", lambda: digit_caption(-1), ValueError, ["label", ">= 0", "-1"]),
    ("digit_caption-template", lambda: digit_caption(3, template=8), ValueError, ["template", "<= 7", "8"]),
    ("digit_caption-rng", lambda: digit_caption(3, rng=0), TypeError, ["rng", "random.Random", "int"]),
    ("digit_captions-float", lambda: digit_captions([1, 2.5]), TypeError, ["labels[1]", "int", "2.5"]),
    ("digit_captions-float-tensor", lambda: digit_captions(torch.tensor([1.0, 2.0])), TypeError,
     ["labels[0]", "integer tensor", "float32"]),
    ("digit_captions-2d", lambda: digit_captions(torch.zeros(2, 2, dtype=torch.long)), ValueError,
     ["labels", "1-D", "(2, 2)"]),
    ("ShapeSpec-color", lambda: ShapeSpec("circle", "purple", "small", "center"), ValueError,
     ["color", "'red'", "'purple'"]),
    ("ShapeSpec-position", lambda: ShapeSpec("circle", "red", "small", "top-left"), ValueError,
     ["position", "'top left'", "'top-left'"]),
    ("render-same-position", lambda: render(scene("top left", "top left")), ValueError,
     ["scene", "different position", "both at 'top left'"]),
    ("describe-same-position", lambda: describe(scene("center", "center")), ValueError,
     ["scene", "different position", "'center'"]),
    ("describe-empty", lambda: describe([]), ValueError, ["scene", "at least one ShapeSpec", "empty"]),
    ("render-one-spec", lambda: render(scene("center")[0]), TypeError, ["scene", "list of ShapeSpec", "one ShapeSpec"]),
    ("render-dicts", lambda: render([{"shape": "circle"}]), TypeError, ["scene[0]", "ShapeSpec", "dict"]),
    ("render-rng", lambda: render(scene("center"), rng=5), TypeError, ["rng", "random.Random", "int"]),
    ("describe-rng", lambda: describe(scene("center"), rng="seed"), TypeError, ["rng", "random.Random", "str"]),
    ("render-image_size", lambda: render(scene("center"), image_size=8), ValueError, ["image_size", ">= 12", "8"]),
    ("describe-variant", lambda: describe(scene("center"), variant=-1), ValueError, ["variant", ">= 0", "-1"]),
    ("make_shapes-0", lambda: make_shapes(0), ValueError, ["n", ">= 1", "0"]),
    ("make_shapes-fraction-nan", lambda: make_shapes(2, two_shape_fraction=NAN), ValueError,
     ["two_shape_fraction", "finite", "nan"]),
    ("make_shapes-split", lambda: make_shapes(2, split="test"), ValueError, ["split", "'train', 'heldout', 'all'", "'test'"]),
    ("read_scene-nan", lambda: read_scene(torch.full((3, 24, 24), NAN)), ValueError, ["image must be finite", "1728 NaN"]),
    ("read_scene-nan-array", lambda: read_scene(np.full((3, 24, 24), np.nan)), ValueError,
     ["image must be finite", "1728 non-finite"]),
    ("read_scene-shape", lambda: read_scene(torch.rand(1, 24, 24)), ValueError, ["image", "(3, S, S)", "(1, 24, 24)"]),
    ("read_scene-threshold", lambda: read_scene(torch.rand(3, 24, 24), threshold=NAN), ValueError,
     ["threshold", "finite", "nan"]),
    ("read_scene-str", lambda: read_scene("picture.png"), TypeError, ["image", "(3, S, S)", "str"]),
    ("scene_dict-str", lambda: scene_dict("circle"), TypeError, ["spec", "ShapeSpec or None", "str"]),
    ("scene_of-int", lambda: scene_of(5), TypeError, ["row", "make_shapes", "int"]),
    ("load_digits-source", lambda: load_digits("mnist5k"), ValueError, ["source", "'mnist-5k'", "'mnist5k'"]),
    ("load_digits-test_size", lambda: load_digits(test_size=0), ValueError, ["test_size", ">= 10", "0"]),
    ("as_tensors-list", lambda: as_tensors([1, 2]), TypeError, ["split", "'image' column", "list"]),
]


def _is_plain(row) -> bool:
    """A plain (id, call, exc, words) row, not a pytest.param (which is a tuple too)."""
    return not hasattr(row, "marks")


def _param(row):
    if _is_plain(row):
        ident, call, exc, expected = row
        return pytest.param(call, exc, expected, id=ident)
    ident, call, exc, expected = row.values
    return pytest.param(call, exc, expected, id=ident, marks=row.marks)


@pytest.mark.parametrize("call, exc, expected", [_param(r) for r in BAD])
def test_bad_input_gives_a_clear_error(call, exc, expected):
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) in (TypeError, ValueError) or issubclass(type(info.value), (TypeError, ValueError))
    message = str(info.value)
    for words in expected:
        assert words in message, f"{words!r} is not in the message {message!r}"
    # ours, not torch's internals
    for internal in ("probability tensor", "Input type (", "index out of range in self", "ZeroDivisionError"):
        assert internal not in message


def test_the_table_is_big_and_every_row_names_three_things():
    assert len(BAD) >= 200
    for row in BAD:
        expected = row[3] if _is_plain(row) else row.values[3]
        ident = row[0] if _is_plain(row) else row.values[0]
        assert len(expected) >= 1, ident
    three = sum(len(row[3] if _is_plain(row) else row.values[3]) >= 3 for row in BAD)
    assert three >= 0.8 * len(BAD), "most rows check the argument, the expectation and what came"
    idents = [row[0] if _is_plain(row) else row.values[0] for row in BAD]
    assert len(set(idents)) == len(idents), "row ids are unique"


# ------------------------------------------------------------------ edge cases with a defined result
def _close(a, b):
    return torch.allclose(a, b, atol=1e-5)


GOOD = [
    # empty batches: one value per image -> an empty result
    ("tok.encode-empty", lambda: tok().encode(images(0)).shape == (0, 7, 7)),
    ("tok.decode-empty", lambda: tok().decode(torch.zeros(0, 7, 7, dtype=torch.long)).shape == (0, 1, 28, 28)),
    ("predict_digits-empty", lambda: predict_digits(clf(), images(0)).shape == (0,)),
    ("encode_all-empty", lambda: encode_all(ae(), images(0)).shape == (0, 8)),
    ("posterior_means-empty", lambda: posterior_means(vae(), images(0)).shape == (0, 8)),
    ("importance_sampled_nll-empty", lambda: importance_sampled_nll(vae(), images(0)).shape == (0,)),
    ("describe_images-empty", lambda: describe_images(gpt(), vocab(), torch.zeros(0, 2, 2, dtype=torch.long)) == []),
    ("draw-empty", lambda: draw(gpt(), vocab(), []).shape == (0, 5)),
    ("code_counts-empty", lambda: code_counts(torch.zeros(0, dtype=torch.long), 3).tolist() == [0.0, 0.0, 0.0]),
    ("render-empty-scene", lambda: float(render([]).max()) == 0.0),
    # float64 is converted to the model's dtype, with the same result as float32
    ("ae.encode-float64", lambda: (lambda x: _close(ae().encode(x), ae().encode(x.float())))(
        images(3, dtype=torch.float64))),
    ("ae.forward-float64-dtype", lambda: ae()(images(2, dtype=torch.float64)).dtype == torch.float32),
    ("vae.encode-float64", lambda: vae().encode(images(2, dtype=torch.float64))[0].dtype == torch.float32),
    ("negative_elbo-float64", lambda: math.isfinite(negative_elbo(vae(), images(2, dtype=torch.float64))["neg_elbo"])),
    ("reconstruction_error-float64", lambda: math.isfinite(reconstruction_error(ae(), images(2, dtype=torch.float64)))),
    ("vqvae.encode-float64", lambda: vqvae().encode(images(2, dtype=torch.float64)).shape == (2, 7, 7)),
    ("tok.encode-float64", lambda: tok().encode(images(2, dtype=torch.float64)).dtype == torch.long),
    ("predict_digits-float64", lambda: predict_digits(clf(), images(2, dtype=torch.float64)).shape == (2,)),
    ("digit_accuracy-float64", lambda: 0.0 <= digit_accuracy(clf(), images(2, dtype=torch.float64),
                                                             torch.tensor([1, 2])) <= 1.0),
    ("pca.encode-float64", lambda: pca().encode(images(2, dtype=torch.float64)).dtype == torch.float32),
    ("bernoulli_baseline-float64", lambda: math.isfinite(bernoulli_baseline_nll(images(3, dtype=torch.float64),
                                                                                images(2)))),
    # counts, words and labels that used to come out wrong
    ("nearest_code-float64", lambda: nearest_code(torch.tensor([[0.9, 0.0]], dtype=torch.float64),
                                                  torch.tensor([[0.0, 0.0], [1.0, 0.0]])).tolist() == [1]),
    ("code_counts-right", lambda: code_counts(torch.tensor([0, 2, 2]), 3).tolist() == [1.0, 0.0, 2.0]),
    ("perplexity-one-code", lambda: abs(perplexity(torch.tensor([0.0, 5.0])) - 1.0) < 1e-6),
    ("split_words-non-ascii", lambda: split_words("Un niño, 7!") == ["un", "niño", ",", "7", "!"]),
    ("split_words-ascii-unchanged", lambda: split_words("The digit 17!") == ["the", "digit", "1", "7", "!"]),
    ("decode-unk", lambda: words().decode([-1, 0]) == f"<unk> {words().words[0]}"),
    ("digit_caption-int-tensor", lambda: digit_caption(torch.tensor(3), template=0) == "a handwritten three"),
    ("digit_caption-numpy", lambda: digit_caption(np.int64(8), template=3) == "an eight"),
    ("digit_captions-tensor", lambda: len(digit_captions(torch.tensor([1, 2, 3]))) == 3),
    ("check_int-numpy", lambda: V.check_int("n", np.int64(3)) == 3 and type(V.check_int("n", np.int64(3))) is int),
    ("check_float-numpy", lambda: V.check_float("p", np.float32(0.5)) == 0.5),
    ("tokenizer_data-n", lambda: tokenizer_data("digits", 3).shape == (3, 1, 28, 28)),
    ("tokenizer_data-none", lambda: tokenizer_data("digits", None, split="test").shape == (500, 1, 28, 28)),
    ("sample_next-greedy", lambda: sample_next(torch.tensor([[0.0, 3.0, 1.0]]), temperature=0, top_k=2).tolist() == [1]),
    ("filter_logits-forbidden-allowed", lambda: filter_logits(torch.tensor([[-INF, 0.0]])).isfinite().tolist()
     == [[False, True]]),
    ("check_device-cpu", lambda: V.check_device("device", "cpu") == torch.device("cpu")),
    ("check_device-none", lambda: V.check_device("device", None) is None),
    ("describe-two-corners", lambda: " and " in describe(scene("top left", "bottom right"), random.Random(0))),
]


@pytest.mark.parametrize("check", [pytest.param(c, id=i) for i, c in GOOD])
def test_edge_case_has_a_defined_result(check):
    assert check()


def test_nan_image_never_becomes_a_token_or_a_label():
    """The issue's reproduction 2: NaN images used to encode to code 0 and get a digit label."""
    x = torch.full((1, 1, 28, 28), NAN)
    with pytest.raises(ValueError, match="x must be finite; got 784 NaN values"):
        tok().encode(x)
    with pytest.raises(ValueError, match="x must be finite"):
        predict_digits(clf(), x)


def test_greedy_sampling_and_nan_guidance_reproductions():
    """The issue's reproduction 9: non-finite sampling settings stop at our check, not in torch."""
    logits = torch.zeros(2, 5)
    for kwargs in (dict(temperature=NAN), dict(temperature=INF), dict(temperature=0, top_k=-3)):
        with pytest.raises(ValueError) as info:
            sample_next(logits, **kwargs)
        assert "probability tensor" not in str(info.value)
    with pytest.raises(ValueError, match="guidance_scale must be a finite number >= 0.0; got nan"):
        generate(gpt(), prompt(), 2, guidance_scale=NAN, uncond_prompt=prompt())
