/*
 * reductions.c -- sum and max over one axis of a contiguous array
 * (x viewed as [outer][n][inner]).  Bodies in reductions_impl.h, compiled once
 * per SIMD path; the public functions dispatch on the active path.
 */
#include <math.h>

#include "mdk_internal.h"

#define MDK_ISA scalar
#define MDK_TARGET
#include "reductions_impl.h"
#undef MDK_ISA
#undef MDK_TARGET

#if MDK_HAVE_X86
#define MDK_ISA avx2
#define MDK_TARGET MDK_TARGET_AVX2
#include "reductions_impl.h"
#undef MDK_ISA
#undef MDK_TARGET

#define MDK_ISA avx512
#define MDK_TARGET MDK_TARGET_AVX512
#include "reductions_impl.h"
#undef MDK_ISA
#undef MDK_TARGET
#endif

#if MDK_HAVE_NEON
#define MDK_ISA neon
#define MDK_TARGET
#include "reductions_impl.h"
#undef MDK_ISA
#undef MDK_TARGET
#endif

void mdk_sum_axis(const float *x, float *out, int64_t outer, int64_t n, int64_t inner)
{
    MDK_DISPATCH(sum_axis, (x, out, outer, n, inner));
}

void mdk_max_axis(const float *x, float *out, int64_t outer, int64_t n, int64_t inner)
{
    MDK_DISPATCH(max_axis, (x, out, outer, n, inner));
}
