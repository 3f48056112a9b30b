"""gradcheck's own honesty, and debugging observers that change the observer list while running."""

import numpy as np
import pytest

import minidl
from minidl import autograd
from minidl.autograd import Function
from minidl.debug import GradcheckError, break_on, gradcheck, trace


class NaNGradient(Function):
    """y = 2x with a backward that returns NaN: a broken op gradcheck must catch."""

    def forward(self, x):
        return 2 * x

    def backward(self, grad):
        return grad * np.nan


def test_gradcheck_reports_nan_gradients_as_mismatches():
    x = minidl.tensor([1.0, 2.0, 3.0], dtype=np.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match="3 of 3 elements disagree"):
        gradcheck(lambda t: NaNGradient.apply(t), [x])


def test_gradcheck_works_when_called_inside_no_grad():
    x = minidl.tensor([0.5, -1.5], dtype=np.float64, requires_grad=True)
    with minidl.no_grad():
        assert gradcheck(lambda t: (t * t).exp(), [x])
    assert minidl.is_grad_enabled()


def test_an_observer_that_removes_itself_does_not_hide_the_step_from_the_others():
    x = minidl.tensor([0.5, 1.5], requires_grad=True)
    y = (x.exp() * 2).sum()
    # The breakpoint's observer is registered before the tracer's, so removing it during the
    # first step would make a plain `for` over the list skip the tracer for that step.
    one_shot = break_on(op="sum", debugger=lambda step: one_shot.remove())
    with trace() as recorded:
        y.backward()
    assert recorded.ops == ["Sum", "Mul", "Exp"]
    assert one_shot.hits == 1
    assert not autograd.backward_observers  # everything removed itself again
