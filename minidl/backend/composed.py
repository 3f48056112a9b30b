"""The optional primitives, composed from a kernel set's required core.

Each function takes the kernel set `k` first and uses only its core primitives, so it
runs on any device. These are the readable definitions of the extras: the NumPy kernel
set uses them as they are, and a faster set (C, CUDA) that provides its own version is
tested against them. Activations are None, "relu", "sigmoid" or "tanh".
"""

import numpy as np

ACTIVATIONS = (None, "relu", "sigmoid", "tanh")


# --------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------
def sigmoid(k, x):
    """1 / (1 + e^-x), written as e^min(x,0) / (1 + e^-|x|).

    That is the same function (check x >= 0 and x < 0 separately), but no exponent is ever
    positive, so nothing overflows, and tiny results for very negative x keep their digits.
    """
    return k.div(k.exp(k.minimum(x, 0)), k.add(1, k.exp(k.neg(k.abs(x)))))


def relu(k, x):
    return k.maximum(x, 0)


def leaky_relu(k, x, slope):
    if 0 <= slope <= 1:  # then max(x, slope*x) picks x for x > 0 and slope*x otherwise
        return k.maximum(x, k.mul(x, slope))
    return k.where(k.greater(x, 0), x, k.mul(x, slope))


def erf(k, x):
    """The error function, erf(x) = 2/√π ∫₀ˣ e^(-t²) dt, to a few ulps, from the core alone.

    erf is odd, so work with a = |x| and put the sign back at the end. Two classic expansions
    cover the line, each where it converges fast and without cancellation:
    - a < 2.5: erf(a) = 2/√π · e^(-a²) · Σₙ (2a²)ⁿ a / (1·3·5···(2n+1)), a series of positive
      terms (35 of them reach double precision at a = 2.5);
    - a ≥ 2.5: erf(a) = 1 - erfc(a), with erfc(a) = e^(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))),
      a continued fraction evaluated from the bottom up (30 levels; erfc(2.5) is already 4e-4,
      so its small relative error hardly shows in erf).
    Both branches are computed everywhere on clamped inputs (no overflow), then `where` picks.
    Accuracy against math.erf: within 7 ulps in float64 and float32.
    """
    dtype = x.dtype.type
    cut = dtype(2.5)
    a = k.abs(x)
    s = k.minimum(a, cut)
    twice_s2 = k.mul(k.mul(s, s), dtype(2))
    term, total = s, s
    for n in range(1, 35):
        term = k.div(k.mul(term, twice_s2), dtype(2 * n + 1))
        total = k.add(total, term)
    series = k.mul(k.mul(dtype(2 / np.sqrt(np.pi)), k.exp(k.mul(twice_s2, dtype(-0.5)))), total)
    big = k.maximum(a, cut)
    fraction = big
    for j in range(30, 0, -1):
        fraction = k.add(big, k.div(dtype(j / 2), fraction))
    erfc = k.div(k.exp(k.neg(k.mul(big, big))), k.mul(fraction, dtype(np.sqrt(np.pi))))
    magnitude = k.where(k.less(a, cut), series, k.sub(dtype(1), erfc))
    return k.mul(k.sign(x), magnitude)


def _activation(k, z, activation):
    if activation is None:
        return z
    if activation == "relu":
        return k.relu(z)
    if activation == "sigmoid":
        return k.sigmoid(z)
    if activation == "tanh":
        return k.tanh(z)
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def act_backward(k, grad, y, activation):
    """dL/dz for y = act(z), given grad = dL/dy, written with the output y so z need not be kept:

    relu' = [y > 0],   sigmoid' = y (1 - y),   tanh' = 1 - y^2
    """
    if activation is None:
        return grad
    if activation == "relu":
        return k.mul(grad, k.greater(y, 0))
    if activation == "sigmoid":
        return k.mul(grad, k.mul(y, k.sub(1, y)))
    if activation == "tanh":
        return k.mul(grad, k.sub(1, k.mul(y, y)))
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


# --------------------------------------------------------------------------
# Softmax family and the fused loss
# --------------------------------------------------------------------------
def softmax(k, x, axis=-1):
    shifted = k.sub(x, k.max(x, axis=axis, keepdims=True))  # the largest exponent is 0: no overflow
    e = k.exp(shifted)
    return k.div(e, k.sum(e, axis=axis, keepdims=True))


