"""One Python launcher per CUDA kernel, with the names and arguments of the NumPy reference kernels.

`kernels.add(x, y)` here is `numpy_kernels.add(x, y)` there, with DeviceArrays in and out, so a
kernel set for the "cuda" device can be assembled from these functions and checked against
the NumPy twins by the same contract test. Each launcher checks its arguments (an error names
the kernel and what was expected), turns shapes into the C ABI's sizes and strides, launches
through cffi (the real build or the emulator) and returns new DeviceArrays.

Computation is float32 (as minidl's default dtype); indices and targets are int64, masks
bool, 16-bit floats float16/uint16. Anything else is refused with a message saying so.
"""

import builtins
import math
import numbers

import numpy as np

from minidl.backend.cuda import runtime
from minidl.backend.cuda.array import DeviceArray, copy_into, merge_axes

name = "cuda"
F32 = np.dtype(np.float32)
I64 = np.dtype(np.int64)
MAX_DIMS = 8

GEMM_STAGES = ("naive", "coalesced", "shared_tiles", "blocktile_1d", "blocktile_2d", "vectorized")
DEFAULT_GEMM_STAGE = "vectorized"


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
def _lib():
    return runtime.lib()


def _int64s(values):
    return runtime.ffi().new("int64_t[]", [int(v) for v in values] or [0])


def _device(x, op, arg="x", dtype=F32):
    """x as a DeviceArray of `dtype`; Python numbers become 0-d device arrays, anything else is an error."""
    if isinstance(x, DeviceArray):
        if x.dtype != dtype:
            raise TypeError(f"{op}: {arg} has dtype {x.dtype}; the cuda kernel expects {dtype}")
        return x
    if isinstance(x, (numbers.Number, np.number)):
        return DeviceArray.from_numpy(np.array(x, dtype=dtype))
    raise TypeError(
        f"{op}: {arg} is a {type(x).__name__}, not a DeviceArray; move it to the device first "
        "(DeviceArray.from_numpy): the cuda kernels never copy from the host behind your back"
    )


def _contig(x, op, arg="x", dtype=F32):
    return _device(x, op, arg, dtype).contiguous()


def _broadcast(op, *arrays):
    try:
        return np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = " and ".join(str(a.shape) for a in arrays)
        raise ValueError(f"{op}: shapes {shapes} do not broadcast") from None


def _layout(op, shape, arrays, out=None):
    """Merged (shape, stride lists) for `arrays` broadcast to `shape` (and `out`, if strided)."""
    views = [a.broadcast_to(shape) for a in arrays]
    strides = [v.strides for v in views] + ([out.strides] if out is not None else [])
    merged, merged_strides = merge_axes(shape, *strides)
    if len(merged) > MAX_DIMS:
        raise ValueError(f"{op}: more than {MAX_DIMS} axes after merging ({shape})")
    return views, merged, merged_strides


def _run(rc, op):
    runtime.check(rc, op)


# ---------------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------------
_UNARY = {
    "copy": 0, "neg": 1, "abs": 2, "exp": 3, "log": 4, "sqrt": 5, "sin": 6, "cos": 7, "tanh": 8,
    "sigmoid": 9, "relu": 10, "sign": 11, "leaky_relu": 12, "clip": 13,
}  # fmt: skip
_BINARY = {"add": 0, "sub": 1, "mul": 2, "div": 3, "maximum": 4, "minimum": 5, "power": 6}
_COMPARE = {"greater": 0, "greater_equal": 1, "less": 2, "less_equal": 3, "equal": 4, "not_equal": 5}


def _unary(op, x, alpha=0.0, beta=0.0):
    x = _device(x, op)
    out = DeviceArray.empty(x.shape, F32)
    (view,), shape, (xs,) = _layout(op, x.shape, [x])
    rc = _lib().mdc_unary(
        _UNARY[op], view._ptr(), _int64s(xs), out._ptr(), len(shape), _int64s(shape), float(alpha), float(beta)
    )
    _run(rc, op)
    return out


def _binary(op, x, y):
    x, y = _device(x, op, "x"), _device(y, op, "y")
    shape = _broadcast(op, x, y)
    out = DeviceArray.empty(shape, F32)
    (vx, vy), merged, (xs, ys) = _layout(op, shape, [x, y])
    rc = _lib().mdc_binary(
        _BINARY[op], vx._ptr(), _int64s(xs), vy._ptr(), _int64s(ys), out._ptr(), len(merged), _int64s(merged)
    )
    _run(rc, op)
    return out


