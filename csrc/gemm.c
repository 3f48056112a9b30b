/*
 * gemm.c -- single-precision matrix multiply, BLIS style.
 *
 *     C[m x n] = act(A[m x k] . B[k x n] + bias)
 *
 * This file is meant to be read.  A naive triple loop runs at ~1-2 GFLOP/s on
 * a core that can do ~150; the difference is entirely about feeding the FMA
 * units from registers instead of memory.  The recipe (Goto & van de Geijn,
 * "Anatomy of high-performance matrix multiplication"; the BLIS framework):
 *
 *   for jc in 0..n step NC            5th loop: a column block of B and C
 *     for pc in 0..k step KC          4th loop: a KC-deep slice of the sum
 *       pack B[pc:pc+KC, jc:jc+NC]    -> Bp, NR-column micro-panels   (fits L3)
 *       for ic in 0..m step MC        3rd loop: a row block of A and C
 *         pack A[ic:ic+MC, pc:pc+KC]  -> Ap, MR-row micro-panels      (fits L2)
 *         for jr in 0..NC step NR     2nd loop: one micro-panel of Bp (stays in L1)
 *           for ir in 0..MC step MR   1st loop: one micro-panel of Ap (streams from L2)
 *             micro-kernel: C[ir:ir+MR, jr:jr+NR] += Ap_panel . Bp_panel
 *
 * The micro-kernel keeps an MR x NR tile of C in vector registers for the
 * whole KC-long loop.  Each step k loads NR floats of B (NR/16 zmm vectors),
 * broadcasts MR floats of A and issues MR*NR/16 FMAs: with MR=6, NR=64 that
 * is 24 FMAs per 4 vector loads + 6 broadcasts, enough work per load to keep
 * both FMA ports busy.  Everything outside the micro-kernel exists to make its
 * operands arrive from the nearest cache, in the order it reads them:
 *
 *   - Packing copies a block of A (or B) into a contiguous buffer laid out
 *     exactly in the micro-kernel's reading order (k-major, MR or NR wide).
 *     The copy costs O(MC*KC) and is reused O(NC) times.  Packing is also
 *     where transposes disappear: A^T and B^T are just other strides to read
 *     (rsa/csa, rsb/csb), so dW = dY^T X and dX = dY W need no transposed
 *     copies.  Edges are zero-padded, so the micro-kernel always computes a
 *     full tile; partial tiles go through a small scratch tile.
 *   - KC is chosen so one Bp micro-panel (KC x NR floats) stays in L1 while
 *     the Ap micro-panels stream past it; MC so the packed A block (MC x KC)
 *     stays in L2; NC so the packed B block (KC x NC) stays in L3.
 *   - The bias is added inside the micro-kernel when the tile is first
 *     written, and the activation is applied to the tile right after its last
 *     KC slice, while it is still in L1 ("fusing" the epilogue: no second
 *     pass over C in memory).
 *
 * One micro-kernel per instruction set: scalar C (the reference, 4x8), AVX2
 * (6x16, 12 ymm accumulators), AVX-512 (6x64, 24 zmm accumulators) and NEON
 * (8x12) on aarch64.  The driver below is shared.
 */
#define _POSIX_C_SOURCE 200809L /* pthread keys under -std=c99 */
#include <pthread.h>
#include <stdlib.h>

#include "mdk_internal.h"

#if MDK_HAVE_X86
#include <immintrin.h>
#endif
#if MDK_HAVE_NEON
#include <arm_neon.h>
#endif

/* A micro-kernel: C tile (MR x NR, leading dimension ldc) =
 *     accumulate ? C + A.Bp : A.Bp + bias      (bias: NR floats or NULL)
 * A is MR rows x kc, element (i, p) at a[i*rsa + p*csa]: a packed micro-panel
 * (rsa = 1, csa = MR) or the rows of the caller's matrix read in place (see
 * "Packing A, or not" below).  B is kc x NR with row stride ldb: a packed
 * micro-panel (ldb = its width) or, 64-byte aligned, B itself ("Packing B,
 * or not"). */
typedef void (*ukr_fn)(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa, const float *restrict bp,
                       int64_t ldb, float *restrict c, int64_t ldc, const float *restrict bias, int accumulate);

/* Pack one micro-panel: MR rows of A (or NR columns of B) x kc steps. */
typedef void (*pack_fn)(int64_t len, int64_t kc, const float *src, int64_t rs, int64_t cs, int width,
                        float *restrict dst);

struct gemm_cfg {
    int mr, nr;            /* micro-tile                                       */
    int64_t kc, mc, nc;    /* cache blocks: KC (L1), MC (L2), NC (L3)         */
    ukr_fn ukr;
    pack_fn pack_a_panel, pack_b_panel;
    int narrow_nr[2];      /* narrower kernels for the last columns, ascending (0: none) */
    ukr_fn narrow_ukr[2];
};

#define MDK_MR_MAX 16
#define MDK_NR_MAX 64

/* ========================================================================
 * Micro-kernels
 * ====================================================================== */

/* Scalar reference: the same contract in plain C.  Correct on any CPU and the
 * easiest to read; the compiler may still use SSE2 for it. */
enum { SC_MR = 4, SC_NR = 8 };
static void ukr_scalar(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa, const float *restrict bp,
                       int64_t ldb, float *restrict c, int64_t ldc, const float *restrict bias, int accumulate)
{
    float acc[SC_MR][SC_NR] = {{0}};
    for (int64_t p = 0; p < kc; ++p) {
        for (int i = 0; i < SC_MR; ++i)
            for (int j = 0; j < SC_NR; ++j)
                acc[i][j] += a[i * rsa] * bp[j];
        a += csa;
        bp += ldb;
    }
    for (int i = 0; i < SC_MR; ++i)
        for (int j = 0; j < SC_NR; ++j)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j] + (bias ? bias[j] : 0.0f);
}

