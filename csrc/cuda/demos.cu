/*
 * demos.cu -- small kernels for teaching and for testing the emulator: a correct block
 * reduction and the same kernel with one __syncthreads() left out, a kernel that forgets
 * its bounds check, printf from every thread, and atomics.  Run the buggy ones with
 * MINIDL_CUDA_CHECK=1 to see what the checker says (docs/cuda.md).
 */
#include "mdc_cuda.cuh"

static const int SUM_THREADS = 256;

/* One block sums n values: each thread sums a strided share, then a tree in shared memory
 * halves the number of partial sums at every step. */
__global__ void block_sum_kernel(dptr<const float> x, dptr<float> out, int64_t n) {
    MDC_SHARED(float, partial, SUM_THREADS);
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    partial[threadIdx.x] = s;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();  // this step's sums are all written before the next step reads them
    }
    if (threadIdx.x == 0) out[0] = partial[0];
}

/* The same kernel without the barrier inside the loop: thread 0 races ahead and reads
 * partial[64], partial[32], ... before the threads that own them have added into them. */
__global__ void block_sum_missing_barrier_kernel(dptr<const float> x, dptr<float> out, int64_t n) {
    MDC_SHARED(float, partial, SUM_THREADS);
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    partial[threadIdx.x] = s;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        // BUG: no __syncthreads() here
    }
    if (threadIdx.x == 0) out[0] = partial[0];
}

/* BUG: the grid is rounded up to whole blocks, and nothing stops the extra threads. */
__global__ void write_index_kernel(dptr<float> out, int64_t /* n, unused: that is the bug */) {
    const int64_t i = global_thread();
    out[i] = (float)i;  // should be: if (i < n) out[i] = (float)i;
}

__global__ void hello_kernel() {
    printf("hello from thread %d of block %d (lane %d of warp %d)\n", (int)threadIdx.x, (int)blockIdx.x,
           (int)threadIdx.x % 32, (int)threadIdx.x / 32);
}

__global__ void count_kernel(dptr<int> counter) { atomicAdd(&counter[0], 1); }

extern "C" {

int mdc_demo_block_sum(const float *x, float *out, int64_t n) {
    MDC_LAUNCH(block_sum_kernel, 1, SUM_THREADS, x, out, n);
    return launch_status();
}

int mdc_demo_block_sum_missing_barrier(const float *x, float *out, int64_t n) {
    MDC_LAUNCH(block_sum_missing_barrier_kernel, 1, SUM_THREADS, x, out, n);
    return launch_status();
}

int mdc_demo_write_past_end(float *out, int64_t n) {
    const int threads = 128;
    if (n <= 0) return MDC_EBAD_ARG;
    MDC_LAUNCH(write_index_kernel, (unsigned)((n + threads - 1) / threads), threads, out, n);
    return launch_status();
}

int mdc_demo_printf(int blocks, int threads) {
#if defined(__CUDACC__)
    hello_kernel<<<blocks, threads>>>();
#else
    ::mdc_emu::launch("hello_kernel", "", hello_kernel, blocks, threads);  // MDC_LAUNCH needs >= 1 argument
#endif
    int e = launch_status();
    return e ? e : mdc_synchronize();  // device printf output appears at the synchronize
}

int mdc_demo_atomic_count(int *counter, int blocks, int threads) {
    MDC_LAUNCH(count_kernel, blocks, threads, counter);
    return launch_status();
}

}  // extern "C"
