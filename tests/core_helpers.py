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


def _wrap_0d(fn, inputs):
    """Pass 0-d inputs to gradcheck as shape (1,) and reshape them back to () inside fn.

    minidl.debug.gradcheck crashes on 0-d inputs (np.nonzero of a 0-d array; see
    test_autograd.py::test_gradcheck_accepts_0d_inputs). Routing around it here keeps the
    ops' own 0-d behaviour under test: fn still receives 0-d tensors.
    """
    zero_d = [isinstance(t, minidl.Tensor) and t.ndim == 0 for t in inputs]
    if not any(zero_d):
        return fn, list(inputs)
    lifted = [t.reshape(1).detach().requires_grad_(t.requires_grad) if z else t for t, z in zip(inputs, zero_d)]

    def wrapped(*args):
        return fn(*[a.reshape(()) if z else a for a, z in zip(args, zero_d)])

    return wrapped, lifted


def check_grad(fn, inputs, **kwargs):
    """Assert fn's backward matches central differences for every input requiring grad."""
    fn, inputs = _wrap_0d(fn, inputs)
    assert gradcheck(fn, inputs, **kwargs)


def check_gradgrad(fn, inputs, seed=1, **kwargs):
    """Assert fn's second derivatives are right, the way torch.autograd.gradgradcheck does it.

    The first derivative g(x, v) = vᵀ J(x) (computed with minidl.grad, create_graph=True)
    is itself gradchecked with respect to both x and the direction v. Differentiating with
    respect to v checks the gradient graph even for ops whose derivative does not depend
    on x (add, reshape, indexing), where the x part alone would be vacuous.
    """
    inputs = list(inputs)
    with minidl.no_grad():
        outputs = fn(*inputs)
    outputs = (outputs,) if isinstance(outputs, minidl.Tensor) else tuple(outputs)
    generator = rng(seed)
    # Directions are 1-d (reshaped inside) for the same 0-d reason as in _wrap_0d.
    directions = [minidl.tensor(generator.standard_normal(max(o.data.size, 1)), requires_grad=True) for o in outputs]
    shapes = [o.shape for o in outputs]
    count = len(inputs)

    def first_derivative(*args):
        xs, vs = args[:count], args[count:]
        with minidl.enable_grad():  # gradcheck evaluates us under no_grad for the numeric part
            outs = fn(*xs)
            outs = (outs,) if isinstance(outs, minidl.Tensor) else tuple(outs)
            total = None
            for out, v, shape in zip(outs, vs, shapes):
                term = (out * v.reshape(shape)).sum()
                total = term if total is None else total + term
            wrt = [x for x in xs if x.requires_grad]
            grads = minidl.grad(total, wrt, create_graph=True, allow_unused=True)
        return tuple(g if g is not None else x * 0 for g, x in zip(grads, wrt))

    check_grad(first_derivative, inputs + directions, **kwargs)