def _compare(op, x, y):
    x, y = _device(x, op, "x"), _device(y, op, "y")
    shape = _broadcast(op, x, y)
    out = DeviceArray.empty(shape, np.bool_)
    (vx, vy), merged, (xs, ys) = _layout(op, shape, [x, y])
    rc = _lib().mdc_compare(
        _COMPARE[op], vx._ptr(), _int64s(xs), vy._ptr(), _int64s(ys), out._ptr("uint8_t *"), len(merged),
        _int64s(merged),
    )  # fmt: skip
    _run(rc, op)
    return out


def _make(kind, op):
    if kind == "unary":

        def kernel(x):
            return _unary(op, x)
    elif kind == "binary":

        def kernel(x, y):
            return _binary(op, x, y)
    else:

        def kernel(x, y):
            return _compare(op, x, y)

    kernel.__name__ = op
    kernel.__doc__ = f"np.{op} on the device (broadcasting like NumPy for two operands)."
    return kernel


neg, abs, exp, log, sqrt, sin, cos, tanh, sigmoid, relu, sign = (  # noqa: A001
    _make("unary", op) for op in ("neg", "abs", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "sign")
)
add, sub, mul, div, maximum, minimum, power = (
    _make("binary", op) for op in ("add", "sub", "mul", "div", "maximum", "minimum", "power")
)
greater, greater_equal, less, less_equal, equal, not_equal = (
    _make("compare", op) for op in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal")
)


def leaky_relu(x, slope):
    return _unary("leaky_relu", x, alpha=slope)


def clip(x, lo, hi):
    """min(max(x, lo), hi) for scalar bounds."""
    if not isinstance(lo, numbers.Real) or not isinstance(hi, numbers.Real):
        raise TypeError("clip: the cuda kernel takes scalar bounds lo and hi")
    return _unary("clip", x, alpha=lo, beta=hi)


def where(cond, x, y):
    cond = _device(cond, "where", "cond", np.dtype(np.bool_))
    x, y = _device(x, "where", "x"), _device(y, "where", "y")
    shape = _broadcast("where", cond, x, y)
    out = DeviceArray.empty(shape, F32)
    (vc, vx, vy), merged, (cs, xs, ys) = _layout("where", shape, [cond, x, y])
    rc = _lib().mdc_where(
        vc._ptr("uint8_t *"), _int64s(cs), vx._ptr(), _int64s(xs), vy._ptr(), _int64s(ys), out._ptr(),
        len(merged), _int64s(merged),
    )  # fmt: skip
    _run(rc, "where")
    return out


def relu_backward(grad, x):
    """Gradient of max(0, x): grad where x > 0, zero elsewhere."""
    grad, x = _contig(grad, "relu_backward", "grad"), _contig(x, "relu_backward", "x")
    if grad.shape != x.shape:
        raise ValueError(f"relu_backward: grad {grad.shape} and x {x.shape} differ")
    out = DeviceArray.empty(x.shape, F32)
    _run(_lib().mdc_relu_backward(grad._ptr(), x._ptr(), out._ptr(), x.size), "relu_backward")
    return out


