"""The speech judge: shapes, determinism, clear errors, a tiny run that learns, artifacts by recipe.

Tests that synthesise speech skip with speech_available()'s one-line reason where the espeakng-loader
wheel cannot be loaded; the rest run on random log-mels.
"""
import pytest
import torch

from course_lib.artifacts import save_artifact
from course_lib.data.speech import speech_available
from course_lib.models.speech_judge import (SpeechJudge, augment_log_mels, get_speech_judge, judge_accuracy,
                                            judge_recipe, judge_words, train_speech_judge)
from course_lib.speech_features import N_FRAMES, N_MELS, SILENCE, clips_to_log_mels, speech_log_mels

AVAILABLE, REASON = speech_available()
needs_espeak = pytest.mark.skipif(not AVAILABLE, reason=REASON)


@pytest.fixture(scope="module")
def tiny_train():
    torch.set_num_threads(1)
    return speech_log_mels("train", 8, seed=0)


def _fake(b=5, frames=N_FRAMES):
    return torch.rand(b, N_MELS, frames) * 12 - 11


def test_forward_and_judge_words_shapes():
    torch.manual_seed(0)
    judge = SpeechJudge(width=8).eval()
    x = _fake()
    assert judge(x).shape == (5, 10)
    words = judge_words(judge, x)
    assert words.shape == (5,) and words.dtype == torch.long and 0 <= int(words.min()) and int(words.max()) < 10
    assert torch.equal(judge_words(judge, x, batch_size=2), words)
    assert torch.equal(judge_words(judge, x.double()), words)  # float64 is converted
    assert judge_words(judge, x[:0]).shape == (0,)
    assert judge(_fake(2, 40)).shape == (2, 10)  # max over time: any length >= 8 frames


def test_clips_to_log_mels_pads_and_cuts():
    clips = [torch.zeros(1000).numpy(), torch.rand(30_000).numpy() - 0.5]
    m = clips_to_log_mels(clips)
    assert m.shape == (2, N_MELS, N_FRAMES) and m.dtype == torch.float32
    assert torch.allclose(m[0], torch.full_like(m[0], SILENCE))  # silence is log(eps)
    assert clips_to_log_mels([]).shape == (0, N_MELS, N_FRAMES)


