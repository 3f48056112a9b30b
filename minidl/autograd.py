"""Reverse-mode automatic differentiation: Function nodes and the backward pass.

Every op is a `Function` with a `forward` on raw arrays and a `backward` that
turns the gradient of its output into gradients of its inputs. Running ops on
tensors that require grad records these nodes; `backward()` visits them from
the output back to the leaves, applying the chain rule at each one:

    d loss / d input  =  (d loss / d output) * (d output / d input)

`backward` methods are written with Tensor ops, so running them with grad
recording switched on (create_graph=True) builds a graph of the gradient
itself, and that graph can be differentiated again (higher-order gradients).
"""

import contextlib

import numpy as np

from minidl.backend import active_kernels

# ----------------------------------------------------------------------------
# Grad mode: whether ops record the graph
# ----------------------------------------------------------------------------
_grad_enabled = True


def is_grad_enabled():
    return _grad_enabled


def _set_mode(mode):
    global _grad_enabled
    _grad_enabled = mode


class _GradMode(contextlib.ContextDecorator):
    """A with-block (or function decorator) that sets grad mode inside and restores it after."""

    def __init__(self, mode):
        self.mode = bool(mode)
        self._saved = []

    def __enter__(self):
        self._saved.append(_grad_enabled)
        _set_mode(self.mode)
        return self

    def __exit__(self, *exc):
        _set_mode(self._saved.pop())
        return False


class no_grad(_GradMode):
    """Do not record ops: for evaluation and for parameter updates."""

    def __init__(self):
        super().__init__(False)


class enable_grad(_GradMode):
    """Record ops even inside a no_grad block."""

    def __init__(self):
        super().__init__(True)


class set_grad_enabled(_GradMode):
    """Switch graph recording on or off.

    As in PyTorch it takes effect as soon as it is called, so `set_grad_enabled(False)`
    works as a plain statement; used as a with-block or a decorator it restores the
    previous mode afterwards.
    """

    def __init__(self, mode):
        super().__init__(mode)
        self._mode_before_call = _grad_enabled
        _set_mode(self.mode)

    def __enter__(self):
        _set_mode(self._mode_before_call)  # so the block restores the mode from before the call
        return super().__enter__()

    def __call__(self, function):
        _set_mode(self._mode_before_call)  # decorating a function must not change the mode now
        return _GradMode(self.mode)(function)


# Debugging tools (minidl.debug) watch ops through these lists; empty means no cost.
# forward observers are called as f(function, output_tensor) after each recorded op;
# backward observers as f(step) after each node's local gradients are computed.
forward_observers = []
backward_observers = []


class RemovableHandle:
    """Returned by register_hook: call .remove() to unregister."""

    def __init__(self, hooks, hook):
        self._hooks = hooks
        self._hook = hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


