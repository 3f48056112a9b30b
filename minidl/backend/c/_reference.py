"""The reference kernels, which the wrappers here call for what their C kernel does not take.

Every wrapper in this package calls its C kernel only when it pays and applies (float32 arrays,
sizes past a measured crossover, layouts the kernel reads) and hands everything else to the
reference definition, so results never depend on which path ran, only the speed does.

TRANSITIONAL (until the kernel contract of issue 10 lands): numpy_kernels still holds the
extras under their old names and has no convolution primitives; once contract.KernelSet
exists, `ref` is the NumPy kernel set with every extra filled in from composed.py.
"""

from minidl.backend import numpy_kernels

try:
    from minidl.backend.contract import KernelSet
except ImportError:
    import types

    ref = types.SimpleNamespace(**{k: v for k, v in vars(numpy_kernels).items() if not k.startswith("__")})
    ref.linear = lambda x, weight, bias=None, activation=None: numpy_kernels.linear_act(x, weight, bias, activation)
else:
    ref = KernelSet("numpy", numpy_kernels)
