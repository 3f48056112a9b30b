"""A small op set, as the last TA left it: three ops with forward and backward side by side.

One of these backward methods is wrong. The model at the bottom trains, the loss goes down,
and nothing crashes: a wrong gradient rarely announces itself. Find it with the tools in
minidl.debug (trace, step_backward, gradcheck) and your own checker (checker.py).

Each op is a minidl Function: forward on NumPy arrays, backward written with Tensor ops
(so it could be differentiated again), as in minidl/ops/.
"""

import numpy as np

import minidl
from minidl.autograd import Function


class Softplus(Function):
    """y = log(1 + e^x), a smooth ReLU;   dy/dx = sigmoid(x)"""

    def forward(self, x):
        return np.logaddexp(0.0, x)  # log(e^0 + e^x) without overflow for large x

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * x.sigmoid()


class Swish(Function):
    """y = x·sigmoid(x);   dy/dx = s + x·s·(1 - s), s = sigmoid(x)"""

    def forward(self, x):
        return x / (1.0 + np.exp(-x))

    def backward(self, grad):
        (x,) = self.saved_tensors
        s = x.sigmoid()
        return grad * (s + x * s * (1 - s))


class RowNormalize(Function):
    """y[i, j] = x[i, j] / S[i], S[i] = Σ_k x[i, k]: each row of a positive x scaled to sum to 1."""

    def forward(self, x):
        return x / x.sum(axis=1, keepdims=True)

    def backward(self, grad):
        (x,) = self.saved_tensors
        row_sums = x.sum(axis=1, keepdims=True)
        return grad / row_sums


def softplus(x):
    return Softplus.apply(x)


def swish(x):
    return Swish.apply(x)


def row_normalize(x):
    return RowNormalize.apply(x)


SUSPECTS = (Softplus, Swish, RowNormalize)


def model_loss(x, w, targets):
    """A toy network: scores = row_normalize(softplus(x @ w)); loss = -Σ targets · swish(scores)."""
    h = softplus(x @ w)
    p = row_normalize(h)
    return -(swish(p) * targets).sum()


def example_inputs(seed=0, dtype=np.float64):
    """(x, w, targets) for model_loss, w requiring grad."""
    rng = np.random.default_rng(seed)
    x = minidl.tensor(rng.standard_normal((5, 4)).astype(dtype))
    w = minidl.tensor(rng.standard_normal((4, 3)).astype(dtype), requires_grad=True)
    targets = minidl.tensor(np.eye(3)[rng.integers(0, 3, 5)].astype(dtype))
    return x, w, targets
