/*
 * conv.c -- 2-D convolution, NCHW: the forward pass with its bias and
 * activation, and the gradients with respect to the input and the weight.
 *
 * A convolution is a matrix product once the input patches are unfolded
 * (im2col.c).  Done for the whole batch at once, as the textbook does it,
 * the column matrix is big (N*OH*OW x C*kh*kw: 7 MB for the second layer of
 * a small MNIST CNN at batch 64), written once and read back from memory, and
 * the product comes out channels-last (N*OH*OW x F), so it needs one more
 * pass to become NCHW.  Here each image is done on its own, with its columns
 * in a per-thread buffer that fits in L2 (113 KB for that layer), and the
 * product is arranged so that its result IS the image's NCHW output:
 *
 *   forward          out[n] (F x P)  = W (F x K)       . cols[n] (K x P)  + bias, act
 *   weight gradient  dW^T   (K x F) += cols[n] (K x P) . dY[n]^T (P x F)  over n, then one transpose
 *   input gradient   dcols  (K x P)  = W^T (K x F)     . dY[n] (F x P),   then col2im into dx[n]
 *
 * with K = C*kh*kw (per group) and P = OH*OW.  The columns are in the
 * "planes" layout (K x P, im2col.c) with rows padded to a multiple of 16
 * floats in a 64-byte aligned buffer, so the GEMM reads them in place instead
 * of packing them (gemm_strategies.c): as B in the forward product, as A in
 * the weight gradient's.  W (and W^T, made once per call) is small and read
 * in place as A.  The bias is added and the activation applied per row of
 * the output tile in the GEMM's epilogue, while the tile is in L1.  A 1x1
 * convolution with stride 1 and no padding needs no columns at all: the
 * image itself is the K x P matrix.
 *
 * Groups split the channels: group g convolves input channels
 * [g*C/G, (g+1)*C/G) with filters [g*F/G, (g+1)*F/G); each is its own
 * product per image.
 */
#include "conv_internal.h"
#include "gemm_internal.h"

static int64_t round_up16(int64_t n) { return (n + 15) / 16 * 16; }

/* A 1x1 window moved one pixel at a time over an unpadded image: its
 * columns are the image itself (planes layout, ld = H*W). */
