"""minidl: a small deep learning framework to read, step through, and train with.

import minidl
x = minidl.randn(3, requires_grad=True)
y = (x * x).sum()
y.backward()          # x.grad == 2 * x
"""

from minidl import autograd, ops, random
from minidl.autograd import Function, enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from minidl.backend import available_kernels, get_kernels, kernels_name, set_kernels
from minidl.creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from minidl.ops import *  # noqa: F403
from minidl.random import manual_seed
from minidl.tensor import Tensor, bool_, float16, float32, float64, int32, int64

__version__ = "0.1.0"

# The training stack: layers, optimizers, data, checkpoints.
from minidl import data, nn, optim  # noqa: E402
from minidl.checkpoint import load, save  # noqa: E402


def __getattr__(name):
    """`minidl.debug` without `import minidl.debug`: the debugger is imported on first use."""
    if name == "debug":
        import importlib

        return importlib.import_module("minidl.debug")
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")