# ----------------------------------------------------------------------------
# Function: one node of the graph
# ----------------------------------------------------------------------------
class Function:
    """Base class of every differentiable op.

    Subclasses define
        forward(self, *arrays, **params) -> array    computed with self.kernels
        backward(self, grad) -> one gradient per input (Tensor, array or None)

    In backward, `self.saved_tensors` gives the input Tensors and `self.output`
    the output Tensor; both raise if the tensor was changed in place since the
    forward pass. `self.needs_input_grad[i]` says whether input i wants a gradient.
    """

    # Set to False when backward works on raw arrays instead of Tensor ops.
    supports_double_backward = True
    # Set to True when the output is a view sharing memory with input 0 (reshape, transpose...).
    is_view = False

    inputs = ()
    released = False

    @classmethod
    def apply(cls, *inputs, **params):
        """Run forward on the inputs' arrays and, if any input requires grad, record the node."""
        fn = cls()
        first = inputs[0]
        fn.kernels = active_kernels[first.device]
        out = fn.forward(*[t.data for t in inputs], **params)
        if type(out) is not np.ndarray:
            out = np.asarray(out)  # reductions to a scalar return NumPy scalars
        version = first._version if cls.is_view else None
        recording = False
        if _grad_enabled:
            for t in inputs:
                if t.requires_grad:
                    recording = True
                    break
        if recording:
            fn.inputs = inputs
            fn.needs_input_grad = [t.requires_grad for t in inputs]
            fn.saved_versions = [t._version[0] for t in inputs]
            fn._output_data = out
            result = _Tensor._make(out, fn, version, first.device)
            fn._output_version = result._version
            fn._output_saved_version = result._version[0]
            if forward_observers:
                for observer in tuple(forward_observers):  # a copy: an observer may remove itself
                    observer(fn, result)
            return result
        return _Tensor._make(out, None, version, first.device)

    def forward(self, *arrays, **params):
        raise NotImplementedError(f"{self.name}: forward is not implemented")

    def backward(self, grad):
        raise NotImplementedError(f"{self.name}: backward is not implemented")

    @property
    def name(self):
        return type(self).__name__

    def __repr__(self):
        return f"<{self.name}>"

    @property
    def saved_tensors(self):
        """The input Tensors, checked against in-place changes since forward."""
        self._check_not_released()
        for i, (t, seen) in enumerate(zip(self.inputs, self.saved_versions)):
            if t._version[0] != seen:
                raise RuntimeError(
                    f"backward of {self.name}: input {i} (shape {t.shape}) was modified in place after "
                    f"the forward pass (version {t._version[0]}, expected {seen}); its gradient would be wrong. "
                    "Clone the tensor before changing it, or change it after backward()."
                )
        return self.inputs

    @property
    def output(self):
        """The output of forward as a Tensor attached to this node (so double backward sees it)."""
        self._check_not_released()
        if self._output_version[0] != self._output_saved_version:
            raise RuntimeError(
                f"backward of {self.name}: its output was modified in place after the forward pass; "
                "clone it before changing it."
            )
        grad_fn = self if _grad_enabled else None
        return _Tensor._make(self._output_data, grad_fn, self._output_version, self.inputs[0].device)

    def _check_not_released(self):
        if self.released:
            raise RuntimeError(
                f"backward: trying to backward through {self.name} a second time, but its saved "
                "values were freed by the first backward(). Pass retain_graph=True to the first "
                "backward() (or minidl.grad) if you need to backward through the graph twice."
            )

    def release(self):
        """Drop references to saved arrays so their memory can be reclaimed."""
        self.inputs = ()
        self.saved_versions = ()
        self._output_data = None
        self.released = True


# ----------------------------------------------------------------------------
# The backward pass
# ----------------------------------------------------------------------------
def topological_order(roots):
    """Every tensor that requires grad reachable from `roots`, outputs before inputs.

    An iterative depth-first search, so a 10,000-op chain does not hit Python's
    recursion limit. A node is listed only after everything that consumes it.
    """
    finished = []
    visited = set()
    stack = [(root, False) for root in roots]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            finished.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node.grad_fn is not None:
            for parent in node.grad_fn.inputs:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    finished.reverse()
    return finished


class BackwardStep:
    """One node of a backward pass: the gradient arriving at a tensor and what it sends on.

    tensor       the tensor whose gradient is complete at this step
    function     the op that made it (None for a leaf)
    grad_output  d loss / d tensor (after hooks)
    grad_inputs  the gradients this node sends to each of function.inputs (None for leaves)
    """

    __slots__ = ("tensor", "function", "grad_output", "grad_inputs", "index")

    def __init__(self, tensor, function, grad_output, grad_inputs, index):
        self.tensor = tensor
        self.function = function
        self.grad_output = grad_output
        self.grad_inputs = grad_inputs
        self.index = index

    @property
    def inputs(self):
        return () if self.function is None else self.function.inputs

    def __repr__(self):
        what = self.function.name if self.function is not None else "leaf"
        return f"<BackwardStep {self.index}: {what} shape={self.tensor.shape}>"


def _as_gradient(g, like, source, index):
    """Check a gradient returned by `source` (a Function or hook) and make it a Tensor of like's shape/dtype."""
    if type(g) is not _Tensor:
        g = _Tensor._make(np.asarray(g), device=like.device)
    if g.data.shape != like.data.shape:
        raise RuntimeError(
            f"backward of {source} returned a gradient of shape {g.shape} for input {index}, "
            f"which has shape {like.shape}"
        )
    if g.data.dtype != like.data.dtype:
        g = g.astype(like.dtype)
    return g


