/*
 * runtime.cu -- device memory, copies and synchronization behind minidl_cuda.h.
 *
 * Written against the CUDA runtime API; the emulator implements the few calls used here
 * (emu/cuda_emu.cpp), so the same file serves both builds.  On a GPU, memory comes from
 * the stream-ordered pool (cudaMallocAsync): freeing and reallocating activations every
 * training step then costs no device-wide synchronization, unlike cudaMalloc/cudaFree.
 */
#include <string.h>

#include "mdc_cuda.cuh"

#ifndef MDC_COMPILED_FOR
#define MDC_COMPILED_FOR "emulated"
#endif

extern "C" {

int mdc_build(void) {
#if defined(__CUDACC__)
    return MDC_BUILD_REAL;
#else
    return MDC_BUILD_EMULATED;
#endif
}

const char *mdc_compiled_for(void) { return MDC_COMPILED_FOR; }

const char *mdc_error_string(int code) {
    switch (code) {
        case MDC_ENOT_EMULATED: return "only the emulated CUDA build has this control";
        case MDC_EBAD_INDEX: return "an index or target is out of range";
        case MDC_EBAD_ARG: return "bad argument (unknown op, too many dimensions or sizes out of range)";
    }
    return cudaGetErrorString((cudaError_t)code);
}

int mdc_device_count(int *count) {
#if defined(__CUDACC__)
    *count = 0;
    return (int)cudaGetDeviceCount(count);
#else
    *count = 1;  // the CPU, pretending
    return 0;
#endif
}

int mdc_device_name(int device, char *buf, int len) {
#if defined(__CUDACC__)
    cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) return (int)e;
    snprintf(buf, (size_t)len, "%s", prop.name);
#else
    (void)device;
    snprintf(buf, (size_t)len, "emulated (CUDA execution model on the CPU)");
#endif
    return 0;
}

int mdc_device_capability(int device, int *major, int *minor) {
#if defined(__CUDACC__)
    cudaError_t e = cudaDeviceGetAttribute(major, cudaDevAttrComputeCapabilityMajor, device);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(minor, cudaDevAttrComputeCapabilityMinor, device);
    return (int)e;
#else
    (void)device;
    *major = *minor = 0;
    return 0;
#endif
}

int mdc_malloc(void **ptr, int64_t bytes) {
    if (bytes < 0) return MDC_EBAD_ARG;
#if defined(__CUDACC__)
    cudaError_t e = cudaMallocAsync(ptr, (size_t)(bytes ? bytes : 1), 0);
    return (int)e;
#else
    return (int)cudaMalloc(ptr, (size_t)(bytes ? bytes : 1));
#endif
}

int mdc_free(void *ptr) {
#if defined(__CUDACC__)
    return (int)cudaFreeAsync(ptr, 0);
#else
    return (int)cudaFree(ptr);
#endif
}

int mdc_memcpy_htod(void *dst, const void *src, int64_t bytes) {
    return bytes ? (int)cudaMemcpy(dst, src, (size_t)bytes, cudaMemcpyHostToDevice) : 0;
}
int mdc_memcpy_dtoh(void *dst, const void *src, int64_t bytes) {
    return bytes ? (int)cudaMemcpy(dst, src, (size_t)bytes, cudaMemcpyDeviceToHost) : 0;
}
int mdc_memcpy_dtod(void *dst, const void *src, int64_t bytes) {
    return bytes ? (int)cudaMemcpy(dst, src, (size_t)bytes, cudaMemcpyDeviceToDevice) : 0;
}
int mdc_memset(void *dst, int value, int64_t bytes) { return bytes ? (int)cudaMemset(dst, value, (size_t)bytes) : 0; }
int mdc_synchronize(void) { return (int)cudaDeviceSynchronize(); }

#if defined(__CUDACC__)  // the checker is the emulator's; on a GPU, run compute-sanitizer instead
int mdc_emu_set_check(int) { return MDC_ENOT_EMULATED; }
int mdc_emu_set_threads(int) { return MDC_ENOT_EMULATED; }
int mdc_emu_set_stack_kib(int) { return MDC_ENOT_EMULATED; }
long mdc_emu_take_reports(char *buf, long len) {
    if (len > 0) buf[0] = 0;
    return 0;
}
void mdc_emu_where(void) {}
#endif

}  // extern "C"
