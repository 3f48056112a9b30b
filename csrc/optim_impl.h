/*
 * optim_impl.h -- fused optimizer updates, compiled once per SIMD path by
 * optim.c.  One pass over param/grad/state instead of NumPy's 5-10 passes
 * with temporaries.  Every operation is the float32 operation NumPy performs,
 * in the same order (and the build does not contract a*b+c into an FMA), so
 * the results match numpy_kernels bit for bit.
 */
MDK_TARGET static void MDK_FN(sgd_update)(float *restrict param, const float *restrict grad, float *restrict velocity,
                                          int64_t n, float lr, float momentum, float weight_decay, int nesterov)
{
    if (momentum == 0.0f) {
        for (int64_t i = 0; i < n; ++i) {
            float g = weight_decay != 0.0f ? grad[i] + weight_decay * param[i] : grad[i];
            param[i] = param[i] - lr * g;
        }
        return;
    }
    for (int64_t i = 0; i < n; ++i) {
        float g = weight_decay != 0.0f ? grad[i] + weight_decay * param[i] : grad[i];
        float v = velocity[i] * momentum + g;
        velocity[i] = v;
        float step = nesterov ? g + momentum * v : v;
        param[i] = param[i] - lr * step;
    }
}

MDK_TARGET static void MDK_FN(adagrad_update)(float *restrict param, const float *restrict grad,
                                              float *restrict sum_sq, int64_t n, float lr, float eps,
                                              float weight_decay)
{
    for (int64_t i = 0; i < n; ++i) {
        float g = weight_decay != 0.0f ? grad[i] + weight_decay * param[i] : grad[i];
        float s = sum_sq[i] + g * g;
        sum_sq[i] = s;
        param[i] = param[i] - lr * g / (sqrtf(s) + eps);
    }
}

MDK_TARGET static void MDK_FN(rmsprop_update)(float *restrict param, const float *restrict grad,
                                              float *restrict mean_sq, int64_t n, float lr, float alpha,
                                              float one_minus_alpha, float eps, float weight_decay)
{
    for (int64_t i = 0; i < n; ++i) {
        float g = weight_decay != 0.0f ? grad[i] + weight_decay * param[i] : grad[i];
        float s = mean_sq[i] * alpha + one_minus_alpha * g * g;
        mean_sq[i] = s;
        param[i] = param[i] - lr * g / (sqrtf(s) + eps);
    }
}

MDK_TARGET static void MDK_FN(adam_update)(float *restrict param, const float *restrict grad, float *restrict m,
                                           float *restrict v, int64_t n, float lr, float beta1,
                                           float one_minus_beta1, float beta2, float one_minus_beta2,
                                           float bias_corr1, float bias_corr2, float eps, float weight_decay)
{
    for (int64_t i = 0; i < n; ++i) {
        float g = weight_decay != 0.0f ? grad[i] + weight_decay * param[i] : grad[i];
        float mi = m[i] * beta1 + one_minus_beta1 * g;
        float vi = v[i] * beta2 + one_minus_beta2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float m_hat = mi / bias_corr1, v_hat = vi / bias_corr2;
        param[i] = param[i] - lr * m_hat / (sqrtf(v_hat) + eps);
    }
}