_ACTS = {None: 0, "none": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


def _act_code(op, activation):
    if activation not in _ACTS:
        raise ValueError(f"{op}: unknown activation {activation!r}; expected None, 'relu', 'sigmoid' or 'tanh'")
    return _ACTS[activation]


def bias_act_forward(x, bias, activation):
    """act(x + bias), bias (None or shape x.shape[-1:]) broadcast over the leading axes."""
    act = _act_code("bias_act_forward", activation)
    x = _contig(x, "bias_act_forward")
    if x.ndim < 1:
        raise ValueError("bias_act_forward: x needs at least one axis")
    if bias is not None:
        bias = _contig(bias, "bias_act_forward", "bias")
        if bias.shape != x.shape[-1:]:
            raise ValueError(
                f"bias_act_forward: bias {bias.shape} does not match x {x.shape} (expected {x.shape[-1:]})"
            )
    out = DeviceArray.empty(x.shape, F32)
    cols = x.shape[-1]
    rows = x.size // cols if cols else 0
    bias_ptr = runtime.ffi().NULL if bias is None else bias._ptr()
    _run(_lib().mdc_bias_act_forward(x._ptr(), bias_ptr, out._ptr(), rows, cols, act), "bias_act_forward")
    return out


def bias_act_backward(grad, out, activation):
    """(dz, dbias) for out = act(x + bias), from the activation's output."""
    act = _act_code("bias_act_backward", activation)
    grad, out = _contig(grad, "bias_act_backward", "grad"), _contig(out, "bias_act_backward", "out")
    if grad.shape != out.shape or grad.ndim < 1:
        raise ValueError(f"bias_act_backward: grad {grad.shape} and out {out.shape} must match (at least 1-d)")
    cols = grad.shape[-1]
    rows = grad.size // cols if cols else 0
    dz = DeviceArray.empty(grad.shape, F32)
    dbias = DeviceArray.empty((cols,), F32)
    rc = _lib().mdc_bias_act_backward(grad._ptr(), out._ptr(), dz._ptr(), dbias._ptr(), rows, cols, act)
    _run(rc, "bias_act_backward")
    return dz, dbias


# ---------------------------------------------------------------------------------------
# Shapes and memory
# ---------------------------------------------------------------------------------------
def empty(shape, dtype=np.float32):
    return DeviceArray.empty(shape, dtype)


def zeros(shape, dtype=np.float32):
    return DeviceArray.zeros(shape, dtype)


def ones(shape, dtype=np.float32):
    return DeviceArray.full(shape, 1, dtype)


def full(shape, value, dtype=np.float32):
    return DeviceArray.full(shape, value, dtype)


def reshape(x, shape):
    return x.reshape(shape)


def transpose(x, axes):
    return x.transpose(axes)


def broadcast_to(x, shape):
    return x.broadcast_to(shape)


def ascontiguousarray(x):
    return x.contiguous()


def concatenate(arrays, axis=0):
    arrays = list(arrays)
    if not arrays:
        raise ValueError("concatenate: need at least one array")
    first = arrays[0]
    axis = axis % first.ndim
    for a in arrays:
        if (
            a.ndim != first.ndim
            or a.dtype != first.dtype
            or any(a.shape[d] != first.shape[d] for d in range(first.ndim) if d != axis)
        ):
            raise ValueError(
                f"concatenate: {a.shape} {a.dtype} does not fit {first.shape} {first.dtype} on axis {axis}"
            )
    shape = list(first.shape)
    shape[axis] = builtins.sum(a.shape[axis] for a in arrays)  # sum is the kernel here
    out = DeviceArray.empty(shape, first.dtype)
    start = 0
    for a in arrays:
        index = (slice(None),) * axis + (slice(start, start + a.shape[axis]),)
        copy_into(a, out[index])
        start += a.shape[axis]
    return out


def stack(arrays, axis=0):
    arrays = list(arrays)
    if not arrays:
        raise ValueError("stack: need at least one array")
    axis = axis % (arrays[0].ndim + 1)
    return concatenate([a[(slice(None),) * axis + (None,)] for a in arrays], axis=axis)


def pad(x, pad_width, value=0.0):
    """Constant padding: pad_width is ((before, after), ...) per axis."""
    pad_width = [tuple(p) for p in pad_width]
    if len(pad_width) != x.ndim:
        raise ValueError(f"pad: {len(pad_width)} (before, after) pairs for a {x.ndim}-d array")
    shape = [s + b + a for s, (b, a) in zip(x.shape, pad_width)]
    out = full(shape, value, x.dtype)
    copy_into(x, out[tuple(slice(b, b + s) for s, (b, _) in zip(x.shape, pad_width))])
    return out


def _axis_index_array(index, op):
    """(position of the array index, the index array) if `index` is basic slices plus one int64 DeviceArray."""
    parts = index if isinstance(index, tuple) else (index,)
    arrays = [i for i, p in enumerate(parts) if isinstance(p, DeviceArray)]
    if not arrays:
        return None
    if len(arrays) > 1 or arrays[0] != 0 or any(p != slice(None) for p in parts[1:]):
        raise TypeError(f"{op}: the cuda kernels take one int64 index array on the first axis (x[idx]) only")
    idx = parts[0]
    if idx.dtype != I64 or idx.ndim != 1:
        raise TypeError(f"{op}: the index array must be 1-d int64, got {idx.shape} {idx.dtype}")
    return idx.contiguous()


def getitem(x, index):
    """x[index]: basic indexing is a view; x[idx] with a 1-d int64 DeviceArray gathers rows."""
    idx = _axis_index_array(index, "getitem")
    if idx is None:
        return x[index]
    x = _contig(x, "getitem")
    rows = x.shape[0]
    row_size = math.prod(x.shape[1:])
    out = DeviceArray.empty((idx.size,) + x.shape[1:], F32)
    bad = runtime.ffi().new("int64_t *")
    rc = _lib().mdc_index_select(x._ptr(), rows, row_size, idx._ptr("int64_t *"), idx.size, out._ptr(), bad)
    if rc == _lib().MDC_EBAD_INDEX:
        raise IndexError(
            f"getitem: index {idx[bad[0]].to_numpy()} at position {bad[0]} is out of bounds for {rows} rows"
        )
    _run(rc, "getitem")
    return out


def scatter_add(shape, index, values, dtype=np.float32):
    """A zero array of `shape` with `values` added at `[index]` (repeats add up): the adjoint of getitem."""
    if np.dtype(dtype) != F32:
        raise TypeError(f"scatter_add: the cuda kernel computes in float32, not {np.dtype(dtype)}")
    values = _contig(values, "scatter_add", "values")
    out = zeros(shape, F32)
    idx = _axis_index_array(index, "scatter_add")
    if idx is None:  # basic indexing never repeats an element: a plain copy into the view
        copy_into(values.broadcast_to(out[index].shape).contiguous(), out[index])
        return out
    rows, row_size = out.shape[0], math.prod(out.shape[1:])
    if values.shape != (idx.size,) + tuple(out.shape[1:]):
        raise ValueError(f"scatter_add: values {values.shape} do not match {idx.size} rows of {shape}")
    bad = runtime.ffi().new("int64_t *")
    rc = _lib().mdc_index_add(out._ptr(), rows, row_size, idx._ptr("int64_t *"), idx.size, values._ptr(), bad)
    if rc == _lib().MDC_EBAD_INDEX:
        raise IndexError(f"scatter_add: index at position {bad[0]} is out of bounds for {rows} rows")
    _run(rc, "scatter_add")
    return out


# ---------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------
_REDUCE = {"sum": 0, "max": 1, "min": 2}


def _norm_axes(op, ndim, axis):
    if axis is None:
        return tuple(range(ndim))
    raw = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    for a in raw:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise np.exceptions.AxisError(f"{op}: axis {a} is out of bounds for array of dimension {ndim}")
    axes = sorted({a % ndim for a in raw}) if ndim else []
    if len(axes) != len(raw):
        raise ValueError(f"{op}: duplicate value in 'axis'")
    return tuple(axes)


def _reduce_one(op, x, axis):
    """Reduce contiguous x over one axis, keeping it as size 1."""
    outer = math.prod(x.shape[:axis])
    n = x.shape[axis]
    inner = math.prod(x.shape[axis + 1 :])
    out = DeviceArray.empty(x.shape[:axis] + (1,) + x.shape[axis + 1 :], F32)
    _run(_lib().mdc_reduce(_REDUCE[op], x._ptr(), out._ptr(), outer, n, inner), op)
    return out


def _reduce(op, x, axis, keepdims):
    x = _contig(x, op)
    axes = _norm_axes(op, x.ndim, axis)
    if op != "sum" and any(x.shape[a] == 0 for a in axes) or (op != "sum" and x.size == 0):
        raise ValueError(f"{op}: zero-size array to reduction operation {op}imum which has no identity")
    kept = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
    if x.ndim == 0:
        out = x.copy()
    else:
        # A run of adjacent axes is one reduction over their product; others go one axis at a time.
        out = x
        runs = []
        for a in axes:
            if runs and runs[-1][-1] == a - 1:
                runs[-1].append(a)
            else:
                runs.append([a])
        for run in reversed(runs):
            first, last = run[0], run[-1]
            merged = out.reshape(out.shape[:first] + (math.prod(out.shape[first : last + 1]),) + out.shape[last + 1 :])
            reduced = _reduce_one(op, merged, first)
            out = reduced.reshape(out.shape[:first] + (1,) * len(run) + out.shape[last + 1 :])
        out = out.reshape(kept)
    if keepdims:
        return out
    return out.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes))


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return _reduce("sum", x, axis, keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return _reduce("max", x, axis, keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return _reduce("min", x, axis, keepdims)


def argmax(x, axis=None):
    """Index of the first largest value along `axis` (of the flattened array for None), int64."""
    x = _contig(x, "argmax")
    if axis is None:
        x, axis = x.reshape(-1), 0
    (axis,) = _norm_axes("argmax", x.ndim, axis)
    if x.shape[axis] == 0:
        raise ValueError("argmax: attempt to get argmax of an empty sequence")
    outer, n, inner = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1 :])
    out = DeviceArray.empty(x.shape[:axis] + x.shape[axis + 1 :], I64)
    _run(_lib().mdc_argmax(x._ptr(), out._ptr("int64_t *"), outer, n, inner), "argmax")
    return out


