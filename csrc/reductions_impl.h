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
