"""Neural-network ops: convolution, pooling, embedding lookup, dropout and losses.

Convolution is written the way fast libraries compute it: unfold the image
patches into the rows of a matrix (im2col), then do one big matrix multiply.
"""

import numpy as np

from minidl import random as _random
from minidl.autograd import Function
from minidl.ops._util import constant
from minidl.ops.elementwise import sigmoid
from minidl.ops.fused import linear_act
from minidl.ops.linalg import linear
from minidl.ops.shape import getitem
from minidl.tensor import Tensor


def _pair_of_ints(value, name, op):
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"{op}: only square {name} is supported, got {value}")
        value = value[0]
    if not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    return int(value)


def _output_size(op, h, w, kernel_h, kernel_w, stride, padding):
    oh = (h + 2 * padding - kernel_h) // stride + 1
    ow = (w + 2 * padding - kernel_w) // stride + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"{op}: a {kernel_h}x{kernel_w} window with padding {padding} does not fit in a {h}x{w} input")
    return oh, ow


# ---------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------
class Im2Col(Function):
    """cols = image patches as rows, (N, C, H, W) -> (N*OH*OW, C*kh*kw).

    Backward is col2im: each patch row's gradient is added back where the patch came
    from (pixels covered by several patches collect several contributions).
    """

    def forward(self, x, kh, kw, stride, padding):
        self.geometry = (kh, kw, stride, padding)
        return self.kernels.im2col(x, kh, kw, stride, padding)

    def backward(self, grad):
        (x,) = self.inputs
        return Col2Im.apply(grad, x_shape=x.shape, geometry=self.geometry)


class Col2Im(Function):
    """The adjoint of Im2Col (its backward is Im2Col again), so convolution is twice differentiable."""

    def forward(self, cols, x_shape, geometry):
        self.geometry = geometry
        return self.kernels.col2im(cols, x_shape, *geometry)

    def backward(self, grad):
        kh, kw, stride, padding = self.geometry
        return Im2Col.apply(grad, kh=kh, kw=kw, stride=stride, padding=padding)


def conv2d(x, weight, bias=None, stride=1, padding=0, activation=None):
    """2-D convolution (cross-correlation, as in every DL framework), NCHW layout.

    x: (N, C, H, W); weight: (F, C, kh, kw); bias: (F,) or None -> (N, F, OH, OW).
    activation ("relu", "sigmoid", "tanh" or None) is applied in the same GEMM as the bias
    (ops.linear_act): what nn.Sequential uses to fuse a Conv2d with the ReLU after it.
    """
    stride = _pair_of_ints(stride, "stride", "conv2d")
    padding = _pair_of_ints(padding, "padding", "conv2d")
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"conv2d: expected input (N, C, H, W) and weight (F, C, kh, kw), got {x.shape} and {weight.shape}"
        )
    n, c, h, w = x.shape
    f, wc, kh, kw = weight.shape
    if c != wc:
        raise ValueError(f"conv2d: input has {c} channels but weight {weight.shape} expects {wc}")
    if bias is not None and bias.shape != (f,):
        raise ValueError(f"conv2d: bias shape {bias.shape} does not match the {f} filters of weight {weight.shape}")
    if stride < 1 or padding < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got stride={stride}, padding={padding}")
    oh, ow = _output_size("conv2d", h, w, kh, kw, stride, padding)
    cols = Im2Col.apply(x, kh=kh, kw=kw, stride=stride, padding=padding)  # (N*OH*OW, C*kh*kw)
    flat_weight = weight.reshape(f, c * kh * kw)
    if activation is None:
        out = linear(cols, flat_weight, bias)  # one GEMM: (N*OH*OW, F)
    else:
        out = linear_act(cols, flat_weight, bias, activation)  # the same GEMM, activation in its epilogue
    # The GEMM produced channels last (N, OH, OW, F); one copy to NCHW here saves every
    # following op (ReLU, pooling, the next im2col) from striding through a transposed view.
    return out.reshape(n, oh, ow, f).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------
class MaxPool2d(Function):
    """y = max over each window;   dx: each window's gradient goes to the element that won it."""

    supports_double_backward = False

    def forward(self, x, kernel, stride, padding):
        self.geometry = (kernel, stride, padding)
        out, self.argmax = self.kernels.max_pool2d_forward(x, kernel, stride, padding)
        return out

    def backward(self, grad):
        (x,) = self.inputs
        return self.kernels.max_pool2d_backward(grad.data, self.argmax, x.shape, *self.geometry)


