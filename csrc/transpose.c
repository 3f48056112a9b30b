/*
 * transpose.c -- matrix transposes: dst (cols x rows, leading dimension ldd)
 * = src (rows x cols, leading dimension lds) transposed.  For the GEMM's
 * swapped products (gemm_strategies.c) and for mdk_transpose_batched (the
 * NHWC <-> NCHW copies of convolution activations).
 *
 * Whole 16 x 16 (AVX-512) or 8 x 8 (AVX2) blocks go through the register
 * transposes of transpose_x86.h: 16 row loads, 16 row stores, each a whole
 * cache line; the edges go one float at a time.
 */
#include "gemm_internal.h"

#if MDK_HAVE_X86
#include <immintrin.h>

#include "transpose_x86.h"
#endif

static void transpose_scalar(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t rows, int64_t cols)
{
    for (int64_t i0 = 0; i0 < rows; i0 += 16) /* 16 x 16 blocks: both sides stay in a few cache lines */
        for (int64_t j0 = 0; j0 < cols; j0 += 16)
            for (int64_t j = j0; j < MDK_MIN(j0 + 16, cols); ++j)
                for (int64_t i = i0; i < MDK_MIN(i0 + 16, rows); ++i)
                    dst[j * ldd + i] = src[i * lds + j];
}

#if MDK_HAVE_X86
/* One transpose per path, V x V blocks in registers (V = 16 floats for AVX-512, 8 for AVX2). */
#define MDK_TRANSPOSE_SIMD(name, target, V, vec, load, store, transpose)                                        \
    target static void name(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t rows, int64_t cols) \
    {                                                                                                           \
        const int64_t rows_v = rows / V * V, cols_v = cols / V * V;                                             \
        for (int64_t i0 = 0; i0 < rows_v; i0 += V)                                                              \
            for (int64_t j0 = 0; j0 < cols_v; j0 += V) {                                                        \
                vec r[V];                                                                                       \
                for (int i = 0; i < V; ++i)                                                                     \
                    r[i] = load(src + (i0 + i) * lds + j0);                                                     \
                transpose(r); /* r[j] = column j0 + j of the block = row j0 + j of dst */                      \
                for (int j = 0; j < V; ++j)                                                                     \
                    store(dst + (j0 + j) * ldd + i0, r[j]);                                                     \
            }                                                                                                   \
        if (cols_v < cols) /* the last columns of every row */                                                  \
            transpose_scalar(src + cols_v, lds, dst + cols_v * ldd, ldd, rows, cols - cols_v);                  \
        if (rows_v < rows) /* the last rows, over the whole columns already done */                            \
            transpose_scalar(src + rows_v * lds, lds, dst + rows_v, ldd, rows - rows_v, cols_v);                \
    }
MDK_TRANSPOSE_SIMD(transpose_avx512, MDK_TARGET_AVX512, 16, __m512, _mm512_loadu_ps, _mm512_storeu_ps,
                   mdk_transpose16)
MDK_TRANSPOSE_SIMD(transpose_avx2, MDK_TARGET_AVX2, 8, __m256, _mm256_loadu_ps, _mm256_storeu_ps, mdk_transpose8)
#endif

void mdk_transpose(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t rows, int64_t cols)
{
#if MDK_HAVE_X86
    if (mdk_active_path == MDK_SIMD_AVX512) {
        transpose_avx512(src, lds, dst, ldd, rows, cols);
        return;
    }
    if (mdk_active_path == MDK_SIMD_AVX2) {
        transpose_avx2(src, lds, dst, ldd, rows, cols);
        return;
    }
#endif
    transpose_scalar(src, lds, dst, ldd, rows, cols);
}

void mdk_transpose_batched(const float *src, float *dst, int64_t batch, int64_t rows, int64_t cols)
{
    for (int64_t b = 0; b < batch; ++b)
        mdk_transpose(src + b * rows * cols, cols, dst + b * rows * cols, rows, rows, cols);
}