#if MDK_HAVE_X86
/* Why the kernels below spell out every accumulator with a macro instead of
 * looping over an array acc[MR][NV]: for the AVX2 kernel GCC 12 unrolled such
 * loops but kept a copy of the array on the stack, storing all 12 accumulators
 * on every k step (half the speed); the AVX-512 kernel written the same way
 * happened to compile cleanly.  Named variables leave the compiler no choice.
 * Check with objdump that the k loop has no (%rsp) accesses. */

/* Epilogue for one vector of a C row: C = acc + (accumulate ? C : bias or 0). */
#define MDK_STORE_VEC(load, store, add, zero, ci, bias, accumulate, acc, off)                                   \
    store((ci) + (off), add((accumulate) ? load((ci) + (off)) : (bias) ? load((bias) + (off)) : zero(), acc))

/* AVX2 + FMA: 6 rows x 16 columns = 6 x 2 ymm accumulators (12 of the 16 ymm
 * registers), 2 for B, 1 for the broadcast A element.  Per k: 2 loads of B,
 * 6 broadcasts, 12 FMAs. */
enum { A2_MR = 6, A2_NR = 16 };
#define A2_ROW(i)                                                                                               \
    do {                                                                                                        \
        __m256 a_ = _mm256_broadcast_ss(a + (i) * rsa);                                                         \
        c##i##0 = _mm256_fmadd_ps(a_, b0, c##i##0);                                                             \
        c##i##1 = _mm256_fmadd_ps(a_, b1, c##i##1);                                                             \
    } while (0)
#define A2_STORE(i)                                                                                             \
    do {                                                                                                        \
        MDK_STORE_VEC(_mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps, _mm256_setzero_ps, c + (i) * ldc, bias, \
                      accumulate, c##i##0, 0);                                                                  \
        MDK_STORE_VEC(_mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps, _mm256_setzero_ps, c + (i) * ldc, bias, \
                      accumulate, c##i##1, 8);                                                                  \
    } while (0)
MDK_TARGET_AVX2 static void ukr_avx2(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                     const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                     const float *restrict bias, int accumulate)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int i = 0; i < A2_MR; ++i) /* the C tile is touched only at the end: start pulling it in */
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; ++p) {
        const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
        A2_ROW(0); A2_ROW(1); A2_ROW(2); A2_ROW(3); A2_ROW(4); A2_ROW(5);
        a += csa;
        bp += ldb;
    }
    A2_STORE(0); A2_STORE(1); A2_STORE(2); A2_STORE(3); A2_STORE(4); A2_STORE(5);
}

/* AVX2 edge kernel: 6 x 8, for the last 1-8 columns. */
MDK_TARGET_AVX2 static void ukr_avx2_n8(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                        const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                        const float *restrict bias, int accumulate)
{
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    for (int64_t p = 0; p < kc; ++p) {
        const __m256 b0 = _mm256_load_ps(bp);
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 0 * rsa), b0, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1 * rsa), b0, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * rsa), b0, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3 * rsa), b0, c3);
        c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4 * rsa), b0, c4);
        c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5 * rsa), b0, c5);
        a += csa;
        bp += ldb;
    }
    __m256 rows[6] = {c0, c1, c2, c3, c4, c5};
    for (int i = 0; i < 6; ++i)
        MDK_STORE_VEC(_mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps, _mm256_setzero_ps, c + i * ldc, bias,
                      accumulate, rows[i], 0);
}

/* AVX-512: 6 rows x 64 columns = 6 x 4 zmm accumulators (24 of 32 zmm
 * registers), 4 for B, 1 for the broadcast A element.  Per k: 4 aligned loads
 * of B, 6 broadcasts of A and 24 FMAs.  We also tried 14x32, 12x32, 8x48 and
 * 7x64 (docs/kernels.md): the taller tiles re-use each B vector more but need
 * 16 loads per 28 FMAs instead of 10 per 24, and on our machine the loads,
 * not the FMAs, were the limit. */
enum { A5_MR = 6, A5_NR = 64 };
#define A5_ROW(i)                                                                                               \
    do {                                                                                                        \
        __m512 a_ = _mm512_set1_ps(a[(i) * rsa]);                                                               \
        c##i##0 = _mm512_fmadd_ps(a_, b0, c##i##0);                                                             \
        c##i##1 = _mm512_fmadd_ps(a_, b1, c##i##1);                                                             \
        c##i##2 = _mm512_fmadd_ps(a_, b2, c##i##2);                                                             \
        c##i##3 = _mm512_fmadd_ps(a_, b3, c##i##3);                                                             \
    } while (0)
#define A5_STORE1(i, v)                                                                                         \
    MDK_STORE_VEC(_mm512_loadu_ps, _mm512_storeu_ps, _mm512_add_ps, _mm512_setzero_ps, c + (i) * ldc, bias,     \
                  accumulate, c##i##v, 16 * v)
#define A5_STORE(i)                                                                                             \
    do {                                                                                                        \
        A5_STORE1(i, 0);                                                                                        \
        A5_STORE1(i, 1);                                                                                        \
        A5_STORE1(i, 2);                                                                                        \
        A5_STORE1(i, 3);                                                                                        \
    } while (0)
MDK_TARGET_AVX512 static void ukr_avx512(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                         const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                         const float *restrict bias, int accumulate)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512 c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    __m512 c40 = c00, c41 = c00, c42 = c00, c43 = c00, c50 = c00, c51 = c00, c52 = c00, c53 = c00;
    for (int i = 0; i < A5_MR; ++i) /* the C tile (6 rows x 4 cache lines) is touched only at the end */
        for (int v = 0; v < 4; ++v)
            _mm_prefetch((const char *)(c + i * ldc + 16 * v), _MM_HINT_T0);
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; ++p) {
        const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
        const __m512 b2 = _mm512_load_ps(bp + 32), b3 = _mm512_load_ps(bp + 48);
        /* The B micro-panel streams from L2 (see the blocking below): ask for the
         * 4 lines of the step 8 ahead.  Measured +2-3% at 1024^3 and 2048^3,
         * close to this machine's noise, never a loss. */
        _mm_prefetch((const char *)(bp + 8 * ldb), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + 8 * ldb + 16), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + 8 * ldb + 32), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + 8 * ldb + 48), _MM_HINT_T0);
        A5_ROW(0); A5_ROW(1); A5_ROW(2); A5_ROW(3); A5_ROW(4); A5_ROW(5);
        a += csa;
        bp += ldb;
    }
    A5_STORE(0); A5_STORE(1); A5_STORE(2); A5_STORE(3); A5_STORE(4); A5_STORE(5);
}

