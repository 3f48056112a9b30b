/*
 * softmax_impl.h -- softmax, log-softmax and the fused softmax cross-entropy,
 * row by row over the last axis; compiled once per SIMD path by softmax.c.
 *
 * Each row takes two passes over memory instead of NumPy's five or six:
 *   1. m = max(x)                         (so exp never overflows)
 *   2. e = exp(x - m), s = sum(e)          (vectorized exp, stored once)
 * and the normalization happens on the row while it is still in L1.
 * Cross-entropy reads its loss off the same numbers:
 *   loss = log s - (x[t] - m),   probs = e / s,
 * and its backward is one pass: (probs - onehot(t)) * g.
 */
#include "simd_math_impl.h"
#include "rowops_impl.h"

/* e[j] = exp(x[j] - m) for a row; returns the sum of e. */
MDK_TARGET static float MDK_FN(exp_shift_sum)(const float *restrict x, float *restrict e, int64_t n, float m)
{
    for (int64_t j = 0; j < n; ++j)
        e[j] = MDK_FN(mdk_expf)(x[j] - m);
    return MDK_FN(row_sum)(e, n);
}

MDK_TARGET static void MDK_FN(softmax)(const float *x, float *out, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * cols;
        float *o = out + r * cols;
        float m = MDK_FN(row_max)(xr, cols);
        float inv = 1.0f / MDK_FN(exp_shift_sum)(xr, o, cols, m);
        for (int64_t j = 0; j < cols; ++j) /* multiply by 1/s: a divide per element costs ~16x more */
            o[j] = o[j] * inv;
    }
}

MDK_TARGET static void MDK_FN(log_softmax)(const float *x, float *out, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * cols;
        float *o = out + r * cols;
        float m = MDK_FN(row_max)(xr, cols);
        float lse = logf(MDK_FN(exp_shift_sum)(xr, o, cols, m)); /* o is scratch here */
        for (int64_t j = 0; j < cols; ++j)
            o[j] = (xr[j] - m) - lse;
    }
}

MDK_TARGET static int64_t MDK_FN(cross_entropy_forward)(const float *logits, const int64_t *targets, float *losses,
                                                        float *probs, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t t = targets[r];
        if (t < 0 || t >= cols)
            return -(r + 1);
        const float *xr = logits + r * cols;
        float *p = probs + r * cols;
        float m = MDK_FN(row_max)(xr, cols);
        float s = MDK_FN(exp_shift_sum)(xr, p, cols, m);
        losses[r] = logf(s) - (xr[t] - m);
        const float inv = 1.0f / s;
        for (int64_t j = 0; j < cols; ++j)
            p[j] = p[j] * inv;
    }
    return 0;
}

MDK_TARGET static int64_t MDK_FN(cross_entropy_backward)(const float *restrict probs,
                                                         const int64_t *restrict targets,
                                                         const float *restrict grad_losses, float *restrict dlogits,
                                                         int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; ++r) {
        if (targets[r] < 0 || targets[r] >= cols)
            return -(r + 1);
        const float g = grad_losses[r];
        const float *p = probs + r * cols;
        float *d = dlogits + r * cols;
        for (int64_t j = 0; j < cols; ++j)
            d[j] = p[j] * g;
        d[targets[r]] = (p[targets[r]] - 1.0f) * g;
    }
    return 0;
}
