"""Fully connected layers and shape helpers: Linear, Identity, Flatten.

Linear is the lecture's workhorse, Y = X·Wᵀ + b: "parameters are all in linear functions,
yet the stack is very non-linear" once activations sit between them.
"""

import math

import numpy as np

from minidl import ops
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter


class Linear(Module):
    """y = x Wᵀ + b, with W of shape (out_features, in_features).

    Backward (computed by the autodiff core): dX = dY·W, dW = dYᵀ·X, db = sum of dY over the batch.
    Initialized like PyTorch, W and b ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a=sqrt(5)),
    so weights copy between the two either way. For the lectures' init advice see
    nn.init.kaiming_normal_, nn.init.positive_bias_ and nn.init.small_last_layer_.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(
                f"Linear: in_features and out_features must be positive, got {in_features}, {out_features}"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter.empty((out_features, in_features), dtype=dtype)
        self.bias = Parameter.empty(out_features, dtype=dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        self.check_input(x)
        return ops.linear(x, self.weight, self.bias)

    def check_input(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r}: expected input of shape (..., {self.in_features}), got {x.shape}")

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Identity(Module):
    """y = x (a placeholder, e.g. to switch a layer off without changing the model's structure)."""

    def forward(self, x):
        return x


class Flatten(Module):
    """Merge axes start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x):
        return ops.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
