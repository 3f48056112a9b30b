"""Gradient clipping: protect training against "wall bouncing".

When the loss surface has a cliff, one huge gradient can throw the weights far away.
Rescaling the gradient when its norm exceeds a threshold keeps the step bounded while
keeping its direction.
"""

import numpy as np

from minidl.tensor import Tensor


def _with_grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so their joint norm is at most max_norm; return the norm before clipping.

    The joint norm treats every gradient as one long vector: ||g|| = (sum over params of ||g_p||^p)^(1/p).
    Returns a scalar Tensor (like PyTorch), so .item() gives the number.
    """
    params = _with_grads(parameters)
    if max_norm <= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be > 0, got {max_norm}")
    if not params:
        return Tensor(np.array(0.0, dtype=np.float32))
    norm_type = float(norm_type)
    if norm_type == np.inf:
        total = max(float(np.max(np.abs(p.grad.data))) for p in params)
    else:
        per_param = [np.linalg.norm(p.grad.data.ravel().astype(np.float64), ord=norm_type) for p in params]
        total = float(np.linalg.norm(per_param, ord=norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total gradient norm is {total}; gradients contain NaN or inf")
    coefficient = max_norm / (total + 1e-6)
    if coefficient < 1:
        for p in params:
            p.grad.data *= p.grad.dtype.type(coefficient)
    return Tensor(np.array(total, dtype=params[0].grad.dtype))


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element to [-clip_value, clip_value] (cruder than clipping the norm)."""
    if clip_value <= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be > 0, got {clip_value}")
    for p in _with_grads(parameters):
        np.clip(p.grad.data, -clip_value, clip_value, out=p.grad.data)
