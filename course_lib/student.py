"""The student edition: every exercise's solution replaced by a stub, outputs stripped.

The notebooks in ``notebooks/`` are the solution edition. An exercise is a code cell tagged
``exercise`` (``cell.metadata.tags``) whose solution sits between two marker lines, with a one-line
hint just above::

    def reparameterize(mu, logvar):
        \"\"\"mu, logvar: (B, D) -> z: (B, D)\"\"\"
        # HINT: z = mu + sigma * eps with sigma = exp(logvar / 2) and eps ~ N(0, I)
        # BEGIN SOLUTION
        eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * logvar) * eps
        # END SOLUTION

In the student edition the lines from ``# BEGIN SOLUTION`` to ``# END SOLUTION`` (both included)
become one line, at the indentation of ``# BEGIN SOLUTION``::

        raise NotImplementedError("z = mu + sigma * eps with sigma = exp(logvar / 2) and eps ~ N(0, I)")

Everything else (the ``def`` line, docstring, hint, other cells, metadata, cell ids) is kept as
is; every code cell loses its outputs and execution count. (A v4.5 cell without an id gets one
derived from the notebook name and cell position, where nbformat would pick a random one.) The same input always gives the same
bytes. Malformed markers raise :class:`MarkerError`, naming the notebook and the cell.

Command line::

    python -m course_lib.student [--out build/student] [NOTEBOOK.ipynb ...]

(default: every ``notebooks/NN_*.ipynb``).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from pathlib import Path

import nbformat

__all__ = ["MarkerError", "EXERCISE_TAG", "is_exercise", "stub_source", "make_student_notebook",
           "student_bytes", "write_student_edition", "exercise_cells", "first_check_cell", "main"]

EXERCISE_TAG = "exercise"
BEGIN, END, HINT = "# BEGIN SOLUTION", "# END SOLUTION", "# HINT:"


class MarkerError(ValueError):
    """Exercise markers that cannot be turned into a stub; the message names notebook and cell."""


def is_exercise(cell) -> bool:
    """True for a code cell tagged ``exercise``."""
    return cell.get("cell_type") == "code" and EXERCISE_TAG in (cell.get("metadata", {}).get("tags") or [])


def _has_markers(source: str) -> bool:
    return any(line.strip() in (BEGIN, END) for line in source.splitlines())


def stub_source(source: str, where: str = "cell") -> str:
    """Replace each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block of ``source`` with a stub.

    ``where`` names the cell in error messages, e.g. ``"01_autoencoders.ipynb, cell 12"``.
    Raises :class:`MarkerError` for a BEGIN without END, an END without BEGIN, nested BEGINs,
    a BEGIN without a ``# HINT: ...`` line just above it, an empty hint, or no markers at all.
    """
    lines = source.split("\n")
    out: list[str] = []
    blocks, i = 0, 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped == END:
            raise MarkerError(f"{where}: line {i + 1} has '{END}' without a '{BEGIN}' before it")
        if stripped != BEGIN:
            out.append(line)
            i += 1
            continue
        hint_line = lines[i - 1].strip() if i > 0 else ""
        if not hint_line.startswith(HINT):
            raise MarkerError(f"{where}: line {i + 1} '{BEGIN}' must come right after a one-line "
                              f"'{HINT} <hint>' comment; the line before it is {hint_line!r}")
        hint = hint_line[len(HINT):].strip()
        if not hint:
            raise MarkerError(f"{where}: the '{HINT}' line before line {i + 1} is empty; write the hint after it")
        for j in range(i + 1, len(lines)):
            inner = lines[j].strip()
            if inner == BEGIN:
                raise MarkerError(f"{where}: line {j + 1} opens a second '{BEGIN}' before the one on "
                                  f"line {i + 1} is closed with '{END}'")
            if inner == END:
                break
        else:
            raise MarkerError(f"{where}: line {i + 1} has '{BEGIN}' without a matching '{END}'")
        indent = line[: len(line) - len(line.lstrip())]
        out.append(f"{indent}raise NotImplementedError({json.dumps(hint, ensure_ascii=False)})")
        blocks += 1
        i = j + 1
    if blocks == 0:
        raise MarkerError(f"{where}: tagged '{EXERCISE_TAG}' but has no '{BEGIN}' / '{END}' markers")
    return "\n".join(out)


def _where(name: str, index: int, cell) -> str:
    cid = cell.get("id")
    return f"{name}, cell {index}" + (f" (id {cid})" if cid else "")


def make_student_notebook(nb, name: str = "notebook"):
    """Return a copy of ``nb`` (a ``nbformat`` v4 notebook) as the student edition.

    ``name`` is used in error messages. Raises :class:`MarkerError` on malformed markers,
    including solution markers in a code cell that is not tagged ``exercise`` (it would leak;
    markdown may show the markers, e.g. to explain the convention).
    """
    if not isinstance(nb, dict) or "cells" not in nb:
        raise TypeError(f"nb must be a notebook (nbformat NotebookNode); got {type(nb).__name__}")
    student = copy.deepcopy(nb)
    needs_ids = (student.get("nbformat"), student.get("nbformat_minor", 0)) >= (4, 5)
    for index, cell in enumerate(student.cells):
        if needs_ids and not cell.get("id"):
            # nbformat would invent a random id on writing: derive a stable one instead
            cell["id"] = hashlib.sha256(f"{name}:{index}".encode()).hexdigest()[:8]
        where = _where(name, index, cell)
        if is_exercise(cell):
            cell.source = stub_source(cell.source, where)
        elif cell.cell_type == "code" and _has_markers(cell.get("source", "")):
            raise MarkerError(f"{where}: has solution markers but is not tagged '{EXERCISE_TAG}' "
                              f"(add the tag to cell.metadata.tags, or remove the markers)")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return student


def student_bytes(path) -> bytes:
    """The student edition of the notebook at ``path``, as the bytes to write (deterministic)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        version = json.loads(text).get("nbformat")
    except ValueError as err:
        raise MarkerError(f"{path.name}: not a notebook (invalid JSON: {err})") from None
    # nbformat.v4.reads does not validate, so it cannot invent random ids for cells missing one
    nb = nbformat.v4.reads(text) if version == 4 else nbformat.reads(text, as_version=4)
    student = make_student_notebook(nb, path.name)
    text = nbformat.writes(student)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


