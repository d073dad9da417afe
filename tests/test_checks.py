"""The shared validators of tfnas.checks: types refused and accepted, bounds, messages."""

import numpy as np
import pytest

from tfnas.checks import check_image_shape, check_int, check_num_classes, is_int, is_number, positive_int


@pytest.mark.parametrize("value", [0, -3, 7, 2**70, np.int64(5), np.int8(-1), np.uint16(3)])
def test_is_int_accepts_python_and_numpy_integers(value):
    assert is_int(value)


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 1.0, np.float32(2), "3", None, [1]])
def test_is_int_refuses_bools_floats_and_others(value):
    assert not is_int(value)


@pytest.mark.parametrize("value", [0, 1.5, -2, np.int32(4), np.float32(0.5), np.float64(3), float("nan"), float("inf")])
def test_is_number_accepts_reals(value):
    assert is_number(value)


@pytest.mark.parametrize("value", [True, np.bool_(False), "1", None, 1j, [0.5]])
def test_is_number_refuses_bools_and_non_reals(value):
    assert not is_number(value)


def test_check_int_returns_a_plain_int():
    out = check_int(np.int64(9), "n", "Owner", low=0)
    assert out == 9 and type(out) is int


@pytest.mark.parametrize("low, high, value", [(0, None, 0), (None, 5, 5), (2, 4, 3), (None, None, -10)])
def test_check_int_accepts_values_within_bounds(low, high, value):
    assert check_int(value, "n", "Owner", low=low, high=high) == value


@pytest.mark.parametrize("low, high, value, text", [
    (2, None, 1, "Owner: `n` must be an integer >= 2. Received: n=1"),
    (None, 5, 6, "Owner: `n` must be an integer <= 5. Received: n=6"),
    (2, 4, 5, "Owner: `n` must be an integer in [2, 4]. Received: n=5"),
    (None, None, 1.0, "Owner: `n` must be an integer. Received: n=1.0"),
    (0, None, True, "Owner: `n` must be an integer >= 0. Received: n=True"),
])
def test_check_int_default_messages(low, high, value, text):
    with pytest.raises(ValueError) as info:
        check_int(value, "n", "Owner", low=low, high=high)
    assert str(info.value) == text


def test_check_int_without_owner_has_no_prefix():
    with pytest.raises(ValueError) as info:
        check_int("x", "n")
    assert str(info.value) == "`n` must be an integer. Received: n='x'"


def test_check_int_custom_message_template_and_literal_braces_in_values():
    with pytest.raises(ValueError) as info:
        check_int({"a": 1}, "size", "My{Owner}", low=1,
                  message="{owner}: {name} must be an int >= {low}. Received: {name}={value!r}")
    assert str(info.value) == "My{Owner}: size must be an int >= 1. Received: size={'a': 1}"


def test_check_int_default_message_keeps_braces_in_owner():
    with pytest.raises(ValueError, match=r"^Block \{k\}: `n`"):
        check_int(0, "n", "Block {k}", low=1)


def test_positive_int():
    assert positive_int(np.int16(3), "filters", "Conv") == 3
    for bad in (0, -1, True, 2.0, None):
        with pytest.raises(ValueError) as info:
            positive_int(bad, "filters", "Conv")
        assert str(info.value) == f"Conv: `filters` must be a positive integer. Received: filters={bad!r}"
    with pytest.raises(ValueError) as info:
        positive_int(0, "resolution")
    assert str(info.value) == "`resolution` must be a positive integer. Received: resolution=0"


def test_check_num_classes():
    assert check_num_classes(np.int64(10), "Net") == 10
    with pytest.raises(ValueError) as info:
        check_num_classes(0, "Net")
    assert str(info.value) == "Net: `num_classes` must be a positive integer. Received: num_classes=0"
    with pytest.raises(ValueError) as info:
        check_num_classes(False, message="num_classes must be a positive integer; got {value!r}")
    assert str(info.value) == "num_classes must be a positive integer; got False"


def test_check_image_shape_accepts_any_sequence_and_returns_ints():
    out = check_image_shape([np.int64(32), 32, 3])
    assert out == (32, 32, 3) and all(type(d) is int for d in out)
    assert check_image_shape(iter((8, 16, 1)), "Net") == (8, 16, 1)


@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 3, 1), (32, 0, 3), (32, 32, True), (32.0, 32, 3), (None, 32, 3)])
def test_check_image_shape_refuses_bad_shapes(shape):
    with pytest.raises(ValueError) as info:
        check_image_shape(shape, "Net")
    assert str(info.value) == f"Net: input_shape must be (H, W, C) positive ints. Received: {shape!r}"


def test_check_image_shape_with_unknown_dims_and_custom_message():
    assert check_image_shape((None, None, np.int32(3)), none_ok=True) == (None, None, 3)
    with pytest.raises(ValueError, match=r"^shape \[0, None, 3\] is bad$"):
        check_image_shape([0, None, 3], none_ok=True, message="shape {value!r} is bad")
