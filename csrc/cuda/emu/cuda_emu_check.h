/*
 * cuda_emu_check.h -- the emulator's memory checker (MINIDL_CUDA_CHECK=1), a small
 * compute-sanitizer: out-of-bounds global and shared accesses, races on shared memory
 * between barriers, and reads of shared memory no thread of the block has written.
 *
 * Global memory.  A kernel's pointer arguments are `dptr<T>`: under nvcc just `T *`, here a
 * device_ptr<T> that also knows the allocation it points into (found by the launch, which
 * looks the raw pointer up in the emulator's table of cudaMalloc'ed blocks) and the
 * argument's name.  Each access checks [base, base + bytes) when checking is on.
 *
 * Shared memory.  MDC_SHARED(float, tile, 256) makes a shared_array: under nvcc a plain
 * `__shared__ float tile[256]`.  Here each element has a shadow record: in which barrier
 * interval ("epoch") it was last touched, which thread wrote it and which read it.  Two
 * accesses by different threads in the same epoch, at least one a write, are a race: no
 * __syncthreads() orders them, so on a GPU either may come first.
 *
 * Reads and writes are told apart by returning a small proxy from operator[] (a C++ way to
 * see whether `a[i]` is assigned to or read).  One consequence: write `float v = a[i];`,
 * not `auto v = a[i];` -- with auto, v would be the proxy, i.e. a reference into the array.
 *
 * A bad access is reported (kernel, array, element, thread and block) and then skipped: a
 * read gives 0, a write is dropped, so one bug does not crash the process.  With checking
 * off the accesses go straight to memory (and an out-of-bounds write corrupts it, as on a
 * GPU without the sanitizer).
 */
#ifndef MDC_CUDA_EMU_CHECK_H
#define MDC_CUDA_EMU_CHECK_H

namespace mdc_emu {

extern bool checking;  // MINIDL_CUDA_CHECK=1, or mdc_emu_set_check(1)

struct Allocation {
    const char *base;
    size_t bytes;
};
const Allocation *find_allocation(const void *p);  // the cudaMalloc'ed block holding p, or nullptr
extern const Allocation unknown_allocation;        // a pointer the emulator did not allocate

enum Access { READ, WRITE, READ_WRITE };
void report_global(Access kind, const char *name, const void *p, size_t bytes, const Allocation *a, size_t elem);
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  // adds kernel, thread, block

template <class T>
class device_ptr;
template <class T>
struct is_device_ptr : std::false_type {};
template <class T>
struct is_device_ptr<device_ptr<T>> : std::true_type {};

/* `out[i] = v` writes, `float v = out[i]` reads: the proxy sees which. */
template <class T>
class global_ref {
   public:
    explicit global_ref(T *p, const device_ptr<T> *ptr) : p_(p), ptr_(ptr) {}
    operator T() const { return ptr_->ok(p_, 1, READ) ? *p_ : T(); }
    global_ref &operator=(T v) {
        if (ptr_->ok(p_, 1, WRITE)) *p_ = v;
        return *this;
    }
    global_ref &operator=(const global_ref &o) { return *this = T(o); }
    global_ref &operator+=(T v) { return *this = T(*this) + v; }
    global_ref &operator-=(T v) { return *this = T(*this) - v; }
    global_ref &operator*=(T v) { return *this = T(*this) * v; }
    global_ref &operator/=(T v) { return *this = T(*this) / v; }
    device_ptr<T> operator&() const { return device_ptr<T>(p_, ptr_->alloc, ptr_->name); }  // for atomicAdd(&a[i], v)

   private:
    T *p_;
    const device_ptr<T> *ptr_;
};

template <class T>
class device_ptr {
   public:
    T *p = nullptr;
    const Allocation *alloc = nullptr;
    const char *name = "?";

    device_ptr() = default;
    device_ptr(T *p_, const Allocation *a, const char *n) : p(p_), alloc(a), name(n) {}
    template <class U, class = std::enable_if_t<std::is_convertible<U *, T *>::value>>
    device_ptr(const device_ptr<U> &o) : p(o.p), alloc(o.alloc), name(o.name) {}  // float* -> const float*

    static device_ptr from_launch(T *raw, const char *arg_name) {
        const Allocation *a = raw ? find_allocation(raw) : nullptr;
        if (raw && !a) {
            if (checking)
                report("argument `%s` (%p) is not device memory: a host pointer? (on a GPU: an illegal address)",
                       arg_name, (const void *)raw);
            a = &unknown_allocation;
        }
        return device_ptr(raw, a, arg_name);
    }

    /* true if [q, q + count) lies inside the allocation (always true with checking off) */
    bool ok(const T *q, size_t count, Access kind) const {
        if (!checking || alloc == &unknown_allocation) return true;
        const char *c = reinterpret_cast<const char *>(q);
        if (alloc && c >= alloc->base && c + count * sizeof(T) <= alloc->base + alloc->bytes) return true;
        report_global(kind, name, q, count * sizeof(T), alloc, sizeof(T));
        return false;
    }

