/*
 * gemm_x86.c -- the GEMM's micro-kernels and packers for x86-64: AVX2 + FMA
 * (6 x 16) and AVX-512 (6 x 64), written with intrinsics.  The driver, the
 * scalar reference micro-kernel and the contract every micro-kernel keeps are
 * in gemm.c and gemm_internal.h; docs/kernels.md has the measurements behind
 * the tile shapes.
 */
#include "gemm_internal.h"

#if MDK_HAVE_X86
#include <immintrin.h>

#include "transpose_x86.h"

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
MDK_TARGET_AVX2 void mdk_ukr_avx2(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
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
MDK_TARGET_AVX2 void mdk_ukr_avx2_n8(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
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
/* One k step of the 6 x 64 tile: 4 loads of B, 6 broadcasts of A, 24 FMAs,
 * and with `prefetch` a request for the B lines 8 steps ahead. */
#define A5_STEP(prefetch)                                                                                       \
    do {                                                                                                        \
        const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);                                     \
        const __m512 b2 = _mm512_load_ps(bp + 32), b3 = _mm512_load_ps(bp + 48);                                \
        if (prefetch)                                                                                           \
            for (int v_ = 0; v_ < A5_NR; v_ += 16)                                                              \
                _mm_prefetch((const char *)(bp + 8 * ldb + v_), _MM_HINT_T0);                                   \
        A5_ROW(0); A5_ROW(1); A5_ROW(2); A5_ROW(3); A5_ROW(4); A5_ROW(5);                                        \
        a += csa;                                                                                               \
        bp += ldb;                                                                                              \
    } while (0)
enum { A5_KC_IN_L1 = 128 }; /* k steps of a 64-wide packed B panel that fit in 32 KiB of L1 */
MDK_TARGET_AVX512 void mdk_ukr_avx512(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                         const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                         const float *restrict bias, int accumulate)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512 c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    __m512 c40 = c00, c41 = c00, c42 = c00, c43 = c00, c50 = c00, c51 = c00, c52 = c00, c53 = c00;
    for (int i = 0; i < A5_MR; ++i) /* the C tile (6 rows x 4 cache lines) is touched only at the end */
        for (int v = 0; v < 4; ++v)
            _mm_prefetch((const char *)(c + i * ldc + 16 * v), _MM_HINT_T0);
    if (ldb == A5_NR && kc <= A5_KC_IN_L1) {
        /* A packed B micro-panel this short (<= 32 KiB) stays in L1 for the
         * whole loop, as in a weight gradient (k = a batch of 128). */
#pragma GCC unroll 4
        for (int64_t p = 0; p < kc; ++p)
            A5_STEP(0);
    } else {
        /* The B micro-panel streams from L2 (see the blocking below), or B is
         * read in place: ask for the 4 lines of the step 8 ahead.  Measured
         * +2-3% at 1024^3 and 2048^3, close to this machine's noise; prefetching
         * an L1-resident panel instead cost 2-4% on a training step's weight
         * gradients (session 10, docs/kernels.md). */
#pragma GCC unroll 4
        for (int64_t p = 0; p < kc; ++p)
            A5_STEP(1);
    }
    A5_STORE(0); A5_STORE(1); A5_STORE(2); A5_STORE(3); A5_STORE(4); A5_STORE(5);
}

/* AVX-512 short kernels: 2 and 4 rows x 64 columns, for the last rows of C
 * when M is not a multiple of 6.  A network's sizes rarely are: 32 channels
 * are 5 x 6 + 2, a batch of 128 is 21 x 6 + 2.  The full kernel would run 6
 * rows of FMAs for those 2 (and a copy through a scratch tile); these run 2
 * (4) rows of FMAs on the same 4 B loads per k step, and write C directly. */
MDK_TARGET_AVX512 void mdk_ukr_avx512_m2(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                         const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                         const float *restrict bias, int accumulate)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    for (int64_t p = 0; p < kc; ++p) {
        const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
        const __m512 b2 = _mm512_load_ps(bp + 32), b3 = _mm512_load_ps(bp + 48);
        A5_ROW(0); A5_ROW(1);
        a += csa;
        bp += ldb;
    }
    A5_STORE(0); A5_STORE(1);
}

MDK_TARGET_AVX512 void mdk_ukr_avx512_m4(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                         const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                         const float *restrict bias, int accumulate)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512 c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    for (int64_t p = 0; p < kc; ++p) {
        const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
        const __m512 b2 = _mm512_load_ps(bp + 32), b3 = _mm512_load_ps(bp + 48);
        A5_ROW(0); A5_ROW(1); A5_ROW(2); A5_ROW(3);
        a += csa;
        bp += ldb;
    }
    A5_STORE(0); A5_STORE(1); A5_STORE(2); A5_STORE(3);
}

