/*
 * conv.cu -- im2col / col2im and 2-D pooling, NCHW, one thread per output element.
 *
 * Gather, never scatter: col2im and the pooling backward passes are ADJOINTS -- each input
 * pixel receives contributions from every window that covers it.  Written as "each window
 * adds into its pixels" two threads would add into the same pixel at once (atomics, and a
 * summation order that changes from run to run).  Written as "each pixel sums the windows
 * covering it" every output has one owner thread, no atomics, and the sum runs in the
 * NumPy twin's order (kernel offset i, then j), so results are reproducible.
 */
#include "mdc_cuda.cuh"

static const int THREADS = 256;

struct Geometry {  // an (N, C, H, W) image, a kh x kw window, stride and zero padding
    int64_t n, c, h, w, kh, kw, stride, pad, oh, ow;
};

static Geometry geometry(int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t stride,
                         int64_t pad) {
    Geometry g{n, c, h, w, kh, kw, stride, pad, 0, 0};
    g.oh = (h + 2 * pad - kh) / stride + 1;
    g.ow = (w + 2 * pad - kw) / stride + 1;
    return g;
}

/* cols[(n, oh, ow)][(c, i, j)] = x[n][c][oh*stride - pad + i][ow*stride - pad + j], 0 in the padding. */
__global__ void im2col_kernel(dptr<const float> x, dptr<float> cols, Geometry g) {
    const int64_t width = g.c * g.kh * g.kw, total = g.n * g.oh * g.ow * width;
    for (int64_t k = global_thread(); k < total; k += grid_threads()) {
        const int64_t row = k / width, col = k % width;
        const int64_t b = row / (g.oh * g.ow), oy = (row / g.ow) % g.oh, ox = row % g.ow;
        const int64_t ch = col / (g.kh * g.kw), i = (col / g.kw) % g.kh, j = col % g.kw;
        const int64_t y = oy * g.stride - g.pad + i, xx = ox * g.stride - g.pad + j;
        const bool inside = y >= 0 && y < g.h && xx >= 0 && xx < g.w;
        cols[k] = inside ? x[((b * g.c + ch) * g.h + y) * g.w + xx] : 0.0f;
    }
}

/* The window position (oy, ox) whose offset (i, j) lands on padded pixel coordinate p, if any. */
__device__ __forceinline__ bool window_at(int64_t p, int64_t i, int64_t stride, int64_t out_size, int64_t *o) {
    const int64_t start = p - i;  // where that window starts, in padded coordinates
    if (start < 0 || start % stride) return false;
    *o = start / stride;
    return *o < out_size;
}

__global__ void col2im_kernel(dptr<const float> cols, dptr<float> x, Geometry g) {
    const int64_t width = g.c * g.kh * g.kw, total = g.n * g.c * g.h * g.w;
    for (int64_t k = global_thread(); k < total; k += grid_threads()) {
        const int64_t b = k / (g.c * g.h * g.w), ch = (k / (g.h * g.w)) % g.c, y = (k / g.w) % g.h, xx = k % g.w;
        float sum = 0.0f;
        for (int64_t i = 0; i < g.kh; ++i)
            for (int64_t j = 0; j < g.kw; ++j) {
                int64_t oy, ox;
                if (window_at(y + g.pad, i, g.stride, g.oh, &oy) && window_at(xx + g.pad, j, g.stride, g.ow, &ox))
                    sum += cols[((b * g.oh + oy) * g.ow + ox) * width + (ch * g.kh + i) * g.kw + j];
            }
        x[k] = sum;
    }
}

/* Max over each window (padding counts as -inf); argmax = the first winning offset i*k + j. */
__global__ void max_pool_forward_kernel(dptr<const float> x, dptr<float> out, dptr<int64_t> argmax, Geometry g) {
    const int64_t total = g.n * g.c * g.oh * g.ow;
    for (int64_t k = global_thread(); k < total; k += grid_threads()) {
        const int64_t plane = k / (g.oh * g.ow), oy = (k / g.ow) % g.oh, ox = k % g.ow;
        float best = -INFINITY;
        int64_t best_at = 0;
        bool found_nan = false;
        for (int64_t i = 0; i < g.kh && !found_nan; ++i)
            for (int64_t j = 0; j < g.kw && !found_nan; ++j) {
                const int64_t y = oy * g.stride - g.pad + i, xx = ox * g.stride - g.pad + j;
                const float v = y >= 0 && y < g.h && xx >= 0 && xx < g.w ? x[(plane * g.h + y) * g.w + xx] : -INFINITY;
                if (v > best || v != v) {  // like np.argmax: the first maximum, or the first NaN
                    best = v;
                    best_at = i * g.kw + j;
                    found_nan = v != v;
                }
            }
        out[k] = best;
        argmax[k] = best_at;
    }
}

