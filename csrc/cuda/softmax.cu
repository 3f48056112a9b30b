/*
 * softmax.cu -- softmax, log-softmax and the cross-entropy loss, one WARP per row.
 *
 * A row of logits is short (10 classes for digits, 1000 for ImageNet), so a whole block
 * per row would leave most threads idle; one warp per row and 8 rows per block keeps every
 * lane busy.  The 32 lanes stride along the row; a row maximum or sum is then combined
 * with a butterfly of __shfl_xor_sync (lane i swaps with lane i^16, i^8, ..., i^1), after
 * which EVERY lane holds the result -- no shared memory and no __syncthreads() at all,
 * because a warp's lanes only ever wait for each other.
 *
 * The formulas are those of the NumPy twins, in the same order:
 *   softmax      e = exp(x - max);  e / sum(e)
 *   log_softmax  (x - max) - log(sum(exp(x - max)))
 *   cross-entropy forward:  loss = -logp[target],  probs = exp(logp)
 *   cross-entropy backward: dlogits = (probs - onehot(target)) * grad_loss
 *
 * and, for the losses over class targets, one thread per row or element (no row sums):
 *   class_targets    rows whose target is ignore_index get target 0 and valid 0, the others
 *                    valid 1; counts the ignored rows and reports the first out-of-range one
 *   nll forward      loss = -logp[target];   nll backward: dlogp = -grad_loss at the target, 0 elsewhere
 */
#include <limits.h>

#include "mdc_cuda.cuh"

static const int ROWS_PER_BLOCK = 8;

__device__ __forceinline__ float warp_max(float v) {
    for (int mask = 16; mask > 0; mask /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, mask));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int mask = 16; mask > 0; mask /= 2) v += __shfl_xor_sync(0xffffffffu, v, mask);
    return v;
}

