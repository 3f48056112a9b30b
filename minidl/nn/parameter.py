"""Parameter: a Tensor that a Module learns.

Assigning a Parameter to a Module attribute registers it, so `module.parameters()`
finds it and the optimizer updates it. It requires grad unless told otherwise.
"""

import operator

import numpy as np

from minidl.tensor import Tensor


class Parameter(Tensor):
    """A learnable tensor: requires_grad=True by default, and registered when set on a Module.

    Its array is always C-contiguous: optimizers update parameters in place, and the C update
    kernels can only do that on contiguous memory. A transposed view is copied once here;
    contiguous data is shared, not copied (as nn.Parameter(tensor) shares in PyTorch).
    """

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        if isinstance(data, np.ndarray) and not data.flags.c_contiguous:
            data = data.copy(order="C")  # not np.ascontiguousarray: it would make a 0-d array 1-d
        super().__init__(data, requires_grad=requires_grad)

    @classmethod
    def empty(cls, shape, dtype=np.float32):
        """A new parameter of uninitialized values (an init function fills them), 64-byte aligned.

        The alignment is for speed only: the C GEMM reads an aligned weight matrix in place
        where it would otherwise copy it (dX = dY·W in a layer's backward; see csrc/gemm.c).
        """
        return cls(aligned_empty(shape, dtype))

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def check_sizes(layer, **sizes):
    """Raise ValueError naming the layer and argument if any size is not a positive integer."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")


ALIGNMENT = 64  # bytes: one cache line, one AVX-512 vector


def aligned_empty(shape, dtype=np.float32):
    """An uninitialized C-contiguous array whose first element starts on an ALIGNMENT-byte boundary.

    NumPy's own allocations are 16-byte aligned (large ones sit 16 bytes past a page start),
    so we over-allocate raw bytes and start the array at the first aligned one.
    """
    dtype = np.dtype(dtype)
    try:
        shape = (operator.index(shape),)  # an int, NumPy's included
    except TypeError:
        shape = tuple(operator.index(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"aligned_empty: negative dimensions are not allowed, got shape {shape}")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + nbytes].view(dtype).reshape(shape)
