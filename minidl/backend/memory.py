"""Keep freed activation memory for reuse instead of handing it back to the OS (glibc only).

A training step allocates and frees the same big arrays every step: im2col columns, layer
outputs, gradients (megabytes each). glibc's malloc serves big requests with fresh mmap()
pages and returns freed memory to the system, so the next step touches brand-new pages
and pays a page fault per 4 KiB: measured 6300 faults per step of bench_train's CNN, about
a fifth of its time (39 -> 32 ms per step once the memory is kept). PyTorch avoids the same
cost with its own allocator; we ask malloc to keep freed memory instead:

    M_MMAP_THRESHOLD 64 MiB  requests below this come from the heap, not fresh mmap pages
    M_TRIM_THRESHOLD 256 MiB free memory at the top of the heap is kept up to this much

The price is that a process may hold on to up to that much freed memory. Set
MINIDL_MALLOC_TUNING=0 before importing minidl to leave malloc as it is. Other C libraries
(musl, macOS, Windows) are left alone.
"""

import ctypes
import operator
import os
import platform

import numpy as np

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20

tuned = False  # whether tune_malloc() changed anything in this process


def tune_malloc():
    """Apply the settings above once, if the C library is glibc and MINIDL_MALLOC_TUNING is not 0."""
    global tuned
    if tuned or os.environ.get("MINIDL_MALLOC_TUNING", "1").strip() == "0":
        return tuned
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    tuned = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return tuned


ALIGNMENT = 64  # bytes: one cache line, one AVX-512 vector


def aligned_empty(shape, dtype=np.float32):
    """An uninitialized C-contiguous array whose first element starts on an ALIGNMENT-byte boundary.

    NumPy's own allocations are 16-byte aligned (large ones sit 16 bytes past a page start),
    so we over-allocate raw bytes and start the array at the first aligned one.
    """
    dtype = np.dtype(dtype)
    try:
        shape = (operator.index(shape),)  # an int, NumPy's included
    except TypeError:
        shape = tuple(operator.index(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"aligned_empty: negative dimensions are not allowed, got shape {shape}")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + nbytes].view(dtype).reshape(shape)
