/*
 * pool.c -- max pooling, NCHW: each window's winner (forward) and the
 * gradient routed back to it (backward).  One portable copy serves every
 * SIMD path: the work is comparisons with a serial dependence inside each
 * window, which the loop order below spreads across a row instead.
 */
#include <math.h>

#include "mdk_internal.h"

static int64_t out_size(int64_t size, int64_t k, int64_t stride, int64_t pad)
{
    return (size + 2 * pad - k) / stride + 1;
}

/* argmax[o] is the offset i*kw + j of the winner inside its kh x kw window,
 * counting padded cells (which hold -inf), exactly as np.argmax over the
 * NumPy twin's window view: the first maximum wins, and a NaN beats
 * everything (the first NaN).
 *
 * The loops run over window offsets (i, j) outside and output positions
 * inside, updating a whole output row per offset.  Inside a window each
 * comparison depends on the previous winner, a serial chain of ~8 cycles per
 * cell; across a row the positions are independent, so the CPU overlaps them
 * and the choice needs no branch (a branch on which cell wins mispredicts
 * about half the time).  Measured on a CNN's 64x16x28x28 activations: 5.5 ms
 * with one window at a time, ~0.7 ms row by row. */
/* The window's winner between the running best (at offset best_at) and a
 * later cell v at offset at, by the rule above.  The choice is made with bit
 * masks, not `take ? v : best`: GCC compiles that ternary into a compare and
 * jump, and on real activations the jump mispredicts about half the time
 * (measured: 4 ms vs 1 ms for a CNN's 64x16x28x28 pooling). */
static inline void contest(float v, int64_t at, float *best, int64_t *best_at)
{
    const int take = (v > *best) | ((v != v) & (*best == *best));
    const uint32_t keep32 = (uint32_t)take - 1u; /* all ones when the old winner stays */
    const uint64_t keep64 = (uint64_t)take - 1u;
    uint32_t v_bits, best_bits;
    memcpy(&v_bits, &v, sizeof v_bits);
    memcpy(&best_bits, best, sizeof best_bits);
    best_bits = (best_bits & keep32) | (v_bits & ~keep32);
    memcpy(best, &best_bits, sizeof best_bits);
    *best_at = (int64_t)(((uint64_t)*best_at & keep64) | ((uint64_t)at & ~keep64));
}

/* The 2x2 windows with stride 2 of most CNNs, as straight-line code. */
static void max_pool_2x2(const float *x, float *out, int64_t *argmax, int64_t planes, int64_t h, int64_t w,
                         int64_t oh, int64_t ow)
{
    for (int64_t plane = 0; plane < planes; ++plane)
        for (int64_t y = 0; y < oh; ++y) {
            const float *r0 = x + (plane * h + 2 * y) * w, *r1 = r0 + w;
            float *o = out + (plane * oh + y) * ow;
            int64_t *am = argmax + (plane * oh + y) * ow;
            for (int64_t xo = 0; xo < ow; ++xo) {
                float best = r0[2 * xo];
                int64_t best_at = 0;
                contest(r0[2 * xo + 1], 1, &best, &best_at);
                contest(r1[2 * xo], 2, &best, &best_at);
                contest(r1[2 * xo + 1], 3, &best, &best_at);
                o[xo] = best;
                am[xo] = best_at;
            }
        }
}

void mdk_max_pool2d_forward(const float *x, float *out, int64_t *argmax, int64_t n, int64_t c, int64_t h, int64_t w,
                            int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw)
{
    const int64_t oh = out_size(h, kh, sh, ph), ow = out_size(w, kw, sw, pw);
    const float neg_inf = -(float)HUGE_VAL;
    if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0) {
        max_pool_2x2(x, out, argmax, n * c, h, w, oh, ow);
        return;
    }
    for (int64_t plane = 0; plane < n * c; ++plane) {
        const float *img = x + plane * h * w;
        for (int64_t y = 0; y < oh; ++y) {
            float *best = out + (plane * oh + y) * ow;
            int64_t *best_at = argmax + (plane * oh + y) * ow;
            for (int64_t i = 0; i < kh; ++i) {
                const int64_t hh = y * sh - ph + i;
                const int row_inside = hh >= 0 && hh < h;
                const float *row = img + (row_inside ? hh : 0) * w;
                for (int64_t j = 0; j < kw; ++j) {
                    const int64_t at = i * kw + j;
                    for (int64_t xo = 0; xo < ow; ++xo) {
                        const int64_t ww = xo * sw - pw + j;
                        const float v = (row_inside && ww >= 0 && ww < w) ? row[ww] : neg_inf;
                        if (at == 0) { /* the window's first cell starts the contest */
                            best[xo] = v;
                            best_at[xo] = 0;
                            continue;
                        }
                        contest(v, at, &best[xo], &best_at[xo]);
                    }
                }
            }
        }
    }
}

void mdk_max_pool2d_backward(const float *grad, const int64_t *argmax, float *dx, int64_t n, int64_t c, int64_t h,
                             int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw)
{
    const int64_t oh = out_size(h, kh, sh, ph), ow = out_size(w, kw, sw, pw), k = kh * kw;
    /* Row and column of each window offset, looked up instead of at / kw and
     * at % kw: two 64-bit divisions per output cost more than the rest. */
    enum { TABLE = 1024 };
    int32_t row_of[TABLE], col_of[TABLE];
    const int use_table = k <= TABLE;
    if (use_table)
        for (int64_t at = 0; at < k; ++at) {
            row_of[at] = (int32_t)(at / kw);
            col_of[at] = (int32_t)(at % kw);
        }
    memset(dx, 0, (size_t)(n * c * h * w) * sizeof(float));
    for (int64_t plane = 0; plane < n * c; ++plane) {
        const float *g = grad + plane * oh * ow;
        const int64_t *am = argmax + plane * oh * ow;
        float *d = dx + plane * h * w;
        for (int64_t y = 0; y < oh; ++y)
            for (int64_t xo = 0; xo < ow; ++xo) {
                const int64_t at = am[y * ow + xo];
                if (at < 0 || at >= k) /* not an offset inside the window: nothing to route */
                    continue;
                const int64_t di = use_table ? row_of[at] : at / kw, dj = use_table ? col_of[at] : at % kw;
                const int64_t hh = y * sh - ph + di, ww = xo * sw - pw + dj;
                if (hh >= 0 && hh < h && ww >= 0 && ww < w) /* a padded winner has nowhere to go */
                    d[hh * w + ww] += g[y * ow + xo];
            }
    }
}
