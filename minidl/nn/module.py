"""Module: the base class of every layer and model, as in PyTorch.

A Module owns Parameters (what the optimizer learns), buffers (state that is saved
but not learned, like batch norm's running averages) and child Modules. Assigning
any of them to an attribute registers it, which is how `parameters()`, `state_dict()`
and the readable `repr` tree find everything.

Calling a module runs `forward` and, around it, the hooks and the module call stack
(`module_stack`, named by `named_module_stack()`) that the backprop debugger reads to say
which layer created an op.
"""

import weakref
from collections import OrderedDict, namedtuple

import numpy as np

from minidl.autograd import no_grad
from minidl.nn.hooks import BackwardHookCall
from minidl.nn.parameter import Parameter
from minidl.tensor import Tensor, _device

# The modules whose forward is running right now, outermost first: [net, seq, conv].
# Module.__call__ pushes the module itself, which costs next to nothing; the names
# ("Net", "Net.features", "Net.features.0") are worked out by named_module_stack() only
# when a tool asks, e.g. the backprop debugger tagging the ops it records. A stand-in for
# a module may push a (name, object) pair of its own instead.
module_stack = []

# Every module alive, held weakly: the backprop debugger names a parameter by its path in the model
# that holds it ("Sequential.0.weight") from here, so nothing needs recording during forward.
live_modules = weakref.WeakSet()


def named_module_stack():
    """The running modules as (qualified name, module) pairs, outermost first:
    [("Net", net), ("Net.features", seq), ("Net.features.0", conv)].

    The root is named by its class, each other module by its path from the module below it
    on the stack (usually its own parent: "Net" + "." + "features").
    """
    named = []
    for entry in module_stack:
        if isinstance(entry, tuple):  # a stand-in that named itself
            named.append(entry)
        elif not named:
            named.append((type(entry).__name__, entry))
        else:
            named.append((entry._name_below(*named[-1]), entry))
    return named


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
StateDictDifferences = namedtuple("StateDictDifferences", ["missing_keys", "unexpected_keys", "shape_mismatches"])


def compare_state_dicts(own, other):
    """How `other` (name -> Tensor or array) differs from `own` (a module's state_dict()).

    missing_keys      names in own that other lacks
    unexpected_keys   names in other that own lacks
    shape_mismatches  (name, own shape, other shape) for the names both have with different shapes
    Module.load_state_dict and minidl.load_checkpoint both check with this, each in its own words.
    """
    missing = [k for k in own if k not in other]
    unexpected = [k for k in other if k not in own]
    mismatches = []
    for k, target in own.items():
        if k in other:
            shape = tuple(np.shape(other[k].array if isinstance(other[k], Tensor) else other[k]))
            if shape != tuple(target.shape):
                mismatches.append((k, tuple(target.shape), shape))
    return StateDictDifferences(missing, unexpected, mismatches)


class RemovableHandle:
    """Returned by the register_*_hook methods: call .remove() to unregister the hook."""

    def __init__(self, hooks, key):
        self._hooks = hooks
        self._key = key

    def remove(self):
        self._hooks.pop(self._key, None)


_next_hook_key = [0]


def _add_hook(hooks, hook):
    _next_hook_key[0] += 1
    hooks[_next_hook_key[0]] = hook  # dicts keep insertion order: hooks run in registration order
    return RemovableHandle(hooks, _next_hook_key[0])