/* AVX-512 edge kernels: 6 x 16 and 6 x 32 for the last columns of C, so a
 * 784-wide product (12 x 64 + 16) does not compute a 3/4-empty 64-wide tile. */
#define A5_NARROW(NV)                                                                                           \
    MDK_TARGET_AVX512 void mdk_ukr_avx512_n##NV(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,  \
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

/* ========================================================================
 * Narrow C with both operands contiguous along k: C = A . W^T + bias for an
 * output layer's few columns (n <= 12, say 10 classes), as dot products.
 *
 * The 6 x 16 edge kernel would compute such a product at 10/16 of its width,
 * one B load and 6 broadcasts per 6 FMAs (the broadcasts are the limit), on a
 * packed (transposed) copy of W.  Here each C element is a dot product of a
 * row of A and a row of W, both read in place 16 floats at a time: 4 rows of A
 * times 5 rows of W are 20 accumulators of 16 partial sums, 9 loads per 20
 * FMAs, and one horizontal sum per C element at the end (k/16 FMAs each, so
 * the sums cost little once k is a few hundred).  Rows past m or n repeat the
 * last one (their results are not stored), so there is no scalar edge code.
 * Measured in session 7 (docs/kernels.md).
 * ====================================================================== */
#define DOT_ROW(r)                                                                                              \
    do {                                                                                                        \
        const __m512 x_ = _mm512_maskz_loadu_ps(km_, a##r + p);                                                  \
        c##r##0 = _mm512_fmadd_ps(x_, w0, c##r##0);                                                             \
        c##r##1 = _mm512_fmadd_ps(x_, w1, c##r##1);                                                             \
        c##r##2 = _mm512_fmadd_ps(x_, w2, c##r##2);                                                             \
        c##r##3 = _mm512_fmadd_ps(x_, w3, c##r##3);                                                             \
        c##r##4 = _mm512_fmadd_ps(x_, w4, c##r##4);                                                             \
    } while (0)
#define DOT_STEP(km)                                                                                            \
    do {                                                                                                        \
        const __mmask16 km_ = (km);                                                                             \
        const __m512 w0 = _mm512_maskz_loadu_ps(km_, b0 + p), w1 = _mm512_maskz_loadu_ps(km_, b1 + p);          \
        const __m512 w2 = _mm512_maskz_loadu_ps(km_, b2 + p), w3 = _mm512_maskz_loadu_ps(km_, b3 + p);          \
        const __m512 w4 = _mm512_maskz_loadu_ps(km_, b4 + p);                                                   \
        DOT_ROW(0); DOT_ROW(1); DOT_ROW(2); DOT_ROW(3);                                                          \
    } while (0)
#define DOT_SUMS(r)                                                                                             \
    do {                                                                                                        \
        out[r][0] = _mm512_reduce_add_ps(c##r##0);                                                              \
        out[r][1] = _mm512_reduce_add_ps(c##r##1);                                                              \
        out[r][2] = _mm512_reduce_add_ps(c##r##2);                                                              \
        out[r][3] = _mm512_reduce_add_ps(c##r##3);                                                              \
        out[r][4] = _mm512_reduce_add_ps(c##r##4);                                                              \
    } while (0)

/* out[r][j] = sum_p a_r[p] * b_j[p] for 4 rows a_r and 5 rows b_j of length k. */
MDK_TARGET_AVX512 static void dot_tile_4x5(int64_t k, const float *a0, const float *a1, const float *a2,
                                           const float *a3, const float *b0, const float *b1, const float *b2,
                                           const float *b3, const float *b4, float out[4][5])
{
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c04 = c00;
    __m512 c10 = c00, c11 = c00, c12 = c00, c13 = c00, c14 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    __m512 c24 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00, c34 = c00;
    int64_t p = 0;
    for (; p + 16 <= k; p += 16)
        DOT_STEP((__mmask16)0xffff);
    if (p < k) { /* the last k % 16 steps: masked loads read zeros past the end */
        const __mmask16 tail = (__mmask16)((1u << (k - p)) - 1u);
        DOT_STEP(tail);
    }
    DOT_SUMS(0); DOT_SUMS(1); DOT_SUMS(2); DOT_SUMS(3);
}

MDK_TARGET_AVX512 void mdk_gemm_dot_avx512(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                                           const float *w, int64_t ldw, float *c, int64_t ldc, const float *bias,
                                           int act)
{
    for (int64_t i0 = 0; i0 < m; i0 += 4) {
        const int64_t rows = MDK_MIN(4, m - i0);
        const float *ar[4];
        for (int r = 0; r < 4; ++r)
            ar[r] = a + MDK_MIN(i0 + r, m - 1) * lda;
        for (int64_t j0 = 0; j0 < n; j0 += 5) {
            const int64_t cols = MDK_MIN(5, n - j0);
            const float *wj[5];
            for (int j = 0; j < 5; ++j)
                wj[j] = w + MDK_MIN(j0 + j, n - 1) * ldw;
            float out[4][5];
            dot_tile_4x5(k, ar[0], ar[1], ar[2], ar[3], wj[0], wj[1], wj[2], wj[3], wj[4], out);
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t j = 0; j < cols; ++j)
                    c[(i0 + r) * ldc + j0 + j] = out[r][j] + (bias ? bias[j0 + j] : 0.0f);
        }
        if (act != MDK_ACT_NONE)
            mdk_bias_rows_act(c + i0 * ldc, ldc, rows, n, NULL, act);
    }
}

/* ========================================================================
 * The same dot products with AVX2 + FMA, for machines without AVX-512 (most
 * laptops and CI runners): C = act(A . W^T + bias), A row i at a + i*lda and
 * W row j at w + j*ldw, both contiguous along k.  Where it is used and why:
 * mdk_gemm_try_dot (gemm_strategies.c).
 *
 * 8-float vectors and 16 ymm registers instead of 32.  A tile of R rows of A
 * by C rows of W keeps R*C = 12 accumulators of 8 partial sums; per 8 steps of
 * k it holds the smaller side's vectors in registers and loads the other
 * side's one at a time, so 12 + min(R, C) + 1 <= 16 registers:
 *
 *   4 x 3   while 4 rows of A are left: 7 loads per 12 FMAs
 *   2 x 6   for the last 2 or 3 rows (a batch of 2 would otherwise compute 4)
 *   1 x 12  for the last row (a batch of 1: each W element is used once anyway)
 *
 * Columns past n repeat the last row of W (their sums are not stored); the
 * last k % 8 steps use masked loads (zeros past the end).  Each C element
 * ends with a horizontal sum, 4 of them at a time.  The tiles are one macro
 * over R and C: with these small constant bounds GCC unrolls the loops and
 * keeps acc[][] in registers (checked with objdump: the 4 x 3 k loop is 7
 * loads and 12 FMAs, no stack accesses).  Measured in session 8
 * (docs/kernels.md).
 * ====================================================================== */

/* The four horizontal sums of a, b, c and d, in that order: pairwise adds
 * (hadd) twice, then the two 128-bit halves: 5 instructions for 4 sums. */
MDK_TARGET_AVX2 static inline __m128 hsum4_avx2(__m256 a, __m256 b, __m256 c, __m256 d)
{
    const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

/* One step of 8 k values (or, with a masked `load`, the last k % 8) for every
 * accumulator of an R x C tile, holding the smaller side in registers. */
#define DOT2_STEP(R, C, load)                                                                                   \
    do {                                                                                                        \
        if (R > C) { /* hold C vectors of W, load A's one row at a time */                                      \
            __m256 wv[C];                                                                                       \
            for (int j = 0; j < C; ++j)                                                                         \
                wv[j] = load(wr[j] + p);                                                                        \
            for (int r = 0; r < R; ++r) {                                                                       \
                const __m256 x_ = load(ar[r] + p);                                                              \
                for (int j = 0; j < C; ++j)                                                                     \
                    acc[r][j] = _mm256_fmadd_ps(x_, wv[j], acc[r][j]);                                          \
            }                                                                                                   \
        } else { /* hold R vectors of A, load W's one row at a time */                                          \
            __m256 xv[R];                                                                                       \
            for (int r = 0; r < R; ++r)                                                                         \
                xv[r] = load(ar[r] + p);                                                                        \
            for (int j = 0; j < C; ++j) {                                                                       \
                const __m256 w_ = load(wr[j] + p);                                                              \
                for (int r = 0; r < R; ++r)                                                                     \
                    acc[r][j] = _mm256_fmadd_ps(xv[r], w_, acc[r][j]);                                          \
            }                                                                                                   \
        }                                                                                                       \
    } while (0)
#define DOT2_MASKED_LOAD(ptr) _mm256_maskload_ps((ptr), tail)

/* out[r*C + j] = sum_p ar[r][p] * wr[j][p] for R rows ar and C rows wr of length k (R*C = 12). */
#define DOT2_TILE(R, C)                                                                                         \
    MDK_TARGET_AVX2 static void dot_tile_avx2_##R##x##C(int64_t k, const float *const *ar, const float *const *wr, \
                                                        float *out)                                             \
    {                                                                                                           \
        __m256 acc[R][C];                                                                                       \
        for (int r = 0; r < R; ++r)                                                                             \
            for (int j = 0; j < C; ++j)                                                                         \
                acc[r][j] = _mm256_setzero_ps();                                                                \
        int64_t p = 0;                                                                                          \
        for (; p + 8 <= k; p += 8)                                                                              \
            DOT2_STEP(R, C, _mm256_loadu_ps);                                                                   \
        if (p < k) { /* the last k % 8 steps: lanes past k load as zeros */                                     \
            const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(k - p)),                            \
                                                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));                 \
            DOT2_STEP(R, C, DOT2_MASKED_LOAD);                                                                  \
        }                                                                                                       \
        const __m256 *flat = &acc[0][0]; /* out[] in acc's order */                                             \
        for (int q = 0; q < R * C; q += 4)                                                                      \
            _mm_storeu_ps(out + q, hsum4_avx2(flat[q], flat[q + 1], flat[q + 2], flat[q + 3]));                  \
    }
DOT2_TILE(4, 3)
DOT2_TILE(2, 6)
DOT2_TILE(1, 12)

/* Rows of A in the tile that starts at row i0 (see above): 4, 2 or 1. */
static inline int dot2_tile_rows(int64_t m, int64_t i0) { return m - i0 >= 4 ? 4 : m - i0 >= 2 ? 2 : 1; }

/* C[i0 : i0+R, j_begin : j_end] = A . W^T + bias for the R rows of the tile at i0, in tiles of 12/R columns. */
MDK_TARGET_AVX2 static void dot_rows_avx2(int64_t i0, int64_t j_begin, int64_t j_end, int64_t m, int64_t n,
                                          int64_t k, const float *a, int64_t lda, const float *w, int64_t ldw,
                                          float *c, int64_t ldc, const float *bias)
{
    const int rows = dot2_tile_rows(m, i0), tile_cols = 12 / rows;
    const float *ar[4];
    for (int r = 0; r < rows; ++r)
        ar[r] = a + (i0 + r) * lda;
    for (int64_t j0 = j_begin; j0 < j_end; j0 += tile_cols) {
        const int64_t cols = MDK_MIN(tile_cols, j_end - j0);
        const float *wr[12];
        for (int j = 0; j < tile_cols; ++j)
            wr[j] = w + MDK_MIN(j0 + j, n - 1) * ldw;
        float out[12];
        if (rows == 4)
            dot_tile_avx2_4x3(k, ar, wr, out);
        else if (rows == 2)
            dot_tile_avx2_2x6(k, ar, wr, out);
        else
            dot_tile_avx2_1x12(k, ar, wr, out);
        for (int r = 0; r < rows; ++r)
            for (int64_t j = 0; j < cols; ++j)
                c[(i0 + r) * ldc + j0 + j] = out[r * tile_cols + j] + (bias ? bias[j0 + j] : 0.0f);
    }
}

MDK_TARGET_AVX2 void mdk_gemm_dot_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                                       const float *w, int64_t ldw, float *c, int64_t ldc, const float *bias,
                                       int act)
{
    if (m <= n) {
        /* Few rows (a small batch), many columns: 12 rows of W at a time are read
         * once, from wherever W is, and serve every row tile of A from L1. */
        for (int64_t j0 = 0; j0 < n; j0 += 12)
            for (int64_t i0 = 0; i0 < m; i0 += dot2_tile_rows(m, i0))
                dot_rows_avx2(i0, j0, MDK_MIN(j0 + 12, n), m, n, k, a, lda, w, ldw, c, ldc, bias);
        if (act != MDK_ACT_NONE)
            mdk_bias_rows_act(c, ldc, m, n, NULL, act);
        return;
    }
    /* Few columns (an output layer), many rows: W stays in cache, A is read once. */
    for (int64_t i0 = 0; i0 < m; i0 += dot2_tile_rows(m, i0)) {
        dot_rows_avx2(i0, 0, n, m, n, k, a, lda, w, ldw, c, ldc, bias);
        if (act != MDK_ACT_NONE) /* while the tile's rows of C are in L1 */
            mdk_bias_rows_act(c + i0 * ldc, ldc, dot2_tile_rows(m, i0), n, NULL, act);
    }
}

/* ========================================================================
 * Packers: the transposing layout (contiguous along k: a row-major A, or
 * B = W^T for a row-major W) goes through register transposes
 * (transpose_x86.h); the plain copies use whole vectors.
 * ====================================================================== */

/* AVX2 panel packer: the transposing case 8 x 8 floats at a time in registers
 * (A panels are 6 wide, B panels 16 or 8); everything else as the generic one. */
MDK_TARGET_AVX2 void mdk_pack_panel_avx2(int64_t len, int64_t kc, const float *src, int64_t rs, int64_t cs,
                                         int width, float *restrict dst)
{
    if (cs == 1 && (width % 8 == 0 || width < 8)) { /* rows past len (a partial panel) pack as zeros */
        const int groups = width < 8 ? 1 : width / 8, lanes = width < 8 ? width : 8;
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        int64_t p0 = 0;
        for (; p0 + 8 <= kc; p0 += 8) {
            for (int g = 0; g < groups; ++g) {
                __m256 r[8];
                for (int i = 0; i < 8; ++i)
                    r[i] = i < lanes && g * 8 + i < len ? _mm256_loadu_ps(src + (g * 8 + i) * rs + p0)
                                                        : _mm256_setzero_ps();
                mdk_transpose8(r);
                for (int q = 0; q < 8; ++q) /* r[q] = step p0+q, lanes g*8 .. g*8+7 */
                    _mm256_maskstore_ps(dst + (p0 + q) * width + g * 8, mask, r[q]);
            }
        }
        if (p0 < kc)
            mdk_pack_panel_body(len, kc - p0, src + p0, rs, cs, width, dst + p0 * width);
        return;
    }
    mdk_pack_panel_body(len, kc, src, rs, cs, width, dst);
}

/* AVX-512 panel packer: the 6-row A panels, the 64-column B panels and the
 * narrower edge panels (16 and 32 columns). */
MDK_TARGET_AVX512 void mdk_pack_panel_avx512(int64_t len, int64_t kc, const float *src, int64_t rs, int64_t cs,
                                             int width, float *restrict dst)
{
    if (rs == 1 && width % 16 == 0) { /* row-major B: NR/16 vector copies per k (zeros past len) */
        if (len == width) {
            for (int64_t p = 0; p < kc; ++p)
                for (int v = 0; v < width; v += 16)
                    _mm512_store_ps(dst + p * width + v, _mm512_loadu_ps(src + p * cs + v));
            return;
        }
        for (int v = 0; v < width; v += 16) {
            const int64_t n = len - v;
            const __mmask16 m = n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
            for (int64_t p = 0; p < kc; ++p)
                _mm512_store_ps(dst + p * width + v, _mm512_maskz_loadu_ps(m, src + p * cs + v));
        }
        return;
    }
    if (rs == 1 && width < 16) { /* A^T: one masked copy of MR floats per k (zeros past len) */
        const __mmask16 m = (__mmask16)((1u << width) - 1u), valid = (__mmask16)((1u << len) - 1u);
        for (int64_t p = 0; p < kc; ++p)
            _mm512_mask_storeu_ps(dst + p * width, m, _mm512_maskz_loadu_ps(valid, src + p * cs));
        return;
    }
    if (cs == 1 && (width % 16 == 0 || width < 16)) {
        /* Contiguous along k: transpose 16 (lanes) x 16 (k steps) blocks; rows
         * past len (a partial panel: the last columns of B, or a conv's 9
         * window offsets) pack as zeros. */
        const int groups = width < 16 ? 1 : width / 16, lanes = width < 16 ? width : 16;
        const __mmask16 m = (__mmask16)((1u << lanes) - 1u);
        int64_t p0 = 0;
        for (; p0 + 16 <= kc; p0 += 16) {
            for (int g = 0; g < groups; ++g) {
                __m512 r[16];
                for (int i = 0; i < 16; ++i)
                    r[i] = i < lanes && g * 16 + i < len ? _mm512_loadu_ps(src + (g * 16 + i) * rs + p0)
                                                         : _mm512_setzero_ps();
                mdk_transpose16(r);
                for (int q = 0; q < 16; ++q) /* r[q] = step p0+q, lanes g*16 .. g*16+15 */
                    _mm512_mask_storeu_ps(dst + (p0 + q) * width + g * 16, m, r[q]);
            }
        }
        if (p0 < kc) /* the last kc % 16 steps */
            mdk_pack_panel_body(len, kc - p0, src + p0, rs, cs, width, dst + p0 * width);
        return;
    }
    mdk_pack_panel_body(len, kc, src, rs, cs, width, dst);
}
#endif /* MDK_HAVE_X86 */
