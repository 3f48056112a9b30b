"""The C SIMD kernel set: the NumPy contract, with the heavy primitives done in C.

Same names as `numpy_kernels` (everything is imported from there first), then the
primitives that pay are overridden. Each override calls the C kernel (csrc/, built by
cffi into `minidl.backend._ckernels`) when the arrays are float32 and the work is big
enough to beat the cost of the call, and the NumPy twin otherwise; so results never
depend on which path ran, only the speed does.

Calling convention: arrays go to C without copies, as pointers into their memory
(`ffi.from_buffer` for contiguous ones; the GEMM also takes strided views, so `W.T`
is free). cffi's out-of-line API mode wraps every C call in Py_BEGIN/END_ALLOW_THREADS
(see the generated _ckernels.c), so the GIL is released while a kernel runs and other
Python threads keep going.

Non-contiguous inputs: kernels that only read an array copy it to contiguous memory
first (np.ascontiguousarray; the GEMM reads any strides instead). Kernels that update an
array in place (the optimizer updates) reject a non-contiguous or non-float32 array with
an error naming the kernel: a copy would silently drop the update.

SIMD path: the best one the CPU supports (AVX-512 > AVX2 > scalar on x86-64, NEON on
aarch64) unless MINIDL_SIMD=scalar|avx2|avx512|neon forces one; `set_simd_path()` changes
it at run time (the tests run every kernel on every path this way).
"""

import math
import os

import numpy as np

from minidl.backend import memory, numpy_kernels
from minidl.backend.contract import KernelSet
from minidl.backend.numpy_kernels import *  # noqa: F403 - the contract's core, then overrides
from minidl.backend.numpy_kernels import conv_output_size

# The reference every override falls back to: NumPy's core plus the composed extras.
_ref = KernelSet("numpy", numpy_kernels)

name = "c"

try:
    from minidl.backend._ckernels import ffi, lib
except ImportError as exc:  # not built (no compiler at install time) or built for another Python
    ffi = lib = None
    available = False
    unavailable_reason = f"minidl.backend._ckernels is not built ({exc})"
else:
    available = True
    unavailable_reason = None

_PATHS = {"scalar": 0, "avx2": 1, "avx512": 2, "neon": 3}
_ACTS = {None: 0, "none": 0, "relu": 1, "sigmoid": 2, "tanh": 3}

# ---------------------------------------------------------------------------------------
# Crossovers: below these sizes the NumPy twin is faster (a C call costs ~3-6 us of
# Python + cffi overhead, and our GEMM packs both operands). Measured with
# `python benchmarks/bench_kernels.py --crossover` on the development machine (numbers
# in docs/kernels.md); re-measure on yours.
# ---------------------------------------------------------------------------------------
MIN_GEMM_FLOPS = 2 * 160**3  # 2*m*n*k: OpenBLAS wins below ~160^3 (its small-matrix path packs less)
# A linear layer's x @ W.T + b is cheaper for us than for NumPy, which runs the product
# and then a second pass for the bias: C wins from ~1 MFLOP (measured, numpy/C time:
# 128x512 -> 10 outputs 1.0, 64x128 -> 64 1.2, 16x512 -> 128 2.0; 64x32 -> 10 0.7).
MIN_LINEAR_FLOPS = 1_000_000
MIN_ELEMENTWISE = 32768  # add/mul/relu/...: same speed per element as NumPy; only the call overhead differs
MIN_FUSED = 256  # fused kernels (sigmoid, bias+act, relu backward, softmax, CE, optimizers): win from tiny sizes
MIN_CONV = 256  # im2col / col2im / pooling, in elements
# sum / max over axes: the C loop is faster per element, but the Python around the
# call costs ~10 us; measured crossover ~32k elements (1k: C 13 us vs NumPy 3 us;
# 64k: C 20 us vs NumPy 29 us).
MIN_REDUCE = 32768
# NumPy 2.x ships SIMD exp and tanh (SVML-derived, AVX-512) that beat ours standalone
# (measured 0.4-0.9x), so standalone exp/tanh stay on NumPy; ours pay inside the fused
# kernels (softmax, cross-entropy, sigmoid, bias+activation, the GEMM epilogue).
MIN_TRANSCENDENTAL = 1 << 62


