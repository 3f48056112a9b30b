"""Shape ops: they move values around without changing them.

So their backward moves the gradient back the same way: reshape the gradient
back, transpose it back, sum it where a value was copied (expand), scatter it
back where values were picked out (indexing).
"""

import math

import numpy as np

from minidl.autograd import Function
from minidl.backend import active_kernels
from minidl.ops._util import dim_alias, normalize_axis, single_dim, unbroadcast
from minidl.tensor import Tensor


def _shape_arg(shape):
    """Accept both f(2, 3) and f((2, 3))."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _resolve_shape(old, new):
    size = math.prod(old)
    if -1 not in new and math.prod(new) == size and all(type(n) is int and n >= 0 for n in new):
        return new  # the common case: a complete, valid shape
    unknown = [i for i, n in enumerate(new) if n == -1]
    if len(unknown) > 1:
        raise ValueError("only one dimension can be -1")
    if any((not isinstance(n, (int, np.integer))) or n < -1 for n in new):
        raise ValueError("dimensions must be non-negative integers or -1")
    known = math.prod([int(n) for n in new if n != -1])
    if unknown:
        if known == 0 or size % known:
            raise ValueError("the sizes do not divide evenly")
        new = tuple(size // known if n == -1 else int(n) for n in new)
    elif known != size:
        raise ValueError("the number of elements differs")
    return tuple(int(n) for n in new)


class Reshape(Function):
    """y = x with a new shape (same elements, same order);   dx = dy reshaped back."""

    is_view = True

    def forward(self, x, shape):
        return self.kernels.reshape(x, shape)

    def backward(self, grad):
        (x,) = self.inputs
        return grad.reshape(x.shape)


def reshape(x, *shape):
    shape = _shape_arg(shape)
    if shape == x.shape:
        return x
    try:
        return Reshape.apply(x, shape=shape)  # NumPy resolves -1 and checks the sizes
    except (ValueError, TypeError):
        try:
            _resolve_shape(x.shape, shape)  # say in our words what is wrong with the shape
        except ValueError as e:
            raise ValueError(f"reshape: cannot reshape {x.shape} ({x.array.size} elements) into {shape}: {e}") from None
        raise


class Permute(Function):
    """y = x with its axes reordered;   dx = dy with the inverse reordering."""

    is_view = True

    def forward(self, x, axes):
        self.axes = axes
        return self.kernels.transpose(x, axes)

    def backward(self, grad):
        return grad.permute(*np.argsort(self.axes))


def permute(x, *axes):
    axes = _shape_arg(axes)
    in_range = all(isinstance(a, (int, np.integer)) and -x.ndim <= a < x.ndim for a in axes)
    if not in_range or len(axes) != x.ndim or sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
        raise ValueError(f"permute: {axes} is not a permutation of the {x.ndim} axes of shape {x.shape}")
    axes = tuple(a % x.ndim for a in axes)
    if axes == tuple(range(x.ndim)):
        return x
    return Permute.apply(x, axes=axes)


def transpose(x, *axes):
    """transpose(x, dim0, dim1) swaps two dims (like torch); transpose(x) reverses them all (like x.T)."""
    if not axes:
        return permute(x, *reversed(range(x.ndim)))
    if len(axes) != 2:
        raise ValueError(f"transpose: give two dims to swap (or none, to reverse them all), got {axes}")
    ndim = x.ndim
    a, b = axes
    if type(a) is not int or type(b) is not int or not (-ndim <= a < ndim and -ndim <= b < ndim):
        a, b = normalize_axis(a, ndim, "transpose")[0], normalize_axis(b, ndim, "transpose")[0]
    a, b = a % ndim, b % ndim
    if a == b:
        return x
    order = list(range(ndim))
    order[a], order[b] = order[b], order[a]
    return Permute.apply(x, axes=tuple(order))  # a swap of two valid axes is always a permutation


class Expand(Function):
    """y = x broadcast to a larger shape (copies along new or size-1 axes);   dx = sum of the copies' dy."""

    is_view = True

    def forward(self, x, shape):
        return self.kernels.broadcast_to(x, shape)

    def backward(self, grad):
        (x,) = self.inputs
        return unbroadcast(grad, x.shape)


