"""Convolution in C: im2col and col2im (csrc/conv.c).

The cost here is moving data, not arithmetic: NumPy's versions build strided window views
and copy or scatter them through full-size temporaries; the C loops walk each output once,
in memory order.
"""

import math

import numpy as np

from minidl.backend.c import _ffi
from minidl.backend.c._reference import ref

MIN_CONV = 256  # elements of the image: below this the Python around the call costs more


def conv_output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def geometry_ok(shape, kh, kw, stride, padding):
    """Whether the C conv/pool kernels take an (N, C, H, W) image of `shape` with this window."""
    return (
        _ffi.available
        and len(shape) == 4
        and math.prod(shape) >= MIN_CONV
        and stride >= 1
        and padding >= 0
        and conv_output_size(shape[2], kh, stride, padding) > 0
        and conv_output_size(shape[3], kw, stride, padding) > 0
    )


def im2col(x, kh, kw, stride, padding):
    if not _ffi.is_f32(x) or not geometry_ok(x.shape, kh, kw, stride, padding):
        return ref.im2col(x, kh, kw, stride, padding)
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    x = _ffi.contig(x)
    cols = np.empty((n * oh * ow, c * kh * kw), _ffi.F32)
    _ffi.lib.mdk_im2col(_ffi.buf(x), _ffi.buf(cols), n, c, h, w, kh, kw, stride, padding)
    return cols


def col2im(cols, x_shape, kh, kw, stride, padding):
    n, c, h, w = x_shape
    if not _ffi.is_f32(cols) or not geometry_ok(x_shape, kh, kw, stride, padding):
        return ref.col2im(cols, x_shape, kh, kw, stride, padding)
    oh, ow = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    if cols.shape != (n * oh * ow, c * kh * kw):
        return ref.col2im(cols, x_shape, kh, kw, stride, padding)
    cols = _ffi.contig(cols)
    x = np.empty((n, c, h, w), _ffi.F32)
    _ffi.lib.mdk_col2im(_ffi.buf(cols), _ffi.buf(x), n, c, h, w, kh, kw, stride, padding)
    return x


__all__ = ["im2col", "col2im"]
