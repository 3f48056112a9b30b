"""Shared by the tests: random float64 inputs and the gradient check."""

import numpy as np

import minidl
from minidl.debug import gradcheck


def inputs(*shapes, seed=0, low=None):
    """Random tensors that require grad (values >= low when given, e.g. for log and division)."""
    rng = np.random.default_rng(seed)
    made = []
    for shape in shapes:
        values = rng.standard_normal(shape)
        if low is not None:
            values = low + np.abs(values)
        made.append(minidl.tensor(values, dtype=minidl.float64, requires_grad=True))
    return made


def check(fn, *tensors):
    """Compare backward with central differences (raises an AssertionError naming the bad input)."""
    gradcheck(fn, list(tensors))


def check_shapes(fn, *tensors):
    """backward must return one gradient per input, shaped like that input."""
    out = fn(*tensors)
    out.backward(minidl.ones_like(out))
    for i, t in enumerate(tensors):
        assert t.grad is not None, f"input {i} got no gradient"
        assert tuple(t.grad.shape) == tuple(t.shape), (
            f"input {i}: gradient shape {tuple(t.grad.shape)}, expected {tuple(t.shape)}"
        )
