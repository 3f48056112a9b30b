"""Shared by the tests: inputs, and minidl's BatchNorm layers (float64) as the reference."""

import numpy as np

import minidl
import minidl.nn as nn

SHAPES = [(8, 3), (4, 5, 6), (3, 4, 5, 2)]  # (N, C), (N, C, L), (N, C, H, W)
IDS = ["2d", "3d", "image"]

# Everything is float64; the reference computes the same quantities in another order, so the
# results differ by rounding (~1e-15 relative for inputs of unit scale). Mistakes such as eps
# in the wrong place change them by about eps = 1e-5 relative or more.
RTOL, ATOL = 1e-10, 1e-12


def case(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2 + rng.standard_normal((1, shape[1]) + (1,) * (len(shape) - 2))
    gamma = rng.uniform(0.5, 1.5, shape[1])
    beta = rng.standard_normal(shape[1])
    return x, gamma, beta


def reference_layer(x, gamma, beta, momentum=0.1):
    layer = (nn.BatchNorm2d if x.ndim == 4 else nn.BatchNorm1d)(x.shape[1], momentum=momentum, dtype=np.float64)
    with minidl.no_grad():
        layer.weight.array[...] = gamma
        layer.bias.array[...] = beta
    return layer


def reference_gradients(x, gamma, beta, dy, eps=1e-5):
    """(dx, dγ, dβ) by minidl's autograd through its BatchNorm layer in training mode."""
    layer = reference_layer(x, gamma, beta)
    layer.eps = eps
    tx = minidl.tensor(x, dtype=minidl.float64, requires_grad=True)
    layer(tx).backward(minidl.tensor(dy, dtype=minidl.float64))
    return tx.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()
