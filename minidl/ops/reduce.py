"""Reductions (sum, mean, max, min, var, std, norm, logsumexp), sorting, and the softmax family.

A reduction's backward spreads the output gradient back over the elements that
were reduced: equally for sum and mean, only to the winners for max and min.

Arguments are PyTorch's: `dim` (an int or a tuple) and `keepdim`; NumPy's `axis=` and
`keepdims=` are accepted too, as PyTorch accepts them. As in PyTorch, `max(x, dim)` and
`min(x, dim)` return (values, indices), `var` and `std` divide by n - 1 unless told
otherwise (correction=0 or unbiased=False), and `all`/`any` return tensors.
"""

import math
import warnings
from collections import namedtuple

import numpy as np

from minidl.autograd import Function
from minidl.ops._util import dim_alias, host_values, keepdim_alias, normalize_axis, on_device, same_device, single_dim
from minidl.ops.elementwise import maximum, minimum, where
from minidl.ops.shape import getitem
from minidl.tensor import DEFAULT_FLOAT, Tensor


def _kept_shape(shape, axes):
    """The shape of the reduction result with keepdim=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _spread(grad, shape, axes):
    """Copy a reduction's gradient back over every element that was reduced."""
    if grad.ndim not in (0, len(shape)):  # keepdim=False removed axes: put them back as size 1
        grad = grad.reshape(_kept_shape(shape, axes))
    return grad.expand(shape)


def _axes(op, x, dim):
    """The dims a reduction runs over, as a sorted tuple (all of them for dim=None)."""
    if dim is None:
        return tuple(range(x.ndim))
    return normalize_axis(dim, x.ndim, op) if x.ndim else ()


def _reduce(function, op, x, dim, keepdim):
    axes = _axes(op, x, dim)
    if x.array.size == 0 and function in (Max, Min):
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {x.shape}")
    return function.apply(x, axes=axes, keepdims=keepdim)


def _along_dim(op, arg_function, result_type, x, dim, keepdim):
    """(values, indices) of the extreme element along one dim. The values are picked out of x at the
    indices, so the gradient goes to that one element, as in PyTorch (the first one among ties)."""
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{op}: dim must be one int when indices are returned; use amax/amin for several dims")
    if x.ndim == 0:
        single_dim(op, dim, 0)
        return result_type(x, Tensor._make(np.zeros((), np.int64), device=x.device))
    d = single_dim(op, dim, x.ndim)
    if x.shape[d] == 0:
        raise ValueError(f"{op}: cannot reduce over dim {d} of size 0 (shape {x.shape})")
    indices = arg_function(host_values(op, x), axis=d, keepdims=True).astype(np.int64, copy=False)
    values = gather(x, d, Tensor._make(on_device(indices, x.device), device=x.device))
    if not keepdim:
        values, indices = values.squeeze(d), np.squeeze(indices, axis=d)
    return result_type(values, Tensor._make(on_device(indices, x.device), device=x.device))


def _softmax_dim(x, dim, op):
    """Validate softmax's dim. A 0-d tensor is one value over "dim 0 or -1" (as in torch): axis=None."""
    if x.ndim == 0:
        if dim not in (0, -1):
            raise ValueError(f"{op}: dim {dim} is out of range for a 0-d tensor (use 0 or -1)")
        return None
    normalize_axis(dim, x.ndim, op)
    return dim


class Sum(Function):
    """y = sum of x over dims;   dy/dx = 1 for every summed element."""

    def forward(self, x, axes, keepdims):
        self.axes = axes
        return self.kernels.sum(x, axis=axes, keepdims=keepdims)

    def backward(self, grad):
        (x,) = self.inputs
        return _spread(grad, x.shape, self.axes)


