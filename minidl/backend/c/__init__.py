"""The C SIMD kernel set: the kernel contract, with the primitives that pay done in C.

Everything in the contract's core comes from the reference kernels first (`numpy_kernels`),
then the modules below override the primitives that pay and add the optional extras the C
kernels do better (contract.py lists both; minidl.backend wraps this namespace in a KernelSet,
which composes any extra a kernel set lacks). Each override calls its C kernel (csrc/, built by
cffi into `minidl.backend._ckernels`) when the arrays are float32 and the work is big
enough to beat the cost of the call, and the reference otherwise; so results never depend
on which path ran, only the speed does.

    module          primitives                                        C source (csrc/)
    _ffi            the cffi library, pointer helpers                 minidl_kernels.h
    simd            SIMD path control (MINIDL_SIMD, set_simd_path)    dispatch.c
    elementwise     add ... sqrt, relu, sigmoid, act_backward         elementwise.c
    reduce          sum, max, softmax, log_softmax                    reductions.c, softmax.c
    gemm            matmul, linear                                    gemm*.c
    conv            conv2d_forward / backward_*, im2col, col2im      conv.c, im2col.c
    pool            max pooling                                       pool.c
    layout          NHWC <-> NCHW copies                              transpose.c
    losses          softmax cross-entropy                             softmax.c
    updates         SGD, AdaGrad, RMSProp, Adam in place              optim.c
    convert         float16 and truncated 16-bit conversions          convert.c
    storage         64-byte-aligned parameter memory                  -

Non-contiguous inputs: kernels that only read an array copy it to contiguous memory first
(the GEMM reads any strides instead). Kernels that update an array in place (the optimizer
updates) reject a non-contiguous or non-float32 array with an error naming the kernel: a
copy would silently drop the update. Speed rationale (crossovers, layouts, blocking) lives
in the modules' comments, csrc/ and docs/kernels.md.
"""

from minidl.backend.numpy_kernels import *  # noqa: F403 - the contract: every primitive, then overrides

# isort: split
from minidl.backend.c._ffi import available, ffi, lib, unavailable_reason
from minidl.backend.c.conv import *  # noqa: F403
from minidl.backend.c.convert import *  # noqa: F403
from minidl.backend.c.elementwise import *  # noqa: F403
from minidl.backend.c.gemm import *  # noqa: F403
from minidl.backend.c.layout import *  # noqa: F403
from minidl.backend.c.losses import *  # noqa: F403
from minidl.backend.c.pool import *  # noqa: F403
from minidl.backend.c.reduce import *  # noqa: F403
from minidl.backend.c.simd import (
    SIMD_PATHS,
    set_simd_path,
    simd_missing_features,
    simd_path,
    simd_paths_built,
    simd_paths_supported,
)
from minidl.backend.c.storage import *  # noqa: F403
from minidl.backend.c.updates import *  # noqa: F403

name = "c"

if available:
    from minidl.backend.c import simd as _simd

    _simd.apply_env_simd()
