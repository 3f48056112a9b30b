/*
 * reduce.cu -- sum, max and min over one axis, and argmax.
 *
 * x is viewed as [outer][n][inner] and reduced over n (any run of adjacent axes of a
 * contiguous array has this form).  Two shapes of work:
 *
 *   inner == 1 (reduce along rows): one BLOCK per row.  Its 256 threads stride along the
 *     row, each keeping a running value; then the block combines 256 values into one:
 *       1. inside each warp, with shuffles: lane i adds lane i+16's value, then i+8, ...
 *          (5 steps, registers only, no memory and no barrier);
 *       2. lane 0 of each of the 8 warps leaves its value in shared memory, __syncthreads();
 *       3. the first warp reads the 8 values and shuffles once more.
 *     Long rows with few of them (a full sum) are split: pass 1 reduces chunks of each row
 *     into partial results, pass 2 reduces the partials.
 *   inner > 1 (reduce down columns): one THREAD per output; neighbouring threads own
 *     neighbouring columns, so each step of their loops reads one contiguous stretch.
 */
#include <float.h>

#include "mdc_cuda.cuh"

static const int BLOCK = 256;  // threads per block in the row reduction: 8 warps

__device__ __forceinline__ float combine(int op, float a, float b) {
    if (op == MDC_RED_SUM) return a + b;
    if (a != a) return a;  // max and min propagate NaN, as np.maximum.reduce does
    if (b != b) return b;
    return op == MDC_RED_MAX ? fmaxf(a, b) : fminf(a, b);
}

__device__ __forceinline__ float identity(int op) {
    return op == MDC_RED_SUM ? 0.0f : op == MDC_RED_MAX ? -INFINITY : INFINITY;
}

/* Lane 0 ends with the combination of all 32 lanes' values (the others with partial ones). */
__device__ __forceinline__ float warp_reduce(int op, float v) {
    for (int offset = 16; offset > 0; offset /= 2) v = combine(op, v, __shfl_down_sync(0xffffffffu, v, offset));
    return v;
}

/* Block `row` of the grid reduces x[row][begin .. end) (a chunk of a row of length n). */
__global__ void reduce_rows_kernel(int op, dptr<const float> x, dptr<float> out, int64_t n, int64_t chunk) {
    MDC_SHARED(float, warp_results, BLOCK / 32);
    const int64_t row = blockIdx.y, part = blockIdx.x;
    const int64_t begin = part * chunk, end = begin + chunk < n ? begin + chunk : n;
    float v = identity(op);
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) v = combine(op, v, x[row * n + i]);

    v = warp_reduce(op, v);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warp_results[warp] = v;
    __syncthreads();  // every warp's result is in shared memory before warp 0 reads them
    if (warp == 0) {
        v = lane < BLOCK / 32 ? (float)warp_results[lane] : identity(op);
        v = warp_reduce(op, v);
        if (lane == 0) out[row * gridDim.x + part] = v;
    }
}

__global__ void reduce_columns_kernel(int op, dptr<const float> x, dptr<float> out, int64_t outer, int64_t n,
                                      int64_t inner) {
    for (int64_t k = global_thread(); k < outer * inner; k += grid_threads()) {
        const int64_t o = k / inner, i = k % inner;
        float v = identity(op);
        for (int64_t j = 0; j < n; ++j) v = combine(op, v, x[(o * n + j) * inner + i]);
        out[k] = v;
    }
}

/* One thread per output: the index of the first largest value (the first NaN, if any). */
__global__ void argmax_kernel(dptr<const float> x, dptr<int64_t> out, int64_t outer, int64_t n, int64_t inner) {
    for (int64_t k = global_thread(); k < outer * inner; k += grid_threads()) {
        const int64_t o = k / inner, i = k % inner;
        int64_t best = 0;
        float best_v = x[o * n * inner + i];
        for (int64_t j = 1; j < n && best_v == best_v; ++j) {
            float v = x[(o * n + j) * inner + i];
            if (v > best_v || v != v) {
                best_v = v;
                best = j;
            }
        }
        out[k] = best;
    }
}

extern "C" {

int mdc_reduce(int op, const float *x, float *out, int64_t outer, int64_t n, int64_t inner) {
    if (op < 0 || op > MDC_RED_MIN || outer < 0 || n < 0 || inner < 0) return MDC_EBAD_ARG;
    if (outer * inner == 0) return 0;
    if (inner > 1) {
        MDC_LAUNCH(reduce_columns_kernel, grid_for(outer * inner, BLOCK), BLOCK, op, x, out, outer, n, inner);
        return launch_status();
    }
    if (outer > 65535) return MDC_EBAD_ARG;  // gridDim.y limit
    // Split long rows when there are too few rows to keep a GPU busy: 8192 elements a block.
    int64_t parts = outer >= 64 ? 1 : (n + 8191) / 8192;
    if (parts > 1024) parts = 1024;
    if (parts <= 1) {
        MDC_LAUNCH(reduce_rows_kernel, dim3(1, (unsigned)outer), BLOCK, op, x, out, n, n);
        return launch_status();
    }
    float *partial = nullptr;
    int e = mdc_malloc((void **)&partial, outer * parts * (int64_t)sizeof(float));
    if (e) return e;
    int64_t chunk = (n + parts - 1) / parts;
    MDC_LAUNCH(reduce_rows_kernel, dim3((unsigned)parts, (unsigned)outer), BLOCK, op, x, partial, n, chunk);
    e = launch_status();
    if (!e) {
        MDC_LAUNCH(reduce_rows_kernel, dim3(1, (unsigned)outer), BLOCK, op, partial, out, parts, parts);
        e = launch_status();
    }
    mdc_free(partial);
    return e;
}

int mdc_argmax(const float *x, int64_t *out, int64_t outer, int64_t n, int64_t inner) {
    if (n <= 0 || outer < 0 || inner < 0) return MDC_EBAD_ARG;  // NumPy: an empty sequence has no argmax
    if (outer * inner == 0) return 0;
    MDC_LAUNCH(argmax_kernel, grid_for(outer * inner, BLOCK), BLOCK, x, out, outer, n, inner);
    return launch_status();
}

}  // extern "C"
