/*
 * im2col.c -- unfolding image patches into a matrix (im2col) and adding them
 * back (col2im), NCHW, with stride, zero padding and dilation per axis.
 *
 * There is no arithmetic here worth vectorizing by hand; the cost is moving
 * data.  NumPy's versions build strided window views and then copy or scatter
 * them through several full-size temporaries (col2im does kh*kw strided adds
 * over the whole image).  These walk each output once, in the order it is
 * laid out in memory, and touch each input byte a small number of times.
 *
 * Two layouts of one image's patches:
 *
 *   rows    P x K: row (oh, ow), column (c, i, j) -- the contract's im2col
 *           layout (numpy_kernels.im2col; mdk_im2col is this for every image);
 *   planes  K x P: row (c, i, j) is the input plane shifted by the window
 *           offset (i, j), one output position per column -- what the
 *           convolutions of conv.c multiply: out = W . cols comes out NCHW,
 *           and dW^T = cols . dY^T reads the columns in place.  It is made
 *           from a zero-padded copy of the image, so that with stride 1 each
 *           row is made of unconditional copies of `ow` contiguous floats
 *           (im2col_impl.h).
 *
 * where P = OH*OW, K = C*kh*kw, and element (c, i, j) of output (oh, ow) is
 *     x[c][oh*sh - ph + i*dh][ow*sw - pw + j*dw]   (zero in the padding).
 */
#include "conv_internal.h"

/* The output columns ow in [lo, hi) whose window column at offset `off` (j*dw)
 * lands inside a row of width w (0 <= ow*stride - pad + off < w); lo = hi when
 * there are none.  Every loop below runs [lo, hi) without tests and fills the
 * padding on either side with zeros. */
static void inside_range(int64_t ow, int64_t w, int64_t off, int64_t stride, int64_t pad, int64_t *lo, int64_t *hi)
{
    const int64_t first = pad - off; /* ow*stride >= pad - off */
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    const int64_t last = w - 1 + pad - off; /* ow*stride <= w - 1 + pad - off */
    *hi = last < 0 ? 0 : MDK_MIN(ow, last / stride + 1);
    if (*lo > ow)
        *lo = ow;
    if (*hi < *lo)
        *hi = *lo;
}

/* Rows layout, one output row (y) at a time: its block of `ow` rows of K
 * floats stays in L1 while every (channel, i, j) of the window fills one
 * column of it, ld floats apart, from one image row read left to right.  The
 * first version went window by window, copying kw = 3 floats at a time, and
 * spent its time in loop overhead (measured, CNN conv2 64x16x14x14 in a C
 * harness: 5.7 -> 4.5 ms; 1.7-2.5x when the columns fit in L2). */
void mdk_im2col_rows(const mdk_conv_geometry *g, int64_t channels, const float *x, float *rows, int64_t ld)
{
    const int64_t h = g->h, w = g->w, oh = mdk_conv_oh(g), ow = mdk_conv_ow(g);
    for (int64_t y = 0; y < oh; ++y) {
        float *block = rows + y * ow * ld;
        for (int64_t ch = 0; ch < channels; ++ch)
            for (int64_t i = 0; i < g->kh; ++i) {
                const int64_t hh = y * g->sh - g->ph + i * g->dh;
                const int row_inside = hh >= 0 && hh < h;
                for (int64_t j = 0; j < g->kw; ++j) {
                    float *dst = block + (ch * g->kh + i) * g->kw + j;
                    int64_t lo = ow, hi = ow; /* ow in [lo, hi) reads inside the image row */
                    if (row_inside)
                        inside_range(ow, w, j * g->dw, g->sw, g->pw, &lo, &hi);
                    for (int64_t xo = 0; xo < lo; ++xo)
                        dst[xo * ld] = 0.0f;
                    if (lo < hi) {
                        const float *src = x + (ch * h + hh) * w + lo * g->sw - g->pw + j * g->dw;
                        for (int64_t xo = lo; xo < hi; ++xo) /* the hot loop: no tests */
                            dst[xo * ld] = src[(xo - lo) * g->sw];
                    }
                    for (int64_t xo = hi; xo < ow; ++xo)
                        dst[xo * ld] = 0.0f;
                }
            }
    }
}

/* The adjoint of mdk_im2col_rows: x += the patches of rows, added back where
 * they came from (x is not cleared here). */
void mdk_col2im_rows(const mdk_conv_geometry *g, int64_t channels, const float *rows, int64_t ld, float *x)
{
    const int64_t h = g->h, w = g->w, oh = mdk_conv_oh(g), ow = mdk_conv_ow(g);
    for (int64_t y = 0; y < oh; ++y) {
        const float *block = rows + y * ow * ld;
        for (int64_t ch = 0; ch < channels; ++ch)
            for (int64_t i = 0; i < g->kh; ++i) {
                const int64_t hh = y * g->sh - g->ph + i * g->dh;
                if (hh < 0 || hh >= h) /* this row of the windows lies in the padding */
                    continue;
                float *row = x + (ch * h + hh) * w;
                for (int64_t j = 0; j < g->kw; ++j) {
                    const float *src = block + (ch * g->kh + i) * g->kw + j;
                    int64_t lo, hi;
                    inside_range(ow, w, j * g->dw, g->sw, g->pw, &lo, &hi);
                    if (lo == hi)
                        continue;
                    float *dst = row + lo * g->sw - g->pw + j * g->dw;
                    for (int64_t xo = lo; xo < hi; ++xo)
                        dst[(xo - lo) * g->sw] += src[xo * ld];
                }
            }
    }
}