def sum(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001 - mirrors torch.sum
    """Sum over dim (an int, a tuple, or None for every element)."""
    return _reduce(Sum, "sum", x, dim_alias("sum", dim, axis), keepdim_alias(keepdim, keepdims))


class Mean(Function):
    """y = mean of x over dims;   dy/dx = 1/n for every averaged element."""

    def forward(self, x, axes, keepdims):
        self.axes = axes
        self.count = math.prod([x.shape[a] for a in axes])
        k = self.kernels
        return k.div(k.sum(x, axis=axes, keepdims=keepdims), x.dtype.type(self.count))

    def backward(self, grad):
        (x,) = self.inputs
        return _spread(grad, x.shape, self.axes) / self.count


def mean(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Mean over dim. Integer and bool tensors average to float32 (PyTorch asks for .float() first)."""
    if x.array.dtype.kind in "biu":
        x = x.astype(DEFAULT_FLOAT)
    return _reduce(Mean, "mean", x, dim_alias("mean", dim, axis), keepdim_alias(keepdim, keepdims))


class _Extremum(Function):
    """Shared by Max and Min (amax, amin): the gradient goes to the elements equal to the result.

    Ties share the gradient equally, so the total passed back equals the gradient received.
    """

    def forward(self, x, axes, keepdims):
        self.axes = axes
        return self.reduce(x, axis=axes, keepdims=keepdims)

    def backward(self, grad):
        (x,) = self.saved_tensors
        kept = _kept_shape(x.shape, self.axes)
        winners = (x == self.output.reshape(kept)).astype(grad.dtype)
        share = winners / winners.sum(self.axes, True)
        return grad.reshape(kept) * share


class Max(_Extremum):
    def reduce(self, x, axis, keepdims):
        return self.kernels.max(x, axis=axis, keepdims=keepdims)


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    """torch.max: the largest element; along a dim, (values, indices); with a tensor, the elementwise maximum.

    x.max()              a 0-d tensor (ties share its gradient, like amax)
    x.max(1)             (values, indices) along dim 1: `_, predicted = scores.max(1)`
    minidl.max(a, b)     elementwise, as minidl.maximum(a, b)
    """
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    dim = dim_alias("max", dim, axis)
    if dim is None:
        return _reduce(Max, "max", x, None, False)
    return _along_dim("max", np.argmax, max_result, x, dim, keepdim_alias(keepdim, keepdims))


def amax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """The largest values over dim (an int or a tuple); ties share the gradient equally."""
    return _reduce(Max, "amax", x, dim_alias("amax", dim, axis), keepdim_alias(keepdim, keepdims))


class Min(_Extremum):
    def reduce(self, x, axis, keepdims):
        return self.kernels.min(x, axis=axis, keepdims=keepdims)


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    """torch.min: the smallest element; along a dim, (values, indices); with a tensor, the elementwise minimum."""
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    dim = dim_alias("min", dim, axis)
    if dim is None:
        return _reduce(Min, "min", x, None, False)
    return _along_dim("min", np.argmin, min_result, x, dim, keepdim_alias(keepdim, keepdims))


def amin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """The smallest values over dim (an int or a tuple); ties share the gradient equally."""
    return _reduce(Min, "amin", x, dim_alias("amin", dim, axis), keepdim_alias(keepdim, keepdims))


class Norm(Function):
    """y = sqrt(sum of x² over dims);   dy/dx = x / y   (0 where y = 0, as PyTorch: the norm's
    kink at the origin gets the zero subgradient instead of 0/0)."""

    def forward(self, x, axes, keepdims):
        self.axes = axes
        return self.kernels.sqrt(self.kernels.sum(self.kernels.mul(x, x), axis=axes, keepdims=keepdims))

    def backward(self, grad):
        (x,) = self.saved_tensors
        kept = _kept_shape(x.shape, self.axes)
        y = self.output.reshape(kept)
        safe = where(y == 0, 1, y)  # keeps 0/0 out of the gradient (and out of its own gradient)
        return grad.reshape(kept) * where(y == 0, 0, x / safe)


def norm(x, p="fro", dim=None, keepdim=False, *, axis=None, keepdims=None):
    """The p-norm of x over dim (all of x by default): "fro" or 2 (Euclidean), 1, inf, -inf, 0 or any p > 0."""
    dim = dim_alias("norm", dim, axis)
    keepdim = keepdim_alias(keepdim, keepdims)
    if x.array.dtype.kind != "f":
        raise TypeError(f"norm: expects a floating point tensor, got dtype {x.dtype}")
    axes = _axes("norm", x, dim)
    if p in ("fro", 2, 2.0):
        return Norm.apply(x, axes=axes, keepdims=keepdim)
    if p == math.inf:
        return amax(x.abs(), axes, keepdim)
    if p == -math.inf:
        return amin(x.abs(), axes, keepdim)
    if p == 0:
        return (x != 0).astype(x.dtype).sum(axes, keepdim)
    if p == 1:
        return x.abs().sum(axes, keepdim)
    if isinstance(p, (int, float)) and p > 0:
        return (x.abs() ** p).sum(axes, keepdim) ** (1.0 / p)
    raise ValueError(f"norm: p must be 'fro', inf, -inf, 0 or a positive number, got {p!r}")


class Softmax(Function):
    """y_i = e^x_i / sum_j e^x_j;   dx = y * (dy - sum(dy * y))"""

    def forward(self, x, axis):
        self.axis = axis
        return self.kernels.softmax(x, axis=axis)

    def backward(self, grad):
        y = self.output
        return y * (grad - (grad * y).sum(self.axis, True))


def softmax(x, dim=None, *, axis=None):
    """e^x / sum(e^x) along dim (the last one by default)."""
    dim = dim_alias("softmax", dim, axis)
    return Softmax.apply(x, axis=_softmax_dim(x, -1 if dim is None else dim, "softmax"))


class LogSoftmax(Function):
    """y_i = x_i - log sum_j e^x_j;   dx = dy - softmax(x) * sum(dy)"""

    def forward(self, x, axis):
        self.axis = axis
        return self.kernels.log_softmax(x, axis=axis)

    def backward(self, grad):
        return grad - self.output.exp() * grad.sum(self.axis, True)


def log_softmax(x, dim=None, *, axis=None):
    """log(softmax(x)) along dim (the last one by default), computed stably."""
    dim = dim_alias("log_softmax", dim, axis)
    return LogSoftmax.apply(x, axis=_softmax_dim(x, -1 if dim is None else dim, "log_softmax"))


# torch.return_types.max and friends: a tuple that also has .values and .indices.
max_result = namedtuple("max", ["values", "indices"])


min_result = namedtuple("min", ["values", "indices"])


sort_result = namedtuple("sort", ["values", "indices"])


topk_result = namedtuple("topk", ["values", "indices"])


def gather(x, dim, index):
    """out[i][j] = x[index[i][j]][j] for dim 0 (and alike for other dims), as torch.gather.

    index is an integer tensor with as many dims as x; each output element is read from x at
    the position index gives along `dim`. Its gradient is added back at those positions.
    """
    if isinstance(index, Tensor):
        same_device("gather", x, index)
    index_array = host_values("gather", index) if isinstance(index, Tensor) else np.asarray(index)
    if index_array.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got dtype {index_array.dtype}")
    if index_array.ndim != x.ndim:
        raise ValueError(f"gather: index has {index_array.ndim} dims but the tensor has {x.ndim} (shape {x.shape})")
    d = single_dim("gather", dim, x.ndim)
    for i, (n_index, n_x) in enumerate(zip(index_array.shape, x.shape)):
        if i != d and n_index > n_x:
            raise ValueError(
                f"gather: index shape {index_array.shape} is larger than the tensor's {x.shape} in dim {i}"
            )
    if index_array.size and (index_array.min() < 0 or index_array.max() >= x.shape[d]):
        raise IndexError(f"gather: an index is out of range for dim {d} of size {x.shape[d]}")
    # One index array per dim, broadcast together: positions along `dim` from index, the rest their own place.
    grid = list(np.ogrid[tuple(slice(n) for n in index_array.shape)]) if index_array.ndim else []
    grid[d] = index_array
    return getitem(x, tuple(grid))


def take_along_dim(x, indices, dim):
    """x's elements at `indices` along dim (torch.take_along_dim): gather with the arguments swapped."""
    return gather(x, dim, indices)


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    """Variance, sum((x - mean(x))²) / (n - correction), with PyTorch's default correction=1 (n - 1).

    correction=0 (or unbiased=False) divides by n. As PyTorch, var(x, False) reads the False as
    unbiased. When n - correction <= 0 the result is inf or nan, with a warning (as PyTorch).
    Built from other ops, so its gradient (and second derivative) comes for free.
    """
    dim, correction = _var_arguments("var", dim, axis, unbiased, correction)
    keepdim = keepdim_alias(keepdim, keepdims)
    if x.array.dtype.kind != "f":
        raise TypeError(f"var: expects a floating point tensor, got dtype {x.dtype}; convert it with .float()")
    axes = _axes("var", x, dim)
    count = math.prod([x.shape[a] for a in axes])
    centered = x - mean(x, axes, keepdim=True)
    squares = (centered * centered).sum(axes, keepdim)
    if count - correction <= 0:
        warnings.warn(
            f"var: degrees of freedom n - correction = {count} - {correction} <= 0; the result is inf or nan",
            RuntimeWarning,
            stacklevel=2,
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            return squares / (count - correction if count > correction else 0)
    return squares / (count - correction)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    """Standard deviation, sqrt(var(...)): the same arguments and the same n - 1 default as var."""
    dim, correction = _var_arguments("std", dim, axis, unbiased, correction)
    return var(x, dim, keepdim=keepdim, correction=correction, keepdims=keepdims).sqrt()


def _var_arguments(op, dim, axis, unbiased, correction):
    """(dim, correction) from PyTorch's spellings: dim or axis; correction, or unbiased (True: 1, False: 0)."""
    if isinstance(dim, bool):  # var(x, False): PyTorch's old positional unbiased
        unbiased, dim = dim, None
    dim = dim_alias(op, dim, axis)
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: give either unbiased or correction, not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return dim, correction


def logsumexp(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """log(sum(exp(x))), computed as m + log(sum(exp(x - m))) with m = max(x) so exp cannot overflow.

    m is a constant (any m gives the same value, so it needs no gradient). An infinite m
    would turn x - m into inf - inf = nan; there m = 0 gives the right ±inf instead.
    """
    keepdim = keepdim_alias(keepdim, keepdims)
    axes = _axes("logsumexp", x, dim_alias("logsumexp", dim, axis))
    m = np.max(x.array, axis=axes, keepdims=True)
    shift = Tensor._make(np.where(np.isfinite(m), m, 0).astype(m.dtype, copy=False), device=x.device)
    result = (x - shift).exp().sum(axes, True).log() + shift
    return result if keepdim else result.reshape(np.squeeze(result.array, axis=axes).shape)


def _index_reduction(op, function, x, dim, keepdim):
    """argmax / argmin: an int64 tensor without gradient (over all elements, flattened, for dim=None)."""
    if dim is None:
        result = function(host_values(op, x).reshape(-1))
        result = np.asarray(result, dtype=np.int64).reshape((1,) * x.ndim if keepdim else ())
        return Tensor._make(on_device(result, x.device), device=x.device)
    d = single_dim(op, dim, x.ndim)
    if x.ndim == 0:
        return Tensor._make(on_device(np.zeros((), np.int64), x.device), device=x.device)
    result = function(host_values(op, x), axis=d, keepdims=keepdim)
    return Tensor._make(on_device(np.asarray(result, dtype=np.int64), x.device), device=x.device)


def argmax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Index of the largest element (the first among ties): over all elements, or along dim."""
    return _index_reduction("argmax", np.argmax, x, dim_alias("argmax", dim, axis), keepdim_alias(keepdim, keepdims))


def argmin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Index of the smallest element (the first among ties): over all elements, or along dim."""
    return _index_reduction("argmin", np.argmin, x, dim_alias("argmin", dim, axis), keepdim_alias(keepdim, keepdims))


def _truth_reduction(op, function, x, dim, keepdim):
    axes = _axes(op, x, dim)
    result = np.asarray(function(host_values(op, x), axis=axes, keepdims=keepdim))
    return Tensor._make(on_device(result, x.device), device=x.device)


def all(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001 - mirrors torch.all
    """Whether every element (along dim) is nonzero: a bool tensor (`if x.all():` works too)."""
    return _truth_reduction("all", np.all, x, dim_alias("all", dim, axis), keepdim_alias(keepdim, keepdims))


def any(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001 - mirrors torch.any
    """Whether any element (along dim) is nonzero: a bool tensor."""
    return _truth_reduction("any", np.any, x, dim_alias("any", dim, axis), keepdim_alias(keepdim, keepdims))


def argsort(x, dim=None, descending=False, stable=False, *, axis=None):
    """The indices that sort x along dim (the last by default; int64). Equal elements keep their order;
    NaN counts as the largest."""
    dim = dim_alias("argsort", dim, axis)
    dim = -1 if dim is None else dim
    if x.ndim == 0:
        single_dim("argsort", dim, 0)
        return Tensor._make(np.zeros((), np.int64), device=x.device)
    d = single_dim("argsort", dim, x.ndim)
    values = host_values("argsort", x)
    if not descending:
        order = np.argsort(values, axis=d, kind="stable")
    else:
        # Sort the reversed row ascending (stable, NaN last) and reverse again: largest (and NaN)
        # first, and equal elements still in their original order.
        n = x.shape[d]
        order = n - 1 - np.flip(np.argsort(np.flip(values, axis=d), axis=d, kind="stable"), axis=d)
    return Tensor._make(on_device(order.astype(np.int64, copy=False), x.device), device=x.device)


def sort(x, dim=None, descending=False, stable=False, *, axis=None):
    """(values, indices) of x sorted along dim (the last by default), as torch.sort; the values carry
    gradient back to where each came from."""
    dim = dim_alias("sort", dim, axis)
    dim = -1 if dim is None else dim
    indices = argsort(x, dim, descending)
    if x.ndim == 0:
        return sort_result(x, indices)
    return sort_result(gather(x, dim, indices), indices)


def topk(x, k, dim=None, largest=True, sorted=True, *, axis=None):  # noqa: A002 - PyTorch's argument name
    """(values, indices) of the k largest (or smallest) elements along dim (the last by default), as torch.topk."""
    dim = dim_alias("topk", dim, axis)
    dim = -1 if dim is None else dim
    d = single_dim("topk", dim, x.ndim) if x.ndim else 0
    size = x.shape[d] if x.ndim else 1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= size:
        raise ValueError(f"topk: k must be an integer between 0 and {size} (the size of dim {dim}), got {k!r}")
    indices = argsort(x, dim, descending=largest)
    if x.ndim == 0:
        return topk_result(x, indices)
    first_k = np.take(host_values("topk", indices), np.arange(k), axis=d)
    indices = Tensor._make(on_device(first_k, x.device), device=x.device)
    return topk_result(gather(x, d, indices), indices)


__all__ = [
    "sum",
    "mean",
    "max",
    "min",
    "amax",
    "amin",
    "var",
    "std",
    "norm",
    "logsumexp",
    "softmax",
    "log_softmax",
    "argmax",
    "argmin",
    "all",
    "any",
    "sort",
    "argsort",
    "topk",
    "gather",
    "take_along_dim",
]
