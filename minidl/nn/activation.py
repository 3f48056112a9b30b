"""Activation layers: the nonlinearities between the linear layers, as Modules.

Each wraps one op so it can sit in a Sequential. ReLU, max(0, x), is the lecture's
"simplest non-linearity possible", with the well behaved derivative X > 0 ? 1 : 0.
"""

from minidl import ops
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
