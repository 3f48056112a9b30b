"""Max pooling in C (csrc/pool.c): the winner of each window and the gradient routed back to it."""

import numpy as np

from minidl.backend.c import _ffi
from minidl.backend.c._reference import ref
from minidl.backend.c.conv import MIN_CONV, conv_output_size, geometry_ok


def max_pool2d_forward(x, kernel, stride, padding):
    """Returns (output, argmax): argmax is the winning offset inside each window."""
    if not _ffi.is_f32(x) or not geometry_ok(x.shape, kernel, kernel, stride, padding):
        return ref.max_pool2d_forward(x, kernel, stride, padding)
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kernel, stride, padding), conv_output_size(w, kernel, stride, padding)
    x = _ffi.contig(x)
    out = np.empty((n, c, oh, ow), _ffi.F32)
    argmax = np.empty((n, c, oh, ow), np.int64)
    _ffi.lib.mdk_max_pool2d_forward(
        _ffi.buf(x),
        _ffi.buf(out),
        _ffi.buf(argmax, "int64_t[]"),
        n,
        c,
        h,
        w,
        kernel,
        kernel,
        stride,
        stride,
        padding,
        padding,
    )
    return out, argmax


def max_pool2d_backward(grad, argmax, x_shape, kernel, stride, padding):
    n, c, h, w = x_shape
    out_shape = (conv_output_size(h, kernel, stride, padding), conv_output_size(w, kernel, stride, padding))
    if (
        not _ffi.available
        or not _ffi.is_f32(grad)
        or grad.size < MIN_CONV // 4
        or type(argmax) is not np.ndarray
        or argmax.shape != grad.shape
        or grad.shape[:2] != (n, c)
        or grad.shape[2:] != out_shape
    ):
        return ref.max_pool2d_backward(grad, argmax, x_shape, kernel, stride, padding)
    grad = _ffi.contig(grad)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    dx = np.empty((n, c, h, w), _ffi.F32)
    _ffi.lib.mdk_max_pool2d_backward(
        _ffi.buf(grad),
        _ffi.buf(argmax, "int64_t[]"),
        _ffi.buf(dx),
        n,
        c,
        h,
        w,
        kernel,
        kernel,
        stride,
        stride,
        padding,
        padding,
    )
    return dx


__all__ = ["max_pool2d_forward", "max_pool2d_backward"]
