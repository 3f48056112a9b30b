"""Exercise 03: a 2-D convolution as one matrix product (im2col), forward and backward.

Layouts are NCHW: an image batch x has shape (N, C, H, W); the filters w have shape
(F, C, kh, kw); the bias b has shape (F,). With stride s and zero padding p on every side,

    OH = (H + 2p - kh) // s + 1,   OW = (W + 2p - kw) // s + 1

and the output y[n, f, i, j] = b[f] + Σ_{c, di, dj} w[f, c, di, dj] · xp[n, c, i·s + di, j·s + dj],
where xp is x padded with p zeros on each side (a cross-correlation, as in every framework).

im2col lays the patches out as rows, so the sum over (c, di, dj) becomes a matrix product:

    cols[(n, i, j), (c, di, dj)] = xp[n, c, i·s + di, j·s + dj]      shape (N·OH·OW, C·kh·kw)

rows ordered n, then i, then j; columns ordered c, then di, then dj (NumPy's C order).
Everything here works on NumPy arrays.
"""

import numpy as np


def output_size(size, kernel, stride, padding):
    """How many positions a window of `kernel` takes along an axis of `size` (given)."""
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kh, kw, stride, padding):
    """(N, C, H, W) -> (N·OH·OW, C·kh·kw): row (n, i, j) is the patch the filter sees at output (i, j)."""
    # BEGIN SOLUTION im2col
    n, c, h, w = x.shape
    oh, ow = output_size(h, kh, stride, padding), output_size(w, kw, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    patches = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for di in range(kh):  # one strided slice per kernel offset: every output position at once
        for dj in range(kw):
            patches[:, :, di, dj] = xp[:, :, di : di + stride * oh : stride, dj : dj + stride * ow : stride]
    return patches.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw)
    # END SOLUTION


def col2im(cols, x_shape, kh, kw, stride, padding):
    """The adjoint of im2col: (N·OH·OW, C·kh·kw) -> (N, C, H, W).

    Each entry of `cols` is added to the image element it was read from; elements shared by
    overlapping patches receive the sum. Entries that came from the padding are dropped.
    """
    # BEGIN SOLUTION col2im
    n, c, h, w = x_shape
    oh, ow = output_size(h, kh, stride, padding), output_size(w, kw, stride, padding)
    patches = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)  # (N, C, kh, kw, OH, OW)
    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for di in range(kh):
        for dj in range(kw):
            xp[:, :, di : di + stride * oh : stride, dj : dj + stride * ow : stride] += patches[:, :, di, dj]
    return xp[:, :, padding : padding + h, padding : padding + w]
    # END SOLUTION


def conv2d_forward(x, w, b, stride=1, padding=0):
    """y = conv2d(x, w) + b, shape (N, F, OH, OW), through im2col and one matrix product."""
    # BEGIN SOLUTION conv_forward
    n, _, h, wd = x.shape
    f, _, kh, kw = w.shape
    oh, ow = output_size(h, kh, stride, padding), output_size(wd, kw, stride, padding)
    cols = im2col(x, kh, kw, stride, padding)  # (N·OH·OW, C·kh·kw)
    out = cols @ w.reshape(f, -1).T + b  # (N·OH·OW, F): one row of F filter responses per position
    return out.reshape(n, oh, ow, f).transpose(0, 3, 1, 2)
    # END SOLUTION


def conv2d_backward(dy, x, w, stride=1, padding=0):
    """The gradients (dx, dw, db) of conv2d for the upstream gradient dy of shape (N, F, OH, OW).

    With Y = cols · Wᵀ + b (the forward's matrix product, W = w.reshape(F, -1)):
    dW = dYᵀ · cols,  dcols = dY · W (then col2im gives dx),  db = the sum of dY over its rows.
    """
    # BEGIN SOLUTION conv_backward
    f, _, kh, kw = w.shape
    dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, f)  # (N·OH·OW, F), rows in im2col's order
    cols = im2col(x, kh, kw, stride, padding)
    dw = (dy_rows.T @ cols).reshape(w.shape)
    db = dy_rows.sum(axis=0)
    dx = col2im(dy_rows @ w.reshape(f, -1), x.shape, kh, kw, stride, padding)
    return dx, dw, db
    # END SOLUTION
