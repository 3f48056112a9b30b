/*
 * cuda_emu.cpp -- how the emulator runs a grid: fibers, the block scheduler, barriers,
 * shuffles, device memory and the checker's reports.  The model is explained in
 * cuda_emu.h; this file is the machinery.
 *
 * Fibers.  A CUDA thread is a fiber: a stack of its own and a saved stack pointer.
 * switch_stacks(&save, load) pushes the callee-saved registers, stores the stack pointer
 * in *save, loads `load` and pops the other fiber's registers: a function call that
 * returns in another thread of execution.  On x86-64 that is a dozen instructions (below);
 * elsewhere we use POSIX ucontext, which does the same but also saves the signal mask with
 * a system call on every switch (about 0.6 us, ~50x slower).
 *
 * The scheduler (run_block) resumes the block's threads in order 0, 1, 2, ...  Each runs
 * until it finishes or waits at a barrier; a waiting thread is skipped until its barrier
 * opens.  The last thread to arrive at a barrier opens it and carries on, so every barrier
 * costs one switch per thread.  If a whole round passes with every live thread waiting, the
 * block can never finish (e.g. some threads wait at __syncthreads() in a branch the others
 * skipped, and those others wait at a different one): that is reported as a deadlock.
 */
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cuda_emu.h"

#if !defined(__x86_64__) || defined(MDC_EMU_UCONTEXT)
#include <ucontext.h>
#define MDC_EMU_USE_UCONTEXT 1
#endif

