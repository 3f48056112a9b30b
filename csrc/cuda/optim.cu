/*
 * optim.cu -- optimizer updates, in place, one thread per parameter (grid-stride).
 *
 * Each is the NumPy twin (minidl/backend/numpy_kernels.py) line by line, with the scalars
 * rounded to float32 by the caller as NumPy rounds them, so on the emulator the results
 * equal NumPy's bit for bit.  (nvcc contracts a*b + c into one fused multiply-add, which
 * rounds once instead of twice: on a GPU they agree to a few ulp instead.)
 */
#include "mdc_cuda.cuh"

static const int THREADS = 256;

/* g' = mu*g + (1 - dampening)*dL;  w' = w - lr*g'   (velocity may be null when mu = 0) */
__global__ void sgd_kernel(dptr<float> param, dptr<const float> grad, dptr<float> velocity, int64_t n, float lr,
                           float momentum, float one_minus_dampening, float weight_decay, int nesterov) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) {
        float g = grad[i];
        if (weight_decay != 0.0f) g = g + weight_decay * param[i];
        float step = g;
        if (momentum != 0.0f) {
            float v = velocity[i] * momentum;
            v = v + (one_minus_dampening != 1.0f ? one_minus_dampening * g : g);
            velocity[i] = v;
            step = nesterov ? g + momentum * v : v;
        }
        param[i] = param[i] - lr * step;
    }
}

/* n <- n + dL^2;  w <- w - lr*dL / (sqrt(n) + eps) */
__global__ void adagrad_kernel(dptr<float> param, dptr<const float> grad, dptr<float> sum_sq, int64_t n, float lr,
                               float eps, float weight_decay) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) {
        float g = grad[i];
        if (weight_decay != 0.0f) g = g + weight_decay * param[i];
        const float s = sum_sq[i] + g * g;
        sum_sq[i] = s;
        param[i] = param[i] - lr * g / (sqrtf(s) + eps);
    }
}

/* n <- a*n + (1-a)*dL^2;  w <- w - lr*dL / (sqrt(n) + eps); centered: sqrt(n - m^2), m the mean */
__global__ void rmsprop_kernel(dptr<float> param, dptr<const float> grad, dptr<float> mean_sq, dptr<float> mean,
                               int64_t n, float lr, float alpha, float one_minus_alpha, float eps,
                               float weight_decay) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) {
        float g = grad[i];
        if (weight_decay != 0.0f) g = g + weight_decay * param[i];
        const float ms = mean_sq[i] * alpha + one_minus_alpha * g * g;
        mean_sq[i] = ms;
        float denom = ms;
        if (mean) {
            const float m = mean[i] * alpha + one_minus_alpha * g;
            mean[i] = m;
            denom = ms - m * m;
        }
        param[i] = param[i] - lr * g / (sqrtf(denom) + eps);
    }
}

/* m <- b1*m + (1-b1)*dL;  v <- b2*v + (1-b2)*dL^2;  w <- w - lr*m^ / (sqrt(v^) + eps)
 * with m^ = m / (1 - b1^t), v^ = v / (1 - b2^t); AMSGrad uses the largest v so far. */
__global__ void adam_kernel(dptr<float> param, dptr<const float> grad, dptr<float> m, dptr<float> v,
                            dptr<float> max_v, int64_t n, float lr, float beta1, float one_minus_beta1, float beta2,
                            float one_minus_beta2, float bias_corr1, float bias_corr2, float eps,
                            float weight_decay) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) {
        float g = grad[i];
        if (weight_decay != 0.0f) g = g + weight_decay * param[i];
        const float mi = m[i] * beta1 + one_minus_beta1 * g;
        const float vi = v[i] * beta2 + one_minus_beta2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float second = vi;
        if (max_v) {
            const float old = max_v[i];
            second = old > vi || old != old ? old : vi;  // np.maximum
            max_v[i] = second;
        }
        const float m_hat = mi / bias_corr1, v_hat = second / bias_corr2;
        param[i] = param[i] - lr * m_hat / (sqrtf(v_hat) + eps);
    }
}

extern "C" {

int mdc_sgd_update(float *param, const float *grad, float *velocity, int64_t n, float lr, float momentum,
                   float one_minus_dampening, float weight_decay, int nesterov) {
    if (n == 0) return 0;
    if (momentum != 0.0f && !velocity) return MDC_EBAD_ARG;
    MDC_LAUNCH(sgd_kernel, grid_for(n, THREADS), THREADS, param, grad, velocity, n, lr, momentum, one_minus_dampening,
               weight_decay, nesterov);
    return launch_status();
}

int mdc_adagrad_update(float *param, const float *grad, float *sum_sq, int64_t n, float lr, float eps,
                       float weight_decay) {
    if (n == 0) return 0;
    MDC_LAUNCH(adagrad_kernel, grid_for(n, THREADS), THREADS, param, grad, sum_sq, n, lr, eps, weight_decay);
    return launch_status();
}

int mdc_rmsprop_update(float *param, const float *grad, float *mean_sq, float *mean, int64_t n, float lr,
                       float alpha, float one_minus_alpha, float eps, float weight_decay) {
    if (n == 0) return 0;
    MDC_LAUNCH(rmsprop_kernel, grid_for(n, THREADS), THREADS, param, grad, mean_sq, mean, n, lr, alpha,
               one_minus_alpha, eps, weight_decay);
    return launch_status();
}

int mdc_adam_update(float *param, const float *grad, float *m, float *v, float *max_v, int64_t n, float lr,
                    float beta1, float one_minus_beta1, float beta2, float one_minus_beta2, float bias_corr1,
                    float bias_corr2, float eps, float weight_decay) {
    if (n == 0) return 0;
    MDC_LAUNCH(adam_kernel, grid_for(n, THREADS), THREADS, param, grad, m, v, max_v, n, lr, beta1, one_minus_beta1,
               beta2, one_minus_beta2, bias_corr1, bias_corr2, eps, weight_decay);
    return launch_status();
}

}  // extern "C"
