"""The "cuda" kernel set: the kernel contract (minidl/backend/contract.py) on DeviceArrays.

This is what the "cuda" device computes with: `active_kernels[device("cuda")]` is a KernelSet
built from this module, so every op in minidl/ops/ runs on the device without a line changing
above the seam. Each primitive takes the kernel contract's arguments and calls the launcher
in kernels.py (csrc/cuda/*.cu) when the CUDA kernels cover the case: float32 arithmetic,
int64 row indices on the first axis, square pooling windows, undilated convolutions with the
same stride and padding on both axes.

Everything else is an explicit HOST ROUND TRIP: the DeviceArrays are copied to the host, the
NumPy reference computes, the result is copied back. It is correct (the reference itself)
and slow, so each one is counted per primitive: `host_round_trips()` (also
`minidl.cuda.host_round_trips()`) says how many there were and which primitives made them,
and a training step of the models minidl train builds makes none (tests/test_cuda_device.py
checks that). What goes through the host here (README's CUDA section and docs/cuda.md list it):

    arithmetic, comparisons, reductions and matmul in dtypes other than float32
    astype other than float32 <-> float16 and bool <-> float32
    getitem / setitem / scatter_add with boolean masks, several index arrays, or an index
        array not on the first axis (fancy indexing)
    im2col / col2im / pooling with rectangular windows, unequal strides or paddings, dilation
    max_pool2d_select (no kernel); where with no float32 array among its operands

A few ops above the kernels compute on the host too (index and truth functions: argmax, sort,
gather, any/all, isclose, ...); they count their trips with count_host_round_trip. `arange` and
`eye` are made on the host and copied up once (creation, not a round trip).
"""

import builtins
import collections
import numbers

import numpy as np

from minidl.backend.cuda import kernels as launch
from minidl.backend.cuda.array import DeviceArray, copy_into

name = "cuda"
F32 = np.dtype(np.float32)
F16 = np.dtype(np.float16)
I64 = np.dtype(np.int64)
BOOL = np.dtype(np.bool_)

_round_trips = collections.Counter()


def host_round_trips():
    """{primitive: how many times it went through the host} since the last reset (empty: none)."""
    return dict(_round_trips)


def reset_host_round_trips():
    _round_trips.clear()


def count_host_round_trip(op):
    """Count a round trip made above the kernels (an op that computes its result on the host)."""
    _round_trips[op] += 1


def _reference():
    from minidl.backend import reference_kernels  # imported late: minidl.backend imports nothing from cuda

    return reference_kernels


def _to_host(value):
    if isinstance(value, DeviceArray):
        return value.to_numpy()
    if isinstance(value, tuple):
        return tuple(_to_host(v) for v in value)
    if isinstance(value, list):
        return [_to_host(v) for v in value]
    return value


def _to_device(value):
    if isinstance(value, np.ndarray):
        return DeviceArray.from_numpy(value)
    if isinstance(value, np.generic):  # NumPy scalars from reductions to one value
        return DeviceArray.from_numpy(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_to_device(v) for v in value)
    return value


def _on_host(primitive, *args, **kwargs):
    """The NumPy reference's `primitive` on host copies of the arguments, its result copied back (counted)."""
    _round_trips[primitive] += 1
    result = getattr(_reference(), primitive)(*_to_host(args), **{k: _to_host(v) for k, v in kwargs.items()})
    return _to_device(result)


def _on_host_in_place(primitive, *args, **kwargs):
    """An in-place primitive on host copies, with every DeviceArray argument written back (counted)."""
    _round_trips[primitive] += 1
    host = _to_host(args)
    getattr(_reference(), primitive)(*host, **{k: _to_host(v) for k, v in kwargs.items()})
    for device_array, host_array in zip(args, host):
        if isinstance(device_array, DeviceArray):
            copy_into(DeviceArray.from_numpy(host_array), device_array)


