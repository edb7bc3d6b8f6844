import pytest
import torch
from torch import nn

from course_lib.train import History, evaluate, fit


def _problem(n=256):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return x, x @ w


def _mse(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def test_fit_reduces_loss_and_logs():
    x, y = _problem()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    before = evaluate(lambda b: (model(b[0]) - b[1]).pow(2).mean(1), (x, y))
    hist = fit(model, lambda m, b: (_mse(m, b), {"double": 2 * _mse(m, b).detach()}), (x, y),
               steps=200, batch_size=32, lr=0.05)
    after = evaluate(lambda b: (model(b[0]) - b[1]).pow(2).mean(1), (x, y))
    assert hist.steps == 200 and len(hist.loss) == 200 and len(hist.metrics["double"]) == 200
    assert after < 0.01 * before
    first, last = hist.first_last()
    assert last < first
    assert hist.seconds > 0 and not hist.stopped_by_budget
    assert len(hist.smoothed(window=10)) == 200


def test_fit_is_deterministic_on_cpu():
    x, y = _problem()
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        model = nn.Linear(4, 1)
        fit(model, _mse, (x, y), steps=30, batch_size=16, seed=7)
        runs.append(model.weight.detach().clone())
    assert torch.equal(runs[0], runs[1])


def test_fit_budget_guard_stops_loudly_and_history_continues(capsys):
    from course_lib.train import CUT_SHORT
    x, y = _problem()
    model = nn.Linear(4, 1)
    before = len(CUT_SHORT)
    with pytest.warns(RuntimeWarning, match="CUT SHORT by the wall-clock guard"):
        hist = fit(model, _mse, (x, y), steps=10**6, batch_size=8, max_seconds=0.2, desc="probe")
    assert hist.stopped_by_budget and hist.steps < 10**6
    assert f"WARNING: probe: CUT SHORT by the wall-clock guard after {hist.steps} of 1000000 steps" in capsys.readouterr().out
    assert len(CUT_SHORT) == before + 1
    n = hist.steps
    hist = fit(model, _mse, (x, y), steps=5, history=hist)
    assert hist.steps == n + 5


def test_fit_accepts_iterables_and_schedules():
    x, y = _problem(64)
    loader = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    model = nn.Linear(4, 1)
    hist = fit(model, _mse, loader, steps=10, warmup_steps=3, cosine=True)
    assert hist.steps == 10


def test_fit_errors_are_clear():
    x, y = _problem(8)
    model = nn.Linear(4, 1)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module; got str"):
        fit("model", _mse, (x, y), steps=1)
    with pytest.raises(ValueError, match="steps must be >= 1; got 0"):
        fit(model, _mse, (x, y), steps=0)
    with pytest.raises(ValueError, match="lr must be > 0.0"):
        fit(model, _mse, (x, y), steps=1, lr=0)
    with pytest.raises(ValueError, match="data tensors must have the same length"):
        fit(model, _mse, (x, y[:3]), steps=1)
    with pytest.raises(FloatingPointError, match="loss became nan"):
        fit(model, lambda m, b: m(b[0]).sum() * float("nan"), (x, y), steps=1)


def test_history_first_last_on_short_series():
    h = History(loss=[3.0, 1.0])
    assert h.first_last() == (3.0, 1.0)


def test_same_seed_same_numbers_and_course_seed_shifts_them(monkeypatch):
    """Running the same small training twice gives identical weights and loss curves on the CPU;
    COURSE_SEED (the robustness-sweep switch) changes the initialisation and the batch order."""
    from course_lib.device import seed_everything
    x, y = _problem(96)

    def run():
        seed_everything(0)
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
        hist = fit(model, _mse, (x, y), steps=40, batch_size=16, cosine=True, warmup_steps=5)
        return torch.cat([p.detach().flatten() for p in model.parameters()]), hist.loss

    w1, l1 = run()
    w2, l2 = run()
    assert torch.equal(w1, w2) and l1 == l2
    monkeypatch.setenv("COURSE_SEED", "1")
    w3, l3 = run()
    assert not torch.equal(w1, w3) and l1 != l3
    monkeypatch.setenv("COURSE_SEED", "-1")
    with pytest.raises(ValueError, match="COURSE_SEED must be a non-negative integer; got -1"):
        seed_everything(0)
    monkeypatch.setenv("COURSE_SEED", "x")
    with pytest.raises(ValueError, match="COURSE_SEED must be a non-negative integer; got 'x'"):
        seed_everything(0)


def test_deterministic_mode_makes_codebook_gradients_repeat():
    """Indexing a codebook accumulates its gradient in parallel on the CPU; in the deterministic mode
    that start_notebook turns on (CPU only) every backward pass gives the same bits."""
    from course_lib.device import deterministic
    before = torch.are_deterministic_algorithms_enabled()
    try:
        assert deterministic("cpu") and torch.are_deterministic_algorithms_enabled()
        g = torch.Generator().manual_seed(0)
        codebook = torch.randn(512, 16, generator=g, requires_grad=True)
        idx = torch.randint(0, 512, (64 * 49,), generator=g)
        w = torch.randn(64 * 49, 16, generator=g)
        grads = []
        for _ in range(10):
            codebook.grad = None
            (codebook[idx] * w).sum().backward()
            grads.append(codebook.grad.clone())
        assert all(torch.equal(grads[0], other) for other in grads)
        assert not deterministic("meta")   # anything but the CPU: left as it is
    finally:
        torch.use_deterministic_algorithms(before)
