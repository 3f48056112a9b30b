"""Parameter: a Tensor that a Module learns.

Assigning a Parameter to a Module attribute registers it, so `module.parameters()`
finds it and the optimizer updates it. It requires grad unless told otherwise.
"""

import numpy as np

from minidl.backend import get_kernels
from minidl.tensor import Tensor


class Parameter(Tensor):
    """A learnable tensor: requires_grad=True by default, and registered when set on a Module.

    Its array is always C-contiguous: optimizers update parameters in place, which the kernels
    do on contiguous memory. A transposed view is copied once here; contiguous data is shared,
    not copied (as nn.Parameter(tensor) shares in PyTorch).
    """

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        if isinstance(data, np.ndarray) and not data.flags.c_contiguous:
            data = data.copy(order="C")  # not np.ascontiguousarray: it would make a 0-d array 1-d
        super().__init__(data, requires_grad=requires_grad)

    @classmethod
    def empty(cls, shape, dtype=np.float32, device="cpu"):
        """A new parameter of uninitialized values (an init function fills them).

        The memory comes from the device's kernel set (`parameter_storage`), which may lay
        it out the way its kernels like best.
        """
        return cls(get_kernels(device).parameter_storage(shape, dtype))

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def check_sizes(layer, **sizes):
    """Raise ValueError naming the layer and argument if any size is not a positive integer."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
