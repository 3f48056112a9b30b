"""Gradient clipping: protect training against "wall bouncing".

When the loss surface has a cliff, one huge gradient can throw the weights far away.
Rescaling the gradient when its norm exceeds a threshold keeps the step bounded while
keeping its direction.
"""

import math

import numpy as np

from minidl.tensor import Tensor

_ROW = 256  # elements per float32 partial sum in _sum_of_squares


def _with_grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def _sum_of_squares(flat):
    """Σ x² over a 1-D array, without a float64 copy of it.

    A float32 sum of n same-sign terms may be off by n·2^-24 of it, depending on the order the
    summing code takes: a BLAS dot's order is the BLAS's (one sequential sdot over 16384 equal
    terms loses 6.6e-5, OpenBLAS's Prescott kernel 1.4e-5). Rows of 256 elements lose at most
    1.5e-5 each in any order; NumPy's einsum sums them (no BLAS: the same bound on every
    machine, and as fast as the dots) and the row sums are added in float64.
    """
    if flat.dtype.itemsize < 4:
        flat = flat.astype(np.float32)  # float16: NumPy's own float16 sums would be far worse
    whole = flat.size - flat.size % _ROW
    rows, tail = flat[:whole].reshape(-1, _ROW), flat[whole:]
    return float(np.einsum("ij,ij->i", rows, rows).sum(dtype=np.float64)) + float(np.einsum("i,i->", tail, tail))


def _grad_norm(grad, norm_type):
    """The norm of one gradient, as a Python float; 0 for an empty gradient in every order."""
    flat = grad.reshape(-1)
    if flat.size == 0:
        return 0.0  # a max or min over nothing has no value; the norm of an empty vector is 0
    if norm_type == 2.0:
        return math.sqrt(_sum_of_squares(flat))
    if norm_type in (math.inf, -math.inf, 0.0):  # max |x|, min |x|, count of x != 0: exact in any dtype
        return float(np.linalg.norm(flat, ord=norm_type))
    return float(np.sum(np.abs(flat) ** norm_type, dtype=np.float64) ** (1 / norm_type))


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so their joint norm is at most max_norm; return the norm before clipping.

    The joint norm treats every gradient as one long vector: with q = norm_type,
    ||g|| = (Σ_i ||g_i||_q^q)^(1/q) over the parameters i (the largest |entry| when q = inf).
    The gradients are multiplied by min(1, max_norm / (||g|| + 1e-6)), as in PyTorch: when a
    gradient holds NaN, the norm is NaN and so does every gradient become; with inf, the finite
    entries become 0. Returns a scalar Tensor (like PyTorch), so .item() gives the number.
    """
    params = _with_grads(parameters)
    if max_norm <= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be > 0, got {max_norm}")
    if not params:
        return Tensor(np.array(0.0, dtype=np.float32))
    norm_type = float(norm_type)
    per_param = [_grad_norm(p.grad.data, norm_type) for p in params]
    total = float(np.linalg.norm(np.array(per_param), ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total gradient norm is {total}; gradients contain NaN or inf")
    coefficient = max_norm / (total + 1e-6)
    if coefficient < 1 or math.isnan(coefficient):  # NaN spreads to every gradient, as in PyTorch
        with np.errstate(invalid="ignore"):  # inf * 0 = NaN is the documented result, not a surprise
            for p in params:
                p.grad.data *= p.grad.dtype.type(coefficient)
    return Tensor(np.array(total, dtype=params[0].grad.dtype))


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element to [-clip_value, clip_value] (cruder than clipping the norm)."""
    if clip_value <= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be > 0, got {clip_value}")
    for p in _with_grads(parameters):
        np.clip(p.grad.data, -clip_value, clip_value, out=p.grad.data)
