"""Convolution and pooling layers (NCHW), wrapping the ops in minidl.ops.nn.

A convolution is a matrix multiply applied over patches as a sliding window: weights
are shared across space but not across depth. Pooling (max or average) then shrinks
the feature maps, so stacking conv + pool trades spatial extent for depth.
"""

import math

import numpy as np

from minidl import ops
from minidl.nn import init
from minidl.nn.module import FusableLayer, Module
from minidl.nn.parameter import Parameter, check_sizes


def _square(value, name, layer):
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"{layer}: only square {name} is supported, got {value}")
        value = value[0]
    return int(value)


class Conv2d(FusableLayer):
    """(N, C_in, H, W) -> (N, C_out, OH, OW) with OH = (H + 2·padding - kernel_size) // stride + 1.

    weight: (C_out, C_in, k, k), bias: (C_out,). Initialized like PyTorch (kaiming_uniform_ with
    a=sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) where fan_in = C_in·k·k).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, dtype=np.float32):
        check_sizes("Conv2d", in_channels=in_channels, out_channels=out_channels)
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _square(kernel_size, "kernel_size", "Conv2d")
        self.stride = _square(stride, "stride", "Conv2d")
        self.padding = _square(padding, "padding", "Conv2d")
        k = self.kernel_size
        self.weight = Parameter.empty((out_channels, in_channels, k, k), dtype=dtype)
        self.bias = Parameter.empty(out_channels, dtype=dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels * self.kernel_size**2)
            init.uniform_(self.bias, -bound, bound)

    def forward_with(self, x, activation):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected input (N, {self.in_channels}, H, W), got shape {x.shape}")
        return ops.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding, activation=activation)

    def extra_repr(self):
        k, s = self.kernel_size, self.stride
        text = f"{self.in_channels}, {self.out_channels}, kernel_size=({k}, {k}), stride=({s}, {s})"
        if self.padding:
            text += f", padding=({self.padding}, {self.padding})"
        return text + ("" if self.bias is not None else ", bias=False")


class _Pool2d(Module):
    """What the pooling layers share: a square window, its stride (default: the window) and padding."""

    pool = None  # the functional op, set by each subclass

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x):
        return type(self).pool(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max over each kernel_size x kernel_size window (stride defaults to kernel_size).

    The gradient goes only to the element that won each window.
    """

    pool = staticmethod(ops.max_pool2d)


class AvgPool2d(_Pool2d):
    """Mean over each window (zero padding counts towards the mean, as PyTorch's default).

    The gradient is shared equally by the window's elements.
    """

    pool = staticmethod(ops.avg_pool2d)
