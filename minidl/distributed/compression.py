"""Compression of gradient and parameter transfers: none, IEEE fp16, and the lectures' 16-bit float.

"For sending parameter values over network, we often use lower precision than floats:
16-bit 'floats': just truncate the mantissa (don't even bother with correct rounding)."
A float32 is 1 sign bit, 8 exponent bits and 23 mantissa bits; the truncated 16-bit float
keeps the top 16 bits (sign, the whole exponent, 7 mantissa bits), so it has float32's
range and a relative error below 2⁻⁷ (it rounds toward zero). IEEE fp16 keeps 10 mantissa
bits (relative error ≤ 2⁻¹¹, rounded to nearest) but only 5 exponent bits: values above
65504 overflow to inf and values below about 6e-8 flush to zero.

The conversions run on the kernel set (`minidl.backend.get_kernels()`), C SIMD when built.
A Compressor also counts the bytes it encoded, which is what a transport sends. No MPI here.
"""

import numpy as np

from minidl.backend import get_kernels


class Compressor:
    """encode(float32 array) -> wire array; decode(wire array) -> float32 array. Counts bytes encoded."""

    name = "none"
    wire_dtype = np.dtype(np.float32)
    # Largest relative error |decode(encode(x)) - x| / |x| for x in the format's normal range.
    relative_error = 0.0

    def __init__(self):
        self.bytes_encoded = 0

    def encode(self, values):
        wire = self._encode(_float32(values, f"{self.name}.encode"))
        self.bytes_encoded += wire.nbytes
        return wire

    def decode(self, wire):
        if wire.dtype != self.wire_dtype:
            raise TypeError(f"{self.name}.decode: expected a {self.wire_dtype} array, got {wire.dtype}")
        return self._decode(wire)

    def wire_nbytes(self, count):
        """Bytes on the wire for `count` float32 values."""
        return count * self.wire_dtype.itemsize

    def empty_wire(self, count):
        """A receive buffer for `count` encoded values."""
        return np.empty(count, self.wire_dtype)

    def _encode(self, values):
        return values

    def _decode(self, wire):
        return wire

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}: {self.bytes_encoded} bytes encoded>"


class NoCompression(Compressor):
    """float32 as it is: 4 bytes a value."""


class FP16Compressor(Compressor):
    """IEEE half precision: 2 bytes a value, round to nearest even, 10 mantissa bits, max 65504."""

    name = "fp16"
    wire_dtype = np.dtype(np.float16)
    relative_error = 2.0**-11  # half a unit in the last place of a 10-bit mantissa

    def _encode(self, values):
        return get_kernels().float32_to_float16(values)

    def _decode(self, wire):
        return get_kernels().float16_to_float32(wire)


class Truncated16Compressor(Compressor):
    """The lecture's 16-bit float: the top 16 bits of a float32 (bfloat16 without rounding), sent as uint16."""

    name = "trunc16"
    wire_dtype = np.dtype(np.uint16)
    relative_error = 2.0**-7  # 7 mantissa bits kept, the rest cut off (rounding toward zero)

    def _encode(self, values):
        return get_kernels().float32_to_truncated16(values)

    def _decode(self, wire):
        return get_kernels().truncated16_to_float32(wire)


COMPRESSORS = {"none": NoCompression, "fp16": FP16Compressor, "trunc16": Truncated16Compressor}


def get_compressor(name):
    """A new Compressor for 'none', 'fp16' or 'trunc16' (the truncated 16-bit float)."""
    if isinstance(name, Compressor):
        return name
    try:
        return COMPRESSORS[name]()
    except (KeyError, TypeError):
        raise ValueError(f"compression: unknown method {name!r}; expected one of {sorted(COMPRESSORS)}") from None


def _float32(values, where):
    values = np.asarray(values)
    if values.dtype != np.float32:
        raise TypeError(f"{where}: expected a float32 array, got {values.dtype}")
    return np.ascontiguousarray(values)
