/*
 * mdk_internal.h -- shared plumbing for the kernel sources (not installed).
 *
 * How one source file becomes several SIMD paths without -march=native:
 * a kernel body is written once in a "*_impl.h" file using MDK_FN(name) for
 * its function names and MDK_TARGET in front of each function.  The topic
 * file includes that body once per instruction set, each time with a
 * different suffix and a different GCC/Clang target attribute, e.g.
 *
 *     #define MDK_ISA avx2
 *     #define MDK_TARGET MDK_TARGET_AVX2
 *     #include "elementwise_impl.h"      -> relu_avx2(), compiled for AVX2
 *
 * The compiler vectorizes the plain-C loops for the ISA named in the
 * attribute, and MDK_DISPATCH() picks the copy for the path in use at run
 * time.  Hand-written intrinsics are used where the vectorizer cannot do the
 * job (the GEMM micro-kernels, 16-bit conversion).
 */
#ifndef MDK_INTERNAL_H
#define MDK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "minidl_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MDK_HAVE_X86 1
/* AVX2 path: Haswell and later (AVX2 + FMA3 + F16C always come together). */
#define MDK_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
/* AVX-512 path: Skylake-SP and later (F + DQ + BW + VL). */
#define MDK_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c")))
#else
#define MDK_HAVE_X86 0
#endif

#if defined(__aarch64__) && defined(__ARM_NEON)
#define MDK_HAVE_NEON 1 /* Advanced SIMD is part of the aarch64 baseline: no attribute needed */
#else
#define MDK_HAVE_NEON 0
#endif

#define MDK_CAT_(a, b) a##_##b
#define MDK_CAT(a, b) MDK_CAT_(a, b)
#define MDK_FN(name) MDK_CAT(name, MDK_ISA) /* relu -> relu_avx2 when MDK_ISA is avx2 */

/* The path in use (dispatch.c).  Written only by mdk_set_simd_path(). */
extern int mdk_active_path;

#if MDK_HAVE_X86
#define MDK_CASE_X86(fn, args)                                                                     \
    case MDK_SIMD_AVX512: fn##_avx512 args; break;                                                 \
    case MDK_SIMD_AVX2: fn##_avx2 args; break;
#define MDK_CASE_X86_RET(fn, args)                                                                 \
    case MDK_SIMD_AVX512: return fn##_avx512 args;                                                 \
    case MDK_SIMD_AVX2: return fn##_avx2 args;
#else
#define MDK_CASE_X86(fn, args)
#define MDK_CASE_X86_RET(fn, args)
#endif
#if MDK_HAVE_NEON
#define MDK_CASE_NEON(fn, args) case MDK_SIMD_NEON: fn##_neon args; break;
#define MDK_CASE_NEON_RET(fn, args) case MDK_SIMD_NEON: return fn##_neon args;
#else
#define MDK_CASE_NEON(fn, args)
#define MDK_CASE_NEON_RET(fn, args)
#endif

/* Call fn_<path>(args) for the active path. */
#define MDK_DISPATCH(fn, args)                                                                     \
    do {                                                                                           \
        switch (mdk_active_path) {                                                                 \
            MDK_CASE_X86(fn, args)                                                                 \
            MDK_CASE_NEON(fn, args)                                                                \
        default: fn##_scalar args; break;                                                          \
        }                                                                                          \
    } while (0)
#define MDK_DISPATCH_RET(fn, args)                                                                 \
    do {                                                                                           \
        switch (mdk_active_path) {                                                                 \
            MDK_CASE_X86_RET(fn, args)                                                             \
            MDK_CASE_NEON_RET(fn, args)                                                            \
        default: return fn##_scalar args;                                                          \
        }                                                                                          \
    } while (0)

/* In place on rows x cols of c (leading dimension ldc): add row_bias[i] to row
 * i (if row_bias is not NULL), then apply the activation (MDK_ACT_*).  The
 * GEMM's epilogue, run on each tile while it is in L1 (elementwise.c). */
void mdk_bias_rows_act(float *c, int64_t ldc, int64_t rows, int64_t cols, const float *row_bias, int act);

/* Float <-> bits without breaking strict aliasing (compiles to a register move). */
static inline uint32_t mdk_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float mdk_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

#define MDK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MDK_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* MDK_INTERNAL_H */
