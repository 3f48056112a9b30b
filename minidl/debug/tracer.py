"""The backward tracer: a record of every step of a backward pass, printable as a table.

    with minidl.debug.trace() as t:
        loss.backward()
    print(t)                      # one block per op, in the order backward visited them
    t.records[0].grad_inputs      # the actual gradient arrays each op sent to its inputs

The tracer watches the engine through `autograd.backward_observers`. Op nodes become the
table's rows; leaf steps give the total each leaf receives after its hooks
(`Trace.gradient(leaf)`). Tensors are called by their names from names.py, as in every tool.
"""

import contextlib

import numpy as np

from minidl import autograd
from minidl.debug.names import name_graph, name_of
from minidl.debug.provenance import call_name
from minidl.debug.summary import format_number, format_shape, op_name, summarize


class TraceRecord:
    """What one backward step did: the chain rule at one op.

    number        position in this trace (0 is the op that made the output)
    op            the op's class name ("MatMul"); "leaf" for a leaf step
    function      the op itself (its saved tensors are freed after backward unless retain_graph=True)
    tensor        the op's output: the tensor whose gradient was complete at this step
    name          tensor's display name ("matmul_0", "Sequential.0.weight" or its .name; see names.py)
    inputs        the op's input tensors, and input_names their names
    grad_output   d loss / d tensor, the gradient that arrived from up the chain (ndarray)
    grad_inputs   the gradient sent to each input (ndarray, or None when an input gets none)
    """

    def __init__(self, number, step):
        self.number = number
        self.function = step.function
        self.op = op_name(step.function)
        self.tensor = step.tensor
        self.name = name_of(step.tensor)
        self.inputs = tuple(step.inputs)
        self.input_names = tuple(name_of(t) for t in self.inputs)
        # Copies: a record is a snapshot, safe from later in-place updates (optimizer steps, hooks).
        self.grad_output = np.array(step.grad_output.data, copy=True)
        grads = step.grad_inputs or ()
        self.grad_inputs = tuple(None if g is None else np.array(g.data, copy=True) for g in grads)

    @property
    def output_shape(self):
        return self.tensor.shape

    @property
    def input_shapes(self):
        return tuple(t.shape for t in self.inputs)

    @property
    def grad_output_stats(self):
        return summarize(self.grad_output)

    @property
    def grad_input_stats(self):
        return tuple(summarize(g) for g in self.grad_inputs)

    def __repr__(self):
        sends = ", ".join(self.input_names) or "nothing"
        shape = format_shape(self.output_shape)
        return f"<TraceRecord {self.number}: {self.op} -> {self.name} {shape}, sends to {sends}>"


