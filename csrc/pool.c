/*
 * pool.c -- max pooling, NCHW: each window's winner (forward) and the
 * gradient routed back to it (backward).  The 2x2 windows with stride 2 of
 * most CNNs have vector loops on x86 (intrinsics, below); every other window,
 * and every path's tail, goes through one portable copy, whose loop order
 * spreads each window's serial chain of comparisons across a row.
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

/* ---- 2x2 windows with stride 2 ---------------------------------------------
 * The pooling of most CNNs, one output row at a time.  The portable loops go
 * one window at a time with contest(); on x86 a window's four cells are
 * gathered from 16 (8) windows at once by de-interleaving the even and odd
 * columns of the two input rows, and the three comparisons become vector
 * compares and blends (GCC does not vectorize the stride-2 loads by itself).
 * Measured on the CNN's 64x16x28x28 activations (bench_conv.py): forward
 * 1.4 ms -> 0.43 ms on AVX-512, backward 1.3 ms -> 0.41 ms. */
static void max_pool_2x2_row_scalar(const float *r0, const float *r1, float *o, int64_t *am, int64_t x0, int64_t ow)
{
    for (int64_t xo = x0; xo < ow; ++xo) {
        float best = r0[2 * xo];
        int64_t best_at = 0;
        contest(r0[2 * xo + 1], 1, &best, &best_at);
        contest(r1[2 * xo], 2, &best, &best_at);
        contest(r1[2 * xo + 1], 3, &best, &best_at);
        o[xo] = best;
        am[xo] = best_at;
    }
}

/* dx of the windows of one output row from x0 on: the gradient to the winner,
 * 0 to the other three cells.  0 + g, as the reference's sum into zeros, so a
 * -0.0 gradient lands as +0.0.  The choice is made with bit masks, for the
 * reason contest() gives (a select on random winners compiles to branches
 * that mispredict: measured 15 ns a window). */
static void max_pool_2x2_backward_row_scalar(const float *g, const int64_t *am, float *d0, float *d1, int64_t x0,
                                             int64_t ow)
{
    for (int64_t xo = x0; xo < ow; ++xo) {
        const uint32_t v = mdk_f2u(0.0f + g[xo]);
        const int64_t a = am[xo];
        d0[2 * xo] = mdk_u2f(v & (0u - (uint32_t)(a == 0)));
        d0[2 * xo + 1] = mdk_u2f(v & (0u - (uint32_t)(a == 1)));
        d1[2 * xo] = mdk_u2f(v & (0u - (uint32_t)(a == 2)));
        d1[2 * xo + 1] = mdk_u2f(v & (0u - (uint32_t)(a == 3)));
    }
}

#if MDK_HAVE_X86
#include <immintrin.h>

/* AVX-512: 16 windows per step, the last (or only: a 28-wide map has 14
 * windows per row) step with masked loads and stores.  The even (odd) cells
 * of 32 consecutive floats are lanes 0, 2, ..., 30 (1, 3, ..., 31) of two
 * registers. */
static __mmask16 lanes16(int64_t n) /* the first n (0..16+) of 16 lanes */
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}
static __mmask8 lanes8(int64_t n)
{
    return n >= 8 ? (__mmask8)0xff : n <= 0 ? (__mmask8)0 : (__mmask8)((1u << n) - 1u);
}

MDK_TARGET_AVX512 static __mmask16 takes_avx512(__m512 v, __m512 best)
{ /* v beats best: greater, or a NaN against a number (contest's rule) */
    return _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) |
           (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q));
}

MDK_TARGET_AVX512 static void max_pool_2x2_row_avx512(const float *r0, const float *r1, float *o, int64_t *am,
                                                      int64_t ow)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int64_t xo = 0; xo < ow; xo += 16) {
        const int64_t n = MDK_MIN(16, ow - xo); /* windows in this step */
        const __mmask16 first = lanes16(2 * n), second = lanes16(2 * n - 16);
        const __m512 p0 = _mm512_maskz_loadu_ps(first, r0 + 2 * xo);
        const __m512 p1 = _mm512_maskz_loadu_ps(second, r0 + 2 * xo + 16);
        const __m512 q0 = _mm512_maskz_loadu_ps(first, r1 + 2 * xo);
        const __m512 q1 = _mm512_maskz_loadu_ps(second, r1 + 2 * xo + 16);
        const __m512 b = _mm512_permutex2var_ps(p0, odd, p1);
        const __m512 c = _mm512_permutex2var_ps(q0, even, q1), d = _mm512_permutex2var_ps(q0, odd, q1);
        __m512 best = _mm512_permutex2var_ps(p0, even, p1);
        __m512i at = _mm512_setzero_si512();
        __mmask16 take = takes_avx512(b, best);
        best = _mm512_mask_mov_ps(best, take, b);
        at = _mm512_mask_mov_epi32(at, take, _mm512_set1_epi32(1));
        take = takes_avx512(c, best);
        best = _mm512_mask_mov_ps(best, take, c);
        at = _mm512_mask_mov_epi32(at, take, _mm512_set1_epi32(2));
        take = takes_avx512(d, best);
        best = _mm512_mask_mov_ps(best, take, d);
        at = _mm512_mask_mov_epi32(at, take, _mm512_set1_epi32(3));
        _mm512_mask_storeu_ps(o + xo, lanes16(n), best);
        _mm512_mask_storeu_epi64(am + xo, lanes8(n), _mm512_cvtepi32_epi64(_mm512_castsi512_si256(at)));
        _mm512_mask_storeu_epi64(am + xo + 8, lanes8(n - 8), _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(at, 1)));
    }
}

