"""Weight initialization: fill parameters in place, with minidl's seeded generator.

The lecture's rule: keep activations in a stable numerical regime, O(1). Since
|Y| ~ |A4||A3||A2||A1||X|, draw each layer's weights from N(0, sigma) with sigma chosen
so that output activations ~ input activations (Glorot/Xavier for tanh-like layers,
He/Kaiming for ReLU). Two more pieces of advice become helpers here:
  - start biases positive, in the linear regime of the ReLU   -> positive_bias_
  - start with a small last layer: a soft, high-temperature output distribution that
    anneals to peakier ones as the classifier gets confident   -> small_last_layer_
"""

import math

import numpy as np

from minidl import random as _random
from minidl.autograd import no_grad


def calculate_gain(nonlinearity, param=None):
    """How much a nonlinearity shrinks the activations' scale; initializers multiply sigma by it."""
    if nonlinearity in ("linear", "identity", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)  # ReLU zeroes half of its inputs, halving the variance
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    """fan_in = inputs feeding one output unit, fan_out = outputs fed by one input unit.

    For a Linear weight (out, in) these are in and out; for a Conv2d weight (F, C, kh, kw)
    every output sees C*kh*kw inputs.
    """
    if tensor.ndim < 2:
        raise ValueError(f"init: fan in and fan out need a tensor with at least 2 dimensions, got shape {tensor.shape}")
    receptive_field = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _fill(tensor, values):
    with no_grad():
        if tensor.device == "cpu":
            tensor.array[...] = values
            tensor._bump_version()
        else:  # a device tensor: values drawn on the host, copied up once
            tensor.detach().copy_(np.asarray(values, dtype=tensor.dtype))
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with U(a, b)."""
    return _fill(tensor, _random.generator().uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with N(mean, std)."""
    return _fill(tensor, _random.generator().normal(mean, std, tensor.shape))


def constant_(tensor, value):
    return _fill(tensor, value)


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


def xavier_uniform_(tensor, gain=1.0):
    """Glorot: Var(w) = 2 / (fan_in + fan_out), keeping forward and backward signals O(1)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    bound = math.sqrt(3.0) * std  # U(-b, b) has standard deviation b / sqrt(3)
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(tensor, a, mode, nonlinearity):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He: Var(w) = gain^2 / fan_in, so each ReLU layer keeps the activations' scale.

    With a=sqrt(5) this is the default init of Linear and Conv2d (as in PyTorch):
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


def positive_bias_(tensor, value=0.1):
    """The lecture's advice: initialize biases positive, to start in the linear regime of the ReLU."""
    if value <= 0:
        raise ValueError(f"positive_bias_: value must be > 0, got {value}")
    return constant_(tensor, value)


def small_last_layer_(linear, scale=0.01):
    """Scale a (last) layer's weights down and zero its bias: small logits mean a soft,
    high-temperature softmax, small gradients at first, and a classifier that becomes
    peakier only as it gets more confident. Returns the layer."""
    if scale <= 0:
        raise ValueError(f"small_last_layer_: scale must be > 0, got {scale}")
    with no_grad():
        linear.weight.array *= scale
        linear.weight._bump_version()
    if getattr(linear, "bias", None) is not None:
        zeros_(linear.bias)
    return linear