def write_student_edition(paths, out_dir) -> list[Path]:
    """Write the student edition of each notebook in ``paths`` into ``out_dir``; return the new paths.

    Nothing is written when any notebook has malformed markers (all are converted first).
    """
    from .artifacts import atomic_write_bytes
    out_dir = Path(out_dir)
    converted = [(Path(p).name, student_bytes(p)) for p in paths]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in converted:
        target = out_dir / name
        atomic_write_bytes(target, data)
        written.append(target)
    return written


def exercise_cells(nb) -> list[int]:
    """Indices of the exercise cells of ``nb``."""
    return [i for i, cell in enumerate(nb.cells) if is_exercise(cell)]


def first_check_cell(nb) -> int | None:
    """Index of the check cell of the first exercise: the next code cell after it (None if none)."""
    exercises = exercise_cells(nb)
    if not exercises:
        return None
    for i in range(exercises[0] + 1, len(nb.cells)):
        if nb.cells[i].cell_type == "code":
            return i
    return None


def default_notebooks(root: Path | None = None) -> list[Path]:
    from .paths import repo_root
    return sorted(((root or repo_root()) / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.student",
                                     description="Write the student edition of the course notebooks: "
                                                 "exercise solutions become NotImplementedError stubs, outputs are stripped.")
    parser.add_argument("--out", default=None, help="output folder (default: build/student)")
    parser.add_argument("notebooks", nargs="*", help="notebooks to convert (default: notebooks/NN_*.ipynb)")
    args = parser.parse_args(argv)
    from .paths import build_dir
    paths = [Path(p) for p in args.notebooks] or default_notebooks()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    if not paths:
        print("error: no notebooks found in notebooks/", file=sys.stderr)
        return 2
    out_dir = Path(args.out) if args.out else build_dir() / "student"
    try:
        written = write_student_edition(paths, out_dir)
    except MarkerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in written:
        n = len(exercise_cells(nbformat.read(path, as_version=4)))
        print(f"{path.name}: {n} exercise{'s' if n != 1 else ''} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
