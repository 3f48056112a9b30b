/*
 * optim.c -- fused, in-place optimizer updates (SGD with momentum / Nesterov /
 * weight decay, AdaGrad, RMSProp, Adam) with exactly the semantics of the
 * NumPy twins in numpy_kernels.py.  Bodies in optim_impl.h, compiled once per
 * SIMD path.
 */
#include <math.h>

#include "mdk_internal.h"

#define MDK_IMPL "optim_impl.h"
#include "mdk_per_isa.h"

void mdk_sgd_update(float *param, const float *grad, float *velocity, int64_t n, float lr, float momentum,
                    float weight_decay, int nesterov)
{
    MDK_DISPATCH(sgd_update, (param, grad, velocity, n, lr, momentum, weight_decay, nesterov));
}

void mdk_adagrad_update(float *param, const float *grad, float *sum_sq, int64_t n, float lr, float eps,
                        float weight_decay)
{
    MDK_DISPATCH(adagrad_update, (param, grad, sum_sq, n, lr, eps, weight_decay));
}

void mdk_rmsprop_update(float *param, const float *grad, float *mean_sq, int64_t n, float lr, float alpha,
                        float one_minus_alpha, float eps, float weight_decay)
{
    MDK_DISPATCH(rmsprop_update, (param, grad, mean_sq, n, lr, alpha, one_minus_alpha, eps, weight_decay));
}

void mdk_adam_update(float *param, const float *grad, float *m, float *v, int64_t n, float lr, float beta1,
                     float one_minus_beta1, float beta2, float one_minus_beta2, float bias_corr1, float bias_corr2,
                     float eps, float weight_decay)
{
    MDK_DISPATCH(adam_update, (param, grad, m, v, n, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, bias_corr1,
                               bias_corr2, eps, weight_decay));
}