MDK_TARGET_AVX512 static void max_pool_2x2_backward_row_avx512(const float *g, const int64_t *am, float *d0, float *d1,
                                                               int64_t ow)
{
    /* lanes 0..15 of the interleave of e (even cells) and f (odd cells): e0 f0 e1 f1 ... */
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    for (int64_t xo = 0; xo < ow; xo += 16) {
        const int64_t n = MDK_MIN(16, ow - xo);
        const __mmask16 first = lanes16(2 * n), second = lanes16(2 * n - 16);
        const __m512 v = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(lanes16(n), g + xo));
        const __m256i a_lo = _mm512_cvtepi64_epi32(_mm512_maskz_loadu_epi64(lanes8(n), am + xo));
        const __m256i a_hi = _mm512_cvtepi64_epi32(_mm512_maskz_loadu_epi64(lanes8(n - 8), am + xo + 8));
        const __m512i a = _mm512_inserti64x4(_mm512_castsi256_si512(a_lo), a_hi, 1);
        const __m512 e0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(0)), v);
        const __m512 f0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(1)), v);
        const __m512 e1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(2)), v);
        const __m512 f1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(3)), v);
        _mm512_mask_storeu_ps(d0 + 2 * xo, first, _mm512_permutex2var_ps(e0, lo, f0));
        _mm512_mask_storeu_ps(d0 + 2 * xo + 16, second, _mm512_permutex2var_ps(e0, hi, f0));
        _mm512_mask_storeu_ps(d1 + 2 * xo, first, _mm512_permutex2var_ps(e1, lo, f1));
        _mm512_mask_storeu_ps(d1 + 2 * xo + 16, second, _mm512_permutex2var_ps(e1, hi, f1));
    }
}

/* AVX2: 8 windows per step (full steps only; the portable loops finish the
 * row).  shuffle_ps picks the even (odd) lanes within each 128-bit half;
 * permute4x64 puts the halves in order. */
MDK_TARGET_AVX2 static __m256 takes_avx2(__m256 v, __m256 best)
{
    return _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ),
                        _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(best, best, _CMP_ORD_Q)));
}

MDK_TARGET_AVX2 static __m256 deinterleave_avx2(__m256 p0, __m256 p1, int odd)
{
    const __m256 s = odd ? _mm256_shuffle_ps(p0, p1, 0xdd) : _mm256_shuffle_ps(p0, p1, 0x88);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), 0xd8));
}

/* 8 windows' gradients: the argmax (8 int64) narrowed to int32 lanes, each cell's
 * value masked by its offset, then interleaved back into the two input rows. */
MDK_TARGET_AVX2 static int64_t max_pool_2x2_backward_row_avx2(const float *g, const int64_t *am, float *d0, float *d1,
                                                              int64_t ow)
{
    const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    int64_t xo = 0;
    for (; xo + 8 <= ow; xo += 8) {
        const __m256 v = _mm256_add_ps(_mm256_setzero_ps(), _mm256_loadu_ps(g + xo));
        const __m256i lo = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(am + xo)), low_halves);
        const __m256i hi = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(am + xo + 4)), low_halves);
        const __m256i a = _mm256_permute2x128_si256(lo, hi, 0x20); /* the 8 offsets as int32 */
        const __m256 e0 = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, _mm256_set1_epi32(0))));
        const __m256 f0 = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, _mm256_set1_epi32(1))));
        const __m256 e1 = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, _mm256_set1_epi32(2))));
        const __m256 f1 = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, _mm256_set1_epi32(3))));
        /* unpack interleaves within 128-bit halves; permute2f128 puts the halves in order */
        const __m256 r0a = _mm256_unpacklo_ps(e0, f0), r0b = _mm256_unpackhi_ps(e0, f0);
        const __m256 r1a = _mm256_unpacklo_ps(e1, f1), r1b = _mm256_unpackhi_ps(e1, f1);
        _mm256_storeu_ps(d0 + 2 * xo, _mm256_permute2f128_ps(r0a, r0b, 0x20));
        _mm256_storeu_ps(d0 + 2 * xo + 8, _mm256_permute2f128_ps(r0a, r0b, 0x31));
        _mm256_storeu_ps(d1 + 2 * xo, _mm256_permute2f128_ps(r1a, r1b, 0x20));
        _mm256_storeu_ps(d1 + 2 * xo + 8, _mm256_permute2f128_ps(r1a, r1b, 0x31));
    }
    return xo;
}

