import copy
import math
import sys

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


class _Logged:
    """A loss with every kind of logged value: a tensor each step, a float each step, a tensor on odd
    steps only, and a 0-d buffer changed in place (each step's value must be the one of that step)."""

    def __init__(self):
        self.step = 0
        self.counter = torch.zeros(())

    def __call__(self, model, batch):
        x, y = batch
        loss = nn.functional.mse_loss(model(x), y)
        self.counter += 1
        out = {"twice": 2 * loss.detach(), "weight_norm": float(model[0].weight.detach().norm()), "counter": self.counter}
        if self.step % 2:
            out["odd"] = loss.detach() + 1
        self.step += 1
        return loss, out


def _naive_fit(model, loss_fn, data, *, steps, batch_size, lr, weight_decay, warmup_steps, cosine, seed,
               clip_grad=1.0):
    """The loop fit ran before it stopped reading the loss at every step (commit 46e66d4), written out."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(data[0])

    def batches():
        while True:
            order = torch.randperm(n, generator=gen)
            for start in range(0, n - batch_size + 1, batch_size):
                idx = order[start:start + batch_size]
                yield tuple(t[idx] for t in data)

    it, losses, metrics = batches(), [], {}
    model.train()
    for step in range(steps):
        if step < warmup_steps:
            scale = (step + 1) / warmup_steps
        elif cosine:
            scale = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / max(1, steps - warmup_steps)))
        else:
            scale = 1.0
        for group in opt.param_groups:
            group["lr"] = lr * scale
        loss, extra = loss_fn(model, next(it))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        opt.step()
        losses.append(float(loss.detach()))
        for name, value in extra.items():
            metrics.setdefault(name, []).append(float(value))
    return losses, metrics


def test_fit_numbers_are_bit_identical_to_a_naive_per_step_loop():
    """Reading the history back in bulk changes no number on the CPU: losses, every kind of logged value
    and the weights equal those of a loop that reads each step's loss at once (several epochs, a
    remainder batch dropped, warmup + cosine, weight decay, clipping)."""
    x, y = _problem(100)
    kw = dict(steps=45, batch_size=16, lr=0.02, weight_decay=0.01, warmup_steps=5, cosine=True, seed=3)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    twin = copy.deepcopy(model)
    hist = fit(model, _Logged(), (x, y), sync_every=7, **kw)
    want_loss, want_metrics = _naive_fit(twin, _Logged(), (x, y), **kw)
    assert hist.loss == want_loss and hist.metrics == want_metrics
    assert len(hist.metrics["odd"]) == 22 and hist.metrics["counter"] == [float(i) for i in range(1, 46)]
    assert all(type(v) is float for v in hist.loss + hist.metrics["twice"] + hist.metrics["odd"])
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))


def test_fit_reads_the_device_back_only_every_sync_every_steps(monkeypatch):
    """No host read per step: with tensor losses and metrics, fit itself calls no float/bool/item and
    copies to the host once per ``sync_every`` steps (plus once at the end)."""
    import course_lib.train as train
    monkeypatch.setattr(train, "SYNC_SECONDS", 1e9)   # only the step count triggers a read-back here
    calls = []
    for name in ("__float__", "__bool__", "item", "tolist", "cpu"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if caller.endswith(("train.py", "test_train.py")):
                calls.append(_name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, spy)
    x, y = _problem()
    model = nn.Linear(4, 1)
    hist = fit(model, lambda m, b: (_mse(m, b), {"twice": 2 * _mse(m, b).detach()}), (x, y), steps=120,
               batch_size=16, sync_every=50)
    monkeypatch.undo()
    assert hist.steps == 120 and len(hist.metrics["twice"]) == 120
    assert sorted(calls) == ["cpu"] * 3 + ["tolist"] * 3, calls   # steps 50, 100 and the end


def test_on_step_sees_every_step_so_far():
    x, y = _problem()
    seen = []
    hist = fit(nn.Linear(4, 1), lambda m, b: (_mse(m, b), {"twice": 2 * _mse(m, b).detach()}), (x, y), steps=12,
               batch_size=16, on_step=lambda step, h: seen.append((step, h.steps, len(h.loss), len(h.metrics["twice"]))))
    assert seen == [(i, i, i, i) for i in range(1, 13)] and hist.steps == 12


def test_nan_loss_is_reported_at_its_step_after_a_bulk_read():
    x, y = _problem()
    state = {"step": 0}

    def nan_at_7(model, batch):
        loss = _mse(model, batch)
        state["step"] += 1
        return loss * float("nan") if state["step"] == 8 else loss

    hist = History()
    with pytest.raises(FloatingPointError, match="loss became nan at step 7"):
        fit(nn.Linear(4, 1), nan_at_7, (x, y), steps=30, batch_size=16, history=hist)
    assert hist.steps == 7 and len(hist.loss) == 7 and all(math.isfinite(v) for v in hist.loss)

    def nan_then_crash(model, batch):   # e.g. a finite-input check of the next step, before any read-back
        if state["step"] == 3:
            raise ValueError("z must be finite")
        state["step"] += 1
        return _mse(model, batch) * (float("nan") if state["step"] == 3 else 1.0)

    state["step"] = 0
    with pytest.raises(FloatingPointError, match="loss became nan at step 2") as err:
        fit(nn.Linear(4, 1), nan_then_crash, (x, y), steps=30, batch_size=16)
    assert isinstance(err.value.__cause__, ValueError)


def test_fit_checks_what_the_loss_returns():
    x, y = _problem(32)
    with pytest.raises(ValueError, match="sync_every must be >= 1; got 0"):
        fit(nn.Linear(4, 1), _mse, (x, y), steps=1, sync_every=0)
    with pytest.raises(TypeError, match="loss_fn must return a tensor loss"):
        fit(nn.Linear(4, 1), lambda m, b: 1.0, (x, y), steps=1)
    with pytest.raises(ValueError, match=r"logged value 'per_example' must be a number or a one-element tensor; "
                                         r"got a tensor of shape \(16, 1\)"):
        fit(nn.Linear(4, 1), lambda m, b: (_mse(m, b), {"per_example": m(b[0])}), (x, y), steps=1, batch_size=16)


def test_classifier_loss_logs_tensors_and_fit_turns_them_into_floats():
    from course_lib.models.classifier import DigitCNN, _loss
    torch.manual_seed(0)
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    loss, logged = _loss(DigitCNN(), (x, y))
    assert isinstance(logged["accuracy"], torch.Tensor) and logged["accuracy"].ndim == 0
    hist = fit(DigitCNN(), _loss, (x, y), steps=3, batch_size=32)
    assert all(type(v) is float and 0.0 <= v <= 1.0 for v in hist.metrics["accuracy"])


def test_ema_decay_leaves_the_moving_average_of_the_weights():
    x, y = _problem()
    torch.manual_seed(2)
    model = nn.Linear(4, 1)
    seen = [[p.detach().clone() for p in model.parameters()]]          # the start, then after every step
    fit(model, _mse, (x, y), steps=6, batch_size=16, lr=0.1, seed=3, ema_decay=0.6,
        on_step=lambda step, h: seen.append([p.detach().clone() for p in model.parameters()]))
    want = [t.clone() for t in seen[0]]
    for weights in seen[1:]:
        want = [0.6 * a + 0.4 * w for a, w in zip(want, weights)]
    for got, w in zip(model.parameters(), want):
        assert torch.allclose(got.detach(), w, atol=1e-6)
    assert not torch.allclose(model.weight.detach(), seen[-1][0])  # not the last step's weights
    torch.manual_seed(2)
    raw = nn.Linear(4, 1)
    fit(raw, _mse, (x, y), steps=6, batch_size=16, lr=0.1, seed=3, ema_decay=0.0)    # 0: the last weights
    assert torch.equal(raw.weight.detach(), seen[-1][0])
    for bad, match in ((1.0, "ema_decay must be below 1"), (-0.1, "ema_decay must be >= 0"),
                       ("0.9", "ema_decay")):
        with pytest.raises((ValueError, TypeError), match=match):
            fit(nn.Linear(4, 1), _mse, (x, y), steps=1, ema_decay=bad)
