"""Elementwise ops: forward values against NumPy (and torch where convenient), gradients by
gradcheck on hypothesis-generated shapes (0-d, size-1 dims, NumPy broadcasting), mixing
with Python numbers, dtype preservation, the conventions at kinks (abs, relu, ties), and the
error messages for bad shapes.

Inputs for gradchecks are float64 and chosen away from kinks: a finite-difference step that
straddles the kink of abs/relu/max would make the numeric gradient meaningless.
"""

import numpy as np
import pytest
import torch
from core_helpers import check_grad, check_gradgrad, distinct, leaf, rng
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tolerances import TRANSCENDENTAL_ULPS, assert_within, eps, transcendental_rtol

import minidl

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)
broadcast_triples = hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, min_side=1, max_side=3)
seeds = st.integers(0, 2**16)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# name: (minidl function, NumPy reference, (low, high) of the inputs, distance kept from 0)
UNARY = {
    "neg": (lambda x: -x, np.negative, (-2, 2), 0),
    "exp": (minidl.exp, np.exp, (-2, 2), 0),
    "log": (minidl.log, np.log, (0.2, 3), 0),
    "sqrt": (minidl.sqrt, np.sqrt, (0.2, 3), 0),
    "abs": (minidl.abs, np.abs, (-2, 2), 0.05),
    "sin": (minidl.sin, np.sin, (-3, 3), 0),
    "cos": (minidl.cos, np.cos, (-3, 3), 0),
    "tanh": (minidl.tanh, np.tanh, (-2, 2), 0),
    "sigmoid": (minidl.sigmoid, _sigmoid, (-4, 4), 0),
    "relu": (minidl.relu, lambda x: np.maximum(x, 0), (-2, 2), 0.05),
    "leaky_relu": (lambda x: minidl.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), (-2, 2), 0.05),
    "square": (lambda x: x**2, np.square, (-2, 2), 0),
    "cube": (lambda x: x**3, lambda x: x**3, (-2, 2), 0),
    "pow_zero": (lambda x: x**0, lambda x: x**0, (-2, 2), 0),
    "pow_one": (lambda x: x**1, lambda x: x, (-2, 2), 0),
    "pow_half": (lambda x: x**0.5, np.sqrt, (0.2, 3), 0),
    "pow_negative": (lambda x: x**-1.5, lambda x: x**-1.5, (0.2, 3), 0),
    "rpow": (lambda x: 2.5**x, lambda x: 2.5**x, (-2, 2), 0),
    "clip": (lambda x: x.clip(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), (-1, 1), 0),
    "clip_min_only": (lambda x: minidl.clip(x, min=0.3), lambda x: np.maximum(x, 0.3), (-1, 1), 0),
    "clip_max_only": (lambda x: minidl.clamp(x, max=0.3), lambda x: np.minimum(x, 0.3), (-1, 1), 0),
    "clone": (minidl.clone, np.copy, (-1, 1), 0),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(shape=shapes, seed=seeds)
def test_unary_op_gradcheck(name, shape, seed):
    op, _, (low, high), gap = UNARY[name]
    check_grad(op, [leaf(shape, low, high, seed, away_from_zero=gap)])


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_op_forward_matches_numpy_and_keeps_dtype(name, dtype):
    op, reference, (low, high), gap = UNARY[name]
    x = leaf((3, 4), low, high, seed=3, away_from_zero=gap).detach().astype(dtype)
    out = op(x)
    assert out.dtype == dtype
    # Against float64 (exact for float32 results): one library's transcendental plus a rounding;
    # sigmoid is e^min(x,0) / (1 + e^-|x|), two exps and two roundings. Values are O(1), so the
    # same ulps of 1 are allowed absolutely (sin or log near a zero of theirs).
    tolerance = transcendental_rtol(dtype, libraries=2 if name == "sigmoid" else 1, extra_ulps=2)
    np.testing.assert_allclose(out.array, reference(x.array.astype(np.float64)), rtol=tolerance, atol=tolerance)


def test_sigmoid_is_finite_and_exact_for_large_inputs():
    x = minidl.tensor(np.array([-800.0, -40.0, 0.0, 40.0, 800.0]))
    with np.errstate(over="raise"):
        out = minidl.sigmoid(x).array
    # Two libraries' exp (NumPy's, torch's SLEEF) and their own add and divide: 2·4 + 2 ulps.
    np.testing.assert_allclose(
        out, torch.sigmoid(torch.tensor(x.array)).numpy(), rtol=transcendental_rtol(np.float64, extra_ulps=2)
    )


