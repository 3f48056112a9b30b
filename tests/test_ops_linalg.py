"""Matrix products: matmul for every NumPy case (1-D·1-D, vector-matrix, matrix-vector,
matrix-matrix, batched, broadcast batch dimensions) and the fused linear op, against NumPy
and torch, gradchecked, with the error messages for shapes that do not align.
"""

import numpy as np
import pytest
import torch
from core_helpers import check_grad, leaf
from hypothesis import given
from hypothesis import strategies as st
from tolerances import assert_within, linear_atol, matmul_atol

import minidl

MATMUL_SHAPES = [
    ((3,), (3,)),  # dot product -> 0-d
    ((3,), (3, 2)),  # vector @ matrix
    ((2, 3), (3,)),  # matrix @ vector
    ((2, 3), (3, 4)),
    ((1, 3), (3, 1)),  # size-1 dims
    ((2, 2, 3), (2, 3, 4)),  # batched
    ((2, 1, 2, 3), (3, 3, 2)),  # batch dims broadcast: (2, 1) with (3,)
    ((2, 2, 3), (3, 4)),  # batch @ matrix
    ((3, 4), (2, 4, 2)),  # matrix @ batch
    ((3,), (2, 3, 2)),  # vector @ batch
    ((2, 4, 3), (3,)),  # batch @ vector
]