class Module:
    """Base class for layers and models. Subclasses set attributes in __init__ and define forward().

        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.hidden = nn.Linear(64, 128)   # registered as a child: its parameters are ours
                self.out = nn.Linear(128, 10)

            def forward(self, x):
                return self.out(self.hidden(x).relu())

    `training` is True after construction and after .train(), False after .eval();
    layers such as Dropout and BatchNorm behave differently in the two modes.
    """

    def __new__(cls, *args, **kwargs):
        module = super().__new__(cls)
        live_modules.add(module)  # in __new__, so that copies (copy.copy skips __init__) count too
        return module

    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these dicts to exist already.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", {})
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "_backward_hooks", {})
        object.__setattr__(self, "_name_in_parent", None)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Module must define forward()")

    # ------------------------------------------------------------- calling
    def __call__(self, *args, **kwargs):
        module_stack.append(self)  # named only if someone asks: see named_module_stack()
        try:
            if self._has_hooks():
                return self._call_with_hooks(args, kwargs)
            return self.forward(*args, **kwargs)
        finally:
            module_stack.pop()

    def _has_hooks(self):
        return bool(self._forward_pre_hooks or self._forward_hooks or self._backward_hooks)

    def _name_below(self, caller_name, caller):
        """This module's qualified name when called by `caller` (named caller_name), e.g. "Net.features.0"."""
        name = self._name_in_parent
        caller_children = getattr(caller, "_modules", None)
        if name is not None and caller_children is not None and caller_children.get(name) is self:
            return caller_name + "." + name  # the common case: called by its own parent
        return self._nested_name(caller_name, caller)

    def _nested_name(self, caller_name, caller):
        """The name of a deeper descendant of the calling module, e.g. an LSTM's cells.0 (a ModuleList
        item: lists are never called themselves). Searched once per caller, then cached."""
        cached = self.__dict__.get("_nested_name_cache")
        if cached is not None and cached[0] == id(caller) and cached[1] == caller_name:
            return cached[2]
        name = type(self).__name__  # not found below the caller: a module shared from elsewhere
        for path, module in getattr(caller, "named_modules", list)():
            if module is self and path:
                name = caller_name + "." + path
                break
        object.__setattr__(self, "_nested_name_cache", (id(caller), caller_name, name))
        return name

    def _call_with_hooks(self, args, kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        backward_hooks = BackwardHookCall(self, args) if self._backward_hooks else None
        if backward_hooks is not None:
            args = backward_hooks.wrap_inputs(args)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        if backward_hooks is not None:
            output = backward_hooks.wrap_outputs(output)
        return output

    # --------------------------------------------------------------- hooks
    def register_forward_pre_hook(self, hook):
        """hook(module, args) runs before forward; returning a value replaces args."""
        return _add_hook(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook):
        """hook(module, args, output) runs after forward; returning a value replaces the output."""
        return _add_hook(self._forward_hooks, hook)

    def register_full_backward_hook(self, hook):
        """hook(module, grad_input, grad_output) runs when the gradients w.r.t. the module's
        inputs are computed; returning a tuple replaces grad_input. Entries are None for
        inputs that are not tensors requiring grad (and outputs that got no gradient).
        See minidl/nn/hooks.py for how it is built from tensor hooks."""
        return _add_hook(self._backward_hooks, hook)

    # -------------------------------------------------------- registration
    def __setattr__(self, name, value):
        parameters = self.__dict__.get("_parameters")
        if parameters is None:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called; "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )
        if isinstance(value, Parameter):
            self._forget(name)
            parameters[name] = value
        elif name in parameters:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} of {type(self).__name__} "
                    "(a Parameter or None expected); wrap it: nn.Parameter(value)"
                )
            parameters[name] = None
        elif isinstance(value, Module):
            self._forget(name)
            self._modules[name] = value
            object.__setattr__(value, "_name_in_parent", name)
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} (a Tensor or None expected)")
            self._buffers[name] = value
        elif name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} (a Module expected)")
            self._modules[name] = None
        object.__setattr__(self, name, value)

    def _forget(self, name):
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._modules.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __delattr__(self, name):
        self._forget(name)
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Add a parameter (or None, for an optional one like a missing bias)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """Add state that is not learned but belongs to the model (saved in state_dict if persistent)."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}")
        if "." in name or not name:
            raise KeyError(f"register_buffer: invalid buffer name {name!r}")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name, module):
        """Register `module` as the child `name` (or None: a declared but empty slot), like setattr."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        if module is not None:
            setattr(self, name, module)
        else:
            self._register_none_module(name)

    def _register_none_module(self, name):
        self._forget(name)
        self._modules[name] = None
        object.__setattr__(self, name, None)

    # ---------------------------------------------------------- traversal
    def named_parameters(self, prefix="", recurse=True):
        """(name, Parameter) pairs, e.g. ("hidden.weight", ...); each parameter once even if shared."""
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (module_prefix + "." + name if module_prefix else name), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, b in module._buffers.items():
                if b is not None:
                    yield (module_prefix + "." + name if module_prefix else name), b

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix="", _seen=None):
        """This module and every descendant, depth first, each once: ("", self), ("hidden", ...)."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(prefix + "." + name if prefix else name, seen)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def apply(self, fn):
        """Call fn(module) on every child (recursively), then on self; e.g. for custom init."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def num_parameters(self):
        return sum(p.array.size for p in self.parameters())

    # ----------------------------------------------------------- modes
    def train(self, mode=True):
        """Switch this module and its children to training mode (or evaluation with mode=False)."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode: Dropout keeps everything, BatchNorm uses its running averages."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Forget accumulated gradients (backward adds into .grad, as in PyTorch)."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                _zero_gradient(p)

    def to(self, *args, dtype=None, device=None, non_blocking=False):
        """model.to(device), model.to(dtype), model.to(device, dtype), as in PyTorch; returns the module.

        A dtype converts the floating point parameters and buffers in place (e.g. float64 for
        gradcheck); the new arrays are C-contiguous whatever the old layout, so the C update
        kernels can step them. A device moves them in place, as PyTorch does: each Parameter
        stays the same object (an optimizer made before keeps working) and takes new memory on
        the device, its .grad moved with it. Optimizer state moves on the optimizer's next step.
        """
        for arg in args:
            if isinstance(arg, Tensor):
                dtype, device = arg.dtype, arg.device
            elif isinstance(arg, str):
                device = arg
            else:
                dtype = arg
        if device is not None:
            where = _device(device, "Module.to")  # raises for a device that is not available
            for t in list(self.parameters()) + list(self.buffers()):
                if t.device is not where:
                    _move_in_place(t, where)
        if dtype is None:
            return self
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Module.to: only floating point dtypes convert a module, got {dtype}")
        for t in list(self.parameters()) + list(self.buffers()):
            if t.array.dtype.kind == "f":
                t.array = t.array.astype(dtype, order="C") if t.device == "cpu" else t.array.astype(dtype)
                t.grad = None
                t._bump_version()
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else device)

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    # ----------------------------------------------------------- saving
    def state_dict(self):
        """Every parameter and persistent buffer by qualified name, as tensors sharing the module's memory."""
        state = OrderedDict()
        for prefix, module in self.named_modules():
            dot = prefix + "." if prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    state[dot + name] = p.detach()
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent_buffers:
                    state[dot + name] = b.detach()
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy values (Tensors or arrays) into this module's parameters and buffers, in place.

        strict=True (the default) raises if a name is missing or unexpected; shapes must
        always match. The error lists every problem, not just the first.
        """
        own = self.state_dict()
        missing, unexpected, mismatches = compare_state_dicts(own, state_dict)
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if mismatches:
            problems.append(
                "shape mismatch for "
                + "; ".join(f"{k}: expected shape {ours}, got {theirs}" for k, ours, theirs in mismatches)
            )
        if problems:
            raise KeyError(f"load_state_dict into {type(self).__name__}: " + "; ".join(problems))
        with no_grad():
            for k, target in own.items():
                if k in state_dict:
                    value = state_dict[k]
                    target.copy_(value if isinstance(value, Tensor) else np.asarray(value))
        return IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------- printing
    def extra_repr(self):
        """The text between the parentheses in repr, e.g. "in_features=64, out_features=10"."""
        return ""

    def __repr__(self):
        lines = [self.extra_repr()] if self.extra_repr() else []
        for name, child in self._modules.items():
            lines.append(f"({name}): " + repr(child).replace("\n", "\n  "))
        head = type(self).__name__ + "("
        if not self._modules:
            return head + "".join(lines) + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _move_in_place(t, where):
    """Move a parameter or buffer to the device `where`, keeping the Python object (and its .grad with it)."""
    with no_grad():
        t.array = t.to(where).array
        t.device = where
        if t.grad is not None:
            t.grad = t.grad.detach().to(where)
    t._bump_version()  # old graphs saw the old memory


def _zero_gradient(p):
    """p.grad = 0 in place, on whatever device p lives."""
    with no_grad():
        p.grad.detach().zero_()