# ---------------------------------------------------------------------------
# Binary ops with broadcasting
# ---------------------------------------------------------------------------
# name: (minidl function, NumPy reference, (low, high) for a, (low, high) for b)
BINARY = {
    "add": (lambda a, b: a + b, np.add, (-2, 2), (-2, 2)),
    "sub": (lambda a, b: a - b, np.subtract, (-2, 2), (-2, 2)),
    "mul": (lambda a, b: a * b, np.multiply, (-2, 2), (-2, 2)),
    "div": (lambda a, b: a / b, np.divide, (-2, 2), (0.5, 2)),
    "pow": (lambda a, b: a**b, np.power, (0.3, 2), (-2, 2)),
    "maximum": (minidl.maximum, np.maximum, (-2, 2), (-2, 2)),
    "minimum": (minidl.minimum, np.minimum, (-2, 2), (-2, 2)),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(shapes=broadcast_pairs, seed=seeds)
def test_binary_op_with_broadcasting_gradcheck_and_forward(name, shapes, seed):
    op, reference, a_range, b_range = BINARY[name]
    a = leaf(shapes.input_shapes[0], *a_range, seed=seed)
    b = leaf(shapes.input_shapes[1], *b_range, seed=seed + 1)
    out = op(a, b)
    assert out.shape == shapes.result_shape
    # + - * / max min are IEEE operations: exact on any machine. pow may run NumPy's SIMD or its
    # libm loop depending on the layout it gets: a few ulps each.
    rtol = transcendental_rtol(np.float64) if name == "pow" else 0.0
    np.testing.assert_allclose(out.array, reference(a.array, b.array), rtol=rtol, atol=0)
    check_grad(op, [a, b])


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_op_gradient_to_only_one_input(name):
    # Backward must handle an input that does not require grad (needs_input_grad False).
    op, _, a_range, b_range = BINARY[name]
    a = leaf((2, 3), *a_range, seed=5)
    b = leaf((3,), *b_range, seed=6).detach()
    check_grad(op, [a, b])
    check_grad(lambda y: op(a.detach(), y), [leaf((3,), *b_range, seed=6)])


@pytest.mark.parametrize(
    ("expression", "reference"),
    [
        (lambda x: x + 2.5, lambda x: x + 2.5),
        (lambda x: 2.5 + x, lambda x: 2.5 + x),
        (lambda x: x - 2, lambda x: x - 2),
        (lambda x: 2 - x, lambda x: 2 - x),
        (lambda x: x * 3, lambda x: x * 3),
        (lambda x: 3 * x, lambda x: 3 * x),
        (lambda x: x / 4, lambda x: x / 4),
        (lambda x: 4 / x, lambda x: 4 / x),
        (lambda x: x**2, lambda x: x**2),
        (lambda x: 2**x, lambda x: 2**x),
        (lambda x: x * np.array([1.0, 2.0, 3.0]), lambda x: x * np.array([1.0, 2.0, 3.0])),
        (lambda x: np.array([1.0, 2.0, 3.0]) * x, lambda x: np.array([1.0, 2.0, 3.0]) * x),
    ],
    ids=["x+n", "n+x", "x-n", "n-x", "x*n", "n*x", "x/n", "n/x", "x**n", "n**x", "x*arr", "arr*x"],
)
def test_mixing_tensors_with_numbers_and_arrays(expression, reference):
    x = leaf((2, 3), 0.5, 2, seed=2)
    # Exact for + - * /; x**2 and 2**x are pow calls (SIMD or libm, depending on layout): a few ulps.
    np.testing.assert_allclose(expression(x).array, reference(x.array), rtol=transcendental_rtol(np.float64))
    check_grad(expression, [x])


def test_python_numbers_do_not_promote_float32():
    x = minidl.ones(3)
    for result in (x * 2, 2 * x, x + 0.5, x / 3, 1 - x, x**2, 2.0**x, x.clip(0, 0.5), minidl.leaky_relu(x, 0.1)):
        assert result.dtype == np.float32


def test_mixed_float_dtypes_promote_like_numpy():
    a = minidl.ones(2, dtype=np.float32)
    b = minidl.ones(2, dtype=np.float64)
    assert (a + b).dtype == np.float64 and (b * a).dtype == np.float64


def test_pow_with_tensor_exponent_against_torch():
    a = leaf((2, 3), 0.3, 2, seed=8)
    b = leaf((3,), -2, 2, seed=9)
    (a**b).sum().backward()
    at = torch.tensor(a.array, requires_grad=True)
    bt = torch.tensor(b.array, requires_grad=True)
    (at**bt).sum().backward()
    # da = b·a^(b-1); db = sum over the 2 rows of a^b·log a, which changes sign at a = 1 and may
    # cancel: bound relative to the terms' magnitudes. Budget: pow, log (2 libraries) + 3 ops + 2 terms.
    budget = 2 * 2 * TRANSCENDENTAL_ULPS + 3 + 2
    da_terms = np.abs(b.array * a.array ** (b.array - 1))
    db_terms = np.abs(a.array**b.array * np.log(a.array)).sum(axis=0)
    assert_within(a.grad.array, at.grad.numpy(), 2 * budget * eps(np.float64) * da_terms, "d(a**b)/da")
    assert_within(b.grad.array, bt.grad.numpy(), 2 * budget * eps(np.float64) * db_terms, "d(a**b)/db")


def test_pow_gradient_at_zero_base_and_zero_exponent_is_zero_like_torch():
    # d/da a^b = b a^(b-1) is 0 * inf at a = b = 0; torch (and the limit along b = 0) give 0.
    a = minidl.tensor(np.array([0.0, 2.0]), requires_grad=True)
    b = minidl.tensor(np.array([0.0, 2.0]), requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        (a**b).sum().backward()
    np.testing.assert_array_equal(a.grad.array, [0.0, 4.0])
    np.testing.assert_allclose(b.grad.array, [0.0, 4 * np.log(2)])


# ---------------------------------------------------------------------------
# Kinks and ties: the conventions PyTorch uses
# ---------------------------------------------------------------------------
def test_abs_and_relu_gradients_at_zero_are_zero():
    for op in (minidl.abs, minidl.relu):
        x = minidl.tensor(np.array([-1.5, 0.0, 2.0]), requires_grad=True)
        op(x).sum().backward()
        xt = torch.tensor(x.array, requires_grad=True)
        getattr(torch, op.__name__)(xt).sum().backward()
        np.testing.assert_array_equal(x.grad.array, xt.grad.numpy())


def test_leaky_relu_gradient_equals_the_slope_exactly_like_torch():
    x = minidl.tensor(np.array([-3.0, -0.5, 0.0, 0.5, 3.0]), requires_grad=True)
    minidl.leaky_relu(x, 0.01).sum().backward()
    xt = torch.tensor(x.array, requires_grad=True)
    torch.nn.functional.leaky_relu(xt, 0.01).sum().backward()
    np.testing.assert_array_equal(x.grad.array, xt.grad.numpy())


@pytest.mark.parametrize("op", [minidl.maximum, minidl.minimum])
def test_maximum_and_minimum_split_the_gradient_evenly_on_ties_like_torch(op):
    a = minidl.tensor(np.array([1.0, 2.0, 5.0]), requires_grad=True)
    b = minidl.tensor(np.array([1.0, 3.0, 4.0]), requires_grad=True)
    op(a, b).sum().backward()
    at, bt = torch.tensor(a.array, requires_grad=True), torch.tensor(b.array, requires_grad=True)
    getattr(torch, op.__name__)(at, bt).sum().backward()
    np.testing.assert_array_equal(a.grad.array, at.grad.numpy())
    np.testing.assert_array_equal(b.grad.array, bt.grad.numpy())
    np.testing.assert_array_equal(a.grad.array + b.grad.array, 1.0)


def test_maximum_gradcheck_with_well_separated_values():
    values = distinct((2, 3), seed=4)
    check_grad(minidl.maximum, [values, distinct((2, 3), seed=5) * 1.05 + 0.01])


def test_clip_gradient_is_one_inside_and_at_the_bounds_zero_outside():
    x = minidl.tensor(np.array([-2.0, -0.5, 0.0, 0.5, 2.0]), requires_grad=True)
    x.clip(-0.5, 0.5).sum().backward()
    xt = torch.tensor(x.array, requires_grad=True)
    xt.clamp(-0.5, 0.5).sum().backward()
    np.testing.assert_array_equal(x.grad.array, xt.grad.numpy())


# ---------------------------------------------------------------------------
# where, astype, clone
# ---------------------------------------------------------------------------
@given(shapes=broadcast_triples, seed=seeds)
def test_where_broadcasts_all_three_arguments(shapes, seed):
    cond_shape, a_shape, b_shape = shapes.input_shapes
    condition = rng(seed).random(cond_shape) > 0.5
    a, b = leaf(a_shape, seed=seed), leaf(b_shape, seed=seed + 1)
    out = minidl.where(condition, a, b)
    assert out.shape == shapes.result_shape
    np.testing.assert_array_equal(out.array, np.where(condition, a.array, b.array))
    check_grad(lambda p, q: minidl.where(condition, p, q), [a, b])


def test_where_accepts_a_bool_tensor_condition_and_numbers():
    x = leaf((4,), seed=1)
    out = minidl.where(x > 0, x, 0.0)
    np.testing.assert_array_equal(out.array, np.where(x.array > 0, x.array, 0.0))
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.array, (x.array > 0).astype(float))


def test_astype_converts_values_and_the_gradient_back():
    x = minidl.tensor(np.array([1.5, -2.25]), requires_grad=True)
    y = x.astype(np.float32)
    assert y.dtype == np.float32 and y.requires_grad
    (y * y).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad.array, 2 * x.array)