/* AVX-512 edge kernels: 6 x 16 and 6 x 32 for the last columns of C, so a
 * 784-wide product (12 x 64 + 16) does not compute a 3/4-empty 64-wide tile. */
#define A5_NARROW(NV)                                                                                           \
    MDK_TARGET_AVX512 static void ukr_avx512_n##NV(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,  \
                                                   const float *restrict bp, int64_t ldb, float *restrict c,    \
                                                   int64_t ldc, const float *restrict bias, int accumulate)     \
    {                                                                                                           \
        __m512 acc[A5_MR][NV / 16];                                                                             \
        for (int i = 0; i < A5_MR; ++i)                                                                         \
            for (int v = 0; v < NV / 16; ++v)                                                                   \
                acc[i][v] = _mm512_setzero_ps();                                                                \
        for (int64_t p = 0; p < kc; ++p) {                                                                      \
            for (int i = 0; i < A5_MR; ++i)                                                                     \
                for (int v = 0; v < NV / 16; ++v)                                                               \
                    acc[i][v] = _mm512_fmadd_ps(_mm512_set1_ps(a[i * rsa]), _mm512_load_ps(bp + 16 * v), acc[i][v]); \
            a += csa;                                                                                           \
            bp += ldb;                                                                                          \
        }                                                                                                       \
        for (int i = 0; i < A5_MR; ++i)                                                                         \
            for (int v = 0; v < NV / 16; ++v)                                                                   \
                MDK_STORE_VEC(_mm512_loadu_ps, _mm512_storeu_ps, _mm512_add_ps, _mm512_setzero_ps, c + i * ldc, \
                              bias, accumulate, acc[i][v], 16 * v);                                             \
    }
A5_NARROW(16)
A5_NARROW(32)
#endif /* MDK_HAVE_X86 */

#if MDK_HAVE_NEON
/* NEON: 8 rows x 12 columns = 8 x 3 q-register accumulators (24 of 32). */
enum { NE_MR = 8, NE_NR = 12 };
static void ukr_neon(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa, const float *restrict bp,
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

/* ========================================================================
 * Packing
 *
 * A micro-panel of A is MR rows x kc, stored k-major: Ap[p][i] = A[i][p]
 * (MR consecutive floats per step k, exactly what the micro-kernel
 * broadcasts).  A micro-panel of B is kc x NR: Bp[p][j] = B[p][j] (NR
 * consecutive floats per step, the vectors the micro-kernel loads).  Rows or
 * columns past the edge of the matrix are zero.
 *
 * The generic packer below handles any strides.  Both operands are read
 * "along k" in one of two ways: contiguous along k (row-major A, or B = W^T
 * for a row-major W), which needs a transpose while packing, or contiguous
 * across the panel (A^T stored row-major, row-major B), which is a plain
 * copy.  The AVX-512 packers do the transposing case 16 x 16 floats at a time
 * in registers; packing is O(n^2) work but for a 128-row batch it is a third
 * of the time if done one float at a time.
 * ====================================================================== */

/* Any strides: dst[p][i] = src[i*rs + p*cs] for i < len, zero up to width.
 * (Inlined into a copy compiled for AVX2 below, so its loops use ymm registers there.) */
static inline void pack_panel_body(int64_t len, int64_t kc, const float *src, int64_t rs, int64_t cs, int width,
                               float *restrict dst)
{
    if (len == width && rs == 1) { /* contiguous across the panel: a copy per k step */
        for (int64_t p = 0; p < kc; ++p)
            for (int i = 0; i < width; ++i)
                dst[p * width + i] = src[p * cs + i];
    } else if (len == width && cs == 1) { /* contiguous along k: read rows, write down lanes */
        for (int i = 0; i < width; ++i) {
            const float *row = src + i * rs;
            for (int64_t p = 0; p < kc; ++p)
                dst[p * width + i] = row[p];
        }
    } else {
        for (int64_t p = 0; p < kc; ++p) {
            for (int64_t i = 0; i < len; ++i)
                dst[p * width + i] = src[i * rs + p * cs];
            for (int64_t i = len; i < width; ++i)
                dst[p * width + i] = 0.0f;
        }
    }
}

static void pack_panel_generic(int64_t len, int64_t kc, const float *src, int64_t rs, int64_t cs, int width,
                               float *restrict dst)
{
    pack_panel_body(len, kc, src, rs, cs, width, dst);
}

#if MDK_HAVE_X86
/* Transpose an 8 x 8 block held in 8 ymm registers (row r -> column r). */
MDK_TARGET_AVX2 static inline void transpose8(__m256 r[8])
{
    __m256 t[8], s[8];
    for (int i = 0; i < 4; ++i) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int h = 0; h < 2; ++h) { /* rows 0-3 and rows 4-7 */
        s[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xee);
        s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xee);
    }
    for (int c = 0; c < 4; ++c) { /* join the 128-bit halves */
        r[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
    }
}

/* AVX2 panel packer: the transposing case 8 x 8 floats at a time in registers
 * (A panels are 6 wide, B panels 16 or 8); everything else as the generic one. */
