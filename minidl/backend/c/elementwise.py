"""Elementwise kernels in C: binary and unary ops, and the activations (csrc/elementwise.c).

Same speed per element as NumPy for the plain ops (both are memory-bound): the C versions
only save NumPy's dispatch overhead on large arrays. Sigmoid pays from tiny sizes (one pass
instead of NumPy's chain of temporaries). Standalone exp and tanh stay on NumPy, whose own
SIMD versions are faster; ours pay inside the fused kernels.
"""

import numpy as np

from minidl.backend.c import _ffi
from minidl.backend.c._reference import ref

# Crossovers (`python benchmarks/bench_kernels.py --crossover`; numbers in docs/kernels.md).
MIN_ELEMENTWISE = 32768  # add/mul/relu/...: same speed per element as NumPy; only the call overhead differs
MIN_FUSED = 256  # the activation gradients: one pass instead of several, a win from small sizes
MIN_SIGMOID = 0  # sigmoid: one C call (~2 µs) beats NumPy's chain of six ufuncs (~5 µs) at every size
# NumPy 2.x ships SIMD exp and tanh (SVML-derived, AVX-512) that beat ours standalone
# (measured 0.4-0.9x), so standalone exp/tanh stay on NumPy; ours pay inside the fused
# kernels (softmax, cross-entropy, sigmoid, the GEMM epilogue).
MIN_TRANSCENDENTAL = 1 << 62


def _binary(op_code, np_fn):
    def kernel(x, y):
        # Cheapest tests first: most calls on small arrays leave for NumPy after two of them.
        # (Exact signatures on purpose: packing *args/**kwargs and passing them on cost ~1 µs a call.)
        if (
            type(x) is not np.ndarray or type(y) is not np.ndarray
            or x.size < MIN_ELEMENTWISE or x.shape != y.shape or x.dtype != _ffi.F32 or y.dtype != _ffi.F32
        ):  # fmt: skip
            return np_fn(x, y)
        x, y = _ffi.contig(x), _ffi.contig(y)
        out = np.empty(x.shape, _ffi.F32)
        _ffi.lib.mdk_binary(op_code, _ffi.buf(x), _ffi.buf(y), _ffi.buf(out), x.size)
        return out

    kernel.__name__ = np_fn.__name__
    kernel.__doc__ = f"np.{np_fn.__name__} on two same-shape float32 arrays in C; NumPy otherwise."
    return kernel


def _unary(op_code, np_fn, threshold_name):
    def kernel(x):
        if type(x) is not np.ndarray or x.size < globals()[threshold_name] or x.dtype != _ffi.F32:
            return np_fn(x)
        x = _ffi.contig(x)
        out = np.empty(x.shape, _ffi.F32)
        _ffi.lib.mdk_unary(op_code, _ffi.buf(x), _ffi.buf(out), x.size)
        return out

    kernel.__name__ = getattr(np_fn, "__name__", "unary")
    kernel.__doc__ = f"{kernel.__name__} of a float32 array in C; NumPy otherwise."
    return kernel


__all__ = []
if _ffi.available:
    lib = _ffi.lib
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
    relu = _unary(lib.MDK_UN_RELU, ref.relu, "MIN_ELEMENTWISE")
    sigmoid = _unary(lib.MDK_UN_SIGMOID, ref.sigmoid, "MIN_SIGMOID")
    tanh = _unary(lib.MDK_UN_TANH, np.tanh, "MIN_TRANSCENDENTAL")
    del lib
    __all__ += ["add", "sub", "mul", "div", "maximum", "minimum", "neg", "abs", "sqrt", "exp", "relu", "sigmoid"]
    __all__ += ["tanh"]


def act_backward(grad, y, activation):
    """dL/dz = grad * act'(y) for y = act(z), from the activation's output y, in one pass:
    relu' = [y > 0], sigmoid' = y (1 - y), tanh' = 1 - y^2 (no activation: grad itself)."""
    act = _ffi.ACTIVATIONS.get(activation)
    if activation is None:
        return grad
    if act is None or not _ffi.available or not _ffi.is_f32(grad, y) or grad.shape != y.shape or y.size < MIN_FUSED:
        return ref.act_backward(grad, y, activation)
    grad, y = _ffi.contig(grad), _ffi.contig(y)
    dz = np.empty(y.shape, _ffi.F32)
    _ffi.lib.mdk_act_backward(_ffi.buf(grad), _ffi.buf(y), _ffi.buf(dz), y.size, act)
    return dz


__all__ += ["act_backward"]
