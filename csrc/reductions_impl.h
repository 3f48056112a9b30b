/*
 * reductions_impl.h -- sum and max over one axis, compiled once per SIMD path
 * by reductions.c.
 *
 * x is viewed as [outer][n][inner] and reduced over n.
 *   inner == 1 (reducing the last axis, e.g. a row sum): a horizontal
 *     reduction, see rowops_impl.h.
 *   inner > 1 (e.g. the bias gradient, a column sum): add whole rows into the
 *     output, a plain vertical vector add with no reordering at all.
 */
#include "rowops_impl.h"

MDK_TARGET static void MDK_FN(sum_axis)(const float *x, float *out, int64_t outer, int64_t n, int64_t inner)
{
    for (int64_t o = 0; o < outer; ++o) {
        const float *xo = x + o * n * inner;
        if (inner == 1) {
            out[o] = MDK_FN(row_sum)(xo, n);
            continue;
        }
        float *dst = out + o * inner;
        for (int64_t j = 0; j < inner; ++j)
            dst[j] = 0.0f;
        for (int64_t r = 0; r < n; ++r) {
            const float *row = xo + r * inner;
            for (int64_t j = 0; j < inner; ++j)
                dst[j] += row[j];
        }
    }
}

MDK_TARGET static void MDK_FN(max_axis)(const float *x, float *out, int64_t outer, int64_t n, int64_t inner)
{
    for (int64_t o = 0; o < outer; ++o) {
        const float *xo = x + o * n * inner;
        if (inner == 1) {
            out[o] = MDK_FN(row_max)(xo, n);
            continue;
        }
        float *dst = out + o * inner;
        memcpy(dst, xo, (size_t)inner * sizeof(float));
        for (int64_t r = 1; r < n; ++r) {
            const float *row = xo + r * inner;
            for (int64_t j = 0; j < inner; ++j)
                dst[j] = MDK_MAX_NAN(dst[j], row[j]);
        }
    }
}

/* out[m] = sum over o and i of x[o][m][i] (a conv bias gradient: o the batch,
 * m the channel, i the pixel).  For each m, the `outer` rows x[o][m][...] are
 * first added into a block of lanes (vertical vector adds, no reordering
 * within a lane), then the block is summed once (row_sum) into a double:
 * one horizontal sum per block instead of one per (o, m) row, which for the
 * short rows of a small feature map (196 floats) cost as much as the adds.
 * Each lane adds `outer` floats; the total's error stays near a row sum's. */
MDK_TARGET static void MDK_FN(sum_keep_axis)(const float *x, float *out, int64_t outer, int64_t n, int64_t inner)
{
    enum { BLOCK = 1024 }; /* lanes: 4 KiB on the stack */
    float acc[BLOCK];
    for (int64_t m = 0; m < n; ++m) {
        double total = 0.0;
        for (int64_t i0 = 0; i0 < inner; i0 += BLOCK) {
            const int64_t len = MDK_MIN(BLOCK, inner - i0);
            const float *row = x + m * inner + i0;
            for (int64_t i = 0; i < len; ++i)
                acc[i] = row[i];
            for (int64_t o = 1; o < outer; ++o) {
                row += n * inner;
                for (int64_t i = 0; i < len; ++i)
                    acc[i] += row[i];
            }
            total += (double)MDK_FN(row_sum)(acc, len);
        }
        out[m] = (float)total;
    }
}
