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
 * broadcasts MR floats of A and issues MR*NR/16 FMAs: with MR=14, NR=32 that
 * is 28 FMAs per 2 vector loads + 14 broadcasts, enough work per load to keep
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
 * (6x16, 12 ymm accumulators), AVX-512 (14x32, 28 zmm accumulators) and NEON
 * (8x12) on aarch64.  The driver below is shared.
 */
#include <stdlib.h>

#include "mdk_internal.h"

#if MDK_HAVE_X86
#include <immintrin.h>
#endif
#if MDK_HAVE_NEON
#include <arm_neon.h>
#endif

/* A micro-kernel: C tile (MR x NR, leading dimension ldc) =
 *     accumulate ? C + Ap.Bp : Ap.Bp + bias      (bias: NR floats or NULL) */
typedef void (*ukr_fn)(int64_t kc, const float *restrict ap, const float *restrict bp, float *restrict c,
                       int64_t ldc, const float *restrict bias, int accumulate);

struct gemm_cfg {
    int mr, nr;            /* micro-tile                                       */
    int64_t kc, mc, nc;    /* cache blocks: KC (L1), MC (L2), NC (L3)         */
    ukr_fn ukr;
};

#define MDK_MR_MAX 16
#define MDK_NR_MAX 32

/* ========================================================================
 * Micro-kernels
 * ====================================================================== */

/* Scalar reference: the same contract in plain C.  Correct on any CPU and the
 * easiest to read; the compiler may still use SSE2 for it. */
enum { SC_MR = 4, SC_NR = 8 };
static void ukr_scalar(int64_t kc, const float *restrict ap, const float *restrict bp, float *restrict c,
                       int64_t ldc, const float *restrict bias, int accumulate)
{
    float acc[SC_MR][SC_NR] = {{0}};
    for (int64_t p = 0; p < kc; ++p) {
        for (int i = 0; i < SC_MR; ++i)
            for (int j = 0; j < SC_NR; ++j)
                acc[i][j] += ap[i] * bp[j];
        ap += SC_MR;
        bp += SC_NR;
    }
    for (int i = 0; i < SC_MR; ++i)
        for (int j = 0; j < SC_NR; ++j)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j] + (bias ? bias[j] : 0.0f);
}

#if MDK_HAVE_X86
/* AVX2 + FMA: 6 rows x 16 columns = 6 x 2 ymm accumulators (12 of 16 ymm
 * registers), 2 for B, 1 for the broadcast A element. */
enum { A2_MR = 6, A2_NR = 16 };
MDK_TARGET_AVX2 static void ukr_avx2(int64_t kc, const float *restrict ap, const float *restrict bp,
                                     float *restrict c, int64_t ldc, const float *restrict bias, int accumulate)
{
    __m256 acc[A2_MR][2];
    for (int i = 0; i < A2_MR; ++i)
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int i = 0; i < A2_MR; ++i)
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; ++p) {
        __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
        for (int i = 0; i < A2_MR; ++i) {
            __m256 a = _mm256_broadcast_ss(ap + i);
            acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
        }
        ap += A2_MR;
        bp += A2_NR;
    }
    __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
    if (bias && !accumulate) {
        bias0 = _mm256_loadu_ps(bias);
        bias1 = _mm256_loadu_ps(bias + 8);
    }
    for (int i = 0; i < A2_MR; ++i) {
        float *ci = c + i * ldc;
        __m256 c0 = accumulate ? _mm256_loadu_ps(ci) : bias0;
        __m256 c1 = accumulate ? _mm256_loadu_ps(ci + 8) : bias1;
        _mm256_storeu_ps(ci, _mm256_add_ps(c0, acc[i][0]));
        _mm256_storeu_ps(ci + 8, _mm256_add_ps(c1, acc[i][1]));
    }
}

/* AVX-512: 14 rows x 32 columns = 14 x 2 zmm accumulators (28 of 32 zmm
 * registers).  Per k: 2 aligned loads of B, 14 broadcasts of A (folded into
 * the FMAs as {1to16} memory operands) and 28 FMAs -> 14 cycles of work on
 * two FMA ports against 16 loads on two-to-three load ports.  The loops over
 * i have constant bounds; GCC unrolls them and keeps acc[][] in registers. */