# ---------------------------------------------------------------------------------------
# SIMD path control
# ---------------------------------------------------------------------------------------
def simd_paths_built():
    """SIMD paths compiled into the library (whether or not this CPU can run them)."""
    if not available:
        return []
    return [p for p, i in _PATHS.items() if lib.mdk_simd_built(i)]


def simd_paths_supported():
    """SIMD paths this CPU can run, slowest first."""
    if not available:
        return []
    return [p for p, i in _PATHS.items() if lib.mdk_simd_supported(i)]


def simd_missing_features(path):
    """The CPU features `path` needs that this CPU lacks, e.g. 'avx512f,avx512bw' ('' if none)."""
    return ffi.string(lib.mdk_simd_missing(_PATHS[path])).decode()


def simd_path():
    """The SIMD path the kernels run on now ('scalar', 'avx2', 'avx512' or 'neon'); None if not built."""
    if not available:
        return None
    return ffi.string(lib.mdk_simd_name(lib.mdk_simd_path())).decode()


def set_simd_path(path):
    """Force a SIMD path for every C kernel; raises if it is unknown, not built, or the CPU lacks it."""
    if not available:
        raise RuntimeError(f"set_simd_path: the C kernels are not available: {unavailable_reason}")
    if path not in _PATHS:
        raise ValueError(f"set_simd_path: unknown SIMD path {path!r}; expected one of {sorted(_PATHS)}")
    rc = lib.mdk_set_simd_path(_PATHS[path])
    if rc == lib.MDK_ENOT_BUILT:
        raise RuntimeError(
            f"SIMD path {path!r} is not compiled into minidl's C kernels on this architecture "
            f"(built: {', '.join(simd_paths_built())})"
        )
    if rc == lib.MDK_ENOT_SUPPORTED:
        raise RuntimeError(
            f"SIMD path {path!r} cannot run on this CPU: it lacks {simd_missing_features(path)} "
            f"(this CPU supports: {', '.join(simd_paths_supported())})"
        )
    if rc != 0:
        raise RuntimeError(f"set_simd_path({path!r}) failed with code {rc}")


def _apply_env_simd():
    wanted = os.environ.get("MINIDL_SIMD", "").strip().lower()
    if wanted in ("", "auto"):
        return
    try:
        set_simd_path(wanted)
    except (RuntimeError, ValueError) as exc:
        raise RuntimeError(f"MINIDL_SIMD={wanted}: {exc}. Unset MINIDL_SIMD or choose a supported path.") from None


if available:
    _apply_env_simd()


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
_F32 = np.dtype(np.float32)


def _is_f32(*arrays):
    return all(type(a) is np.ndarray and a.dtype == _F32 for a in arrays)


def _buf(a, ctype="float[]"):
    """A zero-copy pointer to a C-contiguous array's memory."""
    return ffi.from_buffer(ctype, a)


