"""Check analytic gradients against finite differences.

gradcheck(fn, inputs) runs fn in float64, computes the analytic vector-Jacobian
product vᵀJ for a random v with backward(), and compares each entry with the
central difference (f(x + h) - f(x - h)) / 2h. A mismatch is reported by input,
element index, the two values and their relative error.
"""

import numpy as np

from minidl import autograd
from minidl.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numeric one."""


class GradcheckReport:
    """The result of a check: truthy when it passed; str() gives a readable table.

    mismatches  (input position, element index, analytic, numeric, relative error) per bad element
    names       input position -> "input 1 'W' (3, 4)", used to say which input disagrees
    """

    def __init__(self, mismatches, checked, what="gradient", names=None):
        self.mismatches = mismatches  # (input, index, analytic, numeric, relative error)
        self.checked = checked
        self.what = what
        self.names = names or {}

    @property
    def inputs_that_disagree(self):
        """Positions of the inputs with at least one bad element, in order."""
        return sorted({m[0] for m in self.mismatches})

    @property
    def passed(self):
        return not self.mismatches

    def __bool__(self):
        return self.passed

    def __str__(self):
        if self.passed:
            return f"{self.what} check passed: {self.checked} elements agree"
        lines = [f"{self.what} check failed: {len(self.mismatches)} of {self.checked} elements disagree"]
        for i in self.inputs_that_disagree:
            bad = sum(1 for m in self.mismatches if m[0] == i)
            lines.append(f"  {self.names.get(i, f'input {i}')}: {bad} elements disagree")
        lines.append(f"{'input':>6} {'element':>16} {'analytic':>14} {'numeric':>14} {'rel. error':>11}")
        for inp, index, analytic, numeric, rel in self.mismatches[:20]:
            lines.append(f"{inp:>6} {str(index):>16} {analytic:>14.6g} {numeric:>14.6g} {rel:>11.3g}")
        if len(self.mismatches) > 20:
            lines.append(f"... and {len(self.mismatches) - 20} more")
        return "\n".join(lines)

    __repr__ = __str__


def _as_float64_inputs(inputs):
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    converted = []
    for t in inputs:
        if isinstance(t, Tensor) and t.dtype.kind == "f":
            converted.append(Tensor(t.array, dtype=np.float64, requires_grad=t.requires_grad, name=t.name))
        else:
            converted.append(t)
    return converted


def _outputs(fn, inputs):
    out = fn(*inputs)
    return (out,) if isinstance(out, Tensor) else tuple(out)


def _projection(fn, inputs, directions):
    """sum_k <output_k, v_k>: a scalar whose gradient is vᵀJ."""
    total = None
    for out, v in zip(_outputs(fn, inputs), directions):
        term = (out * Tensor._wrap(v)).sum() if out.requires_grad or out.dtype.kind == "f" else None
        if term is not None:
            total = term if total is None else total + term
    return total


def _compare(analytic_grads, numeric_grads, wrt, atol, rtol):
    mismatches, checked = [], 0
    for i, analytic, numeric in zip(wrt, analytic_grads, numeric_grads):
        checked += analytic.size
        error = np.abs(analytic - numeric)
        # Written as "not within tolerance" so a NaN on either side counts as a mismatch.
        bad = ~(error <= atol + rtol * np.abs(numeric))
        for row in np.argwhere(bad):  # (argwhere, unlike nonzero, also handles 0-d arrays)
            index = tuple(int(k) for k in row)
            a, n = float(analytic[index]), float(numeric[index])
            rel = abs(a - n) / max(abs(n), abs(a), 1e-12)
            mismatches.append((i, index, a, n, rel))
    return mismatches, checked


def _input_names(inputs, wrt):
    names = {}
    for i in wrt:
        t = inputs[i]
        label = f" {t.name!r}" if t.name else ""
        names[i] = f"input {i}{label} of shape {tuple(t.shape)}"
    return names


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """Compare backward() with central differences for every input that requires grad.

    fn takes the inputs (Tensors) and returns a Tensor or a tuple of Tensors. Inputs
    are converted to float64 first. Returns a GradcheckReport (truthy on success);
    raises GradcheckError with the report when raise_exception is True. The report names
    each input that disagrees (by position, and by .name if it has one) and the elements.
    """
    return _check(fn, inputs, eps, atol, rtol, raise_exception, seed, constant_ok=False)


def _check(fn, inputs, eps, atol, rtol, raise_exception, seed, constant_ok, what="gradient"):
    inputs = _as_float64_inputs(inputs)
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    rng = np.random.default_rng(seed)
    with autograd.no_grad():
        directions = [rng.standard_normal(o.shape) for o in _outputs(fn, inputs)]
    with autograd.enable_grad():  # the analytic side needs a graph even if the caller is in no_grad()
        projection = _projection(fn, inputs, directions)
    if projection is None or not projection.requires_grad:
        if not constant_ok:
            raise ValueError("gradcheck: the output does not depend on any input that requires grad")
        # No graph back to the inputs means an analytic derivative of 0; the numeric one must agree.
        analytic = [None] * len(wrt)
    else:
        analytic = autograd.grad(projection, [inputs[i] for i in wrt], allow_unused=True)
    analytic = [np.zeros(inputs[i].shape) if g is None else g.array for i, g in zip(wrt, analytic)]
    numeric = []
    with autograd.no_grad():
        for i in wrt:
            x = inputs[i].array
            estimate = np.zeros(x.shape)
            for index in np.ndindex(x.shape):
                original = x[index]
                x[index] = original + eps
                plus = _projection(fn, inputs, directions).item()
                x[index] = original - eps
                minus = _projection(fn, inputs, directions).item()
                x[index] = original
                estimate[index] = (plus - minus) / (2 * eps)
            numeric.append(estimate)
    report = GradcheckReport(*_compare(analytic, numeric, wrt, atol, rtol), what=what, names=_input_names(inputs, wrt))
    if raise_exception and not report.passed:
        raise GradcheckError(str(report))
    return report


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-4, rtol=1e-3, raise_exception=True, seed=1):
    """Check second derivatives: gradcheck applied to the (differentiable) gradient of fn."""
    inputs = _as_float64_inputs(inputs)
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    rng = np.random.default_rng(seed)
    with autograd.no_grad():
        directions = [rng.standard_normal(o.shape) for o in _outputs(fn, inputs)]

    def first_derivatives(*xs):
        with autograd.enable_grad():  # gradcheck evaluates this under no_grad, but it needs a graph
            projection = _projection(fn, xs, directions)
            grads = autograd.grad(projection, [xs[i] for i in wrt], create_graph=True, allow_unused=True)
        return tuple(g if g is not None else xs[i] * 0 for i, g in zip(wrt, grads))

    # A first derivative that does not depend on the inputs (a linear fn) has no graph: that is fine here.
    return _check(
        first_derivatives, inputs, eps, atol, rtol, raise_exception, seed, constant_ok=True, what="second-derivative"
    )
