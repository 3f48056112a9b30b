"""Your gradient checker: central differences, and a comparison with what backward() computes.

    numerical_gradient(f, arrays, eps)       d f / d array for every array, by central differences
    check_gradients(fn, inputs, ...)         [] if backward agrees with them, else the mismatches
    find_broken_ops(loss_fn, inputs, ops)    which ops of a model have a wrong backward

The idea (lecture "backprop"): for a scalar function f and a small ε,

    ∂f/∂x_i ≈ (f(x + ε·e_i) - f(x - ε·e_i)) / (2ε)

with an error of O(ε²) (the ε·f'' terms cancel, unlike the one-sided (f(x + ε e_i) - f(x)) / ε,
whose error is O(ε)), plus rounding of about u·|f|/ε, u = 2⁻⁵³ in float64: so float64, and ε
around 1e-6. A function with a non-scalar output y is checked through the scalar <y, v> for a
random v: a fixed v (all ones) would miss every error that cancels in the sum.
"""

import numpy as np

import minidl
import minidl.debug as debug


def numerical_gradient(f, arrays, eps=1e-6):
    """Central-difference gradients of the scalar f(*arrays) with respect to each array.

    arrays: float64 NumPy arrays. Perturb one element at a time IN PLACE (so that f sees it),
    and put every element back exactly as it was. Returns one array per input, of its shape.
    """
    # BEGIN SOLUTION numeric
    gradients = []
    for x in arrays:
        gradient = np.zeros(x.shape, dtype=np.float64)
        for index in np.ndindex(x.shape):
            original = x[index]
            x[index] = original + eps
            plus = float(f(*arrays))
            x[index] = original - eps
            minus = float(f(*arrays))
            x[index] = original  # exactly restored: the next element must see the unperturbed input
            gradient[index] = (plus - minus) / (2 * eps)
        gradients.append(gradient)
    return gradients
    # END SOLUTION


class Mismatch:
    """Input `index` of the checked function: backward and central differences disagree."""

    def __init__(self, index, max_error):
        self.index, self.max_error = index, max_error

    def __repr__(self):
        return f"Mismatch(input {self.index}, max |analytic - numeric| = {self.max_error:.3g})"


def check_gradients(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Compare backward() with numerical_gradient for every input of fn.

    fn takes Tensors and returns one Tensor of any shape; inputs are NumPy arrays (converted
    to float64 here). Project the output on a random direction v (from
    np.random.default_rng(seed), v of the output's shape) so the function checked is the
    scalar sum(fn(*inputs) * v); an element agrees when |analytic - numeric| <= atol + rtol·|numeric|.
    Returns a list of Mismatch, one for each input with any element that disagrees
    (an empty list: the gradients are right).
    """
    arrays = [np.array(a, dtype=np.float64) for a in inputs]
    # BEGIN SOLUTION checker
    rng = np.random.default_rng(seed)
    with minidl.no_grad():
        direction = rng.standard_normal(fn(*[minidl.tensor(a) for a in arrays]).shape)

    tensors = [minidl.tensor(a, requires_grad=True) for a in arrays]
    (fn(*tensors) * minidl.tensor(direction)).sum().backward()
    analytic = [np.zeros(a.shape) if t.grad is None else t.grad.array for a, t in zip(arrays, tensors)]

    def projected(*current):
        with minidl.no_grad():
            return float((fn(*[minidl.tensor(a) for a in current]).array * direction).sum())

    numeric = numerical_gradient(projected, arrays, eps)
    mismatches = []
    for index, (a, n) in enumerate(zip(analytic, numeric)):
        error = np.abs(a - n)
        if np.any(error > atol + rtol * np.abs(n)):
            mismatches.append(Mismatch(index, float(error.max())))
    return mismatches
    # END SOLUTION


def find_broken_ops(loss_fn, inputs, suspects):
    """Names of the suspect ops whose backward is wrong at the inputs this model gave them.

    loss_fn(*inputs) builds a scalar loss from minidl Tensors. Run its backward inside
    minidl.debug.trace(), and for every step of the trace whose op is one of `suspects`
    (Function classes), check that op alone (cls.apply on float64 copies of the input arrays
    it received in the model) with minidl.debug.gradcheck(..., raise_exception=False); every
    input of the op is checked. Return the sorted, distinct class names of the ops that fail.
    An op the model does not use is not reported, broken or not.
    """
    # BEGIN SOLUTION find
    with debug.trace() as recorded:
        loss_fn(*inputs).backward()
    broken = set()
    for record in recorded.records:
        cls = type(record.function)
        if record.op == "leaf" or cls not in suspects or cls.__name__ in broken:
            continue
        local = [minidl.tensor(np.array(t.array, dtype=np.float64), requires_grad=True) for t in record.inputs]
        if not debug.gradcheck(lambda *ts, cls=cls: cls.apply(*ts), local, raise_exception=False):
            broken.add(cls.__name__)
    return sorted(broken)
    # END SOLUTION
