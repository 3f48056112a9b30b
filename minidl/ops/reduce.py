"""Reductions (sum, mean, max, min, var, logsumexp) and the softmax family.

A reduction's backward spreads the output gradient back over the elements that
were reduced: equally for sum and mean, only to the winners for max and min.
"""

import math

import numpy as np

from minidl.autograd import Function
from minidl.ops._util import normalize_axis
from minidl.tensor import Tensor


def _kept_shape(shape, axes):
    """The shape of the reduction result with keepdims=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _spread(grad, shape, axes):
    """Copy a reduction's gradient back over every element that was reduced."""
    if grad.ndim not in (0, len(shape)):  # keepdims=False removed axes: put them back as size 1
        grad = grad.reshape(_kept_shape(shape, axes))
    return grad.expand(shape)


class Sum(Function):
    """y = sum of x over axes;   dy/dx = 1 for every summed element."""

    def forward(self, x, axes, keepdims):
        self.axes = axes
        return self.kernels.sum(x, axis=axes, keepdims=keepdims)

    def backward(self, grad):
        (x,) = self.inputs
        return _spread(grad, x.shape, self.axes)


class Mean(Function):
    """y = mean of x over axes;   dy/dx = 1/n for every averaged element."""

    def forward(self, x, axes, keepdims):
        self.axes = axes
        self.count = math.prod([x.shape[a] for a in axes])
        return self.kernels.sum(x, axis=axes, keepdims=keepdims) / x.dtype.type(self.count)

    def backward(self, grad):
        (x,) = self.inputs
        return _spread(grad, x.shape, self.axes) / self.count


class _Extremum(Function):
    """Shared by Max and Min: the gradient goes to the elements equal to the result.

    Ties share the gradient equally, so the total passed back equals the gradient received.
    """

    def forward(self, x, axes, keepdims):
        self.axes = axes
        return self.reduce(x, axis=axes, keepdims=keepdims)

    def backward(self, grad):
        (x,) = self.saved_tensors
        kept = _kept_shape(x.shape, self.axes)
        winners = (x == self.output.reshape(kept)).astype(grad.dtype)
        share = winners / winners.sum(axis=self.axes, keepdims=True)
        return grad.reshape(kept) * share


class Max(_Extremum):
    def reduce(self, x, axis, keepdims):
        return self.kernels.max(x, axis=axis, keepdims=keepdims)


class Min(_Extremum):
    def reduce(self, x, axis, keepdims):
        return self.kernels.min(x, axis=axis, keepdims=keepdims)


class Softmax(Function):
    """y_i = e^x_i / sum_j e^x_j;   dx = y * (dy - sum(dy * y))"""

    def forward(self, x, axis):
        self.axis = axis
        return self.kernels.softmax(x, axis=axis)

    def backward(self, grad):
        y = self.output
        return y * (grad - (grad * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y_i = x_i - log sum_j e^x_j;   dx = dy - softmax(x) * sum(dy)"""

    def forward(self, x, axis):
        self.axis = axis
        return self.kernels.log_softmax(x, axis=axis)

    def backward(self, grad):
        return grad - self.output.exp() * grad.sum(axis=self.axis, keepdims=True)


def _reduce(function, op, x, axis, keepdims):
    if axis is None:
        axes = tuple(range(x.ndim))
    else:
        axes = normalize_axis(axis, x.ndim, op) if x.ndim else ()
    if x.data.size == 0 and function in (Max, Min):
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {x.shape}")
    return function.apply(x, axes=axes, keepdims=keepdims)


def sum(x, axis=None, keepdims=False):  # noqa: A001 - mirrors torch.sum
    return _reduce(Sum, "sum", x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    return _reduce(Mean, "mean", x, axis, keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return _reduce(Max, "max", x, axis, keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return _reduce(Min, "min", x, axis, keepdims)


def var(x, axis=None, keepdims=False, unbiased=False):
    """Variance, mean((x - mean(x))^2); unbiased=True divides by n - 1 instead of n.

    Built from other ops, so its gradient (and second derivative) comes for free.
    """
    axes = normalize_axis(axis, x.ndim, "var") if x.ndim else ()
    count = math.prod([x.shape[a] for a in axes])
    if unbiased and count < 2:
        raise ValueError(f"var: unbiased variance needs at least 2 elements, got {count}")
    centered = x - mean(x, axes, keepdims=True)
    squares = (centered * centered).sum(axis=axes, keepdims=keepdims)
    return squares / (count - 1 if unbiased else count)


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))), computed as m + log(sum(exp(x - m))) with m = max(x) so exp cannot overflow.

    m is a constant (any m gives the same value, so it needs no gradient). An infinite m
    would turn x - m into inf - inf = nan; there m = 0 gives the right ±inf instead.
    """
    axes = normalize_axis(axis, x.ndim, "logsumexp") if x.ndim else ()
    m = np.max(x.data, axis=axes, keepdims=True)
    shift = Tensor._make(np.where(np.isfinite(m), m, 0).astype(m.dtype, copy=False), device=x.device)
    result = (x - shift).exp().sum(axis=axes, keepdims=True).log() + shift
    return result if keepdims else result.reshape(np.squeeze(result.data, axis=axes).shape)


def _softmax_axis(x, axis, op):
    """Validate softmax's axis. A 0-d tensor is one value over "axis 0 or -1" (as in torch): axis=None."""
    if x.ndim == 0:
        if axis not in (0, -1):
            raise ValueError(f"{op}: axis {axis} is out of range for a 0-d tensor (use 0 or -1)")
        return None
    normalize_axis(axis, x.ndim, op)
    return axis


def softmax(x, axis=-1):
    return Softmax.apply(x, axis=_softmax_axis(x, axis, "softmax"))


def log_softmax(x, axis=-1):
    return LogSoftmax.apply(x, axis=_softmax_axis(x, axis, "log_softmax"))


def argmax(x, axis=None):
    """Index of the largest element (an integer tensor, no gradient)."""
    return Tensor._make(np.asarray(np.argmax(x.data, axis=axis)), device=x.device)


def argmin(x, axis=None):
    return Tensor._make(np.asarray(np.argmin(x.data, axis=axis)), device=x.device)


__all__ = ["sum", "mean", "max", "min", "var", "logsumexp", "softmax", "log_softmax", "argmax", "argmin"]