namespace mdc_emu {

thread_local Current current;
bool checking = false;
static int os_threads = 1;
static size_t stack_bytes = 64 * 1024;

/* ==================================================================================== */
/* Reports (checking mode, deadlocks)                                                    */
/* ==================================================================================== */
static std::mutex report_mutex;
static std::vector<std::string> reports;  // kept for mdc_emu_take_reports
static long report_total = 0;             // including the ones not kept
static bool launch_failed = false;        // a report or deadlock in the last launches
static const size_t MAX_REPORTS = 20;

static std::string where_now() {
    char buf[256];
    const Current &c = current;
    if (!c.thread) return "outside any kernel";
    snprintf(buf, sizeof buf, "in kernel `%s`, thread (%u,%u,%u) of block (%u,%u,%u)", c.launch->kernel,
             c.thread->idx.x, c.thread->idx.y, c.thread->idx.z, c.block->idx.x, c.block->idx.y, c.block->idx.z);
    return buf;
}

static void add_report(const std::string &message) {
    std::lock_guard<std::mutex> lock(report_mutex);
    launch_failed = true;
    ++report_total;
    if (reports.size() < MAX_REPORTS) reports.push_back(message);
}

void report(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    add_report(std::string(buf) + " " + where_now());
}

static const char *access_name(Access kind) {
    return kind == READ ? "read" : kind == WRITE ? "write" : "read-modify-write";
}

void report_global(Access kind, const char *name, const void *p, size_t bytes, const Allocation *a, size_t elem) {
    if (!a) {
        report("%s of %zu bytes through `%s`, a null pointer", access_name(kind), bytes, name);
        return;
    }
    long long offset = (long long)((const char *)p - a->base);
    report("out-of-bounds %s of %zu bytes in global array `%s`: element %lld, but it holds %zu elements of %zu bytes",
           access_name(kind), bytes, name, offset / (long long)elem, a->bytes / elem, elem);
}

void report_shared_bounds(const char *name, int64_t i, int64_t count, Access kind) {
    report("out-of-bounds %s of __shared__ array `%s`: element %lld of %lld", access_name(kind), name, (long long)i,
           (long long)count);
}

/* ==================================================================================== */
/* Shared-memory race check                                                              */
/* ==================================================================================== */
SharedShadow *shadow_for(const void *storage, const char *name, int64_t count) {
    Block *b = current.block;
    for (SharedShadow *s = b->shadows; s; s = s->next)
        if (s->storage == storage) return s;
    // First thread of this block to reach the declaration: fresh records, nothing written yet.
    SharedShadow *s = new SharedShadow{storage, name, count, new ShadowCell[count], b->shadows};
    b->shadows = s;
    return s;
}

static std::string thread_name(int linear) {
    const dim3 &bd = current.launch->block;
    char buf[64];
    snprintf(buf, sizeof buf, "(%u,%u,%u)", linear % bd.x, (linear / bd.x) % bd.y, linear / (bd.x * bd.y));
    return buf;
}

void shared_access(SharedShadow *s, int64_t i, Access kind) {
    ShadowCell &c = s->cells[i];
    int me = current.thread->linear;
    unsigned epoch = current.block->barrier.generation + 1;
    if (c.epoch != epoch) {  // first touch since the last __syncthreads(): the past is ordered
        c.epoch = epoch;
        c.writer = c.reader = c.other_reader = -1;
    }
    const char *problem = nullptr;
    int other = -1;
    if (kind == READ) {
        if (!c.written) {
            problem = "read here, but no thread of this block has written it (uninitialized)";
        } else if (c.writer >= 0 && c.writer != me) {
            problem = "read here, written by thread %s with no __syncthreads() between (read-after-write)";
            other = c.writer;
        }
        if (c.reader == -1)
            c.reader = me;
        else if (c.reader != me)
            c.other_reader = me;
    } else {
        if (c.writer >= 0 && c.writer != me) {
            problem = "written here and by thread %s with no __syncthreads() between (write-after-write)";
            other = c.writer;
        } else if ((c.reader >= 0 && c.reader != me) || c.other_reader >= 0) {
            problem = "written here after thread %s read it, with no __syncthreads() between (write-after-read)";
            other = c.reader != me ? c.reader : c.other_reader;
        }
        c.writer = me;
        c.written = true;
    }
    if (problem && !c.reported) {
        c.reported = true;
        char what[256];
        snprintf(what, sizeof what, problem, other >= 0 ? thread_name(other).c_str() : "");
        report("%s on __shared__ array `%s` element %lld: %s", other >= 0 ? "race" : "uninitialized read",
               s->name, (long long)i, what);
    }
}

/* ==================================================================================== */
/* Fibers                                                                                */
/* ==================================================================================== */
#ifndef MDC_EMU_USE_UCONTEXT
extern "C" void mdc_emu_switch_stacks(void **save_sp, void *load_sp);
// x86-64 System V: rbx, rbp, r12-r15, the SSE control word (MXCSR) and the x87 control word
// belong to the caller; everything else may be clobbered by a call anyway.
asm(R"(
    .text
    .globl mdc_emu_switch_stacks
    .type mdc_emu_switch_stacks, @function
mdc_emu_switch_stacks:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size mdc_emu_switch_stacks, .-mdc_emu_switch_stacks
)");
#endif

static void fiber_main();

/* One OS thread's scheduler: its own fiber stacks, reused block after block. */
struct Worker {
    char *stacks = nullptr;
    size_t nstacks = 0;
    std::vector<Thread> threads;
    void *scheduler_sp = nullptr;
#ifdef MDC_EMU_USE_UCONTEXT
    ucontext_t scheduler_uc;
    std::vector<ucontext_t> ucs;
#endif

    ~Worker() {
        if (stacks) munmap(stacks, nstacks * (stack_bytes + page()));
    }
    static size_t page() { return (size_t)sysconf(_SC_PAGESIZE); }

    void reserve(size_t n) {  // n stacks, each with an inaccessible guard page below it
        if (n <= nstacks) return;
        if (stacks) munmap(stacks, nstacks * (stack_bytes + page()));
        size_t one = stack_bytes + page();
        void *m = mmap(nullptr, n * one, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            fprintf(stderr, "cuda emulator: cannot map %zu fiber stacks\n", n);
            abort();
        }
        stacks = static_cast<char *>(m);
        nstacks = n;
        for (size_t i = 0; i < n; ++i) mprotect(stacks + i * one, page(), PROT_NONE);  // overflow -> SIGSEGV
#ifdef MDC_EMU_USE_UCONTEXT
        ucs.resize(n);
#endif
    }

