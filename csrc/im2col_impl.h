/*
 * im2col_impl.h -- the inner loops of a convolution's per-image patches,
 * compiled once per SIMD path by im2col.c (see mdk_internal.h).
 *
 * They work on a zero-padded copy of the image (channels x hp x wp), so every
 * run they copy or add is unconditional: no test for the padding in any
 * loop.  With stride 1 a run is `ow` contiguous floats (14 for a 14x14
 * layer), which the vectorizer turns into one or two vector moves; written
 * with a test per element, or with a memcpy call per run, each short run cost
 * ~40 cycles (measured: 24 us per 16x14x14 image, as long as the GEMM it
 * feeds).
 */

/* planes[r*ld + y*ow + x] = xp[ch][y*sh + i*dh][x*sw + j*dw], r = (ch*kh + i)*kw + j.
 * Rows i and i - 1 of the same (ch, j) hold the same runs shifted by t output
 * rows when the dilation is t strides (t = 1 for the usual dh = sh = 1): all
 * but the last t runs of row i are one long copy from row i - 1, still in L1,
 * which replaces 2/3 of a 3x3 window's short runs. */
MDK_TARGET static void MDK_FN(planes_from_padded)(const float *restrict xp, int64_t channels, int64_t hp,
                                                  int64_t wp, const mdk_conv_geometry *g, int64_t oh, int64_t ow,
                                                  float *restrict planes, int64_t ld)
{
    const int64_t kh = g->kh, kw = g->kw, sh = g->sh, sw = g->sw, dh = g->dh, dw = g->dw;
    const int64_t t = dh % sh == 0 ? dh / sh : oh; /* the shift between rows i - 1 and i, in output rows */
    for (int64_t ch = 0; ch < channels; ++ch)
        for (int64_t j = 0; j < kw; ++j)
            for (int64_t i = 0; i < kh; ++i) {
                float *dst = planes + ((ch * kh + i) * kw + j) * ld;
                const float *src = xp + (ch * hp + i * dh) * wp + j * dw;
                int64_t y = 0;
                if (i > 0 && t < oh) { /* the first oh - t output rows: row i - 1 from output row t on */
                    MDK_FN(copy_run)(dst, dst - kw * ld + t * ow, (oh - t) * ow);
                    y = oh - t;
                }
                for (dst += y * ow, src += y * sh * wp; y < oh; ++y, dst += ow, src += sh * wp) {
                    if (sw == 1)
                        MDK_FN(copy_run)(dst, src, ow);
                    else
                        for (int64_t x = 0; x < ow; ++x)
                            dst[x] = src[x * sw];
                }
            }
}

/* The adjoint: xp[ch][y*sh + i*dh][x*sw + j*dw] += planes[r*ld + y*ow + x].
 * With the same shift t as above, rows i = 0 .. kh-1 of a (ch, j) land on
 * the same frame rows, t output rows apart: they are first summed into a
 * strip of oh + (kh-1)*t output rows (kh long contiguous adds, in L1), which
 * is then added to the frame run by run -- one third of a 3x3 window's short
 * runs. */
#ifndef MDK_STRIP_MAX
#define MDK_STRIP_MAX 4096 /* floats: the strip lives on the stack */
#endif
MDK_TARGET static void MDK_FN(planes_to_padded)(const float *restrict planes, int64_t ld, int64_t channels,
                                                int64_t hp, int64_t wp, const mdk_conv_geometry *g, int64_t oh,
                                                int64_t ow, float *restrict xp)
{
    const int64_t kh = g->kh, kw = g->kw, sh = g->sh, sw = g->sw, dh = g->dh, dw = g->dw;
    const int64_t t = dh % sh == 0 ? dh / sh : 0, strip_rows = oh + (kh - 1) * t;
    if (kh > 1 && t > 0 && strip_rows * ow <= MDK_STRIP_MAX) {
        float strip[MDK_STRIP_MAX];
        for (int64_t ch = 0; ch < channels; ++ch)
            for (int64_t j = 0; j < kw; ++j) {
                const float *rows = planes + (ch * kh * kw + j) * ld; /* row i at rows + i*kw*ld */
                MDK_FN(copy_run)(strip, rows, oh * ow);
                memset(strip + oh * ow, 0, (size_t)((strip_rows - oh) * ow) * sizeof(float));
                for (int64_t i = 1; i < kh; ++i)
                    MDK_FN(add_run)(strip + i * t * ow, rows + i * kw * ld, oh * ow);
                float *dst = xp + ch * hp * wp + j * dw;
                for (int64_t y = 0; y < strip_rows; ++y, dst += sh * wp) {
                    if (sw == 1)
                        MDK_FN(add_run)(dst, strip + y * ow, ow);
                    else
                        for (int64_t x = 0; x < ow; ++x)
                            dst[x * sw] += strip[y * ow + x];
                }
            }
        return;
    }
    for (int64_t ch = 0; ch < channels; ++ch)
        for (int64_t i = 0; i < kh; ++i)
            for (int64_t j = 0; j < kw; ++j) {
                const float *restrict src = planes + ((ch * kh + i) * kw + j) * ld;
                float *restrict dst = xp + (ch * hp + i * dh) * wp + j * dw;
                for (int64_t y = 0; y < oh; ++y, src += ow, dst += sh * wp) {
                    if (sw == 1)
                        MDK_FN(add_run)(dst, src, ow);
                    else
                        for (int64_t x = 0; x < ow; ++x)
                            dst[x * sw] += src[x];
                }
            }
}

/* rows x cols block copy between leading dimensions: the image into the
 * middle of its padded copy, or the middle back out. */
MDK_TARGET static void MDK_FN(copy_block)(const float *restrict src, int64_t lds, float *restrict dst, int64_t ldd,
                                          int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; ++r, src += lds, dst += ldd)
        MDK_FN(copy_run)(dst, src, cols);
}
