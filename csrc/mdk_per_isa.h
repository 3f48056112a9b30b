/* mdk_per_isa.h - compile one kernel body once per instruction set.
 *
 * A *_impl.h file holds loop bodies written once in plain C.  Define MDK_IMPL
 * as its name and include this header: the body is compiled for the scalar
 * baseline and, where the compiler can target them, for AVX2+FMA and AVX-512
 * (x86-64) or NEON (aarch64).  Each copy gets the ISA's target attribute
 * (MDK_TARGET) and a name suffix (MDK_ISA), and the compiler vectorizes it
 * for that ISA; dispatch.c picks the copy to run when the library loads.
 *
 *     #define MDK_IMPL "elementwise_impl.h"
 *     #include "mdk_per_isa.h"
 */
#ifndef MDK_IMPL
#error "define MDK_IMPL as the *_impl.h body to compile before including mdk_per_isa.h"
#endif

#define MDK_ISA scalar
#define MDK_TARGET
#define MDK_ISA_HAS_FMA 0
#include MDK_IMPL
#undef MDK_ISA
#undef MDK_TARGET
#undef MDK_ISA_HAS_FMA

#if MDK_HAVE_X86
#define MDK_ISA avx2
#define MDK_TARGET MDK_TARGET_AVX2
#define MDK_ISA_HAS_FMA 1
#include MDK_IMPL
#undef MDK_ISA
#undef MDK_TARGET
#undef MDK_ISA_HAS_FMA

#define MDK_ISA avx512
#define MDK_TARGET MDK_TARGET_AVX512
#define MDK_ISA_HAS_FMA 1
#include MDK_IMPL
#undef MDK_ISA
#undef MDK_TARGET
#undef MDK_ISA_HAS_FMA
#endif

#if MDK_HAVE_NEON
#define MDK_ISA neon
#define MDK_TARGET
#define MDK_ISA_HAS_FMA 1
#include MDK_IMPL
#undef MDK_ISA
#undef MDK_TARGET
#undef MDK_ISA_HAS_FMA
#endif

#undef MDK_IMPL
