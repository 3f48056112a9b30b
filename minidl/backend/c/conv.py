"""Convolution in C: the conv2d primitives, and im2col / col2im (csrc/conv.c, csrc/im2col.c).

conv2d_forward, conv2d_backward_input and conv2d_backward_weight each run image by image:
the image's patches go to a per-thread buffer that fits in L2, and one GEMM per image
writes its NCHW output directly, with the bias and activation applied to each tile in
the GEMM's epilogue (csrc/conv.c says why). Every geometry runs in C (stride, padding
and dilation per axis, groups); other dtypes go to the reference.

im2col and col2im, the contract's core primitives, are loops that walk each output once
in memory order, instead of NumPy's strided window views and full-size temporaries.
"""

import math

import numpy as np

from minidl.backend.c import _ffi
from minidl.backend.c._reference import ref

MIN_CONV = 256  # elements of the image: below this the Python around the call costs more


def _pair(value):
    return (value, value) if isinstance(value, (int, np.integer)) else tuple(value)


def _out_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _geometry(x_shape, weight_shape, stride, padding, dilation, groups):
    """The C geometry struct (mdk_conv_geometry) if the C kernels take this convolution; None otherwise."""
    if not _ffi.available or len(x_shape) != 4 or len(weight_shape) != 4:
        return None
    n, c, h, w = x_shape
    f, cg, kh, kw = weight_shape
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    if (
        not isinstance(groups, (int, np.integer))
        or groups < 1
        or c % groups
        or f % groups
        or cg != c // groups
        or min(sh, sw, dh, dw, kh, kw) < 1
        or min(ph, pw) < 0
        or _out_size(h, kh, sh, ph, dh) < 1
        or _out_size(w, kw, sw, pw, dw) < 1
        or math.prod(x_shape) < MIN_CONV
    ):
        return None
    fields = {"n": n, "c": c, "h": h, "w": w, "f": f, "kh": kh, "kw": kw, "sh": sh, "sw": sw, "ph": ph, "pw": pw}
    fields.update(dh=dh, dw=dw, groups=int(groups))
    return _ffi.ffi.new("mdk_conv_geometry *", fields)


def _check(rc, op, shape):
    if rc == _ffi.lib.MDK_ENOMEM:
        raise MemoryError(f"{op}: could not allocate the work buffers for a convolution of input {shape}")


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups, activation=None):
    """act(conv(x, weight) + bias), NCHW: one GEMM per image writing its output, bias and activation fused."""
    act = _ffi.ACTIVATIONS.get(activation)
    g = None
    if act is not None and _ffi.is_f32(x, weight) and (bias is None or _ffi.is_f32(bias)):
        g = _geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    if g is None or (bias is not None and bias.shape != (weight.shape[0],)):
        return ref.conv2d_forward(x, weight, bias, stride, padding, dilation, groups, activation)
    x, weight = _ffi.contig(x), _ffi.contig(weight)
    out = np.empty((g.n, g.f, _out_size(g.h, g.kh, g.sh, g.ph, g.dh), _out_size(g.w, g.kw, g.sw, g.pw, g.dw)), _ffi.F32)
    bias_ptr = _ffi.ffi.NULL if bias is None else _ffi.buf(_ffi.contig(bias))
    rc = _ffi.lib.mdk_conv2d_forward(g, _ffi.buf(x), _ffi.buf(weight), bias_ptr, _ffi.buf(out), act)
    _check(rc, "conv2d_forward", x.shape)
    return out


def conv2d_backward_input(grad, weight, x_shape, stride, padding, dilation, groups):
    """dL/dx of a convolution: per image W^T . dY, added back where each patch came from (col2im)."""
    g = None
    if _ffi.is_f32(grad, weight):
        g = _geometry(tuple(x_shape), weight.shape, stride, padding, dilation, groups)
    if g is None or grad.shape != _out_shape(g):
        return ref.conv2d_backward_input(grad, weight, x_shape, stride, padding, dilation, groups)
    grad, weight = _ffi.contig(grad), _ffi.contig(weight)
    dx = np.empty((g.n, g.c, g.h, g.w), _ffi.F32)
    rc = _ffi.lib.mdk_conv2d_backward_input(g, _ffi.buf(grad), _ffi.buf(weight), _ffi.buf(dx))
    _check(rc, "conv2d_backward_input", tuple(x_shape))
    return dx


def conv2d_backward_weight(x, grad, weight_shape, stride, padding, dilation, groups):
    """dL/dweight of a convolution: dY[n] . cols[n]^T summed over the images, one GEMM each."""
    g = None
    if _ffi.is_f32(x, grad):
        g = _geometry(x.shape, tuple(weight_shape), stride, padding, dilation, groups)
    if g is None or grad.shape != _out_shape(g):
        return ref.conv2d_backward_weight(x, grad, weight_shape, stride, padding, dilation, groups)
    x, grad = _ffi.contig(x), _ffi.contig(grad)
    dw = np.empty(tuple(weight_shape), _ffi.F32)
    rc = _ffi.lib.mdk_conv2d_backward_weight(g, _ffi.buf(x), _ffi.buf(grad), _ffi.buf(dw))
    _check(rc, "conv2d_backward_weight", x.shape)
    return dw


def _out_shape(g):
    return (g.n, g.f, _out_size(g.h, g.kh, g.sh, g.ph, g.dh), _out_size(g.w, g.kw, g.sw, g.pw, g.dw))


# ---------------------------------------------------------------------------------------
# im2col / col2im, the contract's core: the rows layout, N*OH*OW x C*kh*kw
# ---------------------------------------------------------------------------------------
def _window_geometry(x_shape, kernel, stride, padding, dilation):
    """The C geometry for im2col / col2im of an (N, C, H, W) image (no filters); None if C does not take it."""
    if len(x_shape) != 4:
        return None
    n, c = x_shape[:2]
    return _geometry(x_shape, (0, c, *_pair(kernel)), stride, padding, dilation, 1)


def im2col(x, kernel, stride, padding, dilation=(1, 1)):
    """(N*OH*OW, C*kh*kw): row (n, oh, ow) holds the C*kh*kw values the filter sees there."""
    g = _window_geometry(x.shape, kernel, stride, padding, dilation) if _ffi.is_f32(x) else None
    if g is None:
        return ref.im2col(x, kernel, stride, padding, dilation)
    x = _ffi.contig(x)
    _, _, oh, ow = _out_shape(g)
    cols = np.empty((g.n * oh * ow, g.c * g.kh * g.kw), _ffi.F32)
    _ffi.lib.mdk_im2col(g, _ffi.buf(x), _ffi.buf(cols))
    return cols


def col2im(cols, x_shape, kernel, stride, padding, dilation=(1, 1)):
    """The adjoint of im2col: every patch row added back where it came from."""
    x_shape = tuple(x_shape)
    g = _window_geometry(x_shape, kernel, stride, padding, dilation) if _ffi.is_f32(cols) else None
    if g is not None:
        _, _, oh, ow = _out_shape(g)
        if cols.shape != (g.n * oh * ow, g.c * g.kh * g.kw):
            g = None
    if g is None:
        return ref.col2im(cols, x_shape, kernel, stride, padding, dilation)
    cols = _ffi.contig(cols)
    x = np.empty(x_shape, _ffi.F32)
    _ffi.lib.mdk_col2im(g, _ffi.buf(cols), _ffi.buf(x))
    return x


__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "im2col", "col2im"]