def log_softmax(k, x, axis=-1):
    shifted = k.sub(x, k.max(x, axis=axis, keepdims=True))
    return k.sub(shifted, k.log(k.sum(k.exp(shifted), axis=axis, keepdims=True)))


def cross_entropy_forward(k, logits, targets):
    """Per-row loss -log softmax(logits)[target] and the softmax probabilities.

    logits: (N, C) floats; targets: (N,) int64 class indices (checked by the op).
    """
    logp = log_softmax(k, logits, axis=1)
    rows = k.arange(0, logits.shape[0], 1, np.int64)
    losses = k.neg(k.getitem(logp, (rows, targets)))
    return losses, k.exp(logp)


def cross_entropy_backward(k, probs, targets, grad_losses):
    """d loss_i / d logits_i = softmax_i - onehot(target_i), scaled by each row's upstream gradient."""
    n, classes = probs.shape
    rows = k.arange(0, n, 1, np.int64)
    onehot = k.scatter_add((n, classes), (rows, targets), k.ones((n,), probs.dtype), probs.dtype)
    return k.mul(k.sub(probs, onehot), k.reshape(grad_losses, (n, 1)))


def class_targets(k, targets, ignore_index, classes):
    """Class targets checked, with the rows whose target is ignore_index set aside:

    (int64 targets with those rows set to 0, so any gather stays in range; a bool mask of the rows
    that count, or None when they all do; how many count). Any other target outside [0, classes)
    is an IndexError naming the first such row. The usual case (nothing ignored, all in range) is
    settled by two reductions. The answer is needed on the host (an error must be raised, a mean
    divides by the count), so the few numbers it needs are read back with to_numpy.
    """
    rows = targets.shape[0]
    targets = k.astype(targets, np.int64) if targets.dtype != np.int64 else targets
    if rows == 0:
        return targets, None, 0
    lo, hi = int(k.to_numpy(k.min(targets))), int(k.to_numpy(k.max(targets)))
    if 0 <= lo and hi < classes and not lo <= ignore_index <= hi:
        return targets, None, rows
    valid = k.not_equal(targets, ignore_index)
    safe = k.where(valid, targets, np.int64(0))
    bad = k.maximum(k.less(safe, 0), k.greater_equal(safe, classes))  # max of two masks: either
    if bool(k.to_numpy(k.max(bad))):
        row = int(k.to_numpy(k.argmax(bad)))
        value = int(k.to_numpy(k.getitem(targets, row)))
        raise IndexError(f"class_targets: target {value} of row {row} is out of range for {classes} classes")
    count = int(k.to_numpy(k.sum(k.astype(valid, np.int64))))
    return safe, (None if count == rows else valid), count


def nll_loss_forward(k, log_probs, targets):
    """Per-row loss -log_probs[i, targets[i]] (targets in range, checked by class_targets)."""
    rows = k.arange(0, log_probs.shape[0], 1, np.int64)
    return k.neg(k.getitem(log_probs, (rows, targets)))


def nll_loss_backward(k, grad_losses, targets, classes):
    """The adjoint of nll_loss_forward: -grad_losses[i] at [i, targets[i]], zero elsewhere."""
    n = grad_losses.shape[0]
    rows = k.arange(0, n, 1, np.int64)
    return k.scatter_add((n, classes), (rows, targets), k.neg(grad_losses), grad_losses.dtype)


# --------------------------------------------------------------------------
# Linear layer and convolution
# --------------------------------------------------------------------------
def linear(k, x, weight, bias=None, activation=None):
    """act(x @ weight.T + bias) for x (N, in), weight (out, in), bias (out,) or None."""
    z = k.matmul(x, k.transpose(weight, (1, 0)))
    if bias is not None:
        z = k.add(z, bias)
    return _activation(k, z, activation)


