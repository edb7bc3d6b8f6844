"""course_lib.mixed_training: the recipe is the model's identity; save -> load gives the same model and
vocabulary; a model from another recipe or another tokenizer is retrained, never trusted."""
import pytest
import torch

from course_lib.image_tokenizer import ImageTokenizer, save_tokenizer, tokenizer_recipe
from course_lib.mixed_training import (SHIFTS, build_vocabulary, get_mixed_model, heldout_losses, heldout_sequences,
                                       mixed_data, mixed_recipe, new_model, save_mixed_model, training_examples)


@pytest.fixture
def tokenizer(tmp_path, monkeypatch):
    """An untrained (but saved, so get_tokenizer loads it) digits tokenizer of the smoke recipe."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    torch.manual_seed(0)
    tok = ImageTokenizer.from_hparams(tokenizer_recipe("digits", "smoke")).eval()
    save_tokenizer(tok, "smoke")
    return tok


def _tiny(tok, **change):
    return mixed_recipe("digits", "smoke", tok, **{"d_model": 8, "n_layer": 1, "n_head": 2, "steps": 3, **change})


def test_recipe_names_its_tokenizer_and_rejects_unknown_settings(tokenizer):
    r = mixed_recipe("digits", "smoke", tokenizer)
    assert r["tokenizer"] and r["dataset"] == "digits" and r["steps"] == 600 and r["cond_weight"] == 1 / 8
    classroom = mixed_recipe("digits", "classroom", tokenizer)
    assert classroom["steps"] == 4000 and classroom["n_shifts"] == len(SHIFTS) == 8
    with pytest.raises(ValueError, match=r"overrides must name settings of the recipe .*got \['stepz'\]"):
        mixed_recipe("digits", "smoke", tokenizer, stepz=3)
    with pytest.raises(ValueError, match="dataset"):
        mixed_recipe("mnist", "smoke", tokenizer)


def test_training_examples_vocabulary_and_heldout_batch(tokenizer):
    recipe = _tiny(tokenizer)
    captions, codes = training_examples("digits", recipe, tokenizer)
    assert len(captions) == len(codes) == 4500 and codes.shape[1:] == (1 + recipe["n_shifts"], 7, 7)
    vocab = build_vocabulary(captions, tokenizer)
    assert "seven" in vocab.tokenizer.words and vocab.num_codes == tokenizer.num_codes
    seq, direction = heldout_sequences(vocab, ["a seven", "the digit 2"], codes[:2, 0])
    assert seq.shape[0] == 4 and direction.tolist() == [0, 1, 0, 1]
    model = new_model(recipe, vocab, mixed_data(recipe, vocab, captions, codes).block_size)
    losses = heldout_losses(model, (seq, direction))
    assert set(losses) == {"t2i_text", "t2i_image", "i2t_text", "i2t_image"}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())


def test_saved_model_loads_only_for_its_recipe(tokenizer, monkeypatch, capsys):
    recipe = _tiny(tokenizer)
    captions, codes = training_examples("digits", recipe, tokenizer)
    vocab = build_vocabulary(captions, tokenizer)
    model = new_model(recipe, vocab, 64)
    # get_mixed_model uses the profile's own recipe: save under it, then load
    monkeypatch.setattr("course_lib.mixed_training.mixed_recipe", lambda d, p, t=None, **kw: _tiny(t))
    save_mixed_model(model, vocab, recipe, "smoke")
    loaded, loaded_vocab = get_mixed_model("digits", profile="smoke", device="cpu")
    assert "loaded transformer 'transformer_digits_smoke'" in capsys.readouterr().out
    assert loaded_vocab.tokenizer.words == vocab.tokenizer.words and len(loaded_vocab) == len(vocab)
    idx = torch.randint(0, len(vocab), (2, 10))
    with torch.no_grad():
        assert torch.equal(loaded(idx), model.eval()(idx))
    # another recipe (here: more steps) -> retrained, with the reason printed
    monkeypatch.setattr("course_lib.mixed_training.mixed_recipe", lambda d, p, t=None, **kw: _tiny(t, steps=4))
    monkeypatch.setattr("course_lib.mixed_training.train_mixed_model",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("retrain")))
    with pytest.raises(RuntimeError, match="retrain"):
        get_mixed_model("digits", profile="smoke", device="cpu")
    assert "hparam steps=3 but 4 is needed" in capsys.readouterr().out
