"""The reference kernel set, which the wrappers here call for what their C kernel does not take.

Every wrapper in this package calls its C kernel only when it pays and applies (float32 arrays,
sizes past a measured crossover, layouts and geometries the kernel reads) and hands everything
else to the reference: NumPy's core with every optional extra composed from it (contract.py,
composed.py). So results never depend on which path ran, only the speed does.
"""

from minidl.backend import numpy_kernels
from minidl.backend.contract import KernelSet

ref = KernelSet("numpy", numpy_kernels)
