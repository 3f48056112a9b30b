/*
 * gemm.cu -- C = A B in six stages, each a kernel of its own to put side by side.
 *
 * The progression of Simon Boehm's "How to optimize a CUDA matmul kernel", in our own
 * code.  A is M x K, B is K x N, C is M x N, all row-major; every kernel handles any
 * M, N, K (edge tiles are padded with zeros when loaded, and stores are guarded), and
 * blockIdx.z picks one product of a batch.  What each stage changes:
 *
 *   1 naive        one thread per C element; a warp's 32 threads take 32 different ROWS,
 *                  so every load of A and every store of C touches 32 separate places.
 *   2 coalesced    the same work, but a warp's threads take 32 neighbouring COLUMNS: they
 *                  read one row of A (the same word: a broadcast) and 32 neighbouring
 *                  floats of B and C -- one memory transaction instead of 32.
 *   3 shared tiles the block copies a 32x32 tile of A and of B into shared memory once and
 *                  every thread reads it 32 times from there: global traffic / 32.
 *   4 1-D tiling   each thread computes TM = 8 results of a column; a value of B read from
 *                  shared memory is reused for 8 products in registers.
 *   5 2-D tiling   each thread computes an 8 x 8 block of results from 8 values of A and 8
 *                  of B held in registers: 64 products per 16 shared-memory reads.
 *   6 vectorized   stage 5 with 16-byte float4 loads from global memory, and the A tile
 *                  stored transposed so a thread's 8 values of A are contiguous too.
 *
 * Sizes: indices are int (the host checks M*K, K*N, M*N < 2^31), to keep the arithmetic
 * readable and cheap on the GPU.
 */
#include "mdc_cuda.cuh"

/* X[r][c] of a rows x cols matrix, or 0 outside it: how edge tiles are padded. */
__device__ __forceinline__ float at_or_zero(dptr<const float> X, int r, int c, int rows, int cols) {
    return r < rows && c < cols ? X[r * cols + c] : 0.0f;
}

/* ---- 1. naive --------------------------------------------------------------------- */
__global__ void sgemm_naive(int M, int N, int K, dptr<const float> A, dptr<const float> B, dptr<float> C,
                            int64_t stride_a, int64_t stride_b) {
    A += blockIdx.z * stride_a;
    B += blockIdx.z * stride_b;
    C += blockIdx.z * (int64_t)M * N;
    const int row = blockIdx.x * blockDim.x + threadIdx.x;  // threadIdx.x -> rows: uncoalesced
    const int col = blockIdx.y * blockDim.y + threadIdx.y;
    if (row >= M || col >= N) return;
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) acc += A[row * K + k] * B[k * N + col];
    C[row * N + col] = acc;
}

/* ---- 2. coalesced: the only change is which index follows threadIdx.x -------------- */
__global__ void sgemm_coalesced(int M, int N, int K, dptr<const float> A, dptr<const float> B, dptr<float> C,
                                int64_t stride_a, int64_t stride_b) {
    A += blockIdx.z * stride_a;
    B += blockIdx.z * stride_b;
    C += blockIdx.z * (int64_t)M * N;
    const int col = blockIdx.x * blockDim.x + threadIdx.x;  // threadIdx.x -> columns: coalesced
    const int row = blockIdx.y * blockDim.y + threadIdx.y;
    if (row >= M || col >= N) return;
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) acc += A[row * K + k] * B[k * N + col];
    C[row * N + col] = acc;
}

/* ---- 3. shared-memory tiles --------------------------------------------------------- */
static const int TILE = 32;