@pytest.mark.parametrize(("a_shape", "b_shape"), MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_forward_matches_numpy_and_gradchecks(a_shape, b_shape):
    a, b = leaf(a_shape, seed=1), leaf(b_shape, seed=2)
    out = a @ b
    expected = np.matmul(a.data, b.data)
    assert out.shape == expected.shape
    assert_within(out.data, expected, matmul_atol(a.data, b.data), "matmul")
    check_grad(minidl.matmul, [a, b])


@pytest.mark.parametrize(("a_shape", "b_shape"), MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_gradients_match_torch(a_shape, b_shape):
    a, b = leaf(a_shape, seed=3), leaf(b_shape, seed=4)
    out = a @ b
    weights = np.random.default_rng(5).standard_normal(out.shape)
    (out * minidl.tensor(weights)).sum().backward()
    at, bt = torch.tensor(a.data, requires_grad=True), torch.tensor(b.data, requires_grad=True)
    ((at @ bt) * torch.tensor(weights)).sum().backward()
    # Each gradient element is a sum of out.size·k/x.size products of `weights` with the other
    # operand (broadcast batch dims add terms); their magnitudes are the same gradient taken
    # with absolute values (torch, float64: exact enough for a bound).
    abs_a, abs_b = torch.tensor(np.abs(a.data), requires_grad=True), torch.tensor(np.abs(b.data), requires_grad=True)
    ((abs_a @ abs_b) * torch.tensor(np.abs(weights))).sum().backward()
    k = a_shape[-1]
    for ours, theirs, scale in ((a, at, abs_a), (b, bt, abs_b)):
        terms = max(1, out.data.size * k // ours.data.size)
        atol = 2 * terms * np.finfo(np.float64).eps * scale.grad.numpy()  # tolerances.matmul_atol's rule
        assert_within(ours.grad.data, theirs.grad.numpy(), atol, "matmul gradient vs torch")


@st.composite
def batched_matmul_shapes(draw):
    """Random batch dims that broadcast (some set to 1), random inner sizes, sometimes 1-D operands."""
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    batch = draw(st.lists(st.integers(1, 2), max_size=2))
    a_batch = [draw(st.sampled_from([size, 1])) for size in batch]
    b_batch = [draw(st.sampled_from([size, 1])) for size in batch][draw(st.integers(0, len(batch))) :]
    a_shape = (k,) if draw(st.booleans()) and not a_batch else (*a_batch, n, k)
    b_shape = (k,) if draw(st.booleans()) and not b_batch else (*b_batch, k, m)
    return a_shape, b_shape


@given(shapes=batched_matmul_shapes(), seed=st.integers(0, 2**16))
def test_matmul_on_generated_shapes(shapes, seed):
    a_shape, b_shape = shapes
    a, b = leaf(a_shape, seed=seed), leaf(b_shape, seed=seed + 1)
    assert_within((a @ b).data, np.matmul(a.data, b.data), matmul_atol(a.data, b.data), "matmul")
    check_grad(minidl.matmul, [a, b])


def test_matmul_with_an_ndarray_on_either_side():
    a = leaf((2, 3), seed=1)
    m = np.arange(6.0).reshape(3, 2)
    assert_within((a @ m).data, a.data @ m, matmul_atol(a.data, m))
    assert_within((m.T @ a.T).data, m.T @ a.data.T, matmul_atol(m.T, a.data.T))
    check_grad(lambda t: m.T @ t.T, [a])


def test_matmul_keeps_float32():
    assert (minidl.ones(2, 3) @ minidl.ones(3, 2)).dtype == np.float32


# ---------------------------------------------------------------------------
# linear
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("x_shape", [(4, 3), (1, 3), (2, 4, 3)])
def test_linear_matches_torch_and_gradchecks(with_bias, x_shape):
    x, w = leaf(x_shape, seed=1), leaf((2, 3), seed=2)
    b = leaf((2,), seed=3) if with_bias else None
    out = minidl.linear(x, w, b)
    expected = torch.nn.functional.linear(
        torch.tensor(x.data), torch.tensor(w.data), None if b is None else torch.tensor(b.data)
    )
    # Two libraries' float64 products (NumPy's BLAS, torch's MKL): within the dot-product bound.
    # An output near zero may differ in many of its own ulps (issue 9: 3.5e-14 relative).
    assert_within(out.data, expected.numpy(), linear_atol(x.data, w.data, None if b is None else b.data), "linear")
    inputs = [x, w] + ([b] if with_bias else [])
    check_grad(lambda *args: minidl.linear(*args), inputs)


def test_linear_gradient_to_weight_only():
    x = leaf((4, 3), seed=1).detach()
    check_grad(lambda w, b: minidl.linear(x, w, b), [leaf((2, 3), seed=2), leaf((2,), seed=3)])


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a_shape", "b_shape", "message"),
    [
        ((32, 10), (20, 5), r"matmul: shapes \(32, 10\) and \(20, 5\) do not align"),
        ((3,), (4,), r"matmul: shapes \(3,\) and \(4,\) do not align"),
        ((2, 3), (2,), r"matmul: shapes \(2, 3\) and \(2,\) do not align"),
        ((2, 2, 3), (3, 3, 4), r"matmul: batch dimensions of \(2, 2, 3\) and \(3, 3, 4\) cannot be broadcast"),
        ((), (3,), r"matmul: both operands need at least 1 dimension, got shapes \(\) and \(3,\)"),
    ],
)
def test_matmul_errors_name_the_op_and_shapes(a_shape, b_shape, message):
    with pytest.raises(ValueError, match=message):
        minidl.matmul(minidl.ones(*a_shape), minidl.ones(*b_shape))


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "b_shape", "message"),
    [
        ((4, 3), (2, 5), None, r"linear: input has 3 features but weight expects 5 \(input \(4, 3\), weight \(2, 5"),
        ((4, 3), (2, 3), (3,), r"linear: bias shape \(3,\) does not match weight's 2 outputs"),
        ((3,), (2, 3), None, r"linear: expected input \(N, in\) and weight \(out, in\), got \(3,\) and \(2, 3\)"),
        ((4, 3), (3,), None, r"linear: expected input .* got \(4, 3\) and \(3,\)"),
    ],
)
def test_linear_errors_name_the_op_and_shapes(x_shape, w_shape, b_shape, message):
    bias = None if b_shape is None else minidl.ones(*b_shape)
    with pytest.raises(ValueError, match=message):
        minidl.linear(minidl.ones(*x_shape), minidl.ones(*w_shape), bias)
