"""minidl.cuda: is a CUDA device there, and what is it doing? As torch.cuda, so PyTorch's device boilerplate runs:

    device = minidl.device("cuda" if minidl.cuda.is_available() else "cpu")

"cuda" is available when a CUDA build loads: the real one on a machine with a GPU and nvcc's
library, or the emulator (the same kernels run on the CPU, slowly and exactly), which says so
once when it is first used. Nothing is loaded by `import minidl`; the first call here, or the
first tensor put on "cuda", loads it. MINIDL_CUDA=auto|real|emulate|off chooses (docs/cuda.md).

Where a primitive has no CUDA kernel for its case (float64 arithmetic, fancy indexing, ...),
the "cuda" kernel set computes it on the host and copies the result back: host_round_trips()
says which primitives did so and how often, so a training loop can check it makes none.
"""

from minidl.backend import CUDA, active_kernels, enable_cuda


def is_available():
    """Whether tensors can be made on (and moved to) the "cuda" device; loads the CUDA build the first time."""
    return CUDA in active_kernels or enable_cuda() is None


def device_count():
    """How many cuda devices minidl drives (0 or 1)."""
    return int(is_available())


def unavailable_reason():
    """Why "cuda" cannot be used here (None when it can)."""
    return None if CUDA in active_kernels else enable_cuda()


def build():
    """ "real" (a GPU) or "emulated" (the CUDA emulator on the CPU); raises if no build can run."""
    _require("build")
    from minidl.backend.cuda import runtime

    return runtime.build()


def synchronize():
    """Wait for every kernel launched so far (launches are asynchronous on a GPU)."""
    _require("synchronize")
    from minidl.backend.cuda import runtime

    runtime.synchronize()


def host_round_trips():
    """{primitive: count} of the computations the cuda kernel set did on the host since the last reset.

    Each one copied its operands to the host, ran the NumPy reference, and copied the result
    back (README lists which cases do). An empty dict: everything ran in CUDA kernels.
    """
    from minidl.backend.cuda import kernel_set

    return kernel_set.host_round_trips()


def reset_host_round_trips():
    from minidl.backend.cuda import kernel_set

    kernel_set.reset_host_round_trips()


def _require(what):
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"minidl.cuda.{what}: the cuda device is not available: {reason}")
