"""Matrix products: matmul with NumPy's rules, and the fully connected layer.

For Y = A·B, the lecture's rule ∂W = ∂H·Xᵀ generalizes to
    dA = dY · Bᵀ      dB = Aᵀ · dY
with batch dimensions broadcast (and summed back by unbroadcast).
"""

from minidl.autograd import Function
from minidl.ops._util import pair, unbroadcast


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
            grad_a = unbroadcast(g @ b2.transpose(-1, -2), a2.shape)
            if a.ndim == 1:
                grad_a = grad_a.reshape(a.shape)  # back from the row we treated it as
        if self.needs_input_grad[1]:
            grad_b = unbroadcast(a2.transpose(-1, -2) @ g, b2.shape)
            if b.ndim == 1:
                grad_b = grad_b.reshape(b.shape)  # back from the column
        return grad_a, grad_b


def matmul(a, b):
    """The matrix product with NumPy's rules: vectors, matrices, and broadcast stacks of matrices."""
    a, b = pair(a, b)
    try:
        return MatMul.apply(a, b)
    except ValueError:
        _check_matmul(a, b)  # explain in our words which shapes disagree
        raise


def mm(a, b):
    """The product of two matrices (2-D only, as torch.mm); matmul covers vectors and batches too."""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mm: expects two matrices, got shapes {a.shape} and {b.shape}; use matmul for other shapes")
    return matmul(a, b)


def bmm(a, b):
    """Batched matrix product of (B, n, k) and (B, k, m), as torch.bmm."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: expects (B, n, k) and (B, k, m) with the same B, got {a.shape} and {b.shape}")
    return matmul(a, b)


def _check_matmul(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    if a.ndim > 2 and b.ndim > 2:
        for x, y in zip(reversed(a.shape[:-2]), reversed(b.shape[:-2])):
            if x != y and x != 1 and y != 1:
                raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast")


class Linear(Function):
    """Y = X Wᵀ + b for X (N, in), W (out, in), b (out,);
    dX = dY W,  dW = dYᵀ X,  db = sum of dY over the batch."""

    def forward(self, x, weight, bias=None):
        return self.kernels.linear(x, weight, bias)

    def backward(self, grad):
        x, weight = self.saved_tensors[:2]
        return linear_gradients(self, grad, x, weight)


def linear(x, weight, bias=None):
    """The fully connected layer: x @ weight.T + bias, for a batch x of shape (N, in_features)."""
    if x.ndim > 2 and weight.ndim == 2:  # (..., in): flatten the leading axes, as nn.Linear allows
        lead = x.shape[:-1]
        return linear(x.reshape(-1, x.shape[-1]), weight, bias).reshape(*lead, weight.shape[0])
    check_linear_args("linear", x, weight, bias)
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)


def linear_gradients(fn, dz, x, weight):
    """What a fully connected node `fn` sends back, given dz = dL/d(x Wᵀ + b):

        dX = dz W,   dW = dzᵀ X,   db = Σ_n dz      (each only if fn.needs_input_grad says so)

    Shared by Linear and LinearAct (a layer and its activation as one op).
    """
    need = fn.needs_input_grad
    grad_x = dz @ weight if need[0] else None
    grad_w = dz.transpose(1, 0) @ x if need[1] else None
    if len(need) == 2:
        return grad_x, grad_w
    return grad_x, grad_w, dz.sum(0) if need[2] else None


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


__all__ = ["matmul", "mm", "bmm", "linear"]  # linear_gradients and check_linear_args are for LinearAct, not users
