/*
 * elementwise.cu -- elementwise kernels with NumPy broadcasting, as grid-stride loops.
 *
 * Grid-stride loop: thread t of a grid of T threads handles items t, t + T, t + 2T, ...
 * So any grid size is correct, neighbouring threads touch neighbouring addresses on every
 * pass (coalesced), and the launch can size the grid for the machine, not the data.
 *
 * Broadcasting: the output is contiguous; output element i, unravelled along the output
 * shape, gives the coordinates, and each input's offset is the dot product of those
 * coordinates with that input's strides -- 0 along an axis it is broadcast over, so the
 * same input element is read again.  Transposed or sliced inputs work the same way.
 * The host side merges axes that are contiguous in every operand first, so a same-shape
 * operation is one flat axis and the unravelling is one division.
 */
#include "mdc_cuda.cuh"

/* Shape and strides of up to three operands, passed by value: kernel arguments live in the
 * GPU's constant memory, which every thread reads at no cost when they read the same word. */
struct Layout {
    int ndim;
    int64_t shape[MDC_MAX_DIMS];
    int64_t stride[3][MDC_MAX_DIMS];
};

/* Offsets of output element i in operands 0..n_in-1. */
__device__ __forceinline__ void offsets_of(const Layout &L, int64_t i, int n_in, int64_t off[3]) {
    off[0] = off[1] = off[2] = 0;
    for (int d = L.ndim - 1; d >= 0; --d) {
        int64_t coord = i % L.shape[d];
        i /= L.shape[d];
        for (int k = 0; k < n_in; ++k) off[k] += coord * L.stride[k][d];
    }
}

__device__ __forceinline__ float apply_unary(int op, float v, float alpha, float beta) {
    switch (op) {
        case MDC_UN_COPY: return v;
        case MDC_UN_NEG: return -v;
        case MDC_UN_ABS: return fabsf(v);
        case MDC_UN_EXP: return expf(v);
        case MDC_UN_LOG: return logf(v);
        case MDC_UN_SQRT: return sqrtf(v);
        case MDC_UN_SIN: return sinf(v);
        case MDC_UN_COS: return cosf(v);
        case MDC_UN_TANH: return tanhf(v);
        // e^min(v,0) / (1 + e^-|v|): no exponent is positive, so nothing overflows
        case MDC_UN_SIGMOID: return expf(fminf(v, 0.0f)) / (1.0f + expf(-fabsf(v)));
        case MDC_UN_RELU: return v > 0.0f || v != v ? v : 0.0f;  // NaN stays NaN, as np.maximum
        case MDC_UN_SIGN: return v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : v;
        case MDC_UN_LEAKY_RELU: return v > 0.0f ? v : v * alpha;
        case MDC_UN_CLIP: return fminf(fmaxf(v, alpha), beta);
    }
    return v;
}

__device__ __forceinline__ float apply_binary(int op, float a, float b) {
    switch (op) {
        case MDC_BIN_ADD: return a + b;
        case MDC_BIN_SUB: return a - b;
        case MDC_BIN_MUL: return a * b;
        case MDC_BIN_DIV: return a / b;
        case MDC_BIN_MAX: return a > b || a != a ? a : b;  // NaN wins, as in np.maximum
        case MDC_BIN_MIN: return a < b || a != a ? a : b;
        case MDC_BIN_POW: return powf(a, b);
    }
    return a;
}

__device__ __forceinline__ bool apply_compare(int op, float a, float b) {
    switch (op) {
        case MDC_CMP_GT: return a > b;
        case MDC_CMP_GE: return a >= b;
        case MDC_CMP_LT: return a < b;
        case MDC_CMP_LE: return a <= b;
        case MDC_CMP_EQ: return a == b;
        case MDC_CMP_NE: return a != b;
    }
    return false;
}

__global__ void unary_kernel(int op, dptr<const float> x, dptr<float> out, Layout L, int64_t n, float alpha,
                             float beta) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) {
        int64_t off[3];
        offsets_of(L, i, 1, off);
        out[i] = apply_unary(op, x[off[0]], alpha, beta);
    }
}

__global__ void binary_kernel(int op, dptr<const float> x, dptr<const float> y, dptr<float> out, Layout L,
                              int64_t n) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) {
        int64_t off[3];
        offsets_of(L, i, 2, off);
        out[i] = apply_binary(op, x[off[0]], y[off[1]]);
    }
}

__global__ void compare_kernel(int op, dptr<const float> x, dptr<const float> y, dptr<uint8_t> out, Layout L,
                               int64_t n) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) {
        int64_t off[3];
        offsets_of(L, i, 2, off);
        out[i] = apply_compare(op, x[off[0]], y[off[1]]) ? 1 : 0;
    }
}

