"""Reductions and the softmax family: sum, mean, max, min, var, logsumexp, softmax and
log_softmax against NumPy (and torch), gradchecked on hypothesis-generated shapes with
int, negative and tuple axes and keepdims, plus 0-d inputs, numerical stability for large
inputs, the tie convention of max/min, and the error messages.
"""

import numpy as np
import pytest
import torch
from core_helpers import check_grad, distinct, leaf
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tolerances import TRANSCENDENTAL_ULPS, assert_within, chain_atol, eps

import minidl

seeds = st.integers(0, 2**16)


@st.composite
def shape_and_axis(draw, min_dims=0):
    """A shape and an axis argument for it: None, an int (maybe negative) or a tuple of axes."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=3))
    if not shape:
        return shape, None
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return shape, None
    if kind == "int":
        return shape, draw(st.integers(-len(shape), len(shape) - 1))
    return shape, draw(hnp.valid_tuple_axes(len(shape), min_size=1))


def _numpy_axis(axis):
    return tuple(axis) if isinstance(axis, tuple) else axis


def _reduced_count(shape, axis):
    if axis is None:
        return int(np.prod(shape))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([shape[a] for a in axes]))


def _forward_atol(name, x, axis, keepdims):
    """How far two correct float64 evaluations of reduction `name` may be apart (any summation order).

    sum/mean: the sum bound, 2·n·eps·sum|x| (mean: one more rounding, of the mean of |x|).
    max/min select an element: exact. var: the mean's error shifts every deviation; the budget
    2(n + 3) is relative to mean((|x| + |mean|)²). logsumexp: ours shifts by the max, the
    reference does not: n + 2 transcendentals + 2 ops, relative to max|x| + log n + 1 (absolute,
    since a result near 0 comes out of a log of a value near 1).
    """
    axis = _numpy_axis(axis)
    n = _reduced_count(x.shape, axis)
    f64 = eps(np.float64)
    if name in ("max", "min"):
        return 0.0
    if name == "sum":
        return 2 * n * f64 * np.sum(np.abs(x), axis=axis, keepdims=keepdims)
    if name == "mean":
        return 2 * (n + 1) * f64 * np.mean(np.abs(x), axis=axis, keepdims=keepdims)
    if name.startswith("var"):
        spread = (np.abs(x) + np.abs(np.mean(x, axis=axis, keepdims=True))) ** 2
        ddof = 1 if name == "var_unbiased" else 0
        return 2 * 2 * (n + 3) * f64 * np.sum(spread, axis=axis, keepdims=keepdims) / (n - ddof)
    return 2 * (n + 2 * TRANSCENDENTAL_ULPS + 2) * f64 * (np.abs(x).max() + np.log(n) + 1)


def _logsumexp(x, axis, keepdims):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


# name: (minidl function(x, axis, keepdims), NumPy reference(x, axis, keepdims), needs distinct values)
REDUCTIONS = {
    "sum": (minidl.sum, np.sum, False),
    "mean": (minidl.mean, np.mean, False),
    "max": (minidl.max, np.max, True),
    "min": (minidl.min, np.min, True),
    "var": (minidl.var, np.var, False),
    "var_unbiased": (
        lambda x, axis, keepdims: minidl.var(x, axis, keepdims, unbiased=True),
        lambda x, axis, keepdims: np.var(x, axis=axis, keepdims=keepdims, ddof=1),
        False,
    ),
    "logsumexp": (minidl.logsumexp, _logsumexp, False),
}


def _inputs(name, shape, seed):
    return distinct(shape, seed) if REDUCTIONS[name][2] else leaf(shape, seed=seed)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction_forward_matches_numpy(name, case, keepdims, seed):
    shape, axis = case
    op, reference, _ = REDUCTIONS[name]
    x = _inputs(name, shape, seed)
    if name == "var_unbiased" and _reduced_count(shape, axis) < 2:
        with pytest.raises(ValueError, match="var: unbiased variance needs at least 2 elements"):
            op(x, axis, keepdims)
        return
    out = op(x, axis, keepdims)
    expected = reference(x.data, axis=_numpy_axis(axis), keepdims=keepdims)
    assert out.shape == np.shape(expected)
    assert_within(out.data, expected, _forward_atol(name, x.data, axis, keepdims), name)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction_gradcheck(name, case, keepdims, seed):
    shape, axis = case
    op, _, _ = REDUCTIONS[name]
    if name == "var_unbiased" and _reduced_count(shape, axis) < 2:
        return  # an error, checked in the forward test
    check_grad(lambda t: op(t, axis, keepdims), [_inputs(name, shape, seed)])


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_of_a_0d_tensor(name):
    op, reference, _ = REDUCTIONS[name]
    x = minidl.tensor(np.array(1.5), requires_grad=True)
    if name == "var_unbiased":
        with pytest.raises(ValueError, match="var: unbiased variance needs at least 2 elements, got 1"):
            op(x, None, False)
        return
    out = op(x, None, False)
    assert out.shape == ()
    np.testing.assert_allclose(out.data, reference(np.array(1.5), axis=None, keepdims=False))
    check_grad(lambda t: op(t, None, False), [x])


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var", "logsumexp"])
def test_reduction_gradients_match_torch(name):
    x = distinct((2, 3, 4), seed=3)
    op = REDUCTIONS[name][0]
    op(x, (0, -1), True).sum().backward()
    xt = torch.tensor(x.data, requires_grad=True)
    torch_op = {
        "sum": lambda t: t.sum((0, 2), keepdim=True),
        "mean": lambda t: t.mean((0, 2), keepdim=True),
        "max": lambda t: t.amax((0, 2), keepdim=True),
        "min": lambda t: t.amin((0, 2), keepdim=True),
        "var": lambda t: t.var((0, 2), keepdim=True, unbiased=False),
        "logsumexp": lambda t: t.logsumexp((0, 2), keepdim=True),
    }[name]
    torch_op(xt).sum().backward()
    # sum/max/min: exact (ones, one-hot); mean: 1/n; var: 2(x - mean)/n, which cancels near the
    # mean (terms up to 4·max|x|/n); logsumexp: softmax (terms <= 1). Budget: n + 2 transcendentals + 4.
    n = x.data.size // x.data.shape[1]
    scale = {"var": 4 * np.abs(x.data).max() / n, "mean": 1 / n}.get(name, 1.0)
    atol = chain_atol(scale, budget=n + 2 * TRANSCENDENTAL_ULPS + 4)
    assert_within(x.grad.data, xt.grad.numpy(), atol, f"{name} gradient vs torch")


def test_reductions_keep_float32_and_sum_counts_bools():
    x = minidl.ones(2, 3)
    for out in (x.sum(), x.mean(0), x.max(1), x.var(), x.logsumexp(-1)):
        assert out.dtype == np.float32
    assert (x > 0).sum().item() == 6


@pytest.mark.parametrize("op", [minidl.max, minidl.min])
def test_ties_share_the_gradient_equally_like_torch_amax(op):
    x = minidl.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    op(x, 1).sum().backward()
    xt = torch.tensor(x.data, requires_grad=True)
    (xt.amax(1) if op is minidl.max else xt.amin(1)).sum().backward()
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy())
    np.testing.assert_allclose(x.grad.data.sum(axis=1), [1.0, 1.0])  # no gradient lost or duplicated


def test_logsumexp_does_not_overflow():
    x = minidl.tensor(np.array([[1000.0, 1000.0], [-1000.0, -1001.0]]), requires_grad=True)
    with np.errstate(over="raise", under="ignore"):
        out = x.logsumexp(axis=1)
        out.sum().backward()
    # Only log(1 + e^d) (<= 0.7) carries transcendental error; the big terms are exact: 4.5 eps of |1000|.
    np.testing.assert_allclose(out.data, [1000 + np.log(2), -1000 + np.log1p(np.exp(-1.0))], rtol=1e-15)
    # Softmax of two entries (>= 0.26): a few transcendental ulps each side, relative.
    np.testing.assert_allclose(x.grad.data, torch.softmax(torch.tensor(x.data), dim=1).numpy(),
                               rtol=2 * (2 * TRANSCENDENTAL_ULPS + 4) * eps(np.float64))  # fmt: skip


def test_logsumexp_of_infinite_entries_matches_torch():
    values = np.array([[-np.inf, -np.inf], [np.inf, 0.0], [-np.inf, 1.0]])
    with np.errstate(divide="ignore"):
        out = minidl.logsumexp(minidl.tensor(values), axis=1)
    np.testing.assert_array_equal(out.data, torch.logsumexp(torch.tensor(values), dim=1).numpy())


def test_argmax_and_argmin_return_integer_indices_without_grad():
    x = minidl.tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]), requires_grad=True)
    np.testing.assert_array_equal(x.argmax(axis=1).data, [1, 0])
    np.testing.assert_array_equal(x.argmin(axis=0).data, [0, 1, 0])
    assert x.argmax().item() == 3
    assert not x.argmax().requires_grad


# ---------------------------------------------------------------------------
# softmax and log_softmax
# ---------------------------------------------------------------------------
def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@st.composite
def shape_and_one_axis(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
    return shape, draw(st.integers(-len(shape), len(shape) - 1))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(case=shape_and_one_axis(), seed=seeds)
def test_softmax_family_forward_and_gradcheck(name, case, seed):
    shape, axis = case
    x = leaf(shape, -3, 3, seed=seed)
    op = getattr(minidl, name)
    expected = _softmax(x.data, axis)
    if name == "log_softmax":
        expected = np.log(expected)
    # Same math, different formulas (log of the quotient vs shift minus log-sum): n + 2
    # transcendentals + 4 ops, relative to the terms (<= max|x - max| + log n; for softmax, 1).
    n = shape[axis]
    scale = 2 * np.abs(x.data).max() + np.log(n) if name == "log_softmax" else 1.0
    assert_within(op(x, axis).data, expected, chain_atol(scale, budget=n + 2 * TRANSCENDENTAL_ULPS + 4), name)
    check_grad(lambda t: op(t, axis), [x])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_gradients_match_torch(name):
    x = leaf((3, 4), -3, 3, seed=1)
    weights = leaf((3, 4), seed=2).detach()
    (getattr(x, name)(0) * weights).sum().backward()
    xt = torch.tensor(x.data, requires_grad=True)
    (getattr(xt, name)(0) * torch.tensor(weights.data)).sum().backward()
    # softmax: p·(w - sum p·w), terms <= 2·max|w|; log_softmax: w - p·sum(w), terms <= (1 + n)·max|w|.
    # Both cancel near 0, so the bound is absolute; budget n + 2 transcendentals + 4 (n = 3 along axis 0).
    n = 3
    scale = (2 if name == "softmax" else 1 + n) * np.abs(weights.data).max()
    atol = chain_atol(scale, budget=n + 2 * TRANSCENDENTAL_ULPS + 4)
    assert_within(x.grad.data, xt.grad.numpy(), atol, f"{name} gradient vs torch")


def test_softmax_rows_sum_to_one_even_for_huge_inputs():
    x = minidl.tensor(np.array([[1000.0, 0.0, -1000.0], [5e4, 5e4, 5e4]]))
    with np.errstate(over="raise", under="ignore"):
        probs = x.softmax(-1).data
        logp = x.log_softmax(-1).data
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs[1], 1 / 3)
    np.testing.assert_allclose(logp[0], [0.0, -1000.0, -2000.0])
    assert np.isfinite(logp).all()


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_of_a_0d_tensor_like_torch(name):
    x = minidl.tensor(np.array(3.0), requires_grad=True)
    out = getattr(minidl, name)(x, -1)
    assert out.shape == () and out.item() == (1.0 if name == "softmax" else 0.0)
    check_grad(lambda t: getattr(minidl, name)(t, 0), [x])


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var", "logsumexp"])
def test_axis_errors_name_the_op(name):
    op = getattr(minidl, name)
    x = minidl.ones(2, 3)
    with pytest.raises(ValueError, match=rf"{name}: axis 2 is out of range for a tensor with 2 dimensions"):
        op(x, 2)
    with pytest.raises(ValueError, match=rf"{name}: axis -3 is out of range"):
        op(x, -3)
    with pytest.raises(ValueError, match=rf"{name}: repeated axis in \(1, -1\)"):
        op(x, (1, -1))
    with pytest.raises(TypeError, match=rf"{name}: axis must be an int or a tuple of ints, got 1.5"):
        op(x, 1.5)


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_and_min_of_an_empty_tensor_are_errors(name):
    with pytest.raises(ValueError, match=rf"{name}: cannot reduce an empty tensor of shape \(0, 3\)"):
        getattr(minidl, name)(minidl.zeros(0, 3))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_axis_error_names_the_op(name):
    with pytest.raises(ValueError, match=rf"{name}: axis 2 is out of range for a tensor with 2 dimensions"):
        getattr(minidl, name)(minidl.ones(2, 3), 2)
