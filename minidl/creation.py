"""Functions that make new tensors: from data, filled with a value, ranges, random."""

import numpy as np

from minidl import random as _random
from minidl.tensor import DEFAULT_FLOAT, Tensor, _to_array


def _shape(shape, op):
    """Accept f(2, 3) and f((2, 3)); errors name the creation function `op`."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{op}: shape must be non-negative integers, got {shape}")
    return tuple(int(n) for n in shape)


def _dtype(dtype):
    return DEFAULT_FLOAT if dtype is None else np.dtype(dtype)


def tensor(data, dtype=None, requires_grad=False):
    """A new tensor holding a copy of `data` (numbers, nested lists or an ndarray).

    Python floats become float32; ndarrays keep their dtype (as torch.tensor does).
    """
    return Tensor(_to_array(data, dtype, copy=True), requires_grad=requires_grad)


def zeros(*shape, dtype=None, requires_grad=False):
    return Tensor(np.zeros(_shape(shape, "zeros"), dtype=_dtype(dtype)), requires_grad=requires_grad)


def ones(*shape, dtype=None, requires_grad=False):
    return Tensor(np.ones(_shape(shape, "ones"), dtype=_dtype(dtype)), requires_grad=requires_grad)


def full(shape, value, dtype=None, requires_grad=False):
    shape = _shape((shape,) if isinstance(shape, (int, np.integer)) else (tuple(shape),), "full")
    return Tensor(np.full(shape, value, dtype=_dtype(dtype)), requires_grad=requires_grad)


def empty(*shape, dtype=None, requires_grad=False):
    return Tensor(np.empty(_shape(shape, "empty"), dtype=_dtype(dtype)), requires_grad=requires_grad)


def arange(start, stop=None, step=1, dtype=None, requires_grad=False):
    """Like range(): integer arguments give an int64 tensor, float arguments float32."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ValueError("arange: step must not be zero")
    values = np.arange(start, stop, step)
    if dtype is not None:
        values = values.astype(dtype)
    elif values.dtype == np.float64:
        values = values.astype(DEFAULT_FLOAT)
    return Tensor(values, requires_grad=requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    return Tensor(np.eye(n, m, dtype=_dtype(dtype)), requires_grad=requires_grad)


def rand(*shape, dtype=None, requires_grad=False):
    """Uniform samples in [0, 1), from minidl's seeded generator."""
    values = _random.generator().random(_shape(shape, "rand")).astype(_dtype(dtype))
    return Tensor(values, requires_grad=requires_grad)


def randn(*shape, dtype=None, requires_grad=False):
    """Standard normal samples, from minidl's seeded generator."""
    values = _random.generator().standard_normal(_shape(shape, "randn")).astype(_dtype(dtype))
    return Tensor(values, requires_grad=requires_grad)


def randint(low, high, shape, dtype=np.int64):
    return Tensor(_random.generator().integers(low, high, size=shape).astype(dtype))


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad)


def full_like(t, value, dtype=None, requires_grad=False):
    return full(t.shape, value, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad)


def empty_like(t, dtype=None, requires_grad=False):
    return empty(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad)


def rand_like(t, dtype=None, requires_grad=False):
    return rand(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad)


def randn_like(t, dtype=None, requires_grad=False):
    return randn(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad)


def as_tensor(data, dtype=None):
    """Wrap data as a tensor without copying when it already is an ndarray of the right dtype."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == np.dtype(dtype)):
        return data
    return Tensor(_to_array(data, dtype))


def from_numpy(array):
    """A tensor sharing memory with `array`."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected an ndarray, got {type(array).__name__}")
    return Tensor(array)
