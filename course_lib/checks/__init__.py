"""Exercise checks: friendly, specific feedback instead of a stack trace.

A check is a function decorated with :func:`exercise_check`. Inside it, the ``expect_*``
helpers compare the learner's result with the right one. The decorator turns what happens into
one short message:

* success: ``[ok] <title>: <detail>``
* the learner's function still raises ``NotImplementedError`` (the student stub):
  ``[todo] <title>: not yet implemented ...``
* a wrong answer: ``[wrong] <title>: <which case, expected vs got, hint>``
* the learner's code crashed: ``[error] <title>: your code raised <Type>: <message>``

Anything but success raises :class:`ExerciseError`, so "Run all" stops at the first exercise
still to do and nbval fails on a wrong solution. In Jupyter, IPython shows only the message
(``_render_traceback_``), never a raw traceback.
"""
from __future__ import annotations

import functools
import traceback

import torch

__all__ = ["CheckFailed", "ExerciseError", "exercise_check", "expect", "expect_close", "expect_shape"]


class CheckFailed(AssertionError):
    """Raised by ``expect_*`` inside a check: a wrong answer, with a human message."""


class ExerciseError(Exception):
    """What a failed check raises; IPython renders just its message."""

    def __init__(self, message: str, status: str):
        super().__init__(message)
        self.status = status

    def _render_traceback_(self):  # IPython hook: show the message, not the stack
        return [str(self)]


def expect(condition: bool, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def expect_shape(name: str, got, want: tuple) -> None:
    """``got`` must be a tensor of shape ``want``."""
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{name} should be a torch.Tensor of shape {tuple(want)}, but it is a {type(got).__name__}")
    if tuple(got.shape) != tuple(want):
        raise CheckFailed(f"{name} should have shape {tuple(want)}, but it has shape {tuple(got.shape)}")


def _starts(t: torch.Tensor, n: int = 3) -> str:
    """The first ``n`` entries, 4 significant digits: ``[0.1642, 0.1758, 0.1582, ...]``."""
    flat = t.flatten()
    items = ", ".join(f"{v:.4g}" for v in flat[:n].tolist())
    return f"[{items}{', ...' if flat.numel() > n else ''}]"


def expect_close(name: str, got, want, *, atol: float = 1e-5, rtol: float = 1e-4, hint: str = "") -> None:
    """``got`` must equal ``want`` (tensors or numbers) within tolerance; the message shows both."""
    want_t = torch.as_tensor(want, dtype=torch.float64)
    if isinstance(got, torch.Tensor):
        got_t = got.detach().to(torch.float64).cpu()
    else:
        try:
            got_t = torch.as_tensor(got, dtype=torch.float64)
        except Exception:
            raise CheckFailed(f"{name} should be a number or tensor, but it is a {type(got).__name__}") from None
    if got_t.shape != want_t.shape:
        raise CheckFailed(f"{name} should have shape {tuple(want_t.shape)}, but it has shape {tuple(got_t.shape)}")
    if not torch.allclose(got_t, want_t.cpu(), atol=atol, rtol=rtol):
        err = (got_t - want_t.cpu()).abs().max().item()
        if got_t.numel() == 1:
            detail = f"expected {want_t.item():.6g}, got {got_t.item():.6g}"
        else:
            detail = (f"largest difference {err:.3g}; expected starts {_starts(want_t)}, "
                      f"got starts {_starts(got_t)}")
        raise CheckFailed(f"{name} is off: {detail}." + (f" Hint: {hint}" if hint else ""))


def _where(err: BaseException) -> str:
    """`` (line N: `code`)`` for the deepest frame in the learner's code, if it can be told."""
    frames = traceback.extract_tb(err.__traceback__)
    here = __file__.rsplit(".", 1)[0]
    skip = ("site-packages", "dist-packages", "/course_lib/", "<frozen")
    mine = [f for f in frames if not f.filename.startswith(here) and not any(s in f.filename for s in skip)]
    frame = (mine or frames[-1:] or [None])[-1]
    if frame is None or not frame.line:
        return ""
    return f" (line {frame.lineno}: `{frame.line.strip()}`)"


def exercise_check(title: str):
    """Decorate a check function ``check(learner_fn, ...) -> str | None`` (the success detail).

    The decorated check prints ``[ok] <title>: <detail>`` and returns True, or raises
    :class:`ExerciseError` whose message (shown without a traceback in Jupyter) starts with
    ``[todo]`` (a stub raising ``NotImplementedError``), ``[wrong]`` (an ``expect_*`` failed) or
    ``[error]`` (the learner's code raised something else).
    """

    def wrap(check):
        @functools.wraps(check)
        def run(*args, **kwargs):
            try:
                detail = check(*args, **kwargs)
            except ExerciseError:
                raise
            except NotImplementedError as err:
                hint = str(err).strip()
                msg = (f"[todo] {title}: not yet implemented. Replace the `raise NotImplementedError` "
                       f"in the exercise cell with your code" + (f" (hint: {hint})" if hint else "")
                       + ", run that cell, then run this check again.")
                raise ExerciseError(msg, "todo") from None
            except CheckFailed as err:
                raise ExerciseError(f"[wrong] {title}: {err}", "wrong") from None
            except Exception as err:  # the learner's code crashed: say where, briefly
                msg = f"[error] {title}: your code raised {type(err).__name__}: {err}{_where(err)}"
                raise ExerciseError(msg, "error") from None
            msg = f"[ok] {title}" + (f": {detail}" if detail else "")
            print(msg)
            return True

        run.title = title
        return run

    return wrap
