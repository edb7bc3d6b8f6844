"""The student edition: generated for every notebook, valid, reproducible, free of solutions, and
its first exercise check says "not yet implemented" when executed.

A small synthetic notebook tests the generator itself, so these tests mean something whatever the
real notebooks hold; the real notebooks are then checked one by one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_lib.student import (BEGIN, BEGIN_MARKERS, END, END_MARKERS, MarkerError, NotebookError, OutputError,
                                StudentEditionError, exercise_cells, first_check_cell, make_student_notebook,
                                student_bytes, write_student_edition)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WITH_EXERCISES = [p for p in NOTEBOOKS if exercise_cells(nbformat.read(p, as_version=4))]
# Read before conftest points COURSE_DATA_DIR at a temporary folder: the real notebooks share the
# course's artifact cache (trained tokenizer, judge classifier) with the nbval run, as a learner would.
COURSE_DATA_DIR = os.environ.get("COURSE_DATA_DIR")

SQUARE_SOLUTION = '''import torch

def square(x):
    """x: (N,) -> (N,), every entry squared"""
    # HINT: multiply x by itself, entry by entry
    # BEGIN SOLUTION
    y = x * x
    return y
    # END SOLUTION
'''

TWO_BLOCKS = '''class Scale:
    def __init__(self, k):
        # HINT: keep k as self.k
        # BEGIN SOLUTION
        self.k = k
        # END SOLUTION

    def __call__(self, x):
        # HINT: return "k times x" (note the \\"quotes\\")
        # BEGIN SOLUTION
        return self.k * x
        # END SOLUTION'''

CHECK = '''from course_lib.checks import exercise_check, expect_close

@exercise_check("square")
def check_square(fn):
    x = torch.tensor([1.0, -2.0, 3.0])
    expect_close("square([1, -2, 3])", fn(x), x ** 2, hint="multiply, do not double")
    return "3 entries match"

check_square(square)'''


def _tagged(source: str):
    cell = new_code_cell(source)
    cell.metadata["tags"] = ["exercise"]
    return cell


def synthetic_notebook():
    """Markdown, a setup cell with an output, two exercise cells and their checks."""
    setup = new_code_cell("value = 41 + 1\nprint(value)", execution_count=1,
                          outputs=[nbformat.v4.new_output("stream", name="stdout", text="42\n")])
    setup.metadata["tags"] = ["setup"]
    cells = [new_markdown_cell("# Synthetic lesson\nExercises look like this:\n```python\n# HINT: h\n"
                               "# BEGIN SOLUTION\n...\n# END SOLUTION\n```"),
             setup, _tagged(SQUARE_SOLUTION), new_code_cell(CHECK), _tagged(TWO_BLOCKS),
             new_code_cell("assert Scale(3)(2) == 6")]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    for i, cell in enumerate(nb.cells):  # fixed ids: the fixture itself must be reproducible
        cell.id = f"cell-{i}"
    return nb


@pytest.fixture
def synthetic(tmp_path):
    path = tmp_path / "src" / "07_synthetic.ipynb"
    path.parent.mkdir()
    nbformat.write(synthetic_notebook(), path)
    return path


def _solution_lines(nb) -> list[str]:
    """The non-blank lines strictly between BEGIN and END markers in exercise cells."""
    lines = []
    for i in exercise_cells(nb):
        inside = False
        for line in nb.cells[i].source.splitlines():
            if line.strip() in BEGIN_MARKERS:
                inside = True
            elif line.strip() in END_MARKERS:
                inside = False
            elif inside and line.strip():
                lines.append(line)
    return lines


def _outside_markers(source: str) -> list[str]:
    """The lines of ``source`` outside BEGIN..END blocks (markers included in the block)."""
    kept, inside = [], False
    for line in source.splitlines():
        if line.strip() in BEGIN_MARKERS:
            inside = True
        elif line.strip() in END_MARKERS:
            inside = False
        elif not inside:
            kept.append(line)
    return kept


# ---------------------------------------------------------------- the generator on the fixture

def test_stub_keeps_def_docstring_hint_and_indentation(synthetic):
    student = nbformat.reads(student_bytes(synthetic).decode(), as_version=4)
    assert student.cells[2].source == '''import torch

def square(x):
    """x: (N,) -> (N,), every entry squared"""
    # HINT: multiply x by itself, entry by entry
    raise NotImplementedError("multiply x by itself, entry by entry")
'''
    assert student.cells[4].source == '''class Scale:
    def __init__(self, k):
        # HINT: keep k as self.k
        raise NotImplementedError("keep k as self.k")

    def __call__(self, x):
        # HINT: return "k times x" (note the \\"quotes\\")
        raise NotImplementedError("return \\"k times x\\" (note the \\\\\\"quotes\\\\\\")")'''
    compile(student.cells[4].source, "cell", "exec")  # the escaped hint is valid Python


def test_everything_else_unchanged_and_outputs_stripped(synthetic):
    source = nbformat.read(synthetic, as_version=4)
    student = nbformat.reads(student_bytes(synthetic).decode(), as_version=4)
    assert student.metadata == source.metadata
    assert len(student.cells) == len(source.cells)
    for i, (a, b) in enumerate(zip(source.cells, student.cells)):
        assert (a.id, a.cell_type, a.metadata) == (b.id, b.cell_type, b.metadata)
        if i not in (2, 4):
            assert a.source == b.source
        if b.cell_type == "code":
            assert b.outputs == [] and b.execution_count is None
    assert source.cells[1].outputs, "the fixture had an output to strip"


def test_valid_reproducible_and_without_solution_text(synthetic, tmp_path):
    first = write_student_edition([synthetic], tmp_path / "a")[0]
    second = write_student_edition([synthetic], tmp_path / "b")[0]
    assert first.read_bytes() == second.read_bytes()
    nbformat.validate(nbformat.read(first, as_version=4))
    solution = _solution_lines(nbformat.read(synthetic, as_version=4))
    assert solution == ["    y = x * x", "    return y", "        self.k = k", "        return self.k * x"]
    student = nbformat.read(first, as_version=4)
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    for line in solution:
        assert line.strip() not in code
    assert BEGIN not in code and END not in code
    assert BEGIN in student.cells[0].source, "markdown showing the markers is left alone"


def test_cells_without_ids_get_stable_ids(tmp_path):
    nb = synthetic_notebook()
    for cell in nb.cells:
        del cell["id"]
    path = tmp_path / "07_synthetic.ipynb"
    path.write_text(json.dumps(nb))  # as an older tool would write it: v4.5 without cell ids
    assert student_bytes(path) == student_bytes(path)
    ids = [c.id for c in nbformat.reads(student_bytes(path).decode(), as_version=4).cells]
    assert len(set(ids)) == len(ids) == 6


@pytest.mark.parametrize("source, problem", [
    ("def f():\n    # HINT: h\n    # BEGIN SOLUTION\n    return 1\n", "line 3 has '# BEGIN SOLUTION' without a matching '# END SOLUTION'"),
    ("def f():\n    return 1\n    # END SOLUTION\n", "line 3 has '# END SOLUTION' without a '# BEGIN SOLUTION' before it"),
    ("def f():\n    return 1\n", "tagged 'exercise' but has no '# BEGIN SOLUTION' / '# END SOLUTION' markers"),
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n", "must come right after a one-line '# HINT: <hint>'"),
    ("def f():\n    # HINT:\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n", "the '# HINT:' line before line 3 is empty"),
    ("# HINT: h\n# BEGIN SOLUTION\n# HINT: g\n# BEGIN SOLUTION\n# END SOLUTION\n", "line 4 opens a second '# BEGIN SOLUTION'"),
    # nbgrader's marker style
    ("def f():\n    # HINT: h\n    ### BEGIN SOLUTION\n    return 1\n",
     "line 3 has '### BEGIN SOLUTION' without a matching '### END SOLUTION'"),
    ("def f():\n    return 1\n    ### END SOLUTION\n",
     "line 3 has '### END SOLUTION' without a '### BEGIN SOLUTION' before it"),
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n",
     "line 2 '### BEGIN SOLUTION' must come right after a one-line '# HINT: <hint>'"),
    ("# HINT: h\n### BEGIN SOLUTION\n# HINT: g\n# BEGIN SOLUTION\n# END SOLUTION\n",
     "line 4 opens a second '# BEGIN SOLUTION' before the one on line 2 is closed with '### END SOLUTION'"),
])
def test_malformed_markers_name_notebook_and_cell(source, problem):
    nb = synthetic_notebook()
    nb.cells[4] = _tagged(source)
    nb.cells[4].id = "broken"
    with pytest.raises(MarkerError) as info:
        make_student_notebook(nb, "07_synthetic.ipynb")
    assert str(info.value).startswith("07_synthetic.ipynb, cell 4 (id broken): ")
    assert problem in str(info.value)


def test_markers_in_an_untagged_cell_are_an_error_not_a_leak():
    nb = synthetic_notebook()
    nb.cells[2].metadata["tags"] = []
    with pytest.raises(MarkerError, match=r"07_synthetic.ipynb, cell 2 \(id cell-2\): has solution markers but is not tagged 'exercise'"):
        make_student_notebook(nb, "07_synthetic.ipynb")


def test_command_line(synthetic, tmp_path):
    out = tmp_path / "student"
    done = subprocess.run([sys.executable, "-m", "course_lib.student", "--out", str(out), str(synthetic)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"07_synthetic.ipynb: 2 exercises -> {out / '07_synthetic.ipynb'}"
    assert (out / "07_synthetic.ipynb").read_bytes() == student_bytes(synthetic)

    nb = nbformat.read(synthetic, as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("    # END SOLUTION\n", "")
    nbformat.write(nb, synthetic)
    done = subprocess.run([sys.executable, "-m", "course_lib.student", "--out", str(tmp_path / "bad"), str(synthetic)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: 07_synthetic.ipynb, cell 2 (id cell-2): line 6 has '# BEGIN SOLUTION' "
                                   "without a matching '# END SOLUTION'")
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------- nbgrader's markers

NBGRADER_SQUARE = SQUARE_SOLUTION.replace("# BEGIN SOLUTION", "### BEGIN SOLUTION").replace(
    "# END SOLUTION", "### END SOLUTION")


def test_nbgrader_markers_give_the_same_stub():
    assert "### BEGIN SOLUTION" in NBGRADER_SQUARE and "### END SOLUTION" in NBGRADER_SQUARE
    nb = synthetic_notebook()
    ours = make_student_notebook(nb, "07_synthetic.ipynb").cells[2].source
    nb.cells[2].source = NBGRADER_SQUARE
    theirs = make_student_notebook(nb, "07_synthetic.ipynb").cells[2].source
    assert theirs == ours
    assert "raise NotImplementedError(\"multiply x by itself, entry by entry\")" in theirs
    assert "y = x * x" not in theirs and "SOLUTION" not in theirs


def test_both_marker_styles_in_one_notebook_and_cell(synthetic, tmp_path):
    nb = nbformat.read(synthetic, as_version=4)
    nb.cells[2].source = NBGRADER_SQUARE  # cell 2 nbgrader style, cell 4 keeps '# BEGIN SOLUTION'
    mixed = ("def f(x):\n    # HINT: one\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n\n"
             "def g(x):\n    # HINT: two\n    # BEGIN SOLUTION\n    return 2\n    # END SOLUTION\n")
    nb.cells.append(_tagged(mixed))
    nb.cells[-1].id = "mixed"
    nbformat.write(nb, synthetic)
    student = nbformat.read(write_student_edition([synthetic], tmp_path / "out")[0], as_version=4)
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    assert "SOLUTION" not in code
    assert student.cells[-1].source == ('def f(x):\n    # HINT: one\n    raise NotImplementedError("one")\n\n'
                                        'def g(x):\n    # HINT: two\n    raise NotImplementedError("two")\n')
    for line in _solution_lines(nbformat.read(synthetic, as_version=4)):
        assert line not in code


def test_nbgrader_markers_in_an_untagged_cell_are_an_error():
    nb = synthetic_notebook()
    nb.cells[2].source = NBGRADER_SQUARE
    nb.cells[2].metadata["tags"] = []
    with pytest.raises(MarkerError, match="has solution markers but is not tagged 'exercise'"):
        make_student_notebook(nb, "07_synthetic.ipynb")


# ---------------------------------------------------------------- bad input to the command line

def _cli(*args, cwd=ROOT):
    """The real command line in a subprocess (slow: a fresh interpreter imports torch)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "course_lib.student", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env)


