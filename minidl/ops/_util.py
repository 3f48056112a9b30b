"""Small helpers shared by the op modules: turning numbers into tensors, and unbroadcast."""

import numpy as np

from minidl.tensor import DEFAULT_FLOAT, Tensor


def constant(value, like=None):
    """A tensor that never requires grad, for numbers and arrays mixed into tensor math.

    Python numbers take `like`'s dtype when it is a float tensor, so `x * 2` stays
    float32 (NumPy would otherwise promote through a float64 scalar).
    """
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return Tensor._make(value)
    if like is not None and like.data.dtype.kind == "f":
        dtype = like.data.dtype
    elif isinstance(value, bool):
        dtype = np.bool_
    elif isinstance(value, int) and (like is None or like.data.dtype.kind in "iu"):
        dtype = like.data.dtype if like is not None else np.int64
    elif isinstance(value, (int, float)):
        dtype = DEFAULT_FLOAT
    else:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"expected a tensor or a number, got {type(value).__name__}")
        return Tensor._make(array.astype(DEFAULT_FLOAT) if array.dtype == np.float64 else array)
    return Tensor._make(np.asarray(value, dtype=dtype))


def pair(a, b):
    """Make both operands of a binary op tensors, numbers taking the dtype of the tensor."""
    if not isinstance(a, Tensor):
        a = constant(a, like=b if isinstance(b, Tensor) else None)
    if not isinstance(b, Tensor):
        b = constant(b, like=a)
    return a, b


def unbroadcast(grad, shape):
    """Reduce a gradient that was broadcast up to grad.shape back down to `shape`.

    Broadcasting copies an input along new leading axes and along axes of size 1.
    Each copy received its own gradient, so the input's gradient is their sum:
    sum over the leading axes that were added, and over the axes that were 1.
    """
    if grad.shape == shape:
        return grad
    added = grad.ndim - len(shape)
    axes = list(range(added))
    axes += [added + i for i, size in enumerate(shape) if size == 1 and grad.shape[added + i] != 1]
    if axes:
        grad = grad.sum(axis=tuple(axes), keepdims=True)
    return grad.reshape(shape)


def normalize_axis(axis, ndim, op):
    """Turn a possibly negative axis (or tuple of axes) into a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    result = []
    for a in axes:
        if not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {a!r}")
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        result.append(int(a) % max(ndim, 1))
    if len(set(result)) != len(result):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(result))
