"""16-bit conversions in C (csrc/convert.c), for compressing gradients before communication.

IEEE half precision uses the F16C / AVX-512 conversion instructions where the CPU has them;
the lecture's truncated 16-bit float keeps the top half of each float32's bits.
"""

import numpy as np

from minidl.backend.c import _ffi
from minidl.backend.c._reference import ref

MIN_CONVERT = 256  # elements: NumPy's astype is a slow per-element loop for float16


def _convert(c_name, ref_fn, x, in_dtype, out_dtype, in_ctype, out_ctype):
    if not _ffi.available or type(x) is not np.ndarray or x.dtype != in_dtype or x.size < MIN_CONVERT:
        return ref_fn(x)
    x = _ffi.contig(x)
    out = np.empty(x.shape, out_dtype)
    getattr(_ffi.lib, c_name)(_ffi.buf(x, in_ctype), _ffi.buf(out, out_ctype), x.size)
    return out


_F16, _U16 = np.dtype(np.float16), np.dtype(np.uint16)


def float32_to_float16(x):
    """IEEE half precision, round to nearest even (F16C / AVX-512 instructions when available)."""
    return _convert("mdk_f32_to_f16", ref.float32_to_float16, x, _ffi.F32, _F16, "float[]", "uint16_t[]")


def float16_to_float32(x):
    return _convert("mdk_f16_to_f32", ref.float16_to_float32, x, _F16, _ffi.F32, "uint16_t[]", "float[]")


def float32_to_truncated16(x):
    """The lecture's 16-bit float: keep the top 16 bits of each float32 (no rounding)."""
    return _convert("mdk_f32_to_trunc16", ref.float32_to_truncated16, x, _ffi.F32, _U16, "float[]", "uint16_t[]")


def truncated16_to_float32(x):
    return _convert("mdk_trunc16_to_f32", ref.truncated16_to_float32, x, _U16, _ffi.F32, "uint16_t[]", "float[]")


__all__ = ["float32_to_float16", "float16_to_float32", "float32_to_truncated16", "truncated16_to_float32"]
