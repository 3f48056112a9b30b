"""Python face of the exercise's C kernel: fused bias + ReLU over NumPy arrays.

    from bias_relu import bias_relu
    out = bias_relu(x, bias)                 # the path the dispatcher picks
    out = bias_relu(x, bias, path="scalar")  # or force one: "scalar", "avx2"

The reference it must equal is NumPy's np.maximum(x + bias, 0) (what minidl's numpy
kernel set computes for Linear + ReLU's bias and activation).
"""

import numpy as np
from bias_relu_build import load

PATHS = {"auto": 0, "scalar": 1, "avx2": 2}


def avx2_supported():
    """Whether this CPU can run the AVX2 path."""
    _, lib = load()
    return bool(lib.bias_relu_avx2_supported())


def bias_relu(x, bias, path="auto", out=None):
    """max(x + bias, 0) for float32 x of shape (rows, cols) and bias of shape (cols,)."""
    if path not in PATHS:
        raise ValueError(f"bias_relu: path must be one of {sorted(PATHS)}, got {path!r}")
    x = np.asarray(x)
    bias = np.asarray(bias)
    if x.dtype != np.float32 or bias.dtype != np.float32:
        raise TypeError(f"bias_relu: x and bias must be float32, got {x.dtype} and {bias.dtype}")
    if x.ndim != 2 or bias.shape != (x.shape[1],):
        raise ValueError(f"bias_relu: x must be (rows, cols) and bias (cols,), got {x.shape} and {bias.shape}")
    x = np.ascontiguousarray(x)
    bias = np.ascontiguousarray(bias)
    if out is None:
        out = np.empty_like(x)
    elif out.shape != x.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"bias_relu: out must be a C-contiguous float32 array of shape {x.shape}")
    ffi, lib = load()
    rows, cols = x.shape
    px, pb, po = (ffi.cast("float *", a.ctypes.data) for a in (x, bias, out))
    if path == "scalar":
        lib.bias_relu_scalar(px, pb, po, rows, cols)
    elif path == "avx2":
        if lib.bias_relu_avx2(px, pb, po, rows, cols) != 0:
            raise RuntimeError("bias_relu: this CPU has no AVX2")
    else:
        lib.bias_relu(px, pb, po, rows, cols)
    return out
