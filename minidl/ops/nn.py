"""Neural-network ops: convolution, pooling, embedding lookup, dropout and losses.

A convolution slides one small linear function over the image: every output pixel is
the dot product of the filter with the patch under it. Its backward is two more
convolution-shaped ops (one for the input, one for the filter), each differentiable
again; the kernels decide how to compute them (the reference unfolds patches into
a matrix, "im2col", and does one matrix multiply).
"""

import numpy as np

from minidl import random as _random
from minidl.autograd import Function
from minidl.backend import active_kernels
from minidl.ops._util import constant
from minidl.ops.elementwise import log, maximum, sigmoid, where
from minidl.ops.shape import concat, getitem
from minidl.tensor import Tensor


def pair_of_ints(value, name, op):
    """(h, w) from an int or a pair of ints, e.g. kernel_size=3 -> (3, 3); errors name the op and argument."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return int(values[0]), int(values[1])


def output_size(op, image, window, stride, padding, dilation=(1, 1)):
    """(OH, OW) of a window sliding over an (H, W) image; a window that does not fit is an error."""
    sizes = tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in zip(image, window, stride, padding, dilation)
    )
    if min(sizes) <= 0:
        raise ValueError(
            f"{op}: a {window[0]}x{window[1]} window with padding {padding[0] if padding[0] == padding[1] else padding}"
            f"{'' if dilation == (1, 1) else f' and dilation {dilation}'} does not fit in a {image[0]}x{image[1]} input"
        )
    return sizes


# ---------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------
class Conv2d(Function):
    """y[n, f] = b[f] + Σ_c w[f, c] ⋆ x[n, c]   (cross-correlation, NCHW);
    dx = the filters slid back over dy (ConvInputGrad),  dw = dy correlated with x (ConvWeightGrad),
    db = dy summed over batch and space."""

    def forward(self, x, weight, bias=None, geometry=None):
        self.geometry = geometry  # stride, padding, dilation, groups
        return self.kernels.conv2d_forward(x, weight, bias, *geometry, activation=None)

    def backward(self, grad):
        x, weight = self.saved_tensors[:2]
        return conv2d_gradients(self, grad, x, weight)


def conv2d_gradients(fn, grad, x, weight):
    """What a convolution node `fn` sends back, given grad = dL/d(conv(x, w) + b). Shared with Conv2dAct."""
    need = fn.needs_input_grad
    grad_x = ConvInputGrad.apply(grad, weight, x_shape=x.shape, geometry=fn.geometry) if need[0] else None
    grad_w = ConvWeightGrad.apply(x, grad, weight_shape=weight.shape, geometry=fn.geometry) if need[1] else None
    if len(need) == 2:
        return grad_x, grad_w
    return grad_x, grad_w, grad.sum((0, 2, 3)) if need[2] else None


class ConvInputGrad(Function):
    """dx = conv2d's gradient w.r.t. its input, for upstream gradient g and filters w.

    Linear in g and in w, so its own gradients are convolutions again:
    d/dg = conv2d(dy, w),  d/dw = ConvWeightGrad(dy, g).
    """

    def forward(self, grad, weight, x_shape, geometry):
        self.geometry = geometry
        return self.kernels.conv2d_backward_input(grad, weight, x_shape, *geometry)

    def backward(self, dy):
        grad, weight = self.saved_tensors
        need = self.needs_input_grad
        d_grad = Conv2d.apply(dy, weight, geometry=self.geometry) if need[0] else None
        d_weight = (
            ConvWeightGrad.apply(dy, grad, weight_shape=weight.shape, geometry=self.geometry) if need[1] else None
        )
        return d_grad, d_weight


class ConvWeightGrad(Function):
    """dw = conv2d's gradient w.r.t. its filters, for input x and upstream gradient g.

    Linear in x and in g: d/dx = ConvInputGrad(g, dy),  d/dg = conv2d(x, dy).
    """

    def forward(self, x, grad, weight_shape, geometry):
        self.geometry = geometry
        return self.kernels.conv2d_backward_weight(x, grad, weight_shape, *geometry)

    def backward(self, dy):
        x, grad = self.saved_tensors
        need = self.needs_input_grad
        d_x = ConvInputGrad.apply(grad, dy, x_shape=x.shape, geometry=self.geometry) if need[0] else None
        d_grad = Conv2d.apply(x, dy, geometry=self.geometry) if need[1] else None
        return d_x, d_grad


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in every DL framework), NCHW layout.

    x: (N, C, H, W); weight: (F, C/groups, kh, kw); bias: (F,) or None -> (N, F, OH, OW), with
    OH = (H + 2·padding - dilation·(kh - 1) - 1) // stride + 1 (and OW alike). stride, padding
    and dilation are ints or (h, w) pairs; groups splits the channels into independent
    convolutions (groups = C: one filter per channel, "depthwise").
    """
    geometry = conv2d_geometry("conv2d", x, weight, bias, stride, padding, dilation, groups)
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*args, geometry=geometry)


