"""Reverse-mode automatic differentiation: Function nodes and the backward pass.

Every op is a `Function` with a `forward` on raw arrays and a `backward` that
turns the gradient of its output into gradients of its inputs. Running ops on
tensors that require grad records these nodes; `backward()` visits them from
the output back to the leaves, applying the chain rule at each one:

    d loss / d input  =  (d loss / d output) * (d output / d input)

`backward` methods are written with Tensor ops. A plain backward() runs them with
recording switched off, so they cost no graph; with create_graph=True they are
recorded, and the gradient can be differentiated again (higher-order gradients).

Tools that watch the graph (the debugger) attach through two lists, `forward_observers`
and `backward_observers`, and may drive a pass node by node with the engine's pieces:
`consumer_counts`, `chain_rule`, `send_to_inputs` and `store_gradient` (the backprop
stepper does). Empty observer lists cost nothing.
"""

import contextlib
import sys

import numpy as np

from minidl.backend import active_kernels
from minidl.backend.device import CPU as _CPU

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


# Extension points for tools. A forward observer is called as f(function, output) after
# each recorded op; a backward observer as f(step) after each node's gradients are computed
# (a BackwardStep, below). Observers must not change what they are shown.
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
        backward(self, grad) -> one gradient per input (a Tensor or None), written with Tensor ops

    In backward, `self.saved_tensors` gives the input Tensors and `self.output`
    the output Tensor; both raise if the tensor was changed in place since the
    forward pass. `self.needs_input_grad[i]` says whether input i wants a gradient.
    """

    # True when the output is a view sharing memory with input 0 (reshape, transpose...):
    # then an in-place change of either is a change of both.
    is_view = False
    # True for the one op whose output lives on another device than its input (Tensor.to): its
    # forward sets self.device, where the output goes. Every other op computes where its inputs are.
    moves_device = False

    inputs = ()
    released = False

    @classmethod
    def apply(cls, *inputs, **params):
        """Run forward on the inputs' arrays and, if any input requires grad, record the node."""
        fn = cls()
        first = inputs[0]
        where = first.device
        fn.kernels = active_kernels[where]
        n_inputs = len(inputs)
        if n_inputs > 1:
            for t in inputs:  # one device per op: tensors are moved explicitly (.to), never behind your back
                if t.device is not where:
                    _mixed_devices(fn, inputs)
        # One and two inputs spelled out: on small arrays, unpacking *args or an empty **params
        # costs more than the op itself.
        if n_inputs == 1:
            out = fn.forward(first.array, **params) if params else fn.forward(first.array)
        elif n_inputs == 2:
            second = inputs[1].array
            out = fn.forward(first.array, second, **params) if params else fn.forward(first.array, second)
        else:
            out = fn.forward(*[t.array for t in inputs], **params)
        if cls.moves_device:
            where = fn.device
        elif type(out) is not np.ndarray:
            out = _device_result(fn, out, where)  # reductions to a scalar return NumPy scalars
        version = first._version if cls.is_view else None
        if _grad_enabled:
            for t in inputs:
                if t.requires_grad:
                    return fn._record(inputs, out, version, where)
        return _Tensor._make(out, None, version, where)

    def _record(self, inputs, out, version, where=None):
        """Make this node part of the graph: what backward needs, and the output tensor pointing back to it."""
        self.device = where = inputs[0].device if where is None else where
        self.inputs = inputs
        if len(inputs) == 1:  # the common case, spelled out: it is recorded, so its input requires grad
            self.needs_input_grad = (True,)
            self.saved_versions = (inputs[0]._version[0],)
        else:
            self.needs_input_grad = tuple([t.requires_grad for t in inputs])
            self.saved_versions = tuple([t._version[0] for t in inputs])
        self._output_data = out
        result = _Tensor._make(out, self, version, where)
        self._output_version = result._version
        self._output_saved_version = result._version[0]
        for observer in forward_observers:
            observer(self, result)
        return result

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
        if self.released:
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
        if self.released:
            self._check_not_released()
        if self._output_version[0] != self._output_saved_version:
            raise RuntimeError(
                f"backward of {self.name}: its output was modified in place after the forward pass; "
                "clone it before changing it."
            )
        if _running is self and _running_output is not None:  # the engine gave us the tensor itself
            return _running_output
        grad_fn = self if _grad_enabled else None
        return _Tensor._make(self._output_data, grad_fn, self._output_version, self.device)

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


