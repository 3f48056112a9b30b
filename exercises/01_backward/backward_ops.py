"""Exercise 01: the backward pass of a few ops, written by you.

Each op is a minidl `Function`: `forward` computes the output from NumPy arrays, `backward`
receives the gradient of the loss with respect to the output (a Tensor shaped like the
output) and returns the gradient with respect to each input (Tensors shaped like the
inputs). In backward, `self.saved_tensors` gives the inputs as Tensors and `self.output`
the output Tensor. Write backward with Tensor operations (`*`, `/`, `.sum(dims, keepdim)`,
`.reshape`, `.expand`, `.transpose`, `@`, comparisons such as `x > 0`).

The thin functions at the bottom (`exp(x)`, `mul(a, b)`, `sum(x, dim)`, ...) run the ops on
Tensors, so `minidl.debug.gradcheck` can compare your backward with finite differences.
"""

import math

import numpy as np

from minidl.autograd import Function


# ---------------------------------------------------------------------------
# Task unary_backward: elementwise functions of one input
# ---------------------------------------------------------------------------
class Exp(Function):
    """y = e^x"""

    def forward(self, x):
        return np.exp(x)

    def backward(self, grad):
        # BEGIN SOLUTION unary_backward
        return grad * self.output  # dy/dx = e^x = y: reuse the output instead of recomputing it
        # END SOLUTION


class Log(Function):
    """y = ln x   (for x > 0)"""

    def forward(self, x):
        return np.log(x)

    def backward(self, grad):
        # BEGIN SOLUTION unary_backward
        (x,) = self.saved_tensors
        return grad / x
        # END SOLUTION


class Tanh(Function):
    """y = tanh x"""

    def forward(self, x):
        return np.tanh(x)

    def backward(self, grad):
        # BEGIN SOLUTION unary_backward
        y = self.output
        return grad * (1 - y * y)
        # END SOLUTION


class Sigmoid(Function):
    """y = 1 / (1 + e^-x)"""

    def forward(self, x):
        return 1 / (1 + np.exp(-x))

    def backward(self, grad):
        # BEGIN SOLUTION unary_backward
        y = self.output
        return grad * (y * (1 - y))
        # END SOLUTION


class ReLU(Function):
    """y = max(0, x)   (the derivative at exactly 0 is taken to be 0, as PyTorch does)"""

    def forward(self, x):
        return np.maximum(x, 0)

    def backward(self, grad):
        # BEGIN SOLUTION unary_backward
        (x,) = self.saved_tensors
        return grad * (x > 0)
        # END SOLUTION


# ---------------------------------------------------------------------------
# Task unbroadcast: the gradient of a broadcast
# ---------------------------------------------------------------------------
def unbroadcast(grad, shape):
    """Sum `grad` (shaped like a broadcast result) back down to `shape` (an input's shape).

    NumPy broadcasting lines shapes up from the right: an input of shape (4, 1) added to one of
    shape (3, 4, 5) is copied along a new leading axis (size 3) and along its axis of size 1
    (to 5). Every copy received its own gradient; the input's gradient is their sum.
    Example: unbroadcast(grad of shape (3, 4, 5), (4, 1)) has shape (4, 1).
    """
    # BEGIN SOLUTION unbroadcast
    shape = tuple(shape)
    if tuple(grad.shape) == shape:
        return grad
    added = grad.ndim - len(shape)  # the new leading axes
    axes = list(range(added))
    axes += [added + i for i, n in enumerate(shape) if n == 1 and grad.shape[added + i] != 1]
    if axes:
        grad = grad.sum(tuple(axes), keepdim=True)
    return grad.reshape(shape)
    # END SOLUTION


# ---------------------------------------------------------------------------
# Task binary_backward: elementwise functions of two inputs, with broadcasting
# ---------------------------------------------------------------------------
class Mul(Function):
    """y = a * b, broadcasting like NumPy"""

    def forward(self, a, b):
        return a * b

    def backward(self, grad):
        a, b = self.saved_tensors
        # BEGIN SOLUTION binary_backward
        return unbroadcast(grad * b, a.shape), unbroadcast(grad * a, b.shape)
        # END SOLUTION