def conv2d_geometry(op, x, weight, bias, stride, padding, dilation, groups):
    """Check conv2d's arguments; returns (stride, padding, dilation, groups) with (h, w) pairs."""
    stride = pair_of_ints(stride, "stride", op)
    padding = pair_of_ints(padding, "padding", op)
    dilation = pair_of_ints(dilation, "dilation", op)
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"{op}: expected input (N, C, H, W) and weight (F, C, kh, kw), got {x.shape} and {weight.shape}"
        )
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive integer, got {groups!r}")
    c, f = x.shape[1], weight.shape[0]
    if c % groups or f % groups:
        raise ValueError(f"{op}: groups={groups} must divide both the {c} input channels and the {f} filters")
    if c != weight.shape[1] * groups:
        expected = weight.shape[1] * groups
        raise ValueError(f"{op}: input has {c} channels but weight {weight.shape} expects {expected}")
    if bias is not None and bias.shape != (f,):
        raise ValueError(f"{op}: bias shape {bias.shape} does not match the {f} filters of weight {weight.shape}")
    if min(stride) < 1 or min(padding) < 0 or min(dilation) < 1:
        raise ValueError(
            f"{op}: stride and dilation must be >= 1 and padding >= 0, "
            f"got stride={stride}, padding={padding}, dilation={dilation}"
        )
    output_size(op, x.shape[2:], weight.shape[2:], stride, padding, dilation)
    return stride, padding, dilation, int(groups)


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------
class MaxPool2d(Function):
    """y = max over each window;   dx: each window's gradient goes to the element that won it."""

    def forward(self, x, geometry):
        self.geometry = geometry  # kernel, stride, padding
        out, self.argmax = self.kernels.max_pool2d_forward(x, *geometry)
        return out

    def backward(self, grad):
        (x,) = self.inputs
        return MaxPool2dBackward.apply(grad, argmax=self.argmax, x_shape=x.shape, geometry=self.geometry)


class MaxPool2dBackward(Function):
    """dx = each window's gradient routed to the element that won it (argmax recorded by MaxPool2d).

    Linear in the gradient; its adjoint reads, in each window, the value at the winner
    (MaxPoolSelect), and the two together make max pooling twice differentiable.
    """

    def forward(self, grad, argmax, x_shape, geometry):
        self.argmax, self.geometry = argmax, geometry
        return self.kernels.max_pool2d_backward(grad, argmax, x_shape, *geometry)

    def backward(self, dy):
        return MaxPoolSelect.apply(dy, argmax=self.argmax, geometry=self.geometry)


class MaxPoolSelect(Function):
    """y = x at each window's recorded winner;   dx = MaxPool2dBackward(dy) (the adjoint)."""

    def forward(self, x, argmax, geometry):
        self.argmax, self.geometry = argmax, geometry
        return self.kernels.max_pool2d_select(x, argmax, *geometry)

    def backward(self, grad):
        (x,) = self.inputs
        return MaxPool2dBackward.apply(grad, argmax=self.argmax, x_shape=x.shape, geometry=self.geometry)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over kernel_size windows (an int or an (h, w) pair; stride defaults to kernel_size)."""
    return MaxPool2d.apply(x, geometry=_pool_geometry("max_pool2d", x, kernel_size, stride, padding))


class AvgPool2d(Function):
    """y = mean over each window;   dx: each window's gradient is shared equally by its elements."""

    def forward(self, x, geometry):
        self.geometry = geometry
        return self.kernels.avg_pool2d_forward(x, *geometry)

    def backward(self, grad):
        (x,) = self.inputs
        return AvgPool2dBackward.apply(grad, x_shape=x.shape, geometry=self.geometry)


