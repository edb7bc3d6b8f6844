"""Skip the rest of a notebook cleanly, when something it needs is missing on this machine.

    ok, reason = speech_available()
    if not ok:
        skip_rest_of_notebook(reason)     # one line; every later cell then runs nothing

The skip registers an IPython input transformer that turns each later cell's source into ``pass``:
no error, no traceback, and "Run all" (or nbval) goes through to the end. Outside IPython it only
prints the line. :func:`resume_notebook` undoes it (for a kernel where the problem was fixed).
"""
from __future__ import annotations

__all__ = ["skip_rest_of_notebook", "resume_notebook"]


def _skip_cell(lines: list[str]) -> list[str]:
    return ["pass\n"]


def skip_rest_of_notebook(reason: str) -> bool:
    """Print ``skipping the rest of this notebook: <reason>`` and make every later cell a no-op;
    returns True if an IPython kernel was found (the cells will be skipped)."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"reason must say in one line why the notebook stops here; got {reason!r}")
    print(f"skipping the rest of this notebook: {reason.strip()}")
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    if _skip_cell not in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.append(_skip_cell)
    return True


def resume_notebook() -> None:
    """Run later cells normally again (undoes :func:`skip_rest_of_notebook`)."""
    from IPython import get_ipython
    shell = get_ipython()
    if shell is not None and _skip_cell in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(_skip_cell)