def _rowwise(op, c_name, x, axis):
    x = _device(x, op)
    if x.ndim == 0:
        raise ValueError(f"{op}: needs at least one axis")
    axis = _norm_axes(op, x.ndim, axis)[0]
    moved = x if axis == x.ndim - 1 else x.transpose([d for d in range(x.ndim) if d != axis] + [axis])
    src = moved.contiguous()
    cols = src.shape[-1]
    rows = src.size // cols if cols else 0
    out = DeviceArray.empty(src.shape, F32)
    _run(getattr(_lib(), c_name)(src._ptr(), out._ptr(), rows, cols), op)
    if moved is x:
        return out
    back = list(range(x.ndim - 1))
    back.insert(axis, x.ndim - 1)
    return out.transpose(back).contiguous()


def softmax(x, axis=-1):
    return _rowwise("softmax", "mdc_softmax", x, axis)


def log_softmax(x, axis=-1):
    return _rowwise("log_softmax", "mdc_log_softmax", x, axis)


# ---------------------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------------------
def _stage_number(stage):
    stage = DEFAULT_GEMM_STAGE if stage is None else stage
    if isinstance(stage, numbers.Integral) and 0 <= stage < len(GEMM_STAGES):
        return int(stage)
    if stage in GEMM_STAGES:
        return GEMM_STAGES.index(stage)
    raise ValueError(f"matmul: unknown GEMM stage {stage!r}; expected one of {', '.join(GEMM_STAGES)}")