    void start_fiber(size_t i) {  // make fiber i start in fiber_main when first switched to
        char *low = stacks + i * (stack_bytes + page()) + page();
#ifdef MDC_EMU_USE_UCONTEXT
        getcontext(&ucs[i]);
        ucs[i].uc_stack.ss_sp = low;
        ucs[i].uc_stack.ss_size = stack_bytes;
        ucs[i].uc_link = nullptr;
        makecontext(&ucs[i], fiber_main, 0);
#else
        // The frame mdc_emu_switch_stacks pops: control words, six registers, return address.
        // Stacks are a multiple of 4 KiB apart, so their tops would all fall into the same few
        // cache sets and evict each other at every switch; start each at a different offset.
        uintptr_t top = (reinterpret_cast<uintptr_t>(low) + stack_bytes - (i % 64) * 64) & ~uintptr_t(15);
        uint64_t *sp = reinterpret_cast<uint64_t *>(top);
        *--sp = 0;                                                  // fiber_main never returns
        *--sp = reinterpret_cast<uint64_t>(&fiber_main);            // where `ret` goes
        for (int r = 0; r < 6; ++r) *--sp = 0;                      // r15 .. rbp
        *--sp = 0x1F80ull | (0x037Full << 32);                      // default MXCSR, x87 control word
        threads[i].sp = sp;
#endif
    }

    void resume(Thread &t) {  // run t until it waits or finishes
#ifdef MDC_EMU_USE_UCONTEXT
        swapcontext(&scheduler_uc, &ucs[&t - threads.data()]);
#else
        mdc_emu_switch_stacks(&scheduler_sp, t.sp);
#endif
    }

    void yield() {  // called by the running fiber: back to the scheduler
        Thread &t = *current.thread;
#ifdef MDC_EMU_USE_UCONTEXT
        swapcontext(&ucs[&t - threads.data()], &scheduler_uc);
#else
        mdc_emu_switch_stacks(&t.sp, scheduler_sp);
#endif
    }

