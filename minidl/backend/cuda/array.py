"""DeviceArray: an n-d array in CUDA device memory (a pointer, a shape, strides and a dtype).

It is deliberately thin: memory, views and explicit copies, nothing else. Arithmetic lives in
`minidl.backend.cuda.kernels`, whose functions take and return DeviceArrays. `__array__` refuses:
moving data to the host is always an explicit `to_numpy()`, so a hidden copy across the bus can
never slip into a training step (np.asarray(device_array) is an error, not an object array).

Views (transpose, broadcast_to, basic slicing, reshape of contiguous data) share memory with
their base, like NumPy's; strides and offsets count elements, not bytes. The memory is freed
when the last view of it goes away.
"""

import math
import numbers

import numpy as np

from minidl.backend.cuda import runtime

# What device memory can hold. The kernels compute in float32 (indices int64, masks bool, 16-bit
# floats float16/uint16); the other dtypes are stored so that tensors of them can live on the device,
# and the "cuda" kernel set computes on them through the host (counted: kernel_set.host_round_trips).
DTYPES = tuple(
    np.dtype(t)
    for t in (np.float32, np.float16, np.float64, np.int64, np.int32, np.int16, np.int8, np.uint16, np.uint8, np.bool_)
)


class _Buffer:
    """One device allocation; freed when garbage collected."""

    __slots__ = ("ptr", "nbytes", "_lib")

    def __init__(self, nbytes):
        self.ptr = 0
        ffi, lib = runtime.ffi(), runtime.lib()
        out = ffi.new("void **")
        runtime.check(lib.mdc_malloc(out, int(nbytes)), f"cuda malloc of {nbytes} bytes")
        self.ptr = int(ffi.cast("uintptr_t", out[0]))
        self.nbytes = int(nbytes)
        self._lib = lib  # kept so __del__ still works while the interpreter shuts down

    def __del__(self):
        if self.ptr:
            self._lib.mdc_free(runtime.ffi().cast("void *", self.ptr))
            self.ptr = 0


def contiguous_strides(shape):
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _check_dtype(dtype, what):
    dtype = np.dtype(dtype)
    if dtype not in DTYPES:
        raise TypeError(
            f"{what}: dtype {dtype} is not supported on the cuda device (supported: "
            f"{', '.join(str(d) for d in DTYPES)}); convert with .astype(np.float32) first"
        )
    return dtype


