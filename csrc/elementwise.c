/*
 * elementwise.c -- contiguous elementwise kernels: binary ops, unary ops
 * (including a vectorized exp, sigmoid and tanh), the activations' gradient
 * (act_backward), and the GEMM's bias + activation epilogue.
 *
 * The loops live in elementwise_impl.h and are compiled here once per SIMD
 * path; the public functions at the bottom dispatch on the active path.
 */
#include <math.h>

#include "mdk_internal.h"

#define MDK_IMPL "elementwise_impl.h"
#include "mdk_per_isa.h"

void mdk_binary(int op, const float *x, const float *y, float *out, int64_t n)
{
    MDK_DISPATCH(binary, (op, x, y, out, n));
}

void mdk_unary(int op, const float *x, float *out, int64_t n) { MDK_DISPATCH(unary, (op, x, out, n)); }

void mdk_act_backward(const float *grad, const float *y, float *dz, int64_t n, int act)
{
    MDK_DISPATCH(act_backward, (grad, y, dz, n, act));
}

void mdk_bias_rows_act(float *c, int64_t ldc, int64_t rows, int64_t cols, const float *row_bias, int act)
{
    MDK_DISPATCH(bias_rows_act, (c, ldc, rows, cols, row_bias, act));
}