def test_astype_gradcheck():
    # The function is linear, so a large step is exact despite the float32 round trip.
    check_grad(lambda t: t.astype(np.float32).astype(np.float64) * 3, [leaf((2, 2), seed=1)], eps=1e-2)


def test_astype_to_integers_carries_no_gradient():
    x = minidl.tensor(np.array([1.7, -2.2]), requires_grad=True)
    i = x.astype(np.int64)
    assert i.dtype == np.int64 and not i.requires_grad
    np.testing.assert_array_equal(i.array, [1, -2])


def test_clone_copies_memory():
    x = minidl.tensor(np.array([1.0, 2.0]))
    c = minidl.clone(x)
    assert not np.shares_memory(c.array, x.array)
    np.testing.assert_array_equal(c.array, x.array)


# ---------------------------------------------------------------------------
# Errors name the op and the shapes
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "op"),
    [
        ("add", lambda a, b: a + b),
        ("sub", lambda a, b: a - b),
        ("mul", lambda a, b: a * b),
        ("div", lambda a, b: a / b),
        ("pow", lambda a, b: a**b),
        ("maximum", minidl.maximum),
        ("minimum", minidl.minimum),
    ],
)
def test_unbroadcastable_shapes_raise_with_op_name_and_shapes(name, op):
    a, b = minidl.ones(2, 3), minidl.ones(4)
    with pytest.raises(ValueError, match=rf"{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast together"):
        op(a, b)