def initial_gradient(tensor, gradient):
    """The gradient backward starts from: ones for a scalar, else the given one (checked)."""
    if not tensor.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no grad_fn; "
            "did you forget requires_grad=True on an input, or compute it under no_grad()?"
        )
    if gradient is None:
        if tensor.data.size != 1:
            raise RuntimeError(
                f"backward: gradient can be created implicitly only for scalar outputs; this tensor "
                f"has shape {tensor.shape}. Pass backward(gradient) with a gradient of that shape, "
                "or reduce it first (e.g. .sum())."
            )
        return _Tensor._make(np.ones_like(tensor.data), device=tensor.device)
    g = gradient if isinstance(gradient, _Tensor) else _Tensor(np.asarray(gradient, dtype=tensor.dtype))
    if g.shape != tensor.shape:
        raise ValueError(f"backward: gradient has shape {g.shape} but the tensor has shape {tensor.shape}")
    return g


def backward_steps(roots, root_grads, retain_graph=False, create_graph=False, capture=None):
    """The backward pass as a generator: yields a BackwardStep per node, then applies it.

    Gradients wait in `pending` until every consumer of a tensor has contributed;
    the topological order guarantees that happens before the tensor is visited.
    Leaves accumulate into .grad (PyTorch semantics) unless `capture` (a dict keyed
    by id of the tensors of interest) is given, in which case grads are stored there.

    Nothing outside the generator changes until the pass completes: leaf .grad is
    written and the graph released at the end, so a consumer that stops early (a
    debugger's stepper) leaves every tensor as it was. While paused at a yield, the
    caller's grad mode is in force; the engine's own work runs with recording on
    only when create_graph is True.
    """
    pending = {}
    for root, g in zip(roots, root_grads):
        _accumulate(pending, root, g)
    grads_to_store = []  # (tensor, gradient) for leaves and retain_grad() tensors, written at the end
    done = []
    engine_mode = _GradMode(create_graph)
    hooks_ran = False
    previous = None  # the step yielded last, whose gradients are passed on at the next node
    for index, node in enumerate(topological_order(roots)):
        with engine_mode:
            if previous is not None:
                _pass_on(previous, pending)
                previous = None
            grad = pending.pop(id(node), None)
            if grad is None:
                continue  # no path from the roots' gradients reaches this tensor
            hooks_ran = hooks_ran or bool(node._hooks)
            step = _backward_node(node, grad, index, create_graph, capture)
        if backward_observers:
            for observer in tuple(backward_observers):  # a copy: an observer may remove itself
                observer(step)
        yield step
        if step.function is None or (capture is None and node._retains_grad):
            grads_to_store.append((node, step.grad_output))
        if step.function is not None:
            done.append(step.function)
            previous = step
    with engine_mode:
        shared = _arrays_that_may_be_shared(grads_to_store, root_grads, hooks_ran)
        for tensor, grad in grads_to_store:
            store_gradient(tensor, grad, create_graph, capture, owned=id(grad.data) not in shared)
    if not retain_graph:
        for fn in done:
            fn.release()


def _pass_on(step, pending):
    """Add the gradients a finished step sends to its inputs to what they have collected so far."""
    for inp, g in zip(step.function.inputs, step.grad_inputs):
        if g is not None:
            _accumulate(pending, inp, g)


def _backward_node(node, grad, index, create_graph, capture):
    """The chain rule at one node: run hooks, then the op's backward, and check what it returned."""
    if node._hooks:
        grad = _run_hooks(node, grad)
    fn = node.grad_fn
    if fn is None:
        return BackwardStep(node, None, grad, None, index)
    if capture is not None and id(node) in capture:
        capture[id(node)] = grad
    fn._check_not_released()
    if create_graph and not fn.supports_double_backward:
        raise RuntimeError(
            f"double backward not supported for {fn.name}: its backward works on raw arrays. "
            "Use create_graph=False, or build the model from ops that support it."
        )
    grad_inputs = fn.backward(grad)
    if not isinstance(grad_inputs, tuple):
        grad_inputs = (grad_inputs,)
    if len(grad_inputs) != len(fn.inputs):
        raise RuntimeError(f"backward of {fn.name} returned {len(grad_inputs)} gradients for {len(fn.inputs)} inputs")
    grad_inputs = tuple(
        [
            None if g is None or not inp.requires_grad else _as_gradient(g, inp, fn, i)
            for i, (inp, g) in enumerate(zip(fn.inputs, grad_inputs))
        ]
    )
    return BackwardStep(node, fn, grad, grad_inputs, index)


def _accumulate(pending, tensor, grad):
    key = id(tensor)
    if key in pending:
        pending[key] = pending[key] + grad  # a tensor used twice gets the sum of both gradients
    else:
        pending[key] = grad


