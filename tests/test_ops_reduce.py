"""Reductions and the softmax family: sum, mean, amax, amin, var, logsumexp, softmax and
log_softmax against NumPy (and torch), gradchecked on hypothesis-generated shapes with
int, negative and tuple dims and keepdim, plus 0-d inputs, numerical stability for large
inputs, the tie convention of amax/amin (and of max/min along a dim), and the error messages.
(PyTorch's spellings, max(dim) -> (values, indices), var's n - 1 default, sort and topk, are
checked against PyTorch in test_pytorch_habits.py.)
"""

import numpy as np
import pytest
import torch
from core_helpers import check_grad, check_gradgrad, distinct, leaf
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
    if name in ("amax", "amin"):
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
    "amax": (minidl.amax, np.max, True),
    "amin": (minidl.amin, np.min, True),
    "var": (lambda x, axis, keepdims: minidl.var(x, axis, keepdim=keepdims, correction=0), np.var, False),
    "var_unbiased": (  # PyTorch's default: divide by n - 1
        lambda x, axis, keepdims: minidl.var(x, axis, keepdim=keepdims),
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
        with pytest.warns(RuntimeWarning, match="var: degrees of freedom"):
            out = op(x, axis, keepdims)
        assert np.isnan(out.array).all()  # 0/0, as in PyTorch (which warns too)
        return
    out = op(x, axis, keepdims)
    expected = reference(x.array, axis=_numpy_axis(axis), keepdims=keepdims)
    assert out.shape == np.shape(expected)
    assert_within(out.array, expected, _forward_atol(name, x.array, axis, keepdims), name)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction_gradcheck(name, case, keepdims, seed):
    shape, axis = case
    op, _, _ = REDUCTIONS[name]
    if name == "var_unbiased" and _reduced_count(shape, axis) < 2:
        return  # nan, checked in the forward test
    check_grad(lambda t: op(t, axis, keepdims), [_inputs(name, shape, seed)])


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_of_a_0d_tensor(name):
    op, reference, _ = REDUCTIONS[name]
    x = minidl.tensor(np.array(1.5), requires_grad=True)
    if name == "var_unbiased":
        with pytest.warns(RuntimeWarning, match=r"var: degrees of freedom n - correction = 1 - 1 <= 0"):
            assert np.isnan(op(x, None, False).item())
        return
    out = op(x, None, False)
    assert out.shape == ()
    np.testing.assert_allclose(out.array, reference(np.array(1.5), axis=None, keepdims=False))
    check_grad(lambda t: op(t, None, False), [x])


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "var", "logsumexp"])
def test_reduction_gradients_match_torch(name):
    x = distinct((2, 3, 4), seed=3)
    op = REDUCTIONS[name][0]
    op(x, (0, -1), True).sum().backward()
    xt = torch.tensor(x.array, requires_grad=True)
    torch_op = {
        "sum": lambda t: t.sum((0, 2), keepdim=True),
        "mean": lambda t: t.mean((0, 2), keepdim=True),
        "amax": lambda t: t.amax((0, 2), keepdim=True),
        "amin": lambda t: t.amin((0, 2), keepdim=True),
        "var": lambda t: t.var((0, 2), keepdim=True, unbiased=False),
        "logsumexp": lambda t: t.logsumexp((0, 2), keepdim=True),
    }[name]
    torch_op(xt).sum().backward()
    # sum/max/min: exact (ones, one-hot); mean: 1/n; var: 2(x - mean)/n, which cancels near the
    # mean (terms up to 4·max|x|/n); logsumexp: softmax (terms <= 1). Budget: n + 2 transcendentals + 4.
    n = x.array.size // x.array.shape[1]
    scale = {"var": 4 * np.abs(x.array).max() / n, "mean": 1 / n}.get(name, 1.0)
    atol = chain_atol(scale, budget=n + 2 * TRANSCENDENTAL_ULPS + 4)
    assert_within(x.grad.array, xt.grad.numpy(), atol, f"{name} gradient vs torch")


def test_reductions_keep_float32_and_sum_counts_bools():
    x = minidl.ones(2, 3)
    for out in (x.sum(), x.mean(0), x.max(1).values, x.amax(1), x.var(), x.std(0), x.logsumexp(-1)):
        assert out.dtype == np.float32
    assert (x > 0).sum().item() == 6