/* The row this warp owns (rows beyond the end still take part in the shuffles). */
__device__ __forceinline__ int64_t my_row() { return (int64_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32; }

/* max over the row and sum of exp(x - max): every lane gets both. */
__device__ __forceinline__ void row_stats(dptr<const float> row, int64_t cols, bool active, float *max_out,
                                          float *sum_out) {
    const int lane = threadIdx.x % 32;
    float m = -INFINITY;
    if (active)
        for (int64_t j = lane; j < cols; j += 32) m = fmaxf(m, row[j]);
    m = warp_max(m);
    float s = 0.0f;
    if (active)
        for (int64_t j = lane; j < cols; j += 32) s += expf(row[j] - m);
    *max_out = m;
    *sum_out = warp_sum(s);
}

__global__ void softmax_kernel(dptr<const float> x, dptr<float> out, int64_t rows, int64_t cols, int log_space) {
    const int64_t r = my_row();
    const bool active = r < rows;
    dptr<const float> row = x + (active ? r * cols : 0);
    float m, s;
    row_stats(row, cols, active, &m, &s);
    if (!active) return;
    const float log_s = logf(s);
    for (int64_t j = threadIdx.x % 32; j < cols; j += 32) {
        const float shifted = row[j] - m;
        out[r * cols + j] = log_space ? shifted - log_s : expf(shifted) / s;
    }
}

__global__ void cross_entropy_forward_kernel(dptr<const float> logits, dptr<const int64_t> targets,
                                             dptr<float> losses, dptr<float> probs, int64_t rows, int64_t cols,
                                             dptr<int> bad_row) {
    const int64_t r = my_row();
    const bool active = r < rows;
    dptr<const float> row = logits + (active ? r * cols : 0);
    float m, s;
    row_stats(row, cols, active, &m, &s);
    if (!active) return;
    const float log_s = logf(s);
    const int64_t t = targets[r];
    const int lane = threadIdx.x % 32;
    if (t < 0 || t >= cols) {
        if (lane == 0) atomicMin(&bad_row[0], (int)r);  // the host reports the first bad row
        return;
    }
    for (int64_t j = lane; j < cols; j += 32) {
        const float logp = (row[j] - m) - log_s;
        probs[r * cols + j] = expf(logp);
        if (j == t) losses[r] = -logp;
    }
}

__global__ void cross_entropy_backward_kernel(dptr<const float> probs, dptr<const int64_t> targets,
                                              dptr<const float> grad_losses, dptr<float> dlogits, int64_t rows,
                                              int64_t cols, dptr<int> bad_row) {
    for (int64_t i = global_thread(); i < rows * cols; i += grid_threads()) {
        const int64_t r = i / cols, j = i % cols, t = targets[r];
        if (t < 0 || t >= cols) {
            atomicMin(&bad_row[0], (int)r);
            continue;
        }
        dlogits[i] = (probs[i] - (j == t ? 1.0f : 0.0f)) * grad_losses[r];
    }
}

__global__ void class_targets_kernel(dptr<const int64_t> targets, int64_t rows, int64_t classes, int64_t ignore_index,
                                     dptr<int64_t> safe, dptr<uint8_t> valid, dptr<int> ignored, dptr<int> bad_row) {
    for (int64_t r = global_thread(); r < rows; r += grid_threads()) {
        const int64_t t = targets[r];
        const bool skip = t == ignore_index;
        if (skip) atomicAdd(&ignored[0], 1);
        else if (t < 0 || t >= classes) atomicMin(&bad_row[0], (int)r);
        safe[r] = skip ? 0 : t;
        valid[r] = skip ? 0 : 1;
    }
}

__global__ void nll_forward_kernel(dptr<const float> log_probs, dptr<const int64_t> targets, dptr<float> losses,
                                   int64_t rows, int64_t cols, dptr<int> bad_row) {
    for (int64_t r = global_thread(); r < rows; r += grid_threads()) {
        const int64_t t = targets[r];
        if (t < 0 || t >= cols) {
            atomicMin(&bad_row[0], (int)r);
            continue;
        }
        losses[r] = -log_probs[r * cols + t];
    }
}

__global__ void nll_backward_kernel(dptr<const int64_t> targets, dptr<const float> grad_losses, dptr<float> dlogp,
                                    int64_t rows, int64_t cols, dptr<int> bad_row) {
    for (int64_t i = global_thread(); i < rows * cols; i += grid_threads()) {
        const int64_t r = i / cols, j = i % cols, t = targets[r];
        if (t < 0 || t >= cols) {
            atomicMin(&bad_row[0], (int)r);
            continue;
        }
        dlogp[i] = j == t ? -grad_losses[r] : 0.0f;
    }
}

/* ---- host side ---------------------------------------------------------------------- */
static unsigned row_blocks(int64_t rows) { return (unsigned)((rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK); }

/* A device int set to INT_MAX for the kernels' atomicMin; after the launch, *bad_row gets
 * the first bad row (or -1).  Copying it back waits for the kernel: a loss is computed
 * once per step, and a wrong target must be an error, not a silent NaN. */
static int check_targets(int *bad_dev, int64_t *bad_row, int e) {
    int bad = INT_MAX;
    if (!e) e = mdc_memcpy_dtoh(&bad, bad_dev, sizeof bad);
    mdc_free(bad_dev);
    if (e) return e;
    *bad_row = bad == INT_MAX ? -1 : bad;
    return bad == INT_MAX ? 0 : MDC_EBAD_INDEX;
}

static int alloc_flag(int **bad_dev) {
    int init = INT_MAX;
    int e = mdc_malloc((void **)bad_dev, sizeof(int));
    if (!e) e = mdc_memcpy_htod(*bad_dev, &init, sizeof init);
    return e;
}

extern "C" {

int mdc_softmax(const float *x, float *out, int64_t rows, int64_t cols) {
    if (rows * cols == 0) return 0;
    MDC_LAUNCH(softmax_kernel, row_blocks(rows), 32 * ROWS_PER_BLOCK, x, out, rows, cols, 0);
    return launch_status();
}

int mdc_log_softmax(const float *x, float *out, int64_t rows, int64_t cols) {
    if (rows * cols == 0) return 0;
    MDC_LAUNCH(softmax_kernel, row_blocks(rows), 32 * ROWS_PER_BLOCK, x, out, rows, cols, 1);
    return launch_status();
}

int mdc_cross_entropy_forward(const float *logits, const int64_t *targets, float *losses, float *probs,
                              int64_t rows, int64_t cols, int64_t *bad_row) {
    *bad_row = -1;
    if (rows == 0) return 0;
    if (cols == 0 || rows > INT_MAX) return MDC_EBAD_ARG;
    int *bad = nullptr;
    int e = alloc_flag(&bad);
    if (e) return e;
    MDC_LAUNCH(cross_entropy_forward_kernel, row_blocks(rows), 32 * ROWS_PER_BLOCK, logits, targets, losses, probs,
               rows, cols, bad);
    return check_targets(bad, bad_row, launch_status());
}

int mdc_cross_entropy_backward(const float *probs, const int64_t *targets, const float *grad_losses,
                               float *dlogits, int64_t rows, int64_t cols, int64_t *bad_row) {
    *bad_row = -1;
    if (rows == 0) return 0;
    if (cols == 0 || rows > INT_MAX) return MDC_EBAD_ARG;
    int *bad = nullptr;
    int e = alloc_flag(&bad);
    if (e) return e;
    MDC_LAUNCH(cross_entropy_backward_kernel, grid_for(rows * cols, 256), 256, probs, targets, grad_losses, dlogits,
               rows, cols, bad);
    return check_targets(bad, bad_row, launch_status());
}

int mdc_class_targets(const int64_t *targets, int64_t rows, int64_t classes, int64_t ignore_index, int64_t *safe,
                      uint8_t *valid, int64_t *ignored, int64_t *bad_row) {
    *bad_row = -1;
    *ignored = 0;
    if (rows == 0) return 0;
    if (rows > INT_MAX) return MDC_EBAD_ARG;
    int *bad = nullptr, *count = nullptr, zero = 0, host_count = 0;
    int e = alloc_flag(&bad);
    if (!e) e = mdc_malloc((void **)&count, sizeof(int));
    if (!e) e = mdc_memcpy_htod(count, &zero, sizeof zero);
    if (!e) {
        MDC_LAUNCH(class_targets_kernel, grid_for(rows, 256), 256, targets, rows, classes, ignore_index, safe, valid,
                   count, bad);
        e = launch_status();
    }
    if (!e && count) e = mdc_memcpy_dtoh(&host_count, count, sizeof host_count);
    if (count) mdc_free(count);
    *ignored = host_count;
    if (!bad) return e;
    return check_targets(bad, bad_row, e);
}

int mdc_nll_forward(const float *log_probs, const int64_t *targets, float *losses, int64_t rows, int64_t cols,
                    int64_t *bad_row) {
    *bad_row = -1;
    if (rows == 0) return 0;
    if (cols == 0 || rows > INT_MAX) return MDC_EBAD_ARG;
    int *bad = nullptr;
    int e = alloc_flag(&bad);
    if (e) return e;
    MDC_LAUNCH(nll_forward_kernel, grid_for(rows, 256), 256, log_probs, targets, losses, rows, cols, bad);
    return check_targets(bad, bad_row, launch_status());
}

int mdc_nll_backward(const int64_t *targets, const float *grad_losses, float *dlogp, int64_t rows, int64_t cols,
                     int64_t *bad_row) {
    *bad_row = -1;
    if (rows == 0) return 0;
    if (cols == 0 || rows > INT_MAX) return MDC_EBAD_ARG;
    int *bad = nullptr;
    int e = alloc_flag(&bad);
    if (e) return e;
    MDC_LAUNCH(nll_backward_kernel, grid_for(rows * cols, 256), 256, targets, grad_losses, dlogp, rows, cols, bad);
    return check_targets(bad, bad_row, launch_status());
}

}  // extern "C"