class DeviceArray:
    """An array in device memory. Create with from_numpy / empty / zeros / full; read back with to_numpy()."""

    __slots__ = ("_buffer", "offset", "shape", "strides", "dtype")
    device = "cuda"

    def __init__(self, buffer, shape, dtype, strides=None, offset=0):
        self._buffer = buffer
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.strides = contiguous_strides(self.shape) if strides is None else tuple(int(s) for s in strides)
        self.offset = int(offset)

    # ---- creation -------------------------------------------------------------------
    @classmethod
    def empty(cls, shape, dtype=np.float32):
        shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"empty: negative dimension in shape {shape}")
        dtype = _check_dtype(dtype, "empty")
        return cls(_Buffer(math.prod(shape) * dtype.itemsize), shape, dtype)

    @classmethod
    def full(cls, shape, value, dtype=np.float32):
        out = cls.empty(shape, dtype)
        bits = int(np.array([value], dtype=out.dtype).view(f"u{out.dtype.itemsize}")[0])
        runtime.check(runtime.lib().mdc_fill(out.itemsize, out._ptr("void *"), out.size, bits), "full")
        return out

    @classmethod
    def zeros(cls, shape, dtype=np.float32):
        out = cls.empty(shape, dtype)
        runtime.check(runtime.lib().mdc_memset(out._ptr("void *"), 0, out.nbytes), "zeros")
        return out

    @classmethod
    def from_numpy(cls, array, dtype=None):
        """Copy a host array to the device (as `dtype` if given)."""
        host = np.asarray(array, dtype=dtype, order="C")  # not ascontiguousarray: it makes a 0-d array 1-d
        _check_dtype(host.dtype, "from_numpy")
        out = cls.empty(host.shape, host.dtype)
        if host.size:
            src = runtime.ffi().from_buffer("char[]", host.reshape(-1).view(np.uint8))
            runtime.check(runtime.lib().mdc_memcpy_htod(out._ptr("void *"), src, out.nbytes), "from_numpy")
        return out

    def to_numpy(self):
        """Copy to a new host array (waits for the kernels that write this array)."""
        src = self.contiguous()
        host = np.empty(self.shape, self.dtype)
        if host.size:
            dst = runtime.ffi().from_buffer("char[]", host.reshape(-1).view(np.uint8))
            runtime.check(runtime.lib().mdc_memcpy_dtoh(dst, src._ptr("void *"), src.nbytes), "to_numpy")
        return host

    # ---- properties -------------------------------------------------------------------
    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.itemsize

    @property
    def ptr(self):
        """Device address of element [0, 0, ...]."""
        return self._buffer.ptr + self.offset * self.itemsize

    def _ptr(self, ctype="float *"):
        return runtime.ffi().cast(ctype, self.ptr)

    def is_contiguous(self):
        return all(st == c for st, c, s in zip(self.strides, contiguous_strides(self.shape), self.shape) if s > 1)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            f"a DeviceArray {self.shape} {self.dtype} lives on the cuda device: copy it to the host explicitly "
            "(.to_numpy(), or tensor.cpu()) instead of handing it to NumPy"
        )

    def astype(self, dtype):
        """A copy converted to `dtype` (through the "cuda" kernel set: float32 <-> float16 on the device)."""
        from minidl.backend.cuda import kernel_set

        return kernel_set.astype(self, dtype)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d DeviceArray")
        return self.shape[0]

    def __repr__(self):
        build = runtime.build() if runtime.is_available() else "unavailable"
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, device='cuda' ({build}))"

    # ---- copies and views -----------------------------------------------------------------
    def contiguous(self):
        """self if it is C-contiguous, else a contiguous copy made on the device."""
        if self.is_contiguous():
            return self
        out = DeviceArray.empty(self.shape, self.dtype)
        copy_into(self, out)
        return out

    def copy(self):
        out = DeviceArray.empty(self.shape, self.dtype)
        copy_into(self, out)
        return out

    def view_as(self, dtype):
        """The same bytes as another dtype of the same size (float16 <-> uint16)."""
        dtype = _check_dtype(dtype, "view_as")
        if dtype.itemsize != self.itemsize:
            raise TypeError(f"view_as: {self.dtype} and {dtype} differ in size")
        return DeviceArray(self._buffer, self.shape, dtype, self.strides, self.offset)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else shape
        shape = list(shape)
        if shape.count(-1) > 1:
            raise ValueError("reshape: can only specify one unknown dimension")
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            shape[shape.index(-1)] = self.size // known if known else 0
        if math.prod(shape) != self.size:
            raise ValueError(f"reshape: cannot reshape array of size {self.size} into shape {tuple(shape)}")
        base = self.contiguous()
        return DeviceArray(base._buffer, shape, self.dtype, None, base.offset)

    def transpose(self, *axes):
        if not axes or axes == (None,):
            axes = tuple(reversed(range(self.ndim)))
        elif len(axes) == 1 and not isinstance(axes[0], numbers.Integral):
            axes = tuple(axes[0])
        axes = tuple(a % self.ndim for a in axes) if self.ndim else axes
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of {self.ndim} axes")
        return DeviceArray(
            self._buffer, [self.shape[a] for a in axes], self.dtype, [self.strides[a] for a in axes], self.offset
        )

    @property
    def T(self):  # noqa: N802 - NumPy's name
        return self.transpose()

    def broadcast_to(self, shape):
        shape = tuple(shape)
        if len(shape) < self.ndim:
            raise ValueError(f"broadcast_to: cannot broadcast {self.shape} to {shape}")
        lead = len(shape) - self.ndim
        strides = [0] * lead
        for size, have, stride in zip(shape[lead:], self.shape, self.strides):
            if have == size:
                strides.append(stride)
            elif have == 1:
                strides.append(0)
            else:
                raise ValueError(f"broadcast_to: cannot broadcast {self.shape} to {shape}")
        return DeviceArray(self._buffer, shape, self.dtype, strides, self.offset)

    def __getitem__(self, index):
        """Basic indexing (ints, slices, None, ...) as a view; integer arrays go through kernels.getitem."""
        if not isinstance(index, tuple):
            index = (index,)
        if any(not (i is None or i is Ellipsis or isinstance(i, (numbers.Integral, slice))) for i in index):
            raise TypeError("DeviceArray[...] takes ints, slices, None and ...; use kernels.getitem for index arrays")
        if index.count(Ellipsis) > 1:
            raise IndexError("an index can only have a single ellipsis")
        used = sum(1 for i in index if i is not None and i is not Ellipsis)
        if used > self.ndim:
            raise IndexError(f"too many indices: array is {self.ndim}-dimensional, but {used} were indexed")
        if Ellipsis in index:
            at = index.index(Ellipsis)
            index = index[:at] + (slice(None),) * (self.ndim - used) + index[at + 1 :]
        else:
            index = index + (slice(None),) * (self.ndim - used)
        shape, strides, offset, axis = [], [], self.offset, 0
        for item in index:
            if item is None:
                shape.append(1)
                strides.append(0)
                continue
            size, stride = self.shape[axis], self.strides[axis]
            if isinstance(item, slice):
                start, stop, step = item.indices(size)
                shape.append(len(range(start, stop, step)))
                strides.append(stride * step)
                offset += start * stride
            else:
                i = int(item)
                if not -size <= i < size:
                    raise IndexError(f"index {i} is out of bounds for axis {axis} with size {size}")
                offset += (i % size) * stride
            axis += 1
        return DeviceArray(self._buffer, shape, self.dtype, strides, offset)