def _mixed_devices(fn, inputs):
    """Raise the error for an op given tensors on different devices, naming the op and the devices."""
    devices = [str(t.device) for t in inputs]
    found = " and ".join(dict.fromkeys(devices))
    raise RuntimeError(
        f"{fn.name}: expected all tensors on the same device, but found tensors on {found} "
        f"(inputs on {', '.join(devices)}); move them with .to(device) first, e.g. x.to('cuda') or y.cpu()"
    )


def _device_result(fn, out, where):
    """A forward's result as the device's own array: NumPy scalars become 0-d arrays on the cpu."""
    if where is _CPU:
        return np.asarray(out)
    if type(out).__name__ != "DeviceArray":
        raise TypeError(f"{fn.name}: the {where} kernels returned a {type(out).__name__}, not a device array")
    return out


# ----------------------------------------------------------------------------
# The backward pass
# ----------------------------------------------------------------------------
def consumer_counts(roots):
    """For every tensor that requires grad below `roots`: how many recorded uses it has.

    A tensor's gradient is complete once each of its uses (each input slot of an op that
    consumed it) has sent its share; counting them first tells the pass when that is.
    Iterative, so a 10,000-op chain does not hit Python's recursion limit.
    """
    counts = {}
    seen = {id(root) for root in roots}
    stack = list(roots)
    while stack:
        fn = stack.pop().grad_fn
        if fn is None:
            continue
        for parent in fn.inputs:
            if parent.requires_grad:
                counts[id(parent)] = counts.get(id(parent), 0) + 1
                if id(parent) not in seen:
                    seen.add(id(parent))
                    stack.append(parent)
    return counts


def run_backward(roots, root_grads, retain_graph=False, create_graph=False, capture=None):
    """The backward pass: visit each tensor once its gradient is complete, and apply the chain rule.

    `pending` collects the gradient sent to each tensor by the ops that used it; a tensor is
    ready when all of its uses have reported (consumer_counts). A ready op node turns its
    gradient into its inputs' gradients (its backward); a ready leaf adds its gradient to
    .grad, as PyTorch does. `capture` (a dict keyed by id of the tensors of interest) is
    how minidl.grad collects gradients instead of writing .grad.
    """
    remaining = consumer_counts(roots)
    pending = {}
    for root, g in zip(roots, root_grads):
        accumulate(pending, root, g)
    ready = [root for root in {id(r): r for r in roots}.values() if id(root) not in remaining]
    visited = []
    with _GradMode(create_graph):
        while ready:
            node = ready.pop()
            fn = node.grad_fn
            grad = pending.pop(id(node), None)
            grad_inputs = None
            if grad is not None:
                keep = capture is None and (fn is None or node._retains_grad)  # does this gradient go to .grad?
                if node._hooks:
                    grad = run_hooks(node, grad)
                # .grad may take the gradient's memory only if nothing else can see it (store_gradient):
                # asked after the hooks, so a hook that kept the gradient (or a view of it) is seen.
                private = keep and not backward_observers and _held_only_here(grad)
                if fn is not None:
                    grad_inputs = local_gradients(fn, grad, node)
                if backward_observers:
                    notify(BackwardStep(node, fn, grad, grad_inputs, len(visited)))
                if keep:
                    store_gradient(node, grad, create_graph, private)
                elif capture is not None and id(node) in capture:
                    capture[id(node)] = grad
            if fn is not None:
                visited.append(fn)
                send_to_inputs(fn, grad_inputs, pending, remaining, ready)
    if not retain_graph:
        for fn in visited:
            fn.release()


# The op whose backward local_gradients is running, and that op's output tensor: what
# `self.output` returns then (in module variables, so the op itself never refers to its output).
_running = None
_running_output = None


