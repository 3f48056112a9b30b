"""Parameter: a Tensor that a Module learns.

Assigning a Parameter to a Module attribute registers it, so `module.parameters()`
finds it and the optimizer updates it. It requires grad unless told otherwise.
"""

import numpy as np

from minidl.backend import get_kernels
from minidl.tensor import Tensor, _device, _to_array


class Parameter(Tensor):
    """A learnable tensor: requires_grad=True by default, and registered when set on a Module.

    Its array is always C-contiguous: optimizers update parameters in place, which the kernels
    do on contiguous memory. A transposed view is copied once here; contiguous data is shared,
    not copied (as nn.Parameter(tensor) shares in PyTorch).
    """

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor) and data.device != "cpu":  # a device tensor stays on its device
            self._init(data.array.contiguous(), requires_grad, data.device, None)
            return
        data = _to_array(data)  # a Tensor's or ndarray's dtype is kept (Python floats become float32)
        if not data.flags.c_contiguous:
            data = data.copy(order="C")  # not np.ascontiguousarray: it would make a 0-d array 1-d
        super().__init__(data, requires_grad=requires_grad, dtype=data.dtype)

    @classmethod
    def empty(cls, shape, dtype=np.float32, device="cpu"):
        """A new parameter of uninitialized values (an init function fills them).

        The memory comes from the device's kernel set (`parameter_storage`), which may lay
        it out the way its kernels like best.
        """
        storage = get_kernels(device).parameter_storage(shape, dtype)
        if isinstance(storage, np.ndarray):
            return cls(storage)
        return cls(Tensor._make(storage, device=_device(device, "Parameter.empty")))

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def check_sizes(layer, **sizes):
    """Raise ValueError naming the layer and argument if any size is not a positive integer."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