    bool run_block(const Launch &launch, dim3 block_idx);
};

static thread_local Worker *this_worker = nullptr;

static void fiber_main() {
    current.launch->body();  // the kernel, as this CUDA thread
    Thread &t = *current.thread;
    t.finished = true;
    // An exited thread no longer holds up __syncthreads() or its warp's shuffles.
    Block &b = *current.block;
    Barrier *bars[2] = {&b.barrier, &b.warps[t.warp].barrier};
    b.warps[t.warp].exited[t.lane] = true;
    for (Barrier *bar : bars) {
        --bar->expected;
        if (bar->arrived > 0 && bar->arrived >= bar->expected) {
            bar->arrived = 0;
            ++bar->generation;
        }
    }
    for (;;) this_worker->yield();  // the scheduler never resumes a finished thread
}

void wait_at(Barrier &bar) {
    Thread &t = *current.thread;
    unsigned generation = bar.generation;
    if (++bar.arrived >= bar.expected) {  // the last one in opens the barrier and goes on
        bar.arrived = 0;
        ++bar.generation;
        return;
    }
    t.waiting_on = &bar;
    t.wait_generation = generation;
    this_worker->yield();
    t.waiting_on = nullptr;
}

uint64_t warp_exchange(uint64_t value, int src_lane) {
    Thread &t = *current.thread;
    Warp &w = current.block->warps[t.warp];
    w.slots[t.lane] = value;
    wait_at(w.barrier);  // every lane has put its value out
    uint64_t got = value;
    if (src_lane >= 0 && src_lane < w.size && !w.exited[src_lane])
        got = w.slots[src_lane];
    else if (checking && src_lane >= 0 && src_lane < w.size)
        report("shuffle reads lane %d, which has exited (undefined on a GPU)", src_lane);
    wait_at(w.barrier);  // every lane has read before anyone overwrites its slot
    return got;
}

bool Worker::run_block(const Launch &launch, dim3 block_idx) {
    const dim3 &bd = launch.block;
    int n = (int)(bd.x * bd.y * bd.z), nwarps = (n + 31) / 32;
    reserve(n);
    threads.resize(std::max(threads.size(), (size_t)n));
    std::vector<Warp> warps(nwarps);
    Block block;
    block.idx = block_idx;
    block.nthreads = n;
    block.barrier.expected = n;
    block.warps = warps.data();
    for (int w = 0; w < nwarps; ++w) warps[w].size = warps[w].barrier.expected = std::min(32, n - 32 * w);
    for (int i = 0; i < n; ++i) {
        Thread &t = threads[i];
        t = Thread();
        t.idx = dim3(i % bd.x, (i / bd.x) % bd.y, i / (bd.x * bd.y));
        t.linear = i;
        t.lane = i % 32;
        t.warp = i / 32;
        start_fiber(i);
    }
    current.launch = &launch;
    current.block = &block;
    int live = n;
    bool ok = true;
    while (live > 0) {
        bool progressed = false;
        for (int i = 0; i < n; ++i) {
            Thread &t = threads[i];
            if (t.finished || (t.waiting_on && t.waiting_on->generation == t.wait_generation)) continue;
            current.thread = &t;
            resume(t);
            progressed = true;
            if (t.finished) --live;
        }
        if (!progressed) {
            current.thread = nullptr;
            char buf[256];
            snprintf(buf, sizeof buf,
                     "deadlock in kernel `%s`, block (%u,%u,%u): %d threads wait at a barrier that the other threads "
                     "of the block never reach",
                     launch.kernel, block_idx.x, block_idx.y, block_idx.z, live);
            add_report(buf);
            ok = false;
            break;  // the waiting fibers are abandoned; their stacks are reused by the next block
        }
    }
    current = Current();
    for (SharedShadow *s = block.shadows; s;) {
        SharedShadow *next = s->next;
        delete[] s->cells;
        delete s;
        s = next;
    }
    return ok;
}

/* ==================================================================================== */
/* Running a grid                                                                        */
/* ==================================================================================== */
static bool launch_config_ok(const Launch &l) {
    const dim3 &g = l.grid, &b = l.block;
    return g.x >= 1 && g.y >= 1 && g.z >= 1 && g.y <= 65535 && g.z <= 65535 && b.x >= 1 && b.y >= 1 && b.z >= 1 &&
           b.z <= 64 && (uint64_t)b.x * b.y * b.z <= 1024;
}

static cudaError_t last_error = cudaSuccess;

static void run_blocks(const Launch &launch, std::atomic<uint64_t> &next, uint64_t nblocks) {
    static thread_local Worker worker;  // its stacks are kept for the next launch on this thread
    this_worker = &worker;
    const dim3 &g = launch.grid;
    for (uint64_t k; (k = next.fetch_add(1)) < nblocks;) {
        dim3 idx((unsigned)(k % g.x), (unsigned)((k / g.x) % g.y), (unsigned)(k / ((uint64_t)g.x * g.y)));
        if (!worker.run_block(launch, idx)) break;
    }
    this_worker = nullptr;
}

void run_grid(Launch &launch) {
    if (!launch_config_ok(launch)) {  // what a GPU refuses: an empty grid, > 1024 threads per block, ...
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    const dim3 &g = launch.grid;
    uint64_t nblocks = (uint64_t)g.x * g.y * g.z;
    std::atomic<uint64_t> next(0);
    int workers = (int)std::min<uint64_t>(os_threads, nblocks);
    if (workers <= 1) {
        run_blocks(launch, next, nblocks);  // on the calling thread: what gdb users want
    } else {
        std::vector<std::thread> pool;
        for (int w = 0; w < workers; ++w) pool.emplace_back([&] { run_blocks(launch, next, nblocks); });
        for (std::thread &t : pool) t.join();
    }
    fflush(stdout);  // a kernel's printf output comes out before the host's next line
    if (launch_failed && last_error == cudaSuccess) last_error = cudaErrorLaunchFailure;
}

/* ==================================================================================== */
/* Device memory: host memory, 256-byte aligned like cudaMalloc, in a table for the checker */
/* ==================================================================================== */
static std::mutex memory_mutex;
static std::map<const char *, Allocation> allocations;  // by base address
const Allocation unknown_allocation{nullptr, 0};

const Allocation *find_allocation(const void *p) {
    std::lock_guard<std::mutex> lock(memory_mutex);
    const char *c = static_cast<const char *>(p);
    auto it = allocations.upper_bound(c);
    if (it == allocations.begin()) return nullptr;
    --it;
    // One past the end still belongs to the block (a pointer to a size-0 array, or `end`).
    return c <= it->second.base + it->second.bytes ? &it->second : nullptr;
}

}  // namespace mdc_emu

using namespace mdc_emu;

mdc_emu::ArgNames::ArgNames(const char *list) {
    snprintf(text, sizeof text, "%s", list);
    char *p = text;
    int depth = 0;
    names[count++] = p;
    for (; *p && count < 32; ++p) {  // split at top-level commas
        if (*p == '(' || *p == '[' || *p == '<') ++depth;
        if (*p == ')' || *p == ']' || *p == '>') --depth;
        if (*p == ',' && depth == 0) {
            *p = 0;
            names[count++] = p + 1;
        }
    }
    for (int i = 0; i < count; ++i)
        while (*names[i] == ' ') ++names[i];
}

cudaError_t cudaMalloc(void **ptr, size_t bytes) {
    void *p = nullptr;
    if (posix_memalign(&p, 256, bytes ? bytes : 1)) return cudaErrorMemoryAllocation;
    std::lock_guard<std::mutex> lock(memory_mutex);
    allocations[static_cast<const char *>(p)] = Allocation{static_cast<const char *>(p), bytes};
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
    if (!ptr) return cudaSuccess;
    std::lock_guard<std::mutex> lock(memory_mutex);
    if (!allocations.erase(static_cast<const char *>(ptr))) return cudaErrorInvalidValue;
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind) {
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *dst, int value, size_t bytes) {
    if (bytes) memset(dst, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }  // every launch has finished when it returns

cudaError_t cudaGetLastError() {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    launch_failed = false;
    return e;
}

const char *cudaGetErrorString(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorLaunchFailure: return "unspecified launch failure (see the emulator's reports)";
    }
    return "unknown error";
}

/* ---- controls for Python and gdb (declared in minidl_cuda.h) ---------------------- */
extern "C" {

int mdc_emu_set_check(int on) {
    checking = on != 0;
    return 0;
}

int mdc_emu_set_threads(int n) {
    if (n < 1) return cudaErrorInvalidValue;
    os_threads = n;
    return 0;
}

int mdc_emu_set_stack_kib(int kib) {
    if (kib < 16) return cudaErrorInvalidValue;
    stack_bytes = (size_t)kib * 1024;
    return 0;
}

/* Reports since the last call, one per line, into buf; returns how many there were. */
long mdc_emu_take_reports(char *buf, long len) {
    std::lock_guard<std::mutex> lock(report_mutex);
    std::string all;
    for (const std::string &r : reports) all += r + "\n";
    if (report_total > (long)reports.size())
        all += "... and " + std::to_string(report_total - (long)reports.size()) + " more\n";
    if (len > 0) snprintf(buf, (size_t)len, "%s", all.c_str());
    long n = report_total;
    reports.clear();
    report_total = 0;
    return n;
}

/* In gdb, inside a kernel: `call mdc_emu_where()` says which thread you are looking at. */
void mdc_emu_where(void) { printf("%s\n", where_now().c_str()); fflush(stdout); }

}  // extern "C"