class Div(Function):
    """y = a / b, broadcasting like NumPy"""

    def forward(self, a, b):
        return a / b

    def backward(self, grad):
        a, b = self.saved_tensors
        # BEGIN SOLUTION binary_backward
        grad_a = grad / b
        grad_b = -grad * a / (b * b)
        return unbroadcast(grad_a, a.shape), unbroadcast(grad_b, b.shape)
        # END SOLUTION


# ---------------------------------------------------------------------------
# Task reduction_backward: sums, means and maxima over some dims
# ---------------------------------------------------------------------------
def _kept_shape(shape, dims):
    """The shape a reduction over `dims` has with keepdim=True: those dims become 1."""
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


class Sum(Function):
    """y = the sum of x over `dims` (a tuple of non-negative ints), keeping them as size 1 if keepdim."""

    def forward(self, x, dims, keepdim):
        self.dims, self.keepdim = dims, keepdim
        return np.sum(x, axis=dims, keepdims=keepdim)

    def backward(self, grad):
        (x,) = self.saved_tensors
        # BEGIN SOLUTION reduction_backward
        # Put the summed dims back as size 1 (keepdim=False removed them), then copy the
        # gradient to every element that was summed: dy/dx = 1 for each of them.
        return grad.reshape(_kept_shape(x.shape, self.dims)).expand(x.shape)
        # END SOLUTION


class Mean(Function):
    """y = the mean of x over `dims`."""

    def forward(self, x, dims, keepdim):
        self.dims, self.keepdim = dims, keepdim
        return np.mean(x, axis=dims, keepdims=keepdim)

    def backward(self, grad):
        (x,) = self.saved_tensors
        # BEGIN SOLUTION reduction_backward
        count = math.prod(x.shape[d] for d in self.dims)
        return grad.reshape(_kept_shape(x.shape, self.dims)).expand(x.shape) / count
        # END SOLUTION


class Max(Function):
    """y = the maximum of x over `dims`. Ties share the gradient equally (as minidl and PyTorch's amax)."""

    def forward(self, x, dims, keepdim):
        self.dims, self.keepdim = dims, keepdim
        return np.max(x, axis=dims, keepdims=keepdim)

    def backward(self, grad):
        (x,) = self.saved_tensors
        # BEGIN SOLUTION reduction_backward
        kept = _kept_shape(x.shape, self.dims)
        winners = (x == self.output.reshape(kept)).astype(grad.dtype)
        share = winners / winners.sum(self.dims, keepdim=True)
        return grad.reshape(kept) * share
        # END SOLUTION


# ---------------------------------------------------------------------------
# Task matmul_backward: Y = A @ B for matrices
# ---------------------------------------------------------------------------
class MatMul(Function):
    """Y = A @ B with A of shape (n, k) and B of shape (k, m)."""

    def forward(self, a, b):
        return a @ b

    def backward(self, grad):
        a, b = self.saved_tensors
        # BEGIN SOLUTION matmul_backward
        # Y_ij = sum_k A_ik B_kj, so dA_ik = sum_j dY_ij B_kj = (dY Bᵀ)_ik and dB = Aᵀ dY.
        return grad @ b.transpose(0, 1), a.transpose(0, 1) @ grad
        # END SOLUTION


# ---------------------------------------------------------------------------
# The ops as functions on Tensors (given)
# ---------------------------------------------------------------------------
def _dims(x, dim):
    if dim is None:
        return tuple(range(x.ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(sorted(d % x.ndim for d in dims))


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def tanh(x):
    return Tanh.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)


def relu(x):
    return ReLU.apply(x)


def mul(a, b):
    return Mul.apply(a, b)


def div(a, b):
    return Div.apply(a, b)


def sum(x, dim=None, keepdim=False):  # noqa: A001 - the name PyTorch uses
    return Sum.apply(x, dims=_dims(x, dim), keepdim=keepdim)


def mean(x, dim=None, keepdim=False):
    return Mean.apply(x, dims=_dims(x, dim), keepdim=keepdim)


def max(x, dim=None, keepdim=False):  # noqa: A001
    return Max.apply(x, dims=_dims(x, dim), keepdim=keepdim)


def matmul(a, b):
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: expected matrices (n, k) and (k, m), got {tuple(a.shape)} and {tuple(b.shape)}")
    return MatMul.apply(a, b)
