"""Memory the C kernels read fastest: parameters start on a 64-byte boundary.

NumPy's own allocations are 16-byte aligned (large ones sit 16 bytes past a page start), so
every 64-byte AVX-512 load of such an array splits across two cache lines. The GEMM reads a
row-major B operand in place instead of packing it only when its rows are 64-byte aligned
(csrc/gemm_strategies.c): that is a layer's weight in its backward product dX = dY·W, so
parameters are allocated aligned (Parameter.empty asks the active kernel set's
`parameter_storage`).
"""

import numpy as np

from minidl.backend import memory


def parameter_storage(shape, dtype=np.float32):
    """New uninitialized C-contiguous memory for a Parameter, 64-byte aligned (memory.aligned_empty)."""
    return memory.aligned_empty(shape, dtype)


__all__ = ["parameter_storage"]
