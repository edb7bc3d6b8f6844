"""The image tokenizer API that notebook 05 codes against: shapes, dtypes, devices, errors, caching."""
import pytest
import torch

from course_lib.image_tokenizer import (RECIPE_VERSION, ImageTokenizer, build_vqvae, get_tokenizer, save_tokenizer,
                                  tokenizer_name, tokenizer_recipe)


def _untrained(dataset="digits"):
    torch.manual_seed(0)
    recipe = tokenizer_recipe(dataset, "smoke")
    return ImageTokenizer(build_vqvae(recipe), recipe)


@pytest.mark.parametrize("dataset,c,s,g,k", [("digits", 1, 28, 7, 256), ("shapes", 3, 24, 6, 256)])
def test_encode_decode_shapes_and_round_trip(dataset, c, s, g, k):
    tok = _untrained(dataset)
    assert (tok.num_codes, tok.grid, tok.channels, tok.image_size) == (k, (g, g), c, s)
    x = torch.rand(5, c, s, s)
    codes = tok.encode(x)
    assert codes.shape == (5, g, g) and codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < k
    img = tok.decode(codes)
    assert img.shape == (5, c, s, s) and img.dtype == torch.float32
    assert 0 <= float(img.min()) and float(img.max()) <= 1
    # decoding then encoding the decoded latents' codes: code grids are stable under encode(decode(.))
    assert torch.equal(tok.decode(codes), img)  # deterministic
    # batch-wise: small batches give the same codes as one big batch
    assert torch.equal(tok.encode(x, batch_size=2), codes)
    assert tok.encode(x[:0]).shape == (0, g, g)


def test_input_validation_messages():
    tok = _untrained("digits")
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 1, 28, 28\)"):
        tok.encode(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="x must have shape"):
        tok.encode(torch.rand(2, 28, 28))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        tok.encode(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"pixel values in \[0, 1\]"):
        tok.encode(torch.rand(2, 1, 28, 28) * 255)
    with pytest.raises(TypeError, match="codes must have dtype torch.int64"):
        tok.decode(torch.zeros(2, 7, 7))
    with pytest.raises(ValueError, match=r"codes must lie in 0..255"):
        tok.decode(torch.full((2, 7, 7), 256))
    with pytest.raises(ValueError, match=r"codes must lie in 0..255"):
        tok.decode(torch.full((2, 7, 7), -1))
    with pytest.raises(ValueError, match="codes must have shape"):
        tok.decode(torch.zeros(2, 6, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="dataset must be one of"):
        get_tokenizer("digit", profile="smoke")


def test_get_tokenizer_trains_saves_then_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    tok = get_tokenizer("shapes", profile="smoke", device="cpu")
    first = capsys.readouterr().out
    assert "trained tokenizer 'tokenizer_shapes_smoke'" in first
    assert (tmp_path / "artifacts" / "tokenizer_shapes_smoke.pt").exists()
    tok2 = get_tokenizer("shapes", profile="smoke", device="cpu")
    assert "loaded tokenizer 'tokenizer_shapes_smoke' from data/artifacts" in capsys.readouterr().out
    x = torch.rand(4, 3, 24, 24)
    assert torch.equal(tok.encode(x), tok2.encode(x))
    assert torch.allclose(tok.decode(tok.encode(x)), tok2.decode(tok2.encode(x)))
    # a corrupt artifact is rebuilt, not trusted
    (tmp_path / "artifacts" / "tokenizer_shapes_smoke.pt").write_bytes(b"garbage")
    get_tokenizer("shapes", profile="smoke", device="cpu")
    assert "trained tokenizer" in capsys.readouterr().out


def test_tokenizer_from_an_older_recipe_is_retrained(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    old = dict(tokenizer_recipe("shapes", "smoke"), num_codes=64)
    del old["version"]  # what a tokenizer saved before the recipe had a version looks like
    save_tokenizer(ImageTokenizer.from_hparams(old), "smoke")
    tok = get_tokenizer("shapes", profile="smoke", device="cpu")
    assert "trained tokenizer 'tokenizer_shapes_smoke'" in capsys.readouterr().out
    assert tok.num_codes == 256 and tok.hparams["version"] == RECIPE_VERSION


def test_saved_under_profile_name(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    tok = _untrained("digits")
    assert save_tokenizer(tok, "smoke") == tokenizer_name("digits", "smoke") == "tokenizer_digits_smoke"
    loaded = get_tokenizer("digits", profile="smoke", device="cpu", verbose=False)
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded.encode(x), tok.encode(x))


def test_tokenizer_identity_is_its_recipe(tmp_path, monkeypatch, capsys):
    """A cached tokenizer is used when it was made by this profile's recipe, whatever notebook 04 chose
    (quantizer, K, downsampling); another step count or another COURSE_SEED makes it stale."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    chosen = dict(tokenizer_recipe("digits", "smoke"), quantizer="fsq", levels=[8, 5, 5, 5], num_codes=1000)
    save_tokenizer(ImageTokenizer.from_hparams(chosen), "smoke")
    assert get_tokenizer("digits", profile="smoke", device="cpu").hparams["quantizer"] == "fsq"
    assert "loaded tokenizer" in capsys.readouterr().out
    save_tokenizer(ImageTokenizer.from_hparams(dict(chosen, steps=7)), "smoke")
    monkeypatch.setattr("course_lib.image_tokenizer.train_tokenizer", lambda recipe, **kw: (_ for _ in ()).throw(
        RuntimeError(f"retrain: {recipe['steps']}")))
    with pytest.raises(RuntimeError, match="retrain: 120"):
        get_tokenizer("digits", profile="smoke", device="cpu")
    assert "hparam steps=7 but 120 is needed" in capsys.readouterr().out
    save_tokenizer(ImageTokenizer.from_hparams(chosen), "smoke")
    monkeypatch.setenv("COURSE_SEED", "2")
    with pytest.raises(RuntimeError, match="retrain"):
        get_tokenizer("digits", profile="smoke", device="cpu")
    assert "hparam course_seed=0 but 2 is needed" in capsys.readouterr().out


def test_judge_is_loaded_only_for_its_recipe(tmp_path, monkeypatch, capsys):
    from course_lib.artifacts import save_artifact
    from course_lib.models.classifier import DigitCNN, classifier_recipe, get_digit_classifier
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    recipe = classifier_recipe("smoke")
    save_artifact("digit_classifier_smoke", DigitCNN(), recipe, metrics={"test_accuracy": 0.5})
    assert get_digit_classifier("smoke", "cpu").test_accuracy == 0.5
    assert "loaded digit classifier" in capsys.readouterr().out
    save_artifact("digit_classifier_smoke", DigitCNN(hidden=32), dict(recipe, hidden=32), metrics={"test_accuracy": 0.5})
    monkeypatch.setattr("course_lib.models.classifier.train_digit_classifier",
                        lambda *a, **kw: (_ for _ in ()).throw(RuntimeError("retrain")))
    with pytest.raises(RuntimeError, match="retrain"):
        get_digit_classifier("smoke", "cpu")
    assert "made by another recipe (hidden=32 (wanted 64))" in capsys.readouterr().out
