"""Breakpoints in the backward pass: stop in the debugger when a chosen op's backward runs.

    with minidl.debug.break_on(op="matmul"):
        loss.backward()          # pdb opens with `step` (a Step) as a local: try `p step`

or, as a switch that stays on until removed: `bp = break_on("matmul")` ... `bp.remove()`
(or `clear_breakpoints()`). The debugger is entered after the op has computed its local
gradients and before they are passed on. Pass `debugger=` to do something else instead
(tests use it to check that a breakpoint fires without an interactive session).
"""

from minidl import autograd
from minidl.debug.names import name_graph
from minidl.debug.stepper import Step

_breakpoints = []


def enter_debugger(step):
    """The default action: open pdb (or whatever PYTHONBREAKPOINT names) with `step` as a local."""
    print(f"minidl.debug.break_on: stopped at\n{step}\n(`p step`, `step.explain()`, `c` to continue)")
    breakpoint()


def _matches_op(wanted, function):
    if function is None:
        return False  # a leaf step: no op's backward runs there
    if wanted is None:
        return True
    if isinstance(wanted, type):
        return isinstance(function, wanted)
    normalized = str(wanted).lower().replace("_", "")
    if function.name.lower() == normalized:
        return True
    from minidl.debug.provenance import call_name  # the name the user called it by, when recorded

    return call_name(function).lower().replace("_", "") == normalized


class Breakpoint:
    """An active breakpoint; a context manager, and `remove()` switches it off."""

    def __init__(self, op=None, condition=None, debugger=None):
        if op is None and condition is None:
            raise ValueError("break_on: give an op (name or Function class) and/or a condition(step) -> bool")
        self.op = op
        self.condition = condition
        self.debugger = debugger
        self.hits = 0
        _breakpoints.append(self)
        if _observe not in autograd.backward_observers:
            autograd.backward_observers.append(_observe)

    def matches(self, step):
        """True when this breakpoint should fire at `step` (a Step)."""
        if not _matches_op(self.op, step.function):
            return False
        return self.condition is None or bool(self.condition(step))

    def remove(self):
        if self in _breakpoints:
            _breakpoints.remove(self)
        if not _breakpoints and _observe in autograd.backward_observers:
            autograd.backward_observers.remove(_observe)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False

    def __repr__(self):
        what = self.op if self.op is not None else "any op"
        return f"<Breakpoint on {what}{' (with condition)' if self.condition else ''}, hit {self.hits} times>"


def break_on(op=None, condition=None, debugger=None):
    """Stop when the backward of `op` runs (and `condition(step)` is true, if given).

    op         an op name ("matmul", "MatMul", "log") or a Function class; None means any op
    condition  optional predicate on the Step, e.g. lambda s: not s.grad_output.data.any()
    debugger   called as debugger(step) instead of opening pdb
    Returns a Breakpoint: use it in a `with` block, or call .remove() when done.
    """
    return Breakpoint(op, condition, debugger)


def clear_breakpoints():
    """Remove every breakpoint set with break_on."""
    for bp in list(_breakpoints):
        bp.remove()


def breakpoints():
    """The active breakpoints."""
    return list(_breakpoints)


def _observe(engine_step):
    if engine_step.index == 0:  # the root of this pass: name its graph from here, as every tool does
        name_graph(engine_step.tensor)
    step = Step(engine_step)
    for bp in list(_breakpoints):
        if bp.matches(step):
            bp.hits += 1
            (bp.debugger or enter_debugger)(step)
