"""The reference kernel set: the required core of the kernel contract, written in NumPy.

Each function takes and returns NumPy arrays and knows nothing of Tensors or gradients.
Read these to learn what an op computes (minidl/ops/ says how it is differentiated).
The optional extras (softmax, linear layers, convolution, losses, optimizer updates...)
are composed from these in composed.py; faster kernel sets (C, CUDA) provide the same
names and are tested against both. The contract itself: contract.py.
Operands may be Python numbers, which take the array's dtype (NumPy's rules).
"""

import numpy as np

name = "numpy"

# --------------------------------------------------------------------------
# Elementwise
# --------------------------------------------------------------------------
add = np.add
sub = np.subtract
mul = np.multiply
div = np.true_divide
neg = np.negative
power = np.power
maximum = np.maximum
minimum = np.minimum
exp = np.exp
log = np.log
sqrt = np.sqrt
abs = np.abs  # noqa: A001 - the kernel is named after the op it computes
sign = np.sign
sin = np.sin
cos = np.cos
tanh = np.tanh
greater = np.greater
greater_equal = np.greater_equal
less = np.less
less_equal = np.less_equal
equal = np.equal
not_equal = np.not_equal
where = np.where
clip = np.clip


def astype(x, dtype):
    return np.asarray(x).astype(dtype)


# --------------------------------------------------------------------------
# Reductions
# --------------------------------------------------------------------------
# The ufunc .reduce methods are what np.sum/np.max call, minus a layer of Python.
def sum(x, axis=None, keepdims=False):  # noqa: A001
    return np.add.reduce(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return np.maximum.reduce(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return np.minimum.reduce(x, axis=axis, keepdims=keepdims)


def argmax(x, axis=None):
    return np.argmax(x, axis=axis)


# --------------------------------------------------------------------------
# Linear algebra
# --------------------------------------------------------------------------
matmul = np.matmul


# --------------------------------------------------------------------------
# Layout, gather/scatter and memory
# --------------------------------------------------------------------------
def reshape(x, shape):
    return x.reshape(shape)  # the method skips np.reshape's dispatch layer


def transpose(x, axes):
    return x.transpose(axes)


broadcast_to = np.broadcast_to
ascontiguousarray = np.ascontiguousarray
concatenate = np.concatenate
stack = np.stack
pad = np.pad
zeros = np.zeros
ones = np.ones
full = np.full
empty = np.empty
arange = np.arange


def eye(n, dtype):
    return np.eye(n, dtype=dtype)


def getitem(x, index):
    return x[index]


def setitem(x, index, value):
    x[index] = value


def scatter_add(shape, index, values, dtype):
    """A zero array of `shape` with `values` added at `x[index]` (repeats add up).

    This is the adjoint of `getitem`: the gradient of `x[index]` w.r.t. `x`.
    """
    out = np.zeros(shape, dtype=dtype)
    if _is_basic_index(index):
        out[index] = values  # basic slices never repeat an element
    else:
        np.add.at(out, index, values)
    return out


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


def to_numpy(x):
    return np.asarray(x)


def from_numpy(x):
    return np.asarray(x)


# --------------------------------------------------------------------------
# What convolution and pooling need (NCHW). kernel, stride, padding and dilation are
# (height, width) pairs.
# --------------------------------------------------------------------------
def conv_output_size(size, kernel, stride, padding, dilation=1):
    """Output length along one axis: (size + 2·padding - dilation·(kernel - 1) - 1) // stride + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _windows(x, kernel, stride, padding, dilation=(1, 1), pad_value=0):
    """Every window x sees as a view (N, C, OH, OW, kh, kw): no copy is made."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh = conv_output_size(x.shape[2], kh, sh, ph, dh)
    ow = conv_output_size(x.shape[3], kw, sw, pw, dw)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    # A dilated window is a plain window of the dilated extent, read every d-th element.
    span = np.lib.stride_tricks.sliding_window_view(x, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return span[:, :, : sh * oh : sh, : sw * ow : sw, ::dh, ::dw]


def im2col(x, kernel, stride, padding, dilation=(1, 1)):
    """Unfold image patches into rows: (N, C, H, W) -> (N*OH*OW, C*kh*kw).

    Row (n, oh, ow) holds the C*kh*kw input values the filter sees at output
    position (oh, ow), so a convolution becomes one matrix multiply.
    """
    windows = _windows(x, kernel, stride, padding, dilation)  # (N, C, OH, OW, kh, kw)
    n, c, oh, ow, kh, kw = windows.shape
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)


def _add_at_windows(target, pieces, kernel, stride, dilation):
    """target[n, c, window (i, j) of output (oh, ow)] += pieces[n, c, i, j, oh, ow], for every offset (i, j)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = pieces.shape[-2:]
    # One strided add per kernel offset: kh*kw vectorized adds instead of a scatter.
    for i in range(kh):
        for j in range(kw):
            target[:, :, i * dh : i * dh + sh * oh : sh, j * dw : j * dw + sw * ow : sw] += pieces[:, :, i, j]


def col2im(cols, x_shape, kernel, stride, padding, dilation=(1, 1)):
    """The adjoint of im2col: add every patch row back onto the image it came from."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh, ow = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
    patches = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)  # (N, C, kh, kw, OH, OW)
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    _add_at_windows(out, patches, kernel, stride, dilation)
    return np.ascontiguousarray(out[:, :, ph : ph + h, pw : pw + w])


def max_pool2d_forward(x, kernel, stride, padding):
    """Returns (output, argmax): argmax is the winning offset i*kw + j inside each window."""
    windows = _windows(x, kernel, stride, padding, pad_value=-np.inf)
    flat = windows.reshape(windows.shape[:4] + (-1,))
    argmax = np.argmax(flat, axis=-1)
    return np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0], argmax


def max_pool2d_backward(grad, argmax, x_shape, kernel, stride, padding):
    """Route each output gradient to the input element that won its window."""
    n, c, h, w = x_shape
    (kh, kw), (ph, pw) = kernel, padding
    won = argmax[:, :, None, None] == np.arange(kh * kw).reshape(1, 1, kh, kw, 1, 1)  # (N, C, kh, kw, OH, OW)
    dx = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad.dtype)
    _add_at_windows(dx, np.where(won, grad[:, :, None, None], 0), kernel, stride, (1, 1))
    return np.ascontiguousarray(dx[:, :, ph : ph + h, pw : pw + w])


def max_pool2d_select(x, argmax, kernel, stride, padding):
    """The value of x at each window's recorded winner (the adjoint of max_pool2d_backward)."""
    windows = _windows(x, kernel, stride, padding)
    flat = windows.reshape(windows.shape[:4] + (-1,))
    return np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0]


def avg_pool2d_forward(x, kernel, stride, padding):
    """Mean over each window; zero padding counts towards the mean."""
    return _windows(x, kernel, stride, padding).mean(axis=(-2, -1), dtype=x.dtype)


def avg_pool2d_backward(grad, x_shape, kernel, stride, padding):
    """Each window's gradient shared equally by its kh*kw elements."""
    n, c, h, w = x_shape
    (kh, kw), (ph, pw) = kernel, padding
    share = np.broadcast_to(
        (grad / grad.dtype.type(kh * kw))[:, :, None, None], grad.shape[:2] + (kh, kw) + grad.shape[2:]
    )
    dx = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad.dtype)
    _add_at_windows(dx, share, kernel, stride, (1, 1))
    return np.ascontiguousarray(dx[:, :, ph : ph + h, pw : pw + w])
