"""Full backward hooks for Modules, built from tensor hooks (Tensor.register_hook).

A module's backward hook wants (grad_input, grad_output): the gradients w.r.t. the
tensors that went into this call of the module and the ones that came out. A hook on the
caller's tensors would see too much (their gradient from *every* consumer), so the module
gets identity views of its inputs and hands back identity views of its outputs; hooks on
those views see exactly the gradient flowing through this call. When there are several
inputs (or outputs) they go through one flat packed tensor, so a single tensor hook sees
the whole grad_input at once and can replace it (PyTorch uses one graph node for the
same reason). Backward visits the outputs before the inputs, so grad_output is known by
the time grad_input arrives.
"""

from minidl.autograd import Function
from minidl.ops.elementwise import mul
from minidl.ops.shape import concat, split
from minidl.tensor import Tensor


class GradientTap(Function):
    """y = x as a node of its own: a tensor hook on y sees only the gradient that flows through it.

    (Not nn.Identity, the Module: this is a graph node that only exists to carry a hook.)
    """

    is_view = True

    def forward(self, x):
        return x

    def backward(self, grad):
        return grad


def _pack(tensors):
    """(packed, pieces): one tensor every gradient flows through, and the tensors as seen after it."""
    if len(tensors) == 1:
        packed = GradientTap.apply(tensors[0])
        return packed, [packed]
    packed = concat([t.reshape(-1) for t in tensors])
    flat = split(packed, [t.array.size for t in tensors])
    return packed, [f.reshape(t.shape) for f, t in zip(flat, tensors)]


def _unpack(grad, tensors):
    if len(tensors) == 1:
        return [grad]
    return [g.reshape(t.shape) for g, t in zip(split(grad, [t.array.size for t in tensors]), tensors)]


def flatten_tensors(value):
    """The tensors in a (possibly nested) tuple/list, in order."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in flatten_tensors(v)]
    return []


def _replace_tensors(value, replacements):
    if isinstance(value, Tensor):
        return replacements.get(id(value), value)
    if isinstance(value, (tuple, list)):
        return type(value)(_replace_tensors(v, replacements) for v in value)
    return value


class BackwardHookCall:
    """The bookkeeping of one forward call of a module that has full backward hooks.

    The hooks run once per backward pass through this call, as in PyTorch: twice after
    `loss.backward(retain_graph=True); loss.backward()`. grad_output is collected afresh
    in each pass, so an output that gets no gradient in a pass shows None in that pass.
    """

    def __init__(self, module, args):
        self.module = module
        self.n_args = len(args)
        self.input_positions = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        self.grad_output = []

    def wrap_inputs(self, args):
        """The args the module's forward should see: identity views of the tensors that need grad."""
        if not self.input_positions:
            return args
        tensors = [args[i] for i in self.input_positions]
        packed, pieces = _pack(tensors)
        packed.register_hook(lambda grad: self._on_grad_input(grad, tensors))
        args = list(args)
        for i, piece in zip(self.input_positions, pieces):
            args[i] = piece
        return tuple(args)

    def wrap_outputs(self, output):
        """The output the caller should see: identity views whose gradients are grad_output."""
        outputs = flatten_tensors(output)
        self.grad_output = [None] * len(outputs)  # None stays for outputs that get no gradient
        slots = [i for i, t in enumerate(outputs) if t.requires_grad]
        if not slots:
            return output
        tensors = [outputs[i] for i in slots]
        packed, pieces = _pack(tensors)
        for slot, piece in zip(slots, pieces):
            piece.register_hook(lambda grad, slot=slot: self.grad_output.__setitem__(slot, grad))
        if not self.input_positions:
            # No input needs a gradient: once the packed outputs have theirs, nothing else will come.
            packed.register_hook(lambda grad: self._run([]))
        return _replace_tensors(output, {id(t): p for t, p in zip(tensors, pieces)})

    def _on_grad_input(self, grad, tensors):
        replaced = self._run(_unpack(grad, tensors))
        if replaced is None:
            return None
        replaced = [g if g is not None else mul(t, 0) for g, t in zip(replaced, tensors)]
        return replaced[0] if len(replaced) == 1 else concat([g.reshape(-1) for g in replaced])

    def _run(self, grads):
        """Call every hook with (module, grad_input, grad_output); return the replaced input grads, or None.

        Runs last in a backward pass through this call, so it also clears grad_output for the next pass.
        """
        grad_input = [None] * self.n_args
        for i, g in zip(self.input_positions, grads):
            grad_input[i] = g
        grad_input, grad_output = tuple(grad_input), tuple(self.grad_output)
        self.grad_output = [None] * len(self.grad_output)
        replaced = False
        for hook in list(self.module._backward_hooks.values()):
            result = hook(self.module, grad_input, grad_output)
            if result is None:
                continue
            result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
            if len(result) != len(grad_input):
                raise RuntimeError(
                    f"{type(self.module).__name__}: a backward hook returned {len(result)} gradients "
                    f"for {len(grad_input)} inputs"
                )
            grad_input, replaced = result, True
        return [grad_input[i] for i in self.input_positions] if replaced else None
