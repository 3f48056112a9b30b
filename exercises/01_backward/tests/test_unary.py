"""Task unary_backward: Exp, Log, Tanh, Sigmoid, ReLU."""

import backward_ops as ops
import numpy as np
import pytest
from helpers import check, check_shapes, inputs

import minidl


@pytest.mark.task("unary_backward")
@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid"])
def test_smooth_functions_match_finite_differences(name):
    (x,) = inputs((3, 4))
    check(getattr(ops, name), x)


@pytest.mark.task("unary_backward")
def test_log_matches_finite_differences():
    (x,) = inputs((3, 4), low=0.5)
    check(ops.log, x)


@pytest.mark.task("unary_backward")
def test_relu_passes_gradient_only_where_the_input_is_positive():
    # Values away from the kink at 0, where finite differences are exact.
    x = minidl.tensor(np.array([[-2.0, -0.5, 0.3], [1.5, -1.0, 2.0]]), requires_grad=True)
    check(ops.relu, x)
    y = ops.relu(x)
    y.backward(minidl.tensor(np.arange(6.0).reshape(2, 3)))
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0, 2], [3, 0, 5]])


@pytest.mark.task("unary_backward")
@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sigmoid", "relu"])
def test_gradient_has_the_input_shape(name):
    (x,) = inputs((2, 3, 2), low=0.5)
    check_shapes(getattr(ops, name), x)
