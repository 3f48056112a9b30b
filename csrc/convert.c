/*
 * convert.c -- float32 <-> 16-bit floats, for sending gradients and weights
 * over the network in half the bytes (the lecture on reduced precision).
 *
 * Two formats:
 *   - IEEE half precision (fp16): 1 sign, 5 exponent, 10 mantissa bits,
 *     rounded to nearest even -- what np.float16 and GPUs use.  x86 has had an
 *     instruction for it since Ivy Bridge (F16C: vcvtps2ph / vcvtph2ps); the
 *     scalar path does the same rounding with integer arithmetic.
 *   - "truncated 16-bit": the lecture's trick, "just truncate the mantissa":
 *     keep the top 16 bits of the float32 (sign, the full 8-bit exponent, 7
 *     mantissa bits; the layout bfloat16 later made standard, but without
 *     rounding).  Same range as float32, so no overflow handling at all.
 */
#include "mdk_internal.h"

#if MDK_HAVE_X86
#include <immintrin.h>
#endif

/* ---- scalar reference -------------------------------------------------- */
static uint16_t f32_to_f16_one(float f)
{
    const uint32_t u = mdk_f2u(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf stays inf; NaN becomes a quiet NaN, keeping the top payload bits */
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0u));
    if (a >= 0x477ff000u) /* >= 65520 rounds past the largest half (65504): inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) {
        /* Below 2^-14 the half is subnormal, a multiple of 2^-24.  Adding 0.5
         * (whose ulp is 2^-24) makes the FPU round to that grid, to nearest
         * even; the low bits of the sum are then the half's mantissa. */
        return (uint16_t)(sign | (mdk_f2u(mdk_u2f(a) + 0.5f) - 0x3f000000u));
    }
    /* Normal: rebias the exponent (127 -> 15, i.e. subtract 112 << 23) and round
     * the 13 dropped bits to nearest even; a carry into the exponent is right. */
    a += 0xc8000fffu + ((a >> 13) & 1u);
    return (uint16_t)(sign | (a >> 13));
}

static float f16_to_f32_one(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) /* zero or subnormal: m * 2^-24, exact in float32 */
        return mdk_u2f(sign | mdk_f2u((float)m * 5.9604644775390625e-8f));
    if (e == 31)
        return mdk_u2f(sign | 0x7f800000u | (m << 13));
    return mdk_u2f(sign | ((e + 112u) << 23) | (m << 13));
}

static void f32_to_f16_scalar(const float *x, uint16_t *out, int64_t n)
{
    for (int64_t i = 0; i < n; ++i)
        out[i] = f32_to_f16_one(x[i]);
}

static void f16_to_f32_scalar(const uint16_t *x, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; ++i)
        out[i] = f16_to_f32_one(x[i]);
}

/* ---- x86: the F16C / AVX-512 conversion instructions ------------------- */
#if MDK_HAVE_X86
MDK_TARGET_AVX2 static void f32_to_f16_avx2(const float *x, uint16_t *out, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; ++i)
        out[i] = f32_to_f16_one(x[i]);
}

MDK_TARGET_AVX2 static void f16_to_f32_avx2(const uint16_t *x, float *out, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; ++i)
        out[i] = f16_to_f32_one(x[i]);
}

MDK_TARGET_AVX512 static void f32_to_f16_avx512(const float *x, uint16_t *out, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(out + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (i < n) { /* the tail with a mask instead of a scalar loop */
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(k, x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(out + i, k, h);
    }
}

MDK_TARGET_AVX512 static void f16_to_f32_avx512(const uint16_t *x, float *out, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(out + i, k, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, x + i)));
    }
}
#endif

#if MDK_HAVE_NEON
/* aarch64 has fp16 conversion in its baseline: let the compiler use fcvtn. */
static void f32_to_f16_neon(const float *x, uint16_t *out, int64_t n) { f32_to_f16_scalar(x, out, n); }
static void f16_to_f32_neon(const uint16_t *x, float *out, int64_t n) { f16_to_f32_scalar(x, out, n); }
#endif

void mdk_f32_to_f16(const float *x, uint16_t *out, int64_t n) { MDK_DISPATCH(f32_to_f16, (x, out, n)); }

void mdk_f16_to_f32(const uint16_t *x, float *out, int64_t n) { MDK_DISPATCH(f16_to_f32, (x, out, n)); }

/* Truncation needs no special instructions: shifts the compiler vectorizes on
 * any path (SSE2 is part of x86-64). */
void mdk_f32_to_trunc16(const float *x, uint16_t *out, int64_t n)
{
    for (int64_t i = 0; i < n; ++i)
        out[i] = (uint16_t)(mdk_f2u(x[i]) >> 16);
}

void mdk_trunc16_to_f32(const uint16_t *x, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; ++i)
        out[i] = mdk_u2f((uint32_t)x[i] << 16);
}
