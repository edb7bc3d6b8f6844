import json

import pytest
import torch
from torch import nn

from course_lib.artifacts import load_artifact, save_artifact


def _build(hp):
    return nn.Sequential(nn.Linear(hp["d"], hp["h"]), nn.ReLU(), nn.Linear(hp["h"], 1))


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    model = _build({"d": 3, "h": 5})
    path = save_artifact("toy", model, {"d": 3, "h": 5}, metrics={"mse": 0.1}, directory=tmp_path)
    assert path.exists() and (tmp_path / "toy.json").exists()
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
    # a truncated weights file is caught by its checksum
    pt = tmp_path / "toy.pt"
    pt.write_bytes(pt.read_bytes()[:50])
    assert load_artifact("toy", _build, directory=tmp_path) is None
    assert "checksum does not match" in capsys.readouterr().out
    # garbage JSON
    (tmp_path / "toy.json").write_text("{not json")
    assert load_artifact("toy", _build, directory=tmp_path) is None
    assert "unreadable (JSONDecodeError" in capsys.readouterr().out


def test_wrong_architecture_is_reported(tmp_path, capsys):
    save_artifact("toy", _build({"d": 3, "h": 5}), {"d": 3, "h": 5}, directory=tmp_path)
    assert load_artifact("toy", lambda hp: nn.Linear(3, 1), directory=tmp_path) is None
    assert "does not fit the model" in capsys.readouterr().out


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
