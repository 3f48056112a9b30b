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
 * whole KC-long loop.  Each step k loads NR floats of B, broadcasts MR floats
 * of A and issues MR*NR multiply-adds: on AVX-512 with MR=6, NR=64 that is
 * 24 FMAs per 4 vector loads + 6 broadcasts, enough work per load to keep both
 * FMA ports busy.  Everything outside the micro-kernel exists to make its
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
 * This file holds the driver (the five loops), the packing, the cache blocks
 * and the scalar micro-kernel, the reference every other one is checked
 * against.  Beside it (gemm_internal.h lists them): the micro-kernels written
 * with each instruction set's intrinsics (gemm_x86.c: AVX2 6x16, AVX-512 6x64;
 * gemm_neon.c: NEON 8x12), the routes that skip packing for small batches
 * (gemm_strategies.c), register transposes (transpose.c) and the per-thread
 * packing buffers (workspace.c).
 */
#include "gemm_internal.h"

/* ========================================================================
 * The scalar micro-kernel: the contract of every micro-kernel (see ukr_fn in
 * gemm_internal.h) in plain C.  Correct on any CPU and the easiest to read;
 * the compiler may still use SSE2 for it.
 * ====================================================================== */
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

/* ========================================================================
 * Packing
 *
 * A micro-panel of A is MR rows x kc, stored k-major: Ap[p][i] = A[i][p]
 * (MR consecutive floats per step k, exactly what the micro-kernel
 * broadcasts).  A micro-panel of B is kc x NR: Bp[p][j] = B[p][j] (NR
 * consecutive floats per step, the vectors the micro-kernel loads).  Rows or
 * columns past the edge of the matrix are zero.
 *
 * The generic packer handles any strides (mdk_pack_panel_body in
 * gemm_internal.h).  Both operands are read "along k" in one of two ways:
 * contiguous along k (row-major A, or B = W^T for a row-major W), which needs
 * a transpose while packing, or contiguous across the panel (A^T stored
 * row-major, row-major B), which is a plain copy.  The x86 packers
 * (gemm_x86.c) do the transposing case 16 x 16 (AVX-512) or 8 x 8 (AVX2)
 * floats at a time in registers: packing is O(n^2) work, but for a 128-row
 * batch it is a third of the time if done one float at a time.
 * ====================================================================== */
static void pack_panel_generic(int64_t len, int64_t kc, const float *src, int64_t rs, int64_t cs, int width,
                               float *restrict dst)
{
    mdk_pack_panel_body(len, kc, src, rs, cs, width, dst);
}

/* Ap: ceil(mc/MR) micro-panels of A[0:mc, 0:kc]. */
static void pack_a(const struct gemm_cfg *cfg, int64_t mc, int64_t kc, const float *a, int64_t rsa, int64_t csa,
                   float *restrict ap)
{
    for (int64_t i0 = 0; i0 < mc; i0 += cfg->mr)
        cfg->pack_a_panel(MDK_MIN(cfg->mr, mc - i0), kc, a + i0 * rsa, rsa, csa, cfg->mr, ap + i0 * kc);
}

/* The micro-kernel for a column panel with `cols` <= NR valid columns, and its
 * width: the full kernel, or a narrower one for the last columns of C (so
 * N = 784 = 12 x 64 + 16 does not compute a 3/4-empty 64-wide tile). */
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

/* The kernel for the last `rows` < MR rows of C in an NR-wide column panel
 * (not a narrow edge one: the short kernels are NR wide), and how many rows
 * it computes: a shorter kernel where the path has one (the rows past `rows`
 * are the packed panel's zero padding), else the full kernel. */