def _is_f32(*operands):
    """Every operand a float32 DeviceArray or a Python/NumPy number, and at least one DeviceArray."""
    seen_array = False
    for x in operands:
        if isinstance(x, DeviceArray):
            if x.dtype != F32:
                return False
            seen_array = True
        elif not isinstance(x, (numbers.Real, np.number)) or isinstance(x, (bool, np.bool_)):
            return False
    return seen_array


# ---------------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------------
def _elementwise(primitive):
    device_kernel = getattr(launch, primitive)

    def kernel(*operands):
        if _is_f32(*operands):
            return device_kernel(*operands)
        return _on_host(primitive, *operands)

    kernel.__name__ = primitive
    kernel.__doc__ = f"{primitive} on the device for float32 (NumPy broadcasting); other dtypes via the host."
    return kernel


add, sub, mul, div, maximum, minimum, power = (
    _elementwise(p) for p in ("add", "sub", "mul", "div", "maximum", "minimum", "power")
)
neg, exp, log, sqrt, abs, sign, sin, cos, tanh = (  # noqa: A001 - the contract's names
    _elementwise(p) for p in ("neg", "exp", "log", "sqrt", "abs", "sign", "sin", "cos", "tanh")
)
greater, greater_equal, less, less_equal, equal, not_equal = (
    _elementwise(p) for p in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal")
)
sigmoid, relu = _elementwise("sigmoid"), _elementwise("relu")


def leaky_relu(x, slope):
    if _is_f32(x):
        return launch.leaky_relu(x, slope)
    return _on_host("leaky_relu", x, slope)


def where(cond, a, b):
    if isinstance(cond, DeviceArray) and cond.dtype == BOOL and _is_f32(a, b):
        return launch.where(cond, a, b)
    return _on_host("where", cond, a, b)


def clip(x, low, high):
    if _is_f32(x) and all(v is None or isinstance(v, (numbers.Real, np.number)) for v in (low, high)):
        if low is None and high is None:
            return x.copy()
        return launch.clip(x, -np.inf if low is None else low, np.inf if high is None else high)
    return _on_host("clip", x, low, high)


def astype(x, dtype):
    dtype = np.dtype(dtype)
    if isinstance(x, DeviceArray) and x.dtype == dtype:
        return x.copy()
    if isinstance(x, DeviceArray) and (x.dtype, dtype) == (F32, F16):
        return launch.float32_to_float16(x)
    if isinstance(x, DeviceArray) and (x.dtype, dtype) == (F16, F32):
        return launch.float16_to_float32(x)
    if isinstance(x, DeviceArray) and (x.dtype, dtype) == (BOOL, F32):  # a mask as numbers: where(x, 1, 0)
        return launch.where(x, 1.0, 0.0)
    if isinstance(x, DeviceArray) and (x.dtype, dtype) == (F32, BOOL):
        return launch.not_equal(x, 0.0)
    return _on_host("astype", x, dtype)