static int pointwise(const mdk_conv_geometry *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* The image's zero-padded frame for the planes layout (im2col.c): a buffer
 * for cg channels whose border is zeroed here, once per call (only the
 * interior is written per image); NULL without padding, *failed if out of
 * memory. */
static float *padded_frame(const mdk_conv_geometry *g, int64_t cg, int *failed)
{
    if (g->ph == 0 && g->pw == 0)
        return NULL;
    const size_t floats = (size_t)(cg * mdk_conv_hp(g) * mdk_conv_wp(g));
    float *xp = mdk_workspace(MDK_WS_CONV_PAD, floats);
    if (xp == NULL)
        *failed = 1;
    else
        memset(xp, 0, floats * sizeof(float));
    return xp;
}

/* One image's planes (K x P, row stride ld) for input channels x (cg of them). */
static void image_planes(const mdk_conv_geometry *g, int64_t cg, const float *x, float *xp, float *planes, int64_t ld)
{
    if (xp != NULL) {
        mdk_pad_image(g, cg, x, xp);
        x = xp;
    }
    mdk_im2col_planes(g, cg, x, planes, ld);
}

int mdk_conv2d_forward(const mdk_conv_geometry *g, const float *x, const float *weight, const float *bias,
                       float *out, int act)
{
    const int64_t p = mdk_conv_oh(g) * mdk_conv_ow(g), hw = g->h * g->w;
    const int64_t cg = g->c / g->groups, fg = g->f / g->groups, k = cg * g->kh * g->kw;
    if (g->n <= 0 || p <= 0 || fg <= 0)
        return MDK_OK;
    const int direct = pointwise(g);
    const int64_t ld = direct ? p : round_up16(p); /* row stride of the columns */
    int failed = 0;
    float *cols = direct ? NULL : mdk_workspace(MDK_WS_CONV, (size_t)(k * ld));
    float *xp = direct ? NULL : padded_frame(g, cg, &failed);
    const struct gemm_cfg *cfg = mdk_gemm_cfg();
    float *ap, *bp;
    if ((!direct && cols == NULL) || failed || mdk_gemm_buffers(cfg, fg, p, k, &ap, &bp) != MDK_OK)
        return MDK_ENOMEM;
    for (int64_t b = 0; b < g->n; ++b)
        for (int64_t gi = 0; gi < g->groups; ++gi) {
            const float *xg = x + (b * g->c + gi * cg) * hw;
            const float *cols_g = xg;
            if (!direct) {
                image_planes(g, cg, xg, xp, cols, ld);
                cols_g = cols;
            }
            const struct gemm_epilogue ep = {NULL, bias ? bias + gi * fg : NULL, act, 0};
            mdk_gemm_blocked(cfg, fg, p, k, weight + gi * fg * k, k, 1, cols_g, ld, 1, out + (b * g->f + gi * fg) * p,
                             p, &ep, ap, bp);
        }
    return MDK_OK;
}

/* dW^T (K x F) += cols[n] (K x P) . dY[n]^T (P x F), summed over the images,
 * then transposed into dW once.  The columns, the big operand, are read in
 * place as A (the planes layout is row-major along the sum over positions);
 * only dY[n]^T, F x P, is packed (with register transposes).  The other way
 * round, dW = dY[n] . cols[n]^T, packs the K x P columns instead (4.5x more
 * for the CNN's second layer) and leaves F = 32 rows, 5 full micro-tiles of 6
 * and a 2-row edge: measured ~25% slower there. */
int mdk_conv2d_backward_weight(const mdk_conv_geometry *g, const float *x, const float *grad, float *dw)
{
    const int64_t p = mdk_conv_oh(g) * mdk_conv_ow(g), hw = g->h * g->w;
    const int64_t cg = g->c / g->groups, fg = g->f / g->groups, k = cg * g->kh * g->kw;
    if (g->n <= 0 || p <= 0 || fg <= 0 || k <= 0) {
        memset(dw, 0, (size_t)(g->f * k) * sizeof(float));
        return MDK_OK;
    }
    const int direct = pointwise(g);
    const int64_t ld = direct ? p : round_up16(p);
    int failed = 0;
    float *cols = direct ? NULL : mdk_workspace(MDK_WS_CONV, (size_t)(k * ld));
    float *xp = direct ? NULL : padded_frame(g, cg, &failed);
    float *dwt = mdk_workspace(MDK_WS_CONV_AUX, (size_t)(g->groups * k * fg)); /* dW^T per group */
    const struct gemm_cfg *cfg = mdk_gemm_cfg();
    float *ap, *bp;
    if ((!direct && cols == NULL) || failed || dwt == NULL || mdk_gemm_buffers(cfg, k, fg, p, &ap, &bp) != MDK_OK)
        return MDK_ENOMEM;
    memset(dwt, 0, (size_t)(g->groups * k * fg) * sizeof(float));
    const struct gemm_epilogue sum = {NULL, NULL, MDK_ACT_NONE, 1};
    for (int64_t b = 0; b < g->n; ++b)
        for (int64_t gi = 0; gi < g->groups; ++gi) {
            const float *xg = x + (b * g->c + gi * cg) * hw;
            const float *dy = grad + (b * g->f + gi * fg) * p; /* fg x p, row-major */
            const float *cols_g = xg;
            if (!direct) {
                image_planes(g, cg, xg, xp, cols, ld);
                cols_g = cols;
            }
            /* A = cols (k x p, row stride ld); B = dY^T: element (q, f) = dy[f*p + q] */
            mdk_gemm_blocked(cfg, k, fg, p, cols_g, ld, 1, dy, 1, p, dwt + gi * k * fg, fg, &sum, ap, bp);
        }
    for (int64_t gi = 0; gi < g->groups; ++gi) /* dW_g (fg x k) = (dW^T_g)^T */
        mdk_transpose(dwt + gi * k * fg, fg, dw + gi * fg * k, k, k, fg);
    return MDK_OK;
}

/* dx[n] = col2im(W^T . dY[n]): the product's K x P result (one row per window
 * offset) is added back into the image's padded frame, plane by plane, then
 * the frame's interior is dx[n]. */
int mdk_conv2d_backward_input(const mdk_conv_geometry *g, const float *grad, const float *weight, float *dx)
{
    const int64_t p = mdk_conv_oh(g) * mdk_conv_ow(g), hw = g->h * g->w;
    const int64_t cg = g->c / g->groups, fg = g->f / g->groups, k = cg * g->kh * g->kw;
    memset(dx, 0, (size_t)(g->n * g->c * hw) * sizeof(float));
    if (g->n <= 0 || p <= 0 || fg <= 0 || k <= 0)
        return MDK_OK;
    const int direct = pointwise(g), padded = g->ph != 0 || g->pw != 0;
    const int64_t ld = round_up16(p);
    const size_t frame = (size_t)(cg * mdk_conv_hp(g) * mdk_conv_wp(g));
    float *dcols = direct ? NULL : mdk_workspace(MDK_WS_CONV, (size_t)(k * ld));
    float *xp = padded ? mdk_workspace(MDK_WS_CONV_PAD, frame) : NULL;
    /* W^T per group (k x fg, row-major), made once: the A operand read in place. */
    float *wt = mdk_workspace(MDK_WS_CONV_AUX, (size_t)(g->groups * k * fg));
    const struct gemm_cfg *cfg = mdk_gemm_cfg();
    float *ap, *bp;
    if ((!direct && dcols == NULL) || (padded && xp == NULL) || wt == NULL ||
        mdk_gemm_buffers(cfg, k, p, fg, &ap, &bp) != MDK_OK)
        return MDK_ENOMEM;
    for (int64_t gi = 0; gi < g->groups; ++gi)
        mdk_transpose(weight + gi * fg * k, k, wt + gi * k * fg, fg, fg, k);
    const struct gemm_epilogue plain = {NULL, NULL, MDK_ACT_NONE, 0};
    for (int64_t b = 0; b < g->n; ++b)
        for (int64_t gi = 0; gi < g->groups; ++gi) {
            const float *dy = grad + (b * g->f + gi * fg) * p; /* fg x p */
            float *dxg = dx + (b * g->c + gi * cg) * hw;
            if (direct) { /* dx[n] (cg x p) = W^T . dY[n] */
                mdk_gemm_blocked(cfg, k, p, fg, wt + gi * k * fg, fg, 1, dy, p, 1, dxg, p, &plain, ap, bp);
                continue;
            }
            mdk_gemm_blocked(cfg, k, p, fg, wt + gi * k * fg, fg, 1, dy, p, 1, dcols, ld, &plain, ap, bp);
            if (padded) {
                memset(xp, 0, frame * sizeof(float));
                mdk_col2im_planes(g, cg, dcols, ld, xp);
                mdk_crop_image(g, cg, xp, dxg);
            } else {
                mdk_col2im_planes(g, cg, dcols, ld, dxg); /* dx was cleared above */
            }
        }
    return MDK_OK;
}
