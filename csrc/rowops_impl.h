/*
 * rowops_impl.h -- the sum and max of one contiguous row, vectorized; shared
 * by reductions_impl.h and softmax_impl.h (included once per SIMD path).
 *
 * A float reduction loop does not vectorize by itself (the compiler may not
 * reorder additions), so we reorder on purpose: 32 independent lane
 * accumulators, combined pairwise at the end.  Sums are done in blocks of
 * 4096 floats whose partial sums are added in double, so the error stays near
 * NumPy's pairwise summation even for long rows.
 */
#define MDK_LANES 32
#define MDK_SUM_BLOCK 4096

MDK_TARGET static float MDK_FN(row_sum)(const float *x, int64_t n)
{
    double total = 0.0;
    for (int64_t b0 = 0; b0 < n; b0 += MDK_SUM_BLOCK) {
        const int64_t len = MDK_MIN(MDK_SUM_BLOCK, n - b0);
        const float *xb = x + b0;
        float acc[MDK_LANES] = {0};
        int64_t i = 0;
        for (; i + MDK_LANES <= len; i += MDK_LANES)
            for (int l = 0; l < MDK_LANES; ++l)
                acc[l] += xb[i + l];
        float tail = 0.0f;
        for (; i < len; ++i)
            tail += xb[i];
        for (int w = MDK_LANES / 2; w > 0; w /= 2) /* pairwise combine of the lanes */
            for (int l = 0; l < w; ++l)
                acc[l] += acc[l + w];
        total += (double)acc[0] + (double)tail;
    }
    return (float)total;
}

/* max with NumPy's rule: any NaN makes the result NaN. */
#define MDK_MAX_NAN(acc, v) (((v) > (acc) || (v) != (v)) ? (v) : (acc))

MDK_TARGET static float MDK_FN(row_max)(const float *x, int64_t n)
{
    if (n <= 0) /* the max of nothing: callers (and NumPy) treat this as an error */
        return -(float)HUGE_VAL;
    float best = x[0];
    int64_t i = 0;
    if (n >= MDK_LANES) { /* lanes only pay for long rows; a 10-class row is a short loop */
        float acc[MDK_LANES];
        for (int l = 0; l < MDK_LANES; ++l)
            acc[l] = x[l];
        for (i = MDK_LANES; i + MDK_LANES <= n; i += MDK_LANES)
            for (int l = 0; l < MDK_LANES; ++l)
                acc[l] = MDK_MAX_NAN(acc[l], x[i + l]);
        for (int w = MDK_LANES / 2; w > 0; w /= 2) /* pairwise, so it vectorizes too */
            for (int l = 0; l < w; ++l)
                acc[l] = MDK_MAX_NAN(acc[l], acc[l + w]);
        best = acc[0];
    }
    for (; i < n; ++i)
        best = MDK_MAX_NAN(best, x[i]);
    return best;
}

