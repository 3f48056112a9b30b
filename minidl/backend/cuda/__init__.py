"""minidl's CUDA device below the kernel seam: hand-written kernels (csrc/cuda/*.cu) through cffi.

The same .cu sources build twice behind one C ABI (csrc/cuda/minidl_cuda.h): with nvcc for a
real GPU, and with the system C++ compiler against our CUDA emulator (csrc/cuda/emu/), which
runs the same kernels on the CPU, slowly and exactly, with printf, gdb and a memory checker.

    from minidl.backend.cuda import DeviceArray, kernels, runtime
    x = DeviceArray.from_numpy(np.ones((3, 4), np.float32))
    y = kernels.softmax(kernels.mul(x, 2.0))      # the NumPy kernels' names and arguments
    y.to_numpy()

`runtime` picks the build (MINIDL_CUDA=auto|real|emulate|off) and turns on the checker
(MINIDL_CUDA_CHECK=1). `kernel_set` is the kernel contract on DeviceArrays, what the "cuda"
device computes with (minidl.backend.enable_cuda registers it). Nothing here is imported by
`import minidl`: the first use of "cuda" loads it.
"""

from minidl.backend.cuda.array import DeviceArray
from minidl.backend.cuda.runtime import (
    CudaCheckError,
    CudaEmulatorWarning,
    CudaError,
    CudaUnavailable,
    build,
    is_available,
    synchronize,
)