__global__ void sgemm_shared_tiles(int M, int N, int K, dptr<const float> A, dptr<const float> B, dptr<float> C,
                                   int64_t stride_a, int64_t stride_b) {
    MDC_SHARED(float, As, TILE * TILE);
    MDC_SHARED(float, Bs, TILE * TILE);
    A += blockIdx.z * stride_a;
    B += blockIdx.z * stride_b;
    C += blockIdx.z * (int64_t)M * N;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row = blockIdx.y * TILE + ty, col = blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (int t = 0; t < K; t += TILE) {
        As[ty * TILE + tx] = at_or_zero(A, row, t + tx, M, K);  // one element of each tile per thread
        Bs[ty * TILE + tx] = at_or_zero(B, t + ty, col, K, N);
        __syncthreads();  // the tiles are complete before anyone reads them
        for (int k = 0; k < TILE; ++k) acc += As[ty * TILE + k] * Bs[k * TILE + tx];
        __syncthreads();  // everyone is done reading before the next tiles overwrite them
    }
    if (row < M && col < N) C[row * N + col] = acc;
}

/* ---- 4. 1-D block tiling: 64 x 64 tile of C per block, 8 results per thread ---------- */
__global__ void sgemm_blocktile_1d(int M, int N, int K, dptr<const float> A, dptr<const float> B, dptr<float> C,
                                   int64_t stride_a, int64_t stride_b) {
    constexpr int BM = 64, BN = 64, BK = 8, TM = 8;  // 512 threads: BM * BN / TM
    MDC_SHARED(float, As, BM * BK);
    MDC_SHARED(float, Bs, BK * BN);
    A += blockIdx.z * stride_a;
    B += blockIdx.z * stride_b;
    C += blockIdx.z * (int64_t)M * N;
    const int block_row = blockIdx.y * BM, block_col = blockIdx.x * BN;
    const int thread_col = threadIdx.x % BN, thread_row = threadIdx.x / BN;  // rows thread_row*TM ..+TM-1
    float acc[TM] = {};
    for (int t = 0; t < K; t += BK) {
        // 512 threads, 512 elements in each tile: one each.
        As[threadIdx.x] = at_or_zero(A, block_row + threadIdx.x / BK, t + threadIdx.x % BK, M, K);
        Bs[threadIdx.x] = at_or_zero(B, t + threadIdx.x / BN, block_col + threadIdx.x % BN, K, N);
        __syncthreads();
        for (int k = 0; k < BK; ++k) {
            const float b = Bs[k * BN + thread_col];  // one shared read, TM uses
            for (int i = 0; i < TM; ++i) acc[i] += As[(thread_row * TM + i) * BK + k] * b;
        }
        __syncthreads();
    }
    for (int i = 0; i < TM; ++i) {
        const int row = block_row + thread_row * TM + i, col = block_col + thread_col;
        if (row < M && col < N) C[row * N + col] = acc[i];
    }
}

/* ---- 5. 2-D block tiling: 128 x 128 tile of C per block, 8 x 8 results per thread ----- */
__global__ void sgemm_blocktile_2d(int M, int N, int K, dptr<const float> A, dptr<const float> B, dptr<float> C,
                                   int64_t stride_a, int64_t stride_b) {
    constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8;
    constexpr int THREADS = (BM / TM) * (BN / TN);  // 256
    MDC_SHARED(float, As, BM * BK);
    MDC_SHARED(float, Bs, BK * BN);
    A += blockIdx.z * stride_a;
    B += blockIdx.z * stride_b;
    C += blockIdx.z * (int64_t)M * N;
    const int block_row = blockIdx.y * BM, block_col = blockIdx.x * BN;
    const int thread_row = threadIdx.x / (BN / TN), thread_col = threadIdx.x % (BN / TN);
    float acc[TM * TN] = {}, reg_m[TM], reg_n[TN];
    for (int t = 0; t < K; t += BK) {
        // 1024 elements per tile, 256 threads: four each, THREADS apart (so still coalesced).
        for (int i = threadIdx.x; i < BM * BK; i += THREADS)
            As[i] = at_or_zero(A, block_row + i / BK, t + i % BK, M, K);
        for (int i = threadIdx.x; i < BK * BN; i += THREADS)
            Bs[i] = at_or_zero(B, t + i / BN, block_col + i % BN, K, N);
        __syncthreads();
        for (int k = 0; k < BK; ++k) {
            for (int i = 0; i < TM; ++i) reg_m[i] = As[(thread_row * TM + i) * BK + k];
            for (int j = 0; j < TN; ++j) reg_n[j] = Bs[k * BN + thread_col * TN + j];
            for (int i = 0; i < TM; ++i)
                for (int j = 0; j < TN; ++j) acc[i * TN + j] += reg_m[i] * reg_n[j];  // an outer product
        }
        __syncthreads();
    }
    for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) {
            const int row = block_row + thread_row * TM + i, col = block_col + thread_col * TN + j;
            if (row < M && col < N) C[row * N + col] = acc[i * TN + j];
        }
}

