"""Task unbroadcast: summing a broadcast gradient back to an input's shape."""

import backward_ops as ops
import numpy as np
import pytest

import minidl

CASES = [
    ((3, 4), (3, 4)),  # nothing was broadcast
    ((3, 4), (4,)),  # a new leading axis
    ((3, 4), (3, 1)),  # an axis of size 1
    ((2, 3, 4), (3, 1)),  # both
    ((2, 3, 4), (1, 1, 1)),
    ((2, 3, 4), ()),  # a scalar
    ((5, 1, 4), (1, 4)),  # an axis that is 1 on both sides stays
]


@pytest.mark.task("unbroadcast")
@pytest.mark.parametrize("grad_shape, shape", CASES)
def test_sums_the_copies_of_each_element(grad_shape, shape):
    rng = np.random.default_rng(1)
    grad = rng.standard_normal(grad_shape)
    got = ops.unbroadcast(minidl.tensor(grad), shape)
    # The input's element was copied to every position its broadcast view maps to it:
    # sum the gradient over those positions (NumPy lines shapes up from the right).
    expected = np.zeros(shape)
    view = np.broadcast_to(np.arange(expected.size).reshape(shape), grad_shape)
    np.add.at(expected.reshape(-1), view.reshape(-1), grad.reshape(-1))
    assert tuple(got.shape) == shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.task("unbroadcast")
def test_is_differentiable():
    # unbroadcast is written with Tensor ops, so it records a graph when asked (create_graph):
    # its own gradient copies the upstream gradient back out to the broadcast shape.
    grad = minidl.tensor(np.ones((2, 3, 4)), requires_grad=True)
    out = ops.unbroadcast(grad, (3, 1))
    out.backward(minidl.tensor(np.arange(3.0).reshape(3, 1)))
    np.testing.assert_array_equal(grad.grad.numpy(), np.broadcast_to(np.arange(3.0).reshape(3, 1), (2, 3, 4)))