MDK_TARGET_AVX2 static void pack_panel_avx2(int64_t len, int64_t kc, const float *src, int64_t rs, int64_t cs,
                                            int width, float *restrict dst)
{
    if (len == width && cs == 1 && (width % 8 == 0 || width < 8)) {
        const int groups = width < 8 ? 1 : width / 8, lanes = width < 8 ? width : 8;
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        int64_t p0 = 0;
        for (; p0 + 8 <= kc; p0 += 8) {
            for (int g = 0; g < groups; ++g) {
                __m256 r[8];
                for (int i = 0; i < 8; ++i)
                    r[i] = i < lanes ? _mm256_loadu_ps(src + (g * 8 + i) * rs + p0) : _mm256_setzero_ps();
                transpose8(r);
                for (int q = 0; q < 8; ++q) /* r[q] = step p0+q, lanes g*8 .. g*8+7 */
                    _mm256_maskstore_ps(dst + (p0 + q) * width + g * 8, mask, r[q]);
            }
        }
        if (p0 < kc)
            pack_panel_body(len, kc - p0, src + p0, rs, cs, width, dst + p0 * width);
        return;
    }
    pack_panel_body(len, kc, src, rs, cs, width, dst);
}

/* Transpose a 16 x 16 block held in 16 zmm registers (row r -> column r):
 * unpack pairs of rows (2x2 blocks), then pairs of pairs (4x4 blocks inside
 * each 128-bit lane), then move 128-bit lanes around in two shuffles. */
MDK_TARGET_AVX512 static inline void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int j = 0; j < 4; ++j) {
        __m512d a = _mm512_castps_pd(t[4 * j]), b = _mm512_castps_pd(t[4 * j + 1]);
        __m512d c = _mm512_castps_pd(t[4 * j + 2]), d = _mm512_castps_pd(t[4 * j + 3]);
        u[4 * j + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * j + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * j + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * j + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* u[4j + c] holds rows 4j..4j+3, column 4L + c, in 128-bit lane L. */
    for (int c = 0; c < 4; ++c) {
        __m512 x0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), y0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        __m512 x1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd), y1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
        r[c] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(x0, y0, 0xdd);
        r[4 + c] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(x1, y1, 0xdd);
    }
}

/* AVX-512 panel packer: the 6-row A panels, the 64-column B panels and the
 * narrower edge panels (16 and 32 columns). */
MDK_TARGET_AVX512 static void pack_panel_avx512(int64_t len, int64_t kc, const float *src, int64_t rs, int64_t cs,
                                                int width, float *restrict dst)
{
    if (len == width && rs == 1 && width % 16 == 0) { /* row-major B: NR/16 vector copies per k */
        for (int64_t p = 0; p < kc; ++p)
            for (int v = 0; v < width; v += 16)
                _mm512_store_ps(dst + p * width + v, _mm512_loadu_ps(src + p * cs + v));
        return;
    }
    if (len == width && rs == 1 && width < 16) { /* A^T: one masked copy of MR floats per k */
        const __mmask16 m = (__mmask16)((1u << width) - 1u);
        for (int64_t p = 0; p < kc; ++p)
            _mm512_mask_storeu_ps(dst + p * width, m, _mm512_maskz_loadu_ps(m, src + p * cs));
        return;
    }
    if (len == width && cs == 1 && (width % 16 == 0 || width < 16)) {
        /* Contiguous along k: transpose 16 (lanes) x 16 (k steps) blocks. */
        const int groups = width < 16 ? 1 : width / 16, lanes = width < 16 ? width : 16;
        const __mmask16 m = (__mmask16)((1u << lanes) - 1u);
        int64_t p0 = 0;
        for (; p0 + 16 <= kc; p0 += 16) {
            for (int g = 0; g < groups; ++g) {
                __m512 r[16];
                for (int i = 0; i < 16; ++i)
                    r[i] = i < lanes ? _mm512_loadu_ps(src + (g * 16 + i) * rs + p0) : _mm512_setzero_ps();
                transpose16(r);
                for (int q = 0; q < 16; ++q) /* r[q] = step p0+q, lanes g*16 .. g*16+15 */
                    _mm512_mask_storeu_ps(dst + (p0 + q) * width + g * 16, m, r[q]);
            }
        }
        if (p0 < kc) /* the last kc % 16 steps */
            pack_panel_body(len, kc - p0, src + p0, rs, cs, width, dst + p0 * width);
        return;
    }
    pack_panel_body(len, kc, src, rs, cs, width, dst);
}
#endif

/* ========================================================================
 * Transposes: dst (cols x rows, leading dimension ldd) = src (rows x cols,
 * leading dimension lds) transposed.  For store_transposed below and for
 * mdk_transpose_batched (conv2d's NHWC <-> NCHW copies).  Whole 16 x 16 (or
 * 8 x 8) blocks go through the register transposes above: 16 row loads, 16
 * row stores; the edges one float at a time.
 * ====================================================================== */
static void transpose_scalar(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t rows, int64_t cols)
{
    for (int64_t i0 = 0; i0 < rows; i0 += 16) /* 16 x 16 blocks: both sides stay in a few cache lines */
        for (int64_t j0 = 0; j0 < cols; j0 += 16)
            for (int64_t j = j0; j < MDK_MIN(j0 + 16, cols); ++j)
                for (int64_t i = i0; i < MDK_MIN(i0 + 16, rows); ++i)
                    dst[j * ldd + i] = src[i * lds + j];
}

