/*
 * matmul.cu -- C = A·B for row-major float32 A (M x K), B (K x N), C (M x N), two ways.
 *
 *   sgemm_naive  one thread per element of C, reading its row of A and column of B from
 *                global memory: K loads of each per result;
 *   sgemm_tiled  one block per TILE x TILE tile of C; the block walks along K one pair of
 *                tiles at a time, each thread copying ONE element of the A tile and ONE of
 *                the B tile into shared memory; then every thread reads TILE values of each
 *                from shared memory. Global loads fall by a factor of TILE.
 *
 * It is compiled twice like minidl's own kernels (docs/cuda.md): by nvcc for a GPU, or, here,
 * by the C++ compiler against minidl's CUDA emulator (csrc/cuda/emu/), which runs every CUDA
 * thread as a fiber and can check shared-memory races (MINIDL_CUDA_CHECK=1). Shared arrays
 * are declared with MDC_SHARED (`__shared__` on a GPU, race-checked in the emulator) and
 * kernel pointer arguments are dptr<T> (bounds-checked in the emulator).
 * In the emulator write `float v = As[i];`, not `auto v = As[i];` (see docs/cuda.md).
 */
#include "mdc_cuda.cuh"

#define TILE 8  // small, because every emulated thread is a fiber: 64 threads per block

__global__ void sgemm_naive(int M, int N, int K, dptr<const float> A, dptr<const float> B, dptr<float> C) {
    // BEGIN SOLUTION naive
    // STUB: (void)M; (void)N; (void)K; (void)A; (void)B; (void)C;
    const int col = blockIdx.x * blockDim.x + threadIdx.x;  // threadIdx.x follows columns: coalesced
    const int row = blockIdx.y * blockDim.y + threadIdx.y;
    if (row >= M || col >= N) return;  // the grid is rounded up to whole blocks
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) acc += A[row * K + k] * B[k * N + col];
    C[row * N + col] = acc;
    // END SOLUTION
}

__global__ void sgemm_tiled(int M, int N, int K, dptr<const float> A, dptr<const float> B, dptr<float> C) {
    MDC_SHARED(float, As, TILE * TILE);
    MDC_SHARED(float, Bs, TILE * TILE);
    const int tx = threadIdx.x, ty = threadIdx.y;       // blockDim = (TILE, TILE)
    const int row = blockIdx.y * TILE + ty;             // this thread's element of C
    const int col = blockIdx.x * TILE + tx;
    // BEGIN SOLUTION tiled
    // STUB: (void)M; (void)N; (void)K; (void)A; (void)B; (void)C; (void)row; (void)col; (void)tx; (void)ty; As[0] = 0.0f; Bs[0] = 0.0f;
    float acc = 0.0f;
    for (int t = 0; t < K; t += TILE) {
        // each thread loads one element of each tile; outside the matrices it stores 0, so the
        // edge tiles are zero-padded and add nothing
        As[ty * TILE + tx] = (row < M && t + tx < K) ? A[row * K + t + tx] : 0.0f;
        Bs[ty * TILE + tx] = (t + ty < K && col < N) ? B[(t + ty) * N + col] : 0.0f;
        __syncthreads();  // both tiles are complete before anyone reads them
        for (int k = 0; k < TILE; ++k) acc += As[ty * TILE + k] * Bs[k * TILE + tx];
        __syncthreads();  // everyone has finished reading before the next tiles overwrite them
    }
    if (row < M && col < N) C[row * N + col] = acc;
    // END SOLUTION
}

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

extern "C" {

int ex_sgemm_naive(int M, int N, int K, const float *A, const float *B, float *C) {
    if (M <= 0 || N <= 0 || K <= 0) return MDC_EBAD_ARG;
    MDC_LAUNCH(sgemm_naive, dim3(ceil_div(N, 16), ceil_div(M, 16)), dim3(16, 16), M, N, K, A, B, C);
    return launch_status();
}

int ex_sgemm_tiled(int M, int N, int K, const float *A, const float *B, float *C) {
    if (M <= 0 || N <= 0 || K <= 0) return MDC_EBAD_ARG;
    MDC_LAUNCH(sgemm_tiled, dim3(ceil_div(N, TILE), ceil_div(M, TILE)), dim3(TILE, TILE), M, N, K, A, B, C);
    return launch_status();
}

}  // extern "C"
