/*
 * cuda_emu.h -- CUDA's execution model on a CPU, so minidl's .cu files compile with g++.
 *
 * Read this file to learn what a GPU does when it runs a kernel; read cuda_emu.cpp to see
 * how we fake it.  The model, in the words a CUDA course uses:
 *
 *   - A launch runs a GRID of BLOCKS; every block has blockDim.x*y*z THREADS, each running
 *     the same kernel function with its own threadIdx (and its block's blockIdx).
 *   - The threads of one block share `__shared__` memory and can wait for each other at
 *     __syncthreads(): no thread passes that barrier until every thread of the block has
 *     reached it.  Threads of different blocks never wait for each other.
 *   - Threads come in WARPS of 32 (lanes); a warp can swap registers with __shfl_*_sync.
 *   - atomicAdd and friends make read-modify-write on memory indivisible.
 *
 * How the emulator does it: every CUDA thread of a block is a FIBER (a small stack of its
 * own plus saved registers).  A scheduler runs the block's fibers one at a time; a fiber
 * runs until it must wait (at __syncthreads, or a shuffle, which waits for its warp) or
 * finishes, then the next one runs.  So a barrier is a real barrier: a thread that reads
 * what another wrote before the barrier sees the value only if the barrier is there.  Leave
 * a __syncthreads() out and you get wrong answers, exactly the bug you would get on a GPU
 * (and MINIDL_CUDA_CHECK=1 tells you which array and which threads; see cuda_emu_check.h).
 * Blocks run one after another (or on several OS threads: mdc_emu_set_threads).
 *
 * It is slow (a context switch per thread per barrier) and exact: float operations are the
 * CPU's, compiled without FMA contraction, so results match NumPy's rounding where the
 * order of operations is the same.  printf works inside kernels, and gdb can break in them.
 *
 * What the shared .cu sources see differently from nvcc (see ../mdc_cuda.cuh):
 *   MDC_LAUNCH(kernel, grid, block, args...)   instead of kernel<<<grid, block>>>(args...)
 *   MDC_SHARED(float, tile, 256);              instead of __shared__ float tile[256];
 *   dptr<float> x                              instead of float *x  (a checked pointer here)
 * Plain `__shared__ float s[256];` works too, only without the race checks.
 */
#ifndef MDC_CUDA_EMU_H
#define MDC_CUDA_EMU_H

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

/* ---- CUDA keywords: nothing to do on a CPU ---------------------------------------- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
/* One copy per OS thread: the fibers of a block (all on one OS thread) share it, and
 * blocks running at the same time on other OS threads have their own. */
#define __shared__ static thread_local

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

/* ---- the runtime API subset the .cu files use (implemented in cuda_emu.cpp) -------- */
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100,
    cudaErrorLaunchFailure = 719,
};
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
cudaError_t cudaMalloc(void **ptr, size_t bytes);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemset(void *dst, int value, size_t bytes);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
const char *cudaGetErrorString(cudaError_t error);

namespace mdc_emu {

/* ---- who is running: the launch, the block and the thread of the current fiber ----- */
struct Barrier {
    int expected = 0;         // threads that have not exited
    int arrived = 0;          // threads waiting now
    unsigned generation = 0;  // +1 each time the barrier opens
};
struct Launch {
    const char *kernel;  // its name, for messages
    dim3 grid, block;
    std::function<void()> body;  // calls the kernel with the launch's arguments
};
struct Warp {
    Barrier barrier;
    int size = 0;               // lanes in this warp (the last warp of a block may be short)
    uint64_t slots[32] = {};    // where lanes leave values for a shuffle
    bool exited[32] = {};
};
struct SharedShadow;  // race-check records of one __shared__ array (cuda_emu_check.h)
struct Block {
    dim3 idx;
    int nthreads = 0;
    Barrier barrier;  // __syncthreads()
    Warp *warps = nullptr;
    SharedShadow *shadows = nullptr;  // linked list, one per checked __shared__ array
};
struct Thread {
    dim3 idx;
    int linear = 0;  // x + y*bx + z*bx*by: also the order the scheduler runs threads in
    int lane = 0, warp = 0;
    void *sp = nullptr;  // saved stack pointer while switched out
    bool finished = false;
    const Barrier *waiting_on = nullptr;
    unsigned wait_generation = 0;
};
struct Current {
    const Launch *launch = nullptr;
    Block *block = nullptr;
    Thread *thread = nullptr;
};
extern thread_local Current current;

void run_grid(Launch &launch);     // runs every block of a launch (cuda_emu.cpp)
void wait_at(Barrier &barrier);    // block the calling fiber until the barrier opens
uint64_t warp_exchange(uint64_t value, int src_lane);  // one shuffle step, see below

}  // namespace mdc_emu

/* The built-in variables: macros asking the scheduler about the running fiber. */
#define threadIdx (mdc_emu::current.thread->idx)
#define blockIdx (mdc_emu::current.block->idx)
#define blockDim (mdc_emu::current.launch->block)
#define gridDim (mdc_emu::current.launch->grid)
#define warpSize 32