def test_where_with_a_condition_that_does_not_broadcast_names_the_op():
    with pytest.raises(ValueError, match=r"where: .*\(5,\).*cannot be broadcast"):
        minidl.where(np.ones(5, dtype=bool), minidl.ones(2), minidl.ones(2))


def test_clip_argument_errors():
    x = minidl.ones(3)
    with pytest.raises(ValueError, match="clip: at least one of min and max must be given"):
        x.clip()
    with pytest.raises(ValueError, match=r"clip: min \(1\) is greater than max \(0\)"):
        x.clip(1, 0)


# ---------------------------------------------------------------------------
# masked_fill, and PyTorch's dtypes when integers meet floats
# ---------------------------------------------------------------------------
def test_masked_fill_gradchecks_in_the_tensor_and_the_value_first_and_second_order():
    x = leaf((3, 4), seed=11)
    value = minidl.tensor(np.array(0.7), requires_grad=True)
    mask = minidl.tensor(rng(12).random((1, 4)) > 0.5)  # broadcast over the rows
    check_grad(lambda a, v: a.masked_fill(mask, v), [x, value])
    check_gradgrad(lambda a, v: (a * a).masked_fill(mask, v * v), [x, value])
    with pytest.raises(TypeError, match="masked_fill: the mask must be a bool tensor"):
        x.masked_fill(minidl.tensor([1, 0, 1, 0]), 0.0)
    with pytest.raises(ValueError, match=r"masked_fill: a mask of shape \(2, 4\) does not broadcast"):
        x.masked_fill(minidl.ones(2, 4) > 0, 0.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda lib: lib.arange(4) * 0.5,
        lambda lib: lib.arange(4) / 3,
        lambda lib: lib.arange(4) + lib.ones(4, dtype=lib.float64),
        lambda lib: lib.arange(4, dtype=lib.int32) * lib.ones(4, dtype=lib.float16),
        lambda lib: lib.tensor([True, False]) + 0.5,
        lambda lib: lib.arange(4) ** 0.5,
        lambda lib: lib.arange(4).sqrt(),
        lambda lib: (lib.arange(4) > 1) * lib.ones(4),
    ],
)
def test_integers_meeting_floats_take_pytorchs_dtype(make):
    ours, theirs = make(minidl), make(torch)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.array, theirs.numpy(), rtol=2 * eps(np.float16))  # float16 rounds, once


def test_isnan_isinf_isfinite_match_numpy_and_never_require_grad():
    values = np.array([0.0, -1.5, np.inf, -np.inf, np.nan, 3e38], dtype=np.float32)
    x = minidl.tensor(values, requires_grad=True)
    for name in ("isnan", "isinf", "isfinite"):
        result = getattr(x, name)()
        np.testing.assert_array_equal(result.numpy(), getattr(np, name)(values), err_msg=name)
        assert result.dtype == np.bool_ and not result.requires_grad
