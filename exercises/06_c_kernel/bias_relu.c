/*
 * bias_relu.c -- out[i, j] = max(x[i, j] + bias[j], 0) for a row-major (rows, cols) x.
 *
 * Two implementations of the same function, and a dispatcher that picks one:
 *   bias_relu_scalar  plain C, one float at a time: runs on any CPU, and is the tail loop's model;
 *   bias_relu_avx2    8 floats at a time with AVX2 intrinsics (x86-64 only), compiled for AVX2
 *                     with a target attribute, so this file needs no -mavx2 and the same build
 *                     runs on a CPU without AVX2 (the dispatcher never calls it there).
 * The layer this fuses is Linear followed by ReLU: the bias add and the activation read and
 * write the output once instead of twice.
 */
#include <stdint.h>

#include "bias_relu.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

void bias_relu_scalar(const float *x, const float *bias, float *out, int64_t rows, int64_t cols)
{
    // BEGIN SOLUTION scalar
    // STUB: (void)x; (void)bias; (void)out; (void)rows; (void)cols;
    for (int64_t i = 0; i < rows; ++i) {
        const float *xi = x + i * cols;
        float *oi = out + i * cols;
        for (int64_t j = 0; j < cols; ++j) {
            const float v = xi[j] + bias[j];
            oi[j] = v > 0.0f ? v : 0.0f;
        }
    }
    // END SOLUTION
}

#if HAVE_X86
__attribute__((target("avx2"))) static void bias_relu_avx2_impl(const float *x, const float *bias, float *out,
                                                                 int64_t rows, int64_t cols)
{
    // BEGIN SOLUTION avx2
    // STUB: (void)x; (void)bias; (void)out; (void)rows; (void)cols;
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t i = 0; i < rows; ++i) {
        const float *xi = x + i * cols;
        float *oi = out + i * cols;
        int64_t j = 0;
        for (; j + 8 <= cols; j += 8) {
            // unaligned loads: a row of a (rows, cols) array starts anywhere when cols % 8 != 0
            const __m256 v = _mm256_add_ps(_mm256_loadu_ps(xi + j), _mm256_loadu_ps(bias + j));
            _mm256_storeu_ps(oi + j, _mm256_max_ps(v, zero));
        }
        for (; j < cols; ++j) {  // the last cols % 8 columns, one at a time
            const float v = xi[j] + bias[j];
            oi[j] = v > 0.0f ? v : 0.0f;
        }
    }
    // END SOLUTION
}
#endif

int bias_relu_avx2(const float *x, const float *bias, float *out, int64_t rows, int64_t cols)
{
#if HAVE_X86
    if (!bias_relu_avx2_supported())
        return BIAS_RELU_ENOT_SUPPORTED;
    bias_relu_avx2_impl(x, bias, out, rows, cols);
    return 0;
#else
    (void)x; (void)bias; (void)out; (void)rows; (void)cols;
    return BIAS_RELU_ENOT_SUPPORTED;
#endif
}

int bias_relu_avx2_supported(void)
{
#if HAVE_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

/* The path bias_relu() takes: the best the CPU runs, unless bias_relu_set_path forced one. */
static int forced_path = BIAS_RELU_AUTO;

int bias_relu_set_path(int path)
{
    if (path != BIAS_RELU_AUTO && path != BIAS_RELU_SCALAR && path != BIAS_RELU_AVX2)
        return BIAS_RELU_EBAD_PATH;
    if (path == BIAS_RELU_AVX2 && !bias_relu_avx2_supported())
        return BIAS_RELU_ENOT_SUPPORTED;
    forced_path = path;
    return 0;
}

int bias_relu_path(void)
{
    if (forced_path != BIAS_RELU_AUTO)
        return forced_path;
    return bias_relu_avx2_supported() ? BIAS_RELU_AVX2 : BIAS_RELU_SCALAR;
}

int bias_relu(const float *x, const float *bias, float *out, int64_t rows, int64_t cols)
{
    if (bias_relu_path() == BIAS_RELU_AVX2)
        return bias_relu_avx2(x, bias, out, rows, cols);
    bias_relu_scalar(x, bias, out, rows, cols);
    return 0;
}