__global__ void where_kernel(dptr<const uint8_t> cond, dptr<const float> x, dptr<const float> y, dptr<float> out,
                             Layout L, int64_t n) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) {
        int64_t off[3];
        offsets_of(L, i, 3, off);
        out[i] = cond[off[0]] ? x[off[1]] : y[off[2]];
    }
}

/* A strided copy of any element type: stride[0] for the source, stride[1] for the target. */
template <class T>
__global__ void copy_kernel(dptr<const T> x, dptr<T> out, Layout L, int64_t n) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) {
        int64_t off[3];
        offsets_of(L, i, 2, off);
        out[off[1]] = x[off[0]];
    }
}

template <class T>
__global__ void fill_kernel(dptr<T> out, int64_t n, T value) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = value;
}

__global__ void relu_backward_kernel(dptr<const float> grad, dptr<const float> x, dptr<float> out, int64_t n) {
    for (int64_t i = global_thread(); i < n; i += grid_threads())
        out[i] = grad[i] * (x[i] > 0.0f ? 1.0f : 0.0f);  // a multiply, like NumPy's grad * (x > 0)
}

__device__ __forceinline__ float activate(int act, float z) {
    switch (act) {
        case MDC_ACT_RELU: return z > 0.0f || z != z ? z : 0.0f;
        case MDC_ACT_SIGMOID: return expf(fminf(z, 0.0f)) / (1.0f + expf(-fabsf(z)));
        case MDC_ACT_TANH: return tanhf(z);
    }
    return z;
}

__global__ void bias_act_forward_kernel(dptr<const float> x, dptr<const float> bias, dptr<float> out, int64_t rows,
                                        int64_t cols, int act) {
    for (int64_t i = global_thread(); i < rows * cols; i += grid_threads()) {
        float z = x[i];
        if (bias) z += bias[i % cols];
        out[i] = activate(act, z);
    }
}

/* One thread per column: it walks down the rows (neighbouring threads read neighbouring
 * columns, so every row is read coalesced), writes dz and sums it for the bias gradient. */
__global__ void bias_act_backward_kernel(dptr<const float> grad, dptr<const float> y, dptr<float> dz,
                                         dptr<float> dbias, int64_t rows, int64_t cols, int act) {
    for (int64_t j = global_thread(); j < cols; j += grid_threads()) {
        float sum = 0.0f;
        for (int64_t r = 0; r < rows; ++r) {
            int64_t i = r * cols + j;
            float g = grad[i], out = y[i], d;
            if (act == MDC_ACT_RELU)
                d = g * (out > 0.0f ? 1.0f : 0.0f);
            else if (act == MDC_ACT_SIGMOID)
                d = g * (out * (1.0f - out));
            else if (act == MDC_ACT_TANH)
                d = g * (1.0f - out * out);
            else
                d = g;
            dz[i] = d;
            sum += d;
        }
        if (dbias) dbias[j] = sum;
    }
}

/* ---- host side ---------------------------------------------------------------------- */
static const int THREADS = 256;

static int make_layout(Layout *L, int ndim, const int64_t *shape, const int64_t *s0, const int64_t *s1,
                       const int64_t *s2, int64_t *n) {
    if (ndim < 0 || ndim > MDC_MAX_DIMS) return MDC_EBAD_ARG;
    memset(L, 0, sizeof *L);
    L->ndim = ndim;
    *n = 1;
    for (int d = 0; d < ndim; ++d) {
        L->shape[d] = shape[d];
        *n *= shape[d];
        L->stride[0][d] = s0 ? s0[d] : 0;
        L->stride[1][d] = s1 ? s1[d] : 0;
        L->stride[2][d] = s2 ? s2[d] : 0;
    }
    return 0;
}

