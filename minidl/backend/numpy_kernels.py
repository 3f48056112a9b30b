"""The reference kernels: every array primitive minidl's ops use, written in NumPy.

This module is the contract of the backend seam. Each function takes and returns
NumPy arrays and knows nothing about Tensors or gradients. Faster backends (the C
SIMD kernels, CUDA) provide the same names and are tested against these.
Read these to learn what an op computes; read `minidl/ops/` to learn how it is
differentiated.
"""

import numpy as np

name = "numpy"
# Whether nn.Sequential should run a Linear or Conv2d and the activation after it as one fused op
# (ops.linear_act). Not here: on the reference kernels every op stays a node of its own,
# so a student stepping through backprop sees Linear, then ReLU.
fuse_layers = False

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


def sigmoid(x):
    """1 / (1 + e^-x), written as e^min(x,0) / (1 + e^-|x|).

    That is the same function (check x >= 0 and x < 0 separately), but no exponent is ever
    positive, so nothing overflows, and tiny results for very negative x keep their digits.
    """
    return np.exp(np.minimum(x, 0)) / (1 + np.exp(-np.abs(x)))


def relu(x):
    return np.maximum(x, 0)


def relu_backward(grad, x):
    """Gradient of max(0, x): pass `grad` where x > 0, zero elsewhere."""
    return grad * (x > 0)  # a multiply by the mask is ~10x faster than np.where on random signs


def leaky_relu(x, slope):
    if 0 <= slope <= 1:
        return np.maximum(x, x * x.dtype.type(slope))  # for slope <= 1, max picks x or slope*x correctly
    return np.where(x > 0, x, x * slope).astype(x.dtype, copy=False)


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


def softmax(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)  # avoids overflow in exp
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


# --------------------------------------------------------------------------
# Linear algebra
# --------------------------------------------------------------------------
matmul = np.matmul


def linear(x, weight, bias=None):
    """x @ weight.T + bias for x of shape (N, in) and weight (out, in)."""
    out = x @ weight.T
    if bias is not None:
        out += bias
    return out


# --------------------------------------------------------------------------
# Shapes and memory
# --------------------------------------------------------------------------
def reshape(x, shape):
    return x.reshape(shape)  # the method skips np.reshape's dispatch layer


def transpose(x, axes):
    return x.transpose(axes)


broadcast_to = np.broadcast_to
concatenate = np.concatenate
stack = np.stack
pad = np.pad
zeros = np.zeros
ones = np.ones
full = np.full
empty = np.empty
arange = np.arange
eye = np.eye
ascontiguousarray = np.ascontiguousarray


def getitem(x, index):
    return x[index]


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


# --------------------------------------------------------------------------
# Convolution and pooling helpers (NCHW layout)
# --------------------------------------------------------------------------
def conv_output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kh, kw, stride, padding):
    """Unfold image patches into rows: (N, C, H, W) -> (N*OH*OW, C*kh*kw).

    Row (n, oh, ow) holds the C*kh*kw input values the filter sees at output
    position (oh, ow), so a convolution becomes one matrix multiply.
    """
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, stride, padding)
    ow = conv_output_size(w, kw, stride, padding)
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride][:, :, :oh, :ow]  # (N, C, OH, OW, kh, kw)
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)


def col2im(cols, x_shape, kh, kw, stride, padding):
    """The adjoint of im2col: add every patch row back onto the image it came from."""
    n, c, h, w = x_shape
    oh = conv_output_size(h, kh, stride, padding)
    ow = conv_output_size(w, kw, stride, padding)
    patches = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)  # (N, C, kh, kw, OH, OW)
    out = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    # One strided add per kernel offset: kh*kw vectorized adds instead of a scatter.
    for i in range(kh):
        for j in range(kw):
            out[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += patches[:, :, i, j]
    if padding:
        out = out[:, :, padding:-padding, padding:-padding]
    return np.ascontiguousarray(out)


def _pool_windows(x, kernel, stride, padding, pad_value):
    n, c, h, w = x.shape
    oh = conv_output_size(h, kernel, stride, padding)
    ow = conv_output_size(w, kernel, stride, padding)
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=pad_value)
    windows = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(2, 3))
    return windows[:, :, ::stride, ::stride][:, :, :oh, :ow].reshape(n, c, oh, ow, kernel * kernel)


def max_pool2d_forward(x, kernel, stride, padding):
    """Returns (output, argmax): argmax is the winning offset inside each window."""
    windows = _pool_windows(x, kernel, stride, padding, -np.inf)
    argmax = np.argmax(windows, axis=-1)
    out = np.take_along_axis(windows, argmax[..., None], axis=-1)[..., 0]
    return out, argmax


