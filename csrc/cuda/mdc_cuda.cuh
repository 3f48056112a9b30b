/*
 * mdc_cuda.cuh -- included first by every .cu file: the few words that differ between the
 * real build (nvcc) and the emulated one (g++ with emu/cuda_emu.h), and helpers every
 * kernel file uses.
 *
 *   dptr<T>                         a pointer to device memory: `T *__restrict__` under nvcc,
 *                                   a bounds-checked pointer under the emulator
 *   MDC_SHARED(type, name, count)   `__shared__ type name[count]`, race-checked when emulated
 *   MDC_LAUNCH(kernel, grid, block, args...)   `kernel<<<grid, block>>>(args...)`
 *   load4(p, i) / store4(p, i, v)   one 16-byte float4 access at p + i (i a multiple of 4)
 */
#ifndef MDC_CUDA_CUH
#define MDC_CUDA_CUH

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "minidl_cuda.h"

#if defined(__CUDACC__)
#include <cuda_runtime.h>

template <class T>
using dptr = T *__restrict__;
#define MDC_SHARED(type, name, count) __shared__ __align__(16) type name[count]
#define MDC_LAUNCH(kernel, grid, block, ...) kernel<<<(grid), (block)>>>(__VA_ARGS__)

__device__ __forceinline__ float4 load4(const float *p, int64_t i) { return *reinterpret_cast<const float4 *>(p + i); }
__device__ __forceinline__ void store4(float *p, int64_t i, float4 v) { *reinterpret_cast<float4 *>(p + i) = v; }

#else /* the emulator */
#include "emu/cuda_emu.h"

template <class T>
using dptr = ::mdc_emu::device_ptr<T>;
#define MDC_SHARED(type, name, count)                \
    alignas(16) static thread_local type name##_storage[count]; \
    ::mdc_emu::shared_array<type> name(name##_storage, count, #name)
#define MDC_LAUNCH(kernel, grid, block, ...) \
    ::mdc_emu::launch(#kernel, #__VA_ARGS__, kernel, (grid), (block), __VA_ARGS__)
#endif

/* Blocks for a grid-stride loop over n items: enough to fill a GPU, capped because every
 * thread loops anyway (and each emulated thread costs a fiber). */
static inline unsigned grid_for(int64_t n, int threads, int64_t max_blocks = 4096) {
    int64_t blocks = (n + threads - 1) / threads;
    return (unsigned)(blocks < 1 ? 1 : blocks > max_blocks ? max_blocks : blocks);
}

/* What the last launch said: a bad launch configuration now, a fault in the kernel on the
 * emulator (the GPU reports those later, at the next synchronize or copy). */
static inline int launch_status() { return (int)cudaGetLastError(); }

/* The index of this thread in a 1-D grid, and the grid's width, for grid-stride loops. */
__device__ __forceinline__ int64_t global_thread() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_threads() { return (int64_t)gridDim.x * blockDim.x; }

#endif /* MDC_CUDA_CUH */
