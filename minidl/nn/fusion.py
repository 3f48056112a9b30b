"""Layer fusion, asked for explicitly: `fused = nn.fuse(model)`.

In every nn.Sequential of the model, a Linear or Conv2d followed by a ReLU, Sigmoid or
Tanh becomes one FusedLinear / FusedConv2d module, which runs ops.linear_act /
ops.conv2d_act: one graph node (LinearReLU, Conv2dReLU, ...) instead of two, so kernels
can apply the bias and activation while each tile of the product is still in cache.

The fused model computes the same function and shares its parameters, buffers and
unfused submodules with the original (no copies: an optimizer made for either updates
both, and their state_dict keys are the same). Nothing fuses unless you call this, so the graph you
debug is the one you wrote; `repr`, the graph drawing and the stepper show fused
layers by their names.
"""

import copy
from collections import OrderedDict

from minidl import ops
from minidl.nn.activation import ReLU, Sigmoid, Tanh
from minidl.nn.container import Sequential
from minidl.nn.conv import Conv2d
from minidl.nn.linear import Linear
from minidl.nn.module import Module

# The activation modules a layer can absorb, by the name the fused ops know them by.
FUSABLE_ACTIVATIONS = {ReLU: "relu", Sigmoid: "sigmoid", Tanh: "tanh"}


class FusedLinear(Module):
    """act(x Wᵀ + b) as one op: a Linear and the activation after it (made by nn.fuse)."""

    def __init__(self, linear, activation):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight  # shared, not copied
        self.bias = linear.bias
        self.activation = activation
        self._layer = (linear,)  # the original, for its input check (a tuple keeps it unregistered)
        self.train(linear.training)

    def forward(self, x):
        self._layer[0].check_input(x)
        return ops.linear_act(x, self.weight, self.bias, self.activation)

    def extra_repr(self):
        return f"{self._layer[0].extra_repr()}, activation={self.activation}"


class FusedConv2d(Module):
    """act(conv(x, W) + b) as one op: a Conv2d and the activation after it (made by nn.fuse)."""

    def __init__(self, conv, activation):
        super().__init__()
        self.weight = conv.weight  # shared, not copied
        self.bias = conv.bias
        self.activation = activation
        self._layer = (conv,)
        self.train(conv.training)

    def forward(self, x):
        conv = self._layer[0]
        conv.check_input(x)
        return ops.conv2d_act(
            x, self.weight, self.bias, conv.stride, conv.padding, conv.dilation, conv.groups, self.activation
        )

    def extra_repr(self):
        return f"{self._layer[0].extra_repr()}, activation={self.activation}"


_FUSED = {Linear: FusedLinear, Conv2d: FusedConv2d}


def fuse(model):
    """A model computing the same function with each Sequential's layer + activation pairs fused.

    Parameters and buffers are shared with `model`, which is left unchanged. Pairs are
    fused only inside nn.Sequential (where "followed by" is certain) and only when neither
    module has hooks (a hook expects to see its module run on its own).
    """
    if not isinstance(model, Module):
        raise TypeError(f"fuse: expected a Module, got {type(model).__name__}")
    if isinstance(model, Sequential):
        return _fuse_sequential(model)
    children = OrderedDict((name, fuse(child)) for name, child in model.named_children())
    if all(fused is original for fused, original in zip(children.values(), model.children())):
        return model  # nothing to fuse below: the model itself
    clone = copy.copy(model)  # a shallow copy: same parameters, buffers and attributes
    for attribute in ("_parameters", "_buffers", "_modules", "_forward_pre_hooks", "_forward_hooks", "_backward_hooks"):
        object.__setattr__(clone, attribute, copy.copy(getattr(model, attribute)))
    for name, child in children.items():
        setattr(clone, name, child)
    return clone


def _fuse_sequential(sequential):
    items = list(sequential._modules.items())
    fused = OrderedDict()
    i = 0
    while i < len(items):
        name, module = items[i]
        following = items[i + 1][1] if i + 1 < len(items) else None
        activation = _fusable(module, following)
        if activation is None:
            fused[name] = fuse(module) if module is not None else module
            i += 1
        else:  # keep the layer's name, so state_dict keys stay the same ("0.weight", not "1.weight")
            fused[name] = _FUSED[type(module)](module, activation)
            i += 2
    if all(a is b for a, b in zip(fused.values(), sequential._modules.values())) and len(fused) == len(items):
        return sequential
    result = Sequential(fused)
    for attribute in ("training", "_forward_pre_hooks", "_forward_hooks", "_backward_hooks"):
        object.__setattr__(result, attribute, copy.copy(getattr(sequential, attribute)))
    return result


def _fusable(module, following):
    """The fused ops' name for `following` if (module, following) can run as one op, else None."""
    if type(module) not in _FUSED or following is None or module._has_hooks() or following._has_hooks():
        return None
    return FUSABLE_ACTIVATIONS.get(type(following))
