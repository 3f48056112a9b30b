"""Graded: find_broken_ops names the op with the wrong backward, and only ops the model used."""

import numpy as np
import pytest
import shipped_ops
from checker import find_broken_ops

import minidl
from minidl.autograd import Function


class Scale(Function):
    """a * b (same shapes), right for a, wrong for b: its gradient forgets to multiply by a."""

    def forward(self, a, b):
        return a * b

    def backward(self, grad):
        a, b = self.saved_tensors
        return grad * b, grad


class Cube(Function):
    """x³ with a wrong derivative (2x² instead of 3x²): broken, but unused by the models below."""

    def forward(self, x):
        return x**3

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * 2 * x * x


def planted_model(x, w, targets):
    h = shipped_ops.softplus(x @ w)
    return (Scale.apply(shipped_ops.swish(h), targets) ** 2).sum()


@pytest.mark.task("find")
def test_the_planted_bug_in_the_shipped_model_is_found():
    found = find_broken_ops(shipped_ops.model_loss, shipped_ops.example_inputs(), shipped_ops.SUSPECTS)
    assert found == ["RowNormalize"]


@pytest.mark.task("find")
def test_a_bug_in_an_ops_second_input_is_found_and_unused_ops_are_not_reported():
    x, w, _ = shipped_ops.example_inputs(seed=3)
    targets = minidl.tensor(np.random.default_rng(4).standard_normal((5, 3)), requires_grad=True)
    suspects = (*shipped_ops.SUSPECTS, Scale, Cube)
    assert find_broken_ops(planted_model, (x, w, targets), suspects) == ["Scale"]


@pytest.mark.task("find")
def test_a_model_of_right_ops_reports_nothing():
    def model(x, w, targets):
        return (shipped_ops.swish(shipped_ops.softplus(x @ w)) * targets).sum()

    assert find_broken_ops(model, shipped_ops.example_inputs(seed=5), shipped_ops.SUSPECTS) == []
