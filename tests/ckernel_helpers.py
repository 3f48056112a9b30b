"""Shared by the C kernel tests: run a test once per SIMD path, and make sure the C kernel really ran.

`simd` forces one SIMD path per test run (scalar, avx2, avx512 on x86-64; scalar, neon on
aarch64) through the library's mdk_set_simd_path(), and skips, naming the missing CPU
features, where the machine cannot run it. `c` sets every crossover threshold (MIN_*) of
the kernel modules to 0, so even a 1x1 problem goes to C, and records which C functions
were called, so a test fails if a wrapper silently fell back to NumPy.

MINIDL_TEST_CKERNELS_MODULE=/path/to/module.so runs the tests against another build of the
same sources (tests/test_sanitizers.py does this with an ASan/UBSan build).
"""

import importlib.machinery
import importlib.util
import os
import platform

import pytest

from minidl.backend import c as ck
from minidl.backend.c import _ffi

X86 = platform.machine().lower() in ("x86_64", "amd64")
PATHS = ["scalar", "avx2", "avx512"] if X86 else ["scalar", "neon"]


def _alternate_build():
    """The kernels of MINIDL_TEST_CKERNELS_MODULE (an instrumented build), if set."""
    path = os.environ.get("MINIDL_TEST_CKERNELS_MODULE")
    if not path:
        return None
    name = os.path.basename(path).split(".")[0]
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


ALT = _alternate_build() if ck.available else None


class _RecordingLib:
    """Wraps the cffi lib and records the names of the C functions called through it."""

    def __init__(self, lib):
        self._lib = lib
        self.calls = []

    def __getattr__(self, attr):
        value = getattr(self._lib, attr)
        if callable(value) and attr.startswith("mdk_"):

            def call(*args):
                self.calls.append(attr)
                return value(*args)

            return call
        return value


@pytest.fixture(params=PATHS)
def simd(request):
    """Run the test on one SIMD path; skip, saying why, if the machine cannot run it."""
    path = request.param
    lib = ALT.lib if ALT is not None else ck.lib
    if not lib.mdk_simd_built(ck.SIMD_PATHS[path]):
        pytest.skip(f"SIMD path {path!r} is not compiled for this architecture ({platform.machine()})")
    if not lib.mdk_simd_supported(ck.SIMD_PATHS[path]):
        missing = ck.ffi.string(lib.mdk_simd_missing(ck.SIMD_PATHS[path])).decode()
        pytest.skip(f"this CPU cannot run the {path} path: it lacks {missing}")
    before = lib.mdk_simd_path()
    assert lib.mdk_set_simd_path(ck.SIMD_PATHS[path]) == 0
    yield path
    lib.mdk_set_simd_path(before)


@pytest.fixture
def c(simd, monkeypatch):
    """The C kernel set with every size threshold at 0 and C calls recorded (returns the call list)."""
    zero_thresholds(monkeypatch)
    if ALT is not None:
        monkeypatch.setattr(_ffi, "ffi", ALT.ffi)
    recorder = _RecordingLib(ALT.lib if ALT is not None else ck.lib)
    monkeypatch.setattr(_ffi, "lib", recorder)
    return recorder.calls


KERNEL_MODULES = [ck.conv, ck.convert, ck.elementwise, ck.gemm, ck.layout, ck.losses, ck.pool, ck.reduce, ck.updates]


def zero_thresholds(monkeypatch):
    """Every crossover threshold (MIN_*) of the kernel modules to 0: even a 1x1 problem goes to C."""
    for module in KERNEL_MODULES:
        for name in dir(module):
            if name.startswith("MIN_"):
                monkeypatch.setattr(module, name, 0)
