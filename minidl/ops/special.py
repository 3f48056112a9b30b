"""Special functions and the activations built on them: erf and GELU.

GELU, x·Φ(x) with Φ the standard normal CDF, weighs each input by how likely a Gaussian is
to fall below it: a smooth ReLU (Hendrycks & Gimpel, "Gaussian Error Linear Units", 2016).
Φ(x) = (1 + erf(x/√2)) / 2, so erf is the one new op; GELU is composed from it.
"""

import math

from minidl.autograd import Function

_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)


class Erf(Function):
    """y = erf(x) = 2/√π ∫₀ˣ e^(-t²) dt;   dx = dy · 2/√π · e^(-x²)."""

    def forward(self, x):
        return self.kernels.erf(x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * ((-(x * x)).exp() * _TWO_OVER_SQRT_PI)


def erf(x):
    """The error function, elementwise (float tensors)."""
    if x.dtype.kind != "f":
        raise TypeError(f"erf: expected a floating point tensor, got dtype {x.dtype}")
    return Erf.apply(x)


def gelu(x, approximate="none"):
    """GELU(x) = x·Φ(x) = x/2 · (1 + erf(x/√2)), as torch.nn.functional.gelu.

    approximate="tanh" uses Hendrycks & Gimpel's cheaper form,
    x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³))), which differs from the exact one by < 1e-3.
    """
    if approximate == "none":
        return x * 0.5 * (erf(x * (1 / math.sqrt(2))) + 1)
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2 / math.pi)
        return x * 0.5 * (inner.tanh() + 1)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


__all__ = ["erf", "gelu"]
