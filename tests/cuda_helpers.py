"""Shared set-up for the tests/test_cuda_*.py files: load a CUDA build or skip with the reason.

The tests run on whatever build `minidl.backend.cuda.runtime` picks (MINIDL_CUDA, default auto):
the emulator here and in CI, the real build on a GPU machine. Tests of the emulator itself
(checker, printf capture, OS threads) skip on the real build, saying so.
"""

import warnings

import numpy as np
import pytest

from minidl.backend.cuda import runtime
from minidl.backend.cuda.array import DeviceArray

EPS32 = float(np.finfo(np.float32).eps)


def load_or_skip():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", runtime.CudaEmulatorWarning)
        reason = runtime.unavailable_reason()
    if reason:
        pytest.skip(f"no CUDA build can run here: {reason}", allow_module_level=True)


def emulated_only():
    return pytest.mark.skipif(
        runtime.is_available() and runtime.build() != "emulated",
        reason="tests the CUDA emulator; this process runs the real build (set MINIDL_CUDA=emulate)",
    )


def dev(a, dtype=np.float32):
    return DeviceArray.from_numpy(np.asarray(a, dtype=dtype))


def host(d):
    return d.to_numpy()
