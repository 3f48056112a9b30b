"""Task reduction_backward: Sum, Mean and Max over dims, with and without keepdim."""

import backward_ops as ops
import numpy as np
import pytest
from helpers import check, check_shapes, inputs

import minidl

DIMS = [None, 0, 1, (0, 2), -1]


@pytest.mark.task("reduction_backward")
@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_match_finite_differences(name, dim, keepdim):
    # Distinct values, so max has one winner per slice and finite differences see a smooth function.
    (x,) = inputs((3, 4, 3), seed=8)
    check(lambda t: getattr(ops, name)(t, dim, keepdim), x)
    check_shapes(lambda t: getattr(ops, name)(t, dim, keepdim), *inputs((3, 4, 3), seed=9))


@pytest.mark.task("reduction_backward")
def test_square_input_reduced_over_one_dim():
    # On a square input a gradient spread along the wrong dim still has the right shape.
    (x,) = inputs((4, 4), seed=10)
    for name in ("sum", "mean", "max"):
        check(lambda t, name=name: getattr(ops, name)(t, 1), x)


@pytest.mark.task("reduction_backward")
def test_max_ties_share_the_gradient():
    x = minidl.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]]), requires_grad=True)
    ops.max(x, 1).backward(minidl.tensor(np.array([6.0, 1.0])))
    np.testing.assert_allclose(x.grad.numpy(), [[0, 3, 3], [1, 0, 0]])
