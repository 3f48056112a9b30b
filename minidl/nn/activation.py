"""Activation layers: the nonlinearities between the linear layers, as Modules.

Each wraps one op so it can sit in a Sequential. ReLU, max(0, x), is the lecture's
"simplest non-linearity possible", with the well behaved derivative X > 0 ? 1 : 0.
"""

import numpy as np

from minidl import ops
from minidl.nn.linear import Linear
from minidl.nn.module import Module


class ReLU(Module):
    """y = max(0, x);  dy/dx = 1 if x > 0 else 0."""

    def forward(self, x):
        return ops.relu(x)


class LeakyReLU(Module):
    """y = x if x > 0 else negative_slope * x (keeps a small gradient for negative inputs)."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return ops.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    """y = tanh(x);  dy/dx = 1 - y²."""

    def forward(self, x):
        return ops.tanh(x)


class Sigmoid(Module):
    """y = 1 / (1 + e^-x);  dy/dx = y (1 - y). The LSTM's [0, 1] gates."""

    def forward(self, x):
        return ops.sigmoid(x)


class Softmax(Module):
    """y_i = e^x_i / sum_j e^x_j along `dim`: scores to probabilities."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return ops.softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """y = log softmax(x) along `dim`; pair it with NLLLoss (or use CrossEntropyLoss on raw scores)."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return ops.log_softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class GELU(Module):
    """y = x·Φ(x) = x/2 · (1 + erf(x/√2)), Φ the standard normal CDF (Hendrycks & Gimpel, 2016).

    A smooth ReLU: inputs are weighed by how likely a standard Gaussian falls below them.
    approximate="tanh": x/2 · (1 + tanh(√(2/π)(x + 0.044715x³))), as torch.nn.GELU.
    """

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return ops.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}" if self.approximate != "none" else ""


class Maxout(Module):
    """A maxout layer (Goodfellow, Warde-Farley, Mirza, Courville & Bengio, "Maxout Networks", 2013):

        h_i(x) = max_{j=1..pieces} z_ij,   z_ij = x·W_ijᵀ + b_ij,

    each of the out_features units is the max of `pieces` linear functions of the input: a learned,
    convex, piecewise-linear activation (ReLU is maxout of z and 0). The lecture pairs it with
    dropout. `linear` holds the out_features·pieces linear functions, unit i's pieces consecutive.
    """

    def __init__(self, in_features, out_features, pieces=2, bias=True, dtype=np.float32):
        super().__init__()
        if not isinstance(pieces, (int, np.integer)) or pieces < 1:
            raise ValueError(f"Maxout: pieces must be a positive integer, got {pieces!r}")
        self.pieces = pieces
        self.linear = Linear(in_features, out_features * pieces, bias=bias, dtype=dtype)

    def forward(self, x):
        return ops.maxout(self.linear(x), self.pieces, axis=-1)

    def extra_repr(self):
        return f"in_features={self.linear.in_features}, out_features={self.linear.out_features // self.pieces}, " + (
            f"pieces={self.pieces}"
        )