def local_gradients(fn, grad, output=None):
    """The op's backward at one node: d loss/d output -> d loss/d each input, checked.

    `output` is the tensor the node made, when the caller has it: backward's `self.output`
    is then that tensor itself rather than a new one around the same array.
    Inputs that do not require grad get None, whatever the op returned for them.
    """
    global _running, _running_output
    if fn.released:
        fn._check_not_released()
    _running, _running_output = fn, output
    try:
        grad_inputs = fn.backward(grad)
    finally:
        _running = _running_output = None  # hold no tensor once the node is done
    if type(grad_inputs) is not tuple:
        grad_inputs = (grad_inputs,)
    inputs = fn.inputs
    if len(grad_inputs) != len(inputs):
        raise RuntimeError(f"backward of {fn.name} returned {len(grad_inputs)} gradients for {len(inputs)} inputs")
    checked = []
    for inp, g in zip(inputs, grad_inputs):
        if g is None or not inp.requires_grad:
            g = None
        elif type(g) is not _Tensor or g.array.shape != inp.array.shape or g.array.dtype != inp.array.dtype:
            g = _as_gradient(g, inp, fn, len(checked))
        checked.append(g)
    return checked


def send_to_inputs(fn, grad_inputs, pending, remaining, ready):
    """Pass the gradients a finished node computed on to its inputs; inputs whose every use
    has now reported become ready. (grad_inputs is None when no gradient reached the node.)"""
    for i, parent in enumerate(fn.inputs):
        if parent.requires_grad:
            if grad_inputs is not None and grad_inputs[i] is not None:
                accumulate(pending, parent, grad_inputs[i])
            key = id(parent)
            remaining[key] -= 1
            if not remaining[key]:
                ready.append(parent)


def run_hooks(tensor, grad):
    """A tensor's hooks, in the order they were registered; a hook may return a replacement gradient."""
    for hook in tuple(tensor._hooks):
        replaced = hook(grad)
        if replaced is not None:
            grad = _as_gradient(replaced, tensor, f"hook {hook!r}", 0)
    return grad


def notify(step):
    for observer in tuple(backward_observers):  # a copy: an observer may remove itself
        observer(step)


class BackwardStep:
    """One node of a backward pass: the gradient arriving at a tensor and what it sends on.

    tensor       the tensor whose gradient is complete at this step
    function     the op that made it (None for a leaf)
    grad_output  d loss / d tensor (after hooks)
    grad_inputs  the gradients this node sends to each of function.inputs (None for leaves)
    index        position in the pass: how many op nodes were visited before it
    """

    __slots__ = ("tensor", "function", "grad_output", "grad_inputs", "index")

    def __init__(self, tensor, function, grad_output, grad_inputs, index=None):
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


def chain_rule(node, grad):
    """The chain rule at one tensor, as a BackwardStep: its hooks, then its op's backward (the stepper uses this)."""
    if node._hooks:
        grad = run_hooks(node, grad)
    fn = node.grad_fn
    return BackwardStep(node, fn, grad, None if fn is None else local_gradients(fn, grad, node))


def _as_gradient(g, like, source, index):
    """Check a gradient returned by `source` (a Function or hook) and make it a Tensor of like's shape/dtype."""
    if type(g) is not _Tensor:
        g = (
            _Tensor._make(np.asarray(g), device=like.device)
            if like.device is _CPU
            else _Tensor._make(g, device=like.device)
        )
    if g.array.shape != like.array.shape:
        raise RuntimeError(
            f"backward of {source} returned a gradient of shape {g.shape} for input {index}, "
            f"which has shape {like.shape}"
        )
    if g.array.dtype != like.array.dtype:
        g = g.astype(like.dtype)
    return g


def accumulate(pending, tensor, grad):
    """Add `grad` to what `tensor` has collected so far: a tensor used twice gets the sum of both gradients."""
    key = id(tensor)
    pending[key] = pending[key] + grad if key in pending else grad