MDK_TARGET_AVX2 static int64_t max_pool_2x2_row_avx2(const float *r0, const float *r1, float *o, int64_t *am,
                                                     int64_t ow)
{
    int64_t xo = 0;
    for (; xo + 8 <= ow; xo += 8) {
        const __m256 p0 = _mm256_loadu_ps(r0 + 2 * xo), p1 = _mm256_loadu_ps(r0 + 2 * xo + 8);
        const __m256 q0 = _mm256_loadu_ps(r1 + 2 * xo), q1 = _mm256_loadu_ps(r1 + 2 * xo + 8);
        const __m256 b = deinterleave_avx2(p0, p1, 1), c = deinterleave_avx2(q0, q1, 0);
        const __m256 d = deinterleave_avx2(q0, q1, 1);
        __m256 best = deinterleave_avx2(p0, p1, 0);
        __m256i at = _mm256_setzero_si256();
        __m256 take = takes_avx2(b, best);
        best = _mm256_blendv_ps(best, b, take);
        at = _mm256_blendv_epi8(at, _mm256_set1_epi32(1), _mm256_castps_si256(take));
        take = takes_avx2(c, best);
        best = _mm256_blendv_ps(best, c, take);
        at = _mm256_blendv_epi8(at, _mm256_set1_epi32(2), _mm256_castps_si256(take));
        take = takes_avx2(d, best);
        best = _mm256_blendv_ps(best, d, take);
        at = _mm256_blendv_epi8(at, _mm256_set1_epi32(3), _mm256_castps_si256(take));
        _mm256_storeu_ps(o + xo, best);
        _mm256_storeu_si256((__m256i *)(am + xo), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(at)));
        _mm256_storeu_si256((__m256i *)(am + xo + 4), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(at, 1)));
    }
    return xo;
}
#endif

static void max_pool_2x2(const float *x, float *out, int64_t *argmax, int64_t planes, int64_t h, int64_t w,
                         int64_t oh, int64_t ow)
{
    for (int64_t plane = 0; plane < planes; ++plane)
        for (int64_t y = 0; y < oh; ++y) {
            const float *r0 = x + (plane * h + 2 * y) * w, *r1 = r0 + w;
            float *o = out + (plane * oh + y) * ow;
            int64_t *am = argmax + (plane * oh + y) * ow;
            int64_t done = 0;
#if MDK_HAVE_X86
            if (mdk_active_path == MDK_SIMD_AVX512) {
                max_pool_2x2_row_avx512(r0, r1, o, am, ow);
                continue;
            }
            if (mdk_active_path == MDK_SIMD_AVX2)
                done = max_pool_2x2_row_avx2(r0, r1, o, am, ow);
#endif
            max_pool_2x2_row_scalar(r0, r1, o, am, done, ow);
        }
}

static void max_pool_2x2_backward(const float *grad, const int64_t *argmax, float *dx, int64_t planes, int64_t h,
                                  int64_t w, int64_t oh, int64_t ow)
{
    for (int64_t plane = 0; plane < planes; ++plane) {
        float *d = dx + plane * h * w;
        for (int64_t y = 0; y < oh; ++y) {
            const float *g = grad + (plane * oh + y) * ow;
            const int64_t *am = argmax + (plane * oh + y) * ow;
            float *d0 = d + 2 * y * w, *d1 = d0 + w;
            int64_t done = 0;
#if MDK_HAVE_X86
            if (mdk_active_path == MDK_SIMD_AVX512) {
                max_pool_2x2_backward_row_avx512(g, am, d0, d1, ow);
                done = ow;
            } else if (mdk_active_path == MDK_SIMD_AVX2) {
                done = max_pool_2x2_backward_row_avx2(g, am, d0, d1, ow);
            }
#endif
            max_pool_2x2_backward_row_scalar(g, am, d0, d1, done, ow);
            if (w > 2 * ow) { /* the last column of an odd width belongs to no window */
                d0[w - 1] = 0.0f;
                d1[w - 1] = 0.0f;
            }
        }
        if (h > 2 * oh) /* and the last row of an odd height */
            memset(d + (h - 1) * w, 0, (size_t)w * sizeof(float));
    }
}

static int is_2x2(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw)
{
    return kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0;
}

void mdk_max_pool2d_forward(const float *x, float *out, int64_t *argmax, int64_t n, int64_t c, int64_t h, int64_t w,
                            int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw)
{
    const int64_t oh = out_size(h, kh, sh, ph), ow = out_size(w, kw, sw, pw);
    const float neg_inf = -(float)HUGE_VAL;
    if (is_2x2(kh, kw, sh, sw, ph, pw)) {
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
    if (is_2x2(kh, kw, sh, sw, ph, pw)) {
        max_pool_2x2_backward(grad, argmax, dx, n * c, h, w, oh, ow);
        return;
    }
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