__global__ void max_pool_backward_kernel(dptr<const float> grad, dptr<const int64_t> argmax, dptr<float> dx,
                                         Geometry g) {
    const int64_t total = g.n * g.c * g.h * g.w;
    for (int64_t k = global_thread(); k < total; k += grid_threads()) {
        const int64_t plane = k / (g.h * g.w), y = (k / g.w) % g.h, xx = k % g.w;
        float sum = 0.0f;
        for (int64_t i = 0; i < g.kh; ++i)
            for (int64_t j = 0; j < g.kw; ++j) {
                int64_t oy, ox;
                if (window_at(y + g.pad, i, g.stride, g.oh, &oy) && window_at(xx + g.pad, j, g.stride, g.ow, &ox)) {
                    const int64_t o = (plane * g.oh + oy) * g.ow + ox;
                    if (argmax[o] == i * g.kw + j) sum += grad[o];  // this pixel won window o
                }
            }
        dx[k] = sum;
    }
}

/* Mean over each window; padded zeros count towards the mean. */
__global__ void avg_pool_forward_kernel(dptr<const float> x, dptr<float> out, Geometry g) {
    const int64_t total = g.n * g.c * g.oh * g.ow;
    for (int64_t k = global_thread(); k < total; k += grid_threads()) {
        const int64_t plane = k / (g.oh * g.ow), oy = (k / g.ow) % g.oh, ox = k % g.ow;
        float sum = 0.0f;
        for (int64_t i = 0; i < g.kh; ++i)
            for (int64_t j = 0; j < g.kw; ++j) {
                const int64_t y = oy * g.stride - g.pad + i, xx = ox * g.stride - g.pad + j;
                if (y >= 0 && y < g.h && xx >= 0 && xx < g.w) sum += x[(plane * g.h + y) * g.w + xx];
            }
        out[k] = sum / (float)(g.kh * g.kw);
    }
}

__global__ void avg_pool_backward_kernel(dptr<const float> grad, dptr<float> dx, Geometry g) {
    const int64_t total = g.n * g.c * g.h * g.w;
    const float count = (float)(g.kh * g.kw);
    for (int64_t k = global_thread(); k < total; k += grid_threads()) {
        const int64_t plane = k / (g.h * g.w), y = (k / g.w) % g.h, xx = k % g.w;
        float sum = 0.0f;
        for (int64_t i = 0; i < g.kh; ++i)
            for (int64_t j = 0; j < g.kw; ++j) {
                int64_t oy, ox;
                if (window_at(y + g.pad, i, g.stride, g.oh, &oy) && window_at(xx + g.pad, j, g.stride, g.ow, &ox))
                    sum += grad[(plane * g.oh + oy) * g.ow + ox] / count;  // divide, as the twin does
            }
        dx[k] = sum;
    }
}

/* ---- host side ---------------------------------------------------------------------- */
static bool bad_geometry(const Geometry &g) {
    return g.n < 0 || g.c < 0 || g.h < 0 || g.w < 0 || g.kh < 1 || g.kw < 1 || g.stride < 1 || g.pad < 0 ||
           g.oh < 1 || g.ow < 1;
}

#define LAUNCH_OVER(total, kernel, ...)                                             \
    do {                                                                            \
        if (bad_geometry(g)) return MDC_EBAD_ARG;                                   \
        if ((total) == 0) return 0;                                                 \
        MDC_LAUNCH(kernel, grid_for((total), THREADS), THREADS, __VA_ARGS__);       \
        return launch_status();                                                     \
    } while (0)

extern "C" {

int mdc_im2col(const float *x, float *cols, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
               int64_t stride, int64_t pad) {
    Geometry g = geometry(n, c, h, w, kh, kw, stride, pad);
    LAUNCH_OVER(n * g.oh * g.ow * c * kh * kw, im2col_kernel, x, cols, g);
}

int mdc_col2im(const float *cols, float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
               int64_t stride, int64_t pad) {
    Geometry g = geometry(n, c, h, w, kh, kw, stride, pad);
    LAUNCH_OVER(n * c * h * w, col2im_kernel, cols, x, g);
}

int mdc_max_pool2d_forward(const float *x, float *out, int64_t *argmax, int64_t n, int64_t c, int64_t h, int64_t w,
                           int64_t k, int64_t stride, int64_t pad) {
    Geometry g = geometry(n, c, h, w, k, k, stride, pad);
    LAUNCH_OVER(n * c * g.oh * g.ow, max_pool_forward_kernel, x, out, argmax, g);
}

int mdc_max_pool2d_backward(const float *grad, const int64_t *argmax, float *dx, int64_t n, int64_t c, int64_t h,
                            int64_t w, int64_t k, int64_t stride, int64_t pad) {
    Geometry g = geometry(n, c, h, w, k, k, stride, pad);
    LAUNCH_OVER(n * c * h * w, max_pool_backward_kernel, grad, argmax, dx, g);
}

int mdc_avg_pool2d_forward(const float *x, float *out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t k,
                           int64_t stride, int64_t pad) {
    Geometry g = geometry(n, c, h, w, k, k, stride, pad);
    LAUNCH_OVER(n * c * g.oh * g.ow, avg_pool_forward_kernel, x, out, g);
}

int mdc_avg_pool2d_backward(const float *grad, float *dx, int64_t n, int64_t c, int64_t h, int64_t w, int64_t k,
                            int64_t stride, int64_t pad) {
    Geometry g = geometry(n, c, h, w, k, k, stride, pad);
    LAUNCH_OVER(n * c * h * w, avg_pool_backward_kernel, grad, dx, g);
}

}  // extern "C"
