"""minidl: a small deep learning framework to read, step through, and train with.

import minidl
x = minidl.randn(3, requires_grad=True)
y = (x * x).sum()
y.backward()          # x.grad == 2 * x
"""

try:
    from minidl import backend  # picks the kernels: reads MINIDL_KERNELS and MINIDL_SIMD
except (RuntimeError, ValueError) as _error:
    # A bad MINIDL_KERNELS / MINIDL_SIMD value. The `minidl` command turns it into one line
    # and exit status 2 (minidl/cli.py); a program importing minidl gets the exception.
    from minidl.cli import exit_on_environment_error

    exit_on_environment_error(_error)
    raise

from minidl import autograd, autograd_functional, ops, random
from minidl.autograd import Function, grad, is_grad_enabled, set_grad_enabled
from minidl.backend import available_kernels, get_kernels, kernels_name, set_kernels
from minidl.backend.device import device
from minidl.creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from minidl.grad_mode import enable_grad, no_grad
from minidl.ops import *  # noqa: F403
from minidl.random import manual_seed
from minidl.tensor import (
    Tensor,
    bool_,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    uint8,
)

# PyTorch's other names for the dtypes: minidl.long, minidl.float, ... (inside this module they
# shadow the builtins float, int and bool, which is why they come last, as in torch).
half, double, short, long = float16, float64, int16, int64
float, int, bool = float32, int32, bool_  # noqa: A001

# minidl.autograd is a module, not a package: give it its `functional` (vjp, jvp, hvp, hessian...) as
# an attribute, and register the name so `import minidl.autograd.functional` works as in PyTorch.
autograd.functional = autograd_functional
__import__("sys").modules["minidl.autograd.functional"] = autograd_functional

__version__ = "0.1.0"

# The training stack: layers, optimizers, data, checkpoints; and `minidl train` as a library,
# minidl.training (fit, the model recipes, plots; matplotlib only when plotting).
from minidl import cuda, data, nn, optim, training, utils  # noqa: E402
from minidl.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from minidl.serialization import load, save  # noqa: E402


def __getattr__(name):
    """`minidl.debug` without `import minidl.debug`: the debugger is imported on first use."""
    if name == "debug":
        import importlib

        return importlib.import_module("minidl.debug")
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")
