"""Optimizer updates in C (csrc/optim.c), in place on the parameter and its state.

Scalars are rounded to float32 here exactly as NumPy does when a Python float meets a
float32 array; the C code then performs NumPy's operations in NumPy's order, so results
match the reference bit for bit. The options the C loops do not cover (SGD dampening,
centered RMSProp, AMSGrad) go to the reference.
"""

import numpy as np

from minidl.backend.c import _ffi
from minidl.backend.c._reference import ref

MIN_UPDATE = 256  # parameters: one fused pass instead of NumPy's several pays from tiny sizes


def _f32(v):
    return float(np.float32(v))


def _update_in_c(kernel, param, grad, *state):
    """True if this update should run in C; raises for float32 arrays C cannot update in place."""
    arrays = (param, grad) + tuple(s for s in state if s is not None)
    if not _ffi.available or not _ffi.is_f32(*arrays) or param.size < MIN_UPDATE:
        return False
    if any(a.shape != param.shape for a in arrays):
        return False  # let NumPy broadcast (or raise its own error)
    _ffi.require_inplace(kernel, "param", param)
    for i, s in enumerate(state):
        if s is not None:
            _ffi.require_inplace(kernel, f"state array {i}", s)
    return True


def sgd_update(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
    """g' = mu*g + dL;  w' = w - lr*g'  (the lecture's momentum), in place. (Dampening: the reference.)"""
    if (momentum and dampening) or not _update_in_c("sgd_update", param, grad, velocity if momentum else None):
        return ref.sgd_update(param, grad, velocity, lr, momentum, weight_decay, nesterov, dampening)
    buf = _ffi.buf
    v = buf(velocity) if momentum else _ffi.ffi.NULL
    _ffi.lib.mdk_sgd_update(
        buf(param), buf(_ffi.contig(grad)), v, param.size, _f32(lr), _f32(momentum), _f32(weight_decay), bool(nesterov)
    )


def adagrad_update(param, grad, sum_sq, lr, eps=1e-10, weight_decay=0.0):
    """n <- n + dL^2;  w <- w - lr/sqrt(n) * dL, in place."""
    if not _update_in_c("adagrad_update", param, grad, sum_sq):
        return ref.adagrad_update(param, grad, sum_sq, lr, eps, weight_decay)
    buf = _ffi.buf
    _ffi.lib.mdk_adagrad_update(
        buf(param), buf(_ffi.contig(grad)), buf(sum_sq), param.size, _f32(lr), _f32(eps), _f32(weight_decay)
    )


def rmsprop_update(param, grad, mean_sq, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, mean=None):
    """n <- alpha*n + (1-alpha)*dL^2;  w <- w - lr/sqrt(n) * dL, in place. (Centered: the reference.)"""
    if mean is not None or not _update_in_c("rmsprop_update", param, grad, mean_sq):
        return ref.rmsprop_update(param, grad, mean_sq, lr, alpha, eps, weight_decay, mean)
    buf = _ffi.buf
    _ffi.lib.mdk_rmsprop_update(
        buf(param), buf(_ffi.contig(grad)), buf(mean_sq), param.size,
        _f32(lr), _f32(alpha), _f32(1 - alpha), _f32(eps), _f32(weight_decay),
    )  # fmt: skip


def adam_update(param, grad, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, max_v=None):
    """Adam with bias correction; `step` counts from 1. In place. (AMSGrad: the reference.)"""
    if max_v is not None or not _update_in_c("adam_update", param, grad, m, v):
        return ref.adam_update(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, max_v)
    buf = _ffi.buf
    _ffi.lib.mdk_adam_update(
        buf(param), buf(_ffi.contig(grad)), buf(m), buf(v), param.size,
        _f32(lr), _f32(beta1), _f32(1 - beta1), _f32(beta2), _f32(1 - beta2),
        _f32(1 - beta1**step), _f32(1 - beta2**step), _f32(eps), _f32(weight_decay),
    )  # fmt: skip


__all__ = ["sgd_update", "adagrad_update", "rmsprop_update", "adam_update"]
