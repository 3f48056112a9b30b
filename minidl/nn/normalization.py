"""Batch normalization (Ioffe & Szegedy), as the lecture builds it up idea by idea, and layer normalization.

#2  subtract the mean and divide by the standard deviation of each feature,
#3  using a noisy, local estimate computed per mini-batch (in training),
#4  then a learned affine transform per feature (weight γ, bias β) so a layer can
    still choose its own dynamic range,
#5  and at test time, where there is no mini-batch, the global mean and variance
    (running averages collected during training) instead.
"""

import numpy as np

from minidl import ops
from minidl.autograd import no_grad
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.tensor import Tensor


class _BatchNorm(Module):
    """y = (x - mean) / sqrt(var + eps) · γ + β, per feature (channel).

    Training: mean and (biased) var of the batch; the running averages move towards the
    batch's statistics, running = (1 - momentum)·running + momentum·batch, using the
    unbiased variance (n / (n-1) · var) as PyTorch does. momentum=None keeps a plain
    cumulative average instead. Evaluation: the running averages.
    The gradient flows through the batch mean and var too (the core differentiates them),
    which is what makes the normalization part of the model rather than a preprocessing step.
    """

    expected_ndim = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, dtype=np.float32):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.weight = self.bias = None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor._wrap(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor._wrap(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor._wrap(np.array(0, dtype=np.int64)))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def _check_input(self, x):
        if x.ndim not in self.expected_ndim or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}): expected input with {self.num_features} features "
                f"in axis 1 and {' or '.join(map(str, self.expected_ndim))} dimensions, got shape {x.shape}"
            )

    def forward(self, x):
        self._check_input(x)
        axes = (0,) + tuple(range(2, x.ndim))  # every axis but the feature axis
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)  # broadcast per-feature values over the rest
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            mean = x.mean(axes, keepdim=True)
            var = x.var(axes, keepdim=True, correction=0)  # the batch's own (biased) variance
            if self.training and self.track_running_stats:
                count = x.array.size // self.num_features
                if count < 2:
                    raise ValueError(
                        f"{type(self).__name__}: expected more than 1 value per feature in training, "
                        f"got input {x.shape}"
                    )
                self._update_running_stats(mean.array.reshape(-1), var.array.reshape(-1) * (count / (count - 1)))
        else:
            mean = self.running_mean.reshape(shape)
            var = self.running_var.reshape(shape)
        y = (x - mean) / (var + self.eps).sqrt()
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y

    def _update_running_stats(self, batch_mean, batch_var_unbiased):
        with no_grad():
            self.num_batches_tracked.array += 1
            momentum = self.momentum
            if momentum is None:  # cumulative moving average: every batch counts equally
                momentum = 1.0 / float(self.num_batches_tracked.array)
            for running, batch in ((self.running_mean, batch_mean), (self.running_var, batch_var_unbiased)):
                running.array *= 1 - momentum
                running.array += momentum * batch.astype(running.dtype, copy=False)
                running._bump_version()
            self.num_batches_tracked._bump_version()

    def reset_running_stats(self):
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs: statistics per feature C."""

    expected_ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) images: statistics per channel, over the batch and all pixels."""

    expected_ndim = (4,)


class LayerNorm(Module):
    """Layer normalization (Ba, Kiros & Hinton, 2016): each example normalized over its last axes,

        y = (x - mean) / sqrt(var + eps) · γ + β,   mean and biased var over normalized_shape,

    with learned γ (weight, ones) and β (bias, zeros) of normalized_shape, as torch.nn.LayerNorm.
    Batch norm's idea #2 and #4 per example instead of per mini-batch: no running averages, the
    same in training and evaluation, and independent of the batch (good for RNNs and attention).
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=np.float32):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not shape or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be positive sizes, got {normalized_shape!r}")
        self.normalized_shape = tuple(int(n) for n in shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype)) if elementwise_affine and bias else None

    def forward(self, x):
        return ops.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