static int row_kernel(const struct gemm_cfg *cfg, int64_t rows, ukr_fn *ukr)
{
    for (int t = 0; t < 2; ++t)
        if (cfg->short_mr[t] != 0 && rows <= cfg->short_mr[t]) {
            *ukr = cfg->short_ukr[t];
            return cfg->short_mr[t];
        }
    *ukr = cfg->ukr;
    return cfg->mr;
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

/* ========================================================================
 * Cache blocks per path, measured on a Sapphire-Rapids-class core (L1d 48 KiB,
 * L2 2 MiB; sweeps in docs/kernels.md; blocks are then balanced per problem).
 *   AVX-512 (6x64): KC = 512, MC = 240.  The packed A block MC x KC
 *     (480 KiB) lives in L2 and one A micro-panel (6 x 512 x 4 = 12 KiB) in
 *     L1 while the micro-kernel runs; the B micro-panel (512 x 64 x 4 =
 *     128 KiB) is bigger than L1 and streams from L2, a sequential stream the
 *     hardware prefetcher keeps up with.  KC = 384..512 beat 256 by a few
 *     percent: fewer passes over C.
 *   AVX2 (6x16): KC = 512, MC = 120: the B micro-panel (32 KiB) fits L1.
 *   NC = 3072 keeps the packed B block (KC x NC, 6 MiB) in L3.
 * ====================================================================== */
static struct gemm_cfg cfg_table[MDK_SIMD_COUNT] = {
    /* MR, NR, KC, MC, NC; micro-kernel; packers (A, B); narrow kernels (last columns); short kernels (last rows) */
    [MDK_SIMD_SCALAR] = {SC_MR, SC_NR, 256, 128, 2048, ukr_scalar, pack_panel_generic, pack_panel_generic,
                         {0, 0}, {NULL, NULL}, {0, 0}, {NULL, NULL}},
#if MDK_HAVE_X86
    [MDK_SIMD_AVX2] = {A2_MR, A2_NR, 512, 120, 3072, mdk_ukr_avx2, mdk_pack_panel_avx2, mdk_pack_panel_avx2,
                       {8, 0}, {mdk_ukr_avx2_n8, NULL}, {0, 0}, {NULL, NULL}},
    [MDK_SIMD_AVX512] = {A5_MR, A5_NR, 512, 240, 3072, mdk_ukr_avx512, mdk_pack_panel_avx512,
                         mdk_pack_panel_avx512, {16, 32}, {mdk_ukr_avx512_n16, mdk_ukr_avx512_n32},
                         {2, 4}, {mdk_ukr_avx512_m2, mdk_ukr_avx512_m4}},
#endif
#if MDK_HAVE_NEON
    [MDK_SIMD_NEON] = {NE_MR, NE_NR, 256, 128, 2048, mdk_ukr_neon, pack_panel_generic, pack_panel_generic,
                       {0, 0}, {NULL, NULL}, {0, 0}, {NULL, NULL}},
#endif
};

const struct gemm_cfg *mdk_gemm_cfg(void) { return &cfg_table[mdk_active_path]; }

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

/* An empty sum (k = 0): C = act(bias), or C unchanged when accumulating. */
static void gemm_k0(int64_t m, int64_t n, float *c, int64_t ldc, const struct gemm_epilogue *ep)
{
    if (ep->accumulate)
        return;
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
            c[i * ldc + j] = ep->col_bias ? ep->col_bias[j] : 0.0f;
    if (ep->row_bias || ep->act != MDK_ACT_NONE)
        mdk_bias_rows_act(c, ldc, m, n, ep->row_bias, ep->act);
}

void mdk_gemm_blocked(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa,
                      int64_t csa, const float *b, int64_t rsb, int64_t csb, float *c, int64_t ldc,
                      const struct gemm_epilogue *ep, float *ap, float *bp)
{
    const int mr = cfg->mr, nr = cfg->nr;
    /* Scratch tile for partial edge tiles, and a zero-padded bias for them. */
    float tile[MDK_MR_MAX * MDK_NR_MAX] __attribute__((aligned(64)));
    float bias_tile[MDK_NR_MAX] __attribute__((aligned(64)));
    const float *col_bias = ep->accumulate ? NULL : ep->col_bias;
    const int finish = !ep->accumulate && (ep->row_bias != NULL || ep->act != MDK_ACT_NONE);

    if (k == 0) {
        gemm_k0(m, n, c, ldc, ep);
        return;
    }

    /* Equal-sized blocks: k = 784 with KC = 512 runs as 392 + 392, not 512 + 272,
     * and m = 400 with MC = 336 as 204 + 196, not 336 + 64 (a short last block
     * pays the packing and loop overheads for little work). */
    const int64_t kc_step = balanced_block(k, cfg->kc, 1), mc_step = balanced_block(m, cfg->mc, mr);
    /* Small batches skip packing an operand where that measured faster (gemm_strategies.c). */
    const int direct_a = mdk_gemm_a_in_place(cfg, m, n, rsa, csa);
    const int direct_b = mdk_gemm_b_in_place(m, b, rsb, csb);
    for (int64_t jc = 0; jc < n; jc += cfg->nc) {                      /* 5th loop */
        const int64_t nc = MDK_MIN(cfg->nc, n - jc);
        for (int64_t pc = 0; pc < k; pc += kc_step) {                  /* 4th loop */
            const int64_t kc = MDK_MIN(kc_step, k - pc);
            const int first = pc == 0, last = pc + kc == k;
            const int accumulate = !first || ep->accumulate; /* add to C, or write it */
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
                    if (col_bias && first) {
                        if (cols == w) {
                            bias_j = col_bias + jc + jr;
                        } else {
                            memset(bias_tile, 0, sizeof bias_tile);
                            memcpy(bias_tile, col_bias + jc + jr, (size_t)cols * sizeof(float));
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
                        ukr_fn tile_ukr = ukr;
                        const int tile_rows = rows < mr && w == nr ? row_kernel(cfg, rows, &tile_ukr) : mr;
                        if (rows == tile_rows && cols == w) {
                            tile_ukr(kc, apanel, ars, acs, bpanel, ldb, cij, ldc, bias_j, accumulate);
                        } else {
                            /* Edge: run the full tile into scratch, copy the valid part. */
                            if (accumulate)
                                for (int64_t i = 0; i < rows; ++i)
                                    memcpy(tile + i * w, cij + i * ldc, (size_t)cols * sizeof(float));
                            tile_ukr(kc, apanel, ars, acs, bpanel, ldb, tile, w, bias_j, accumulate);
                            for (int64_t i = 0; i < rows; ++i)
                                memcpy(cij + i * ldc, tile + i * w, (size_t)cols * sizeof(float));
                        }
                        if (last && finish) /* epilogue while the tile is in L1 */
                            mdk_bias_rows_act(cij, ldc, rows, cols, ep->row_bias ? ep->row_bias + ic + ir : NULL,
                                              ep->act);
                    }
                }
            }
        }
    }
}