def merge_axes(shape, *stride_sets):
    """Drop size-1 axes and merge neighbours that every operand walks contiguously.

    (4, 5) with strides (5, 1) becomes (20,) with (1,): a same-shape elementwise op is then
    one flat loop on the device, and the kernel unravels one index, not several.
    """
    axes = [(s, [st[i] for st in stride_sets]) for i, s in enumerate(shape) if s != 1]
    merged = []
    for size, strides in axes:
        if merged:
            prev_size, prev_strides = merged[-1]
            if all(p == st * size for p, st in zip(prev_strides, strides)):
                merged[-1] = (prev_size * size, strides)
                continue
        merged.append((size, strides))
    shape = tuple(s for s, _ in merged)
    return shape, [tuple(st[k] for _, st in merged) for k in range(len(stride_sets))]


def copy_into(src, dst):
    """dst[...] = src elementwise on the device (same shape and dtype, any strides)."""
    if src.shape != dst.shape or src.dtype != dst.dtype:
        raise ValueError(f"copy: {src.shape} {src.dtype} into {dst.shape} {dst.dtype}")
    if src.size == 0:
        return
    shape, (s_src, s_dst) = merge_axes(src.shape, src.strides, dst.strides)
    if len(shape) > 8:
        raise ValueError(f"copy: more than 8 non-mergeable axes ({src.shape})")
    ffi, lib = runtime.ffi(), runtime.lib()
    rc = lib.mdc_copy(
        src.itemsize,
        src._ptr("void *"),
        ffi.new("int64_t[]", list(s_src) or [0]),
        dst._ptr("void *"),
        ffi.new("int64_t[]", list(s_dst) or [0]),
        len(shape),
        ffi.new("int64_t[]", list(shape) or [0]),
    )
    runtime.check(rc, "copy")
