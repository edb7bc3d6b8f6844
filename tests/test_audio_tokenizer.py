"""The audio tokenizer: shapes, determinism, clear errors, a tiny run that learns, artifacts by recipe.

Tests that synthesise speech skip with speech_available()'s one-line reason where the espeakng-loader
wheel cannot be loaded; the rest run on random log-mels.
"""
import math

import pytest
import torch

from course_lib.audio_tokenizer import (AudioTokenizer, audio_tokenizer_recipe, build_audio_vqvae,
                                        evaluate_audio_tokenizer, get_audio_tokenizer, save_audio_tokenizer,
                                        train_audio_tokenizer)
from course_lib.data.speech import speech_available
from course_lib.models.speech_judge import SpeechJudge
from course_lib.speech_features import N_FRAMES, N_MELS, speech_log_mels

AVAILABLE, REASON = speech_available()
needs_espeak = pytest.mark.skipif(not AVAILABLE, reason=REASON)
SMALL = dict(hidden=32, dim=8, num_codes=32, batch_size=16)


def _untrained(**overrides):
    torch.manual_seed(0)
    recipe = audio_tokenizer_recipe("smoke", **{**SMALL, **overrides})
    return AudioTokenizer(build_audio_vqvae(recipe), recipe)


def _fake(b=5):
    return torch.rand(b, N_MELS, N_FRAMES) * 12 - 11


@pytest.fixture(scope="module")
def tiny_train():
    torch.set_num_threads(1)
    return speech_log_mels("train", 4, seed=0)


def test_classroom_recipe_keeps_clips_short():
    recipe = audio_tokenizer_recipe("classroom")
    tok = AudioTokenizer(build_audio_vqvae(recipe), recipe)
    assert tok.num_codes == 256 and tok.num_tokens <= 32
    assert tok.bits_per_second == pytest.approx(tok.tokens_per_second * 8)
    assert 15 < tok.tokens_per_second < 32


@pytest.mark.parametrize("overrides,code_shape", [({}, (22,)), ({"downsample": 8}, (11,)),
                                                  ({"quantizer": "rvq", "num_stages": 2}, (22, 2))])
def test_encode_decode_shapes(overrides, code_shape):
    tok = _untrained(**overrides)
    assert tok.code_shape == code_shape and tok.num_tokens == math.prod(code_shape)
    x = _fake()
    codes = tok.encode(x)
    assert codes.shape == (5, *code_shape) and codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < tok.num_codes
    out = tok.decode(codes)
    assert out.shape == (5, N_MELS, N_FRAMES) and out.dtype == torch.float32
    assert torch.equal(tok.encode(x, batch_size=2), codes)  # batch-wise is the same
    assert torch.equal(tok.decode(codes), out)
    assert tok.encode(x[:0]).shape == (0, *code_shape) and tok.decode(codes[:0]).shape == (0, N_MELS, N_FRAMES)
    metrics = evaluate_audio_tokenizer(tok, x)
    assert metrics["tokens_per_clip"] == tok.num_tokens and 1 <= metrics["perplexity"] <= tok.num_codes


def test_bad_arguments_name_the_argument():
    tok = _untrained()
    with pytest.raises(ValueError, match=r"log_mels must have shape \(\*, 80, 88\)"):
        tok.encode(torch.rand(2, N_MELS, 80))
    with pytest.raises(TypeError, match="log_mels must be a floating-point tensor"):
        tok.encode(torch.zeros(2, N_MELS, N_FRAMES, dtype=torch.long))
    with pytest.raises(ValueError, match="log_mels must be finite"):
        tok.encode(torch.full((1, N_MELS, N_FRAMES), float("inf")))
    with pytest.raises(TypeError, match="codes must have dtype torch.int64"):
        tok.decode(torch.zeros(2, 22))
    with pytest.raises(ValueError, match=r"codes must lie in 0..31"):
        tok.decode(torch.full((2, 22), 32))
    with pytest.raises(ValueError, match=r"codes must have shape \(\*, 22\)"):
        tok.decode(torch.zeros(2, 11, dtype=torch.long))
    with pytest.raises(ValueError, match="downsample must be one of"):
        build_audio_vqvae(audio_tokenizer_recipe("smoke", downsample=3))
    with pytest.raises(ValueError, match="quantizer must be one of"):
        audio_tokenizer_recipe("smoke", quantizer="fsq")
    with pytest.raises(KeyError, match="overrides must name recipe entries"):
        audio_tokenizer_recipe("smoke", hiden=64)
    with pytest.raises(ValueError, match="n_frames must be a multiple of downsample"):
        build_audio_vqvae(audio_tokenizer_recipe("smoke", n_frames=90))
    with pytest.raises(TypeError, match="tok must be an AudioTokenizer"):
        evaluate_audio_tokenizer("tok", _fake())
    with pytest.raises(ValueError, match="labels and judge must be given together"):
        evaluate_audio_tokenizer(tok, _fake(2), labels=torch.tensor([0, 1]))


@needs_espeak
def test_tiny_training_lowers_the_loss_and_is_deterministic(tiny_train):
    x, y = tiny_train
    recipe = audio_tokenizer_recipe("smoke", **SMALL, steps=30)
    tok, history = train_audio_tokenizer(recipe, x, device="cpu")
    first, last = history.first_last("mse", window=5)
    assert last < 0.5 * first, (first, last)
    again, _ = train_audio_tokenizer(recipe, x, device="cpu")
    assert torch.equal(tok.encode(x), again.encode(x))  # same seed, same codes
    judge = SpeechJudge(width=8)
    metrics = evaluate_audio_tokenizer(tok, x, y, judge)
    assert metrics["mse"] < first and 0 <= metrics["judge_tokenized"] <= 1
    assert metrics["bits_per_second"] == pytest.approx(metrics["tokens_per_second"] * 5)  # K = 32


def test_get_audio_tokenizer_loads_an_artifact_made_by_its_recipe(capsys):
    recipe = audio_tokenizer_recipe("smoke")
    torch.manual_seed(0)
    tok = AudioTokenizer(build_audio_vqvae(recipe), recipe)
    save_audio_tokenizer(tok, "smoke", {"mse": 1.0})
    loaded = get_audio_tokenizer(profile="smoke", device="cpu")
    assert "loaded audio tokenizer 'audio_tokenizer_smoke'" in capsys.readouterr().out
    x = _fake(3)
    assert torch.equal(loaded.encode(x), tok.encode(x))