/* The packing buffers for products up to m x n x k (sized to the problem, so
 * small products do not touch a full NC-wide buffer; kept per thread, see
 * workspace.c). */
int mdk_gemm_buffers(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t k, float **ap, float **bp)
{
    int64_t mc = MDK_MIN(cfg->mc, m), nc = MDK_MIN(cfg->nc, n), kc = MDK_MIN(cfg->kc, k);
    mc = (mc + cfg->mr - 1) / cfg->mr * cfg->mr;
    nc = (nc + cfg->nr - 1) / cfg->nr * cfg->nr;
    if (kc < 1)
        kc = 1;
    *ap = mdk_workspace(MDK_WS_PACK_A, (size_t)(mc * kc));
    *bp = mdk_workspace(MDK_WS_PACK_B, (size_t)(nc * kc));
    return (*ap == NULL || *bp == NULL) ? MDK_ENOMEM : MDK_OK;
}

int mdk_gemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b,
             int64_t rsb, int64_t csb, float *c, int64_t ldc, const struct gemm_epilogue *ep)
{
    if (m <= 0 || n <= 0)
        return MDK_OK;
    const struct gemm_cfg *cfg = mdk_gemm_cfg();
    int err = MDK_OK;
    if (mdk_gemm_try_dot(cfg, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, ep))
        return MDK_OK;
    if (mdk_gemm_try_swapped(cfg, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, ep, &err))
        return err;
    float *ap, *bp;
    err = mdk_gemm_buffers(cfg, m, n, k, &ap, &bp);
    if (err)
        return err;
    mdk_gemm_blocked(cfg, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, ep, ap, bp);
    return MDK_OK;
}

int mdk_sgemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b,
              int64_t rsb, int64_t csb, float *c, int64_t ldc, const float *bias, int act)
{
    const struct gemm_epilogue ep = {bias, NULL, act, 0};
    return mdk_gemm(m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, &ep);
}

int mdk_sgemm_batched(int64_t batch, int64_t m, int64_t n, int64_t k, const float *a, const int64_t *a_off,
                      int64_t rsa, int64_t csa, const float *b, const int64_t *b_off, int64_t rsb, int64_t csb,
                      float *c, int64_t c_stride, int64_t ldc)
{
    if (batch <= 0 || m <= 0 || n <= 0)
        return MDK_OK;
    const struct gemm_cfg *cfg = mdk_gemm_cfg();
    const struct gemm_epilogue plain = {NULL, NULL, MDK_ACT_NONE, 0};
    float *ap, *bp;
    int err = mdk_gemm_buffers(cfg, m, n, k, &ap, &bp);
    if (err)
        return err;
    for (int64_t t = 0; t < batch; ++t)
        mdk_gemm_blocked(cfg, m, n, k, a + a_off[t], rsa, csa, b + b_off[t], rsb, csb, c + t * c_stride, ldc,
                         &plain, ap, bp);
    return MDK_OK;
}
