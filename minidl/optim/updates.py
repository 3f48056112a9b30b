"""The update rules as plain functions over NumPy arrays, changing the parameter in place.

They know nothing of Tensors, Modules or optimizers: the optimizers in this package call
them with `p.array` and `p.grad.array`, and a parameter server can call them on its own
arrays. Each forwards to the kernel set of the device the parameter lives on (the active cpu
set for NumPy arrays, the "cuda" set for DeviceArrays), so the C and CUDA kernels speed them
up without changing their meaning; the NumPy reference versions in
minidl/backend/numpy_kernels.py are the readable definitions.
"""

from minidl.backend import kernels_for_array


def zeros_like(param):
    """A zero state buffer (momentum, squared-gradient sums...) on the parameter's device, in its dtype."""
    return kernels_for_array(param).zeros(param.shape, param.dtype)


def sgd_update(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
    """SGD, with the lecture's momentum (μ = 0.9 is the usual choice):

        g' = μ·g + (1 - d)·∂L  (velocity, kept between steps; may be None when μ = 0)
        w' = w - α·g'

    nesterov=True steps with ∂L + μ·g' instead (a look-ahead). weight_decay ε adds ε·w to
    ∂L: the gradient of the L2 penalty (ε/2)|w|², the lecture's weight decay. dampening d
    scales the new gradient's share of the velocity (0, the default, is plain momentum).
    """
    kernels_for_array(param).sgd_update(
        param, grad, velocity, lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, dampening=dampening
    )


def adagrad_update(param, grad, sum_sq, lr, eps=1e-10, weight_decay=0.0):
    """AdaGrad, learning-rate decay applied adaptively, per parameter:

    n ← n + ∂L²
    w ← w - α/(√n + eps) · ∂L       (eps, added to √n, keeps the division finite)
    """
    kernels_for_array(param).adagrad_update(param, grad, sum_sq, lr, eps=eps, weight_decay=weight_decay)


def rmsprop_update(param, grad, mean_sq, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, mean=None):
    """RMSProp: AdaGrad with a leaky history, so the step size does not shrink forever:

    n ← α·n + (1 - α)·∂L²
    w ← w - lr/(√n + eps) · ∂L      (eps is added to √n, not to n, as in PyTorch)

    Centered (pass a `mean` buffer): m ← α·m + (1 - α)·∂L and the scale is √(n - m²), an
    estimate of the gradient's variance rather than its raw second moment.
    """
    kernels_for_array(param).rmsprop_update(
        param, grad, mean_sq, lr, alpha=alpha, eps=eps, weight_decay=weight_decay, mean=mean
    )


def adam_update(param, grad, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, max_v=None):
    """Adam: momentum (m) plus an RMSProp-style scale (v), both bias-corrected; step counts from 1.

    m ← β1·m + (1 - β1)·∂L          m̂ = m / (1 - β1^step)
    v ← β2·v + (1 - β2)·∂L²         v̂ = v / (1 - β2^step)
    w ← w - lr · m̂ / (√v̂ + eps)

    AMSGrad (pass a `max_v` buffer): v̂ uses max(v) over all steps so far, so a weight's
    step size never grows back after a large gradient.
    """
    kernels_for_array(param).adam_update(
        param, grad, m, v, step, lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, max_v=max_v
    )
