"""The backward stepper: walk a backward pass one node at a time, like a debugger.

    for step in minidl.debug.step_backward(loss):
        print(step)              # the op, the gradient that arrived, what it will send on
        step.explain()           # the chain rule at this op, with the op's derivative formula

Each step is shown *before* it is applied: `step.grad_output` is d loss / d (this op's
output), `step.grad_inputs` are the local results this op is about to send to its inputs.
By default one step per op node; `include_leaves=True` also stops at every leaf.
Leaves' .grad is written only when the walk completes, so stopping early changes nothing.
"""

import inspect
import os

import minidl
from minidl import autograd
from minidl.debug.names import name_graph, name_of
from minidl.debug.provenance import is_user_frame, origin_of
from minidl.debug.summary import format_shape, formula_of, op_name, summarize


class Step:
    """One node of the backward pass, paused before its gradients are passed on.

    number        position in this walk (0 is the op that produced the output)
    op            the op's class name ("MatMul"), or "leaf"
    function      the op (a Function); None at a leaf
    tensor        the tensor whose gradient is now complete (the op's output, or the leaf)
    name          tensor's display name ("matmul_0", "Sequential.0.weight" or tensor.name; see names.py)
    grad_output   d loss / d tensor: the gradient sent back from up the chain (a Tensor)
    inputs        the op's input tensors (empty at a leaf)
    grad_inputs   the gradient this op will send to each input (Tensor or None); None at a leaf
    formula       the derivative the op's docstring states, e.g. "y = ln x;   dy/dx = 1/x"
    """

    def __init__(self, backward_step, number=None):
        self.engine_step = backward_step
        self.number = backward_step.index if number is None else number
        self.function = backward_step.function
        self.op = op_name(self.function)
        self.tensor = backward_step.tensor
        self.name = name_of(self.tensor)
        self.grad_output = backward_step.grad_output
        self.inputs = tuple(backward_step.inputs)
        self.input_names = tuple(name_of(t) for t in self.inputs)
        self.grad_inputs = backward_step.grad_inputs

    @property
    def is_leaf(self):
        return self.function is None

    @property
    def formula(self):
        return formula_of(self.function)

    def grad_for(self, input_):
        """The gradient this step sends to `input_` (an input tensor or its position), or None."""
        if isinstance(input_, int):
            return self.grad_inputs[input_]
        for inp, g in zip(self.inputs, self.grad_inputs or ()):
            if inp is input_:
                return g
        raise ValueError(f"step {self.number} ({self.op}): that tensor is not one of its inputs")

    def _lines(self):
        head = f"step {self.number}: {self.op} -> {self.name} {format_shape(self.tensor.shape)}"
        if self.is_leaf:
            head = f"step {self.number}: leaf {self.name} {format_shape(self.tensor.shape)}"
        lines = [head, f"  formula   {self.formula}"]
        lines.append(f"  ∂{self.name} (in)  {summarize(self.grad_output).short()}")
        for name, inp, g in zip(self.input_names, self.inputs, self.grad_inputs or ()):
            if g is None:
                reason = "does not require grad" if not inp.requires_grad else "op sends none"
                lines.append(f"  → {name} {format_shape(inp.shape)}  no gradient ({reason})")
            else:
                lines.append(f"  → {name} {format_shape(inp.shape)}  {summarize(g).short()}")
        return lines

    def __repr__(self):
        return "\n".join(self._lines())

    __str__ = __repr__

    def explain(self, print_it=True):
        """The chain rule at this step in words, with the op's formula and where its backward code is."""
        if self.is_leaf:
            text = (
                f"Leaf {self.name} {format_shape(self.tensor.shape)}: every op that used it has sent its "
                f"gradient; their sum, ∂{self.name} ({summarize(self.grad_output).short()}), "
                f"is added to {self.name}.grad."
            )
        else:
            fn = self.function
            lines = [
                f"{self.op} produced {self.name} {format_shape(self.tensor.shape)}.",
                f"It received ∂{self.name} = d loss / d {self.name} from up the chain, and multiplies it by its",
                "local derivative to get the gradient of each input:",
                f"    {self.formula}",
                f"    (here the inputs, in order, are {', '.join(self.input_names)}; the output is {self.name})",
            ]
            for name, inp, g in zip(self.input_names, self.inputs, self.grad_inputs):
                if g is not None:
                    lines.append(f"    ∂{name} {format_shape(inp.shape)} = {summarize(g).short()}")
                else:
                    lines.append(f"    {name} {format_shape(inp.shape)}: no gradient")
            origin = origin_of(fn)
            if origin is not None and origin.site is not None:
                lines.append(f"Created at {origin.site.filename}:{origin.site.lineno}: {origin.site.source}")
            where = _backward_source(fn)
            if where:
                lines.append(f"Its backward is at {where} (step into it with pdb to watch it compute).")
            text = "\n".join(lines)
        if print_it:
            print(text)
        return text


def _backward_source(function):
    """ "minidl/ops/linalg.py:36" for minidl's own ops; the full path for ops defined elsewhere."""
    try:
        method = type(function).backward
        _, line = inspect.getsourcelines(method)
        filename = inspect.getsourcefile(method)
    except (OSError, TypeError):
        return None
    if not is_user_frame(filename):
        filename = os.path.relpath(filename, os.path.dirname(os.path.dirname(minidl.__file__)))
    return f"{filename}:{line}"


def step_backward(tensor, gradient=None, retain_graph=False, create_graph=False, include_leaves=False):
    """Run backward from `tensor` one node at a time, yielding a Step before each is applied.

    With include_leaves=False (default) there is one step per op node that the gradient
    reaches; include_leaves=True also yields a step at every leaf that requires grad,
    showing the total gradient about to be added to its .grad.

    Leaves' .grad is written when the walk finishes, all at once and exactly as backward()
    would; if you stop early (break, or drop the generator), no .grad changes and the graph is
    still intact, so a later backward() gives the usual result. Hooks registered on tensors
    do run as their tensors are reached.
    """
    root_grad = autograd.initial_gradient(tensor, gradient)
    name_graph(tensor)  # from the root, as every tool does
    number = 0
    for step in _walk(tensor, root_grad, retain_graph or create_graph, create_graph):
        if step.function is None and not include_leaves:
            continue
        yield Step(step, number)
        number += 1


def _walk(root, root_grad, retain_graph, create_graph):
    """The engine's backward pass (autograd.run_backward), built from the same pieces but pausing
    at every node, and writing .grad / releasing the graph only once the walk is complete."""
    remaining = autograd.consumer_counts([root])
    pending = {id(root): root_grad}
    ready = [root]
    finished, visited = [], []
    while ready:
        node = ready.pop()
        grad = pending.pop(id(node), None)
        step = None
        if grad is not None:
            with autograd.set_grad_enabled(create_graph):
                step = autograd.chain_rule(node, grad)
            step.index = len(visited)
            autograd.notify(step)
            yield step  # paused here, in the caller's grad mode
            if node.grad_fn is None or node._retains_grad:
                finished.append((node, step.grad_output))
        if node.grad_fn is not None:
            visited.append(node.grad_fn)
            autograd.send_to_inputs(node.grad_fn, step and step.grad_inputs, pending, remaining, ready)
    with autograd.set_grad_enabled(create_graph):
        for tensor, grad in finished:  # copies: the walk showed these gradients to its caller
            autograd.store_gradient(tensor, grad, create_graph)
    if not retain_graph:
        for fn in visited:
            fn.release()
