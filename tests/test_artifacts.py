import json

import pytest
import torch
from torch import nn

from course_lib.artifacts import load_artifact, recipe_hash, save_artifact


def _build(hp):
    return nn.Sequential(nn.Linear(hp["d"], hp["h"]), nn.ReLU(), nn.Linear(hp["h"], 1))


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    model = _build({"d": 3, "h": 5})
    path = save_artifact("toy", model, {"d": 3, "h": 5}, metrics={"mse": 0.1}, directory=tmp_path)
    assert path.exists() and json.loads((tmp_path / "toy.json").read_text())["hparams"] == {"d": 3, "h": 5}
    assert not list(tmp_path.glob("*.tmp"))  # no temp files left behind
    loaded, meta = load_artifact("toy", _build, directory=tmp_path)
    x = torch.randn(4, 3)
    assert torch.equal(loaded(x), model(x))
    assert meta["metrics"]["mse"] == 0.1 and meta["hparams"] == {"d": 3, "h": 5}


def test_default_directory_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    save_artifact("toy", _build({"d": 2, "h": 2}), {"d": 2, "h": 2})
    assert (tmp_path / "artifacts" / "toy.pt").exists()


def test_missing_corrupt_and_mismatched_are_reported(tmp_path, capsys):
    assert load_artifact("nothing", _build, directory=tmp_path) is None
    assert "not found" in capsys.readouterr().out
    save_artifact("toy", _build({"d": 3, "h": 5}), {"d": 3, "h": 5}, directory=tmp_path)
    # a mismatched hyperparameter means "rebuild"
    assert load_artifact("toy", _build, expected={"h": 8}, directory=tmp_path) is None
    assert "hparam h=5 but 8 is needed" in capsys.readouterr().out
    # the JSON beside it is only a readable copy: garbage there does not matter
    (tmp_path / "toy.json").write_text("{not json")
    assert load_artifact("toy", _build, directory=tmp_path, verbose=False) is not None
    (tmp_path / "toy.json").unlink()
    assert load_artifact("toy", _build, directory=tmp_path, verbose=False) is not None
    # a truncated file is unreadable
    pt = tmp_path / "toy.pt"
    pt.write_bytes(pt.read_bytes()[:50])
    assert load_artifact("toy", _build, directory=tmp_path) is None
    assert "unreadable (" in capsys.readouterr().out
    # a file of the old layout (a bare state dict) is reported and rebuilt
    torch.save(_build({"d": 3, "h": 5}).state_dict(), pt)
    assert load_artifact("toy", _build, directory=tmp_path) is None
    assert "older file format" in capsys.readouterr().out


def test_wrong_architecture_names_the_first_misfit(tmp_path, capsys):
    save_artifact("toy", _build({"d": 3, "h": 5}), {"d": 3, "h": 5}, directory=tmp_path)
    assert load_artifact("toy", lambda hp: _build({"d": 3, "h": 6}), directory=tmp_path) is None
    out = capsys.readouterr().out
    assert "does not fit the model: tensor '0.weight' has shape (5, 3) in the file but (6, 3) in the model" in out
    assert load_artifact("toy", lambda hp: nn.Linear(3, 1), directory=tmp_path) is None
    assert "the file has tensor '0.weight', which the model does not have" in capsys.readouterr().out


def test_identity_is_the_full_recipe(tmp_path, capsys):
    recipe = {"d": 3, "h": 5, "steps": 100, "lr": 1e-3, "grid": (7, 7), "version": 1}
    save_artifact("toy", _build(recipe), recipe, directory=tmp_path)
    # tuples come back from JSON as lists: still the same recipe (same hash), still loads
    assert recipe_hash(recipe) == recipe_hash({**recipe, "grid": [7, 7]})
    loaded = load_artifact("toy", _build, recipe=dict(reversed(list(recipe.items()))), directory=tmp_path,
                           expected={"grid": (7, 7)})
    assert loaded is not None and loaded[1]["recipe_hash"] == recipe_hash(recipe)
    capsys.readouterr()
    # any setting that shapes the weights, not only the architecture, makes it another artifact
    assert load_artifact("toy", _build, recipe={**recipe, "steps": 200}, directory=tmp_path) is None
    assert "made by another recipe (steps=100 (wanted 200))" in capsys.readouterr().out
    assert load_artifact("toy", _build, recipe={**recipe, "seed": 1}, directory=tmp_path) is None
    assert "seed='<missing>' (wanted 1)" in capsys.readouterr().out


def test_failed_save_leaves_previous_files_intact(tmp_path):
    model = _build({"d": 3, "h": 5})
    save_artifact("toy", model, {"d": 3, "h": 5}, directory=tmp_path)
    before = (tmp_path / "toy.pt").read_bytes(), (tmp_path / "toy.json").read_text()
    with pytest.raises(TypeError):
        save_artifact("toy", _build({"d": 3, "h": 7}), {"d": 3, "h": object()}, directory=tmp_path)
    assert ((tmp_path / "toy.pt").read_bytes(), (tmp_path / "toy.json").read_text()) == before
    assert json.loads(before[1])["hparams"]["h"] == 5


def test_bad_names_and_types(tmp_path):
    with pytest.raises(ValueError, match="name must be letters, digits"):
        save_artifact("../evil", _build({"d": 1, "h": 1}), {}, directory=tmp_path)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module; got dict"):
        save_artifact("toy", {}, {}, directory=tmp_path)
    with pytest.raises(TypeError, match="hparams must be a dict; got list"):
        save_artifact("toy", _build({"d": 1, "h": 1}), [], directory=tmp_path)


def test_load_uses_weights_only(tmp_path, monkeypatch):
    seen = {}
    real = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    save_artifact("toy", _build({"d": 3, "h": 5}), {"d": 3, "h": 5}, directory=tmp_path)
    monkeypatch.setattr(torch, "load", spy)
    load_artifact("toy", _build, directory=tmp_path)
    assert seen.get("weights_only") is True


def _writer(directory, h, rounds):
    import torch
    from torch import nn
    from course_lib.artifacts import save_artifact
    for i in range(rounds):
        torch.manual_seed(i)
        save_artifact("shared", nn.Sequential(nn.Linear(3, h), nn.ReLU(), nn.Linear(h, 1)),
                      {"d": 3, "h": h}, metrics={"round": i}, directory=directory)


def test_concurrent_writers_leave_one_intact_artifact(tmp_path):
    """Two real processes save the same name again and again while this one reads it: every read
    sees weights and metadata of the same save, and the artifact left at the end is intact."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    save_artifact("shared", _build({"d": 3, "h": 4}), {"d": 3, "h": 4}, directory=tmp_path)
    procs = [ctx.Process(target=_writer, args=(tmp_path, h, 40)) for h in (5, 7)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs) or reads < 5:
        got = load_artifact("shared", _build, directory=tmp_path, verbose=False)
        assert got is not None, "a reader saw a missing or mismatched artifact during concurrent saves"
        model, meta = got
        assert model[0].out_features == meta["hparams"]["h"]
        reads += 1
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    model, meta = load_artifact("shared", _build, directory=tmp_path, verbose=False)
    assert meta["hparams"]["h"] in (5, 7) and meta["metrics"]["round"] == 39
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"
