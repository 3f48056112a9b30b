"""Small helpers shared by the op modules: turning numbers into tensors, unbroadcast, and dim arguments."""

import numpy as np

from minidl import autograd
from minidl.backend import active_kernels
from minidl.backend.device import CPU
from minidl.tensor import DEFAULT_FLOAT, Tensor


def constant(value, like=None):
    """A tensor that never requires grad, for numbers and arrays mixed into tensor math.

    Python numbers take `like`'s dtype when it is a float tensor, so `x * 2` stays
    float32 (NumPy would otherwise promote through a float64 scalar). The constant is made
    on `like`'s device (copied there from the host), so `x * 2` works on any device.
    """
    if isinstance(value, Tensor):
        return value
    if type(value) in (int, float) and like is not None:
        if like.device is CPU and not autograd._grad_enabled:
            return _shared_number(value, like)
        array = _number_array(value, like)
    else:
        array = _constant_array(value, like)
    if like is not None and like.device is not CPU:
        return Tensor._make(active_kernels[like.device].from_numpy(array), device=like.device)
    return Tensor._make(array)  # a tensor of its own each time: the debugger names and draws each use


def _number_array(value, like):
    """The read-only 0-d array for a Python number next to `like`: the same few numbers (0, 1, 0.5...)
    recur in every backward formula, so each is made once per dtype and shared."""
    key = (type(value), value, like.array.dtype)
    array = _number_arrays.get(key)
    if array is None:
        if len(_number_arrays) >= 512:  # bounded: a loop over many different numbers cannot grow it
            _number_arrays.clear()
            _number_tensors.clear()
        array = _number_arrays[key] = _constant_array(value, like)
        array.flags.writeable = False
    return array


_number_arrays = {}  # (type, value, dtype) -> 0-d array


def _shared_number(value, like):
    """The constant for a Python number when no graph is being recorded (a plain backward pass,
    say): nothing keeps or names it then, so one read-only tensor per number serves every use."""
    key = (type(value), value, like.array.dtype)
    t = _number_tensors.get(key)
    if t is None:
        t = _number_tensors[key] = Tensor._make(_number_array(value, like))
    return t


_number_tensors = {}  # (type, value, dtype) -> Tensor, cleared with _number_arrays


def _constant_array(value, like):
    """The NumPy array a constant holds (dtype rules in constant's docstring)."""
    if isinstance(value, np.ndarray):
        return value
    if like is not None and like.array.dtype.kind == "f":
        dtype = like.array.dtype
    elif isinstance(value, bool):
        dtype = np.bool_
    elif isinstance(value, int) and (like is None or like.array.dtype.kind in "iu"):
        dtype = like.array.dtype if like is not None else np.int64
    elif isinstance(value, (int, float)):
        dtype = DEFAULT_FLOAT
    else:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"expected a tensor or a number, got {type(value).__name__}")
        return array.astype(DEFAULT_FLOAT) if array.dtype == np.float64 else array
    return np.asarray(value, dtype=dtype)


def host_values(op, t):
    """t's values as a NumPy array, for the few ops computed on the host (index and truth functions).

    On the cpu that is t's own array. A device tensor's is copied down, and the kernel set counts
    it as a host round trip of `op` (minidl.cuda.host_round_trips()).
    """
    if t.device is CPU:
        return t.array
    kernels = active_kernels[t.device]
    count = getattr(kernels.module, "count_host_round_trip", None)
    if count is not None:
        count(op)
    return kernels.to_numpy(t.array)


def on_device(array, where):
    """A host result as the array of a tensor on the device `where` (copied up unless it is the cpu)."""
    return array if where is CPU else active_kernels[where].from_numpy(np.asarray(array))


def same_device(op, *tensors):
    """Raise the clear error if `tensors` are not all on one device; return that device."""
    where = tensors[0].device
    for t in tensors:
        if t.device is not where:
            raise RuntimeError(
                f"{op}: expected all tensors on the same device, but found {where} and {t.device}; "
                "move them with .to(device) first"
            )
    return where


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
        grad = grad.sum(tuple(axes), True)
    return grad.reshape(shape)


def normalize_axis(axis, ndim, op):
    """Turn a possibly negative dim (or tuple of dims) into a sorted tuple of non-negative dims."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    result = []
    for a in axes:
        if not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {a!r}")
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: dim {a} is out of range for a tensor with {ndim} dimensions")
        result.append(int(a) % max(ndim, 1))
    if len(set(result)) != len(result):
        raise ValueError(f"{op}: repeated dim in {axis!r}")
    return tuple(sorted(result))


def dim_alias(op, dim, axis):
    """PyTorch's `dim`, with NumPy's name `axis=` accepted too (PyTorch accepts it as well)."""
    if axis is None:
        return dim
    if dim is not None:
        raise TypeError(f"{op}: got both dim={dim!r} and axis={axis!r}; give one of them")
    return axis


def keepdim_alias(keepdim, keepdims):
    """PyTorch's `keepdim`, or NumPy's `keepdims=` when that is the one given."""
    return keepdim if keepdims is None else bool(keepdims)


def single_dim(op, dim, ndim):
    """One dimension as a non-negative int (negative counts from the end), checked against ndim."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimensions")
    return int(dim) % max(ndim, 1)