class AvgPool2dBackward(Function):
    """The adjoint of average pooling; its own adjoint is average pooling again."""

    def forward(self, grad, x_shape, geometry):
        self.geometry = geometry
        return self.kernels.avg_pool2d_backward(grad, x_shape, *geometry)

    def backward(self, grad):
        return AvgPool2d.apply(grad, geometry=self.geometry)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over kernel_size windows (int or (h, w)); zero padding counts towards the mean."""
    return AvgPool2d.apply(x, geometry=_pool_geometry("avg_pool2d", x, kernel_size, stride, padding))


def _pool_geometry(op, x, kernel_size, stride, padding):
    """Check a pooling's arguments; returns (kernel, stride, padding) as (h, w) pairs."""
    kernel = pair_of_ints(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else pair_of_ints(stride, "stride", op)
    padding = pair_of_ints(padding, "padding", op)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected input (N, C, H, W), got shape {x.shape}")
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0 or any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(
            f"{op}: need kernel_size >= 1, stride >= 1 and 0 <= padding <= kernel_size // 2, "
            f"got kernel_size={kernel_size}, stride={stride}, padding={padding}"
        )
    output_size(op, x.shape[2:], kernel, stride, padding)
    return kernel, stride, padding


# ---------------------------------------------------------------------------
# 1-D convolution and pooling: the 2-D ops on a height-1 image
# ---------------------------------------------------------------------------
def one_int(value, name, op):
    """An int from an int or a 1-tuple (PyTorch accepts both for 1-D layers); errors name the op and argument."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(values) != 1 or not isinstance(values[0], (int, np.integer)) or isinstance(values[0], bool):
        raise TypeError(f"{op}: {name} must be an int or a 1-tuple of ints, got {value!r}")
    return int(values[0])


def _check_1d(op, x, expected="(N, C, L)"):
    if x.ndim != 3:
        raise ValueError(f"{op}: expected input {expected}, got shape {x.shape}")


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation): x (N, C, L), weight (F, C/groups, k), bias (F,) -> (N, F, L_out),
    L_out = (L + 2·padding - dilation·(k - 1) - 1) // stride + 1.

    A 1-D signal is an image of height 1 and a 1-D filter a 1 x k one, so this is conv2d on
    (N, C, 1, L) with a (1, k) kernel: the graph shows Conv2d between two reshapes. The lecture's
    CLDNN "models frequency invariance using 1D convolutions" this way.
    """
    _check_1d("conv1d", x)
    if weight.ndim != 3:
        raise ValueError(f"conv1d: expected weight (F, C/groups, k), got shape {weight.shape}")
    stride, padding = one_int(stride, "stride", "conv1d"), one_int(padding, "padding", "conv1d")
    dilation = one_int(dilation, "dilation", "conv1d")
    geometry = conv2d_geometry(
        "conv1d", x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride), (0, padding), (1, dilation), groups
    )
    args = (x.unsqueeze(2), weight.unsqueeze(2)) + (() if bias is None else (bias,))
    return Conv2d.apply(*args, geometry=geometry).squeeze(2)


