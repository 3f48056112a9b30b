"""Functions that make new tensors: from data, filled with a value, ranges, random.

Arguments and defaults are PyTorch's: float32 unless told otherwise (Python ints stay int64
in minidl.tensor, arange and full), `dtype=`, `requires_grad=` and `device=` keywords.
"""

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


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new tensor holding a copy of `data` (numbers, nested lists or an ndarray).

    Python floats become float32 and Python ints int64; ndarrays keep their dtype (as torch.tensor does).
    A tensor's copy stays on its device unless `device` says otherwise.
    """
    if device is None and isinstance(data, Tensor):
        device = data.device
    return Tensor._wrap(_to_array(data, dtype, copy=True), requires_grad, device)


def zeros(*shape, dtype=None, requires_grad=False, device=None):
    return Tensor._wrap(np.zeros(_shape(shape, "zeros"), dtype=_dtype(dtype)), requires_grad, device)


def ones(*shape, dtype=None, requires_grad=False, device=None):
    return Tensor._wrap(np.ones(_shape(shape, "ones"), dtype=_dtype(dtype)), requires_grad, device)


def full(shape, fill_value, dtype=None, requires_grad=False, device=None):
    """A tensor of one value. Its dtype follows the value, as in PyTorch: bool, int64 or float32."""
    shape = _shape((shape,) if isinstance(shape, (int, np.integer)) else (tuple(shape),), "full")
    if dtype is None:
        dtype = np.bool_ if isinstance(fill_value, bool) else np.int64 if isinstance(fill_value, int) else DEFAULT_FLOAT
    return Tensor._wrap(np.full(shape, fill_value, dtype=dtype), requires_grad, device)


def empty(*shape, dtype=None, requires_grad=False, device=None):
    return Tensor._wrap(np.empty(_shape(shape, "empty"), dtype=_dtype(dtype)), requires_grad, device)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    """Like range(): integer arguments give an int64 tensor, float arguments float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must not be zero")
    values = np.arange(start, end, step)
    if dtype is not None:
        values = values.astype(dtype)
    elif values.dtype == np.float64:
        values = values.astype(DEFAULT_FLOAT)
    return Tensor._wrap(values, requires_grad, device)


def linspace(start, end, steps, dtype=None, requires_grad=False, device=None):
    """`steps` evenly spaced values from start to end, both included (float32 by default)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative integer, got {steps!r}")
    return Tensor._wrap(np.linspace(start, end, int(steps)).astype(_dtype(dtype)), requires_grad, device)


def eye(n, m=None, dtype=None, requires_grad=False, device=None):
    return Tensor._wrap(np.eye(n, m, dtype=_dtype(dtype)), requires_grad, device)


def rand(*shape, dtype=None, requires_grad=False, device=None):
    """Uniform samples in [0, 1), from minidl's seeded generator."""
    values = _random.generator().random(_shape(shape, "rand")).astype(_dtype(dtype))
    return Tensor._wrap(values, requires_grad, device)


def randn(*shape, dtype=None, requires_grad=False, device=None):
    """Standard normal samples, from minidl's seeded generator."""
    values = _random.generator().standard_normal(_shape(shape, "randn")).astype(_dtype(dtype))
    return Tensor._wrap(values, requires_grad, device)


def randint(low, high=None, size=None, dtype=np.int64, device=None):
    """Integers uniform in [low, high); randint(high, size) starts at 0, as torch.randint."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint: give (low, high, size) or (high, size), with size a tuple such as (3,)")
        low, high, size = 0, low, high
    return Tensor._wrap(_random.generator().integers(low, high, size=size).astype(dtype), device=device)


def randperm(n, dtype=np.int64, device=None):
    """A random permutation of 0..n-1 (int64), from minidl's seeded generator."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"randperm: n must be a non-negative integer, got {n!r}")
    return Tensor._wrap(_random.generator().permutation(int(n)).astype(dtype), device=device)


def _like(t, device):
    """The *_like functions make their tensor on t's device unless told otherwise, as in PyTorch."""
    return t.device if device is None else device


def zeros_like(t, dtype=None, requires_grad=False, device=None):
    return zeros(
        t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad, device=_like(t, device)
    )


def ones_like(t, dtype=None, requires_grad=False, device=None):
    return ones(
        t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad, device=_like(t, device)
    )


def full_like(t, fill_value, dtype=None, requires_grad=False, device=None):
    dtype = t.dtype if dtype is None else dtype
    return full(t.shape, fill_value, dtype=dtype, requires_grad=requires_grad, device=_like(t, device))


def empty_like(t, dtype=None, requires_grad=False, device=None):
    return empty(
        t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad, device=_like(t, device)
    )


def rand_like(t, dtype=None, requires_grad=False, device=None):
    return rand(
        t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad, device=_like(t, device)
    )


def randn_like(t, dtype=None, requires_grad=False, device=None):
    return randn(
        t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad, device=_like(t, device)
    )


def as_tensor(data, dtype=None, device=None):
    """Wrap data as a tensor without copying when it already is an ndarray of the right dtype."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == np.dtype(dtype)):
        return data.to(device) if device is not None else data
    return Tensor._wrap(_to_array(data, dtype), device=device)


def from_numpy(array):
    """A tensor sharing memory with `array`."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected an ndarray, got {type(array).__name__}")
    return Tensor._wrap(array)
