"""Matrix products in C: matmul and the linear layer on the BLIS-style GEMM (csrc/gemm.c).

The GEMM reads any strides, so `a @ b.T` and `a.T @ b` (a linear layer's forward and
backward) run without transposed copies, and `linear` adds the bias and applies the
activation to each tile of the output while it is still in cache. Below a measured size
NumPy/OpenBLAS is faster (our packing costs more than its small-matrix path).
"""

import numpy as np

from minidl.backend.c import _ffi
from minidl.backend.c._reference import ref

# Crossovers (`python benchmarks/bench_kernels.py --crossover`; numbers in docs/kernels.md).
MIN_GEMM_FLOPS = 2 * 160**3  # 2*m*n*k: OpenBLAS wins below ~160^3 (its small-matrix path packs less)
# A linear layer's x @ W.T + b is cheaper for us than for NumPy, which runs the product
# and then a second pass for the bias: C wins from ~1 MFLOP (measured, numpy/C time:
# 128x512 -> 10 outputs 1.0, 64x128 -> 64 1.2, 16x512 -> 128 2.0; 64x32 -> 10 0.7).
MIN_LINEAR_FLOPS = 1_000_000
# ... except for skinny products, small only because one side is: a batch of 4-16 through a
# layer's backward (dZ @ W, dZ.T @ X) or a 1-example weight gradient (an outer product).
# OpenBLAS's small-matrix path is slow there (numpy/C time, W 512x784 parameter-aligned:
# dZ @ W 2.0x at 4 rows, 1.8x at 8, 2.0x at 16; dZ.T @ X 1.8x at 4 rows, 13x for one row),
# while with 1-2 rows its matrix-vector kernel wins (0.4-0.8x), so those stay on NumPy.
MIN_SKINNY_ROWS = 3  # min(m, n): below, NumPy's matrix-vector path
MIN_SKINNY_ELEMENTS = 1 << 16  # the largest of m*k, k*n, m*n: below, the product is just small


def _skinny(m, n, k):
    return min(m, n) >= MIN_SKINNY_ROWS and max(m * k, k * n, m * n) >= MIN_SKINNY_ELEMENTS


def _strides(a, b):
    """Element strides (rsa, csa, rsb, csb) of 2-D float32 arrays the C GEMM reads; None if it cannot.

    Called once per product (the Python around a C call is a few microseconds, a measurable
    part of a small layer's product).
    """
    if (
        type(a) is not np.ndarray or type(b) is not np.ndarray or a.dtype != _ffi.F32 or b.dtype != _ffi.F32
        or not _ffi.available
    ):  # fmt: skip
        return None
    (ra, ca), (rb, cb) = a.strides[-2:], b.strides[-2:]
    if ra % 4 or ca % 4 or rb % 4 or cb % 4:
        return None  # a view that is not a whole number of floats apart (a record field, say)
    return ra >> 2, ca >> 2, rb >> 2, cb >> 2


def sgemm(a, b, bias=None, act=0, strides=None):
    """C = act(a @ b + bias) for 2-D float32 views a (m, k), b (k, n), any strides, no copies."""
    m, k = a.shape
    n = b.shape[1]
    rsa, csa, rsb, csb = strides or _strides(a, b)
    out = np.empty((m, n), _ffi.F32)
    bias_ptr = _ffi.ffi.NULL if bias is None else _ffi.buf(bias)
    rc = _ffi.lib.mdk_sgemm(
        m, n, k, _ffi.strided_ptr(a), rsa, csa, _ffi.strided_ptr(b), rsb, csb, _ffi.buf(out), n, bias_ptr, act
    )
    if rc == _ffi.lib.MDK_ENOMEM:
        raise MemoryError(f"matmul: could not allocate packing buffers for a {m}x{k} @ {k}x{n} product")
    return out


def matmul(a, b, *args, **kwargs):
    """np.matmul; float32 products of matrices (and stacks of them) big enough to pay run in C."""
    # Cheapest tests first: most small products leave for NumPy after one multiply.
    if args or kwargs:
        return np.matmul(a, b, *args, **kwargs)
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        return np.matmul(a, b)  # vectors are memory-bound; errors get NumPy's message
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    strides = None if 2 * m * n * k < MIN_GEMM_FLOPS and not _skinny(m, n, k) else _strides(a, b)
    if strides is None:
        return np.matmul(a, b)
    if a.ndim == 2 and b.ndim == 2:
        return sgemm(a, b, strides=strides)
    return _batched_matmul(a, b, m, n, k)


def _batch_offsets(x, batch_shape):
    """Element offsets of each matrix of x broadcast to batch_shape (broadcast axes repeat)."""
    xb = np.broadcast_to(x, batch_shape + x.shape[-2:])
    strides = _ffi.elem_strides(xb)[:-2]
    offsets = np.zeros(batch_shape, np.int64)
    for axis, (size, stride) in enumerate(zip(batch_shape, strides)):
        shape = [1] * len(batch_shape)
        shape[axis] = size
        offsets = offsets + np.arange(size, dtype=np.int64).reshape(shape) * stride
    return np.ascontiguousarray(offsets.reshape(-1)), _ffi.elem_strides(xb)[-2:]


def _batched_matmul(a, b, m, n, k):
    if _ffi.elem_strides(a) is None or _ffi.elem_strides(b) is None:
        return np.matmul(a, b)  # a batch axis that is not a whole number of floats apart
    try:
        batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        return np.matmul(a, b)  # NumPy's error message
    batch = int(np.prod(batch_shape, dtype=np.int64))
    out = np.empty(batch_shape + (m, n), _ffi.F32)
    if out.size == 0:
        return np.matmul(a, b)
    a_off, (rsa, csa) = _batch_offsets(a, batch_shape)
    b_off, (rsb, csb) = _batch_offsets(b, batch_shape)
    i64 = "int64_t[]"
    rc = _ffi.lib.mdk_sgemm_batched(
        batch, m, n, k,
        _ffi.strided_ptr(a), _ffi.buf(a_off, i64), rsa, csa,
        _ffi.strided_ptr(b), _ffi.buf(b_off, i64), rsb, csb,
        _ffi.buf(out), m * n, n,
    )  # fmt: skip
    if rc == _ffi.lib.MDK_ENOMEM:
        raise MemoryError(f"matmul: could not allocate packing buffers for {batch} products {m}x{k} @ {k}x{n}")
    return out


def linear(x, weight, bias=None, activation=None):
    """act(x @ weight.T + bias) in one GEMM: W^T is read in place, and the bias and activation are
    applied to each tile of the output in the GEMM's epilogue, while it is in cache."""
    act = _ffi.ACTIVATIONS.get(activation)
    strides = None
    if (
        act is not None
        and x.ndim == 2
        and weight.ndim == 2
        and x.shape[1] == weight.shape[1]
        and 2 * x.shape[0] * weight.shape[0] * x.shape[1] >= MIN_LINEAR_FLOPS
        and (bias is None or (_ffi.is_f32(bias) and bias.shape == (weight.shape[0],)))
    ):
        strides = _strides(x, weight.T)
    if strides is None:
        return ref.linear(x, weight, bias, activation)
    if bias is not None:
        bias = _ffi.contig(bias)
    return sgemm(x, weight.T, bias, act, strides)


__all__ = ["matmul", "linear"]