extern "C" {

int mdc_unary(int op, const float *x, const int64_t *xs, float *out, int ndim, const int64_t *shape, float alpha,
              float beta) {
    Layout L;
    int64_t n;
    if (op < 0 || op > MDC_UN_CLIP || make_layout(&L, ndim, shape, xs, nullptr, nullptr, &n)) return MDC_EBAD_ARG;
    if (n == 0) return 0;
    MDC_LAUNCH(unary_kernel, grid_for(n, THREADS), THREADS, op, x, out, L, n, alpha, beta);
    return launch_status();
}

int mdc_binary(int op, const float *x, const int64_t *xs, const float *y, const int64_t *ys, float *out, int ndim,
               const int64_t *shape) {
    Layout L;
    int64_t n;
    if (op < 0 || op > MDC_BIN_POW || make_layout(&L, ndim, shape, xs, ys, nullptr, &n)) return MDC_EBAD_ARG;
    if (n == 0) return 0;
    MDC_LAUNCH(binary_kernel, grid_for(n, THREADS), THREADS, op, x, y, out, L, n);
    return launch_status();
}

int mdc_compare(int op, const float *x, const int64_t *xs, const float *y, const int64_t *ys, uint8_t *out,
                int ndim, const int64_t *shape) {
    Layout L;
    int64_t n;
    if (op < 0 || op > MDC_CMP_NE || make_layout(&L, ndim, shape, xs, ys, nullptr, &n)) return MDC_EBAD_ARG;
    if (n == 0) return 0;
    MDC_LAUNCH(compare_kernel, grid_for(n, THREADS), THREADS, op, x, y, out, L, n);
    return launch_status();
}

int mdc_where(const uint8_t *cond, const int64_t *cs, const float *x, const int64_t *xs, const float *y,
              const int64_t *ys, float *out, int ndim, const int64_t *shape) {
    Layout L;
    int64_t n;
    if (make_layout(&L, ndim, shape, cs, xs, ys, &n)) return MDC_EBAD_ARG;
    if (n == 0) return 0;
    MDC_LAUNCH(where_kernel, grid_for(n, THREADS), THREADS, cond, x, y, out, L, n);
    return launch_status();
}

int mdc_copy(int elem_size, const void *x, const int64_t *xs, void *out, const int64_t *os, int ndim,
             const int64_t *shape) {
    Layout L;
    int64_t n;
    if (make_layout(&L, ndim, shape, xs, os, nullptr, &n)) return MDC_EBAD_ARG;
    if (n == 0) return 0;
    unsigned grid = grid_for(n, THREADS);
    switch (elem_size) {
        case 1: MDC_LAUNCH(copy_kernel<uint8_t>, grid, THREADS, (const uint8_t *)x, (uint8_t *)out, L, n); break;
        case 2: MDC_LAUNCH(copy_kernel<uint16_t>, grid, THREADS, (const uint16_t *)x, (uint16_t *)out, L, n); break;
        case 4: MDC_LAUNCH(copy_kernel<uint32_t>, grid, THREADS, (const uint32_t *)x, (uint32_t *)out, L, n); break;
        case 8: MDC_LAUNCH(copy_kernel<uint64_t>, grid, THREADS, (const uint64_t *)x, (uint64_t *)out, L, n); break;
        default: return MDC_EBAD_ARG;
    }
    return launch_status();
}

int mdc_fill(int elem_size, void *out, int64_t n, uint64_t bits) {
    if (n <= 0) return n < 0 ? MDC_EBAD_ARG : 0;
    unsigned grid = grid_for(n, THREADS);
    switch (elem_size) {
        case 1: MDC_LAUNCH(fill_kernel<uint8_t>, grid, THREADS, (uint8_t *)out, n, (uint8_t)bits); break;
        case 2: MDC_LAUNCH(fill_kernel<uint16_t>, grid, THREADS, (uint16_t *)out, n, (uint16_t)bits); break;
        case 4: MDC_LAUNCH(fill_kernel<uint32_t>, grid, THREADS, (uint32_t *)out, n, (uint32_t)bits); break;
        case 8: MDC_LAUNCH(fill_kernel<uint64_t>, grid, THREADS, (uint64_t *)out, n, (uint64_t)bits); break;
        default: return MDC_EBAD_ARG;
    }
    return launch_status();
}

int mdc_relu_backward(const float *grad, const float *x, float *out, int64_t n) {
    if (n == 0) return 0;
    MDC_LAUNCH(relu_backward_kernel, grid_for(n, THREADS), THREADS, grad, x, out, n);
    return launch_status();
}

int mdc_bias_act_forward(const float *x, const float *bias, float *out, int64_t rows, int64_t cols, int act) {
    if (act < 0 || act > MDC_ACT_TANH) return MDC_EBAD_ARG;
    if (rows * cols == 0) return 0;
    MDC_LAUNCH(bias_act_forward_kernel, grid_for(rows * cols, THREADS), THREADS, x, bias, out, rows, cols, act);
    return launch_status();
}

int mdc_bias_act_backward(const float *grad, const float *y, float *dz, float *dbias, int64_t rows, int64_t cols,
                          int act) {
    if (act < 0 || act > MDC_ACT_TANH) return MDC_EBAD_ARG;
    if (cols == 0) return 0;
    MDC_LAUNCH(bias_act_backward_kernel, grid_for(cols, THREADS), THREADS, grad, y, dz, dbias, rows, cols, act);
    return launch_status();
}

}  // extern "C"