def conv_output_size(size, kernel, stride, padding, dilation=1):
    """Output length of a convolution along one axis: (size + 2p - d(k - 1) - 1) // s + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _conv_geometry(x_shape, weight_shape, stride, padding, dilation):
    n, _, h, w = x_shape
    f, _, kh, kw = weight_shape
    oh = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
    ow = conv_output_size(w, kw, stride[1], padding[1], dilation[1])
    return n, f, kh, kw, oh, ow


def conv2d_forward(k, x, weight, bias, stride, padding, dilation, groups, activation=None):
    """act(conv(x, weight) + bias), NCHW, as im2col then one matrix product per group.

    x (N, C, H, W), weight (F, C/groups, kh, kw), bias (F,) or None -> (N, F, OH, OW).
    Each row of the im2col matrix is the patch one output position sees, so the
    convolution is cols (N·OH·OW, C·kh·kw) times the flattened filters (C·kh·kw, F).
    """
    n, f, kh, kw, oh, ow = _conv_geometry(x.shape, weight.shape, stride, padding, dilation)
    c = x.shape[1]
    outs = []
    for g in range(groups):
        xg = x if groups == 1 else k.getitem(x, (slice(None), slice(g * c // groups, (g + 1) * c // groups)))
        wg = weight if groups == 1 else k.getitem(weight, slice(g * f // groups, (g + 1) * f // groups))
        cols = k.im2col(xg, (kh, kw), stride, padding, dilation)
        outs.append(k.matmul(cols, k.transpose(k.reshape(wg, (wg.shape[0], -1)), (1, 0))))  # (N·OH·OW, F/groups)
    z = outs[0] if groups == 1 else k.concatenate(outs, axis=1)
    if bias is not None:
        z = k.add(z, bias)
    z = k.ascontiguousarray(k.transpose(k.reshape(z, (n, oh, ow, f)), (0, 3, 1, 2)))  # channels last -> NCHW
    return _activation(k, z, activation)


def conv2d_backward_input(k, grad, weight, x_shape, stride, padding, dilation, groups):
    """dL/dx of a convolution: each output gradient times the filter, added back where its patch came from."""
    n, f, kh, kw, oh, ow = _conv_geometry(x_shape, weight.shape, stride, padding, dilation)
    c = x_shape[1]
    grad_rows = k.reshape(k.transpose(grad, (0, 2, 3, 1)), (n * oh * ow, f))  # (N·OH·OW, F)
    parts = []
    for g in range(groups):
        fs = slice(g * f // groups, (g + 1) * f // groups)
        gg = grad_rows if groups == 1 else k.getitem(grad_rows, (slice(None), fs))
        wg = weight if groups == 1 else k.getitem(weight, fs)
        dcols = k.matmul(gg, k.reshape(wg, (wg.shape[0], -1)))  # (N·OH·OW, C/groups·kh·kw)
        parts.append(k.col2im(dcols, (n, c // groups, x_shape[2], x_shape[3]), (kh, kw), stride, padding, dilation))
    return parts[0] if groups == 1 else k.concatenate(parts, axis=1)


def conv2d_backward_weight(k, x, grad, weight_shape, stride, padding, dilation, groups):
    """dL/dweight of a convolution: output gradients times the patches they saw, summed over positions."""
    n, f, kh, kw, oh, ow = _conv_geometry(x.shape, weight_shape, stride, padding, dilation)
    c = x.shape[1]
    grad_rows = k.reshape(k.transpose(grad, (0, 2, 3, 1)), (n * oh * ow, f))
    parts = []
    for g in range(groups):
        xg = x if groups == 1 else k.getitem(x, (slice(None), slice(g * c // groups, (g + 1) * c // groups)))
        gg = (
            grad_rows
            if groups == 1
            else k.getitem(grad_rows, (slice(None), slice(g * f // groups, (g + 1) * f // groups)))
        )
        cols = k.im2col(xg, (kh, kw), stride, padding, dilation)
        parts.append(k.matmul(k.transpose(gg, (1, 0)), cols))  # (F/groups, C/groups·kh·kw)
    dw = parts[0] if groups == 1 else k.concatenate(parts, axis=0)
    return k.reshape(dw, weight_shape)


# --------------------------------------------------------------------------
# Optimizer updates: in place on the parameter and state arrays (shared by optim and servers).
# The order of operations is part of the definition: faster kernels follow it exactly.
# --------------------------------------------------------------------------
def _assign(k, target, value):
    k.setitem(target, Ellipsis, value)


def sgd_update(k, param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
    """g' = mu*g + (1 - dampening)*dL;  w' = w - lr*g'  (the lecture's momentum), in place.

    `velocity` may be None when momentum is 0.
    """
    dtype = param.dtype.type
    if weight_decay:
        grad = k.add(grad, k.mul(dtype(weight_decay), param))
    if momentum:
        _assign(k, velocity, k.mul(velocity, dtype(momentum)))
        _assign(k, velocity, k.add(velocity, k.mul(dtype(1 - dampening), grad) if dampening else grad))
        step = k.add(grad, k.mul(dtype(momentum), velocity)) if nesterov else velocity
    else:
        step = grad
    _assign(k, param, k.sub(param, k.mul(dtype(lr), step)))


def adagrad_update(k, param, grad, sum_sq, lr, eps=1e-10, weight_decay=0.0):
    """n <- n + dL^2;  w <- w - lr/(sqrt(n) + eps) * dL, in place."""
    dtype = param.dtype.type
    if weight_decay:
        grad = k.add(grad, k.mul(dtype(weight_decay), param))
    _assign(k, sum_sq, k.add(sum_sq, k.mul(grad, grad)))
    _assign(k, param, k.sub(param, k.div(k.mul(dtype(lr), grad), k.add(k.sqrt(sum_sq), dtype(eps)))))


def rmsprop_update(k, param, grad, mean_sq, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, mean=None):
    """n <- alpha*n + (1-alpha)*dL^2;  w <- w - lr/(sqrt(n) + eps) * dL, in place.

    Centered (mean given): m <- alpha*m + (1-alpha)*dL and the scale is sqrt(n - m^2), the
    gradient's variance instead of its raw second moment.
    """
    dtype = param.dtype.type
    if weight_decay:
        grad = k.add(grad, k.mul(dtype(weight_decay), param))
    _assign(k, mean_sq, k.mul(mean_sq, dtype(alpha)))
    _assign(k, mean_sq, k.add(mean_sq, k.mul(k.mul(dtype(1 - alpha), grad), grad)))
    scale = mean_sq
    if mean is not None:
        _assign(k, mean, k.mul(mean, dtype(alpha)))
        _assign(k, mean, k.add(mean, k.mul(dtype(1 - alpha), grad)))
        scale = k.sub(mean_sq, k.mul(mean, mean))
    _assign(k, param, k.sub(param, k.div(k.mul(dtype(lr), grad), k.add(k.sqrt(scale), dtype(eps)))))


def adam_update(k, param, grad, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, max_v=None):
    """Adam with bias correction; `step` counts from 1. In place.

    AMSGrad (max_v given): the scale uses the largest v seen so far, so it never shrinks.
    """
    dtype = param.dtype.type
    if weight_decay:
        grad = k.add(grad, k.mul(dtype(weight_decay), param))
    _assign(k, m, k.mul(m, dtype(beta1)))
    _assign(k, m, k.add(m, k.mul(dtype(1 - beta1), grad)))
    _assign(k, v, k.mul(v, dtype(beta2)))
    _assign(k, v, k.add(v, k.mul(k.mul(dtype(1 - beta2), grad), grad)))
    if max_v is not None:
        _assign(k, max_v, k.maximum(max_v, v))
    m_hat = k.div(m, dtype(1 - beta1**step))
    v_hat = k.div(v if max_v is None else max_v, dtype(1 - beta2**step))
    _assign(k, param, k.sub(param, k.div(k.mul(dtype(lr), m_hat), k.add(k.sqrt(v_hat), dtype(eps)))))


# --------------------------------------------------------------------------
# 16-bit conversion for communication
# --------------------------------------------------------------------------
def float32_to_float16(k, x):
    """IEEE half precision, round to nearest even."""
    return k.astype(x, np.float16)


def float16_to_float32(k, x):
    return k.astype(x, np.float32)


def float32_to_truncated16(k, x):
    """The lecture's 16-bit float: keep the top 16 bits of each float32 (no rounding).

    The core has no bit operations, so this goes through the host (free on the cpu sets).
    """
    bits = np.ascontiguousarray(k.to_numpy(x), dtype=np.float32).view(np.uint32)
    return k.from_numpy((bits >> 16).astype(np.uint16))


def truncated16_to_float32(k, x):
    return k.from_numpy((k.to_numpy(x).astype(np.uint32) << 16).view(np.float32))


# --------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------
def parameter_storage(k, shape, dtype):
    """Memory for a new Parameter; a kernel set with layout preferences (alignment) provides its own."""
    return k.empty(shape, dtype)
