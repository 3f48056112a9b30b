"""Reductions in C: sum and max over a run of axes, softmax and log-softmax over the last axis
(csrc/reductions.c, csrc/softmax.c).

A C-contiguous array reduced over axes i..j is a 3-D array (outer, n, inner) reduced over its
middle axis; one C loop covers row sums (inner == 1), column sums (outer == 1, the bias
gradient of a linear layer) and everything between.
"""

import math

import numpy as np

from minidl.backend.c import _ffi
from minidl.backend.c._reference import ref

# sum / max over axes: the C loop is faster per element, but the Python around the
# call costs ~10 us; measured crossover ~32k elements (1k: C 13 us vs NumPy 3 us;
# 64k: C 20 us vs NumPy 29 us).
MIN_REDUCE = 32768
MIN_SOFTMAX = 256  # softmax and log-softmax: one pass per row instead of four, a win from tiny sizes


def _axis_split(shape, axis):
    """(outer, n, inner, axes, kept_shape) if `axis` names one contiguous run of axes; else None."""
    ndim = len(shape)
    if ndim == 0:
        return None
    if axis is None:
        axes = tuple(range(ndim))
    else:
        raw = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        if not raw or any(not -ndim <= int(a) < ndim for a in raw):
            return None  # NumPy raises the right error
        axes = tuple(sorted({int(a) % ndim for a in raw}))
        if len(axes) != len(raw):
            return None
    first, last = axes[0], axes[-1]
    if axes != tuple(range(first, last + 1)):
        return None
    outer = math.prod(shape[:first])
    n = math.prod(shape[first : last + 1])
    inner = math.prod(shape[last + 1 :])
    kept_shape = tuple(1 if i in axes else d for i, d in enumerate(shape))
    return outer, n, inner, axes, kept_shape


def _kept_axis(shape, axis):
    """(outer, n, inner, kept_shape) if `axis` names every axis but one, the one in the middle
    (a conv bias gradient: (0, 2, 3) of NCHW); else None."""
    ndim = len(shape)
    if axis is None or isinstance(axis, (int, np.integer)) or ndim < 3:
        return None
    try:
        axes = {int(a) % ndim for a in axis if -ndim <= int(a) < ndim}
    except TypeError:
        return None
    if len(axes) != len(tuple(axis)) or len(axes) != ndim - 1:
        return None
    (keep,) = set(range(ndim)) - axes
    if keep in (0, ndim - 1):
        return None  # one contiguous run of axes: _axis_split takes it
    kept_shape = tuple(d if i == keep else 1 for i, d in enumerate(shape))
    return math.prod(shape[:keep]), shape[keep], math.prod(shape[keep + 1 :]), kept_shape


def _reduce(c_name, ref_fn, x, axis, keepdims):
    if not _ffi.available or x.size < MIN_REDUCE or not _ffi.is_f32(x):
        return ref_fn(x, axis=axis, keepdims=keepdims)
    split = _axis_split(x.shape, axis)
    if split is None:
        kept = _kept_axis(x.shape, axis) if c_name == "mdk_sum_axis" else None
        if kept is None:
            return ref_fn(x, axis=axis, keepdims=keepdims)
        outer, n, inner, kept_shape = kept
        x = _ffi.contig(x)
        out = np.empty(n, _ffi.F32)
        _ffi.lib.mdk_sum_keep_axis(_ffi.buf(x), _ffi.buf(out), outer, n, inner)
        return out.reshape(kept_shape) if keepdims else out
    outer, n, inner, axes, kept_shape = split
    x = _ffi.contig(x)
    out = np.empty(outer * inner, _ffi.F32)
    getattr(_ffi.lib, c_name)(_ffi.buf(x), _ffi.buf(out), outer, n, inner)
    if keepdims:
        return out.reshape(kept_shape)
    result = out.reshape(tuple(d for i, d in enumerate(x.shape) if i not in axes))
    return result[()] if result.ndim == 0 else result  # a NumPy scalar, as np.sum returns


def sum(x, axis=None, keepdims=False):  # noqa: A001
    """np.sum; over one run of axes, or over every axis but one (a conv bias gradient), in C."""
    # The two sums of every training step, a linear layer's bias gradient (axis 0 of (N, F)) and a
    # convolution's ((0, 2, 3) of NCHW), skip the general axis analysis: its Python costs more
    # than the C loop.
    if (
        type(x) is np.ndarray and x.dtype == _ffi.F32 and x.flags.c_contiguous and x.size >= MIN_REDUCE
        and not keepdims and _ffi.available
    ):  # fmt: skip
        if axis == 0 and x.ndim == 2:
            out = np.empty(x.shape[1], _ffi.F32)
            _ffi.lib.mdk_sum_axis(_ffi.buf(x), _ffi.buf(out), 1, x.shape[0], x.shape[1])
            return out
        if axis == (0, 2, 3) and x.ndim == 4:
            n, c, h, w = x.shape
            out = np.empty(c, _ffi.F32)
            _ffi.lib.mdk_sum_keep_axis(_ffi.buf(x), _ffi.buf(out), n, c, h * w)
            return out
    return _reduce("mdk_sum_axis", ref.sum, x, axis, keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return _reduce("mdk_max_axis", ref.max, x, axis, keepdims)


def _last_axis(x, axis):
    return axis in (-1, x.ndim - 1) and x.ndim >= 1 and x.shape[-1] > 0


def _row_kernel(c_name, ref_fn):
    """A row-wise kernel (softmax, log-softmax) over the last axis in C; the reference otherwise."""

    def kernel(x, axis=-1):
        if not _ffi.available or not _ffi.is_f32(x) or x.size < MIN_SOFTMAX or not _last_axis(x, axis):
            return ref_fn(x, axis=axis)
        x = _ffi.contig(x)
        out = np.empty(x.shape, _ffi.F32)
        getattr(_ffi.lib, c_name)(_ffi.buf(x), _ffi.buf(out), x.size // x.shape[-1], x.shape[-1])
        return out

    kernel.__name__ = ref_fn.__name__
    kernel.__doc__ = f"{ref_fn.__name__} over the last axis of a float32 array in C; the reference otherwise."
    return kernel


softmax = _row_kernel("mdk_softmax", ref.softmax)
log_softmax = _row_kernel("mdk_log_softmax", ref.log_softmax)

__all__ = ["sum", "max", "softmax", "log_softmax"]