/* ---- the planes layout, from a zero-padded image (im2col_impl.h) --------
 * A run is a few dozen floats at most (a row of a small feature map), so how
 * it is copied matters more than anything else here.  Written as a plain
 * loop, GCC turns it into a call to memcpy (~40 cycles a run with the call
 * and its size dispatch); with vectors and a masked tail it is a handful of
 * instructions.  The scalar and NEON paths keep the plain loops. */
static inline void copy_run_scalar(float *restrict dst, const float *restrict src, int64_t n)
{
    for (int64_t t = 0; t < n; ++t)
        dst[t] = src[t];
}
static inline void add_run_scalar(float *restrict dst, const float *restrict src, int64_t n)
{
    for (int64_t t = 0; t < n; ++t)
        dst[t] += src[t];
}
#if MDK_HAVE_NEON
#define copy_run_neon copy_run_scalar
#define add_run_neon add_run_scalar
#endif

#if MDK_HAVE_X86
#include <immintrin.h>

MDK_TARGET_AVX512 static inline void copy_run_avx512(float *restrict dst, const float *restrict src, int64_t n)
{
    for (; n >= 16; n -= 16, src += 16, dst += 16)
        _mm512_storeu_ps(dst, _mm512_loadu_ps(src));
    if (n > 0) {
        const __mmask16 m = (__mmask16)((1u << n) - 1u);
        _mm512_mask_storeu_ps(dst, m, _mm512_maskz_loadu_ps(m, src));
    }
}
MDK_TARGET_AVX512 static inline void add_run_avx512(float *restrict dst, const float *restrict src, int64_t n)
{
    for (; n >= 16; n -= 16, src += 16, dst += 16)
        _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), _mm512_loadu_ps(src)));
    if (n > 0) {
        const __mmask16 m = (__mmask16)((1u << n) - 1u);
        _mm512_mask_storeu_ps(dst, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), _mm512_maskz_loadu_ps(m, src)));
    }
}

MDK_TARGET_AVX2 static inline __m256i tail_mask_avx2(int64_t n) /* lanes [0, n) of 8 */
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
MDK_TARGET_AVX2 static inline void copy_run_avx2(float *restrict dst, const float *restrict src, int64_t n)
{
    for (; n >= 8; n -= 8, src += 8, dst += 8)
        _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
    if (n > 0) {
        const __m256i m = tail_mask_avx2(n);
        _mm256_maskstore_ps(dst, m, _mm256_maskload_ps(src, m));
    }
}
MDK_TARGET_AVX2 static inline void add_run_avx2(float *restrict dst, const float *restrict src, int64_t n)
{
    for (; n >= 8; n -= 8, src += 8, dst += 8)
        _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), _mm256_loadu_ps(src)));
    if (n > 0) {
        const __m256i m = tail_mask_avx2(n);
        _mm256_maskstore_ps(dst, m, _mm256_add_ps(_mm256_maskload_ps(dst, m), _mm256_maskload_ps(src, m)));
    }
}
#endif

#define MDK_IMPL "im2col_impl.h"
#include "mdk_per_isa.h"

void mdk_pad_image(const mdk_conv_geometry *g, int64_t channels, const float *x, float *xp)
{
    const int64_t hp = mdk_conv_hp(g), wp = mdk_conv_wp(g);
    for (int64_t ch = 0; ch < channels; ++ch)
        MDK_DISPATCH(copy_block, (x + ch * g->h * g->w, g->w, xp + (ch * hp + g->ph) * wp + g->pw, wp, g->h, g->w));
}

void mdk_crop_image(const mdk_conv_geometry *g, int64_t channels, const float *xp, float *x)
{
    const int64_t hp = mdk_conv_hp(g), wp = mdk_conv_wp(g);
    for (int64_t ch = 0; ch < channels; ++ch)
        MDK_DISPATCH(copy_block, (xp + (ch * hp + g->ph) * wp + g->pw, wp, x + ch * g->h * g->w, g->w, g->h, g->w));
}

void mdk_im2col_planes(const mdk_conv_geometry *g, int64_t channels, const float *xp, float *planes, int64_t ld)
{
    MDK_DISPATCH(planes_from_padded,
                 (xp, channels, mdk_conv_hp(g), mdk_conv_wp(g), g, mdk_conv_oh(g), mdk_conv_ow(g), planes, ld));
}

void mdk_col2im_planes(const mdk_conv_geometry *g, int64_t channels, const float *planes, int64_t ld, float *xp)
{
    MDK_DISPATCH(planes_to_padded,
                 (planes, ld, channels, mdk_conv_hp(g), mdk_conv_wp(g), g, mdk_conv_oh(g), mdk_conv_ow(g), xp));
}

/* The contract's im2col / col2im: the rows layout for every image of the batch. */
void mdk_im2col(const mdk_conv_geometry *g, const float *x, float *cols)
{
    const int64_t p = mdk_conv_oh(g) * mdk_conv_ow(g), k = g->c * g->kh * g->kw;
    for (int64_t b = 0; b < g->n; ++b)
        mdk_im2col_rows(g, g->c, x + b * g->c * g->h * g->w, cols + b * p * k, k);
}

void mdk_col2im(const mdk_conv_geometry *g, const float *cols, float *x)
{
    const int64_t p = mdk_conv_oh(g) * mdk_conv_ow(g), k = g->c * g->kh * g->kw;
    memset(x, 0, (size_t)(g->n * g->c * g->h * g->w) * sizeof(float));
    for (int64_t b = 0; b < g->n; ++b)
        mdk_col2im_rows(g, g->c, cols + b * p * k, k, x + b * g->c * g->h * g->w);
}