/* ---- barriers -------------------------------------------------------------------- */
inline void __syncthreads() { mdc_emu::wait_at(mdc_emu::current.block->barrier); }
inline void __syncwarp(unsigned = 0xffffffffu) {
    mdc_emu::Thread *t = mdc_emu::current.thread;
    mdc_emu::wait_at(mdc_emu::current.block->warps[t->warp].barrier);
}

/* ---- warp shuffles: every lane leaves its value, the warp waits, each lane picks one -- */
namespace mdc_emu {
template <class T>
T shuffle_from(T value, int src_lane) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle a value of at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    bits = warp_exchange(bits, src_lane);
    std::memcpy(&value, &bits, sizeof(T));
    return value;
}
inline int lane_id() { return current.thread->lane; }
}  // namespace mdc_emu

/* width splits the warp into segments (a power of two); lanes read only inside their segment.
 * A lane whose source falls outside its segment gets its own value back, as on a GPU. */
template <class T>
T __shfl_sync(unsigned, T v, int src, int width = 32) {
    int lane = mdc_emu::lane_id(), base = lane & ~(width - 1);
    return mdc_emu::shuffle_from(v, base + (src & (width - 1)));
}
template <class T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    int lane = mdc_emu::lane_id();
    int src = (lane & (width - 1)) + (int)delta < width ? lane + (int)delta : lane;
    return mdc_emu::shuffle_from(v, src);
}
template <class T>
T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
    int lane = mdc_emu::lane_id();
    int src = (lane & (width - 1)) >= (int)delta ? lane - (int)delta : lane;
    return mdc_emu::shuffle_from(v, src);
}
template <class T>
T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    int lane = mdc_emu::lane_id(), src = lane ^ mask;
    return mdc_emu::shuffle_from(v, (src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane);
}

/* ---- atomics: real ones, because blocks may run on several OS threads -------------- */
inline int atomicAdd(int *a, int v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicAdd(unsigned *a, unsigned v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicAdd(unsigned long long *a, unsigned long long v) {
    return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);
}
inline float atomicAdd(float *a, float v) {  // no float fetch-add on a CPU: compare-and-swap until it sticks
    uint32_t *bits = reinterpret_cast<uint32_t *>(a);
    uint32_t old = __atomic_load_n(bits, __ATOMIC_SEQ_CST), desired;
    float f;
    do {
        std::memcpy(&f, &old, 4);
        float sum = f + v;
        std::memcpy(&desired, &sum, 4);
    } while (!__atomic_compare_exchange_n(bits, &old, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    return f;
}
inline int atomicMin(int *a, int v) {
    int old = __atomic_load_n(a, __ATOMIC_SEQ_CST);
    while (v < old && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}
inline int atomicMax(int *a, int v) {
    int old = __atomic_load_n(a, __ATOMIC_SEQ_CST);
    while (v > old && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}
inline int atomicCAS(int *a, int compare, int v) {
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;
}
inline int atomicExch(int *a, int v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }

/* ---- device math that CUDA has and the C library lacks ---------------------------- */
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }

#include "cuda_emu_check.h"  // checked device pointers and __shared__ arrays

/* ---- launching: MDC_LAUNCH(kernel, grid, block, args...) lands here ---------------- */
namespace mdc_emu {

/* Names of a launch's arguments, from the macro's #__VA_ARGS__ ("x, y, out, n"). */
struct ArgNames {
    char text[512];
    const char *names[32];
    int count = 0;
    explicit ArgNames(const char *list);
    const char *operator[](int i) const { return i < count ? names[i] : "?"; }
};

template <class P, class A>
P to_param(A &&arg, const char *name) {
    if constexpr (is_device_ptr<P>::value)
        return P::from_launch(arg, name);  // a raw device pointer becomes a checked pointer
    else
        return static_cast<P>(arg);
}

template <class... P, class... A, size_t... I>
std::tuple<P...> make_params(const ArgNames &names, std::index_sequence<I...>, A &&...args) {
    return std::tuple<P...>(to_param<P>(std::forward<A>(args), names[(int)I])...);
}

template <class... P, class... A>
void launch(const char *kernel_name, const char *arg_list, void (*kernel)(P...), dim3 grid, dim3 block,
            A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A), "MDC_LAUNCH: wrong number of kernel arguments");
    ArgNames names(arg_list);
    std::tuple<P...> params = make_params<P...>(names, std::index_sequence_for<A...>{}, std::forward<A>(args)...);
    // Every CUDA thread calls the kernel with its own copy of the arguments, as on a GPU.
    Launch launch{kernel_name, grid, block, [&] { std::apply(kernel, params); }};
    run_grid(launch);
}

}  // namespace mdc_emu

#endif /* MDC_CUDA_EMU_H */