#if MDK_HAVE_X86
/* One transpose per path, V x V blocks in registers (V = 16 floats for AVX-512, 8 for AVX2). */
#define MDK_TRANSPOSE_SIMD(name, target, V, vec, load, store, transpose)                                        \
    target static void name(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t rows, int64_t cols) \
    {                                                                                                           \
        const int64_t rows_v = rows / V * V, cols_v = cols / V * V;                                             \
        for (int64_t i0 = 0; i0 < rows_v; i0 += V)                                                              \
            for (int64_t j0 = 0; j0 < cols_v; j0 += V) {                                                        \
                vec r[V];                                                                                       \
                for (int i = 0; i < V; ++i)                                                                     \
                    r[i] = load(src + (i0 + i) * lds + j0);                                                     \
                transpose(r); /* r[j] = column j0 + j of the block = row j0 + j of dst */                      \
                for (int j = 0; j < V; ++j)                                                                     \
                    store(dst + (j0 + j) * ldd + i0, r[j]);                                                     \
            }                                                                                                   \
        if (cols_v < cols) /* the last columns of every row */                                                  \
            transpose_scalar(src + cols_v, lds, dst + cols_v * ldd, ldd, rows, cols - cols_v);                  \
        if (rows_v < rows) /* the last rows, over the whole columns already done */                            \
            transpose_scalar(src + rows_v * lds, lds, dst + rows_v, ldd, rows - rows_v, cols_v);                \
    }
MDK_TRANSPOSE_SIMD(transpose_avx512, MDK_TARGET_AVX512, 16, __m512, _mm512_loadu_ps, _mm512_storeu_ps, transpose16)
MDK_TRANSPOSE_SIMD(transpose_avx2, MDK_TARGET_AVX2, 8, __m256, _mm256_loadu_ps, _mm256_storeu_ps, transpose8)
#endif

static void transpose(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t rows, int64_t cols)
{
#if MDK_HAVE_X86
    if (mdk_active_path == MDK_SIMD_AVX512) {
        transpose_avx512(src, lds, dst, ldd, rows, cols);
        return;
    }
    if (mdk_active_path == MDK_SIMD_AVX2) {
        transpose_avx2(src, lds, dst, ldd, rows, cols);
        return;
    }
#endif
    transpose_scalar(src, lds, dst, ldd, rows, cols);
}

void mdk_transpose_batched(const float *src, float *dst, int64_t batch, int64_t rows, int64_t cols)
{
    for (int64_t b = 0; b < batch; ++b)
        transpose(src + b * rows * cols, cols, dst + b * rows * cols, rows, rows, cols);
}

/* Ap: ceil(mc/MR) micro-panels of A[0:mc, 0:kc]. */
static void pack_a(const struct gemm_cfg *cfg, int64_t mc, int64_t kc, const float *a, int64_t rsa, int64_t csa,
                   float *restrict ap)
{
    for (int64_t i0 = 0; i0 < mc; i0 += cfg->mr)
        cfg->pack_a_panel(MDK_MIN(cfg->mr, mc - i0), kc, a + i0 * rsa, rsa, csa, cfg->mr, ap + i0 * kc);
}

/* The micro-kernel for a column panel with `cols` <= NR valid columns, and its
 * width: the full kernel, or a narrower one for the last columns of C. */
static int panel_kernel(const struct gemm_cfg *cfg, int64_t cols, ukr_fn *ukr)
{
    for (int t = 0; t < 2; ++t)
        if (cfg->narrow_nr[t] != 0 && cols <= cfg->narrow_nr[t]) {
            *ukr = cfg->narrow_ukr[t];
            return cfg->narrow_nr[t];
        }
    *ukr = cfg->ukr;
    return cfg->nr;
}

/* Bp: ceil(nc/NR) micro-panels of B[0:kc, 0:nc] (the last one perhaps narrower);
 * a column of B is a "row" of the panel, so the strides swap roles. */
static void pack_b(const struct gemm_cfg *cfg, int64_t kc, int64_t nc, const float *b, int64_t rsb, int64_t csb,
                   float *restrict bp)
{
    for (int64_t j0 = 0; j0 < nc; j0 += cfg->nr) {
        ukr_fn unused;
        const int64_t cols = MDK_MIN(cfg->nr, nc - j0);
        cfg->pack_b_panel(cols, kc, b + j0 * csb, csb, rsb, panel_kernel(cfg, cols, &unused), bp + j0 * kc);
    }
}

/* Blocking per path, measured on a Sapphire-Rapids-class core (L1d 48 KiB,
 * L2 2 MiB; sweeps in docs/kernels.md; blocks are then balanced per problem).
 *   AVX-512 (6x64): KC = 512, MC = 240.  The packed A block MC x KC
 *     (480 KiB) lives in L2 and one A micro-panel (6 x 512 x 4 = 12 KiB) in
 *     L1 while the micro-kernel runs; the B micro-panel (512 x 64 x 4 =
 *     128 KiB) is bigger than L1 and streams from L2, a sequential stream the
 *     hardware prefetcher keeps up with.  KC = 384..512 beat 256 by a few
 *     percent: fewer passes over C.
 *   AVX2 (6x16): KC = 512, MC = 120: the B micro-panel (32 KiB) fits L1.
 *   NC = 3072 keeps the packed B block (KC x NC, 6 MiB) in L3. */
static struct gemm_cfg cfg_table[MDK_SIMD_COUNT] = {
    /*                 MR     NR     KC   MC   NC    micro-kernel  packers (A, B)     narrow edge kernels */
    [MDK_SIMD_SCALAR] = {SC_MR, SC_NR, 256, 128, 2048, ukr_scalar, pack_panel_generic, pack_panel_generic,
                         {0, 0}, {NULL, NULL}},
#if MDK_HAVE_X86
    [MDK_SIMD_AVX2] = {A2_MR, A2_NR, 512, 120, 3072, ukr_avx2, pack_panel_avx2, pack_panel_avx2,
                       {8, 0}, {ukr_avx2_n8, NULL}},
    [MDK_SIMD_AVX512] = {A5_MR, A5_NR, 512, 240, 3072, ukr_avx512, pack_panel_avx512, pack_panel_avx512,
                         {16, 32}, {ukr_avx512_n16, ukr_avx512_n32}},
#endif
#if MDK_HAVE_NEON
    [MDK_SIMD_NEON] = {NE_MR, NE_NR, 256, 128, 2048, ukr_neon, pack_panel_generic, pack_panel_generic,
                       {0, 0}, {NULL, NULL}},
#endif
};