@pytest.fixture
def cli(capsys, monkeypatch):
    """The command line's ``main`` in this process: (returncode, stdout, stderr) like subprocess.run."""
    from course_lib.student import main
    monkeypatch.chdir(ROOT)

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)
    return run


def _one_error_line(done, *words):
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_cli_refuses_to_write_over_its_input(synthetic, cli):
    before = synthetic.read_bytes()
    done = _cli("--out", synthetic.parent, synthetic)  # the reproduction, as a real process
    _one_error_line(done, "contains the input notebook", synthetic.name, "choose another folder")
    assert synthetic.read_bytes() == before, "the solution edition must survive"
    # the same folder spelled differently, and a folder above the input
    done = cli("--out", synthetic.parent / ".." / synthetic.parent.name, synthetic)
    _one_error_line(done, "contains the input notebook")
    done = cli("--out", synthetic.parent.parent, synthetic)
    _one_error_line(done, "contains the input notebook")
    assert synthetic.read_bytes() == before
    assert sorted(p.name for p in synthetic.parent.iterdir()) == [synthetic.name]


def test_cli_refuses_the_notebooks_folder(cli):
    if not NOTEBOOKS:
        pytest.skip("no notebooks in notebooks/ yet")
    before = {p: p.read_bytes() for p in NOTEBOOKS}
    _one_error_line(cli("--out", "notebooks"), "contains the input notebook", "choose another folder")
    _one_error_line(cli("--out", ROOT / "notebooks", NOTEBOOKS[0]), "contains the input notebook")
    assert {p: p.read_bytes() for p in NOTEBOOKS} == before


