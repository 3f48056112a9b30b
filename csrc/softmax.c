/*
 * softmax.c -- softmax, log-softmax and fused softmax cross-entropy over the
 * last axis.  Bodies in softmax_impl.h (with the vectorized exp of
 * simd_math_impl.h), compiled once per SIMD path.
 */
#include <math.h>

#include "mdk_internal.h"

#define MDK_IMPL "softmax_impl.h"
#include "mdk_per_isa.h"

void mdk_softmax(const float *x, float *out, int64_t rows, int64_t cols)
{
    MDK_DISPATCH(softmax, (x, out, rows, cols));
}

void mdk_log_softmax(const float *x, float *out, int64_t rows, int64_t cols)
{
    MDK_DISPATCH(log_softmax, (x, out, rows, cols));
}

int64_t mdk_cross_entropy_forward(const float *logits, const int64_t *targets, float *losses, float *probs,
                                  int64_t rows, int64_t cols)
{
    MDK_DISPATCH_RET(cross_entropy_forward, (logits, targets, losses, probs, rows, cols));
}

int64_t mdk_cross_entropy_backward(const float *probs, const int64_t *targets, const float *grad_losses,
                                   float *dlogits, int64_t rows, int64_t cols)
{
    MDK_DISPATCH_RET(cross_entropy_backward, (probs, targets, grad_losses, dlogits, rows, cols));
}
