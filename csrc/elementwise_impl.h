/*
 * elementwise_impl.h -- body of the elementwise kernels, compiled once per
 * SIMD path by elementwise.c (see mdk_internal.h for the mechanism).
 *
 * Every loop is a plain loop over contiguous floats with the operation chosen
 * OUTSIDE the loop, so the compiler can turn each into straight SIMD code for
 * the target ISA.  These kernels are memory-bound; the win over NumPy comes
 * from fusing (one pass instead of several temporaries: sigmoid,
 * act_backward), not from the arithmetic.
 */
#include "simd_math_impl.h"

MDK_TARGET static void MDK_FN(binary)(int op, const float *restrict x, const float *restrict y,
                                      float *restrict out, int64_t n)
{
    switch (op) {
    case MDK_BIN_ADD: for (int64_t i = 0; i < n; ++i) out[i] = x[i] + y[i]; break;
    case MDK_BIN_SUB: for (int64_t i = 0; i < n; ++i) out[i] = x[i] - y[i]; break;
    case MDK_BIN_MUL: for (int64_t i = 0; i < n; ++i) out[i] = x[i] * y[i]; break;
    case MDK_BIN_DIV: for (int64_t i = 0; i < n; ++i) out[i] = x[i] / y[i]; break;
    /* np.maximum/minimum propagate NaN from either side. */
    case MDK_BIN_MAX:
        for (int64_t i = 0; i < n; ++i) {
            float a = x[i], b = y[i];
            out[i] = (a >= b || a != a) ? a : b; /* b NaN -> b */
        }
        break;
    case MDK_BIN_MIN:
        for (int64_t i = 0; i < n; ++i) {
            float a = x[i], b = y[i];
            out[i] = (a <= b || a != a) ? a : b;
        }
        break;
    default: break;
    }
}

MDK_TARGET static void MDK_FN(unary)(int op, const float *x, float *out, int64_t n)
{
    /* x and out may be the same buffer (the GEMM epilogue works in place). */
    switch (op) {
    case MDK_UN_NEG: for (int64_t i = 0; i < n; ++i) out[i] = -x[i]; break;
    case MDK_UN_ABS: for (int64_t i = 0; i < n; ++i) out[i] = mdk_u2f(mdk_f2u(x[i]) & 0x7fffffffu); break;
    case MDK_UN_EXP: for (int64_t i = 0; i < n; ++i) out[i] = MDK_FN(mdk_expf)(x[i]); break;
    /* np.maximum(x, 0) keeps NaN; so does this select. */
    case MDK_UN_RELU: for (int64_t i = 0; i < n; ++i) out[i] = x[i] < 0.0f ? 0.0f : x[i]; break;
    case MDK_UN_SIGMOID: for (int64_t i = 0; i < n; ++i) out[i] = MDK_FN(mdk_sigmoidf)(x[i]); break;
    case MDK_UN_TANH: for (int64_t i = 0; i < n; ++i) out[i] = MDK_FN(mdk_tanhf)(x[i]); break;
    case MDK_UN_SQRT: for (int64_t i = 0; i < n; ++i) out[i] = sqrtf(x[i]); break;
    default: break;
    }
}

/* dz = grad * act'(y), written with the activation's output y:
 * relu' = [y > 0], sigmoid' = y (1 - y), tanh' = 1 - y^2.  ReLU's is a
 * multiply by the mask, like the reference, not a select: a NaN or inf
 * gradient at an inactive unit stays NaN (inf * 0), and signs of zero match. */
MDK_TARGET static void MDK_FN(act_backward)(const float *restrict grad, const float *restrict y,
                                            float *restrict dz, int64_t n, int act)
{
    switch (act) {
    case MDK_ACT_RELU: for (int64_t i = 0; i < n; ++i) dz[i] = grad[i] * (float)(y[i] > 0.0f); break;
    case MDK_ACT_SIGMOID: for (int64_t i = 0; i < n; ++i) dz[i] = grad[i] * (y[i] * (1.0f - y[i])); break;
    case MDK_ACT_TANH: for (int64_t i = 0; i < n; ++i) dz[i] = grad[i] * (1.0f - y[i] * y[i]); break;
    default: memmove(dz, grad, (size_t)n * sizeof(float)); break;
    }
}

/* The GEMM's epilogue on one tile (see mdk_bias_rows_act): c[i][j] =
 * act(c[i][j] + row_bias[i]), in place.  Without a bias it is the plain unary
 * activation, so the values (signs of zero included) are those of relu etc. */
MDK_TARGET static void MDK_FN(bias_rows_act)(float *c, int64_t ldc, int64_t rows, int64_t cols,
                                             const float *row_bias, int act)
{
    static const int unary_op[] = {-1, MDK_UN_RELU, MDK_UN_SIGMOID, MDK_UN_TANH};
    for (int64_t i = 0; i < rows; ++i) {
        float *restrict ci = c + i * ldc;
        if (row_bias == NULL) {
            if (act != MDK_ACT_NONE)
                MDK_FN(unary)(unary_op[act], ci, ci, cols);
            continue;
        }
        const float b = row_bias[i];
        switch (act) {
        case MDK_ACT_RELU:
            for (int64_t j = 0; j < cols; ++j) {
                const float v = ci[j] + b;
                ci[j] = v < 0.0f ? 0.0f : v;
            }
            break;
        case MDK_ACT_SIGMOID: for (int64_t j = 0; j < cols; ++j) ci[j] = MDK_FN(mdk_sigmoidf)(ci[j] + b); break;
        case MDK_ACT_TANH: for (int64_t j = 0; j < cols; ++j) ci[j] = MDK_FN(mdk_tanhf)(ci[j] + b); break;
        default: for (int64_t j = 0; j < cols; ++j) ci[j] += b; break;
        }
    }
}
