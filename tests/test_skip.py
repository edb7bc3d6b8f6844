"""skip_rest_of_notebook: one line, then every later cell is a no-op (no error)."""
import pytest

from course_lib.skip import resume_notebook, skip_rest_of_notebook


def test_skip_turns_later_cells_into_pass(capsys):
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_cell("from course_lib.skip import skip_rest_of_notebook\nx = 1\n"
                   "skip_rest_of_notebook('eSpeak NG is missing')\nx = 2")
    assert capsys.readouterr().out.strip() == "skipping the rest of this notebook: eSpeak NG is missing"
    result = shell.run_cell("x = 3\nraise RuntimeError('never runs')")
    assert result.success and shell.user_ns["x"] == 2
    resume_notebook()
    shell.run_cell("x = 4")
    assert shell.user_ns["x"] == 4


def test_skip_outside_ipython_and_bad_reason(capsys):
    assert skip_rest_of_notebook("no wheel") in (False, True)
    resume_notebook()
    with pytest.raises(ValueError, match="reason must say"):
        skip_rest_of_notebook(" ")
