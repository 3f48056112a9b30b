"""Parameter: a Tensor that a Module learns.

Assigning a Parameter to a Module attribute registers it, so `module.parameters()`
finds it and the optimizer updates it. It requires grad unless told otherwise.
"""

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

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
