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

nbgrader's markers are accepted too: ``### BEGIN SOLUTION`` / ``### END SOLUTION`` work exactly like
``# BEGIN SOLUTION`` / ``# END SOLUTION`` (either style may close either; the ``# HINT:`` line above
the BEGIN marker is required in both styles), so a notebook can also be graded with nbgrader or
otter-grader.

Everything else (the ``def`` line, docstring, hint, other cells, metadata, cell ids) is kept as
is; every code cell loses its outputs and execution count. (A v4.5 cell without an id gets one
derived from the notebook name and cell position, where nbformat would pick a random one.) The same input always gives the same
bytes. Malformed markers raise :class:`MarkerError`, naming the notebook and the cell; a file that
is not a v4 notebook (invalid JSON, binary data, a JSON list, no ``cells`` list, ...) raises
:class:`NotebookError`; an output folder that is a file, that holds one of the input notebooks
(``--out notebooks`` would overwrite the solution edition) or two inputs with the same name raises
:class:`OutputError`. All three are :class:`StudentEditionError` (a ``ValueError``). Every notebook
is converted before anything is written, so on any of these errors nothing is written.

Command line::

    python -m course_lib.student [--out build/student] [NOTEBOOK.ipynb ...]

(default: every ``notebooks/NN_*.ipynb``). Exit status 0 when every notebook was written; 1 with
one ``error: ...`` line on stderr for a malformed notebook or an unusable ``--out``; 2 for a
notebook that does not exist (and argparse's usage errors).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from pathlib import Path

import nbformat

__all__ = ["StudentEditionError", "MarkerError", "NotebookError", "OutputError", "EXERCISE_TAG", "is_exercise", "stub_source", "make_student_notebook",
           "student_bytes", "write_student_edition", "exercise_cells", "first_check_cell", "main"]

EXERCISE_TAG = "exercise"
BEGIN, END, HINT = "# BEGIN SOLUTION", "# END SOLUTION", "# HINT:"
NBGRADER_BEGIN, NBGRADER_END = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_MARKERS, END_MARKERS = (BEGIN, NBGRADER_BEGIN), (END, NBGRADER_END)


class StudentEditionError(ValueError):
    """Anything that stops the student edition from being written; the message says what and where."""


class MarkerError(StudentEditionError):
    """Exercise markers that cannot be turned into a stub; the message names notebook and cell."""


class NotebookError(StudentEditionError):
    """A file that is not a v4 Jupyter notebook; the message names the file and what is wrong."""


class OutputError(StudentEditionError):
    """An output folder that cannot be used (a file, or one that would overwrite an input)."""


def is_exercise(cell) -> bool:
    """True for a code cell tagged ``exercise``."""
    return cell.get("cell_type") == "code" and EXERCISE_TAG in (cell.get("metadata", {}).get("tags") or [])


def _has_markers(source: str) -> bool:
    return any(line.strip() in BEGIN_MARKERS + END_MARKERS for line in source.splitlines())


def _partner(marker: str) -> str:
    """The marker of the same style that pairs with ``marker`` (``# BEGIN..`` <-> ``# END..``)."""
    return marker.replace("BEGIN", "END") if "BEGIN" in marker else marker.replace("END", "BEGIN")


def stub_source(source: str, where: str = "cell") -> str:
    """Replace each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block of ``source`` with a stub
    (nbgrader's ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` likewise).

    ``where`` names the cell in error messages, e.g. ``"01_autoencoders.ipynb, cell 12"``.
    Raises :class:`MarkerError` for a BEGIN without END, an END without BEGIN, nested BEGINs,
    a BEGIN without a ``# HINT: ...`` line just above it, an empty hint, or no markers at all.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a string (a cell's source); got {type(source).__name__}")
    lines = source.split("\n")
    out: list[str] = []
    blocks, i = 0, 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped in END_MARKERS:
            raise MarkerError(f"{where}: line {i + 1} has '{stripped}' without a '{_partner(stripped)}' before it")
        if stripped not in BEGIN_MARKERS:
            out.append(line)
            i += 1
            continue
        hint_line = lines[i - 1].strip() if i > 0 else ""
        if not hint_line.startswith(HINT):
            raise MarkerError(f"{where}: line {i + 1} '{stripped}' must come right after a one-line "
                              f"'{HINT} <hint>' comment; the line before it is {hint_line!r}")
        hint = hint_line[len(HINT):].strip()
        if not hint:
            raise MarkerError(f"{where}: the '{HINT}' line before line {i + 1} is empty; write the hint after it")
        for j in range(i + 1, len(lines)):
            inner = lines[j].strip()
            if inner in BEGIN_MARKERS:
                raise MarkerError(f"{where}: line {j + 1} opens a second '{inner}' before the one on "
                                  f"line {i + 1} is closed with '{_partner(stripped)}'")
            if inner in END_MARKERS:
                break
        else:
            raise MarkerError(f"{where}: line {i + 1} has '{stripped}' without a matching '{_partner(stripped)}'")
        indent = line[: len(line) - len(line.lstrip())]
        out.append(f"{indent}raise NotImplementedError({json.dumps(hint, ensure_ascii=False)})")
        blocks += 1
        i = j + 1
    if blocks == 0:
        raise MarkerError(f"{where}: tagged '{EXERCISE_TAG}' but has no '{BEGIN}' / '{END}' markers "
                          f"(or nbgrader's '{NBGRADER_BEGIN}' / '{NBGRADER_END}')")
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


def _check_notebook_json(data, name: str) -> None:
    """The parsed JSON of a v4 notebook: a dict with ``nbformat`` 4 and a list of cell dicts."""
    def bad(problem: str):
        return NotebookError(f"{name}: not a Jupyter notebook ({problem})")
    if not isinstance(data, dict):
        raise bad(f"expected a JSON object with 'cells', 'metadata', 'nbformat'; got a JSON {type(data).__name__}")
    if "cells" not in data:
        raise bad("no 'cells' list" + ("; nbformat 3 notebooks keep cells in 'worksheets': open and save it "
                                       "in Jupyter to convert it to version 4" if "worksheets" in data else ""))
    if not isinstance(data["cells"], list):
        raise bad(f"'cells' must be a list; got a JSON {type(data['cells']).__name__}")
    if not isinstance(data.get("metadata", {}), dict):
        raise bad("'metadata' must be an object")
    version = data.get("nbformat")
    if isinstance(version, bool) or not isinstance(version, int) or version != 4:
        raise bad(f"expected 'nbformat': 4; got {version!r}")
    for index, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict):
            raise bad(f"cell {index} must be an object; got a JSON {type(cell).__name__}")
        if cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise bad(f"cell {index} has cell_type {cell.get('cell_type')!r}; expected 'code', 'markdown' or 'raw'")
        if "source" not in cell:
            raise bad(f"cell {index} has no 'source'")
        source = cell["source"]
        if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
            raise bad(f"cell {index} source must be a string or a list of strings; got a JSON {type(source).__name__}")
        metadata = cell.get("metadata", {})
        if not isinstance(metadata, dict):
            raise bad(f"cell {index} metadata must be an object; got a JSON {type(metadata).__name__}")
        tags = metadata.get("tags", [])
        if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise bad(f"cell {index} metadata.tags must be a list of strings; got {tags!r:.60}")


def student_bytes(path) -> bytes:
    """The student edition of the notebook at ``path``, as the bytes to write (deterministic).

    Raises :class:`NotebookError` for a file that is not a v4 notebook, :class:`MarkerError` for
    malformed exercise markers, ``OSError`` for a file that cannot be read.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotebookError(f"{path.name}: not a Jupyter notebook (not UTF-8 text; binary data?)") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise NotebookError(f"{path.name}: not a Jupyter notebook (invalid JSON: {err})") from None
    _check_notebook_json(data, path.name)
    # nbformat.v4.reads does not validate, so it cannot invent random ids for cells missing one
    try:
        nb = nbformat.v4.reads(text)
    except Exception as err:  # nbformat's own complaints, whatever their type
        raise NotebookError(f"{path.name}: not a Jupyter notebook ({type(err).__name__}: {err})") from None
    student = make_student_notebook(nb, path.name)
    try:
        nbformat.validate(student)
    except nbformat.ValidationError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise NotebookError(f"{path.name}: not a valid notebook ({first})") from None
    text = nbformat.writes(student)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


def _check_output(paths: list[Path], out_dir: Path) -> None:
    """Refuse an output folder that is a file, holds an input, or would get two files of one name."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"the output folder {out_dir} is an existing file, not a folder; choose a folder")
    out = out_dir.resolve()
    names: dict[str, Path] = {}
    for p in paths:
        src = p.resolve()
        if out == src or out in src.parents:
            raise OutputError(f"the output folder {out_dir} contains the input notebook {p}: writing there could "
                              "overwrite the solution edition; choose another folder (default: build/student)")
        target = out_dir / p.name
        if target.exists() and target.samefile(p):
            raise OutputError(f"the output {target} is the input notebook {p} itself; choose another folder")
        if p.name in names and names[p.name].resolve() != src:
            raise OutputError(f"two input notebooks are named {p.name} ({names[p.name]} and {p}); both would be "
                              f"written to {target}")
        names[p.name] = p


def write_student_edition(paths, out_dir) -> list[Path]:
    """Write the student edition of each notebook in ``paths`` into ``out_dir``; return the new paths.

    Nothing is written when any notebook is malformed (all are converted first) or when ``out_dir``
    cannot be used (:class:`OutputError`: a file, a folder holding an input notebook, two inputs
    with one name). A notebook is never written over itself.
    """
    from .artifacts import atomic_write_bytes
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    out_dir = Path(out_dir)
    _check_output(paths, out_dir)
    converted = [(p.name, student_bytes(p)) for p in paths]
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
    folders = [str(p) for p in paths if p.is_dir()]
    if folders:
        print(f"error: a notebook must be an .ipynb file; got the folder {', '.join(folders)} "
              f"(to convert every notebook in it, list them: {folders[0]}/*.ipynb)", file=sys.stderr)
        return 1
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
    except StudentEditionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # unreadable notebook, unwritable folder, disk full
        print(f"error: {err.strerror or err}" + (f": {err.filename}" if err.filename else ""), file=sys.stderr)
        return 1
    for path in written:
        n = len(exercise_cells(nbformat.read(path, as_version=4)))
        print(f"{path.name}: {n} exercise{'s' if n != 1 else ''} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