def _contig(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _strided_ptr(a):
    """Pointer to element [0, 0, ...] of a possibly strided view (used by the GEMM).

    Contiguous arrays and their transposes (the common cases: W and W.T) go through
    ffi.from_buffer, ~4x cheaper than a.ctypes.data, which serves everything else.
    """
    if a.flags.c_contiguous:
        return ffi.from_buffer("float[]", a)
    if a.flags.f_contiguous:
        return ffi.from_buffer("float[]", a.T)  # same first element, C-contiguous view
    return ffi.cast("float *", a.ctypes.data)


def _elem_strides(a):
    """Strides in elements, or None if some stride is not a whole number of floats."""
    strides = a.strides
    for s in strides:
        if s % 4:
            return None
    return tuple(s // 4 for s in strides)


def _require_inplace(kernel, arg, a):
    """In-place kernels write through the pointer: the array must be float32 and C-contiguous."""
    if type(a) is not np.ndarray or a.dtype != _F32 or not a.flags.c_contiguous or not a.flags.writeable:
        what = type(a).__name__ if type(a) is not np.ndarray else f"{a.dtype} array with strides {a.strides}"
        raise ValueError(
            f"{kernel}: {arg} is updated in place by the C kernel and must be a writeable, C-contiguous "
            f"float32 array (got a {what}); copying it would silently lose the update. "
            "Pass np.ascontiguousarray(...) and copy the result back, or use the NumPy kernels."
        )


# ---------------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------------
def _binary(op_code, np_fn):
    def kernel(x, y, *args, **kwargs):
        # Cheapest tests first: most calls on small arrays leave for NumPy after two of them.
        if (
            args or kwargs or type(x) is not np.ndarray or type(y) is not np.ndarray
            or x.size < MIN_ELEMENTWISE or x.shape != y.shape or x.dtype != _F32 or y.dtype != _F32
        ):  # fmt: skip
            return np_fn(x, y, *args, **kwargs)
        x, y = _contig(x), _contig(y)
        out = np.empty(x.shape, _F32)
        lib.mdk_binary(op_code, _buf(x), _buf(y), _buf(out), x.size)
        return out

    kernel.__name__ = np_fn.__name__
    kernel.__doc__ = f"np.{np_fn.__name__} on two same-shape float32 arrays in C; NumPy otherwise."
    return kernel


def _unary(op_code, np_fn, threshold_name):
    def kernel(x, *args, **kwargs):
        if args or kwargs or type(x) is not np.ndarray or x.size < globals()[threshold_name] or x.dtype != _F32:
            return np_fn(x, *args, **kwargs)
        x = _contig(x)
        out = np.empty(x.shape, _F32)
        lib.mdk_unary(op_code, _buf(x), _buf(out), x.size)
        return out

    kernel.__name__ = getattr(np_fn, "__name__", "unary")
    kernel.__doc__ = f"{kernel.__name__} of a float32 array in C; NumPy otherwise."
    return kernel


if available:
    add = _binary(lib.MDK_BIN_ADD, np.add)
    sub = _binary(lib.MDK_BIN_SUB, np.subtract)
    mul = _binary(lib.MDK_BIN_MUL, np.multiply)
    div = _binary(lib.MDK_BIN_DIV, np.true_divide)
    maximum = _binary(lib.MDK_BIN_MAX, np.maximum)
    minimum = _binary(lib.MDK_BIN_MIN, np.minimum)
    neg = _unary(lib.MDK_UN_NEG, np.negative, "MIN_ELEMENTWISE")
    abs = _unary(lib.MDK_UN_ABS, np.abs, "MIN_ELEMENTWISE")  # noqa: A001
    sqrt = _unary(lib.MDK_UN_SQRT, np.sqrt, "MIN_ELEMENTWISE")
    # exp and tanh never run in C by default (MIN_TRANSCENDENTAL is effectively infinite: NumPy's
    # own SIMD versions are faster standalone); the tests lower the threshold to check them.
    exp = _unary(lib.MDK_UN_EXP, np.exp, "MIN_TRANSCENDENTAL")
    relu = _unary(lib.MDK_UN_RELU, _ref.relu, "MIN_ELEMENTWISE")
    sigmoid = _unary(lib.MDK_UN_SIGMOID, _ref.sigmoid, "MIN_FUSED")
    tanh = _unary(lib.MDK_UN_TANH, np.tanh, "MIN_TRANSCENDENTAL")


def act_backward(grad, y, activation):
    """grad * act'(y) from the activation's output y, in one pass (relu: the mask y > 0)."""
    act = _ACTS.get(activation)
    if act is None or not available or not _is_f32(grad, y) or grad.shape != y.shape or grad.ndim < 1:
        return _ref.act_backward(grad, y, activation)
    if grad.size < MIN_FUSED or act == 0:
        return _ref.act_backward(grad, y, activation)
    grad, y = _contig(grad), _contig(y)
    out = np.empty(y.shape, _F32)
    if act == 1:  # relu: y > 0 exactly where x > 0
        lib.mdk_relu_backward(_buf(grad), _buf(y), _buf(out), y.size)
        return out
    dbias = np.empty(grad.shape[-1], _F32)  # computed by the fused kernel alongside, not needed here
    lib.mdk_bias_act_backward(
        _buf(grad), _buf(y), _buf(out), _buf(dbias), grad.size // grad.shape[-1], grad.shape[-1], act
    )
    return out


# ---------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------
def _axis_split(shape, axis):
    """(outer, n, inner, axes, kept_shape) if `axis` names one contiguous run of axes; else None.

    A C-contiguous array reduced over axes i..j is a 3-D array (outer, n, inner) reduced
    over its middle axis: inner == 1 is a row reduction, outer == 1 a column reduction.
    """
    ndim = len(shape)
    if ndim == 0:
        return None
    if axis is None:
        axes = tuple(range(ndim))
    else:
        raw = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        if not raw or any(not -ndim <= int(a) < ndim for a in raw):
            return None  # NumPy raises the right error
        axes = tuple(sorted({int(a) % ndim for a in raw}))
        if len(axes) != len(raw):
            return None
    first, last = axes[0], axes[-1]
    if axes != tuple(range(first, last + 1)):
        return None
    outer = math.prod(shape[:first])
    n = math.prod(shape[first : last + 1])
    inner = math.prod(shape[last + 1 :])
    kept_shape = tuple(1 if i in axes else d for i, d in enumerate(shape))
    return outer, n, inner, axes, kept_shape


def _reduce(c_fn, ref_fn, x, axis, keepdims):
    if not available or x.size < MIN_REDUCE or not _is_f32(x):
        return ref_fn(x, axis=axis, keepdims=keepdims)
    split = _axis_split(x.shape, axis)
    if split is None:
        return ref_fn(x, axis=axis, keepdims=keepdims)
    outer, n, inner, axes, kept_shape = split
    x = _contig(x)
    out = np.empty(outer * inner, _F32)
    c_fn(_buf(x), _buf(out), outer, n, inner)
    if keepdims:
        return out.reshape(kept_shape)
    result = out.reshape(tuple(d for i, d in enumerate(x.shape) if i not in axes))
    return result[()] if result.ndim == 0 else result  # a NumPy scalar, as np.sum returns


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return _reduce(lib.mdk_sum_axis if available else None, _ref.sum, x, axis, keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return _reduce(lib.mdk_max_axis if available else None, _ref.max, x, axis, keepdims)


def _last_axis(x, axis):
    return axis in (-1, x.ndim - 1) and x.ndim >= 1 and x.shape[-1] > 0


def _row_kernel(c_name, ref_fn):
    """A row-wise kernel (softmax, log-softmax) over the last axis in C; NumPy otherwise."""

    def kernel(x, axis=-1):
        if not available or not _is_f32(x) or x.size < MIN_FUSED or not _last_axis(x, axis):
            return ref_fn(x, axis=axis)
        x = _contig(x)
        out = np.empty(x.shape, _F32)
        getattr(lib, c_name)(_buf(x), _buf(out), x.size // x.shape[-1], x.shape[-1])
        return out

    kernel.__name__ = ref_fn.__name__
    kernel.__doc__ = f"{ref_fn.__name__} over the last axis of a float32 array in C; NumPy otherwise."
    return kernel


softmax = _row_kernel("mdk_softmax", _ref.softmax)
log_softmax = _row_kernel("mdk_log_softmax", _ref.log_softmax)


# ---------------------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------------------
def _gemm_ok(a, b):
    return (
        available
        and type(a) is np.ndarray
        and type(b) is np.ndarray
        and a.dtype == _F32
        and b.dtype == _F32
        and _elem_strides(a) is not None
        and _elem_strides(b) is not None
    )


def _sgemm(a, b, bias=None, act=0):
    """C = act(a @ b + bias) for 2-D float32 views a (m, k), b (k, n), any strides, no copies."""
    m, k = a.shape
    n = b.shape[1]
    out = np.empty((m, n), _F32)
    rsa, csa = _elem_strides(a)
    rsb, csb = _elem_strides(b)
    bias_ptr = ffi.NULL if bias is None else _buf(bias)
    rc = lib.mdk_sgemm(m, n, k, _strided_ptr(a), rsa, csa, _strided_ptr(b), rsb, csb, _buf(out), n, bias_ptr, act)
    if rc == lib.MDK_ENOMEM:
        raise MemoryError(f"matmul: could not allocate packing buffers for a {m}x{k} @ {k}x{n} product")
    return out


def matmul(a, b, *args, **kwargs):
    """np.matmul; float32 products of matrices (and stacks of them) big enough to pay run in C."""
    # Cheapest tests first: most small products leave for NumPy after one multiply.
    if args or kwargs or a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        return np.matmul(a, b, *args, **kwargs)  # vectors are memory-bound; errors get NumPy's message
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    if 2 * m * n * k < MIN_GEMM_FLOPS or not _gemm_ok(a, b):
        return np.matmul(a, b)
    if a.ndim == 2 and b.ndim == 2:
        return _sgemm(a, b)
    return _batched_matmul(a, b, m, n, k)


def _batch_offsets(x, batch_shape):
    """Element offsets of each matrix of x broadcast to batch_shape (broadcast axes repeat)."""
    xb = np.broadcast_to(x, batch_shape + x.shape[-2:])
    strides = _elem_strides(xb)[:-2]
    offsets = np.zeros(batch_shape, np.int64)
    for axis, (size, stride) in enumerate(zip(batch_shape, strides)):
        shape = [1] * len(batch_shape)
        shape[axis] = size
        offsets = offsets + np.arange(size, dtype=np.int64).reshape(shape) * stride
    return np.ascontiguousarray(offsets.reshape(-1)), _elem_strides(xb)[-2:]


def _batched_matmul(a, b, m, n, k):
    try:
        batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        return np.matmul(a, b)  # NumPy's error message
    batch = int(np.prod(batch_shape, dtype=np.int64))
    out = np.empty(batch_shape + (m, n), _F32)
    if out.size == 0:
        return np.matmul(a, b)
    a_off, (rsa, csa) = _batch_offsets(a, batch_shape)
    b_off, (rsb, csb) = _batch_offsets(b, batch_shape)
    rc = lib.mdk_sgemm_batched(
        batch,
        m,
        n,
        k,
        _strided_ptr(a),
        _buf(a_off, "int64_t[]"),
        rsa,
        csa,
        _strided_ptr(b),
        _buf(b_off, "int64_t[]"),
        rsb,
        csb,
        _buf(out),
        m * n,
        n,
    )
    if rc == lib.MDK_ENOMEM:
        raise MemoryError(f"matmul: could not allocate packing buffers for {batch} products {m}x{k} @ {k}x{n}")
    return out


def linear(x, weight, bias=None, activation=None):
    """act(x @ weight.T + bias) in one GEMM with the bias and activation fused into its epilogue."""
    act = _ACTS.get(activation)
    if (
        act is None
        or x.ndim != 2
        or weight.ndim != 2
        or x.shape[1] != weight.shape[1]
        or not _gemm_ok(x, weight)
        or (bias is not None and (not _is_f32(bias) or bias.shape != (weight.shape[0],)))
        or 2 * x.shape[0] * weight.shape[0] * x.shape[1] < MIN_LINEAR_FLOPS
    ):
        return _ref.linear(x, weight, bias, activation)
    if bias is not None:
        bias = _contig(bias)
    return _sgemm(x, weight.T, bias, act)


# ---------------------------------------------------------------------------------------
# Convolution and pooling
# ---------------------------------------------------------------------------------------
def _square(pair):
    """The one value of an (h, w) pair whose two are equal; None otherwise (the C kernels take one)."""
    return pair[0] if pair[0] == pair[1] else None


def _conv_geometry(shape, kernel, stride, padding, dilation=(1, 1)):
    """(kh, kw, stride, padding) if the C conv/pool kernels take an (N, C, H, W) image of `shape`
    with this window (square stride and padding, no dilation, big enough to pay); else None."""
    s, p = _square(stride), _square(padding)
    kh, kw = kernel
    if (
        not available
        or len(shape) != 4
        or s is None
        or p is None
        or tuple(dilation) != (1, 1)
        or math.prod(shape) < MIN_CONV
        or s < 1
        or p < 0
        or conv_output_size(shape[2], kh, s, p) <= 0
        or conv_output_size(shape[3], kw, s, p) <= 0
    ):
        return None
    return kh, kw, s, p


def _batched_transpose(x):
    """(batch, rows, cols) if x (4-D) reads a row-major (batch, rows, cols) array as its per-batch transpose.

    Two layouts are recognised: the NHWC -> NCHW view (N, C, H, W) of an (N, H*W, C) array,
    and the NCHW -> NHWC view (N, H, W, C) of an (N, C, H*W) array -- what conv2d's
    permute(...).contiguous() and its backward copy.
    """
    n, p, q, r = x.shape
    it = x.itemsize
    if x.strides == (p * q * r * it, it, r * p * it, p * it):  # (N, P, Q, R) of (N, Q*R, P)
        return n, q * r, p
    if x.strides == (p * q * r * it, q * it, it, p * q * it):  # (N, P, Q, R) of (N, R, P*Q)
        return n, r, p * q
    return None


def _transpose_split(x):
    """_batched_transpose(x) for a big enough float32 view the C copy can take; None otherwise."""
    if (
        not available
        or type(x) is not np.ndarray
        or x.ndim != 4
        or x.dtype != _F32
        or x.size < MIN_CONV
        or x.flags.c_contiguous
    ):
        return None
    return _batched_transpose(x)


def _transposed_copy(x, split):
    """A contiguous copy of x, given its _transpose_split."""
    out = np.empty(x.shape, _F32)
    lib.mdk_transpose_batched(_strided_ptr(x), _buf(out), *split)
    return out


def ascontiguousarray(x, *args, **kwargs):
    """np.ascontiguousarray; a transposed float32 activation (NHWC <-> NCHW) is copied in C, in blocks."""
    split = None if args or kwargs else _transpose_split(x)
    if split is not None:
        return _transposed_copy(x, split)
    return np.ascontiguousarray(x, *args, **kwargs)


def reshape(x, shape):
    """x.reshape(shape); when that needs a copy of a transposed activation, the copy is made in C.

    Only when NumPy itself would copy: a reshape NumPy can do as a view stays a view.
    """
    split = _transpose_split(x)
    if split is not None:
        try:
            return np.reshape(x, shape, copy=False)
        except ValueError:  # NumPy would copy
            return _transposed_copy(x, split).reshape(shape)
    return x.reshape(shape)


def im2col(x, kernel, stride, padding, dilation=(1, 1)):
    geometry = _conv_geometry(x.shape, kernel, stride, padding, dilation) if _is_f32(x) else None
    if geometry is None:
        return _ref.im2col(x, kernel, stride, padding, dilation)
    kh, kw, s, p = geometry
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kh, s, p), conv_output_size(w, kw, s, p)
    x = _contig(x)
    cols = np.empty((n * oh * ow, c * kh * kw), _F32)
    lib.mdk_im2col(_buf(x), _buf(cols), n, c, h, w, kh, kw, s, p)
    return cols


def col2im(cols, x_shape, kernel, stride, padding, dilation=(1, 1)):
    geometry = _conv_geometry(x_shape, kernel, stride, padding, dilation) if _is_f32(cols) else None
    if geometry is None:
        return _ref.col2im(cols, x_shape, kernel, stride, padding, dilation)
    kh, kw, s, p = geometry
    n, c, h, w = x_shape
    oh, ow = conv_output_size(h, kh, s, p), conv_output_size(w, kw, s, p)
    if cols.shape != (n * oh * ow, c * kh * kw):
        return _ref.col2im(cols, x_shape, kernel, stride, padding, dilation)
    cols = _contig(cols)
    x = np.empty((n, c, h, w), _F32)
    lib.mdk_col2im(_buf(cols), _buf(x), n, c, h, w, kh, kw, s, p)
    return x


def _pool_geometry(shape, kernel, stride, padding):
    """(k, stride, padding) for the C pooling kernels (square windows only); None otherwise."""
    k = _square(kernel)
    geometry = _conv_geometry(shape, kernel, stride, padding) if k is not None else None
    return None if geometry is None else (k, geometry[2], geometry[3])


def max_pool2d_forward(x, kernel, stride, padding):
    """Returns (output, argmax): argmax is the winning offset inside each window."""
    geometry = _pool_geometry(x.shape, kernel, stride, padding) if _is_f32(x) else None
    if geometry is None:
        return _ref.max_pool2d_forward(x, kernel, stride, padding)
    k, s, p = geometry
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, k, s, p), conv_output_size(w, k, s, p)
    x = _contig(x)
    out = np.empty((n, c, oh, ow), _F32)
    argmax = np.empty((n, c, oh, ow), np.int64)
    lib.mdk_max_pool2d_forward(_buf(x), _buf(out), _buf(argmax, "int64_t[]"), n, c, h, w, k, s, p)
    return out, argmax


def max_pool2d_backward(grad, argmax, x_shape, kernel, stride, padding):
    n, c, h, w = x_shape
    geometry = _pool_geometry(x_shape, kernel, stride, padding)
    if (
        geometry is None
        or not _is_f32(grad)
        or grad.size < MIN_CONV // 4
        or type(argmax) is not np.ndarray
        or argmax.shape != grad.shape
        or grad.shape[:2] != (n, c)
        or grad.shape[2:] != tuple(conv_output_size(d, geometry[0], geometry[1], geometry[2]) for d in (h, w))
    ):
        return _ref.max_pool2d_backward(grad, argmax, x_shape, kernel, stride, padding)
    k, s, p = geometry
    grad = _contig(grad)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    dx = np.empty((n, c, h, w), _F32)
    lib.mdk_max_pool2d_backward(_buf(grad), _buf(argmax, "int64_t[]"), _buf(dx), n, c, h, w, k, s, p)
    return dx


# ---------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------
def cross_entropy_forward(logits, targets):
    """Per-row loss -log softmax(logits)[target] and the softmax probabilities, in one pass per row."""
    if (
        not available
        or not _is_f32(logits)
        or logits.ndim != 2
        or logits.size < MIN_FUSED
        or logits.shape[1] == 0
        or np.shape(targets) != (logits.shape[0],)
    ):
        return _ref.cross_entropy_forward(logits, targets)
    logits = _contig(logits)
    t = np.ascontiguousarray(targets, dtype=np.int64)
    rows, cols = logits.shape
    losses = np.empty(rows, _F32)
    probs = np.empty((rows, cols), _F32)
    bad = lib.mdk_cross_entropy_forward(_buf(logits), _buf(t, "int64_t[]"), _buf(losses), _buf(probs), rows, cols)
    if bad:
        row = -bad - 1
        raise IndexError(f"cross_entropy_forward: target {t[row]} of row {row} is out of range for {cols} classes")
    return losses, probs


def cross_entropy_backward(probs, targets, grad_losses):
    """d loss_i / d logits_i = softmax_i - onehot(target_i), scaled by each row's upstream grad."""
    if (
        not available
        or not _is_f32(probs, grad_losses)
        or probs.ndim != 2
        or probs.size < MIN_FUSED
        or grad_losses.shape != (probs.shape[0],)
        or np.shape(targets) != (probs.shape[0],)
    ):
        return _ref.cross_entropy_backward(probs, targets, grad_losses)
    t = np.ascontiguousarray(targets, dtype=np.int64)
    probs, g = _contig(probs), _contig(grad_losses)
    d = np.empty(probs.shape, _F32)
    bad = lib.mdk_cross_entropy_backward(_buf(probs), _buf(t, "int64_t[]"), _buf(g), _buf(d), *probs.shape)
    if bad:
        row = -bad - 1
        raise IndexError(
            f"cross_entropy_backward: target {t[row]} of row {row} is out of range for {probs.shape[1]} classes"
        )
    return d


# ---------------------------------------------------------------------------------------
# Optimizer updates: in place. Scalars are rounded to float32 here exactly as NumPy does
# when a Python float meets a float32 array; the C code then performs NumPy's operations
# in NumPy's order, so results match the NumPy twins bit for bit.
# ---------------------------------------------------------------------------------------
def _f32(v):
    return float(np.float32(v))


def _update_in_c(kernel, param, grad, *state):
    """True if this update should run in C; raises for float32 arrays C cannot update in place."""
    arrays = (param, grad) + tuple(s for s in state if s is not None)
    if not available or not _is_f32(*arrays) or param.size < MIN_FUSED:
        return False
    if any(a.shape != param.shape for a in arrays):
        return False  # let NumPy broadcast (or raise its own error)
    _require_inplace(kernel, "param", param)
    for i, s in enumerate(state):
        if s is not None:
            _require_inplace(kernel, f"state array {i}", s)
    return True


def sgd_update(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
    """g' = mu*g + dL;  w' = w - lr*g'  (the lecture's momentum), in place. (Dampening: the NumPy twin.)"""
    if (momentum and dampening) or not _update_in_c("sgd_update", param, grad, velocity if momentum else None):
        return _ref.sgd_update(param, grad, velocity, lr, momentum, weight_decay, nesterov, dampening)
    grad = _contig(grad)
    v = _buf(velocity) if momentum else ffi.NULL
    lib.mdk_sgd_update(
        _buf(param), _buf(grad), v, param.size, _f32(lr), _f32(momentum), _f32(weight_decay), bool(nesterov)
    )


def adagrad_update(param, grad, sum_sq, lr, eps=1e-10, weight_decay=0.0):
    """n <- n + dL^2;  w <- w - lr/sqrt(n) * dL, in place."""
    if not _update_in_c("adagrad_update", param, grad, sum_sq):
        return _ref.adagrad_update(param, grad, sum_sq, lr, eps, weight_decay)
    grad = _contig(grad)
    lib.mdk_adagrad_update(_buf(param), _buf(grad), _buf(sum_sq), param.size, _f32(lr), _f32(eps), _f32(weight_decay))


def rmsprop_update(param, grad, mean_sq, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, mean=None):
    """n <- alpha*n + (1-alpha)*dL^2;  w <- w - lr/sqrt(n) * dL, in place. (Centered: the NumPy twin.)"""
    if mean is not None or not _update_in_c("rmsprop_update", param, grad, mean_sq):
        return _ref.rmsprop_update(param, grad, mean_sq, lr, alpha, eps, weight_decay, mean)
    grad = _contig(grad)
    lib.mdk_rmsprop_update(
        _buf(param),
        _buf(grad),
        _buf(mean_sq),
        param.size,
        _f32(lr),
        _f32(alpha),
        _f32(1 - alpha),
        _f32(eps),
        _f32(weight_decay),
    )


def adam_update(param, grad, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, max_v=None):
    """Adam with bias correction; `step` counts from 1. In place. (AMSGrad: the NumPy twin.)"""
    if max_v is not None or not _update_in_c("adam_update", param, grad, m, v):
        return _ref.adam_update(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, max_v)
    grad = _contig(grad)
    lib.mdk_adam_update(
        _buf(param),
        _buf(grad),
        _buf(m),
        _buf(v),
        param.size,
        _f32(lr),
        _f32(beta1),
        _f32(1 - beta1),
        _f32(beta2),
        _f32(1 - beta2),
        _f32(1 - beta1**step),
        _f32(1 - beta2**step),
        _f32(eps),
        _f32(weight_decay),
    )


# ---------------------------------------------------------------------------------------
# 16-bit conversion for communication
# ---------------------------------------------------------------------------------------
def _convert(c_fn, ref_fn, x, in_dtype, out_dtype, in_ctype, out_ctype):
    if not available or type(x) is not np.ndarray or x.dtype != in_dtype or x.size < MIN_FUSED:
        return ref_fn(x)
    x = _contig(x)
    out = np.empty(x.shape, out_dtype)
    c_fn(_buf(x, in_ctype), _buf(out, out_ctype), x.size)
    return out


def float32_to_float16(x):
    """IEEE half precision, round to nearest even (F16C / AVX-512 instructions when available)."""
    return _convert(lib and lib.mdk_f32_to_f16, _ref.float32_to_float16, x, _F32, np.float16, "float[]", "uint16_t[]")


def float16_to_float32(x):
    return _convert(
        lib and lib.mdk_f16_to_f32, _ref.float16_to_float32, x, np.dtype(np.float16), _F32, "uint16_t[]", "float[]"
    )


def float32_to_truncated16(x):
    """The lecture's 16-bit float: keep the top 16 bits of each float32 (no rounding)."""
    return _convert(
        lib and lib.mdk_f32_to_trunc16, _ref.float32_to_truncated16, x, _F32, np.uint16, "float[]", "uint16_t[]"
    )


def parameter_storage(shape, dtype):
    """64-byte-aligned memory for a new parameter: the GEMM reads an aligned weight matrix in place
    where it would otherwise copy it (dX = dY·W in a layer's backward; see csrc/gemm.c)."""
    return memory.aligned_empty(shape, dtype)


def truncated16_to_float32(x):
    return _convert(
        lib and lib.mdk_trunc16_to_f32,
        _ref.truncated16_to_float32,
        x,
        np.dtype(np.uint16),
        _F32,
        "uint16_t[]",
        "float[]",
    )