def _pool1d(op, pool2d, x, kernel_size, stride, padding):
    _check_1d(op, x)
    kernel = one_int(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else one_int(stride, "stride", op)
    padding = one_int(padding, "padding", op)
    return pool2d(x.unsqueeze(2), (1, kernel), (1, stride), (0, padding)).squeeze(2)


def max_pool1d(x, kernel_size, stride=None, padding=0):
    """Max over windows of kernel_size along the last axis of (N, C, L) (stride defaults to kernel_size)."""
    return _pool1d("max_pool1d", max_pool2d, x, kernel_size, stride, padding)


def avg_pool1d(x, kernel_size, stride=None, padding=0):
    """Mean over windows of kernel_size along the last axis of (N, C, L); zero padding counts towards the mean."""
    return _pool1d("avg_pool1d", avg_pool2d, x, kernel_size, stride, padding)


# ---------------------------------------------------------------------------
# Adaptive (global) average pooling
# ---------------------------------------------------------------------------
def _adaptive_mean(x, axis, out):
    """Average axis `axis` of x down to `out` bins, PyTorch's bins: bin i covers [⌊i·n/out⌋, ⌈(i+1)·n/out⌉)."""
    n = x.shape[axis]
    if out == n:
        return x
    if n % out == 0:  # equal bins: one reshape and one mean
        shape = x.shape[:axis] + (out, n // out) + x.shape[axis + 1 :]
        return x.reshape(shape).mean(axis=axis + 1)
    bins = []
    for i in range(out):
        start, stop = (i * n) // out, -((-(i + 1) * n) // out)
        index = (slice(None),) * axis + (slice(start, stop),)
        bins.append(x[index].mean(axis=axis, keepdims=True))
    return concat(bins, axis=axis)


def _output_sizes(op, output_size, spatial):
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * len(spatial)
    if len(sizes) != len(spatial):
        raise ValueError(f"{op}: output_size {output_size!r} needs {len(spatial)} sizes")
    sizes = tuple(n if s is None else s for s, n in zip(sizes, spatial))  # None keeps the input's size
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in sizes):
        raise ValueError(f"{op}: output sizes must be positive integers (or None), got {output_size!r}")
    return sizes


def adaptive_avg_pool2d(x, output_size):
    """Average (N, C, H, W) down to output_size (an int, or an (oh, ow) pair; None keeps that size).

    Window sizes follow from the input, so one network takes any image size: (1, 1) is global
    average pooling, the top of GoogLeNet. Averages over rows, then over columns (a mean over a
    rectangle is a mean of row means), so the gradient is a share 1/count for each window element.
    """
    if x.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected input (N, C, H, W), got shape {x.shape}")
    oh, ow = _output_sizes("adaptive_avg_pool2d", output_size, x.shape[2:])
    if (oh, ow) == (1, 1):
        return x.mean(axis=(2, 3), keepdims=True)
    return _adaptive_mean(_adaptive_mean(x, 2, oh), 3, ow)


def adaptive_avg_pool1d(x, output_size):
    """Average (N, C, L) down to output_size bins along L."""
    _check_1d("adaptive_avg_pool1d", x)
    (out,) = _output_sizes("adaptive_avg_pool1d", output_size, x.shape[2:])
    return _adaptive_mean(x, 2, out)


# ---------------------------------------------------------------------------
# Maxout and layer normalization: compositions of existing ops
# ---------------------------------------------------------------------------
def maxout(x, pieces, axis=1):
    """Maxout (Goodfellow et al., 2013): h_i = max_j z_{i,j}, the max of `pieces` consecutive features.

    x has C·pieces features along `axis` (unit i's pieces are features i·pieces .. i·pieces + pieces - 1)
    -> C features. After a linear layer this is a learned piecewise-linear convex activation; the
    lecture recommends it with dropout. The gradient goes to each group's winner.
    """
    if not isinstance(pieces, (int, np.integer)) or pieces < 1:
        raise ValueError(f"maxout: pieces must be a positive integer, got {pieces!r}")
    axis = axis % x.ndim if -x.ndim <= axis < x.ndim else None
    if axis is None or x.shape[axis] % pieces:
        raise ValueError(f"maxout: axis of shape {x.shape} must hold a multiple of pieces={pieces} features")
    grouped = x.reshape(x.shape[:axis] + (x.shape[axis] // pieces, pieces) + x.shape[axis + 1 :])
    before = (slice(None),) * (axis + 1)
    result = grouped[before + (0,)]
    for j in range(1, pieces):  # an elementwise maximum per piece: ties share the gradient, as in max
        result = maximum(result, grouped[before + (j,)])
    return result


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalization (Ba, Kiros & Hinton, 2016): normalize each example over its last axes,

        y = (x - mean) / sqrt(var + eps) · weight + bias,   mean and (biased) var over normalized_shape,

    the trailing axes of x. Unlike batch norm it needs no batch, behaves the same in training
    and evaluation, and suits recurrent and attention layers. Composed from mean, sub, mul, sqrt.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if not shape or x.shape[x.ndim - len(shape) :] != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} must be the trailing axes of input {x.shape}")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and value.shape != shape:
            raise ValueError(f"layer_norm: {name} shape {value.shape} differs from normalized_shape {shape}")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    centered = x - x.mean(axis=axes, keepdims=True)
    variance = (centered * centered).mean(axis=axes, keepdims=True)
    y = centered / (variance + eps).sqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


# ---------------------------------------------------------------------------
# Embedding and dropout
# ---------------------------------------------------------------------------
def embedding(indices, weight):
    """Look up rows of `weight` (num_embeddings, dim) for integer `indices` of any shape.

    It is plain indexing, weight[indices]; its gradient adds each output row's gradient
    into the row it was read from, so a word used twice in a batch gets both.
    """
    index = indices.array if isinstance(indices, Tensor) else np.asarray(indices)
    if index.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {index.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, dim), got shape {weight.shape}")
    if index.size and (index.min() < 0 or index.max() >= weight.shape[0]):
        bad = index.max() if index.max() >= weight.shape[0] else index.min()
        raise IndexError(f"embedding: index {bad} is out of range for {weight.shape[0]} embeddings")
    return getitem(weight, index)


def one_hot(tensor, num_classes=-1):
    """Integer class indices of any shape -> int64 one-hot vectors of shape (*shape, num_classes), as F.one_hot.

    num_classes=-1 means one more than the largest index. Indexing a weight matrix with the
    indices (embedding) computes one_hot(i) @ W without building these vectors.
    """
    index = tensor.array if isinstance(tensor, Tensor) else np.asarray(tensor)
    if index.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expects integer class indices, got dtype {index.dtype}")
    if num_classes == -1:
        num_classes = int(index.max()) + 1 if index.size else 0
    if index.size and (index.min() < 0 or index.max() >= num_classes):
        raise IndexError(f"one_hot: class values must be in [0, {num_classes}), got {index.min()}..{index.max()}")
    return Tensor._make(np.eye(num_classes, dtype=np.int64)[index])


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
    return x * constant(mask, like=x)


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
    """(targets as int64 with the ignored rows set to 0, valid, count) on the scores' device.

    valid masks the rows that count (None when all do) and count says how many do. The kernels'
    class_targets checks every other target is a class, on whatever device the targets live.
    """
    if logits.ndim != 2:
        raise ValueError(f"{op}: expected scores of shape (N, C), got {logits.shape}")
    if isinstance(targets, Tensor) and targets.device is not logits.device:
        raise RuntimeError(
            f"{op}: expected scores and targets on the same device, but the scores are on {logits.device} "
            f"and the targets on {targets.device}; move the targets with .to({str(logits.device)!r})"
        )
    kernels = active_kernels[logits.device]
    t = targets.array if isinstance(targets, Tensor) else kernels.from_numpy(np.asarray(targets))
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: targets must be integer class indices, got dtype {t.dtype}")
    if t.shape != (logits.shape[0],):
        raise ValueError(f"{op}: scores {logits.shape} need targets of shape ({logits.shape[0]},), got {t.shape}")
    try:
        return kernels.class_targets(t, ignore_index, logits.shape[1])
    except IndexError as error:  # the kernel names itself; the user called the loss
        raise IndexError(f"{op}: {str(error).removeprefix('class_targets: ')}") from None


def _row_gradients(grad, reduction, count, rows, weights):
    """d loss / d loss_row for a loss reduced over `rows` rows, `count` of which count (weights: 0/1 or None)."""
    row_grad = grad
    if reduction != "none":
        row_grad = (grad / count if reduction == "mean" else grad).expand(rows)
    if weights is not None:
        row_grad = row_grad * Tensor._make(weights, device=row_grad.device)
    return row_grad


class CrossEntropy(Function):
    """Loss -log softmax(z)[target] per row, then its mean or sum;   dz = (softmax(z) - onehot(target)) * d loss_row.

    Fusing the log-softmax with the loss avoids computing log of a tiny probability
    and gives the famously simple gradient. The reduction is part of the op too, so a
    training step's loss is one node (not CrossEntropy, Sum, Div): each row's loss enters
    the total with weight 1/count (mean) or 1 (sum). Rows that do not count (valid False)
    get no loss and no gradient.
    """

    def forward(self, logits, targets, valid, count, reduction):
        k = self.kernels
        # the mean divides by the rows that count; an empty batch's mean is 0/0 = NaN, as in PyTorch
        self.reduction, self.targets, self.count = reduction, targets, count if valid is None else max(count, 1)
        losses, self.probs = k.cross_entropy_forward(logits, targets)
        self.weights = None
        if valid is not None:
            losses = k.where(valid, losses, losses.dtype.type(0))
            self.weights = k.astype(valid, losses.dtype)  # 1 for the rows that count, 0 for the others
        if reduction == "none":
            return losses
        total = k.sum(losses)
        return k.div(total, losses.dtype.type(self.count)) if reduction == "mean" else total

    def backward(self, grad):
        (logits,) = self.saved_tensors
        row_grad = _row_gradients(grad, self.reduction, self.count, logits.shape[0], self.weights)
        return CrossEntropyBackward.apply(logits, row_grad, probs=self.probs, targets=self.targets)


class CrossEntropyBackward(Function):
    """dz = (p - onehot(target)) * g per row, for p = softmax(z) (kept by CrossEntropy) and row gradients g.

    Differentiated again (for a gradient penalty, a Hessian-vector product):
    d/dg = Σ_j dy_j (p_j - onehot_j),   d/dz = g · p ⊙ (dy - Σ_j dy_j p_j)   (the softmax Jacobian).
    """

    def forward(self, logits, row_grad, probs, targets):
        self.targets = targets
        return self.kernels.cross_entropy_backward(probs, targets, row_grad)

    def backward(self, dy):
        logits, row_grad = self.saved_tensors
        p = logits.softmax(1)
        d_logits = d_rows = None
        if self.needs_input_grad[0]:
            d_logits = row_grad.reshape(-1, 1) * p * (dy - (dy * p).sum(1, True))
        if self.needs_input_grad[1]:
            k = self.kernels  # the one-hot rows: rows of the identity, gathered on the device
            onehot = k.getitem(k.eye(logits.shape[1], logits.dtype), self.targets)
            d_rows = (dy * (p - Tensor._make(onehot, device=p.device))).sum(1)
        return d_logits, d_rows


def cross_entropy(logits, targets, reduction="mean", ignore_index=-100):
    """Softmax cross-entropy between scores (N, C) and integer targets (N,).

    Rows whose target equals ignore_index contribute nothing (and do not count in the mean).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    t, valid, count = _check_targets("cross_entropy", logits, targets, ignore_index)
    return CrossEntropy.apply(logits, targets=t, valid=valid, count=count, reduction=reduction)


class NegativeLogLikelihood(Function):
    """loss_i = -log_probs[i, target_i] per row;   d log_probs = -g_i at [i, target_i], 0 elsewhere.

    A gather of one entry per row. Its gradient is the scatter of the row gradients back, which is
    linear in them, so it is an op of its own (NegativeLogLikelihoodBackward) whose gradient is this
    gather again: differentiable to any order.
    """

    def forward(self, log_probs, targets):
        self.targets = targets
        return self.kernels.nll_loss_forward(log_probs, targets)

    def backward(self, grad):
        classes = self.inputs[0].shape[1]
        return NegativeLogLikelihoodBackward.apply(grad, targets=self.targets, classes=classes)


class NegativeLogLikelihoodBackward(Function):
    """d log_probs = -g_i at [i, target_i] for row gradients g;   its gradient: -dy[i, target_i] (the gather)."""

    def forward(self, row_grad, targets, classes):
        self.targets = targets
        return self.kernels.nll_loss_backward(row_grad, targets, classes)

    def backward(self, dy):
        return NegativeLogLikelihood.apply(dy, targets=self.targets)


def nll_loss(log_probs, targets, reduction="mean", ignore_index=-100):
    """Negative log likelihood of integer targets under log-probabilities (N, C)."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"nll_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    t, valid, count = _check_targets("nll_loss", log_probs, targets, ignore_index)
    losses = NegativeLogLikelihood.apply(log_probs, targets=t)
    if valid is not None:  # the rows that do not count: loss and gradient times 0
        weights = active_kernels[log_probs.device].astype(valid, log_probs.dtype)
        losses = losses * Tensor._make(weights, device=log_probs.device)
    return _reduce_loss(losses, reduction, "nll_loss", count=max(count, 1))


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


class BinaryCrossEntropy(Function):
    """Per-element loss -[t log p + (1-t) log(1-p)] for probabilities p and targets t;
    dp = (p - t) / (p (1-p)),  dt = log(1-p) - log p.

    As PyTorch, each log is clamped at -100 so p = 0 or 1 gives a large finite loss, and the
    denominator of dp at least 1e-12. Probabilities from a sigmoid lose precision near 0 and
    1; binary_cross_entropy_with_logits on the raw scores avoids that.
    """

    def forward(self, p, t):
        k = self.kernels
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100 just below
            log_p = k.clip(k.log(p), -100, None)
            log_q = k.clip(k.log(k.sub(1, p)), -100, None)
        return k.neg(k.add(k.mul(t, log_p), k.mul(k.sub(1, t), log_q)))

    def backward(self, grad):
        p, t = self.saved_tensors
        grad_p = grad_t = None
        if self.needs_input_grad[0]:
            grad_p = grad * (p - t) / maximum(p * (1 - p), 1e-12)
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                grad_t = grad * (log(1 - p).clamp(min=-100) - log(p).clamp(min=-100))
        return grad_p, grad_t


def _all_probabilities(p):
    """Whether every element of p is in [0, 1] (NaN is not, as in PyTorch), on p's device.

    The answer must reach the host (it decides whether to raise), so one number is read back:
    the smallest of [p >= 0]·[p <= 1], which is 1 exactly when every element is inside.
    """
    k, x = active_kernels[p.device], p.array
    inside = k.mul(k.astype(k.greater_equal(x, 0), x.dtype), k.astype(k.less_equal(x, 1), x.dtype))
    return float(k.to_numpy(k.min(inside))) == 1


def binary_cross_entropy(probabilities, targets, weight=None, reduction="mean"):
    """-[t log p + (1-t) log(1-p)] for probabilities p in [0, 1] (e.g. a sigmoid's output) and targets t.

    weight (optional, broadcast to the elements) scales each element's loss, as in PyTorch.
    """
    targets = constant(targets, like=probabilities)
    if probabilities.shape != targets.shape:
        raise ValueError(
            f"binary_cross_entropy: probabilities {probabilities.shape} and targets {targets.shape} differ"
        )
    if probabilities.numel() and not _all_probabilities(probabilities):
        raise ValueError(
            "binary_cross_entropy: every probability must be between 0 and 1 (use ..._with_logits on scores)"
        )
    losses = BinaryCrossEntropy.apply(probabilities, targets)
    if weight is not None:
        losses = losses * weight
    return _reduce_loss(losses, reduction, "binary_cross_entropy")


def kl_div(input, target, reduction="mean", log_target=False):  # noqa: A002 - PyTorch's argument name
    """Kullback-Leibler divergence KL(target ‖ p) = Σ target · (log target - log p), PyTorch's convention:

    `input` holds log-probabilities log p (e.g. log_softmax of a student's scores); `target` holds
    probabilities (or log-probabilities with log_target=True). Elementwise target·(log target - input),
    with 0·log 0 = 0; reduction "mean" averages over every element (as PyTorch does), "batchmean"
    divides the sum by the batch size (the true KL per example, what distillation wants), "sum", "none".
    """
    target = constant(target, like=input)
    if input.shape != target.shape:
        raise ValueError(f"kl_div: input {input.shape} and target {target.shape} differ")
    if log_target:
        pointwise = target.exp() * (target - input)
    else:
        positive = target > 0
        safe = where(positive, target, 1.0)  # log(1) = 0 where target is 0: 0·log 0 counts as 0
        pointwise = target * (safe.log() - input)
    if reduction == "batchmean":
        return pointwise.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce_loss(pointwise, reduction, "kl_div")


__all__ = [
    "one_hot",
    "binary_cross_entropy",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "embedding",
    "dropout",
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "binary_cross_entropy_with_logits",
    "conv1d",
    "max_pool1d",
    "avg_pool1d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "maxout",
    "layer_norm",
    "kl_div",
]
