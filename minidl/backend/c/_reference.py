"""The reference kernels, which the wrappers here call for what their C kernel does not take.

Every wrapper in this package calls its C kernel only when it pays and applies (float32 arrays,
sizes past a measured crossover, layouts the kernel reads) and hands everything else to the
reference definition, so results never depend on which path ran, only the speed does.
"""

from minidl.backend import numpy_kernels as ref  # noqa: F401 - re-exported for the kernel modules
