"""Exercise 04: batch normalization (Ioffe & Szegedy, 2015) on NumPy arrays.

For every feature (channel) c, over the m values it takes in the batch (the batch axis and,
for images, every pixel: all axes but axis 1):

    μ = mean(x),   σ² = mean((x - μ)²)              (the biased variance)
    x̂ = (x - μ) / √(σ² + eps)
    y = γ·x̂ + β

x has shape (N, C) or (N, C, L) or (N, C, H, W); γ, β and the statistics have shape (C,).
The helpers below (given) say which axes are reduced and reshape a (C,) vector so it
broadcasts against x.
"""

import numpy as np


def reduced_axes(x):
    """Every axis but the feature axis 1: the batch, and the pixels of an image."""
    return (0,) + tuple(range(2, x.ndim))


def per_feature(v, x):
    """A (C,) vector shaped (1, C, 1, ...) to broadcast against x."""
    return np.reshape(v, (1, -1) + (1,) * (x.ndim - 2))


def batch_statistics(x, eps):
    """(x̂, 1/√(σ² + eps)) from the batch's own statistics (given; used by batchnorm_backward)."""
    axes = reduced_axes(x)
    mean = x.mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    return (x - mean) * inv_std, inv_std


def batchnorm_forward(x, gamma, beta, eps=1e-5, running=None, momentum=0.1):
    """Training-mode batch norm: y, normalized with the batch's mean and (biased) variance.

    running: None, or a dict with arrays "mean" and "var" of shape (C,), updated IN PLACE:
        running["mean"] ← (1 - momentum)·running["mean"] + momentum·μ
        running["var"]  ← (1 - momentum)·running["var"]  + momentum·σ²·m/(m - 1)
    (the running variance uses the unbiased estimate, as PyTorch does; m values per feature).
    """
    # BEGIN SOLUTION batchnorm_forward
    axes = reduced_axes(x)
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)  # biased: divides by m
    x_hat = (x - per_feature(mean, x)) / np.sqrt(per_feature(var, x) + eps)
    if running is not None:
        m = x.size // x.shape[1]
        running["mean"] *= 1 - momentum
        running["mean"] += momentum * mean
        running["var"] *= 1 - momentum
        running["var"] += momentum * var * m / (m - 1)
    return per_feature(gamma, x) * x_hat + per_feature(beta, x)
    # END SOLUTION


def inference_forward(x, gamma, beta, running_mean, running_var, eps=1e-5):
    """Test-time batch norm: the same transformation with the running averages in place of μ and σ²."""
    # BEGIN SOLUTION inference_forward
    x_hat = (x - per_feature(running_mean, x)) / np.sqrt(per_feature(running_var, x) + eps)
    return per_feature(gamma, x) * x_hat + per_feature(beta, x)
    # END SOLUTION


def batchnorm_param_grads(dy, x_hat):
    """(dγ, dβ), each of shape (C,), for the upstream gradient dy of y = γ·x̂ + β."""
    # BEGIN SOLUTION param_grads
    axes = reduced_axes(dy)
    return (dy * x_hat).sum(axis=axes), dy.sum(axis=axes)
    # END SOLUTION


def batchnorm_input_grad(dy, x_hat, inv_std, gamma):
    """dx for the upstream gradient dy, in training mode (μ and σ² depend on x too).

    x_hat and inv_std come from batch_statistics (inv_std has shape (1, C, 1, ...)).
    """
    # BEGIN SOLUTION input_grad
    # With g = dy·γ (the gradient reaching x̂) and means over the m values of each feature:
    #   dx = (g - mean(g) - x̂·mean(g·x̂)) / √(σ² + eps)
    # the two means are what flows back through μ and through σ².
    axes = reduced_axes(dy)
    g = dy * per_feature(gamma, dy)
    return inv_std * (g - g.mean(axis=axes, keepdims=True) - x_hat * (g * x_hat).mean(axis=axes, keepdims=True))
    # END SOLUTION


def batchnorm_backward(dy, x, gamma, eps=1e-5):
    """(dx, dγ, dβ) of training-mode batch norm (given: it puts your two parts together)."""
    x_hat, inv_std = batch_statistics(x, eps)
    dgamma, dbeta = batchnorm_param_grads(dy, x_hat)
    return batchnorm_input_grad(dy, x_hat, inv_std, gamma), dgamma, dbeta