def max_pool2d_backward(grad, argmax, x_shape, kernel, stride, padding):
    """Route each output gradient to the input element that won its window."""
    n, c, h, w = x_shape
    oh, ow = grad.shape[2:]
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=grad.dtype)
    for i in range(kernel):
        for j in range(kernel):
            winner = argmax == i * kernel + j
            dx[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += np.where(winner, grad, 0)
    if padding:
        dx = dx[:, :, padding:-padding, padding:-padding]
    return np.ascontiguousarray(dx)


def avg_pool2d_forward(x, kernel, stride, padding):
    """Mean over each window; zero padding counts towards the mean."""
    return _pool_windows(x, kernel, stride, padding, 0).mean(axis=-1, dtype=x.dtype)


def avg_pool2d_backward(grad, x_shape, kernel, stride, padding):
    n, c, h, w = x_shape
    oh, ow = grad.shape[2:]
    share = grad / (kernel * kernel)
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=grad.dtype)
    for i in range(kernel):
        for j in range(kernel):
            dx[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += share
    if padding:
        dx = dx[:, :, padding:-padding, padding:-padding]
    return np.ascontiguousarray(dx)


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------
def cross_entropy_forward(logits, targets):
    """Per-row loss -log softmax(logits)[target] and the softmax probabilities.

    logits: (N, C) floats; targets: (N,) integer class indices.
    """
    logp = log_softmax(logits, axis=1)
    losses = -logp[np.arange(logits.shape[0]), targets]
    return losses, np.exp(logp)


def cross_entropy_backward(probs, targets, grad_losses):
    """d loss_i / d logits_i = softmax_i - onehot(target_i), scaled by each row's upstream grad."""
    dlogits = probs.copy()
    dlogits[np.arange(probs.shape[0]), targets] -= 1
    dlogits *= grad_losses[:, None]
    return dlogits


# --------------------------------------------------------------------------
# Optimizer updates (in place, on parameter arrays; shared by optim and servers)
# --------------------------------------------------------------------------
def sgd_update(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
    """g' = mu*g + (1 - dampening)*dL;  w' = w - lr*g'  (the lecture's momentum), in place.

    `velocity` may be None when momentum is 0.
    """
    if weight_decay:
        grad = grad + weight_decay * param
    if momentum:
        velocity *= momentum
        velocity += (1 - dampening) * grad if dampening else grad
        step = grad + momentum * velocity if nesterov else velocity
    else:
        step = grad
    param -= lr * step


def adagrad_update(param, grad, sum_sq, lr, eps=1e-10, weight_decay=0.0):
    """n <- n + dL^2;  w <- w - lr/sqrt(n) * dL, in place."""
    if weight_decay:
        grad = grad + weight_decay * param
    sum_sq += grad * grad
    param -= lr * grad / (np.sqrt(sum_sq) + eps)


def rmsprop_update(param, grad, mean_sq, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, mean=None):
    """n <- alpha*n + (1-alpha)*dL^2;  w <- w - lr/sqrt(n) * dL, in place.

    Centered (mean given): m <- alpha*m + (1-alpha)*dL and the scale is sqrt(n - m^2), the
    gradient's variance instead of its raw second moment.
    """
    if weight_decay:
        grad = grad + weight_decay * param
    mean_sq *= alpha
    mean_sq += (1 - alpha) * grad * grad
    if mean is None:
        param -= lr * grad / (np.sqrt(mean_sq) + eps)
        return
    mean *= alpha
    mean += (1 - alpha) * grad
    param -= lr * grad / (np.sqrt(mean_sq - mean * mean) + eps)


def adam_update(param, grad, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, max_v=None):
    """Adam with bias correction; `step` counts from 1. In place.

    AMSGrad (max_v given): the scale uses the largest v seen so far, so it never shrinks.
    """
    if weight_decay:
        grad = grad + weight_decay * param
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    if max_v is not None:
        np.maximum(max_v, v, out=max_v)
    m_hat = m / (1 - beta1**step)
    v_hat = (v if max_v is None else max_v) / (1 - beta2**step)
    param -= lr * m_hat / (np.sqrt(v_hat) + eps)


# --------------------------------------------------------------------------
# 16-bit conversion for communication
# --------------------------------------------------------------------------
def float32_to_float16(x):
    """IEEE half precision, round to nearest even."""
    return x.astype(np.float16)


def float16_to_float32(x):
    return x.astype(np.float32)


def float32_to_truncated16(x):
    """The lecture's 16-bit float: keep the top 16 bits of each float32 (no rounding)."""
    return (np.ascontiguousarray(x, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def truncated16_to_float32(x):
    return (x.astype(np.uint32) << 16).view(np.float32)


# --------------------------------------------------------------------------
# Fused linear layer and bias + activation (added with the C kernels, issue 4).
# The C kernel set fuses these into one pass (the bias and activation run in the
# GEMM's epilogue); these are the readable definitions they are tested against.
# activation is None, "relu", "sigmoid" or "tanh".
# --------------------------------------------------------------------------
def _activation(z, activation):
    if activation is None or activation == "none":
        return z
    if activation == "relu":
        return relu(z)
    if activation == "sigmoid":
        return sigmoid(z)
    if activation == "tanh":
        return np.tanh(z)
    raise ValueError(f"unknown activation {activation!r}; expected None, 'relu', 'sigmoid' or 'tanh'")


def linear_act(x, weight, bias=None, activation=None):
    """act(x @ weight.T + bias) for x (N, in), weight (out, in), bias (out,) or None."""
    return _activation(linear(x, weight, bias), activation)


def bias_act_forward(x, bias, activation):
    """act(x + bias), with bias (None or shape x.shape[-1:]) broadcast over the leading axes."""
    return _activation(x if bias is None else x + bias, activation)


def bias_act_backward(grad, out, activation):
    """Returns (dz, dbias) for out = act(z), z = x + bias, given grad = dL/dout.

    The derivative is written with the activation's output, so z need not be kept:
    relu' = [out > 0],  sigmoid' = out (1 - out),  tanh' = 1 - out^2.
    dbias sums dz over every axis but the last.
    """
    if activation is None or activation == "none":
        dz = grad
    elif activation == "relu":
        dz = relu_backward(grad, out)
    elif activation == "sigmoid":
        dz = grad * (out * (1 - out))
    elif activation == "tanh":
        dz = grad * (1 - out * out)
    else:
        raise ValueError(f"unknown activation {activation!r}; expected None, 'relu', 'sigmoid' or 'tanh'")
    dbias = dz.reshape(-1, dz.shape[-1]).sum(axis=0) if dz.ndim else dz
    return dz, dbias