/* ---- 6. vectorized: float4 loads, A tile transposed ---------------------------------- */
/* Four consecutive elements X[r][c..c+3] (zeros outside).  With `vec` the host promised
 * that cols is a multiple of 4 and X is 16-byte aligned, so c % 4 == 0 makes one aligned
 * 16-byte load; otherwise four scalar loads. */
__device__ __forceinline__ float4 four_or_zero(dptr<const float> X, int r, int c, int rows, int cols, bool vec) {
    if (vec && r < rows && c + 3 < cols) return load4(X, r * cols + c);
    return make_float4(at_or_zero(X, r, c, rows, cols), at_or_zero(X, r, c + 1, rows, cols),
                       at_or_zero(X, r, c + 2, rows, cols), at_or_zero(X, r, c + 3, rows, cols));
}

__global__ void sgemm_vectorized(int M, int N, int K, dptr<const float> A, dptr<const float> B, dptr<float> C,
                                 int64_t stride_a, int64_t stride_b, int vec) {
    constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8;
    MDC_SHARED(float, As, BK * BM);  // transposed: As[k * BM + m]
    MDC_SHARED(float, Bs, BK * BN);
    A += blockIdx.z * stride_a;
    B += blockIdx.z * stride_b;
    C += blockIdx.z * (int64_t)M * N;
    const int block_row = blockIdx.y * BM, block_col = blockIdx.x * BN;
    const int thread_row = threadIdx.x / (BN / TN), thread_col = threadIdx.x % (BN / TN);
    // Each tile is 256 float4s: exactly one per thread.
    const int a_row = threadIdx.x / (BK / 4), a_col = threadIdx.x % (BK / 4) * 4;
    const int b_row = threadIdx.x / (BN / 4), b_col = threadIdx.x % (BN / 4) * 4;
    float acc[TM * TN] = {}, reg_m[TM], reg_n[TN];
    for (int t = 0; t < K; t += BK) {
        const float4 a = four_or_zero(A, block_row + a_row, t + a_col, M, K, vec);
        As[(a_col + 0) * BM + a_row] = a.x;  // transpose while storing
        As[(a_col + 1) * BM + a_row] = a.y;
        As[(a_col + 2) * BM + a_row] = a.z;
        As[(a_col + 3) * BM + a_row] = a.w;
        store4(Bs, b_row * BN + b_col, four_or_zero(B, t + b_row, block_col + b_col, K, N, vec));
        __syncthreads();
        for (int k = 0; k < BK; ++k) {
            for (int i = 0; i < TM; i += 4) {  // 8 contiguous floats of As and of Bs: two float4 each
                const float4 m4 = load4(As, k * BM + thread_row * TM + i), n4 = load4(Bs, k * BN + thread_col * TN + i);
                reg_m[i] = m4.x, reg_m[i + 1] = m4.y, reg_m[i + 2] = m4.z, reg_m[i + 3] = m4.w;
                reg_n[i] = n4.x, reg_n[i + 1] = n4.y, reg_n[i + 2] = n4.z, reg_n[i + 3] = n4.w;
            }
            for (int i = 0; i < TM; ++i)
                for (int j = 0; j < TN; ++j) acc[i * TN + j] += reg_m[i] * reg_n[j];
        }
        __syncthreads();
    }
    for (int i = 0; i < TM; ++i) {
        const int row = block_row + thread_row * TM + i;
        for (int j = 0; j < TN; j += 4) {
            const int col = block_col + thread_col * TN + j;
            const float *r = &acc[i * TN + j];
            if (vec && row < M && col + 3 < N) {
                store4(C, row * N + col, make_float4(r[0], r[1], r[2], r[3]));
            } else {
                for (int q = 0; q < 4; ++q)
                    if (row < M && col + q < N) C[row * N + col + q] = r[q];
            }
        }
    }
}

