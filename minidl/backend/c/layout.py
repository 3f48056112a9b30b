"""Layout copies in C: the NHWC <-> NCHW transposes of convolution activations (csrc/transpose.c).

NumPy copies a transposed 4-D view element by element in the view's order, striding through
the source; the C copy transposes 16 x 16 blocks in registers (8 x 8 on AVX2), reading and
writing whole cache lines. Everything else goes to NumPy; a reshape NumPy can do as a view
stays a view.
"""

import numpy as np

from minidl.backend.c import _ffi

MIN_LAYOUT = 256  # elements: below this the Python around the call costs more than the copy


def _batched_transpose(x):
    """(batch, rows, cols) if x (4-D) reads a row-major (batch, rows, cols) array as its per-batch transpose.

    Two layouts are recognised: the NHWC -> NCHW view (N, C, H, W) of an (N, H*W, C) array,
    and the NCHW -> NHWC view (N, H, W, C) of an (N, C, H*W) array -- what a conv2d's
    permute(...).contiguous() and its backward copy.
    """
    n, p, q, r = x.shape
    it = x.itemsize
    if x.strides == (p * q * r * it, it, r * p * it, p * it):  # (N, P, Q, R) of (N, Q*R, P)
        return n, q * r, p
    if x.strides == (p * q * r * it, q * it, it, p * q * it):  # (N, P, Q, R) of (N, R, P*Q)
        return n, r, p * q
    return None


def _transpose_split(x):
    """_batched_transpose(x) for a big enough float32 view the C copy can take; None otherwise."""
    if (
        not _ffi.available
        or type(x) is not np.ndarray
        or x.ndim != 4
        or x.dtype != _ffi.F32
        or x.size < MIN_LAYOUT
        or x.flags.c_contiguous
    ):
        return None
    return _batched_transpose(x)


def _transposed_copy(x, split):
    """A contiguous copy of x, given its _transpose_split."""
    out = np.empty(x.shape, _ffi.F32)
    _ffi.lib.mdk_transpose_batched(_ffi.strided_ptr(x), _ffi.buf(out), *split)
    return out


def ascontiguousarray(x, *args, **kwargs):
    """np.ascontiguousarray; a transposed float32 activation (NHWC <-> NCHW) is copied in C, in blocks."""
    if args or kwargs:
        return np.ascontiguousarray(x, *args, **kwargs)
    split = _transpose_split(x)
    if split is not None:
        return _transposed_copy(x, split)
    return np.ascontiguousarray(x)


def reshape(x, shape):
    """x.reshape(shape); when that needs a copy of a transposed activation, the copy is made in C.

    Only when NumPy itself would copy: a reshape NumPy can do as a view stays a view.
    """
    split = _transpose_split(x)
    if split is not None:
        try:
            return np.reshape(x, shape, copy=False)
        except ValueError:  # NumPy would copy
            return _transposed_copy(x, split).reshape(shape)
    return x.reshape(shape)


__all__ = ["ascontiguousarray", "reshape"]