enum { A5_MR = 14, A5_NR = 32 };
MDK_TARGET_AVX512 static void ukr_avx512(int64_t kc, const float *restrict ap, const float *restrict bp,
                                         float *restrict c, int64_t ldc, const float *restrict bias,
                                         int accumulate)
{
    __m512 acc[A5_MR][2];
    for (int i = 0; i < A5_MR; ++i)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    /* The C tile is touched only at the end; start pulling it in now. */
    for (int i = 0; i < A5_MR; ++i) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; ++p) {
        __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
        /* A is read 14 floats per k: one cache line every ~1.1 steps. Ask for
         * the line ~8 steps ahead so it is in L1 when we get there. */
        _mm_prefetch((const char *)(ap + 8 * A5_MR), _MM_HINT_T0);
        for (int i = 0; i < A5_MR; ++i) {
            __m512 a = _mm512_set1_ps(ap[i]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
        ap += A5_MR;
        bp += A5_NR;
    }
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (bias && !accumulate) {
        bias0 = _mm512_loadu_ps(bias);
        bias1 = _mm512_loadu_ps(bias + 16);
    }
    for (int i = 0; i < A5_MR; ++i) {
        float *ci = c + i * ldc;
        __m512 c0 = accumulate ? _mm512_loadu_ps(ci) : bias0;
        __m512 c1 = accumulate ? _mm512_loadu_ps(ci + 16) : bias1;
        _mm512_storeu_ps(ci, _mm512_add_ps(c0, acc[i][0]));
        _mm512_storeu_ps(ci + 16, _mm512_add_ps(c1, acc[i][1]));
    }
}
#endif /* MDK_HAVE_X86 */

#if MDK_HAVE_NEON
/* NEON: 8 rows x 12 columns = 8 x 3 q-register accumulators (24 of 32).
 * A elements are used straight from lanes of two q registers (fmla by lane). */
enum { NE_MR = 8, NE_NR = 12 };
static void ukr_neon(int64_t kc, const float *restrict ap, const float *restrict bp, float *restrict c,
                     int64_t ldc, const float *restrict bias, int accumulate)
{
    float32x4_t acc[NE_MR][3];
    for (int i = 0; i < NE_MR; ++i)
        acc[i][0] = acc[i][1] = acc[i][2] = vdupq_n_f32(0.0f);
    for (int64_t p = 0; p < kc; ++p) {
        float32x4_t b0 = vld1q_f32(bp), b1 = vld1q_f32(bp + 4), b2 = vld1q_f32(bp + 8);
        for (int i = 0; i < NE_MR; ++i) {
            float32x4_t a = vdupq_n_f32(ap[i]);
            acc[i][0] = vfmaq_f32(acc[i][0], a, b0);
            acc[i][1] = vfmaq_f32(acc[i][1], a, b1);
            acc[i][2] = vfmaq_f32(acc[i][2], a, b2);
        }
        ap += NE_MR;
        bp += NE_NR;
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

/* Blocking per path.  Measured on a Sapphire-Rapids-class core (L1d 48 KiB,
 * L2 2 MiB, see docs/kernels.md); a Bp micro-panel is KC*NR*4 bytes:
 * AVX-512 256*32*4 = 32 KiB of the 48 KiB L1, leaving room for the streaming
 * A micro-panel (14 KiB); the packed A block MC*KC*4 = 336*256*4 = 336 KiB sits
 * comfortably in L2 next to the Bp panels. */
static struct gemm_cfg cfg_table[MDK_SIMD_COUNT] = {
    [MDK_SIMD_SCALAR] = {SC_MR, SC_NR, 256, 128, 2048, ukr_scalar},
#if MDK_HAVE_X86
    [MDK_SIMD_AVX2] = {A2_MR, A2_NR, 256, 144, 3072, ukr_avx2},
    [MDK_SIMD_AVX512] = {A5_MR, A5_NR, 256, 336, 3072, ukr_avx512},
#endif
#if MDK_HAVE_NEON
    [MDK_SIMD_NEON] = {NE_MR, NE_NR, 256, 128, 2048, ukr_neon},
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

/* ========================================================================
 * Packing
 * ====================================================================== */

/* Ap: ceil(mc/MR) micro-panels, each kc steps of MR consecutive floats:
 * Ap[panel][p][i] = A[i0 + i][p], zero where i0 + i >= mc. */
static void pack_a(int64_t mc, int64_t kc, const float *a, int64_t rsa, int64_t csa, int mr, float *restrict ap)
{
    for (int64_t i0 = 0; i0 < mc; i0 += mr) {
        int64_t rows = MDK_MIN(mr, mc - i0);
        const float *panel = a + i0 * rsa;
        if (rows == mr && rsa == 1) {
            /* A^T stored row-major (dW = dY^T X): each k step is MR contiguous floats. */
            for (int64_t p = 0; p < kc; ++p)
                memcpy(ap + p * mr, panel + p * csa, (size_t)mr * sizeof(float));
        } else if (rows == mr && csa == 1) {
            /* Row-major A: read each row sequentially, scatter into its lane. */
            for (int64_t i = 0; i < mr; ++i) {
                const float *row = panel + i * rsa;
                for (int64_t p = 0; p < kc; ++p)
                    ap[p * mr + i] = row[p];
            }
        } else {
            for (int64_t p = 0; p < kc; ++p) {
                for (int64_t i = 0; i < rows; ++i)
                    ap[p * mr + i] = panel[i * rsa + p * csa];
                for (int64_t i = rows; i < mr; ++i)
                    ap[p * mr + i] = 0.0f;
            }
        }
        ap += (int64_t)mr * kc;
    }
}

/* Bp: ceil(nc/NR) micro-panels, each kc steps of NR consecutive floats:
 * Bp[panel][p][j] = B[p][j0 + j], zero where j0 + j >= nc. */
static void pack_b(int64_t kc, int64_t nc, const float *b, int64_t rsb, int64_t csb, int nr, float *restrict bp)
{
    for (int64_t j0 = 0; j0 < nc; j0 += nr) {
        int64_t cols = MDK_MIN(nr, nc - j0);
        const float *panel = b + j0 * csb;
        if (cols == nr && csb == 1) {
            /* Row-major B: each k step is one contiguous run of NR floats. */
            for (int64_t p = 0; p < kc; ++p)
                memcpy(bp + p * nr, panel + p * rsb, (size_t)nr * sizeof(float));
        } else if (cols == nr && rsb == 1) {
            /* B = W^T with W row-major (the linear layer's forward): read each
             * row of W sequentially, write it down one lane of the panel. */
            for (int64_t j = 0; j < nr; ++j) {
                const float *col = panel + j * csb;
                for (int64_t p = 0; p < kc; ++p)
                    bp[p * nr + j] = col[p];
            }
        } else {
            for (int64_t p = 0; p < kc; ++p) {
                for (int64_t j = 0; j < cols; ++j)
                    bp[p * nr + j] = panel[p * rsb + j * csb];
                for (int64_t j = cols; j < nr; ++j)
                    bp[p * nr + j] = 0.0f;
            }
        }
        bp += (int64_t)nr * kc;
    }
}

/* ========================================================================
 * The driver: the five loops
 * ====================================================================== */

static void *aligned_buffer(size_t floats, void **raw)
{
    /* C99 has no aligned_alloc: over-allocate and round up to 64 bytes (a
     * cache line, and the alignment of a zmm load). */
    *raw = malloc(floats * sizeof(float) + 64);
    if (*raw == NULL)
        return NULL;
    return (void *)(((uintptr_t)*raw + 63) & ~(uintptr_t)63);
}

static void apply_act_rows(float *c, int64_t ldc, int64_t rows, int64_t cols, int act)
{
    static const int unary_op[] = {0, MDK_UN_RELU, MDK_UN_SIGMOID, MDK_UN_TANH};
    for (int64_t i = 0; i < rows; ++i)
        mdk_unary(unary_op[act], c + i * ldc, c + i * ldc, cols);
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

    for (int64_t jc = 0; jc < n; jc += cfg->nc) {                      /* 5th loop */
        const int64_t nc = MDK_MIN(cfg->nc, n - jc);
        for (int64_t pc = 0; pc < k; pc += cfg->kc) {                  /* 4th loop */
            const int64_t kc = MDK_MIN(cfg->kc, k - pc);
            const int first = pc == 0, last = pc + kc == k;
            pack_b(kc, nc, b + pc * rsb + jc * csb, rsb, csb, nr, bp);
            for (int64_t ic = 0; ic < m; ic += cfg->mc) {              /* 3rd loop */
                const int64_t mc = MDK_MIN(cfg->mc, m - ic);
                pack_a(mc, kc, a + ic * rsa + pc * csa, rsa, csa, mr, ap);
                for (int64_t jr = 0; jr < nc; jr += nr) {               /* 2nd loop */
                    const int64_t cols = MDK_MIN(nr, nc - jr);
                    const float *bpanel = bp + jr * kc;
                    const float *bias_j = NULL;
                    if (bias && first) {
                        if (cols == nr) {
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
                        const float *apanel = ap + ir * kc;
                        if (rows == mr && cols == nr) {
                            cfg->ukr(kc, apanel, bpanel, cij, ldc, bias_j, !first);
                        } else {
                            /* Edge: run the full tile into scratch, copy the valid part. */
                            if (!first)
                                for (int64_t i = 0; i < rows; ++i)
                                    memcpy(tile + i * nr, cij + i * ldc, (size_t)cols * sizeof(float));
                            cfg->ukr(kc, apanel, bpanel, tile, nr, bias_j, !first);
                            for (int64_t i = 0; i < rows; ++i)
                                memcpy(cij + i * ldc, tile + i * nr, (size_t)cols * sizeof(float));
                        }
                        if (last && act != MDK_ACT_NONE) /* epilogue while the tile is in L1 */
                            apply_act_rows(cij, ldc, rows, cols, act);
                    }
                }
            }
        }
    }
}

/* Allocate the packing buffers for products up to m x n x k (sized to the
 * problem, so small products do not pay for a full NC-wide buffer). */
static int gemm_buffers(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t k, float **ap, float **bp,
                        void **raw_a, void **raw_b)
{
    int64_t mc = MDK_MIN(cfg->mc, m), nc = MDK_MIN(cfg->nc, n), kc = MDK_MIN(cfg->kc, k);
    mc = (mc + cfg->mr - 1) / cfg->mr * cfg->mr;
    nc = (nc + cfg->nr - 1) / cfg->nr * cfg->nr;
    if (kc < 1)
        kc = 1;
    *ap = aligned_buffer((size_t)(mc * kc), raw_a);
    *bp = aligned_buffer((size_t)(nc * kc), raw_b);
    if (*ap == NULL || *bp == NULL) {
        free(*raw_a);
        free(*raw_b);
        return MDK_ENOMEM;
    }
    return MDK_OK;
}

int mdk_sgemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b,
              int64_t rsb, int64_t csb, float *c, int64_t ldc, const float *bias, int act)
{
    if (m <= 0 || n <= 0)
        return MDK_OK;
    const struct gemm_cfg *cfg = &cfg_table[mdk_active_path];
    float *ap, *bp;
    void *raw_a = NULL, *raw_b = NULL;
    int err = gemm_buffers(cfg, m, n, k, &ap, &bp, &raw_a, &raw_b);
    if (err)
        return err;
    gemm_blocked(cfg, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, bias, act, ap, bp);
    free(raw_a);
    free(raw_b);
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
    void *raw_a = NULL, *raw_b = NULL;
    int err = gemm_buffers(cfg, m, n, k, &ap, &bp, &raw_a, &raw_b);
    if (err)
        return err;
    for (int64_t t = 0; t < batch; ++t)
        gemm_blocked(cfg, m, n, k, a + a_off[t], rsa, csa, b + b_off[t], rsb, csb, c + t * c_stride, ldc, NULL,
                     MDK_ACT_NONE, ap, bp);
    free(raw_a);
    free(raw_b);
    return MDK_OK;
}