@needs_espeak
def test_speech_log_mels_remembers_small_sets_and_hands_out_copies(monkeypatch):
    import course_lib.data.speech as speech
    import course_lib.speech_features as sf
    monkeypatch.setattr(sf, "_MEMO", {})
    calls = []
    real = speech.make_speech
    monkeypatch.setattr(speech, "make_speech", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    x, y = speech_log_mels("val", 1, seed=2)
    x[:] = 0.0                                              # a caller writing into its copy ...
    again_x, again_y = speech_log_mels("val", 1, seed=2)
    assert len(calls) == 1 and again_x.abs().sum() > 0        # ... changes nothing that is remembered
    fresh_x, fresh_y = sf.clips_to_log_mels(real(1, seed=2, split="val").clips), y
    assert torch.equal(again_x, fresh_x) and torch.equal(again_y, fresh_y)
    speech_log_mels("val", 1, seed=3)                         # other arguments: synthesised
    assert len(calls) == 2
    monkeypatch.setattr(sf, "MEMO_MAX_BYTES", again_x.nbytes + again_y.nbytes)   # room for one set: the oldest goes
    speech_log_mels("val", 1, seed=4)
    assert list(sf._MEMO) == [("val", 1, 4, N_FRAMES)]
    with pytest.raises(TypeError, match="n_per_word must be an int"):
        speech_log_mels("val", 1.0, seed=4)                   # never the remembered set of n_per_word=1
    with pytest.raises(TypeError, match="seed must be an int"):
        speech_log_mels("val", 1, seed=True)
    monkeypatch.setattr(sf, "MEMO_MAX_CLIPS", 5)            # a set bigger than that is not kept
    speech_log_mels("val", 1, seed=5)
    assert ("val", 1, 5, N_FRAMES) not in sf._MEMO


def test_bad_arguments_name_the_argument():
    judge = SpeechJudge(width=8)
    with pytest.raises(ValueError, match=r"log_mels must have shape \(\*, 80, \*\)"):
        judge_words(judge, torch.rand(2, 64, N_FRAMES))
    with pytest.raises(TypeError, match="log_mels must be a floating-point tensor"):
        judge_words(judge, torch.zeros(2, N_MELS, N_FRAMES, dtype=torch.long))
    with pytest.raises(ValueError, match="log_mels must be finite"):
        judge_words(judge, torch.full((1, N_MELS, N_FRAMES), float("nan")))
    with pytest.raises(ValueError, match="log_mels must have at least 8 frames"):
        judge_words(judge, torch.rand(1, N_MELS, 4))
    with pytest.raises(TypeError, match="model must be a SpeechJudge"):
        judge_words("judge", _fake())
    with pytest.raises(ValueError, match=r"labels must lie in 0..9"):
        judge_accuracy(judge, _fake(2), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="same length"):
        judge_accuracy(judge, _fake(2), torch.tensor([0]))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train_speech_judge(_fake(4), torch.zeros(4, dtype=torch.long), steps=0)
    with pytest.raises(TypeError, match="clips must be a list"):
        clips_to_log_mels(torch.zeros(2, 100))
    with pytest.raises(ValueError, match="max_delay must be <="):
        augment_log_mels(_fake(2), max_delay=N_FRAMES)


def test_augment_keeps_shape_and_floor():
    g = torch.Generator().manual_seed(0)
    x = _fake(3)
    out = augment_log_mels(x, generator=g)
    assert out.shape == x.shape and float(out.min()) >= SILENCE
    assert torch.equal(augment_log_mels(x, max_delay=0, max_gain=0.0), x.clamp(min=SILENCE))


@needs_espeak
def test_tiny_training_lowers_the_loss_and_is_deterministic(tiny_train):
    x, y = tiny_train
    model, history = train_speech_judge(x, y, steps=60, device="cpu", batch_size=32, width=32)
    first, last = history.first_last(window=5)
    assert last < 0.75 * first, (first, last)  # measured 2.35 -> 1.29
    again, _ = train_speech_judge(x, y, steps=60, device="cpu", batch_size=32, width=32)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(judge_words(model, x), judge_words(again, x))
    assert judge_accuracy(model, x, y) > 0.3  # well above chance (10%) after 60 steps on training clips (measured 76%)


def test_get_speech_judge_loads_an_artifact_made_by_its_recipe(capsys):
    recipe = judge_recipe("smoke")
    torch.manual_seed(0)
    judge = SpeechJudge(width=recipe["width"], dropout=recipe["dropout"])
    save_artifact("speech_judge_smoke", judge, recipe, metrics={"test_accuracy": 0.5, "test_accent_accuracy": 0.4})
    loaded = get_speech_judge("smoke", device="cpu")
    assert "loaded speech judge 'speech_judge_smoke'" in capsys.readouterr().out
    assert (loaded.test_accuracy, loaded.test_accent_accuracy) == (0.5, 0.4)
    x = _fake()
    assert torch.equal(judge_words(loaded, x), judge_words(judge, x))


class _BlurTokenizer:
    """Stands in for an AudioTokenizer: 'reconstructs' a clip as its mean over time (a heavy blur)."""
    def __init__(self, tag):
        self.hparams = {"stand-in": tag}

    def reconstruct(self, x):
        return x.mean(-1, keepdim=True).expand_as(x).clone()


def test_judge_recipe_names_the_tokenizer_it_hears():
    plain = judge_recipe("smoke")
    a, b = judge_recipe("smoke", _BlurTokenizer(1)), judge_recipe("smoke", _BlurTokenizer(2))
    assert plain["hears_tokenizer"] is None and a["hears_tokenizer"] != b["hears_tokenizer"]
    assert {k: v for k, v in a.items() if k != "hears_tokenizer"} == {k: v for k, v in plain.items() if k != "hears_tokenizer"}
    with pytest.raises(TypeError, match="audio_tokenizer must be an AudioTokenizer"):
        judge_recipe("smoke", "tokenizer")


def test_judge_that_hears_a_tokenizer_trains_on_both_versions_of_each_clip(monkeypatch):
    """get_speech_judge(audio_tokenizer=tok): the training set is every clip as it is and as tok returns it,
    each with its label; the artifact's metrics add the accuracy on tokenized held-out clips."""
    import course_lib.models.speech_judge as sj
    import course_lib.speech_features as sf
    x, y = _fake(6), torch.arange(6) % 10
    monkeypatch.setattr(sf, "speech_log_mels", lambda split, n, seed=0, n_frames=N_FRAMES: (x, y))
    seen, saved = {}, {}

    def spy(xs, ys, **kw):
        seen["x"], seen["y"] = xs, ys
        return SpeechJudge(width=8).eval(), None
    monkeypatch.setattr(sj, "train_speech_judge", spy)
    monkeypatch.setattr("course_lib.artifacts.load_artifact", lambda *a, **k: None)
    monkeypatch.setattr("course_lib.artifacts.save_artifact", lambda name, model, recipe, metrics: saved.update(metrics))
    tok = _BlurTokenizer(1)
    get_speech_judge("smoke", device="cpu", audio_tokenizer=tok, verbose=False)
    assert torch.equal(seen["x"], torch.cat([x, tok.reconstruct(x)])) and torch.equal(seen["y"], torch.cat([y, y]))
    assert {"test_tokenized_accuracy", "test_accent_tokenized_accuracy", "test_accuracy"} <= set(saved)
