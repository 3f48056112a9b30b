/*
 * simd_math_impl.h -- exp, sigmoid and tanh written so a compiler can
 * vectorize them: no branches (only selects), no library calls, no table
 * lookups.  Included by the *_impl.h bodies, once per SIMD path, so each copy
 * carries that path's target attribute and inlines into its loops.
 *
 * exp(x): split x = n ln2 + r with |r| <= ln2/2, approximate e^r by a
 * degree-7 polynomial (the classic Cephes expf coefficients, ~1 ulp), then
 * multiply by 2^n built directly in the exponent bits.  2^n is applied in two
 * halves so results that are subnormal floats are still rounded correctly.
 */
/* a*b + c: one fused instruction on paths that have FMA (AVX2, AVX-512, NEON),
 * a multiply and an add on the portable path.  The build does not contract
 * a*b + c on its own (-std=c99), so where FMA is used is a choice made here:
 * results may differ between paths by an ulp, never more. */
#undef MDK_MULADD
#if MDK_ISA_HAS_FMA
#define MDK_MULADD(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define MDK_MULADD(a, b, c) ((a) * (b) + (c))
#endif

#ifndef MDK_MATH_CONSTANTS
#define MDK_MATH_CONSTANTS
#define MDK_EXP_HI 88.72283935546875f /* above: +inf */
#define MDK_EXP_LO -103.97208f        /* below: 0    */
#endif

MDK_TARGET static inline float MDK_FN(mdk_expf)(float x)
{
    float xc = x > MDK_EXP_LO ? x : MDK_EXP_LO; /* also maps NaN to LO; fixed below */
    xc = xc < MDK_EXP_HI ? xc : MDK_EXP_HI;
    /* n = round(x / ln2); adding 1.5 * 2^23 rounds to an integer in float arithmetic. */
    float n = MDK_MULADD(xc, 1.44269504088896341f, 12582912.0f) - 12582912.0f;
    /* r = x - n ln2, with ln2 split in two so the product is exact. */
    float r = MDK_MULADD(n, -0.693359375f, xc);
    r = MDK_MULADD(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = MDK_MULADD(p, r, 1.3981999507e-3f);
    p = MDK_MULADD(p, r, 8.3334519073e-3f);
    p = MDK_MULADD(p, r, 4.1665795894e-2f);
    p = MDK_MULADD(p, r, 1.6666665459e-1f);
    p = MDK_MULADD(p, r, 5.0000001201e-1f);
    p = MDK_MULADD(p * r, r, r) + 1.0f;
    int32_t ni = (int32_t)n;
    int32_t n1 = ni / 2, n2 = ni - n1; /* both in [-75, 64]: normal exponents */
    float s1 = mdk_u2f((uint32_t)(n1 + 127) << 23);
    float s2 = mdk_u2f((uint32_t)(n2 + 127) << 23);
    float y = p * s1 * s2;
    y = x < MDK_EXP_LO ? 0.0f : y; /* the clamped value would round up to the smallest subnormal */
    y = x > MDK_EXP_HI ? (float)HUGE_VAL : y;
    return x != x ? x : y; /* NaN in, NaN out */
}

/* 1 / (1 + e^-x) using e^-|x| so nothing overflows (as the NumPy twin does).
 * One division, not two: a 512-bit divide costs ~16 cycles, the rest ~1. */
MDK_TARGET static inline float MDK_FN(mdk_sigmoidf)(float x)
{
    float z = MDK_FN(mdk_expf)(-(x < 0 ? -x : x));
    float inv = 1.0f / (1.0f + z);
    return x >= 0 ? inv : z * inv;
}

/* tanh: odd Taylor series near 0 (where (1-e)/(1+e) would cancel), else
 * sign(x) (1 - e) / (1 + e) with e = exp(-2|x|). */
MDK_TARGET static inline float MDK_FN(mdk_tanhf)(float x)
{
    float ax = x < 0 ? -x : x;
    float x2 = x * x;
    float s = -929569.0f / 638512875.0f;
    s = MDK_MULADD(s, x2, 21844.0f / 6081075.0f);
    s = MDK_MULADD(s, x2, -1382.0f / 155925.0f);
    s = MDK_MULADD(s, x2, 62.0f / 2835.0f);
    s = MDK_MULADD(s, x2, -17.0f / 315.0f);
    s = MDK_MULADD(s, x2, 2.0f / 15.0f);
    s = MDK_MULADD(s, x2, -1.0f / 3.0f);
    float small = MDK_MULADD(x * x2, s, x);
    float e = MDK_FN(mdk_expf)(-2.0f * ax);
    float big = (1.0f - e) / (1.0f + e);
    big = x < 0 ? -big : big;
    return ax < 0.5f ? small : big;
}
