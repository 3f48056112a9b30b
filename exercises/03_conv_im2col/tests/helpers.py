"""Shared by the tests: geometries, random arrays, and minidl's reference im2col / col2im / conv2d."""

import numpy as np

import minidl
from minidl.backend import numpy_kernels

# (N, C, H, W, F, kh, kw, stride, padding): odd sizes, strides that do not divide evenly,
# padding wider than one, non-square kernels, 1x1 kernels.
GEOMETRIES = [
    (2, 3, 5, 5, 4, 3, 3, 1, 0),
    (1, 2, 7, 6, 3, 3, 3, 2, 1),
    (2, 1, 6, 7, 2, 2, 3, 1, 2),
    (1, 3, 8, 8, 2, 4, 4, 3, 1),
    (3, 2, 4, 5, 3, 1, 1, 1, 0),
    (1, 1, 5, 5, 1, 5, 5, 1, 2),
]
IDS = ["3x3", "stride2-pad1", "2x3-pad2", "4x4-stride3", "1x1", "5x5-pad2"]


def arrays(geometry, seed=0):
    n, c, h, w, f, kh, kw, _, _ = geometry
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c, h, w)), rng.standard_normal((f, c, kh, kw)), rng.standard_normal(f)


def output_shape(geometry):
    n, _, h, w, f, kh, kw, s, p = geometry
    return n, f, (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1


def reference_im2col(x, kh, kw, stride, padding):
    return numpy_kernels.im2col(x, (kh, kw), (stride, stride), (padding, padding))


def reference_col2im(cols, x_shape, kh, kw, stride, padding):
    return numpy_kernels.col2im(cols, tuple(x_shape), (kh, kw), (stride, stride), (padding, padding))


def reference_conv(x, w, b, stride, padding, dy=None):
    """minidl's conv2d: the output, and with dy the gradients (dx, dw, db)."""
    tx, tw, tb = (minidl.tensor(a, dtype=minidl.float64, requires_grad=True) for a in (x, w, b))
    y = minidl.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding)
    if dy is None:
        return y.numpy()
    y.backward(minidl.tensor(dy, dtype=minidl.float64))
    return tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


# Sums of at most C·kh·kw·N·OH·OW products of O(1) float64 values, done in another order than
# the reference: the rounding differences are ~1e-15 relative to the sums; 1e-10 leaves room.
RTOL, ATOL = 1e-10, 1e-10