    auto operator[](int64_t i) const {
        if constexpr (std::is_const<T>::value)
            return ok(p + i, 1, READ) ? p[i] : std::remove_const_t<T>();
        else
            return global_ref<T>(p + i, this);
    }
    T *get() const { return p; }
    explicit operator bool() const { return p != nullptr; }
    device_ptr operator+(int64_t i) const { return device_ptr(p + i, alloc, name); }
    device_ptr operator-(int64_t i) const { return device_ptr(p - i, alloc, name); }
    device_ptr &operator+=(int64_t i) {
        p += i;
        return *this;
    }
    device_ptr &operator-=(int64_t i) {
        p -= i;
        return *this;
    }
};

/* ---- shared memory ------------------------------------------------------------------ */
struct ShadowCell {
    unsigned epoch = 0;     // the block's barrier generation + 1 at the last access; 0: never
    int writer = -1;        // thread that wrote it in that epoch, -1 none
    int reader = -1;        // first thread that read it in that epoch, -1 none
    int other_reader = -1;  // a second, different reader in that epoch, -1 none
    bool written = false;   // written by some thread of this block at all
    bool reported = false;  // one report per element and block is enough
};
struct SharedShadow {
    const void *storage;
    const char *name;
    int64_t count;
    ShadowCell *cells;
    SharedShadow *next;
};
SharedShadow *shadow_for(const void *storage, const char *name, int64_t count);  // this block's records
void shared_access(SharedShadow *s, int64_t i, Access kind);  // checks one access (checking on, in range)
void report_shared_bounds(const char *name, int64_t i, int64_t count, Access kind);

template <class T>
class shared_array;

template <class T>
class shared_ref {
   public:
    shared_ref(shared_array<T> *a, int64_t i) : a_(a), i_(i) {}
    operator T() const { return a_->load(i_); }
    shared_ref &operator=(T v) {
        a_->store(i_, v);
        return *this;
    }
    shared_ref &operator=(const shared_ref &o) { return *this = T(o); }
    shared_ref &operator+=(T v) { return *this = T(*this) + v; }
    shared_ref &operator-=(T v) { return *this = T(*this) - v; }
    shared_ref &operator*=(T v) { return *this = T(*this) * v; }

   private:
    shared_array<T> *a_;
    int64_t i_;
};

template <class T>
class shared_array {
   public:
    shared_array(T *storage, int64_t count, const char *name)
        : data_(storage), count_(count), name_(name), shadow_(checking ? shadow_for(storage, name, count) : nullptr) {}
    shared_ref<T> operator[](int64_t i) { return shared_ref<T>(this, i); }
    T load(int64_t i) const {
        if (shadow_ && !checked(i, READ)) return T();
        return data_[i];
    }
    void store(int64_t i, T v) {
        if (shadow_ && !checked(i, WRITE)) return;
        data_[i] = v;
    }
    T *raw() { return data_; }
    bool checked(int64_t i, Access kind) const {
        if (i < 0 || i >= count_) {
            report_shared_bounds(name_, i, count_, kind);
            return false;
        }
        shared_access(shadow_, i, kind);
        return true;
    }

   private:
    T *data_;
    int64_t count_;
    const char *name_;
    SharedShadow *shadow_;
};

}  // namespace mdc_emu

/* ---- vector loads and atomics on checked pointers --------------------------------- */
inline float4 load4(mdc_emu::device_ptr<const float> p, int64_t i) {
    if (mdc_emu::checking && reinterpret_cast<uintptr_t>(p.p + i) % 16)
        mdc_emu::report("misaligned float4 load from `%s` (address %p is not a multiple of 16)", p.name,
                        (const void *)(p.p + i));
    if (!p.ok(p.p + i, 4, mdc_emu::READ)) return float4{0, 0, 0, 0};
    float4 v;
    std::memcpy(&v, p.p + i, sizeof v);
    return v;
}
inline void store4(mdc_emu::device_ptr<float> p, int64_t i, float4 v) {
    if (mdc_emu::checking && reinterpret_cast<uintptr_t>(p.p + i) % 16)
        mdc_emu::report("misaligned float4 store to `%s` (address %p is not a multiple of 16)", p.name,
                        (const void *)(p.p + i));
    if (p.ok(p.p + i, 4, mdc_emu::WRITE)) std::memcpy(p.p + i, &v, sizeof v);
}
inline float4 load4(mdc_emu::shared_array<float> &s, int64_t i) {
    return float4{s.load(i), s.load(i + 1), s.load(i + 2), s.load(i + 3)};
}
inline void store4(mdc_emu::shared_array<float> &s, int64_t i, float4 v) {
    s.store(i, v.x);
    s.store(i + 1, v.y);
    s.store(i + 2, v.z);
    s.store(i + 3, v.w);
}
template <class T, class V>
T atomicAdd(mdc_emu::device_ptr<T> p, V v) {
    if (!p.ok(p.p, 1, mdc_emu::READ_WRITE)) return T();
    return atomicAdd(p.p, static_cast<T>(v));
}
inline int atomicMin(mdc_emu::device_ptr<int> p, int v) {
    if (!p.ok(p.p, 1, mdc_emu::READ_WRITE)) return 0;
    return atomicMin(p.p, v);
}

#endif /* MDC_CUDA_EMU_CHECK_H */
