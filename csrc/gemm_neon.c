/*
 * gemm_neon.c -- the GEMM's micro-kernel for aarch64 (NEON, 8 x 12).  The
 * driver and the any-strides packer it uses are in gemm.c; the contract
 * every micro-kernel keeps is in gemm_internal.h.
 */
#include "gemm_internal.h"

#if MDK_HAVE_NEON
#include <arm_neon.h>

/* NEON: 8 rows x 12 columns = 8 x 3 q-register accumulators (24 of 32). */
void mdk_ukr_neon(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa, const float *restrict bp,
                     int64_t ldb, float *restrict c, int64_t ldc, const float *restrict bias, int accumulate)
{
    float32x4_t acc[NE_MR][3];
    for (int i = 0; i < NE_MR; ++i)
        acc[i][0] = acc[i][1] = acc[i][2] = vdupq_n_f32(0.0f);
    for (int64_t p = 0; p < kc; ++p) {
        float32x4_t b0 = vld1q_f32(bp), b1 = vld1q_f32(bp + 4), b2 = vld1q_f32(bp + 8);
        for (int i = 0; i < NE_MR; ++i) {
            float32x4_t ai = vdupq_n_f32(a[i * rsa]);
            acc[i][0] = vfmaq_f32(acc[i][0], ai, b0);
            acc[i][1] = vfmaq_f32(acc[i][1], ai, b1);
            acc[i][2] = vfmaq_f32(acc[i][2], ai, b2);
        }
        a += csa;
        bp += ldb;
    }
    for (int i = 0; i < NE_MR; ++i) {
        float *ci = c + i * ldc;
        for (int v = 0; v < 3; ++v) {
            float32x4_t base = accumulate ? vld1q_f32(ci + 4 * v)
                               : bias     ? vld1q_f32(bias + 4 * v)
                                          : vdupq_n_f32(0.0f);
            vst1q_f32(ci + 4 * v, vaddq_f32(base, acc[i][v]));
        }
    }
}
#endif /* MDK_HAVE_NEON */