def _run_hooks(tensor, grad):
    for hook in list(tensor._hooks):
        replaced = hook(grad)
        if replaced is not None:
            grad = _as_gradient(replaced, tensor, f"hook {hook!r}", 0)
    return grad


def _arrays_that_may_be_shared(grads_to_store, root_grads, hooks_ran):
    """ids of gradient arrays that something else may also hold, so .grad must copy them.

    That is: arrays reaching several tensors (a + b hands one gradient to both), the
    gradients backward started from (the caller may keep them), views, read-only arrays,
    and everything when a hook or a debugging tool saw the gradients (it may keep them).
    """
    if backward_observers or hooks_ran:
        return {id(g.data) for _, g in grads_to_store}
    seen, shared = set(), {id(g.data) for g in root_grads}
    for _, g in grads_to_store:
        array = g.data
        if id(array) in seen or array.base is not None or not array.flags.writeable:
            shared.add(id(array))
        seen.add(id(array))
    return shared


def store_gradient(tensor, grad, create_graph, capture=None, owned=False):
    """Add a finished gradient to tensor.grad, as PyTorch does (or put it in `capture`, for grad()).

    .grad must own its buffer, because later passes add into it in place. A fresh array
    nobody else holds (`owned`) is taken as it is; anything else is copied first.
    """
    if capture is not None:
        if id(tensor) in capture:
            capture[id(tensor)] = grad
        return
    if create_graph:
        if tensor.grad is not None:
            tensor.grad = tensor.grad + grad
        else:
            tensor.grad = grad if grad.grad_fn is not None else _owned_copy(grad, tensor)
    elif tensor.grad is None:
        owned = owned and not tensor._hooks and grad.data.dtype == tensor.dtype
        tensor.grad = _Tensor._make(grad.data, device=tensor.device) if owned else _owned_copy(grad, tensor)
    elif tensor.grad.grad_fn is None and tensor.grad.data.flags.writeable:
        tensor.grad.data += grad.data  # repeated backward() accumulates, as in PyTorch
    else:  # .grad came from a create_graph pass (part of a graph, maybe a read-only view)
        tensor.grad = _Tensor._make(tensor.grad.data + grad.data, device=tensor.device)


def _owned_copy(grad, like):
    return _Tensor._make(np.array(grad.data, dtype=like.dtype), device=like.device)


def backward(tensor, gradient=None, retain_graph=False, create_graph=False):
    """Compute d tensor / d leaf for every leaf that requires grad, adding it to leaf.grad.

    - gradient: d loss / d tensor; required unless tensor has one element.
    - retain_graph: keep the graph so backward can run through it again.
    - create_graph: record the backward pass itself so it can be differentiated
      (implies retain_graph).
    Gradients accumulate across calls; zero them (optimizer.zero_grad()) between steps.
    """
    root_grad = initial_gradient(tensor, gradient)
    steps = backward_steps([tensor], [root_grad], retain_graph or create_graph, create_graph)
    for _step in steps:
        pass  # each step is applied when the generator resumes


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Return d(outputs)/d(inputs) as a tuple, without touching any .grad.

    With create_graph=True the returned gradients are themselves differentiable,
    which is how second derivatives and Hessian-vector products are computed.
    """
    single_output = isinstance(outputs, _Tensor)
    outputs = [outputs] if single_output else list(outputs)
    inputs_tuple = isinstance(inputs, (list, tuple))
    inputs = list(inputs) if inputs_tuple else [inputs]
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, _Tensor):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, t in enumerate(inputs):
        if not isinstance(t, _Tensor) or not t.requires_grad:
            raise ValueError(f"grad: input {i} does not require grad")
    root_grads = [initial_gradient(o, g) for o, g in zip(outputs, grad_outputs)]
    if retain_graph is None:
        retain_graph = create_graph
    capture = {id(t): None for t in inputs}
    for _step in backward_steps(outputs, root_grads, retain_graph, create_graph, capture):
        pass
    results = []
    for i, t in enumerate(inputs):
        g = capture[id(t)]
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {t.shape}) is not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        if g is not None and not create_graph:
            g = g.detach()
        results.append(g)
    return tuple(results)


# Imported last: tensor.py imports this module.
from minidl.tensor import Tensor as _Tensor  # noqa: E402
