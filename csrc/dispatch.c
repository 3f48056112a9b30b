/*
 * dispatch.c -- which SIMD path runs the kernels.
 *
 * At load time we ask the CPU what it supports (__builtin_cpu_supports, which
 * also checks that the OS saves the wide registers) and pick the best path
 * that was compiled in.  mdk_set_simd_path() lets Python force another one
 * (MINIDL_SIMD=scalar|avx2|avx512, and the tests, which run every kernel on
 * every path the machine can run).  Nothing here is compiled with
 * -march=native: the same binary runs on any x86-64 (or aarch64) CPU.
 */
#include "mdk_internal.h"

int mdk_active_path = MDK_SIMD_SCALAR;

static const char *const path_names[MDK_SIMD_COUNT] = {"scalar", "avx2", "avx512", "neon"};

int mdk_simd_built(int path)
{
    switch (path) {
    case MDK_SIMD_SCALAR: return 1;
    case MDK_SIMD_AVX2:
    case MDK_SIMD_AVX512: return MDK_HAVE_X86;
    case MDK_SIMD_NEON: return MDK_HAVE_NEON;
    default: return 0;
    }
}

/* Names of the CPU features `path` needs and this CPU lacks ("" if none). */
const char *mdk_simd_missing(int path)
{
#if MDK_HAVE_X86
    static __thread char buf[128]; /* per thread: kernels run with the GIL released */
    const char *need_avx2[] = {"avx2", "fma", "f16c", NULL};
    const char *need_avx512[] = {"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx2", "fma", "f16c", NULL};
    const char **need = path == MDK_SIMD_AVX2 ? need_avx2 : path == MDK_SIMD_AVX512 ? need_avx512 : NULL;
    buf[0] = '\0';
    if (need == NULL)
        return buf;
    __builtin_cpu_init();
    for (int i = 0; need[i] != NULL; ++i) {
        /* __builtin_cpu_supports needs a string literal, hence the chain. */
        const char *f = need[i];
        int ok = strcmp(f, "avx2") == 0       ? __builtin_cpu_supports("avx2")
                 : strcmp(f, "fma") == 0      ? __builtin_cpu_supports("fma")
                 : strcmp(f, "f16c") == 0     ? __builtin_cpu_supports("f16c")
                 : strcmp(f, "avx512f") == 0  ? __builtin_cpu_supports("avx512f")
                 : strcmp(f, "avx512dq") == 0 ? __builtin_cpu_supports("avx512dq")
                 : strcmp(f, "avx512bw") == 0 ? __builtin_cpu_supports("avx512bw")
                                              : __builtin_cpu_supports("avx512vl");
        if (!ok) {
            if (buf[0] != '\0')
                strncat(buf, ",", sizeof buf - strlen(buf) - 1);
            strncat(buf, f, sizeof buf - strlen(buf) - 1);
        }
    }
    return buf;
#else
    (void)path;
    return "";
#endif
}

int mdk_simd_supported(int path)
{
    if (!mdk_simd_built(path))
        return 0;
    return mdk_simd_missing(path)[0] == '\0';
}

const char *mdk_simd_name(int path)
{
    return (path >= 0 && path < MDK_SIMD_COUNT) ? path_names[path] : "unknown";
}

int mdk_simd_path(void) { return mdk_active_path; }

int mdk_set_simd_path(int path)
{
    if (path < 0 || path >= MDK_SIMD_COUNT)
        return MDK_EUNKNOWN_PATH;
    if (!mdk_simd_built(path))
        return MDK_ENOT_BUILT;
    if (!mdk_simd_supported(path))
        return MDK_ENOT_SUPPORTED;
    mdk_active_path = path;
    return MDK_OK;
}

/* Pick the best path when the library is loaded (a GCC/Clang constructor, so
 * C callers that never touch Python get it too). */
__attribute__((constructor)) static void mdk_pick_default_path(void)
{
    static const int preference[] = {MDK_SIMD_AVX512, MDK_SIMD_AVX2, MDK_SIMD_NEON};
    for (size_t i = 0; i < sizeof preference / sizeof preference[0]; ++i) {
        if (mdk_simd_supported(preference[i])) {
            mdk_active_path = preference[i];
            return;
        }
    }
    mdk_active_path = MDK_SIMD_SCALAR;
}
