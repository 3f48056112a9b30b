"""Shape ops: they move values around without changing them.

So their backward moves the gradient back the same way: reshape the gradient
back, transpose it back, sum it where a value was copied (expand), scatter it
back where values were picked out (indexing).
"""

import math

import numpy as np

from minidl.autograd import Function
from minidl.ops._util import normalize_axis, unbroadcast
from minidl.tensor import Tensor


def _shape_arg(shape):
    """Accept both f(2, 3) and f((2, 3))."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


class Reshape(Function):
    """y = x with a new shape (same elements, same order);   dx = dy reshaped back."""

    is_view = True

    def forward(self, x, shape):
        return self.kernels.reshape(x, shape)

    def backward(self, grad):
        (x,) = self.inputs
        return grad.reshape(x.shape)


class Permute(Function):
    """y = x with its axes reordered;   dx = dy with the inverse reordering."""

    is_view = True

    def forward(self, x, axes):
        self.axes = axes
        return self.kernels.transpose(x, axes)

    def backward(self, grad):
        return grad.permute(*np.argsort(self.axes))


class Expand(Function):
    """y = x broadcast to a larger shape (copies along new or size-1 axes);   dx = sum of the copies' dy."""

    is_view = True

    def forward(self, x, shape):
        return self.kernels.broadcast_to(x, shape)

    def backward(self, grad):
        (x,) = self.inputs
        return unbroadcast(grad, x.shape)


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


class Stack(Function):
    """y = inputs stacked along a new axis;   input i gets dy[..., i, ...]."""

    def forward(self, *arrays, axis):
        self.axis = axis
        return self.kernels.stack(arrays, axis=axis)

    def backward(self, grad):
        prefix = (slice(None),) * self.axis
        return tuple(grad[prefix + (i,)] if needed else None for i, needed in enumerate(self.needs_input_grad))


class GetItem(Function):
    """y = x[index] (slices, ints, None, integer arrays, boolean masks);
    dx = zeros with dy added back at x[index] (repeated indices add up)."""

    def forward(self, x, index):
        self.index = index
        return self.kernels.getitem(x, index)

    def backward(self, grad):
        (x,) = self.inputs
        return scatter_add(grad, self.index, x.shape)


class ScatterAdd(Function):
    """y = zeros(shape) with values added at [index];   dvalues = dy[index].

    The adjoint of GetItem; having it as an op makes indexing twice differentiable.
    """

    def forward(self, values, index, shape):
        self.index = index
        return self.kernels.scatter_add(shape, index, values, values.dtype)

    def backward(self, grad):
        return grad[self.index]


class Pad(Function):
    """y = x with constant padding around it;   dx = the un-padded middle of dy."""

    def forward(self, x, widths, value):
        self.widths = widths
        return self.kernels.pad(x, widths, constant_values=value)

    def backward(self, grad):
        index = tuple(slice(before, grad.shape[i] - after) for i, (before, after) in enumerate(self.widths))
        return grad[index]


# ---------------------------------------------------------------------------
# The functions users call
# ---------------------------------------------------------------------------
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
            raise ValueError(f"reshape: cannot reshape {x.shape} ({x.data.size} elements) into {shape}: {e}") from None
        raise


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
    """transpose(x) reverses the axes (like x.T); transpose(x, a, b) swaps axes a and b (like torch)."""
    if not axes:
        return permute(x, *reversed(range(x.ndim)))
    if len(axes) != 2:
        raise ValueError(f"transpose: give no axes (reverse all) or two axes to swap, got {axes}")
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


broadcast_to = expand


def squeeze(x, axis=None):
    """Remove axes of size 1 (all of them, or just `axis`)."""
    if axis is None:
        shape = tuple(n for n in x.shape if n != 1)
    elif x.ndim == 0:  # nothing to squeeze; torch accepts axis 0 or -1 here
        if axis not in (0, -1, (0,), (-1,)):
            raise ValueError(f"squeeze: axis {axis} is out of range for a 0-d tensor (use 0 or -1)")
        return x
    else:
        axes = normalize_axis(axis, x.ndim, "squeeze")
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
        shape = tuple(n for i, n in enumerate(x.shape) if i not in axes)
    return reshape(x, shape)


