"""Gradient clipping: protect training against "wall bouncing".

When the loss surface has a cliff, one huge gradient can throw the weights far away.
Rescaling the gradient when its norm exceeds a threshold keeps the step bounded while
keeping its direction.

On the cpu the norm is summed on the host as described in _sum_of_squares; gradients on another
device (cuda) are measured and scaled there by its kernels, without copying them to the host.
"""

import math

import numpy as np

from minidl.backend import active_kernels
from minidl.backend.device import CPU
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
        return Tensor._wrap(np.array(0.0, dtype=np.float32))
    norm_type = float(norm_type)
    where = _one_device("clip_grad_norm_", params)
    if where is not CPU:
        return _clip_grad_norm_on_device(params, where, max_norm, norm_type, error_if_nonfinite)
    per_param = [_grad_norm(p.grad.array, norm_type) for p in params]
    total = float(np.linalg.norm(np.array(per_param), ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total gradient norm is {total}; gradients contain NaN or inf")
    coefficient = max_norm / (total + 1e-6)
    if coefficient < 1 or math.isnan(coefficient):  # NaN spreads to every gradient, as in PyTorch
        with np.errstate(invalid="ignore"):  # inf * 0 = NaN is the documented result, not a surprise
            for p in params:
                p.grad.array *= p.grad.dtype.type(coefficient)
    return Tensor._wrap(np.array(total, dtype=params[0].grad.dtype))


def _one_device(op, params):
    """The device every gradient lives on (they are scaled together, so they must share one)."""
    where = params[0].grad.device
    for p in params:
        if p.grad.device is not where:
            raise RuntimeError(
                f"{op}: expected every gradient on one device, but found {where} and {p.grad.device}; "
                "move the parameters with .to(device) first"
            )
    return where


def _device_norm_term(k, grad, norm_type):
    """One gradient's share of the joint norm, a 0-d array on its device: Σ|g|^q, or max / min |g|
    for q = ±inf, or the count of non-zeros for q = 0; 0 for an empty gradient (as on the cpu)."""
    flat = k.reshape(grad, (-1,))
    dtype = flat.dtype.type
    if flat.size == 0:
        return k.zeros((), flat.dtype)
    if norm_type == 2.0:
        return k.sum(k.mul(flat, flat))
    if norm_type == 0.0:
        return k.sum(k.astype(k.not_equal(flat, dtype(0)), flat.dtype))
    magnitude = k.abs(flat)
    if norm_type == math.inf:
        return k.max(magnitude)
    if norm_type == -math.inf:
        return k.min(magnitude)
    return k.sum(magnitude if norm_type == 1.0 else k.power(magnitude, dtype(norm_type)))


def _clip_grad_norm_on_device(params, where, max_norm, norm_type, error_if_nonfinite):
    """clip_grad_norm_ for gradients on a device, in its kernels (the rule as on the cpu, above).

    The norm and the coefficient min(1, max_norm / (norm + 1e-6)) stay on the device and every
    gradient is multiplied by it (by 1 when nothing is clipped: exact), so nothing is read back
    unless error_if_nonfinite asks for the norm on the host. The sums run in the gradients' dtype
    (float32), in the device's order: the norm may differ from the cpu's float64-accumulated one
    by the rounding of a float32 sum of that many terms.
    """
    k = active_kernels[where]
    dtype = params[0].grad.dtype.type
    terms = k.stack([_device_norm_term(k, p.grad.array, norm_type) for p in params], 0)
    if norm_type == math.inf:
        total = k.max(terms)
    elif norm_type == -math.inf:
        total = k.min(terms)
    elif norm_type == 0.0:  # as on the cpu (and in PyTorch): the count of gradients with a non-zero entry
        total = k.sum(k.astype(k.not_equal(terms, dtype(0)), terms.dtype))
    elif norm_type == 2.0:
        total = k.sqrt(k.sum(terms))
    else:
        total = k.power(k.sum(terms), dtype(1 / norm_type))
    if error_if_nonfinite:
        value = float(k.to_numpy(total))
        if not math.isfinite(value):
            raise RuntimeError(f"clip_grad_norm_: the total gradient norm is {value}; gradients contain NaN or inf")
    coefficient = k.minimum(k.div(dtype(max_norm), k.add(total, dtype(1e-6))), dtype(1))  # NaN stays NaN
    for p in params:
        k.setitem(p.grad.array, Ellipsis, k.mul(p.grad.array, coefficient))
    return Tensor._make(total, device=where)


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element to [-clip_value, clip_value] (cruder than clipping the norm)."""
    if clip_value <= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be > 0, got {clip_value}")
    for p in _with_grads(parameters):  # in place, with the kernels of the device the gradient lives on
        k = active_kernels[p.grad.device]
        k.setitem(p.grad.array, Ellipsis, k.clip(p.grad.array, -clip_value, clip_value))