# ---------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------
def sum(x, axis=None, keepdims=False):  # noqa: A001
    return launch.sum(x, axis, keepdims) if _is_f32(x) else _on_host("sum", x, axis, keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return launch.max(x, axis, keepdims) if _is_f32(x) else _on_host("max", x, axis, keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return launch.min(x, axis, keepdims) if _is_f32(x) else _on_host("min", x, axis, keepdims)


def argmax(x, axis=None):
    return launch.argmax(x, axis) if _is_f32(x) else _on_host("argmax", x, axis)


# ---------------------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------------------
def matmul(a, b):
    """NumPy's matmul rules on the SGEMM kernels: a vector operand becomes a one-row (or one-column) matrix."""
    if not (isinstance(a, DeviceArray) and isinstance(b, DeviceArray) and a.dtype == F32 and b.dtype == F32):
        return _on_host("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    a2 = a.reshape(1, a.shape[0]) if a.ndim == 1 else a
    b2 = b.reshape(b.shape[0], 1) if b.ndim == 1 else b
    if a2.shape[-1] == 0 and a2.shape[-1] == b2.shape[-2]:  # no terms: every entry is an empty sum
        shape = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1])
        out = DeviceArray.zeros(shape, F32)
    else:
        out = launch.matmul(a2, b2)
    if a.ndim == 1:
        out = out.reshape(out.shape[:-2] + out.shape[-1:])
    if b.ndim == 1:
        out = out.reshape(out.shape[:-1])
    return out


def linear(x, weight, bias=None, activation=None):
    """act(x @ weight.T + bias): one GEMM, then bias and activation in one pass."""
    if _is_f32(x, weight) and (bias is None or _is_f32(bias)) and x.ndim == 2 and weight.ndim == 2:
        return launch.linear_act(x, weight, bias, activation)
    return _on_host("linear", x, weight, bias, activation)


def act_backward(grad, y, activation):
    """grad * act'(y), from the activation's output y (the bias-activation backward kernel's dz)."""
    if activation is None:
        return grad
    if _is_f32(grad, y) and grad.shape == y.shape and grad.ndim >= 1:
        dz, _ = launch.bias_act_backward(grad, y, activation)
        return dz
    return _on_host("act_backward", grad, y, activation)


# ---------------------------------------------------------------------------------------
# Layout, gather/scatter and memory
# ---------------------------------------------------------------------------------------
def reshape(x, shape):
    return x.reshape(shape)


def transpose(x, axes):
    return x.transpose(axes)


def broadcast_to(x, shape):
    return x.broadcast_to((shape,) if isinstance(shape, numbers.Integral) else tuple(shape))


def ascontiguousarray(x):
    return x.contiguous()


def concatenate(arrays, axis=0):
    arrays = list(arrays)
    if arrays and builtins.all(isinstance(a, DeviceArray) and a.dtype == arrays[0].dtype for a in arrays):
        return launch.concatenate(arrays, axis)
    return _on_host("concatenate", arrays, axis)


def stack(arrays, axis=0):
    arrays = list(arrays)
    if arrays and builtins.all(isinstance(a, DeviceArray) and a.dtype == arrays[0].dtype for a in arrays):
        return launch.stack(arrays, axis)
    return _on_host("stack", arrays, axis)


def pad(x, widths, constant_values=0):
    """np.pad's constant mode: widths is one (before, after) pair per axis, or one pair or number for all."""
    pairs = np.asarray(widths, dtype=np.int64)
    pairs = np.broadcast_to(pairs.reshape(-1, 2) if pairs.ndim else np.full((1, 2), pairs), (x.ndim, 2))
    return launch.pad(x, [(int(before), int(after)) for before, after in pairs], constant_values)


def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return builtins.all(p is None or p is Ellipsis or isinstance(p, (numbers.Integral, slice)) for p in parts) and (
        not builtins.any(isinstance(p, (bool, np.bool_)) for p in parts)
    )


def _row_index(index):
    """The int64 DeviceArray of an index that picks rows (x[idx], idx 1-d integers), or None."""
    idx = index[0] if isinstance(index, tuple) and len(index) == 1 else index
    if isinstance(idx, np.ndarray) and idx.ndim == 1 and idx.dtype.kind in "iu":
        return DeviceArray.from_numpy(idx.astype(np.int64, copy=False))  # the index is host data: upload it
    if isinstance(idx, DeviceArray) and idx.ndim == 1 and idx.dtype == I64:
        return idx
    return None


def getitem(x, index):
    if _is_basic(index):
        return x[index]
    rows = _row_index(index)
    if rows is not None and x.dtype == F32 and x.ndim >= 1:
        return launch.getitem(x, rows)
    return _on_host("getitem", x, index)


def setitem(x, index, value):
    """x[index] = value in place (value: a number or an array broadcast to the selection)."""
    if not _is_basic(index):
        _on_host_in_place("setitem", x, index, value)
        return
    target = x[index]
    if isinstance(value, np.ndarray):
        value = DeviceArray.from_numpy(value)  # host values: copied up
    if isinstance(value, DeviceArray):
        if value.dtype != x.dtype:
            value = astype(value, x.dtype)
        copy_into(value.broadcast_to(target.shape).contiguous(), target)
    elif target.size:
        filled = DeviceArray.full(target.shape, value, x.dtype)
        copy_into(filled, target)


def scatter_add(shape, index, values, dtype):
    dtype = np.dtype(dtype)
    if dtype == F32 and isinstance(values, DeviceArray) and values.dtype == F32:
        if _is_basic(index):
            return launch.scatter_add(shape, index, values, dtype)
        rows = _row_index(index)
        if rows is not None:
            return launch.scatter_add(shape, rows, values, dtype)
    return _on_host("scatter_add", shape, index, values, dtype)


def zeros(shape, dtype=np.float32):
    return DeviceArray.zeros(shape, dtype)


def ones(shape, dtype=np.float32):
    return DeviceArray.full(shape, 1, dtype)


def full(shape, value, dtype=np.float32):
    return DeviceArray.full(shape, value, dtype)


def empty(shape, dtype=np.float32):
    return DeviceArray.empty(shape, dtype)


def arange(start, stop, step, dtype):
    return DeviceArray.from_numpy(np.arange(start, stop, step, dtype=dtype))  # made on the host, copied up once


def eye(n, dtype):
    return DeviceArray.from_numpy(np.eye(n, dtype=dtype))


def to_numpy(x):
    return x.to_numpy() if isinstance(x, DeviceArray) else np.asarray(x)


def from_numpy(x):
    return x if isinstance(x, DeviceArray) else DeviceArray.from_numpy(np.asarray(x))


# ---------------------------------------------------------------------------------------
# Convolution and pooling: the kernels take one stride, one padding and no dilation
# ---------------------------------------------------------------------------------------
def _square(*pairs):
    return builtins.all(p[0] == p[1] for p in pairs)


def im2col(x, kernel, stride, padding, dilation=(1, 1)):
    if _is_f32(x) and _square(stride, padding) and tuple(dilation) == (1, 1):
        return launch.im2col(x, kernel[0], kernel[1], stride[0], padding[0])
    return _on_host("im2col", x, kernel, stride, padding, dilation)


def col2im(cols, x_shape, kernel, stride, padding, dilation=(1, 1)):
    if _is_f32(cols) and _square(stride, padding) and tuple(dilation) == (1, 1):
        return launch.col2im(cols, tuple(x_shape), kernel[0], kernel[1], stride[0], padding[0])
    return _on_host("col2im", cols, x_shape, kernel, stride, padding, dilation)


def max_pool2d_forward(x, kernel, stride, padding):
    if _is_f32(x) and _square(kernel, stride, padding):
        return launch.max_pool2d_forward(x, kernel[0], stride[0], padding[0])
    return _on_host("max_pool2d_forward", x, kernel, stride, padding)


def max_pool2d_backward(grad, argmax, x_shape, kernel, stride, padding):
    if _is_f32(grad) and _square(kernel, stride, padding):
        return launch.max_pool2d_backward(grad, argmax, tuple(x_shape), kernel[0], stride[0], padding[0])
    return _on_host("max_pool2d_backward", grad, argmax, x_shape, kernel, stride, padding)


def max_pool2d_select(x, argmax, kernel, stride, padding):
    return _on_host("max_pool2d_select", x, argmax, kernel, stride, padding)  # no kernel for it (yet)


def avg_pool2d_forward(x, kernel, stride, padding):
    if _is_f32(x) and _square(kernel, stride, padding):
        return launch.avg_pool2d_forward(x, kernel[0], stride[0], padding[0])
    return _on_host("avg_pool2d_forward", x, kernel, stride, padding)


def avg_pool2d_backward(grad, x_shape, kernel, stride, padding):
    if _is_f32(grad) and _square(kernel, stride, padding):
        return launch.avg_pool2d_backward(grad, tuple(x_shape), kernel[0], stride[0], padding[0])
    return _on_host("avg_pool2d_backward", grad, x_shape, kernel, stride, padding)


# ---------------------------------------------------------------------------------------
# Softmax family and the fused loss
# ---------------------------------------------------------------------------------------
def softmax(x, axis=-1):
    return launch.softmax(x, axis) if _is_f32(x) else _on_host("softmax", x, axis)


def log_softmax(x, axis=-1):
    return launch.log_softmax(x, axis) if _is_f32(x) else _on_host("log_softmax", x, axis)


def _targets(targets):
    """Targets as an int64 DeviceArray (host arrays are uploaded), or None when they cannot be."""
    if isinstance(targets, np.ndarray) and targets.dtype.kind in "iu":
        return DeviceArray.from_numpy(targets.astype(np.int64, copy=False))
    if isinstance(targets, DeviceArray) and targets.dtype == I64:
        return targets
    return None


def cross_entropy_forward(logits, targets):
    device_targets = _targets(targets)
    if _is_f32(logits) and device_targets is not None:
        return launch.cross_entropy_forward(logits, device_targets)
    return _on_host("cross_entropy_forward", logits, targets)


def cross_entropy_backward(probs, targets, grad_losses):
    device_targets = _targets(targets)
    if _is_f32(probs, grad_losses) and device_targets is not None:
        return launch.cross_entropy_backward(probs, device_targets, grad_losses)
    return _on_host("cross_entropy_backward", probs, targets, grad_losses)


def class_targets(targets, ignore_index, classes):
    device_targets = _targets(targets)
    if device_targets is not None:
        return launch.class_targets(device_targets, ignore_index, classes)
    return _on_host("class_targets", targets, ignore_index, classes)


def nll_loss_forward(log_probs, targets):
    device_targets = _targets(targets)
    if _is_f32(log_probs) and device_targets is not None:
        return launch.nll_loss_forward(log_probs, device_targets)
    return _on_host("nll_loss_forward", log_probs, targets)


def nll_loss_backward(grad_losses, targets, classes):
    device_targets = _targets(targets)
    if _is_f32(grad_losses) and device_targets is not None:
        return launch.nll_loss_backward(grad_losses, device_targets, classes)
    return _on_host("nll_loss_backward", grad_losses, targets, classes)


# ---------------------------------------------------------------------------------------
# Optimizer updates (in place): the kernels take contiguous float32 arrays
# ---------------------------------------------------------------------------------------
def _updatable(*arrays):
    return builtins.all(
        a is None or (isinstance(a, DeviceArray) and a.dtype == F32 and a.is_contiguous()) for a in arrays
    )


def sgd_update(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
    if _updatable(param, grad, velocity):
        launch.sgd_update(param, grad, velocity, lr, momentum, weight_decay, nesterov, dampening)
    else:
        _on_host_in_place("sgd_update", param, grad, velocity, lr, momentum, weight_decay, nesterov, dampening)


def adagrad_update(param, grad, sum_sq, lr, eps=1e-10, weight_decay=0.0):
    if _updatable(param, grad, sum_sq):
        launch.adagrad_update(param, grad, sum_sq, lr, eps, weight_decay)
    else:
        _on_host_in_place("adagrad_update", param, grad, sum_sq, lr, eps, weight_decay)


def rmsprop_update(param, grad, mean_sq, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, mean=None):
    if _updatable(param, grad, mean_sq, mean):
        launch.rmsprop_update(param, grad, mean_sq, lr, alpha, eps, weight_decay, mean)
    else:
        _on_host_in_place("rmsprop_update", param, grad, mean_sq, lr, alpha, eps, weight_decay, mean)


def adam_update(param, grad, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, max_v=None):
    if _updatable(param, grad, m, v, max_v):
        launch.adam_update(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, max_v)
    else:
        _on_host_in_place("adam_update", param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, max_v)


# ---------------------------------------------------------------------------------------
# 16-bit conversions
# ---------------------------------------------------------------------------------------
float32_to_float16 = launch.float32_to_float16
float16_to_float32 = launch.float16_to_float32
float32_to_truncated16 = launch.float32_to_truncated16
truncated16_to_float32 = launch.truncated16_to_float32
