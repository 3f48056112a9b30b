"""Containers: Sequential (run children in order) and ModuleList (hold a list of children).

Both register their children under the names "0", "1", ... so state_dict keys
look like "0.weight", as in PyTorch.
"""

from collections import OrderedDict

from minidl import autograd
from minidl.backend import active_kernels
from minidl.nn.activation import ReLU, Sigmoid, Tanh
from minidl.nn.module import FusableLayer, Module

# The activation modules a Linear or Conv2d can absorb, and the name ops.linear_act knows them by.
_FUSABLE_ACTIVATIONS = {ReLU: "relu", Sigmoid: "sigmoid", Tanh: "tanh"}


class _ModuleSequence(Module):
    """What both containers share: children in order, appended, counted, iterated and indexed."""

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: can only hold Modules, got {type(module).__name__}")
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._from_items(list(self._modules.items())[index])
        return list(self._modules.values())[index]


class Sequential(_ModuleSequence):
    """Chain modules: Sequential(a, b, c)(x) == c(b(a(x))). Also accepts an OrderedDict of named modules.

    Layer fusion: on kernels that prefer it (the C kernels; never the NumPy reference
    kernels), a Linear or Conv2d followed by a ReLU, Sigmoid or Tanh runs as ONE op,
    ops.linear_act: the bias and activation are applied inside the GEMM and backward
    makes one pass for the activation's derivative and the bias gradient. The result is
    the same; the graph has one node (LinearAct) where it would have had Linear and ReLU.
    Fusion steps aside whenever something watches the pieces: a hook on either module,
    or a debugging tool observing the forward pass (graph drawing, anomaly mode). Set
    `fuse_layers = False` on a Sequential to keep its layers apart anyway.
    """

    fuse_layers = True

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(module).__name__}, not a Module")
                self.add_module(str(i), module)

    def forward(self, x):
        modules = list(self._modules.values())
        fuse = (
            self.fuse_layers
            and not autograd.forward_observers
            and getattr(active_kernels.get(getattr(x, "device", None)), "fuse_layers", False)
        )
        i = 0
        while i < len(modules):
            module = modules[i]
            activation = _fusable_activation(module, modules[i + 1]) if fuse and i + 1 < len(modules) else None
            if activation is None:
                x = module(x)
                i += 1
            else:
                x = module.forward_fused(x, activation)
                i += 2  # the activation module ran inside the Linear or Conv2d
        return x

    @staticmethod
    def _from_items(items):
        return Sequential(OrderedDict(items))  # a slice keeps its children's names


def _fusable_activation(module, following):
    """linear_act's name for `following` if (module, following) can run as one fused op, else None."""
    if not isinstance(module, FusableLayer) or module._has_hooks() or following._has_hooks():
        return None
    return _FUSABLE_ACTIVATIONS.get(type(following))


class ModuleList(_ModuleSequence):
    """A list of modules whose parameters belong to the owner (a plain Python list would hide them)."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    @staticmethod
    def _from_items(items):
        return ModuleList(module for _, module in items)  # a slice renumbers from 0, like a list

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward: iterate over it and call its modules")
