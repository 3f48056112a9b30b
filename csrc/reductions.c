/*
 * reductions.c -- sum and max over one axis of a contiguous array
 * (x viewed as [outer][n][inner]).  Bodies in reductions_impl.h, compiled once
 * per SIMD path; the public functions dispatch on the active path.
 */
#include <math.h>

#include "mdk_internal.h"

#define MDK_IMPL "reductions_impl.h"
#include "mdk_per_isa.h"

void mdk_sum_axis(const float *x, float *out, int64_t outer, int64_t n, int64_t inner)
{
    MDK_DISPATCH(sum_axis, (x, out, outer, n, inner));
}

void mdk_max_axis(const float *x, float *out, int64_t outer, int64_t n, int64_t inner)
{
    MDK_DISPATCH(max_axis, (x, out, outer, n, inner));
}

void mdk_sum_keep_axis(const float *x, float *out, int64_t outer, int64_t n, int64_t inner)
{
    MDK_DISPATCH(sum_keep_axis, (x, out, outer, n, inner));
}