def unsqueeze(x, axis):
    """Insert an axis of size 1 at position `axis` (negative counts from the end of the result)."""
    ndim = x.ndim + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a result with {ndim} dimensions")
    axis %= ndim
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def flatten(x, start_axis=0, end_axis=-1):
    """Merge axes start_axis..end_axis into one."""
    if x.ndim == 0:
        return reshape(x, 1)
    start = normalize_axis(start_axis, x.ndim, "flatten")[0]
    end = normalize_axis(end_axis, x.ndim, "flatten")[0]
    if start > end:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis}")
    merged = int(np.prod(x.shape[start : end + 1]))
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1 :])


def contiguous(x):
    """x itself if it is already row-major in memory, else a row-major copy."""
    if x.data.flags.c_contiguous:
        return x
    return Contiguous.apply(x)


def _check_same(op, tensors):
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected tensors, got {type(t).__name__}")


def concat(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    _check_same("concat", tensors)
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("concat: 0-d tensors have no axis to join along; use stack to make a new one")
    axis = normalize_axis(axis, first.ndim, "concat")[0]
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(t.shape[i] != first.shape[i] for i in range(first.ndim) if i != axis):
            raise ValueError(
                f"concat: shapes {first.shape} and {t.shape} differ outside axis {axis}; "
                f"all shapes: {[u.shape for u in tensors]}"
            )
    return Concat.apply(*tensors, axis=axis)


cat = concat


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new axis."""
    tensors = list(tensors)
    _check_same("stack", tensors)
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: all tensors need the same shape, got {[u.shape for u in tensors]}")
    ndim = tensors[0].ndim + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"stack: axis {axis} is out of range for a result with {ndim} dimensions")
    return Stack.apply(*tensors, axis=axis % ndim)


def split(x, split_size_or_sections, axis=0):
    """Cut x along `axis` into pieces of a given size (the last may be smaller) or of the given sizes."""
    if x.ndim == 0:
        raise ValueError("split: cannot split a 0-d tensor")
    axis = normalize_axis(axis, x.ndim, "split")[0]
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


def to_index(index):
    """Convert an index that may contain Tensors or lists into one NumPy understands."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    if isinstance(index, tuple):
        return tuple(to_index(i) for i in index)
    return index


def getitem(x, index):
    index = to_index(index)
    try:
        return GetItem.apply(x, index=index)
    except IndexError as e:
        raise IndexError(f"getitem: index {index!r} is invalid for shape {x.shape}: {e}") from None


def scatter_add(values, index, shape):
    """zeros(shape) with `values` added at [index] (the gradient of indexing)."""
    return ScatterAdd.apply(values, index=to_index(index), shape=tuple(shape))


def pad(x, widths, value=0.0):
    """Constant padding. widths: one (before, after) pair per axis, or per trailing axes."""
    widths = [tuple(int(v) for v in w) for w in widths]
    if len(widths) > x.ndim or any(len(w) != 2 or min(w) < 0 for w in widths):
        raise ValueError(f"pad: widths {widths} must be (before, after) pairs of non-negative ints, at most {x.ndim}")
    widths = [(0, 0)] * (x.ndim - len(widths)) + widths
    return Pad.apply(x, widths=tuple(widths), value=value)


__all__ = [
    "reshape",
    "contiguous",
    "permute",
    "transpose",
    "expand",
    "broadcast_to",
    "squeeze",
    "unsqueeze",
    "flatten",
    "concat",
    "cat",
    "stack",
    "split",
    "getitem",
    "scatter_add",
    "pad",
    "to_index",
]
