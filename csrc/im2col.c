/*
 * im2col.c -- unfolding image patches into the columns of a matrix (im2col)
 * and adding them back (col2im), NCHW.
 *
 * There is no arithmetic to vectorize here worth speaking of; the cost is
 * moving data.  NumPy's versions build strided window views and then copy or
 * scatter them with several full-size temporaries (col2im does kh*kw strided
 * adds over the whole image).  These walk each output once, in the order it
 * is laid out in memory, and touch each input byte a small number of times.
 * One portable copy serves every SIMD path.
 *
 * Layout of cols (as numpy_kernels.im2col): row (n, oh, ow), column (c, i, j):
 *     cols[((n*OH + oh)*OW + ow)][(c*kh + i)*kw + j] = x[n][c][oh*s + i - p][ow*s + j - p]
 * (zero where the window hangs over the padding).
 */
#include "mdk_internal.h"

static int64_t out_size(int64_t size, int64_t k, int64_t stride, int64_t pad)
{
    return (size + 2 * pad - k) / stride + 1;
}

/* Both walk one output row (b, y) at a time: its block of cols, OW rows of
 * C*kh*kw floats, stays in L1 while every (channel, i, j) of the window fills
 * (or reads) one column of it, OW floats apart, from one image row read
 * left to right.  The first version went window by window, copying kw = 3
 * floats at a time, and spent its time in loop overhead (measured, CNN conv2
 * 64x16x14x14 in a C harness: im2col 5.7 -> 4.5 ms, col2im about the same; 1.7-2.5x
 * when the columns fit in L2, as for one image or conv1 64x1x28x28). */
/* The output columns xo in [lo, hi) whose window column j lands inside a row of
 * width w (0 <= xo*stride - pad + j < w); lo = hi when there are none. */
static void inside_range(int64_t ow, int64_t w, int64_t j, int64_t stride, int64_t pad, int64_t *lo, int64_t *hi)
{
    const int64_t first = pad - j; /* xo*stride >= pad - j */
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    const int64_t last = w - 1 + pad - j; /* xo*stride <= w - 1 + pad - j */
    *hi = last < 0 ? 0 : MDK_MIN(ow, last / stride + 1);
    if (*lo > ow)
        *lo = ow;
    if (*hi < *lo)
        *hi = *lo;
}

void mdk_im2col(const float *x, float *cols, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                int64_t stride, int64_t pad)
{
    const int64_t oh = out_size(h, kh, stride, pad), ow = out_size(w, kw, stride, pad);
    const int64_t k = c * kh * kw; /* floats per row of cols */
    for (int64_t b = 0; b < n; ++b)
        for (int64_t y = 0; y < oh; ++y) {
            float *block = cols + (b * oh + y) * ow * k;
            for (int64_t ch = 0; ch < c; ++ch)
                for (int64_t i = 0; i < kh; ++i) {
                    const int64_t hh = y * stride - pad + i;
                    const float *row = x + ((b * c + ch) * h + hh) * w;
                    for (int64_t j = 0; j < kw; ++j) {
                        float *dst = block + (ch * kh + i) * kw + j;
                        int64_t lo, hi; /* xo in [lo, hi) reads inside the image row */
                        inside_range(ow, w, j, stride, pad, &lo, &hi);
                        if (hh < 0 || hh >= h)
                            lo = hi = ow;
                        for (int64_t xo = 0; xo < lo; ++xo)
                            dst[xo * k] = 0.0f;
                        const float *src = row + lo * stride - pad + j;
                        for (int64_t xo = lo; xo < hi; ++xo) /* the hot loop: no tests */
                            dst[xo * k] = src[(xo - lo) * stride];
                        for (int64_t xo = hi; xo < ow; ++xo)
                            dst[xo * k] = 0.0f;
                    }
                }
        }
}

void mdk_col2im(const float *cols, float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                int64_t stride, int64_t pad)
{
    const int64_t oh = out_size(h, kh, stride, pad), ow = out_size(w, kw, stride, pad);
    const int64_t k = c * kh * kw;
    memset(x, 0, (size_t)(n * c * h * w) * sizeof(float));
    for (int64_t b = 0; b < n; ++b)
        for (int64_t y = 0; y < oh; ++y) {
            const float *block = cols + (b * oh + y) * ow * k;
            for (int64_t ch = 0; ch < c; ++ch)
                for (int64_t i = 0; i < kh; ++i) {
                    const int64_t hh = y * stride - pad + i;
                    if (hh < 0 || hh >= h) /* this row of the windows lies in the padding */
                        continue;
                    float *row = x + ((b * c + ch) * h + hh) * w;
                    for (int64_t j = 0; j < kw; ++j) {
                        const float *src = block + (ch * kh + i) * kw + j;
                        int64_t lo, hi;
                        inside_range(ow, w, j, stride, pad, &lo, &hi);
                        float *dst = row + lo * stride - pad + j;
                        for (int64_t xo = lo; xo < hi; ++xo)
                            dst[(xo - lo) * stride] += src[xo * k];
                    }
                }
        }
}