def expand(x, *shape):
    """Broadcast x to `shape` without copying (-1 keeps a dimension's size)."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: cannot expand shape {x.shape} to fewer dimensions {shape}")
    if -1 in shape:
        shape = tuple(x.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
    if shape == x.shape:
        return x
    bad_new_axis = any(n < 0 for n in shape[:lead])  # -1 cannot mean "keep" for an axis x does not have
    if bad_new_axis or any(have != want and have != 1 for have, want in zip(x.shape, shape[lead:])):
        raise ValueError(f"expand: cannot broadcast shape {x.shape} to {shape}")
    return Expand.apply(x, shape=shape)


class Contiguous(Function):
    """y = x laid out row-major in memory (a copy if x is a strided view);   dx = dy.

    The values do not change, only their order in memory: kernels run fastest on
    row-major arrays, so an op that produces a transposed view can hand its
    consumers a compact copy once instead of every consumer striding through it.
    """

    def forward(self, x):
        return self.kernels.ascontiguousarray(x)

    def backward(self, grad):
        return grad


def contiguous(x):
    """x itself if it is already row-major in memory, else a row-major copy."""
    if x.array.flags.c_contiguous if isinstance(x.array, np.ndarray) else x.array.is_contiguous():
        return x
    return Contiguous.apply(x)


class Concat(Function):
    """y = inputs joined along an axis;   each input gets its own slice of dy."""

    def forward(self, *arrays, axis):
        self.axis = axis
        return self.kernels.concatenate(arrays, axis=axis)

    def backward(self, grad):
        grads, start = [], 0
        for t, needed in zip(self.inputs, self.needs_input_grad):
            stop = start + t.shape[self.axis]
            index = (slice(None),) * self.axis + (slice(start, stop),)
            grads.append(grad[index] if needed else None)
            start = stop
        return tuple(grads)


def concat(tensors, dim=None, *, axis=None):
    """Join tensors along an existing dim (0 by default)."""
    dim = dim_alias("cat", dim, axis)
    dim = 0 if dim is None else dim
    tensors = list(tensors)
    _check_same("concat", tensors)
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("concat: 0-d tensors have no dim to join along; use stack to make a new one")
    dim = normalize_axis(dim, first.ndim, "concat")[0]
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(t.shape[i] != first.shape[i] for i in range(first.ndim) if i != dim):
            raise ValueError(
                f"concat: shapes {first.shape} and {t.shape} differ outside dim {dim}; "
                f"all shapes: {[u.shape for u in tensors]}"
            )
    return Concat.apply(*tensors, axis=dim)


class Stack(Function):
    """y = inputs stacked along a new axis;   input i gets dy[..., i, ...]."""

    def forward(self, *arrays, axis):
        self.axis = axis
        return self.kernels.stack(arrays, axis=axis)

    def backward(self, grad):
        prefix = (slice(None),) * self.axis
        return tuple(grad[prefix + (i,)] if needed else None for i, needed in enumerate(self.needs_input_grad))


def stack(tensors, dim=None, *, axis=None):
    """Join same-shaped tensors along a new dim (0 by default)."""
    dim = dim_alias("stack", dim, axis)
    dim = 0 if dim is None else dim
    tensors = list(tensors)
    _check_same("stack", tensors)
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: all tensors need the same shape, got {[u.shape for u in tensors]}")
    ndim = tensors[0].ndim + 1
    if not -ndim <= dim < ndim:
        raise ValueError(f"stack: dim {dim} is out of range for a result with {ndim} dimensions")
    return Stack.apply(*tensors, axis=dim % ndim)


class GetItem(Function):
    """y = x[index] (slices, ints, None, integer arrays, boolean masks);
    dx = zeros with dy added back at x[index] (repeated indices add up)."""

    def forward(self, x, index):
        self.index = index
        return self.kernels.getitem(x, index)

    def backward(self, grad):
        (x,) = self.inputs
        return scatter_add(grad, self.index, x.shape)


def getitem(x, index):
    index = to_index(index)
    try:
        out = GetItem.apply(x, index=index)
    except IndexError as e:
        raise IndexError(f"getitem: index {index!r} is invalid for shape {x.shape}: {e}") from None
    if isinstance(out.array, np.ndarray):
        base = out.array.base
        shares = base is not None and (base is x.array or base is x.array.base)
    else:  # a device array: a view shares its base's allocation
        shares = getattr(out.array, "_buffer", None) is getattr(x.array, "_buffer", False)
    if shares:
        out._version = x._version  # a basic slice is a view: an in-place change of either is a change of both
    return out


class ScatterAdd(Function):
    """y = zeros(shape) with values added at [index];   dvalues = dy[index].

    The adjoint of GetItem; having it as an op makes indexing twice differentiable.
    """

    def forward(self, values, index, shape):
        self.index = index
        return self.kernels.scatter_add(shape, index, values, values.dtype)

    def backward(self, grad):
        return grad[self.index]


def scatter_add(values, index, shape):
    """zeros(shape) with `values` added at [index] (the gradient of indexing)."""
    return ScatterAdd.apply(values, index=to_index(index), shape=tuple(shape))


class Pad(Function):
    """y = x with constant padding around it;   dx = the un-padded middle of dy."""

    def forward(self, x, widths, value):
        self.widths = widths
        return self.kernels.pad(x, widths, constant_values=value)

    def backward(self, grad):
        index = tuple(slice(before, grad.shape[i] - after) for i, (before, after) in enumerate(self.widths))
        return grad[index]


def pad(x, widths, value=0.0):
    """Constant padding. widths: one (before, after) pair per axis, or per trailing axes."""
    widths = [tuple(int(v) for v in w) for w in widths]
    if len(widths) > x.ndim or any(len(w) != 2 or min(w) < 0 for w in widths):
        raise ValueError(f"pad: widths {widths} must be (before, after) pairs of non-negative ints, at most {x.ndim}")
    widths = [(0, 0)] * (x.ndim - len(widths)) + widths
    return Pad.apply(x, widths=tuple(widths), value=value)


def t(x):
    """The transpose of a matrix (a vector or a 0-d tensor stays as it is), as torch.t."""
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor with at most 2 dims, got shape {x.shape}; use transpose(dim0, dim1)")
    return transpose(x, 0, 1) if x.ndim == 2 else x


broadcast_to = expand


def squeeze(x, dim=None, *, axis=None):
    """Remove dims of size 1: all of them, or those of `dim` (an int or a tuple) that have size 1.

    As in PyTorch, a given dim whose size is not 1 is left as it is (no error).
    """
    dim = dim_alias("squeeze", dim, axis)
    if dim is None:
        shape = tuple(n for n in x.shape if n != 1)
    elif x.ndim == 0:  # nothing to squeeze; torch accepts dim 0 or -1 here
        if dim not in (0, -1, (0,), (-1,)):
            raise ValueError(f"squeeze: dim {dim} is out of range for a 0-d tensor (use 0 or -1)")
        return x
    else:
        dims = normalize_axis(dim, x.ndim, "squeeze")
        shape = tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1))
    return reshape(x, shape)


def unsqueeze(x, dim=None, *, axis=None):
    """Insert a dim of size 1 at position `dim` (negative counts from the end of the result)."""
    dim = dim_alias("unsqueeze", dim, axis)
    if dim is None:
        raise TypeError("unsqueeze: missing the dim to insert")
    ndim = x.ndim + 1
    if not -ndim <= dim < ndim:
        raise ValueError(f"unsqueeze: dim {dim} is out of range for a result with {ndim} dimensions")
    dim %= ndim
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def flatten(x, start_dim=0, end_dim=-1, *, start_axis=None, end_axis=None):
    """Merge dims start_dim..end_dim into one (start_axis/end_axis are accepted as NumPy-style names)."""
    start_dim = start_dim if start_axis is None else start_axis
    end_dim = end_dim if end_axis is None else end_axis
    if x.ndim == 0:
        return reshape(x, 1)
    start = normalize_axis(start_dim, x.ndim, "flatten")[0]
    end = normalize_axis(end_dim, x.ndim, "flatten")[0]
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = int(np.prod(x.shape[start : end + 1]))
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1 :])


def _check_same(op, tensors):
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected tensors, got {type(t).__name__}")


cat = concat


def split(x, split_size_or_sections, dim=None, *, axis=None):
    """Cut x along `dim` (0 by default) into pieces of a given size (the last may be smaller) or of the given sizes."""
    dim = dim_alias("split", dim, axis)
    if x.ndim == 0:
        raise ValueError("split: cannot split a 0-d tensor")
    axis = normalize_axis(0 if dim is None else dim, x.ndim, "split")[0]
    length = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split size must be positive, got {size}")
        sizes = [min(size, length - start) for start in range(0, length, size)]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != length or any(s < 0 for s in sizes):
            raise ValueError(f"split: sections {sizes} do not add up to the axis length {length}")
    pieces, start = [], 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),)
        pieces.append(getitem(x, index))
        start += size
    return tuple(pieces)


def chunk(x, chunks, dim=None, *, axis=None):
    """Cut x into `chunks` pieces of equal size along dim (the last may be smaller), as torch.chunk."""
    dim = dim_alias("chunk", dim, axis)
    dim = 0 if dim is None else dim
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks < 1:
        raise ValueError(f"chunk: chunks must be a positive integer, got {chunks!r}")
    if x.ndim == 0:
        raise ValueError("chunk: cannot chunk a 0-d tensor")
    length = x.shape[single_dim("chunk", dim, x.ndim)]
    return split(x, max(-(-length // int(chunks)), 1), dim)


def to_index(index):
    """Convert an index that may contain Tensors or lists into one NumPy understands."""
    if isinstance(index, Tensor):
        return index.array
    if isinstance(index, list):
        return np.asarray(index)
    if isinstance(index, tuple):
        return tuple(to_index(i) for i in index)
    return index


class ToDevice(Function):
    """y = x copied to another device (Tensor.to, .cuda(), .cpu());   dx = dy copied back."""

    moves_device = True

    def forward(self, x, where):
        self.device, self.source = where, self.kernels
        target = active_kernels[where]
        return target.from_numpy(self.kernels.to_numpy(x))  # through host memory: the one copy across the bus

    def backward(self, grad):
        return to_device(grad, self.inputs[0].device)


def to_device(x, where):
    """x's values on the device `where` (a minidl.device that is available): a new tensor, differentiable."""
    return ToDevice.apply(x, where=where)


__all__ = [
    "reshape",
    "contiguous",
    "permute",
    "transpose",
    "t",
    "expand",
    "broadcast_to",
    "squeeze",
    "unsqueeze",
    "flatten",
    "concat",
    "cat",
    "stack",
    "split",
    "chunk",
    "getitem",
    "scatter_add",
    "pad",
    "to_index",
]
