"""The exercise-check core: one short message per outcome, never a raw traceback."""
import pytest
import torch

from course_lib.checks import CheckFailed, ExerciseError, exercise_check, expect, expect_close, expect_shape


@exercise_check("square every entry")
def check_square(square):
    x = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    got = square(x)
    expect_shape("square(x) for x of shape (2, 2)", got, (2, 2))
    expect_close("square(x) for x = [[1, -2], [3, 0.5]]", got, x ** 2, hint="multiply x by itself, entry by entry")
    expect(bool((got >= 0).all()), "squares are never negative")
    return "4 entries match"


def test_success_prints_ok_and_returns_true(capsys):
    assert check_square(lambda x: x * x) is True
    assert capsys.readouterr().out.strip() == "[ok] square every entry: 4 entries match"


def test_wrong_answer_names_case_expected_got_and_hint(capsys):
    with pytest.raises(ExerciseError) as info:
        check_square(lambda x: 2 * x)
    msg = str(info.value)
    assert info.value.status == "wrong"
    assert msg.startswith("[wrong] square every entry: square(x) for x = [[1, -2], [3, 0.5]] is off")
    assert "largest difference" in msg and "expected starts [1, 4, 9, ...]" in msg and "got starts [2, -4, 6, ...]" in msg
    assert msg.endswith("Hint: multiply x by itself, entry by entry")
    assert "Traceback" not in msg
    assert capsys.readouterr().out == ""  # failures are shown once, by the exception


def test_wrong_shape_and_type_messages():
    with pytest.raises(ExerciseError, match=r"\[wrong\].*should have shape \(2, 2\), but it has shape \(4,\)"):
        check_square(lambda x: (x * x).flatten())
    with pytest.raises(ExerciseError, match=r"should be a torch.Tensor of shape \(2, 2\), but it is a list"):
        check_square(lambda x: [[1.0, 4.0], [9.0, 0.25]])


def test_scalar_message_shows_both_numbers():
    @exercise_check("mean")
    def check_mean(fn):
        expect_close("mean of [1, 2, 3]", fn(torch.tensor([1.0, 2.0, 3.0])), 2.0)

    with pytest.raises(ExerciseError, match=r"mean of \[1, 2, 3\] is off: expected 2, got 6\.$"):
        check_mean(lambda t: t.sum())
    with pytest.raises(ExerciseError, match="should be a number or tensor, but it is a str"):
        check_mean(lambda t: "two")
    assert check_mean(lambda t: t.mean()) is True


def test_stub_is_reported_as_not_yet_implemented_with_its_hint():
    def stub(x):
        raise NotImplementedError("x ** 2 or x * x")

    with pytest.raises(ExerciseError) as info:
        check_square(stub)
    assert info.value.status == "todo"
    assert str(info.value) == ("[todo] square every entry: not yet implemented. Replace the `raise "
                               "NotImplementedError` in the exercise cell with your code (hint: x ** 2 or x * x), "
                               "run that cell, then run this check again.")


def test_crash_names_error_and_the_learners_line():
    def crashes(x):
        y = x @ torch.ones(3, 3)  # (2, 2) @ (3, 3): a shape error inside torch
        return y

    with pytest.raises(ExerciseError) as info:
        check_square(crashes)
    msg = str(info.value)
    assert info.value.status == "error"
    assert msg.startswith("[error] square every entry: your code raised RuntimeError: ")
    assert "(line " in msg and "`y = x @ torch.ones(3, 3)  # (2, 2) @ (3, 3): a shape error inside torch`" in msg


def test_nested_check_failure_is_passed_through_unchanged():
    @exercise_check("outer")
    def outer(fn):
        check_square(fn)

    with pytest.raises(ExerciseError, match=r"^\[wrong\] square every entry"):
        outer(lambda x: x)


def test_expect_raises_checkfailed_outside_a_check():
    with pytest.raises(CheckFailed, match="the message"):
        expect(False, "the message")
    expect(True, "unused")


def test_ipython_shows_only_the_message(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.user_ns["check_square"] = check_square
    result = shell.run_cell("def stub(x):\n    raise NotImplementedError('x * x')\ncheck_square(stub)")
    out = capsys.readouterr()
    text = out.out + out.err
    assert isinstance(result.error_in_exec, ExerciseError)
    assert "[todo] square every entry: not yet implemented" in text
    assert "Traceback" not in text and "File " not in text and "NotImplementedError('x * x')" not in text
    assert ExerciseError("m", "wrong")._render_traceback_() == ["m"]
