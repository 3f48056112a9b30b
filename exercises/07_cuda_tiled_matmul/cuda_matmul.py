"""Python face of matmul.cu: copy A and B to (emulated) device memory, launch, copy C back.

    from cuda_matmul import matmul
    C = matmul(A, B, kernel="tiled")              # or kernel="naive"
    C = matmul(A, B, kernel="tiled", check=True)  # with the emulator's checker on

check=True (the default when MINIDL_CUDA_CHECK=1 is set) turns on the emulator's checker:
out-of-bounds accesses, races on MDC_SHARED arrays (a missing __syncthreads()) and reads of
shared memory nobody wrote raise CudaCheckError with the checker's report.
"""

import os

import numpy as np
from matmul_build import load

KERNELS = ("naive", "tiled")


class CudaError(RuntimeError):
    """A launch or a copy failed."""


class CudaCheckError(CudaError):
    """The emulator's checker found a bad memory access or a race."""


def _check_default():
    return os.environ.get("MINIDL_CUDA_CHECK", "") not in ("", "0")


def matmul(A, B, kernel="tiled", check=None):
    """C = A @ B for float32 matrices, computed by one of matmul.cu's kernels."""
    if kernel not in KERNELS:
        raise ValueError(f"matmul: kernel must be one of {KERNELS}, got {kernel!r}")
    A = np.ascontiguousarray(A, dtype=np.float32)
    B = np.ascontiguousarray(B, dtype=np.float32)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
        raise ValueError(f"matmul: shapes {A.shape} and {B.shape} do not align")
    (M, K), N = A.shape, B.shape[1]
    if min(M, N, K) == 0:
        raise ValueError(f"matmul: empty matrices {A.shape} @ {B.shape}")
    check = _check_default() if check is None else check
    ffi, lib = load()
    C = np.empty((M, N), dtype=np.float32)
    pointers = []
    try:
        for array in (A, B, C):
            p = ffi.new("void **")
            _ok(ffi, lib, lib.mdc_malloc(p, array.nbytes), "mdc_malloc")
            pointers.append(p[0])
        dA, dB, dC = (ffi.cast("float *", p) for p in pointers)
        _ok(ffi, lib, lib.mdc_memcpy_htod(dA, ffi.from_buffer(A), A.nbytes), "copy A")
        _ok(ffi, lib, lib.mdc_memcpy_htod(dB, ffi.from_buffer(B), B.nbytes), "copy B")
        _ok(ffi, lib, lib.mdc_memset(dC, 0xFF, C.nbytes), "memset C")  # NaN: unwritten elements show
        lib.mdc_emu_set_check(1 if check else 0)
        lib.mdc_emu_take_reports(ffi.NULL, 0)  # forget anything from earlier launches
        launch = lib.ex_sgemm_naive if kernel == "naive" else lib.ex_sgemm_tiled
        rc = launch(M, N, K, dA, dB, dC)
        if rc == 0:
            rc = lib.mdc_synchronize()
        buf = ffi.new("char[]", 1 << 16)
        reports = ffi.string(buf).decode().splitlines() if lib.mdc_emu_take_reports(buf, len(buf)) else []
        lib.mdc_emu_set_check(0)
        if reports:
            raise CudaCheckError(f"sgemm_{kernel}: the CUDA emulator's checker reports:\n  " + "\n  ".join(reports))
        _ok(ffi, lib, rc, f"sgemm_{kernel}")
        _ok(ffi, lib, lib.mdc_memcpy_dtoh(ffi.from_buffer(C), dC, C.nbytes), "copy C")
    finally:
        for p in pointers:
            lib.mdc_free(p)
    return C


def _ok(ffi, lib, rc, what):
    if rc != 0:
        raise CudaError(f"{what}: {ffi.string(lib.mdc_error_string(rc)).decode()} (error {rc})")
