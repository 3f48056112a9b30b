"""Matrix products: matmul with NumPy's rules, and the fused linear layer op.

For Y = A·B, the lecture's rule ∂W = ∂H·Xᵀ generalizes to
    dA = dY · Bᵀ      dB = Aᵀ · dY
with batch dimensions broadcast (and summed back by unbroadcast).
"""

import operator

import numpy as np

from minidl.autograd import Function, is_grad_enabled
from minidl.ops._util import pair, unbroadcast


def _matmul_shapes_error(a_shape, b_shape):
    return ValueError(f"matmul: shapes {a_shape} and {b_shape} do not align")


def _check_matmul(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise _matmul_shapes_error(a.shape, b.shape)
    if a.ndim > 2 and b.ndim > 2:
        batch_a, batch_b = a.shape[:-2], b.shape[:-2]
        for x, y in zip(reversed(batch_a), reversed(batch_b)):
            if x != y and x != 1 and y != 1:
                raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast")


class MatMul(Function):
    """Y = A @ B (1-D, 2-D or batched);   dA = dY @ Bᵀ,  dB = Aᵀ @ dY"""

    def forward(self, a, b):
        return self.kernels.matmul(a, b)

    def backward(self, grad):
        a, b = self.saved_tensors
        if a.ndim == 1 and b.ndim == 1:  # a dot product: Y is a scalar
            return grad * b, grad * a
        # Treat vectors as matrices (a row for A, a column for B) so one rule covers all cases.
        a2 = a.reshape(1, -1) if a.ndim == 1 else a
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b
        g = grad
        if a.ndim == 1:
            g = g.unsqueeze(-2)
        if b.ndim == 1:
            g = g.unsqueeze(-1)
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = unbroadcast(g @ b2.transpose(-1, -2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            grad_b = unbroadcast(a2.transpose(-1, -2) @ g, b2.shape).reshape(b.shape)
        return grad_a, grad_b


class Linear(Function):
    """Y = X Wᵀ + b for X (N, in), W (out, in), b (out,);
    dX = dY W,  dW = dYᵀ X,  db = sum of dY over the batch."""

    def forward(self, x, weight, bias=None):
        return self.kernels.linear(x, weight, bias)

    def backward(self, grad):
        x, weight = self.saved_tensors[:2]
        if is_grad_enabled():  # create_graph=True: as Tensor ops, so they can be differentiated again
            return linear_gradients(self, grad, x, weight)
        return linear_gradients(self, grad.data, x.data, weight.data)


def linear_gradients(fn, dz, x, weight, db=None):
    """What a linear layer's node `fn` sends back, given dz = dL/d(x Wᵀ + b):

        dX = dz W,   dW = dzᵀ X,   db = Σ_n dz      (each only if fn.needs_input_grad says so)

    Tensors in, Tensors out: a recorded backward (create_graph=True), differentiable again.
    Arrays in, arrays out through fn.kernels: a plain backward() with no graph nodes to build.
    db may be given when already computed (LinearAct gets it from its fused pass).
    Shared by Linear and ops.fused.LinearAct.
    """
    arrays = isinstance(dz, np.ndarray)
    need = fn.needs_input_grad
    mm = fn.kernels.matmul if arrays else operator.matmul
    grad_x = mm(dz, weight) if need[0] else None
    grad_w = mm(dz.T if arrays else dz.transpose(-1, -2), x) if need[1] else None  # dz.T is a view: no copy
    if len(fn.inputs) == 2:
        return grad_x, grad_w
    if need[2] and db is None:
        db = fn.kernels.sum(dz, axis=0) if arrays else dz.sum(axis=0)
    return grad_x, grad_w, db if need[2] else None


def matmul(a, b):
    a, b = pair(a, b)
    try:
        return MatMul.apply(a, b)
    except ValueError:
        _check_matmul(a, b)  # explain in our words which shapes disagree
        raise


def check_linear_args(op, x, weight, bias):
    """Check a fully connected layer's input (N, in), weight (out, in) and bias (out,) for `op`."""
    if x.ndim != 2 or weight.ndim != 2:
        raise ValueError(f"{op}: expected input (N, in) and weight (out, in), got {x.shape} and {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} features but weight expects {weight.shape[1]} "
            f"(input {x.shape}, weight {weight.shape})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias shape {bias.shape} does not match weight's {weight.shape[0]} outputs")


def linear(x, weight, bias=None):
    """The fully connected layer: x @ weight.T + bias, for a batch x of shape (N, in_features)."""
    if x.ndim > 2 and weight.ndim == 2:  # (..., in): flatten the leading axes, as nn.Linear allows
        lead = x.shape[:-1]
        return linear(x.reshape(-1, x.shape[-1]), weight, bias).reshape(*lead, weight.shape[0])
    check_linear_args("linear", x, weight, bias)
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)


__all__ = ["matmul", "linear"]  # linear_gradients is for ops.fused, not users