def matmul(a, b, stage=None):
    """a @ b for matrices or stacks of them (batch axes broadcast); `stage` picks the GEMM kernel."""
    a, b = _device(a, "matmul", "a"), _device(b, "matmul", "b")
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"matmul: the cuda kernel multiplies matrices; got shapes {a.shape} and {b.shape}")
    m, k = a.shape[-2:]
    k2, n = b.shape[-2:]
    if k != k2:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    try:
        batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch shapes of {a.shape} and {b.shape} do not broadcast") from None
    batch = math.prod(batch_shape)
    out = DeviceArray.empty(batch_shape + (m, n), F32)
    if out.size == 0:
        return out
    # Every batch item contiguous: stride m*k (or 0 where an operand is broadcast along all batch axes).
    a_items, a_stride = _batch_operand(a, batch_shape)
    b_items, b_stride = _batch_operand(b, batch_shape)
    rc = _lib().mdc_sgemm(
        _stage_number(stage), batch, m, n, k, a_items._ptr(), a_stride, b_items._ptr(), b_stride, out._ptr()
    )
    _run(rc, f"matmul ({GEMM_STAGES[_stage_number(stage)]})")
    return out


def _batch_operand(x, batch_shape):
    """x's matrices laid out contiguously, one per batch item (or once, with stride 0)."""
    rows, cols = x.shape[-2:]
    if x.ndim == 2 or all(s == 1 for s in x.shape[:-2]):
        return x.reshape(rows, cols).contiguous(), 0
    full_shape = tuple(batch_shape) + (rows, cols)
    return x.broadcast_to(full_shape).contiguous(), rows * cols


def linear(x, weight, bias=None):
    """x @ weight.T + bias: a transposed copy of W, one GEMM, and the bias added in one pass."""
    return linear_act(x, weight, bias, None)


def linear_act(x, weight, bias=None, activation=None):
    """act(x @ weight.T + bias) for x (N, in), weight (out, in), bias (out,) or None."""
    x, weight = _device(x, "linear", "x"), _device(weight, "linear", "weight")
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"linear: x {x.shape} and weight {weight.shape} do not fit (x (N, in), weight (out, in))")
    z = matmul(x, weight.T)
    if bias is None and activation in (None, "none"):
        return z
    return bias_act_forward(z, bias, activation)


def gemm_stage_name(stage):
    return runtime.ffi().string(_lib().mdc_gemm_stage_name(_stage_number(stage))).decode()


# ---------------------------------------------------------------------------------------
# Convolution and pooling (NCHW)
# ---------------------------------------------------------------------------------------
def conv_output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def _geometry_ok(op, shape, kh, kw, stride, padding):
    if len(shape) != 4:
        raise ValueError(f"{op}: expected an (N, C, H, W) array, got shape {tuple(shape)}")
    if stride < 1 or padding < 0 or kh < 1 or kw < 1:
        raise ValueError(f"{op}: need kernel >= 1, stride >= 1, padding >= 0 (got {kh}x{kw}, {stride}, {padding})")
    oh = conv_output_size(shape[2], kh, stride, padding)
    ow = conv_output_size(shape[3], kw, stride, padding)
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: a {kh}x{kw} window does not fit a {shape[2]}x{shape[3]} image with padding {padding}")
    return oh, ow


def im2col(x, kh, kw, stride, padding):
    x = _contig(x, "im2col")
    oh, ow = _geometry_ok("im2col", x.shape, kh, kw, stride, padding)
    n, c, h, w = x.shape
    cols = DeviceArray.empty((n * oh * ow, c * kh * kw), F32)
    _run(_lib().mdc_im2col(x._ptr(), cols._ptr(), n, c, h, w, kh, kw, stride, padding), "im2col")
    return cols


