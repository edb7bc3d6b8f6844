import types

import pytest
import torch

from course_lib.validate import check_choice, check_float, check_int, check_tensor


def test_choice_lists_valid_options_and_suggests():
    with pytest.raises(ValueError, match=r"profile must be one of \['smoke', 'classroom'\]; got 'smok'.*'smoke'"):
        check_choice("profile", "smok", ["smoke", "classroom"])
    with pytest.raises(TypeError, match="profile must be a string"):
        check_choice("profile", 3, ["smoke"])
    assert check_choice("p", "smoke", ["smoke"]) == "smoke"


def test_int_and_float_ranges():
    with pytest.raises(TypeError, match="steps must be an int; got float 1.5"):
        check_int("steps", 1.5)
    with pytest.raises(TypeError, match="must be an int"):
        check_int("steps", True)
    with pytest.raises(ValueError, match="steps must be >= 1; got 0"):
        check_int("steps", 0, min_value=1)
    with pytest.raises(ValueError, match="lr must be > 0.0; got 0.0"):
        check_float("lr", 0, min_value=0.0, strict_min=True)
    with pytest.raises(ValueError, match="p must be <= 1.0; got 2.0"):
        check_float("p", 2, max_value=1.0)
    assert check_float("p", 1) == 1.0


def test_tensor_shape_dtype_messages():
    x = torch.zeros(2, 3, 28, 28)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 1, 28, 28\); got shape \(2, 3, 28, 28\) \(axis 1 is 3, expected 1\)"):
        check_tensor("x", x, shape=(None, 1, 28, 28))
    with pytest.raises(ValueError, match=r"x must have 3 dimensions; got shape \(2, 3, 28, 28\)"):
        check_tensor("x", x, ndim=3)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 28, 28\); got shape \(2, 3, 28, 28\)"):
        check_tensor("x", x, shape=(None, 28, 28))
    with pytest.raises(TypeError, match="x must be a floating-point tensor; got dtype torch.int64"):
        check_tensor("x", x.long(), floating=True)
    with pytest.raises(TypeError, match="x must be a torch.Tensor; got list"):
        check_tensor("x", [1, 2])
    with pytest.raises(TypeError, match="codes must have dtype torch.int64; got torch.float32"):
        check_tensor("codes", x, dtype=torch.int64)
    assert check_tensor("x", x, shape=(None, 3, 28, 28)) is x


def test_code_range_message():
    from course_lib.validate import check_codes
    codes = torch.tensor([[0, 5], [3, 9]])
    assert check_codes("codes", codes, 10) is codes
    with pytest.raises(ValueError, match=r"codes must lie in 0..7; got values from 0 to 9"):
        check_codes("codes", codes, 8)


def test_hot_code_checks_skip_the_value_read_only_where_reading_costs_a_round_trip(monkeypatch):
    """In hot loops (forward passes, batches) a range check reads values on the CPU, and on a GPU only
    with COURSE_STRICT_CHECKS=1; elsewhere it checks dtype only (no device round trip per step)."""
    import course_lib.models.cross_attention as ca
    import course_lib.validate as validate
    codes = torch.tensor([[0, 9]])
    assert validate.reads_values(codes)
    with pytest.raises(ValueError, match="0..7; got values from 0 to 9"):
        validate.check_codes("codes", codes, 8, hot=True)          # CPU: always checked
    monkeypatch.setattr(validate, "reads_values", lambda t: False)  # as on a GPU without strict checks
    assert validate.check_codes("codes", codes, 8, hot=True) is codes
    with pytest.raises(ValueError, match="0..7"):
        validate.check_codes("codes", codes, 8)                     # not hot: always checked
    with pytest.raises(TypeError, match="integer"):
        validate.check_codes("codes", codes.float(), 8, hot=True)   # dtype: always checked
    cfg = types.SimpleNamespace(grid=(1, 2), image_offset=5, image_end=9)
    with pytest.raises(ValueError, match="image must hold image-code ids in 5..8"):
        ca.check_image_ids(torch.tensor([[5, 9]]), cfg, 1)
    monkeypatch.setattr(ca, "reads_values", lambda t: False)
    ca.check_image_ids(torch.tensor([[5, 9]]), cfg, 1)


def test_strict_checks_env_reads_values_everywhere(monkeypatch):
    from course_lib.validate import reads_values
    t = torch.zeros(2, device="meta")
    assert not reads_values(t)
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    assert reads_values(t)
