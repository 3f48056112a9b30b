"""The compiled C library and the helpers every wrapper in this package uses to call it.

`lib` and `ffi` come from minidl.backend._ckernels, which _build_ckernels.py compiles from csrc/
with cffi. The kernel modules look them up here at call time (`_ffi.lib.mdk_...`), so a test can
put a recording spy or an instrumented (ASan) build in their place once, for every kernel.

Calling convention: arrays go to C without copies, as pointers into their memory
(`ffi.from_buffer` for contiguous ones; the GEMM also takes strided views, so `W.T` is free).
cffi's out-of-line API mode wraps every C call in Py_BEGIN/END_ALLOW_THREADS (see the
generated _ckernels.c), so the GIL is released while a kernel runs.
"""

import numpy as np

try:
    from minidl.backend._ckernels import ffi, lib
except ImportError as exc:  # not built (no compiler at install time) or built for another Python
    ffi = lib = None
    available = False
    unavailable_reason = f"minidl.backend._ckernels is not built ({exc})"
else:
    available = True
    unavailable_reason = None

F32 = np.dtype(np.float32)
# The activation codes of csrc/minidl_kernels.h (MDK_ACT_*).
ACTIVATIONS = {None: 0, "none": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


def is_f32(*arrays):
    """All of them NumPy float32 arrays (not subclasses, not other dtypes): what the C kernels take."""
    return all(type(a) is np.ndarray and a.dtype == F32 for a in arrays)


def buf(a, ctype="float[]"):
    """A zero-copy pointer to a C-contiguous array's memory."""
    return ffi.from_buffer(ctype, a)


def contig(a):
    """a itself if C-contiguous, else a contiguous copy (for kernels that only read a)."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def strided_ptr(a):
    """Pointer to element [0, 0, ...] of a possibly strided view (used by the GEMM).

    Contiguous arrays and their transposes (the common cases: W and W.T) go through
    ffi.from_buffer, ~4x cheaper than a.ctypes.data, which serves everything else.
    """
    if a.flags.c_contiguous:
        return ffi.from_buffer("float[]", a)
    if a.flags.f_contiguous:
        return ffi.from_buffer("float[]", a.T)  # same first element, C-contiguous view
    return ffi.cast("float *", a.ctypes.data)


def elem_strides(a):
    """Strides in elements, or None if some stride is not a whole number of floats."""
    strides = a.strides
    for s in strides:
        if s % 4:
            return None
    return tuple(s // 4 for s in strides)


def require_inplace(kernel, arg, a):
    """In-place kernels write through the pointer: the array must be float32 and C-contiguous."""
    if type(a) is not np.ndarray or a.dtype != F32 or not a.flags.c_contiguous or not a.flags.writeable:
        what = type(a).__name__ if type(a) is not np.ndarray else f"{a.dtype} array with strides {a.strides}"
        raise ValueError(
            f"{kernel}: {arg} is updated in place by the C kernel and must be a writeable, C-contiguous "
            f"float32 array (got a {what}); copying it would silently lose the update. "
            "Pass np.ascontiguousarray(...) and copy the result back, or use the NumPy kernels."
        )