def col2im(cols, x_shape, kh, kw, stride, padding):
    cols = _contig(cols, "col2im", "cols")
    oh, ow = _geometry_ok("col2im", x_shape, kh, kw, stride, padding)
    n, c, h, w = x_shape
    if cols.shape != (n * oh * ow, c * kh * kw):
        raise ValueError(f"col2im: cols {cols.shape} do not match {x_shape} (expected {(n * oh * ow, c * kh * kw)})")
    x = DeviceArray.empty((n, c, h, w), F32)
    _run(_lib().mdc_col2im(cols._ptr(), x._ptr(), n, c, h, w, kh, kw, stride, padding), "col2im")
    return x


def max_pool2d_forward(x, kernel, stride, padding):
    """Returns (output, argmax): argmax is the winning offset i*kernel + j inside each window (int64)."""
    x = _contig(x, "max_pool2d_forward")
    oh, ow = _geometry_ok("max_pool2d_forward", x.shape, kernel, kernel, stride, padding)
    n, c, h, w = x.shape
    out = DeviceArray.empty((n, c, oh, ow), F32)
    argmax = DeviceArray.empty((n, c, oh, ow), I64)
    rc = _lib().mdc_max_pool2d_forward(
        x._ptr(), out._ptr(), argmax._ptr("int64_t *"), n, c, h, w, kernel, stride, padding
    )
    _run(rc, "max_pool2d_forward")
    return out, argmax


def max_pool2d_backward(grad, argmax, x_shape, kernel, stride, padding):
    grad = _contig(grad, "max_pool2d_backward", "grad")
    argmax = _contig(argmax, "max_pool2d_backward", "argmax", I64)
    oh, ow = _geometry_ok("max_pool2d_backward", x_shape, kernel, kernel, stride, padding)
    n, c, h, w = x_shape
    if grad.shape != (n, c, oh, ow) or argmax.shape != grad.shape:
        raise ValueError(f"max_pool2d_backward: grad {grad.shape} / argmax {argmax.shape}, expected {(n, c, oh, ow)}")
    dx = DeviceArray.empty((n, c, h, w), F32)
    rc = _lib().mdc_max_pool2d_backward(
        grad._ptr(), argmax._ptr("int64_t *"), dx._ptr(), n, c, h, w, kernel, stride, padding
    )
    _run(rc, "max_pool2d_backward")
    return dx


def avg_pool2d_forward(x, kernel, stride, padding):
    x = _contig(x, "avg_pool2d_forward")
    oh, ow = _geometry_ok("avg_pool2d_forward", x.shape, kernel, kernel, stride, padding)
    n, c, h, w = x.shape
    out = DeviceArray.empty((n, c, oh, ow), F32)
    _run(_lib().mdc_avg_pool2d_forward(x._ptr(), out._ptr(), n, c, h, w, kernel, stride, padding), "avg_pool2d")
    return out


def avg_pool2d_backward(grad, x_shape, kernel, stride, padding):
    grad = _contig(grad, "avg_pool2d_backward", "grad")
    oh, ow = _geometry_ok("avg_pool2d_backward", x_shape, kernel, kernel, stride, padding)
    n, c, h, w = x_shape
    if grad.shape != (n, c, oh, ow):
        raise ValueError(f"avg_pool2d_backward: grad {grad.shape}, expected {(n, c, oh, ow)}")
    dx = DeviceArray.empty((n, c, h, w), F32)
    rc = _lib().mdc_avg_pool2d_backward(grad._ptr(), dx._ptr(), n, c, h, w, kernel, stride, padding)
    _run(rc, "avg_pool2d_backward")
    return dx


# ---------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------
def _targets(op, targets, rows):
    targets = _contig(targets, op, "targets", I64)
    if targets.shape != (rows,):
        raise ValueError(f"{op}: targets {targets.shape} do not match {rows} rows (expected ({rows},))")
    return targets


def cross_entropy_forward(logits, targets):
    """Per-row loss -log softmax(logits)[target] and the softmax probabilities."""
    logits = _contig(logits, "cross_entropy_forward", "logits")
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy_forward: logits must be (N, C), got {logits.shape}")
    rows, cols = logits.shape
    targets = _targets("cross_entropy_forward", targets, rows)
    losses, probs = DeviceArray.empty((rows,), F32), DeviceArray.empty((rows, cols), F32)
    bad = runtime.ffi().new("int64_t *")
    rc = _lib().mdc_cross_entropy_forward(
        logits._ptr(), targets._ptr("int64_t *"), losses._ptr(), probs._ptr(), rows, cols, bad
    )
    _bad_target("cross_entropy_forward", rc, bad, targets, cols)
    return losses, probs


