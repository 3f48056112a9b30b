/*
 * gemm_strategies.c -- where the GEMM skips packing an operand, for the
 * shapes of a training step.
 *
 * A training step multiplies by a batch of ~128 rows: X W^T forward, dY W and
 * dY^T X backward.  With m = 128 each packed micro-panel of B serves only
 * 128/MR micro-kernel calls, and copying B into panels cost 15-25% of these
 * products (measured by skipping the copy in a C harness).  Three routes,
 * each used only where it measured faster (docs/kernels.md), each switchable
 * with mdk_gemm_set_strategies() so the tests run every product with each of
 * them on and off (tests/test_kernels_gemm_strategies.py):
 *
 *   A in place   the micro-kernel broadcasts A's elements from the matrix
 *   B in place   the micro-kernel loads B's rows from the matrix (aligned)
 *   swap         compute C^T = B^T A^T when that packs the smaller operand
 *   dot          a narrow or short C = A W^T as dot products of rows (AVX-512, AVX2)
 */
#include "gemm_internal.h"

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
int mdk_gemm_a_in_place(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t rsa, int64_t csa)
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
 * parameters aligned for this (the C set's parameter_storage), and the
 * convolutions lay out their column buffers so (conv.c).  Measured with
 * aligned rows (AVX-512, n = k = 512): 1.15x at m = 128, 1.06x at 256, 0.98x
 * at 512; and 1.0x unaligned.  Only b itself is checked: later blocks stay
 * aligned because rsb is a multiple of 16 floats and NC a multiple of NR (64
 * or 16 on x86; the NEON and scalar kernels load unaligned anyway). */
int mdk_gemm_b_in_place(int64_t m, const float *b, int64_t rsb, int64_t csb)
{
    return (gemm_strategies & MDK_GEMM_B_IN_PLACE) && csb == 1 && m <= 256 && rsb % 16 == 0 &&
           (uintptr_t)b % 64 == 0;
}

/* Computing C^T = B^T A^T instead.  The forward pass of a linear layer is
 * C = X W^T: B = W^T has to be transposed while it is packed -- all of W, the
 * largest operand, for only m/MR uses of each panel when the batch m is small.
 * Swapping the roles makes W the A operand, read in place (its rows are rows
 * of B^T, and C^T has only m <= 2*NR columns: see mdk_gemm_a_in_place), and
 * transposes X, the smaller operand, while packing it.  C^T lands in a
 * workspace and is transposed into C with the bias and activation applied:
 * one extra pass over the m x n output instead of a transposing pass over
 * k x n.  Measured with the transpose included (AVX-512): 1.2x at 64x512x512,
 * 1.1x at 128x512x784 and 128x512x512, 0.98x at 256x512x512.  Only for the
 * linear layer's epilogue (a column bias), not for row biases or sums. */
enum { SWAP_MAX_FLOATS = 1 << 20 }; /* C^T workspace cap (4 MiB per thread; it is kept, see workspace.c) */
static int swap_pays(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t k, int64_t csa, int64_t rsb,
                     int64_t csb, const struct gemm_epilogue *ep)
{
    return (gemm_strategies & MDK_GEMM_SWAP) && k > 0 && ep->row_bias == NULL && !ep->accumulate && rsb == 1 &&
           csb != 1 && csa == 1 && m <= 2 * cfg->nr && m < n && m * n <= SWAP_MAX_FLOATS;
}

/* C[i][j] = act(T[j][i] + bias[j]) for T (n x m, row-major), 16 rows of C at a
 * time so the bias and activation pass finds them in L1. */
static void store_transposed(const float *t, int64_t m, int64_t n, float *c, int64_t ldc, const float *bias, int act)
{
    for (int64_t i0 = 0; i0 < m; i0 += 16) {
        const int64_t rows = MDK_MIN(16, m - i0);
        mdk_transpose(t + i0, m, c + i0 * ldc, ldc, n, rows); /* T[:, i0:i0+rows] -> C[i0:i0+rows, :] */
        if (bias)
            for (int64_t i = i0; i < i0 + rows; ++i)
                for (int64_t j = 0; j < n; ++j)
                    c[i * ldc + j] += bias[j];
        if (act != MDK_ACT_NONE)
            mdk_bias_rows_act(c + i0 * ldc, ldc, rows, n, NULL, act);
    }
}

int mdk_gemm_try_swapped(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa,
                         int64_t csa, const float *b, int64_t rsb, int64_t csb, float *c, int64_t ldc,
                         const struct gemm_epilogue *ep, int *err)
{
    if (!swap_pays(cfg, m, n, k, csa, rsb, csb, ep))
        return 0;
    float *ap, *bp;
    float *t = mdk_workspace(MDK_WS_SWAP, (size_t)(m * n));
    if (t == NULL || mdk_gemm_buffers(cfg, n, m, k, &ap, &bp) != MDK_OK) {
        *err = MDK_ENOMEM;
        return 1;
    }
    /* A' = B^T: element (j, p) = b[p*rsb + j*csb];  B' = A^T: element (p, i) = a[i*rsa + p*csa]. */
    const struct gemm_epilogue plain = {NULL, NULL, MDK_ACT_NONE, 0};
    mdk_gemm_blocked(cfg, n, m, k, b, csb, rsb, a, csa, rsa, t, m, &plain, ap, bp);
    store_transposed(t, m, n, c, ldc, ep->col_bias, ep->act);
    *err = MDK_OK;
    return 1;
}

/* Dot products for a narrow (or short) C.  A linear layer with few outputs (10 classes)
 * computes C = X W^T with n = 10: the blocked loops run it on the 6 x 16 edge
 * kernel at 10/16 of its width, bound by its broadcasts, after packing W^T.
 * When A's rows and W's rows (B's columns) are both contiguous along k, each
 * C element is instead a dot product of two rows read in place
 * (mdk_gemm_dot_avx512, groups of 5 columns).  Measured in session 7 against
 * the blocked route in the same build (docs/kernels.md), m = 128, k = 512:
 * 3.3x for n <= 4, 1.9x for n = 8-10 (the MLP's output layer), 1.3x for
 * n = 12-14, 1.0x at 16, 0.7x at 32; n = 10 at k = 64 0.8x, 128 1.05x,
 * 784 2.1x (each C element ends with a 16-lane horizontal sum, which short
 * sums do not pay for); m = 1024 (k = 512) 1.5x at n = 10, 1.07x at 15.
 * The same route serves a few rows of C at any width (a batch of 1-8 through
 * a linear layer): packing W^T, a full copy of the weights, then costs more
 * than the product, while the dot route reads each row of W once.  Measured
 * (session 7, AVX-512, W 512 x 784 and 512 x 512, PyTorch time / ours,
 * noisy machine): m = 4 0.33x -> 1.15-1.41x, m = 8 0.51-0.66x -> 1.0-1.14x. */
enum { DOT_MAX_N = 15, DOT_MAX_M = 8, DOT_MIN_K = 128 };
/* The AVX2 route (mdk_gemm_dot_avx2, session 8), for machines without AVX-512:
 * it gains more than the AVX-512 one for a batch of 1-8 (the blocked route packs
 * all of W^T there too, at half the vector width) and less for a narrow C (12
 * accumulators of 8 floats per tile instead of 20 of 16, so the horizontal sums
 * weigh more, and n = 10 computes 12 columns).  Measured with the AVX2 path forced, blocked / dot in the same process
 * (medians of 11 interleaved samples, docs/kernels.md):
 *   few columns, m = 128, k = 512: 3.2x for n <= 2, 1.8x at 4, 1.25x at 8-12,
 *     1.0x at 14-15, 0.83x at 16; n = 10: k = 128 0.82-0.95x, 192 0.97-1.08x,
 *     256 1.06-1.14x, 784 1.3x; m = 1024 (k = 512): n = 10-12 0.98-1.08x.
 *   few rows, n = 512, k = 784 or 512: m = 1 5.4-6.0x, 2 3.5-3.7x, 4 2.6x,
 *     8 1.3x, 12 1.2x, 16 0.86x; k = 128: m = 4 2.1x, m = 8 0.97x (192: 1.04x).
 * So few columns means n <= 12 from k = 256, few rows m <= 8 from k = 128. */
enum { DOT2_MAX_N = 12, DOT2_NARROW_MIN_K = 256, DOT2_MAX_M = 8, DOT2_SHORT_MIN_K = 128 };
int mdk_gemm_try_dot(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa,
                     int64_t csa, const float *b, int64_t rsb, int64_t csb, float *c, int64_t ldc,
                     const struct gemm_epilogue *ep)
{
    (void)cfg;
#if MDK_HAVE_X86
    const int rows_along_k = csa == 1 && rsb == 1; /* A's rows and W's rows contiguous along k */
    if (!(gemm_strategies & MDK_GEMM_DOT) || !rows_along_k || ep->accumulate || ep->row_bias != NULL)
        return 0;
    if (mdk_active_path == MDK_SIMD_AVX512 && (n <= DOT_MAX_N || m <= DOT_MAX_M) && k >= DOT_MIN_K) {
        mdk_gemm_dot_avx512(m, n, k, a, rsa, b, csb, c, ldc, ep->col_bias, ep->act);
        return 1;
    }
    const int avx2_pays = (n <= DOT2_MAX_N && k >= DOT2_NARROW_MIN_K) || (m <= DOT2_MAX_M && k >= DOT2_SHORT_MIN_K);
    if (mdk_active_path == MDK_SIMD_AVX2 && avx2_pays) {
        mdk_gemm_dot_avx2(m, n, k, a, rsa, b, csb, c, ldc, ep->col_bias, ep->act);
        return 1;
    }
#else
    (void)m, (void)n, (void)k, (void)a, (void)rsa, (void)csa, (void)b, (void)rsb, (void)csb, (void)c;
    (void)ldc, (void)ep;
#endif
    return 0;
}
