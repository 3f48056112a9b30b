"""minidl.cuda: is a CUDA device there? As torch.cuda, so PyTorch's device boilerplate runs:

    device = minidl.device("cuda" if minidl.cuda.is_available() else "cpu")

A device is available when the backend has a kernel set registered for it
(minidl.backend.active_kernels). The CUDA kernels exist (minidl.backend.cuda) but are not
yet registered as the "cuda" device, so for now the answer is False everywhere.
"""

from minidl.backend import active_kernels
from minidl.backend.device import device


def is_available():
    """Whether tensors can be made on (and moved to) the "cuda" device."""
    return device("cuda") in active_kernels


def device_count():
    """How many cuda devices are registered (0 or 1)."""
    return int(is_available())