def cross_entropy_backward(probs, targets, grad_losses):
    """d loss_i / d logits_i = softmax_i - onehot(target_i), scaled by each row's upstream grad."""
    probs = _contig(probs, "cross_entropy_backward", "probs")
    if probs.ndim != 2:
        raise ValueError(f"cross_entropy_backward: probs must be (N, C), got {probs.shape}")
    rows, cols = probs.shape
    targets = _targets("cross_entropy_backward", targets, rows)
    grad_losses = _contig(grad_losses, "cross_entropy_backward", "grad_losses")
    if grad_losses.shape != (rows,):
        raise ValueError(f"cross_entropy_backward: grad_losses {grad_losses.shape}, expected ({rows},)")
    dlogits = DeviceArray.empty((rows, cols), F32)
    bad = runtime.ffi().new("int64_t *")
    rc = _lib().mdc_cross_entropy_backward(
        probs._ptr(), targets._ptr("int64_t *"), grad_losses._ptr(), dlogits._ptr(), rows, cols, bad
    )
    _bad_target("cross_entropy_backward", rc, bad, targets, cols)
    return dlogits


def class_targets(targets, ignore_index, classes):
    """(targets with ignored rows set to 0, bool mask of the rows that count or None if all do, their count).

    One kernel pass; the host learns the count and the first bad row (the loss must raise on a bad
    target, and a mean over the rows that count divides by how many there are).
    """
    targets = _contig(targets, "class_targets", "targets", I64)
    if targets.ndim != 1:
        raise ValueError(f"class_targets: targets must be 1-D, got {targets.shape}")
    rows = targets.shape[0]
    safe, valid = DeviceArray.empty((rows,), I64), DeviceArray.empty((rows,), np.bool_)
    ignored, bad = runtime.ffi().new("int64_t *"), runtime.ffi().new("int64_t *")
    rc = _lib().mdc_class_targets(
        targets._ptr("int64_t *"), rows, int(classes), int(ignore_index), safe._ptr("int64_t *"),
        valid._ptr("uint8_t *"), ignored, bad,
    )  # fmt: skip
    _bad_target("class_targets", rc, bad, targets, classes)
    if ignored[0] == 0:
        return targets, None, rows
    return safe, valid, rows - int(ignored[0])


def nll_loss_forward(log_probs, targets):
    """Per-row loss -log_probs[i, targets[i]]."""
    log_probs = _contig(log_probs, "nll_loss_forward", "log_probs")
    if log_probs.ndim != 2:
        raise ValueError(f"nll_loss_forward: log_probs must be (N, C), got {log_probs.shape}")
    rows, cols = log_probs.shape
    targets = _targets("nll_loss_forward", targets, rows)
    losses = DeviceArray.empty((rows,), F32)
    bad = runtime.ffi().new("int64_t *")
    rc = _lib().mdc_nll_forward(log_probs._ptr(), targets._ptr("int64_t *"), losses._ptr(), rows, cols, bad)
    _bad_target("nll_loss_forward", rc, bad, targets, cols)
    return losses


def nll_loss_backward(grad_losses, targets, classes):
    """d log_probs: -grad_losses[i] at [i, targets[i]], zero elsewhere."""
    grad_losses = _contig(grad_losses, "nll_loss_backward", "grad_losses")
    if grad_losses.ndim != 1:
        raise ValueError(f"nll_loss_backward: grad_losses must be 1-D, got {grad_losses.shape}")
    rows = grad_losses.shape[0]
    targets = _targets("nll_loss_backward", targets, rows)
    dlogp = DeviceArray.empty((rows, int(classes)), F32)
    bad = runtime.ffi().new("int64_t *")
    rc = _lib().mdc_nll_backward(targets._ptr("int64_t *"), grad_losses._ptr(), dlogp._ptr(), rows, int(classes), bad)
    _bad_target("nll_loss_backward", rc, bad, targets, classes)
    return dlogp


def _bad_target(op, rc, bad, targets, cols):
    if rc == _lib().MDC_EBAD_INDEX:
        row = int(bad[0])
        value = int(targets[row].to_numpy())
        raise IndexError(f"{op}: target {value} of row {row} is out of range for {cols} classes")
    _run(rc, op)


# ---------------------------------------------------------------------------------------
# Optimizer updates (in place). Scalars are rounded to float32 as NumPy rounds a Python float
# meeting a float32 array; the kernels then do the NumPy twin's operations in its order.
# ---------------------------------------------------------------------------------------
def _f32(v):
    return float(np.float32(v))