/* Tuning hook for benchmarks/bench_kernels.py --tune: change the cache blocks
 * of one path (rounded to multiples of the micro-tile).  Not thread-safe. */
int mdk_gemm_set_blocking(int path, int64_t kc, int64_t mc, int64_t nc)
{
    if (!mdk_simd_built(path) || kc < 1 || mc < 1 || nc < 1)
        return MDK_EUNKNOWN_PATH;
    struct gemm_cfg *cfg = &cfg_table[path];
    cfg->kc = kc;
    cfg->mc = (mc + cfg->mr - 1) / cfg->mr * cfg->mr;
    cfg->nc = (nc + cfg->nr - 1) / cfg->nr * cfg->nr;
    return MDK_OK;
}

/* The cache blocks of one path (for the tests and the tuning benchmark). */
int mdk_gemm_get_blocking(int path, int64_t out[3])
{
    if (!mdk_simd_built(path))
        return MDK_EUNKNOWN_PATH;
    out[0] = cfg_table[path].kc;
    out[1] = cfg_table[path].mc;
    out[2] = cfg_table[path].nc;
    return MDK_OK;
}

/* ========================================================================
 * The driver: the five loops
 * ====================================================================== */

/* The packing buffers are a workspace kept for the life of the calling thread
 * and only ever grown.  Allocating them per call (about 1 MiB for the MLP's
 * 128x784x512 product) and freeing them again lets glibc hand the pages back
 * to the system, so the next call pays hundreds of page faults: measured, 20%
 * of that product's time (75 -> 91 GFLOP/s once the buffers are kept).  One
 * workspace per thread, because the GIL is released while kernels run; a
 * thread-specific key frees it when the thread exits. */
struct workspace {
    void *raw;     /* what malloc returned */
    size_t floats; /* usable capacity after 64-byte alignment */
};
struct workspaces {
    struct workspace a, b, t; /* packed A block, packed B block, C^T for swapped products */
};
static pthread_key_t workspace_key;
static pthread_once_t workspace_key_once = PTHREAD_ONCE_INIT;

static void free_workspaces(void *p)
{
    struct workspaces *w = p;
    free(w->a.raw);
    free(w->b.raw);
    free(w->t.raw);
    free(w);
}

static void make_workspace_key(void)
{
    (void)pthread_key_create(&workspace_key, free_workspaces);
}

static struct workspaces *thread_workspaces(void)
{
    (void)pthread_once(&workspace_key_once, make_workspace_key);
    struct workspaces *w = pthread_getspecific(workspace_key);
    if (w == NULL) {
        w = calloc(1, sizeof *w);
        if (w == NULL || pthread_setspecific(workspace_key, w) != 0) {
            free(w);
            return NULL;
        }
    }
    return w;
}

static float *workspace_floats(struct workspace *ws, size_t floats)
{
    if (floats > ws->floats) {
        free(ws->raw);
        /* C99 has no aligned_alloc: over-allocate and round up to 64 bytes (a
         * cache line, and the alignment of a zmm load). */
        ws->raw = malloc(floats * sizeof(float) + 64);
        ws->floats = ws->raw != NULL ? floats : 0;
        if (ws->raw == NULL)
            return NULL;
    }
    return (float *)(((uintptr_t)ws->raw + 63) & ~(uintptr_t)63);
}

/* Give the calling thread's packing buffers back (for tests and long-lived
 * threads that are done with large products). */
void mdk_gemm_release_workspace(void)
{
    (void)pthread_once(&workspace_key_once, make_workspace_key);
    struct workspaces *w = pthread_getspecific(workspace_key);
    if (w != NULL) {
        free_workspaces(w);
        (void)pthread_setspecific(workspace_key, NULL);
    }
}

static void apply_act_rows(float *c, int64_t ldc, int64_t rows, int64_t cols, int act)
{
    static const int unary_op[] = {0, MDK_UN_RELU, MDK_UN_SIGMOID, MDK_UN_TANH};
    for (int64_t i = 0; i < rows; ++i)
        mdk_unary(unary_op[act], c + i * ldc, c + i * ldc, cols);
}

/* The largest block <= `block` (a multiple of `unit`) that splits `size` into
 * equal parts. */
static int64_t balanced_block(int64_t size, int64_t block, int64_t unit)
{
    if (size <= block)
        return MDK_MAX(size, 1);
    const int64_t parts = (size + block - 1) / block;
    const int64_t even = (size + parts - 1) / parts;
    return MDK_MIN(block, (even + unit - 1) / unit * unit);
}

static int gemm_strategies = MDK_GEMM_ALL;

int mdk_gemm_set_strategies(int strategies)
{
    const int previous = gemm_strategies;
    gemm_strategies = strategies & MDK_GEMM_ALL;
    return previous;
}

/* Packing A, or not.  A packed micro-panel of A is read once per NR columns of
 * C; when C has only one or two such column panels (a linear layer with few
 * outputs, say), the copy costs about as much as the product it serves, and
 * the micro-kernel can broadcast A's elements from the matrix itself just as
 * well, as long as one of A's strides is 1 (measured: 1.7x on 128x10x512).
 * A row-major A (MR rows = MR sequential streams) reads well in place up to
 * medium sizes too: 1.25x on 128x512x512 with B also in place, 1.03-1.05x at
 * 256 and 512 rows, 0.99x at 1024 and 0.95x at 2048.  A transposed A with
 * many columns is the bad case (0.6x at 1024x1024: every k step lands on a
 * new page), so it is packed unless C is narrow. */
static int a_in_place(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t rsa, int64_t csa)
{
    if (!(gemm_strategies & MDK_GEMM_A_IN_PLACE))
        return 0;
    return (n <= 2 * cfg->nr && (rsa == 1 || csa == 1)) || (csa == 1 && m <= 512);
}

