"""Graded: check_gradients passes right backward passes and flags wrong ones.

These tests use a reference numerical_gradient, so this task is graded on its own even if
numerical_gradient (the task `numeric`) is not done yet.
"""

import checker
import numpy as np
import pytest

from minidl.autograd import Function


def reference_numerical_gradient(f, arrays, eps=1e-6):
    grads = []
    for x in arrays:
        g = np.zeros(x.shape)
        for i in np.ndindex(x.shape):
            v = x[i]
            x[i] = v + eps
            plus = f(*arrays)
            x[i] = v - eps
            minus = f(*arrays)
            x[i] = v
            g[i] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


@pytest.fixture(autouse=True)
def reference_numeric(monkeypatch):
    monkeypatch.setattr(checker, "numerical_gradient", reference_numerical_gradient)


class MulWrongSignForB(Function):
    """a * b whose gradient for b has the wrong sign (the one for a is right)."""

    def forward(self, a, b):
        return a * b

    def backward(self, grad):
        a, b = self.saved_tensors
        return grad * b, -(grad * a)


class MatMulForgottenTranspose(Function):
    """a @ b whose gradient for a is grad @ b instead of grad @ bᵀ (runs when b is square)."""

    def forward(self, a, b):
        return a @ b

    def backward(self, grad):
        a, b = self.saved_tensors
        return grad @ b, a.T @ grad


class SoftmaxZeroGradient(Function):
    """Row softmax whose backward sends nothing back: right only for a loss that sums the softmax."""

    def forward(self, x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def backward(self, grad):
        return grad * 0


def inputs(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


@pytest.mark.task("checker")
def test_right_gradients_pass():
    assert checker.check_gradients(lambda a, b: a @ b, inputs((3, 4), (4, 2))) == []
    assert checker.check_gradients(lambda a, b: a * b + a.tanh(), inputs((3, 4), (1, 4))) == []
    assert checker.check_gradients(lambda x: x.softmax(dim=1), inputs((2, 5))) == []


@pytest.mark.task("checker")
def test_a_wrong_gradient_of_the_second_input_is_flagged_on_that_input_only():
    found = checker.check_gradients(MulWrongSignForB.apply, inputs((3, 4), (3, 4)))
    assert [m.index for m in found] == [1]
    assert found[0].max_error > 1e-3


@pytest.mark.task("checker")
def test_a_forgotten_transpose_is_flagged():
    found = checker.check_gradients(MatMulForgottenTranspose.apply, inputs((2, 3), (3, 3)))
    assert [m.index for m in found] == [0]


@pytest.mark.task("checker")
def test_an_error_that_cancels_in_the_plain_sum_is_flagged():
    # Σ softmax(x) = 1 for every x, so with a direction of all ones the true gradient is 0 too:
    # only a random direction catches this backward.
    found = checker.check_gradients(SoftmaxZeroGradient.apply, inputs((3, 4)))
    assert [m.index for m in found] == [0]