class Trace:
    """The records of one or more backward passes, in the order backward visited the ops.

    Iterate over it, index it, or print it. `gradient(t)` answers "what gradient did
    backward compute for t?" for any tensor in the graph, leaves included.
    """

    def __init__(self):
        self.records = []
        # Indexes for the lookups below (records keep their tensors alive, so ids stay unique).
        self._record_of_tensor = {}
        self._record_of_function = {}
        self._sent_to = {}  # id(tensor) -> gradients sent to it
        self._leaf_totals = {}  # id(leaf) -> gradient it received (after hooks), summed over passes

    # The engine calls this for every node, before passing its gradients on.
    def _observe(self, step):
        if step.index == 0:  # the root of this pass: name its graph from here, as every tool does
            name_graph(step.tensor)
        if step.function is None:  # a leaf: its complete gradient, after its hooks
            total = self._leaf_totals.get(id(step.tensor))
            g = step.grad_output.data
            self._leaf_totals[id(step.tensor)] = g.copy() if total is None else total + g
            return
        record = TraceRecord(len(self.records), step)
        self.records.append(record)
        self._record_of_tensor[id(record.tensor)] = record
        self._record_of_function[id(record.function)] = record
        for inp, g in zip(record.inputs, record.grad_inputs):
            if g is not None:
                self._sent_to.setdefault(id(inp), []).append(g)

    def __len__(self):
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, index):
        return self.records[index]

    @property
    def ops(self):
        """The op names in backward order, e.g. ['Sum', 'PowScalar', 'Sub', 'Add', 'MatMul']."""
        return [r.op for r in self.records]

    def find(self, op):
        """The records of one op: by class name, any case ("PowScalar", "matmul"), or by the name
        it was called by ("pow") when its call was recorded (inside record_modules or detect_anomaly)."""
        wanted = op.lower().replace("_", "")
        return [
            r
            for r in self.records
            if r.op.lower() == wanted or call_name(r.function).lower().replace("_", "") == wanted
        ]

    def label(self, tensor):
        """The name this trace (and every other tool) uses for a tensor: names.name_of."""
        return name_of(tensor)

    def record_of(self, tensor):
        """The record of the step at which `tensor`'s gradient was complete, or None (leaves, constants)."""
        return self._record_of_tensor.get(id(tensor))

    def record_of_function(self, function):
        """The record of the step at which `function` (an op) ran, or None."""
        return self._record_of_function.get(id(function))

    def gradient(self, tensor):
        """d loss / d tensor as this trace saw it (an ndarray), or None if no gradient reached it.

        For an op's output this is the gradient that arrived at its step. For a leaf it is
        what backward() added to leaf.grad: the sum of what every consumer sent to it, after
        the leaf's own hooks (summed over every backward pass the trace recorded, as .grad
        accumulates).
        """
        record = self.record_of(tensor)
        if record is not None:
            return record.grad_output
        if id(tensor) in self._leaf_totals:
            return self._leaf_totals[id(tensor)].copy()
        sent = self._sent_to.get(id(tensor))
        if not sent:
            return None
        total = sent[0].copy()
        for g in sent[1:]:
            total += g
        return total

    def leaves(self):
        """The leaf tensors that received a gradient, in the order they were first sent one."""
        seen, result = set(), []
        for r in self.records:
            for inp, g in zip(r.inputs, r.grad_inputs):
                if g is not None and inp.grad_fn is None and id(inp) not in seen:
                    seen.add(id(inp))
                    result.append(inp)
        return result

    # ------------------------------------------------------------------ table
    def table(self):
        """The trace as text: for each op, the gradient it received and what it sent to each input."""
        header = ("step", "op", "gradient", "shape", "mean", "std", "min", "max", "norm", "zeros", "NaN", "Inf")
        rows = []
        for r in self.records:
            stats = summarize(r.grad_output)
            rows.append((str(r.number), r.op, f"∂{r.name} (in)", *_stat_cells(stats)))
            for name, g in zip(r.input_names, r.grad_inputs):
                if g is None:
                    rows.append(("", "", f"  → {name}", "(no gradient)", *[""] * 8))
                else:
                    rows.append(("", "", f"  → {name}", *_stat_cells(summarize(g))))
            rows.append(None)  # a blank line between steps
        leaves = self.leaves()
        rows += [("", "leaf", f"Σ→ {name_of(t)}", *_stat_cells(summarize(self.gradient(t)))) for t in leaves]
        lines = [
            f"backward trace: {len(self.records)} op steps, output first. '∂x (in)': the gradient arriving at x;",
            "'→ y': what the op sends to its input y; 'Σ→ w': the total a leaf w receives (added to w.grad).",
        ]
        lines += _format_table(header, rows)
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def __repr__(self):
        return f"<Trace of {len(self.records)} backward steps: {' '.join(self.ops[:8])}{' ...' * (len(self) > 8)}>"


def _stat_cells(s):
    return (
        format_shape(s.shape),
        format_number(s.mean),
        format_number(s.std),
        format_number(s.min),
        format_number(s.max),
        format_number(s.norm),
        str(s.zeros),
        str(s.nans),
        str(s.infs),
    )


def _format_table(header, rows):
    widths = [len(h) for h in header]
    for row in rows:
        if row is not None:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row)]
    left_aligned = {1, 2}  # op and gradient names read better left-aligned; numbers right-aligned

    def fmt(row):
        cells = [c.ljust(w) if i in left_aligned else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("" if row is None else fmt(row))
    while lines and not lines[-1]:
        lines.pop()
    return lines


@contextlib.contextmanager
def trace():
    """Record every backward step run inside the block; yields the Trace (print it for the table)."""
    recorded = Trace()
    autograd.backward_observers.append(recorded._observe)
    try:
        yield recorded
    finally:
        autograd.backward_observers.remove(recorded._observe)