def test_write_student_edition_refuses_its_input_folder(synthetic):
    before = synthetic.read_bytes()
    with pytest.raises(OutputError, match="contains the input notebook"):
        write_student_edition([synthetic], synthetic.parent)
    assert synthetic.read_bytes() == before


def test_two_inputs_with_one_name_are_refused(synthetic, tmp_path, cli):
    other = tmp_path / "other" / synthetic.name
    other.parent.mkdir()
    other.write_bytes(synthetic.read_bytes())
    _one_error_line(cli("--out", tmp_path / "out", synthetic, other), "two input notebooks are named", synthetic.name)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, words", [
    (b"[1, 2, 3]", ["bad.ipynb", "not a Jupyter notebook", "got a JSON list"]),
    (b"{}", ["bad.ipynb", "no 'cells' list"]),
    (b'{"cells": 3, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', ["'cells' must be a list", "got a JSON int"]),
    (b'{"cells": [], "metadata": {}, "nbformat": 3, "nbformat_minor": 0}', ["expected 'nbformat': 4", "got 3"]),
    (b'{"worksheets": [], "metadata": {}, "nbformat": 3}', ["no 'cells' list", "worksheets"]),
    (b'{"cells": [7], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', ["cell 0 must be an object"]),
    (b'{"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', ["cell 0 has no 'source'"]),
    (b'{"cells": [{"cell_type": "movie", "source": ""}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
     ["cell 0 has cell_type 'movie'"]),
    (b'{"cells": [{"cell_type": "code", "source": 5}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
     ["cell 0 source must be a string or a list of strings"]),
    (b'{"cells": [{"cell_type": "code", "source": "", "metadata": {"tags": "exercise"}}], "metadata": {}, '
     b'"nbformat": 4, "nbformat_minor": 5}', ["cell 0 metadata.tags must be a list of strings"]),
    (b'{"cells": [], "metadata": [], "nbformat": 4, "nbformat_minor": 5}', ["'metadata' must be an object"]),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", ["not UTF-8 text"]),
    (b'{"cells": [', ["invalid JSON"]),
    (b"", ["invalid JSON"]),
])
def test_malformed_notebook_gives_one_error_line_and_writes_nothing(tmp_path, synthetic, cli, content, words):
    bad = tmp_path / "bad.ipynb"
    bad.write_bytes(content)
    out = tmp_path / "out"
    _one_error_line(cli("--out", out, synthetic, bad), *words)
    assert not out.exists(), "nothing is written when one notebook is malformed"
    with pytest.raises(NotebookError):
        student_bytes(bad)