@pytest.mark.parametrize("op", [minidl.amax, minidl.amin])
def test_ties_share_the_gradient_equally_like_torch_amax(op):
    x = minidl.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    op(x, 1).sum().backward()
    xt = torch.tensor(x.array, requires_grad=True)
    (xt.amax(1) if op is minidl.amax else xt.amin(1)).sum().backward()
    np.testing.assert_allclose(x.grad.array, xt.grad.numpy())
    np.testing.assert_allclose(x.grad.array.sum(axis=1), [1.0, 1.0])  # no gradient lost or duplicated


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_and_min_along_a_dim_send_the_gradient_to_the_first_winner_like_torch(name):
    values = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x = minidl.tensor(values, requires_grad=True)
    out, indices = getattr(x, name)(1)
    out.sum().backward()
    xt = torch.tensor(values, requires_grad=True)
    out_t, indices_t = getattr(xt, name)(1)
    out_t.sum().backward()
    np.testing.assert_array_equal(indices.array, indices_t.numpy())
    np.testing.assert_array_equal(x.grad.array, xt.grad.numpy())  # one-hot at the first winner: exact
    check_grad(lambda t: getattr(t, name)(0, keepdim=True).values, [distinct((3, 2), seed=4)])


def test_logsumexp_does_not_overflow():
    x = minidl.tensor(np.array([[1000.0, 1000.0], [-1000.0, -1001.0]]), requires_grad=True)
    with np.errstate(over="raise", under="ignore"):
        out = x.logsumexp(axis=1)
        out.sum().backward()
    # Only log(1 + e^d) (<= 0.7) carries transcendental error; the big terms are exact: 4.5 eps of |1000|.
    np.testing.assert_allclose(out.array, [1000 + np.log(2), -1000 + np.log1p(np.exp(-1.0))], rtol=1e-15)
    # Softmax of two entries (>= 0.26): a few transcendental ulps each side, relative.
    np.testing.assert_allclose(x.grad.array, torch.softmax(torch.tensor(x.array), dim=1).numpy(),
                               rtol=2 * (2 * TRANSCENDENTAL_ULPS + 4) * eps(np.float64))  # fmt: skip


def test_logsumexp_of_infinite_entries_matches_torch():
    values = np.array([[-np.inf, -np.inf], [np.inf, 0.0], [-np.inf, 1.0]])
    with np.errstate(divide="ignore"):
        out = minidl.logsumexp(minidl.tensor(values), axis=1)
    np.testing.assert_array_equal(out.array, torch.logsumexp(torch.tensor(values), dim=1).numpy())


def test_argmax_and_argmin_return_integer_indices_without_grad():
    x = minidl.tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]), requires_grad=True)
    np.testing.assert_array_equal(x.argmax(axis=1).array, [1, 0])
    np.testing.assert_array_equal(x.argmin(axis=0).array, [0, 1, 0])
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
    expected = _softmax(x.array, axis)
    if name == "log_softmax":
        expected = np.log(expected)
    # Same math, different formulas (log of the quotient vs shift minus log-sum): n + 2
    # transcendentals + 4 ops, relative to the terms (<= max|x - max| + log n; for softmax, 1).
    n = shape[axis]
    scale = 2 * np.abs(x.array).max() + np.log(n) if name == "log_softmax" else 1.0
    assert_within(op(x, axis).array, expected, chain_atol(scale, budget=n + 2 * TRANSCENDENTAL_ULPS + 4), name)
    check_grad(lambda t: op(t, axis), [x])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_gradients_match_torch(name):
    x = leaf((3, 4), -3, 3, seed=1)
    weights = leaf((3, 4), seed=2).detach()
    (getattr(x, name)(0) * weights).sum().backward()
    xt = torch.tensor(x.array, requires_grad=True)
    (getattr(xt, name)(0) * torch.tensor(weights.array)).sum().backward()
    # softmax: p·(w - sum p·w), terms <= 2·max|w|; log_softmax: w - p·sum(w), terms <= (1 + n)·max|w|.
    # Both cancel near 0, so the bound is absolute; budget n + 2 transcendentals + 4 (n = 3 along axis 0).
    n = 3
    scale = (2 if name == "softmax" else 1 + n) * np.abs(weights.array).max()
    atol = chain_atol(scale, budget=n + 2 * TRANSCENDENTAL_ULPS + 4)
    assert_within(x.grad.array, xt.grad.numpy(), atol, f"{name} gradient vs torch")