/* Packing B, or not.  For few rows of C (a batch of 128, say) each packed B
 * micro-panel serves only m/MR micro-kernel calls, and copying B costs 15-20%
 * of the product (dX = dY W in a linear layer's backward).  A row-major B can
 * be read in place instead, one row of NR floats per k step -- when its rows
 * are 64-byte aligned: with NumPy's usual 16-byte offset every vector load
 * splits across two cache lines and the gain is gone.  minidl allocates
 * parameters aligned for this (Parameter.empty).  Measured with aligned rows
 * (AVX-512, n = k = 512): 1.15x at m = 128, 1.06x at 256, 0.98x at 512; and
 * 1.0x unaligned.  Only b itself is checked: later blocks stay aligned because
 * rsb is a multiple of 16 floats and NC a multiple of NR (64 or 16 on x86; the
 * NEON and scalar kernels load unaligned anyway). */
static int b_in_place(int64_t m, const float *b, int64_t rsb, int64_t csb)
{
    return (gemm_strategies & MDK_GEMM_B_IN_PLACE) && csb == 1 && m <= 256 && rsb % 16 == 0 &&
           (uintptr_t)b % 64 == 0;
}

/* One product with the work buffers already allocated. */
static void gemm_blocked(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t k, const float *a,
                         int64_t rsa, int64_t csa, const float *b, int64_t rsb, int64_t csb, float *c,
                         int64_t ldc, const float *bias, int act, float *ap, float *bp)
{
    const int mr = cfg->mr, nr = cfg->nr;
    /* Scratch tile for partial edge tiles, and a zero-padded bias for them. */
    float tile[MDK_MR_MAX * MDK_NR_MAX] __attribute__((aligned(64)));
    float bias_tile[MDK_NR_MAX] __attribute__((aligned(64)));

    if (k == 0) { /* empty sum: C = act(bias) */
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j)
                c[i * ldc + j] = bias ? bias[j] : 0.0f;
        if (act != MDK_ACT_NONE)
            apply_act_rows(c, ldc, m, n, act);
        return;
    }

    /* Equal-sized blocks: k = 784 with KC = 512 runs as 392 + 392, not 512 + 272,
     * and m = 400 with MC = 336 as 204 + 196, not 336 + 64 (a short last block
     * pays the packing and loop overheads for little work). */
    const int64_t kc_step = balanced_block(k, cfg->kc, 1), mc_step = balanced_block(m, cfg->mc, mr);
    const int direct_a = a_in_place(cfg, m, n, rsa, csa);
    const int direct_b = b_in_place(m, b, rsb, csb);
    for (int64_t jc = 0; jc < n; jc += cfg->nc) {                      /* 5th loop */
        const int64_t nc = MDK_MIN(cfg->nc, n - jc);
        for (int64_t pc = 0; pc < k; pc += kc_step) {                  /* 4th loop */
            const int64_t kc = MDK_MIN(kc_step, k - pc);
            const int first = pc == 0, last = pc + kc == k;
            const float *b_block = b + pc * rsb + jc * csb;
            const int64_t full_cols = nc / nr * nr; /* columns in whole micro-panels */
            if (!direct_b)
                pack_b(cfg, kc, nc, b_block, rsb, csb, bp);
            else if (full_cols < nc) /* only the partial last micro-panel needs a zero-padded copy */
                pack_b(cfg, kc, nc - full_cols, b_block + full_cols, rsb, csb, bp + full_cols * kc);
            for (int64_t ic = 0; ic < m; ic += mc_step) {              /* 3rd loop */
                const int64_t mc = MDK_MIN(mc_step, m - ic);
                const float *a_block = a + ic * rsa + pc * csa;
                const int64_t full_rows = mc / mr * mr; /* rows in whole micro-panels */
                if (!direct_a)
                    pack_a(cfg, mc, kc, a_block, rsa, csa, ap);
                else if (full_rows < mc) /* only the partial last micro-panel needs a zero-padded copy */
                    cfg->pack_a_panel(mc - full_rows, kc, a_block + full_rows * rsa, rsa, csa, mr, ap);
                for (int64_t jr = 0; jr < nc; jr += nr) {               /* 2nd loop */
                    const int64_t cols = MDK_MIN(nr, nc - jr);
                    ukr_fn ukr;
                    const int w = panel_kernel(cfg, cols, &ukr); /* NR, or narrower at the edge */
                    /* B: the packed micro-panel, or B in place for a whole NR-wide panel. */
                    const float *bpanel = bp + jr * kc;
                    int64_t ldb = w;
                    if (direct_b && cols == nr) {
                        bpanel = b_block + jr;
                        ldb = rsb;
                    }
                    const float *bias_j = NULL;
                    if (bias && first) {
                        if (cols == w) {
                            bias_j = bias + jc + jr;
                        } else {
                            memset(bias_tile, 0, sizeof bias_tile);
                            memcpy(bias_tile, bias + jc + jr, (size_t)cols * sizeof(float));
                            bias_j = bias_tile;
                        }
                    }
                    for (int64_t ir = 0; ir < mc; ir += mr) {           /* 1st loop */
                        const int64_t rows = MDK_MIN(mr, mc - ir);
                        float *cij = c + (ic + ir) * ldc + jc + jr;
                        /* A: the packed micro-panel (row stride 1, k stride MR) or A in place. */
                        const float *apanel = ap + ir * kc;
                        int64_t ars = 1, acs = mr;
                        if (direct_a) {
                            if (rows == mr) {
                                apanel = a_block + ir * rsa;
                                ars = rsa;
                                acs = csa;
                            } else {
                                apanel = ap;
                            }
                        }
                        if (rows == mr && cols == w) {
                            ukr(kc, apanel, ars, acs, bpanel, ldb, cij, ldc, bias_j, !first);
                        } else {
                            /* Edge: run the full tile into scratch, copy the valid part. */
                            if (!first)
                                for (int64_t i = 0; i < rows; ++i)
                                    memcpy(tile + i * w, cij + i * ldc, (size_t)cols * sizeof(float));
                            ukr(kc, apanel, ars, acs, bpanel, ldb, tile, w, bias_j, !first);
                            for (int64_t i = 0; i < rows; ++i)
                                memcpy(cij + i * ldc, tile + i * w, (size_t)cols * sizeof(float));
                        }
                        if (last && act != MDK_ACT_NONE) /* epilogue while the tile is in L1 */
                            apply_act_rows(cij, ldc, rows, cols, act);
                    }
                }
            }
        }
    }
}