class AvgPool2d(Function):
    """y = mean over each window;   dx: each window's gradient is shared equally by its elements."""

    def forward(self, x, kernel, stride, padding):
        self.geometry = (kernel, stride, padding)
        return self.kernels.avg_pool2d_forward(x, kernel, stride, padding)

    def backward(self, grad):
        (x,) = self.inputs
        return AvgPool2dBackward.apply(grad, x_shape=x.shape, geometry=self.geometry)


class AvgPool2dBackward(Function):
    """The adjoint of average pooling; its own adjoint is average pooling again."""

    def forward(self, grad, x_shape, geometry):
        self.geometry = geometry
        return self.kernels.avg_pool2d_backward(grad, x_shape, *geometry)

    def backward(self, grad):
        kernel, stride, padding = self.geometry
        return AvgPool2d.apply(grad, kernel=kernel, stride=stride, padding=padding)


def _pool_args(op, x, kernel_size, stride, padding):
    kernel = _pair_of_ints(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else _pair_of_ints(stride, "stride", op)
    padding = _pair_of_ints(padding, "padding", op)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected input (N, C, H, W), got shape {x.shape}")
    if kernel < 1 or stride < 1 or padding < 0 or padding > kernel // 2:
        raise ValueError(
            f"{op}: need kernel_size >= 1, stride >= 1 and 0 <= padding <= kernel_size // 2, "
            f"got kernel_size={kernel}, stride={stride}, padding={padding}"
        )
    _output_size(op, x.shape[2], x.shape[3], kernel, kernel, stride, padding)
    return kernel, stride, padding


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over kernel_size x kernel_size windows (stride defaults to kernel_size)."""
    kernel, stride, padding = _pool_args("max_pool2d", x, kernel_size, stride, padding)
    return MaxPool2d.apply(x, kernel=kernel, stride=stride, padding=padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over kernel_size x kernel_size windows; zero padding counts towards the mean."""
    kernel, stride, padding = _pool_args("avg_pool2d", x, kernel_size, stride, padding)
    return AvgPool2d.apply(x, kernel=kernel, stride=stride, padding=padding)


# ---------------------------------------------------------------------------
# Embedding and dropout
# ---------------------------------------------------------------------------
def embedding(indices, weight):
    """Look up rows of `weight` (num_embeddings, dim) for integer `indices` of any shape.

    It is plain indexing, weight[indices]; its gradient adds each output row's gradient
    into the row it was read from, so a word used twice in a batch gets both.
    """
    index = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    if index.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {index.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, dim), got shape {weight.shape}")
    if index.size and (index.min() < 0 or index.max() >= weight.shape[0]):
        bad = index.max() if index.max() >= weight.shape[0] else index.min()
        raise IndexError(f"embedding: index {bad} is out of range for {weight.shape[0]} embeddings")
    return getitem(weight, index)


def dropout(x, p=0.5, training=True):
    """Inverted dropout: zero each element with probability p and scale the survivors by 1/(1-p).

    Scaling during training keeps the expected activation unchanged, so at test time
    nothing needs to happen (the lecture's "multiply by 1/2 at test time" for p = 1/2,
    moved to training time).
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    keep = _random.generator().random(x.shape) >= p
    mask = keep.astype(x.dtype) / x.dtype.type(1 - p)
    return x * constant(mask)


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------
def _reduce_loss(losses, reduction, op, count=None):
    if reduction == "mean":
        return losses.sum() / count if count is not None else losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_targets(op, logits, targets, ignore_index):
    """(targets as int64, valid) where valid masks the rows that count, or is None when all do."""
    if logits.ndim != 2:
        raise ValueError(f"{op}: expected scores of shape (N, C), got {logits.shape}")
    t = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: targets must be integer class indices, got dtype {t.dtype}")
    if t.shape != (logits.shape[0],):
        raise ValueError(f"{op}: scores {logits.shape} need targets of shape ({logits.shape[0]},), got {t.shape}")
    if t.size:  # the usual case, settled by two reductions: every target in range, none ignored
        lo, hi = t.min(), t.max()
        if 0 <= lo and hi < logits.shape[1] and not lo <= ignore_index <= hi:
            return t.astype(np.int64, copy=False), None
    valid = t != ignore_index
    if np.any((t[valid] < 0) | (t[valid] >= logits.shape[1])):
        bad = t[valid][(t[valid] < 0) | (t[valid] >= logits.shape[1])][0]
        raise IndexError(f"{op}: target {bad} is out of range for {logits.shape[1]} classes")
    return t.astype(np.int64, copy=False), valid


class CrossEntropy(Function):
    """Loss -log softmax(z)[target] per row, then its mean or sum; fused: dz = softmax(z) - onehot(target).

    Fusing the log-softmax with the loss avoids computing log of a tiny probability
    and gives the famously simple gradient. The reduction is part of the op too, so a
    training step's loss is one node (not CrossEntropy, Sum, Div): backward hands each
    row d loss / d loss_row = 1/count (mean) or 1 (sum) times the incoming gradient.
    Rows that do not count (valid False) get no loss and no gradient.
    """

    supports_double_backward = False

    def forward(self, logits, targets, valid, reduction):
        self.valid, self.reduction = valid, reduction
        self.targets = targets if valid is None else np.where(valid, targets, 0)
        losses, self.probs = self.kernels.cross_entropy_forward(logits, self.targets)
        if valid is not None:
            losses = np.where(valid, losses, 0).astype(logits.dtype, copy=False)
        if reduction == "none":
            return losses
        self.count = len(losses) if valid is None else max(int(valid.sum()), 1)
        total = self.kernels.sum(losses)
        return np.asarray(total / self.count if reduction == "mean" else total, dtype=logits.dtype)

    def backward(self, grad):
        g = grad.data
        if self.reduction != "none":  # every row's loss entered the total with weight 1 (sum) or 1/count
            g = np.full(len(self.targets), g / self.count if self.reduction == "mean" else g, self.probs.dtype)
        if self.valid is not None:
            g = np.where(self.valid, g, 0)
        return self.kernels.cross_entropy_backward(self.probs, self.targets, g.astype(self.probs.dtype, copy=False))


def cross_entropy(logits, targets, reduction="mean", ignore_index=-100):
    """Softmax cross-entropy between scores (N, C) and integer targets (N,).

    Rows whose target equals ignore_index contribute nothing (and do not count in the mean).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    t, valid = _check_targets("cross_entropy", logits, targets, ignore_index)
    return CrossEntropy.apply(logits, targets=t, valid=valid, reduction=reduction)


def nll_loss(log_probs, targets, reduction="mean", ignore_index=-100):
    """Negative log likelihood of integer targets under log-probabilities (N, C)."""
    t, valid = _check_targets("nll_loss", log_probs, targets, ignore_index)
    if valid is None:
        valid = np.ones(len(t), dtype=bool)
    rows = np.arange(log_probs.shape[0])
    picked = getitem(log_probs, (rows, np.where(valid, t, 0)))
    losses = -picked * constant(valid.astype(log_probs.dtype))
    return _reduce_loss(losses, reduction, "nll_loss", count=max(int(valid.sum()), 1))


def mse_loss(prediction, target, reduction="mean"):
    """Mean squared error, the lecture's L2 loss |ȳ - y|^2 averaged over elements."""
    target = constant(target, like=prediction)
    if prediction.shape != target.shape:
        raise ValueError(
            f"mse_loss: prediction shape {prediction.shape} and target shape {target.shape} differ "
            "(broadcasting them is almost always a bug)"
        )
    diff = prediction - target
    return _reduce_loss(diff * diff, reduction, "mse_loss")


class BinaryCrossEntropyWithLogits(Function):
    """Per-element loss -[t log σ(z) + (1-t) log(1-σ(z))] for logits z and targets t;
    dz = σ(z) - t,  dt = -z.

    Forward uses the stable form max(z, 0) - z t + log(1 + e^-|z|). Its pieces have kinks
    at z = 0 that cancel in the sum, so backward differentiates the whole, not the pieces
    (autodiff of the pieces would give -t at z = 0 instead of 1/2 - t).
    """

    def forward(self, z, t):
        k = self.kernels
        return k.add(k.sub(k.relu(z), k.mul(z, t)), k.log(k.add(1, k.exp(k.neg(k.abs(z))))))

    def backward(self, grad):
        z, t = self.saved_tensors
        grad_z = grad * (sigmoid(z) - t) if self.needs_input_grad[0] else None
        grad_t = grad * -z if self.needs_input_grad[1] else None
        return grad_z, grad_t


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    """-[t log σ(z) + (1-t) log(1-σ(z))] for logits z (any shape) and targets t in [0, 1] of the same shape."""
    targets = constant(targets, like=logits)
    if logits.shape != targets.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: logits {logits.shape} and targets {targets.shape} differ")
    losses = BinaryCrossEntropyWithLogits.apply(logits, targets)
    return _reduce_loss(losses, reduction, "binary_cross_entropy_with_logits")


__all__ = [
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "embedding",
    "dropout",
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "binary_cross_entropy_with_logits",
]