/* ---- host side ---------------------------------------------------------------------- */
static const char *STAGE_NAMES[MDC_GEMM_STAGES] = {"naive",          "coalesced",      "shared_tiles",
                                                   "blocktile_1d",   "blocktile_2d",   "vectorized"};

static unsigned ceil_div(int64_t a, int64_t b) { return (unsigned)((a + b - 1) / b); }

extern "C" {

const char *mdc_gemm_stage_name(int stage) {
    return stage >= 0 && stage < MDC_GEMM_STAGES ? STAGE_NAMES[stage] : "unknown";
}

int mdc_sgemm(int stage, int64_t batch, int64_t m, int64_t n, int64_t k, const float *a, int64_t a_batch_stride,
              const float *b, int64_t b_batch_stride, float *c) {
    const int64_t LIMIT = (int64_t)1 << 31;
    if (stage < 0 || stage >= MDC_GEMM_STAGES || batch < 0 || m < 0 || n < 0 || k < 0 || m * k >= LIMIT ||
        k * n >= LIMIT || m * n >= LIMIT || batch > 65535)
        return MDC_EBAD_ARG;
    if (batch * m * n == 0) return 0;
    const int M = (int)m, N = (int)n, K = (int)k;
    const unsigned z = (unsigned)batch;
    switch (stage) {
        case MDC_GEMM_NAIVE:
            MDC_LAUNCH(sgemm_naive, dim3(ceil_div(m, 32), ceil_div(n, 32), z), dim3(32, 32), M, N, K, a, b, c,
                       a_batch_stride, b_batch_stride);
            break;
        case MDC_GEMM_COALESCED:
            MDC_LAUNCH(sgemm_coalesced, dim3(ceil_div(n, 32), ceil_div(m, 32), z), dim3(32, 32), M, N, K, a, b, c,
                       a_batch_stride, b_batch_stride);
            break;
        case MDC_GEMM_SHARED_TILES:
            MDC_LAUNCH(sgemm_shared_tiles, dim3(ceil_div(n, TILE), ceil_div(m, TILE), z), dim3(TILE, TILE), M, N, K,
                       a, b, c, a_batch_stride, b_batch_stride);
            break;
        case MDC_GEMM_BLOCKTILE_1D:
            MDC_LAUNCH(sgemm_blocktile_1d, dim3(ceil_div(n, 64), ceil_div(m, 64), z), 512, M, N, K, a, b, c,
                       a_batch_stride, b_batch_stride);
            break;
        case MDC_GEMM_BLOCKTILE_2D:
            MDC_LAUNCH(sgemm_blocktile_2d, dim3(ceil_div(n, 128), ceil_div(m, 128), z), 256, M, N, K, a, b, c,
                       a_batch_stride, b_batch_stride);
            break;
        case MDC_GEMM_VECTORIZED: {
            // float4 loads need every row of A, B and C to start on a 16-byte boundary.
            const bool vec = k % 4 == 0 && n % 4 == 0 && a_batch_stride % 4 == 0 && b_batch_stride % 4 == 0 &&
                             (uintptr_t)a % 16 == 0 && (uintptr_t)b % 16 == 0 && (uintptr_t)c % 16 == 0;
            MDC_LAUNCH(sgemm_vectorized, dim3(ceil_div(n, 128), ceil_div(m, 128), z), 256, M, N, K, a, b, c,
                       a_batch_stride, b_batch_stride, (int)vec);
            break;
        }
    }
    return launch_status();
}

}  // extern "C"
