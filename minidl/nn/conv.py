"""Convolution and pooling layers (NCHW, and NCL for 1-D signals), wrapping the ops in minidl.ops.nn.

A convolution is a matrix multiply applied over patches as a sliding window: weights
are shared across space but not across depth. Pooling (max or average) then shrinks
the feature maps, so stacking conv + pool trades spatial extent for depth.
"""

import math

import numpy as np

from minidl import ops
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter, check_sizes
from minidl.ops.nn import one_int, pair_of_ints


class Conv2d(Module):
    """(N, C_in, H, W) -> (N, C_out, OH, OW), OH = (H + 2·padding - dilation·(kh - 1) - 1) // stride + 1.

    weight: (C_out, C_in/groups, kh, kw), bias: (C_out,). kernel_size, stride, padding and
    dilation are ints or (h, w) pairs; groups > 1 splits the channels into independent
    convolutions (groups = C_in: depthwise). Initialized like PyTorch (kaiming_uniform_ with
    a=sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) where fan_in = C_in/groups·kh·kw).
    """

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
        dtype=np.float32,
    ):  # fmt: skip
        check_sizes("Conv2d", in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair_of_ints(kernel_size, "kernel_size", "Conv2d")
        self.stride = pair_of_ints(stride, "stride", "Conv2d")
        self.padding = pair_of_ints(padding, "padding", "Conv2d")
        self.dilation = pair_of_ints(dilation, "dilation", "Conv2d")
        self.groups = groups
        check_sizes("Conv2d", kernel_size=min(self.kernel_size), stride=min(self.stride), dilation=min(self.dilation))
        self.weight = Parameter.empty((out_channels, in_channels // groups) + self.kernel_size, dtype=dtype)
        self.bias = Parameter.empty(out_channels, dtype=dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels // self.groups * math.prod(self.kernel_size))
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        self.check_input(x)
        return ops.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def check_input(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected input (N, {self.in_channels}, H, W), got shape {x.shape}")

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


class _Pool2d(Module):
    """What the pooling layers share: a window (int or (h, w)), its stride (default: the window) and padding."""

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
    """Max over each kernel_size window (stride defaults to kernel_size).

    The gradient goes only to the element that won each window.
    """

    pool = staticmethod(ops.max_pool2d)


class AvgPool2d(_Pool2d):
    """Mean over each window (zero padding counts towards the mean, as PyTorch's default).

    The gradient is shared equally by the window's elements.
    """

    pool = staticmethod(ops.avg_pool2d)


class Conv1d(Module):
    """(N, C_in, L) -> (N, C_out, L_out), L_out = (L + 2·padding - dilation·(k - 1) - 1) // stride + 1.

    weight: (C_out, C_in/groups, k), bias: (C_out,), as torch.nn.Conv1d (and initialized like it,
    fan_in = C_in/groups·k). A 1-D signal is a one-row image: forward is conv2d on (N, C, 1, L)
    with a (1, k) kernel, so Conv1d and Conv2d with kernel_size=(1, k) compute the same thing.
    """

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
        dtype=np.float32,
    ):  # fmt: skip
        check_sizes("Conv1d", in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv1d: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = one_int(kernel_size, "kernel_size", "Conv1d")
        self.stride = one_int(stride, "stride", "Conv1d")
        self.padding = one_int(padding, "padding", "Conv1d")
        self.dilation = one_int(dilation, "dilation", "Conv1d")
        self.groups = groups
        check_sizes("Conv1d", kernel_size=self.kernel_size, stride=self.stride, dilation=self.dilation)
        self.weight = Parameter.empty((out_channels, in_channels // groups, self.kernel_size), dtype=dtype)
        self.bias = Parameter.empty(out_channels, dtype=dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels // self.groups * self.kernel_size)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected input (N, {self.in_channels}, L), got shape {x.shape}")
        return ops.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding:
            text += f", padding={self.padding}"
        if self.dilation != 1:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


class MaxPool1d(_Pool2d):
    """Max over each window of kernel_size along L of (N, C, L) (stride defaults to kernel_size)."""

    pool = staticmethod(ops.max_pool1d)


class AvgPool1d(_Pool2d):
    """Mean over each window of kernel_size along L of (N, C, L) (zero padding counts towards the mean)."""

    pool = staticmethod(ops.avg_pool1d)


class AdaptiveAvgPool2d(Module):
    """Average (N, C, H, W) down to output_size (int or (oh, ow); None keeps a size), whatever H and W are.

    AdaptiveAvgPool2d((1, 1)) is global average pooling: one number per feature map (GoogLeNet's top).
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return ops.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(AdaptiveAvgPool2d):
    """Average (N, C, L) down to output_size bins along L."""

    def forward(self, x):
        return ops.adaptive_avg_pool1d(x, self.output_size)


class GlobalAvgPool(Module):
    """(N, C, *spatial) -> (N, C): the mean of each feature map over all its positions.

    What GoogLeNet puts before its classifier instead of large fully connected layers; the same as
    AdaptiveAvgPool2d((1, 1)) followed by Flatten, for 1-D (N, C, L) and 2-D (N, C, H, W) inputs alike.
    """

    def forward(self, x):
        if x.ndim < 3:
            raise ValueError(f"GlobalAvgPool: expected input (N, C, L) or (N, C, H, W), got shape {x.shape}")
        return x.mean(axis=tuple(range(2, x.ndim)))