def _inplace(op, param, grad, **state):
    """Check that param, grad and the state arrays are contiguous float32 device arrays of one shape."""
    for arg, a in [("param", param)] + list(state.items()):
        if a is None:
            continue
        if not isinstance(a, DeviceArray) or a.dtype != F32 or not a.is_contiguous():
            raise ValueError(
                f"{op}: {arg} is updated in place and must be a contiguous float32 DeviceArray "
                f"(got {type(a).__name__}{'' if not isinstance(a, DeviceArray) else f' {a.dtype}'})"
            )
        if a.shape != param.shape:
            raise ValueError(f"{op}: {arg} has shape {a.shape}, param has {param.shape}")
    grad = _contig(grad, op, "grad")
    if grad.shape != param.shape:
        raise ValueError(f"{op}: grad has shape {grad.shape}, param has {param.shape}")
    return grad


def _opt(a):
    return runtime.ffi().NULL if a is None else a._ptr()


def sgd_update(param, grad, velocity, lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
    """g' = mu*g + (1 - dampening)*dL;  w' = w - lr*g', in place. velocity may be None when momentum is 0."""
    grad = _inplace("sgd_update", param, grad, velocity=velocity if momentum else None)
    if momentum and velocity is None:
        raise ValueError("sgd_update: momentum needs a velocity array")
    rc = _lib().mdc_sgd_update(
        param._ptr(), grad._ptr(), _opt(velocity if momentum else None), param.size, _f32(lr), _f32(momentum),
        _f32(1 - dampening), _f32(weight_decay), int(bool(nesterov)),
    )  # fmt: skip
    _run(rc, "sgd_update")


def adagrad_update(param, grad, sum_sq, lr, eps=1e-10, weight_decay=0.0):
    grad = _inplace("adagrad_update", param, grad, sum_sq=sum_sq)
    rc = _lib().mdc_adagrad_update(
        param._ptr(), grad._ptr(), sum_sq._ptr(), param.size, _f32(lr), _f32(eps), _f32(weight_decay)
    )
    _run(rc, "adagrad_update")


def rmsprop_update(param, grad, mean_sq, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, mean=None):
    grad = _inplace("rmsprop_update", param, grad, mean_sq=mean_sq, mean=mean)
    rc = _lib().mdc_rmsprop_update(
        param._ptr(), grad._ptr(), mean_sq._ptr(), _opt(mean), param.size, _f32(lr), _f32(alpha), _f32(1 - alpha),
        _f32(eps), _f32(weight_decay),
    )  # fmt: skip
    _run(rc, "rmsprop_update")


def adam_update(param, grad, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, max_v=None):
    """Adam with bias correction; `step` counts from 1; AMSGrad when max_v is given. In place."""
    grad = _inplace("adam_update", param, grad, m=m, v=v, max_v=max_v)
    rc = _lib().mdc_adam_update(
        param._ptr(), grad._ptr(), m._ptr(), v._ptr(), _opt(max_v), param.size, _f32(lr), _f32(beta1),
        _f32(1 - beta1), _f32(beta2), _f32(1 - beta2), _f32(1 - beta1**step), _f32(1 - beta2**step), _f32(eps),
        _f32(weight_decay),
    )  # fmt: skip
    _run(rc, "adam_update")


# ---------------------------------------------------------------------------------------
# 16-bit floats
# ---------------------------------------------------------------------------------------
def _convert(op, c_name, x, in_dtype, out_dtype, in_ctype, out_ctype):
    x = _contig(x, op, "x", np.dtype(in_dtype))
    out = DeviceArray.empty(x.shape, out_dtype)
    _run(getattr(_lib(), c_name)(x._ptr(in_ctype), out._ptr(out_ctype), x.size), op)
    return out


def float32_to_float16(x):
    """IEEE half precision, round to nearest even (a float16 DeviceArray)."""
    return _convert("float32_to_float16", "mdc_f32_to_f16", x, F32, np.float16, "float *", "uint16_t *")


def float16_to_float32(x):
    return _convert("float16_to_float32", "mdc_f16_to_f32", x, np.float16, F32, "uint16_t *", "float *")


def float32_to_truncated16(x):
    """The lecture's 16-bit float: the top 16 bits of each float32 (uint16)."""
    return _convert("float32_to_truncated16", "mdc_f32_to_trunc16", x, F32, np.uint16, "float *", "uint16_t *")


def truncated16_to_float32(x):
    return _convert("truncated16_to_float32", "mdc_trunc16_to_f32", x, np.uint16, F32, "uint16_t *", "float *")


def synchronize():
    runtime.synchronize()