def test_out_naming_an_existing_file(tmp_path, synthetic, cli):
    target = tmp_path / "student.ipynb"
    target.write_text("keep me")
    _one_error_line(cli("--out", target, synthetic), "is an existing file, not a folder", str(target))
    assert target.read_text() == "keep me"
    with pytest.raises(OutputError, match="is an existing file"):
        write_student_edition([synthetic], target)


def test_marker_error_still_one_line_and_all_errors_are_student_edition_errors(synthetic, tmp_path, cli):
    assert issubclass(MarkerError, StudentEditionError) and issubclass(NotebookError, StudentEditionError)
    assert issubclass(OutputError, StudentEditionError) and issubclass(StudentEditionError, ValueError)
    nb = nbformat.read(synthetic, as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("    # END SOLUTION\n", "")
    nbformat.write(nb, synthetic)
    _one_error_line(cli("--out", tmp_path / "out", synthetic), "line 6 has '# BEGIN SOLUTION' without a matching")
    assert not (tmp_path / "out").exists()


def test_a_folder_is_not_a_notebook(tmp_path, cli):
    _one_error_line(cli("--out", tmp_path / "out", tmp_path), "must be an .ipynb file", "got the folder", str(tmp_path))
    assert not (tmp_path / "out").exists()


def test_missing_notebook_is_a_usage_error(tmp_path, cli):
    done = cli("--out", tmp_path / "out", tmp_path / "nope.ipynb")
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: no such notebook: {tmp_path / 'nope.ipynb'}"
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- executing the student edition

def run_until_first_check(path: Path, tmp_path: Path, monkeypatch, shared_artifacts: bool = False):
    """Execute ``path`` up to and including its first exercise's check cell in a fresh kernel.

    Returns (notebook, index of the check cell). Smoke profile, tqdm quiet, build dir in tmp;
    ``shared_artifacts``: use the course's data folder (artifact cache) instead of a temporary one.
    """
    from nbclient import NotebookClient

    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    if shared_artifacts:
        if COURSE_DATA_DIR:
            monkeypatch.setenv("COURSE_DATA_DIR", COURSE_DATA_DIR)
        else:
            monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    nb = nbformat.read(path, as_version=4)
    check = first_check_cell(nb)
    assert check is not None, f"{path.name}: the first exercise has no code cell after it to check it"
    nb.cells = nb.cells[: check + 1]
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb, check


def _errors(cell) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", []) if o.output_type == "error"]


def _assert_stops_at_check(nb, check: int, name: str):
    for i, cell in enumerate(nb.cells[:check]):
        assert not _errors(cell), f"{name}: cell {i} failed before the first check: {_errors(cell)}"
    errors = [o for o in nb.cells[check].outputs if o.output_type == "error"]
    assert len(errors) == 1, f"{name}: the first check (cell {check}) should fail on the stub; outputs: {nb.cells[check].outputs}"
    assert errors[0].ename == "ExerciseError", f"{name}: cell {check} raised {errors[0].ename}: {errors[0].evalue}"
    assert "not yet implemented" in errors[0].evalue, f"{name}: cell {check} said {errors[0].evalue!r}"
    assert errors[0].traceback == [errors[0].evalue], "IPython should show only the message, no stack"


def test_synthetic_student_stops_at_first_check_and_solution_passes(synthetic, tmp_path, monkeypatch):
    student = write_student_edition([synthetic], tmp_path / "student")[0]
    nb, check = run_until_first_check(student, tmp_path, monkeypatch)
    assert check == 3
    _assert_stops_at_check(nb, check, student.name)
    assert nb.cells[check].outputs[0].evalue.startswith(
        "[todo] square: not yet implemented. Replace the `raise NotImplementedError` in the exercise cell "
        "with your code (hint: multiply x by itself, entry by entry)")

    solved, check = run_until_first_check(synthetic, tmp_path, monkeypatch)
    assert not _errors(solved.cells[check])
    assert solved.cells[check].outputs[0].text == "[ok] square: 3 entries match\n"


# ---------------------------------------------------------------- the real notebooks

def test_student_edition_generated_for_every_notebook(tmp_path):
    if not NOTEBOOKS:
        pytest.skip("no notebooks in notebooks/ yet")
    first = write_student_edition(NOTEBOOKS, tmp_path / "a")
    second = write_student_edition(NOTEBOOKS, tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in NOTEBOOKS]
    for a, b, src in zip(first, second, NOTEBOOKS):
        assert a.read_bytes() == b.read_bytes(), f"{src.name}: two generations differ"
        student = nbformat.read(a, as_version=4)
        nbformat.validate(student)
        code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
        assert BEGIN not in code and END not in code, f"{src.name}: markers left in the student edition"
        source = nbformat.read(src, as_version=4)
        for i in exercise_cells(source):
            # the stubbed cell is exactly the solution cell without its marked blocks, plus stubs
            assert _outside_markers(source.cells[i].source) == [
                line for line in student.cells[i].source.splitlines()
                if not line.lstrip().startswith("raise NotImplementedError(")], \
                f"{src.name}: cell {i} of the student edition differs from its solution outside the markers"
        for i in exercise_cells(student):
            assert "raise NotImplementedError(" in student.cells[i].source


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=[p.stem for p in WITH_EXERCISES])
def test_student_notebook_runs_until_first_check_which_says_not_yet_implemented(path, tmp_path, monkeypatch):
    if path.stem == "08_speech_tokens":
        from course_lib.data.speech import speech_available
        ok, why = speech_available()
        if not ok:   # the notebook then skips every cell after its first, on purpose
            pytest.skip(f"08_speech_tokens needs eSpeak NG: {why}")
    student = write_student_edition([path], tmp_path / "student")[0]
    nb, check = run_until_first_check(student, tmp_path, monkeypatch, shared_artifacts=True)
    _assert_stops_at_check(nb, check, path.name)
