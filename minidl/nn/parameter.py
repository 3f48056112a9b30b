"""Parameter: a Tensor that a Module learns.

Assigning a Parameter to a Module attribute registers it, so `module.parameters()`
finds it and the optimizer updates it. It requires grad unless told otherwise.
"""

from minidl.tensor import Tensor


class Parameter(Tensor):
    """A learnable tensor: requires_grad=True by default, and registered when set on a Module."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
