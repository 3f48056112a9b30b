/*
 * gather.cu -- rows picked by an index array (embeddings, x[idx]) and the adjoint: rows
 * added back at those indices.  The add is where atomics are needed: an index may repeat
 * (a word twice in one batch), and two threads adding into the same row at once would lose
 * one of the additions without atomicAdd.  The price: on a GPU the additions then happen
 * in no fixed order, so the result can differ in the last bits from run to run.
 */
#include "mdc_cuda.cuh"

static const int THREADS = 256;

__device__ __forceinline__ bool resolve(int64_t idx, int64_t rows, int64_t *row) {
    *row = idx < 0 ? idx + rows : idx;  // negative indices count from the end, as in NumPy
    return *row >= 0 && *row < rows;
}

__global__ void index_select_kernel(dptr<const float> x, int64_t rows, int64_t row_size, dptr<const int64_t> index,
                                    int64_t count, dptr<float> out, dptr<int> bad) {
    for (int64_t k = global_thread(); k < count * row_size; k += grid_threads()) {
        const int64_t i = k / row_size, j = k % row_size;
        int64_t row;
        if (!resolve(index[i], rows, &row)) {
            atomicMin(&bad[0], (int)i);
            continue;
        }
        out[k] = x[row * row_size + j];
    }
}

__global__ void index_add_kernel(dptr<float> out, int64_t rows, int64_t row_size, dptr<const int64_t> index,
                                 int64_t count, dptr<const float> values, dptr<int> bad) {
    for (int64_t k = global_thread(); k < count * row_size; k += grid_threads()) {
        const int64_t i = k / row_size, j = k % row_size;
        int64_t row;
        if (!resolve(index[i], rows, &row)) {
            atomicMin(&bad[0], (int)i);
            continue;
        }
        atomicAdd(&out[row * row_size + j], values[k]);
    }
}

static int run_indexed(bool add, float *out, const float *x, int64_t rows, int64_t row_size, const int64_t *index,
                       int64_t count, int64_t *bad) {
    *bad = -1;
    if (rows < 0 || row_size < 0 || count < 0 || count > 0x7fffffff) return MDC_EBAD_ARG;
    if (count * row_size == 0) return 0;
    int *flag = nullptr, first = 0x7fffffff;
    int e = mdc_malloc((void **)&flag, sizeof(int));
    if (!e) e = mdc_memcpy_htod(flag, &first, sizeof first);
    if (!e) {
        if (add)
            MDC_LAUNCH(index_add_kernel, grid_for(count * row_size, THREADS), THREADS, out, rows, row_size, index,
                       count, x, flag);
        else
            MDC_LAUNCH(index_select_kernel, grid_for(count * row_size, THREADS), THREADS, x, rows, row_size, index,
                       count, out, flag);
        e = launch_status();
    }
    if (!e) e = mdc_memcpy_dtoh(&first, flag, sizeof first);
    mdc_free(flag);
    if (e) return e;
    if (first == 0x7fffffff) return 0;
    *bad = first;
    return MDC_EBAD_INDEX;
}

extern "C" {

int mdc_index_select(const float *x, int64_t rows, int64_t row_size, const int64_t *index, int64_t count,
                     float *out, int64_t *bad) {
    return run_indexed(false, out, x, rows, row_size, index, count, bad);
}

int mdc_index_add(float *out, int64_t rows, int64_t row_size, const int64_t *index, int64_t count,
                  const float *values, int64_t *bad) {
    return run_indexed(true, out, values, rows, row_size, index, count, bad);
}

}  // extern "C"
