"""Helpers shared by the core op tests: seeded float64 inputs and first/second-order gradient checks.

Both checks use minidl.debug.gradcheck (float64 central differences) underneath.
"""

import numpy as np

import minidl
from minidl.debug import gradcheck


def rng(seed=0):
    return np.random.default_rng(seed)


def leaf(shape, low=-1.0, high=1.0, seed=0, away_from_zero=0.0):
    """A float64 leaf requiring grad with values uniform in [low, high).

    away_from_zero > 0 pushes every value at least that far from 0, so ops with a kink
    at 0 (abs, relu, leaky_relu) are never evaluated within a finite-difference step of it.
    """
    values = rng(seed).uniform(low, high, shape)
    if away_from_zero:
        values = np.where(values >= 0, values + away_from_zero, values - away_from_zero)
    return minidl.tensor(values, requires_grad=True)


def distinct(shape, seed=0, scale=0.1):
    """Values that are pairwise at least `scale` apart (no ties for max/min/max_pool/maximum)."""
    count = int(np.prod(shape))
    values = (rng(seed).permutation(count) - count / 2 + 0.5) * scale
    return minidl.tensor(values.reshape(shape), requires_grad=True)


def check_grad(fn, inputs, **kwargs):
    """Assert fn's backward matches central differences for every input requiring grad."""
    assert gradcheck(fn, list(inputs), **kwargs)


def check_gradgrad(fn, inputs, seed=1, **kwargs):
    """Assert fn's second derivatives are right, the way torch.autograd.gradgradcheck does it.

    The first derivative g(x, v) = vᵀ J(x) (computed with minidl.grad, create_graph=True)
    is itself gradchecked with respect to both x and the direction v. Differentiating with
    respect to v checks the gradient graph even for ops whose derivative does not depend
    on x (add, reshape, indexing), where the x part alone only confirms a zero.
    """
    inputs = list(inputs)
    with minidl.no_grad():
        outputs = fn(*inputs)
    outputs = (outputs,) if isinstance(outputs, minidl.Tensor) else tuple(outputs)
    generator = rng(seed)
    directions = [minidl.tensor(generator.standard_normal(o.shape), requires_grad=True) for o in outputs]
    count = len(inputs)

    def first_derivative(*args):
        xs, vs = args[:count], args[count:]
        with minidl.enable_grad():  # gradcheck evaluates us under no_grad for the numeric part
            outs = fn(*xs)
            outs = (outs,) if isinstance(outs, minidl.Tensor) else tuple(outs)
            total = None
            for out, v in zip(outs, vs):
                term = (out * v).sum()
                total = term if total is None else total + term
            wrt = [x for x in xs if x.requires_grad]
            grads = minidl.grad(total, wrt, create_graph=True, allow_unused=True)
        return tuple(g if g is not None else x * 0 for g, x in zip(grads, wrt))

    check_grad(first_derivative, inputs + directions, **kwargs)
