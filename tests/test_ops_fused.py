"""The fused ops (ops/fused.py): linear_act, conv2d_act and act_backward.

Each computes exactly what its unfused pieces compute, as one graph node, on every kernel
set; each is gradchecked and gradgradchecked (a gradient penalty must work through a fused
model), and bad arguments get errors naming the op.
"""

import numpy as np
import pytest
from core_helpers import check_gradgrad, leaf

import minidl
from minidl.debug import gradcheck, gradgradcheck

ACTIVATIONS = ["relu", "sigmoid", "tanh"]
UNFUSED = {"relu": minidl.relu, "sigmoid": minidl.sigmoid, "tanh": minidl.tanh}


def graph_ops(tensor):
    """Names of the ops in the graph below `tensor`, outputs first (a plain DFS over grad_fn)."""
    names, seen, stack = [], set(), [tensor]
    while stack:
        fn = stack.pop().grad_fn
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        names.append(fn.name)
        stack.extend(fn.inputs)
    return names


@pytest.mark.parametrize("kernels", ["numpy", "c"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_linear_act_equals_linear_then_activation_and_is_one_node(kernel_set, kernels, activation):
    kernel_set(kernels)
    x, w, b = leaf((5, 4), seed=1), leaf((3, 4), seed=2), leaf((3,), seed=3)
    fused = minidl.linear_act(x, w, b, activation)
    unfused = UNFUSED[activation](minidl.linear(x, w, b))
    np.testing.assert_array_equal(fused.data, unfused.data)  # float64: the same NumPy computation
    assert graph_ops(fused) == ["Linear" + {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh"}[activation]]
    g = np.random.default_rng(4).standard_normal((5, 3))
    for got, want in zip(minidl.grad(fused, [x, w, b], [g]), minidl.grad(unfused, [x, w, b], [g])):
        np.testing.assert_allclose(got.data, want.data, rtol=1e-13, atol=1e-15)  # same formulas, summed alike


@pytest.mark.parametrize("kernels", ["numpy", "c"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_linear_act_is_twice_differentiable(kernel_set, kernels, activation):
    """A gradient penalty (d/dW of |dL/dx|²) works through the fused op."""
    kernel_set(kernels)
    away = 0.05 if activation == "relu" else 0.0  # keep pre-activations off relu's kink
    x, w, b = leaf((3, 4), seed=1), leaf((5, 4), seed=2), leaf((5,), seed=3, away_from_zero=away)
    assert gradcheck(lambda x, w, b: minidl.linear_act(x, w, b, activation), [x, w, b])
    assert gradgradcheck(lambda x, w, b: minidl.linear_act(x, w, b, activation), [x, w, b])
    check_gradgrad(lambda x, w: minidl.linear_act(x, w, None, activation), [x, w])


@pytest.mark.parametrize("kernels", ["numpy", "c"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_conv2d_act_equals_conv2d_then_activation_and_gradchecks(kernel_set, kernels, activation):
    kernel_set(kernels)
    x, w = leaf((2, 2, 5, 5), seed=1), leaf((3, 2, 3, 3), seed=2)
    b = leaf((3,), seed=3, away_from_zero=0.05 if activation == "relu" else 0.0)
    fused = minidl.conv2d_act(x, w, b, padding=1, activation=activation)
    np.testing.assert_allclose(fused.data, UNFUSED[activation](minidl.conv2d(x, w, b, padding=1)).data, rtol=1e-13)
    assert len(graph_ops(fused)) == 1 and graph_ops(fused)[0].startswith("Conv2d")
    assert gradcheck(lambda x, w, b: minidl.conv2d_act(x, w, b, padding=1, activation=activation), [x, w, b])
    small = leaf((1, 1, 4, 4), seed=5), leaf((2, 1, 2, 2), seed=6)
    assert gradgradcheck(lambda x, w: minidl.conv2d_act(x, w, stride=2, activation=activation), list(small))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_act_backward_is_the_activations_derivative_and_twice_differentiable(activation):
    z = leaf((4, 5), seed=1, away_from_zero=0.05)
    y = UNFUSED[activation](z)
    grad = leaf((4, 5), seed=2)
    (want,) = minidl.grad(y, [z], [grad], create_graph=True)
    got = minidl.act_backward(grad, y, activation)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-12)
    # d/dgrad and d/dz of act_backward(grad, act(z)) are the second derivatives of act
    assert gradcheck(lambda g, z: minidl.act_backward(g, UNFUSED[activation](z), activation), [grad, z])
    check_gradgrad(lambda g, z: minidl.act_backward(g, UNFUSED[activation](z), activation), [grad, z])


def test_fused_ops_name_the_op_in_their_errors():
    x, w = minidl.randn(2, 3), minidl.randn(4, 3)
    with pytest.raises(ValueError, match=r"linear_act: activation must be one of \('relu', 'sigmoid', 'tanh'\)"):
        minidl.linear_act(x, w, None, "gelu")
    with pytest.raises(ValueError, match="linear_act: input has 3 features but weight expects 5"):
        minidl.linear_act(x, minidl.randn(4, 5))
    with pytest.raises(ValueError, match=r"conv2d_act: input has 2 channels but weight \(3, 1, 2, 2\) expects 1"):
        minidl.conv2d_act(minidl.randn(1, 2, 4, 4), minidl.randn(3, 1, 2, 2))
    with pytest.raises(ValueError, match="act_backward: activation must be one of"):
        minidl.act_backward(x, x, None)


def test_linear_act_accepts_extra_leading_axes_like_linear():
    x, w, b = minidl.randn(2, 3, 4), minidl.randn(5, 4), minidl.randn(5)
    np.testing.assert_allclose(minidl.linear_act(x, w, b, "tanh").data, minidl.linear(x, w, b).tanh().data, rtol=1e-6)
