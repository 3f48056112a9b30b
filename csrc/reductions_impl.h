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

/* out[m] = sum over o and i of x[o][m][i]: each (o, m) row of `inner` floats
 * is summed in lanes (row_sum), and the `outer` partial sums of each m are
 * added in double, so the error stays that of one row sum plus one rounding.
 * The rows are read in memory order, a block of up to 256 m at a time. */
MDK_TARGET static void MDK_FN(sum_keep_axis)(const float *x, float *out, int64_t outer, int64_t n, int64_t inner)
{
    enum { BLOCK = 256 };
    double acc[BLOCK];
    for (int64_t m0 = 0; m0 < n; m0 += BLOCK) {
        const int64_t len = MDK_MIN(BLOCK, n - m0);
        for (int64_t m = 0; m < len; ++m)
            acc[m] = 0.0;
        for (int64_t o = 0; o < outer; ++o) {
            const float *rows = x + (o * n + m0) * inner;
            for (int64_t m = 0; m < len; ++m)
                acc[m] += (double)MDK_FN(row_sum)(rows + m * inner, inner);
        }
        for (int64_t m = 0; m < len; ++m)
            out[m0 + m] = (float)acc[m];
    }
}