def test_softmax_rows_sum_to_one_even_for_huge_inputs():
    x = minidl.tensor(np.array([[1000.0, 0.0, -1000.0], [5e4, 5e4, 5e4]]))
    with np.errstate(over="raise", under="ignore"):
        probs = x.softmax(-1).array
        logp = x.log_softmax(-1).array
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
@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "var", "logsumexp"])
def test_dim_errors_name_the_op(name):
    op = getattr(minidl, name)
    x = minidl.ones(2, 3)
    with pytest.raises(ValueError, match=rf"{name}: dim 2 is out of range for a tensor with 2 dimensions"):
        op(x, 2)
    with pytest.raises(ValueError, match=rf"{name}: dim -3 is out of range"):
        op(x, -3)
    with pytest.raises(ValueError, match=rf"{name}: repeated dim in \(1, -1\)"):
        op(x, (1, -1))
    with pytest.raises(TypeError, match=rf"{name}: dim must be an int or a tuple of ints, got 1.5"):
        op(x, 1.5)
    with pytest.raises(TypeError, match=rf"{name}: got both dim=0 and axis=1; give one of them"):
        op(x, 0, axis=1)


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_and_min_along_a_dim_check_it(name):
    with pytest.raises(ValueError, match=rf"{name}: dim 2 is out of range for a tensor with 2 dimensions"):
        getattr(minidl, name)(minidl.ones(2, 3), 2)
    with pytest.raises(TypeError, match=rf"{name}: dim must be one int when indices are returned; use amax/amin"):
        getattr(minidl, name)(minidl.ones(2, 3), (0, 1))


@pytest.mark.parametrize("name", ["max", "min", "amax", "amin"])
def test_max_and_min_of_an_empty_tensor_are_errors(name):
    with pytest.raises(ValueError, match=rf"{name}: cannot reduce an empty tensor of shape \(0, 3\)"):
        getattr(minidl, name)(minidl.zeros(0, 3))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_axis_error_names_the_op(name):
    with pytest.raises(ValueError, match=rf"{name}: dim 2 is out of range for a tensor with 2 dimensions"):
        getattr(minidl, name)(minidl.ones(2, 3), 2)


# ---------------------------------------------------------------------------
# PyTorch's other reductions: std, norm, max/min along a dim, sort, topk, gather
# ---------------------------------------------------------------------------
# name: (function of a float64 leaf, needs distinct values). The ones that pick elements (max/min
# along a dim, sort, topk, gather) are GetItem underneath; the norms use the Norm op or compose.
PICKS_AND_NORMS = {
    "std": (lambda t: t.std(1, keepdim=True), False),
    "std_correction_0": (lambda t: minidl.std(t, correction=0), False),
    "var_correction_2": (lambda t: t.var(0, correction=2), False),
    "norm": (lambda t: t.norm(), False),
    "norm_dim": (lambda t: minidl.norm(t, dim=1, keepdim=True), False),
    "norm_p1": (lambda t: t.norm(p=1, dim=0), False),
    "norm_p3": (lambda t: t.norm(p=3), False),
    "norm_inf": (lambda t: t.norm(p=float("inf"), dim=1), True),
    "max_dim": (lambda t: t.max(1).values, True),
    "min_dim_keepdim": (lambda t: minidl.min(t, 0, keepdim=True)[0], True),
    "sort": (lambda t: t.sort(dim=0, descending=True).values, True),
    "topk": (lambda t: t.topk(2, dim=1).values, True),
    "topk_smallest": (lambda t: t.topk(1, dim=0, largest=False).values, True),
    "gather": (lambda t: minidl.gather(t, 1, minidl.tensor([[3, 0], [1, 1], [2, 0]])), False),
}


@pytest.mark.parametrize("name", sorted(PICKS_AND_NORMS))
def test_picks_and_norms_gradcheck_first_and_second_order(name):
    fn, needs_distinct = PICKS_AND_NORMS[name]
    x = distinct((3, 4), seed=6) if needs_distinct else leaf((3, 4), 0.2, 1.0, seed=6)  # away from the norms' kinks
    check_grad(fn, [x])
    check_gradgrad(fn, [x])


def test_the_norm_of_zero_has_the_zero_subgradient_like_torch():
    x = minidl.zeros(3, requires_grad=True)
    x.norm().backward()
    np.testing.assert_array_equal(x.grad.array, np.zeros(3, np.float32))  # 0, not 0/0


def test_var_with_too_few_values_warns_and_gives_nan_or_inf_like_torch():
    with pytest.warns(RuntimeWarning, match="degrees of freedom"):
        assert np.isnan(minidl.tensor([2.0]).var().item())
    with pytest.warns(RuntimeWarning, match="degrees of freedom"):
        assert np.isinf(minidl.tensor([1.0, 3.0]).var(correction=2).item())
    with pytest.raises(TypeError, match="var: give either unbiased or correction, not both"):
        minidl.ones(3).var(unbiased=True, correction=1)