def store_gradient(tensor, grad, create_graph=False, private=False):
    """Add a finished gradient to tensor.grad, as PyTorch does.

    .grad owns its memory, because later passes add into it in place: a `private` gradient
    (a fresh array nobody else refers to, the usual case) is taken as it is; anything else
    is copied (one gradient handed to two tensors by an addition, a view, the gradient the
    caller passed to backward). With create_graph the gradient stays part of its graph.
    """
    if create_graph and tensor.grad is not None:
        tensor.grad = tensor.grad + grad
    elif create_graph and grad.grad_fn is not None:
        tensor.grad = grad  # part of the recorded graph: later passes replace it, never add into it
    elif tensor.device is not _CPU:  # a device's arrays: the same rules, through its kernels
        _store_device_gradient(tensor, grad, private)
    elif tensor.grad is None:
        owned = private and grad.array.dtype == tensor.dtype
        tensor.grad = _Tensor._make(
            grad.array if owned else np.array(grad.array, dtype=tensor.dtype), device=tensor.device
        )
    elif tensor.grad.grad_fn is None and tensor.grad.array.flags.writeable:
        tensor.grad.array += grad.array  # repeated backward() accumulates, as in PyTorch
    else:  # .grad came from a create_graph pass (part of a graph, maybe a read-only view)
        tensor.grad = _Tensor._make(tensor.grad.array + grad.array, device=tensor.device)


def _store_device_gradient(tensor, grad, private):
    """store_gradient for a tensor on a device: .grad owns its memory and accumulates in place."""
    k = active_kernels[tensor.device]
    if tensor.grad is None:
        array = grad.array
        if not private or array.dtype != tensor.dtype:
            array = k.astype(array, tensor.dtype)  # a copy (astype never returns its input)
        tensor.grad = _Tensor._make(array, device=tensor.device)
    elif tensor.grad.grad_fn is None:
        k.setitem(tensor.grad.array, Ellipsis, k.add(tensor.grad.array, grad.array))
    else:
        tensor.grad = _Tensor._make(k.add(tensor.grad.array, grad.array), device=tensor.device)


def _held_only_here(grad):
    """Whether the gradient the pass just took out of `pending` is referenced by nothing else.

    sys.getrefcount counts its own argument: the tensor is held by the caller's variable and
    this function's parameter, its array by the tensor alone. A view of another array, or a
    read-only one, is never private.
    """
    if type(grad.array) is not np.ndarray:  # a device array: views share a buffer we cannot see from here
        return False
    return (
        sys.getrefcount(grad) <= 3
        and sys.getrefcount(grad.array) <= 2
        and grad.array.base is None
        and grad.array.flags.writeable
    )


def initial_gradient(tensor, gradient):
    """The gradient backward starts from: ones for a scalar, else the given one (checked)."""
    if not tensor.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no grad_fn; "
            "did you forget requires_grad=True on an input, or compute it under no_grad()?"
        )
    if gradient is None:
        if tensor.array.size != 1:
            raise RuntimeError(
                f"backward: gradient can be created implicitly only for scalar outputs; this tensor "
                f"has shape {tensor.shape}. Pass backward(gradient) with a gradient of that shape, "
                "or reduce it first (e.g. .sum())."
            )
        if tensor.device is not _CPU:
            return _Tensor._make(active_kernels[tensor.device].ones(tensor.shape, tensor.dtype), device=tensor.device)
        return _Tensor._make(np.ones_like(tensor.array), device=tensor.device)
    if isinstance(gradient, _Tensor):
        g = gradient
    else:
        g = _Tensor(np.asarray(gradient, dtype=tensor.dtype), device=tensor.device)
    if g.device is not tensor.device:
        raise RuntimeError(f"backward: the gradient is on {g.device} but the tensor is on {tensor.device}")
    if g.shape != tensor.shape:
        raise ValueError(f"backward: gradient has shape {g.shape} but the tensor has shape {tensor.shape}")
    return g


def backward(tensor, gradient=None, retain_graph=False, create_graph=False):
    """Compute d tensor / d leaf for every leaf that requires grad, adding it to leaf.grad.

    - gradient: d loss / d tensor; required unless tensor has one element.
    - retain_graph: keep the graph so backward can run through it again.
    - create_graph: record the backward pass itself so it can be differentiated
      (implies retain_graph).
    Gradients accumulate across calls; zero them (optimizer.zero_grad()) between steps.
    """
    root_grad = initial_gradient(tensor, gradient)
    run_backward([tensor], [root_grad], retain_graph or create_graph, create_graph)


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
    run_backward(outputs, root_grads, retain_graph, create_graph, capture)
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
