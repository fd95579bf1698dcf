"""The shared argument checks of reweighting.validation: one message format for each kind."""

import math

import numpy as np
import pytest
import torch

from reweighting import validation as V

# --- check_number: one message for every scalar argument -----------------------------------


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (-1, {}, r"^tau must be a finite real number in \[0, inf\), got -1$"),
        (float("inf"), {}, r"^tau must be a finite real number in \[0, inf\), got inf$"),
        (float("nan"), {}, r"got nan$"),
        (np.float64("nan"), {}, r"got np.float64\(nan\)$"),
        (np.float32("-inf"), {"low": -math.inf}, r"got np.float32\(-inf\)$"),
        (10**400, {}, r"^tau must be a finite real number in \[0, inf\), got 1000"),
        (torch.tensor(1.0), {}, r"got tensor\(1\."),
        (torch.tensor(3), {"integer": True}, r"^tau must be an integer .*got tensor\(3\)$"),
        (True, {}, r"got True$"),
        (np.bool_(True), {}, r"got np.True_$"),
        (False, {"integer": True}, r"^tau must be an integer in \[0, inf\), got False$"),
        ("1", {}, r"got '1'$"),
        (None, {}, r"got None$"),
        (1 + 0j, {}, r"got \(1\+0j\)$"),
        (np.array([0.5]), {}, r"got array\(\[0.5\]\)$"),
    ],
)
def test_check_number_rejects_what_is_not_a_finite_real_number(value, kwargs, message):
    with pytest.raises(ValueError, match=message):
        V.check_number(value, "tau", **kwargs)


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (1.5, {"low": 0.0, "high": 1.0}, r"^tau must be a finite real number in \[0, 1\], got"),
        (-0.5, {"low": 0.0, "high": 1.0}, r"in \[0, 1\], got -0.5$"),
        (0.0, {"low_open": True}, r"^tau must be a finite real number in \(0, inf\), got 0.0$"),
        (np.float32(0.0), {"low_open": True}, r"in \(0, inf\), got np.float32\(0.0\)$"),
        (1.0, {"high": 1.0, "high_open": True}, r"in \[0, 1\), got 1.0$"),
        (0, {"low": 0, "high": 1, "low_open": True, "high_open": True}, r"in \(0, 1\), got 0$"),
        (-3, {"low": -2, "high": 2, "high_open": True, "integer": True},
         r"^tau must be an integer in \[-2, 2\), got -3$"),
        (0.25, {"low": 0.5}, r"in \[0.5, inf\), got 0.25$"),
    ],
)
def test_check_number_bounds_closed_and_open(value, kwargs, message):
    with pytest.raises(ValueError, match=message):
        V.check_number(value, "tau", **kwargs)


def test_check_number_accepts_the_ends_of_closed_ranges_only():
    assert V.check_number(0.0, "q", 0.0, 1.0) == 0.0
    assert V.check_number(1, "q", 0.0, 1.0) == 1.0
    assert V.check_number(1e-300, "scale", low_open=True) == 1e-300
    assert V.check_number(-2, "axis", -2, 2, high_open=True, integer=True) == -2
    assert V.check_number(1.7e308, "big") == 1.7e308  # unbounded above


@pytest.mark.parametrize(
    "value", [1, 0.5, np.float64(0.5), np.float32(0.5), np.float16(0.5), np.int64(1),
              np.int32(1), np.uint8(1)],
    ids=["int", "float", "float64", "float32", "float16", "int64", "int32", "uint8"],
)
def test_check_number_accepts_python_and_numpy_numbers_as_python_floats(value):
    checked = V.check_number(value, "q", 0.0, 1.0)
    assert type(checked) is float and checked == float(value)


@pytest.mark.parametrize("value", [3, np.int64(3), np.int8(3), np.uint16(3)],
                         ids=["int", "int64", "int8", "uint16"])
def test_check_number_integer_accepts_python_and_numpy_integers_as_python_ints(value):
    checked = V.check_number(value, "n", 1, integer=True)
    assert type(checked) is int and checked == 3


@pytest.mark.parametrize("value", [3.0, np.float64(3.0), 2.5],
                         ids=["whole float", "whole float64", "fraction"])
def test_check_number_integer_rejects_floats_even_whole_ones(value):
    with pytest.raises(ValueError, match=r"^n must be an integer in \[1, inf\), got "):
        V.check_number(value, "n", 1, integer=True)


def test_check_number_keeps_huge_integers_exact():
    assert V.check_number(10**30 + 1, "n", 1, integer=True) == 10**30 + 1


# --- check_reduction -----------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_check_reduction_accepts_pytorchs_three(reduction):
    assert V.check_reduction(reduction) == reduction


@pytest.mark.parametrize(("bad", "shown"), [("avg", "'avg'"), ("MEAN", "'MEAN'"),
                                            ("elementwise_mean", "'elementwise_mean'"),
                                            (None, "None"), (0, "0"), (["mean"], r"\['mean'\]")])
def test_check_reduction_rejects_anything_else(bad, shown):
    message = rf"^reduction must be 'mean', 'sum' or 'none', got {shown}$"
    with pytest.raises(ValueError, match=message):
        V.check_reduction(bad)


# --- the value checks on tensors -----------------------------------------------------------


def test_check_binary_targets():
    V.check_binary_targets(torch.tensor([0.0, 1.0, 1.0]))
    V.check_binary_targets(torch.tensor([True, False]))
    V.check_binary_targets(torch.tensor([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match=r"^y must contain only 0 and 1 for a binary loss; "
                                         r"found \[2.0, -1.0\]$"):
        V.check_binary_targets(torch.tensor([0.0, 2.0, 1.0, -1.0]), name="y")


def test_check_class_targets():
    V.check_class_targets(torch.tensor([0, 2, 1]), 3)
    V.check_class_targets(torch.zeros(0, dtype=torch.int64), 3)  # an empty batch
    with pytest.raises(ValueError, match=r"^labels must be int64 class indices, got dtype "
                                         r"torch.int32$"):
        V.check_class_targets(torch.tensor([0, 1], dtype=torch.int32), 3, name="labels")
    with pytest.raises(ValueError, match=r"^targets must lie in \[0, 3\) for logits with 3 "
                                         r"classes; found min -1 and max 3$"):
        V.check_class_targets(torch.tensor([-1, 0, 3]), 3)


def test_check_prior():
    V.check_prior(torch.tensor([0.5, 0.3, 0.2]))
    V.check_prior(torch.tensor([0.5, 0.3, 0.2 + 5e-5], dtype=torch.float64))  # within 1e-4
    with pytest.raises(ValueError, match="prior must be a 1-D floating-point tensor"):
        V.check_prior([0.5, 0.5])
    with pytest.raises(ValueError, match="pi must be a 1-D floating-point tensor"):
        V.check_prior(torch.tensor([1, 0]), name="pi")
    with pytest.raises(ValueError, match="prior must be a 1-D floating-point tensor"):
        V.check_prior(torch.full((2, 2), 0.25))
    with pytest.raises(ValueError, match=r"^prior must be positive; got minimum 0.0$"):
        V.check_prior(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"^prior must sum to 1, got 1.100000$"):
        V.check_prior(torch.tensor([0.6, 0.5], dtype=torch.float64))


def test_the_checks_moved_out_of_losses():
    from reweighting import losses

    exported = set(losses.__all__)
    assert not exported & set(V.__all__)
    assert set(V.__all__) == {"check_number", "check_reduction", "check_binary_targets",
                              "check_class_targets", "check_prior"}
