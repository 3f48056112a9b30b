"""Max pooling in C (csrc/pool.c): the winner of each window and the gradient routed back to it.

kernel, stride and padding are (h, w) pairs; padded cells never win. argmax is the winner's
offset i*kw + j inside its window, as the reference computes it (np.argmax over the window).
"""

import math

import numpy as np

from minidl.backend.c import _ffi
from minidl.backend.c._reference import ref
from minidl.backend.c.conv import MIN_CONV, _pair

_I64 = "int64_t[]"


def _pool_geometry(x_shape, kernel, stride, padding):
    """(n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow) if the C kernels take this pooling; None otherwise."""
    if not _ffi.available or len(x_shape) != 4 or math.prod(x_shape) < MIN_CONV:
        return None
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
        return None
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if oh < 1 or ow < 1:
        return None
    return n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow


def max_pool2d_forward(x, kernel, stride, padding):
    """Returns (output, argmax): argmax is the winning offset inside each window."""
    geometry = _pool_geometry(x.shape, kernel, stride, padding) if _ffi.is_f32(x) else None
    if geometry is None:
        return ref.max_pool2d_forward(x, kernel, stride, padding)
    n, c, *_, oh, ow = geometry
    x = _ffi.contig(x)
    out = np.empty((n, c, oh, ow), _ffi.F32)
    argmax = np.empty((n, c, oh, ow), np.int64)
    _ffi.lib.mdk_max_pool2d_forward(_ffi.buf(x), _ffi.buf(out), _ffi.buf(argmax, _I64), *geometry[:10])
    return out, argmax


def max_pool2d_backward(grad, argmax, x_shape, kernel, stride, padding):
    """Each output's gradient, routed to the input element that won its window."""
    x_shape = tuple(x_shape)
    geometry = _pool_geometry(x_shape, kernel, stride, padding)
    if (
        geometry is None
        or not _ffi.is_f32(grad)
        or type(argmax) is not np.ndarray
        or argmax.shape != grad.shape
        or grad.shape != (*x_shape[:2], *geometry[10:])
    ):
        return ref.max_pool2d_backward(grad, argmax, x_shape, kernel, stride, padding)
    grad = _ffi.contig(grad)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    dx = np.empty(x_shape, _ffi.F32)
    _ffi.lib.mdk_max_pool2d_backward(_ffi.buf(grad), _ffi.buf(argmax, _I64), _ffi.buf(dx), *geometry[:10])
    return dx


__all__ = ["max_pool2d_forward", "max_pool2d_backward"]
