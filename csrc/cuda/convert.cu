/*
 * convert.cu -- float32 <-> 16-bit floats, for sending gradients in half the bytes.
 *
 * IEEE half (1 sign, 5 exponent, 10 mantissa bits) is converted with integer operations
 * that show the rounding: keep the top 10 of float32's 23 mantissa bits and round the 13
 * dropped bits to nearest, ties to even.  (CUDA has __float2half_rn for this; writing it
 * out keeps both builds identical and is the lecture's point.)  The lecture's "truncated"
 * 16-bit float is simpler still: the top 16 bits of the float32, no rounding at all.
 */
#include "mdc_cuda.cuh"

static const int THREADS = 256;

__device__ __forceinline__ uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
__device__ __forceinline__ float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round q + (dropped / 2^shift) to an integer, ties to even. */
__device__ __forceinline__ uint32_t round_shift(uint32_t value, int shift) {
    const uint32_t q = value >> shift, rest = value & ((1u << shift) - 1), half = 1u << (shift - 1);
    return q + (rest > half || (rest == half && (q & 1u)));
}

__device__ __forceinline__ uint16_t half_from_float(float f) {
    const uint32_t x = float_bits(f), sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a >= 0x7f800000u)  // inf stays inf; NaN stays a (quiet) NaN with the top payload bits
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x0200u | ((a >> 13) & 0x3ffu) : 0u));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // >= 65520 rounds past 65504: inf
    if (a < 0x38800000u) {  // below 2^-14: a subnormal half, in units of 2^-24
        const int shift = 126 - (int)(a >> 23);  // value = mantissa * 2^(e-150) = (mantissa >> shift) units
        if (shift > 24) return (uint16_t)sign;    // less than half a unit: zero
        return (uint16_t)(sign | round_shift((a & 0x7fffffu) | 0x800000u, shift));
    }
    // A normal half: re-bias the exponent (127 -> 15) and round off 13 mantissa bits; a carry
    // out of the mantissa correctly bumps the exponent.
    return (uint16_t)(sign | round_shift(a - ((127u - 15u) << 23), 13));
}

__device__ __forceinline__ float float_from_half(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) return bits_float(sign | 0x7f800000u | (m << 13));  // inf, NaN
    if (e == 0) {                                                        // zero or subnormal: m * 2^-24 exactly
        const float magnitude = (float)m * 5.9604644775390625e-8f;
        return bits_float(sign | float_bits(magnitude));
    }
    return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

__global__ void f32_to_f16_kernel(dptr<const float> x, dptr<uint16_t> out, int64_t n) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = half_from_float(x[i]);
}
__global__ void f16_to_f32_kernel(dptr<const uint16_t> x, dptr<float> out, int64_t n) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = float_from_half(x[i]);
}
__global__ void f32_to_trunc16_kernel(dptr<const float> x, dptr<uint16_t> out, int64_t n) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = (uint16_t)(float_bits(x[i]) >> 16);
}
__global__ void trunc16_to_f32_kernel(dptr<const uint16_t> x, dptr<float> out, int64_t n) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = bits_float((uint32_t)x[i] << 16);
}

extern "C" {

#define CONVERT(name, kernel, in_t, out_t)                                                  \
    int name(const in_t *x, out_t *out, int64_t n) {                                        \
        if (n == 0) return 0;                                                               \
        MDC_LAUNCH(kernel, grid_for(n, THREADS), THREADS, x, out, n);                       \
        return launch_status();                                                             \
    }
CONVERT(mdc_f32_to_f16, f32_to_f16_kernel, float, uint16_t)
CONVERT(mdc_f16_to_f32, f16_to_f32_kernel, uint16_t, float)
CONVERT(mdc_f32_to_trunc16, f32_to_trunc16_kernel, float, uint16_t)
CONVERT(mdc_trunc16_to_f32, trunc16_to_f32_kernel, uint16_t, float)

}  // extern "C"
