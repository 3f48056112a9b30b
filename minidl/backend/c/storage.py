"""Memory the C kernels read fastest: parameters start on a 64-byte boundary.

NumPy's own allocations are 16-byte aligned (large ones sit 16 bytes past a page start), so
every 64-byte AVX-512 load of such an array splits across two cache lines. The GEMM reads a
row-major B operand in place instead of packing it only when its rows are 64-byte aligned
(csrc/gemm_strategies.c): that is a layer's weight in its backward product dX = dY·W, so
parameters are allocated here, aligned (Parameter.empty asks the active kernel set's
`parameter_storage`).
"""

import operator

import numpy as np

ALIGNMENT = 64  # bytes: one cache line, one AVX-512 vector


def aligned_empty(shape, dtype=np.float32, op="aligned_empty"):
    """An uninitialized C-contiguous array whose first element starts on an ALIGNMENT-byte boundary.

    We over-allocate raw bytes and start the array at the first aligned one; the array keeps
    the raw buffer alive (its .base).
    """
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise TypeError(f"{op}: dtype {dtype} holds Python objects, which cannot live in raw aligned memory")
    try:
        shape = (operator.index(shape),)  # an int, NumPy's included
    except TypeError:
        shape = tuple(operator.index(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"{op}: negative dimensions are not allowed, got shape {shape}")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def parameter_storage(shape, dtype=np.float32):
    """New uninitialized C-contiguous memory for a Parameter, 64-byte aligned (see the module docstring)."""
    return aligned_empty(shape, dtype, op="parameter_storage")


__all__ = ["parameter_storage"]
