"""Anomaly mode: stop at the first op whose forward or backward result contains NaN or Inf.

    with minidl.debug.detect_anomaly():
        loss = model(x)          # log(0) here raises AnomalyError naming `log` and this line
        loss.backward()          # a NaN gradient names the op whose backward made it, and where
                                 # that op was created

Ops are tagged with the line of your code that created them while the block runs, so run the
forward pass inside it too. Like torch.autograd.detect_anomaly, it slows things down: debug only.
"""

import contextlib

import numpy as np

from minidl import autograd
from minidl.debug import provenance
from minidl.debug.summary import format_shape, formula_of


class AnomalyError(RuntimeError):
    """A NaN or Inf appeared. Attributes: op (call name), function, phase ("forward"/"backward"), site."""

    def __init__(self, message, function, phase, site, input_index=None):
        super().__init__(message)
        self.function = function
        self.op = provenance.call_name(function)
        self.phase = phase
        self.site = site
        self.input_index = input_index


def _bad_values(data):
    """(number of NaN, number of Inf), or None when every value is finite (or not a float)."""
    if data.dtype.kind not in "fc":
        return None
    if np.isfinite(data).all():
        return None
    return int(np.isnan(data).sum()), int(np.isinf(data).sum())


def _describe(counts, data):
    nans, infs = counts
    parts = []
    if nans:
        parts.append(f"{nans} NaN")
    if infs:
        signs = sorted({"+inf" if v > 0 else "-inf" for v in data[np.isinf(data)].ravel()[:1000]})
        parts.append(f"{infs} Inf ({', '.join(signs)})")
    return " and ".join(parts) + f" among {data.size} values"


def _where(function):
    origin = provenance.origin_of(function)
    if origin is None or origin.site is None:
        return None, (
            "  (its creation site is unknown: it was created outside detect_anomaly(); "
            "run the forward pass inside the block too)"
        )
    text = f"  created at {origin.site}"
    if origin.module_path:
        text += f"\n  inside module {origin.module_path}"
    return origin.site, text


def _check_forward(function, output):
    provenance.record(function)  # tag first, so the error can say where the op was created
    counts = _bad_values(output.array)
    if counts is None:
        return
    name = provenance.call_name(function)
    bad_inputs = [i for i, t in enumerate(function.inputs) if _bad_values(t.array) is not None]
    cause = (
        f"its input(s) {bad_inputs} already contained NaN/Inf"
        if bad_inputs
        else "all of its inputs were finite, so this op produced them"
    )
    site, where = _where(function)
    message = (
        f"detect_anomaly: forward of {name} ({function.name}) returned {_describe(counts, output.array)} "
        f"in its output of shape {format_shape(output.shape)}; {cause}.\n{where}\n"
        f"  formula: {formula_of(function)}"
    )
    raise AnomalyError(message, function, "forward", site)


def _check_backward(step):
    function = step.function
    if function is None:
        return
    name = provenance.call_name(function)
    counts = _bad_values(step.grad_output.array)
    if counts is not None:
        site, where = _where(function)
        raise AnomalyError(
            f"detect_anomaly: the gradient arriving at the output of {name} ({function.name}) contains "
            f"{_describe(counts, step.grad_output.array)}; it came from the root gradient or a hook.\n{where}",
            function,
            "backward",
            site,
        )
    for i, g in enumerate(step.grad_inputs):
        if g is None:
            continue
        counts = _bad_values(g.array)
        if counts is not None:
            site, where = _where(function)
            raise AnomalyError(
                f"detect_anomaly: backward of {name} ({function.name}) returned {_describe(counts, g.array)} "
                f"in the gradient for its input {i} (shape {format_shape(g.shape)}), from a finite incoming "
                f"gradient.\n{where}\n  formula: {formula_of(function)}",
                function,
                "backward",
                site,
                input_index=i,
            )


@contextlib.contextmanager
def detect_anomaly(check_forward=True, check_backward=True):
    """Raise AnomalyError at the first NaN/Inf produced by an op's forward or backward inside the block.

    check_forward=False skips forward checks, for models that use -inf on purpose (e.g. masking
    before a softmax). Only recorded ops (some input requires grad) are checked in forward.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(provenance.recording())
        if check_forward:
            autograd.forward_observers.append(_check_forward)
            stack.callback(autograd.forward_observers.remove, _check_forward)
        if check_backward:
            autograd.backward_observers.append(_check_backward)
            stack.callback(autograd.backward_observers.remove, _check_backward)
        yield