/* The packing buffers for products up to m x n x k (sized to the problem, so
 * small products do not touch a full NC-wide buffer). */
static int gemm_buffers(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t k, float **ap, float **bp)
{
    int64_t mc = MDK_MIN(cfg->mc, m), nc = MDK_MIN(cfg->nc, n), kc = MDK_MIN(cfg->kc, k);
    mc = (mc + cfg->mr - 1) / cfg->mr * cfg->mr;
    nc = (nc + cfg->nr - 1) / cfg->nr * cfg->nr;
    if (kc < 1)
        kc = 1;
    struct workspaces *w = thread_workspaces();
    if (w == NULL)
        return MDK_ENOMEM;
    *ap = workspace_floats(&w->a, (size_t)(mc * kc));
    *bp = workspace_floats(&w->b, (size_t)(nc * kc));
    return (*ap == NULL || *bp == NULL) ? MDK_ENOMEM : MDK_OK;
}

/* Computing C^T = B^T A^T instead.  The forward pass of a linear layer is
 * C = X W^T: B = W^T has to be transposed while it is packed -- all of W, the
 * largest operand, for only m/MR uses of each panel when the batch m is small.
 * Swapping the roles makes W the A operand, read in place (its rows are rows
 * of B^T, and C^T has only m <= 2*NR columns: see a_in_place), and transposes
 * X, the smaller operand, while packing it.  C^T lands in a workspace and is
 * transposed into C with the bias and activation applied: one extra pass over
 * the m x n output instead of a transposing pass over k x n.  Measured with
 * the transpose included (AVX-512): 1.2x at 64x512x512, 1.1x at 128x512x784
 * and 128x512x512, 0.98x at 256x512x512. */
enum { SWAP_MAX_FLOATS = 1 << 20 }; /* C^T workspace cap (4 MiB per thread; it is kept, see workspace_floats) */
static int swap_pays(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t csa, int64_t rsb, int64_t csb)
{
    return (gemm_strategies & MDK_GEMM_SWAP) && rsb == 1 && csb != 1 && csa == 1 && m <= 2 * cfg->nr && m < n &&
           m * n <= SWAP_MAX_FLOATS;
}

/* C[i][j] = act(T[j][i] + bias[j]) for T (n x m, row-major), 16 rows of C at a
 * time so the bias and activation pass finds them in L1. */
static void store_transposed(const float *t, int64_t m, int64_t n, float *c, int64_t ldc, const float *bias, int act)
{
    for (int64_t i0 = 0; i0 < m; i0 += 16) {
        const int64_t rows = MDK_MIN(16, m - i0);
        transpose(t + i0, m, c + i0 * ldc, ldc, n, rows); /* T[:, i0:i0+rows] -> C[i0:i0+rows, :] */
        if (bias)
            for (int64_t i = i0; i < i0 + rows; ++i)
                for (int64_t j = 0; j < n; ++j)
                    c[i * ldc + j] += bias[j];
        if (act != MDK_ACT_NONE)
            apply_act_rows(c + i0 * ldc, ldc, rows, n, act);
    }
}

int mdk_sgemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b,
              int64_t rsb, int64_t csb, float *c, int64_t ldc, const float *bias, int act)
{
    if (m <= 0 || n <= 0)
        return MDK_OK;
    const struct gemm_cfg *cfg = &cfg_table[mdk_active_path];
    float *ap, *bp;
    if (k > 0 && swap_pays(cfg, m, n, csa, rsb, csb)) {
        struct workspaces *w = thread_workspaces();
        float *t = w ? workspace_floats(&w->t, (size_t)(m * n)) : NULL;
        if (t == NULL || gemm_buffers(cfg, n, m, k, &ap, &bp) != MDK_OK)
            return MDK_ENOMEM;
        /* A' = B^T: element (j, p) = b[p*rsb + j*csb];  B' = A^T: element (p, i) = a[i*rsa + p*csa]. */
        gemm_blocked(cfg, n, m, k, b, csb, rsb, a, csa, rsa, t, m, NULL, MDK_ACT_NONE, ap, bp);
        store_transposed(t, m, n, c, ldc, bias, act);
        return MDK_OK;
    }
    int err = gemm_buffers(cfg, m, n, k, &ap, &bp);
    if (err)
        return err;
    gemm_blocked(cfg, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, bias, act, ap, bp);
    return MDK_OK;
}

int mdk_sgemm_batched(int64_t batch, int64_t m, int64_t n, int64_t k, const float *a, const int64_t *a_off,
                      int64_t rsa, int64_t csa, const float *b, const int64_t *b_off, int64_t rsb, int64_t csb,
                      float *c, int64_t c_stride, int64_t ldc)
{
    if (batch <= 0 || m <= 0 || n <= 0)
        return MDK_OK;
    const struct gemm_cfg *cfg = &cfg_table[mdk_active_path];
    float *ap, *bp;
    int err = gemm_buffers(cfg, m, n, k, &ap, &bp);
    if (err)
        return err;
    for (int64_t t = 0; t < batch; ++t)
        gemm_blocked(cfg, m, n, k, a + a_off[t], rsa, csa, b + b_off[t], rsb, csb, c + t * c_stride, ldc, NULL,
                     MDK_ACT_NONE, ap, bp);
    return MDK_OK;
}
