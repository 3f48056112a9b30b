"""Which SIMD path the C kernels run on: the best one the CPU supports, unless told otherwise.

AVX-512 > AVX2 > scalar on x86-64, NEON on aarch64 (csrc/dispatch.c asks the CPU when the
library loads). MINIDL_SIMD=scalar|avx2|avx512|neon forces one at import, with an error naming
the missing CPU features if this machine cannot run it; `set_simd_path()` changes it at run
time (the tests run every kernel on every path this way).
"""

import os

from minidl.backend.c import _ffi

# Path names and their numbers in csrc/minidl_kernels.h (MDK_SIMD_*).
SIMD_PATHS = {"scalar": 0, "avx2": 1, "avx512": 2, "neon": 3}


def simd_paths_built():
    """SIMD paths compiled into the library (whether or not this CPU can run them)."""
    if not _ffi.available:
        return []
    return [p for p, i in SIMD_PATHS.items() if _ffi.lib.mdk_simd_built(i)]


def simd_paths_supported():
    """SIMD paths this CPU can run, slowest first."""
    if not _ffi.available:
        return []
    return [p for p, i in SIMD_PATHS.items() if _ffi.lib.mdk_simd_supported(i)]


def simd_missing_features(path):
    """The CPU features `path` needs that this CPU lacks, e.g. 'avx512f,avx512bw' ('' if none)."""
    return _ffi.ffi.string(_ffi.lib.mdk_simd_missing(SIMD_PATHS[path])).decode()


def simd_path():
    """The SIMD path the kernels run on now ('scalar', 'avx2', 'avx512' or 'neon'); None if not built."""
    if not _ffi.available:
        return None
    return _ffi.ffi.string(_ffi.lib.mdk_simd_name(_ffi.lib.mdk_simd_path())).decode()


def set_simd_path(path):
    """Force a SIMD path for every C kernel; raises if it is unknown, not built, or the CPU lacks it."""
    if not _ffi.available:
        raise RuntimeError(f"set_simd_path: the C kernels are not available: {_ffi.unavailable_reason}")
    if path not in SIMD_PATHS:
        raise ValueError(f"set_simd_path: unknown SIMD path {path!r}; expected one of {sorted(SIMD_PATHS)}")
    lib = _ffi.lib
    rc = lib.mdk_set_simd_path(SIMD_PATHS[path])
    if rc == lib.MDK_ENOT_BUILT:
        raise RuntimeError(
            f"SIMD path {path!r} is not compiled into minidl's C kernels on this architecture "
            f"(built: {', '.join(simd_paths_built())})"
        )
    if rc == lib.MDK_ENOT_SUPPORTED:
        raise RuntimeError(
            f"SIMD path {path!r} cannot run on this CPU: it lacks {simd_missing_features(path)} "
            f"(this CPU supports: {', '.join(simd_paths_supported())})"
        )
    if rc != 0:
        raise RuntimeError(f"set_simd_path({path!r}) failed with code {rc}")


def apply_env_simd():
    """Honour MINIDL_SIMD (called once, when the package is imported)."""
    wanted = os.environ.get("MINIDL_SIMD", "").strip().lower()
    if wanted in ("", "auto"):
        return
    try:
        set_simd_path(wanted)
    except (RuntimeError, ValueError) as exc:
        raise RuntimeError(f"MINIDL_SIMD={wanted}: {exc}. Unset MINIDL_SIMD or choose a supported path.") from None
