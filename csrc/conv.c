/*
 * conv.c -- the memory-movement kernels of convolution and pooling (NCHW):
 * im2col / col2im and max-pool forward / backward.
 *
 * There is no arithmetic to vectorize here worth speaking of; the cost is
 * moving data.  NumPy's versions build strided window views and then copy or
 * scatter them with several full-size temporaries (col2im does kh*kw strided
 * adds over the whole image).  These walk each output once, in the order it
 * is laid out in memory, and touch each input byte a small number of times.
 * One portable copy serves every SIMD path: the inner loops are kw or k
 * elements long (3 to 7), too short for vector code to pay.
 *
 * Layout of cols (as numpy_kernels.im2col): row (n, oh, ow), column (c, i, j):
 *     cols[((n*OH + oh)*OW + ow)][(c*kh + i)*kw + j] = x[n][c][oh*s + i - p][ow*s + j - p]
 * (zero where the window hangs over the padding).
 */
#include <math.h>

#include "mdk_internal.h"

static int64_t out_size(int64_t size, int64_t k, int64_t stride, int64_t pad)
{
    return (size + 2 * pad - k) / stride + 1;
}

void mdk_im2col(const float *x, float *cols, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                int64_t stride, int64_t pad)
{
    const int64_t oh = out_size(h, kh, stride, pad), ow = out_size(w, kw, stride, pad);
    float *dst = cols;
    for (int64_t b = 0; b < n; ++b)
        for (int64_t y = 0; y < oh; ++y)
            for (int64_t xo = 0; xo < ow; ++xo) {
                const int64_t w0 = xo * stride - pad;
                const int inside_w = w0 >= 0 && w0 + kw <= w; /* no column padding in this window */
                for (int64_t ch = 0; ch < c; ++ch) {
                    const float *img = x + (b * c + ch) * h * w;
                    for (int64_t i = 0; i < kh; ++i) {
                        const int64_t hh = y * stride - pad + i;
                        if (hh < 0 || hh >= h) {
                            for (int64_t j = 0; j < kw; ++j)
                                *dst++ = 0.0f;
                            continue;
                        }
                        const float *src = img + hh * w + w0;
                        if (inside_w) {
                            for (int64_t j = 0; j < kw; ++j)
                                *dst++ = src[j];
                        } else {
                            for (int64_t j = 0; j < kw; ++j)
                                *dst++ = (w0 + j >= 0 && w0 + j < w) ? src[j] : 0.0f;
                        }
                    }
                }
            }
}

void mdk_col2im(const float *cols, float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                int64_t stride, int64_t pad)
{
    const int64_t oh = out_size(h, kh, stride, pad), ow = out_size(w, kw, stride, pad);
    memset(x, 0, (size_t)(n * c * h * w) * sizeof(float));
    const float *src = cols;
    for (int64_t b = 0; b < n; ++b)
        for (int64_t y = 0; y < oh; ++y)
            for (int64_t xo = 0; xo < ow; ++xo) {
                const int64_t w0 = xo * stride - pad;
                const int inside_w = w0 >= 0 && w0 + kw <= w;
                for (int64_t ch = 0; ch < c; ++ch) {
                    float *img = x + (b * c + ch) * h * w;
                    for (int64_t i = 0; i < kh; ++i) {
                        const int64_t hh = y * stride - pad + i;
                        if (hh < 0 || hh >= h) { /* this row of the window lies in the padding */
                            src += kw;
                            continue;
                        }
                        float *row = img + hh * w + w0;
                        if (inside_w) {
                            for (int64_t j = 0; j < kw; ++j)
                                row[j] += src[j];
                        } else {
                            for (int64_t j = 0; j < kw; ++j)
                                if (w0 + j >= 0 && w0 + j < w)
                                    row[j] += src[j];
                        }
                        src += kw;
                    }
                }
            }
}

/* argmax[o] is the offset i*k + j of the winner inside its k x k window,
 * counting padded cells (which hold -inf), exactly as np.argmax over the
 * NumPy twin's window view: the first maximum wins, and a NaN beats
 * everything (the first NaN). */
void mdk_max_pool2d_forward(const float *x, float *out, int64_t *argmax, int64_t n, int64_t c, int64_t h, int64_t w,
                            int64_t k, int64_t stride, int64_t pad)
{
    const int64_t oh = out_size(h, k, stride, pad), ow = out_size(w, k, stride, pad);
    const float neg_inf = -(float)HUGE_VAL;
    for (int64_t plane = 0; plane < n * c; ++plane) {
        const float *img = x + plane * h * w;
        float *o = out + plane * oh * ow;
        int64_t *am = argmax + plane * oh * ow;
        for (int64_t y = 0; y < oh; ++y)
            for (int64_t xo = 0; xo < ow; ++xo) {
                float best = 0.0f;
                int64_t best_at = -1;
                for (int64_t i = 0; i < k; ++i) {
                    const int64_t hh = y * stride - pad + i;
                    for (int64_t j = 0; j < k; ++j) {
                        const int64_t ww = xo * stride - pad + j;
                        const float v = (hh >= 0 && hh < h && ww >= 0 && ww < w) ? img[hh * w + ww] : neg_inf;
                        if (best_at < 0 || v > best || (v != v && best == best)) {
                            best = v;
                            best_at = i * k + j;
                        }
                    }
                }
                o[y * ow + xo] = best;
                am[y * ow + xo] = best_at;
            }
    }
}

void mdk_max_pool2d_backward(const float *grad, const int64_t *argmax, float *dx, int64_t n, int64_t c, int64_t h,
                             int64_t w, int64_t k, int64_t stride, int64_t pad)
{
    const int64_t oh = out_size(h, k, stride, pad), ow = out_size(w, k, stride, pad);
    memset(dx, 0, (size_t)(n * c * h * w) * sizeof(float));
    for (int64_t plane = 0; plane < n * c; ++plane) {
        const float *g = grad + plane * oh * ow;
        const int64_t *am = argmax + plane * oh * ow;
        float *d = dx + plane * h * w;
        for (int64_t y = 0; y < oh; ++y)
            for (int64_t xo = 0; xo < ow; ++xo) {
                const int64_t at = am[y * ow + xo];
                const int64_t hh = y * stride - pad + at / k, ww = xo * stride - pad + at % k;
                if (hh >= 0 && hh < h && ww >= 0 && ww < w) /* a padded winner has nowhere to go */
                    d[hh * w + ww] += g[y * ow + xo];
            }
    }
}
