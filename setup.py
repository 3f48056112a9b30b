"""Build script: the package metadata lives in pyproject.toml; this file only adds the compiled kernels.

Three optional cffi extensions, none of which can fail an install:
  minidl/backend/_ckernels              the C SIMD kernels (a C compiler); without them minidl
                                        runs on the NumPy kernels;
  minidl/backend/cuda/_cuda_emulated    the CUDA kernels on the CPU emulator (a C++ compiler);
  minidl/backend/cuda/_cuda_real        the CUDA kernels for a GPU (only if nvcc is found).
`pip install -e .` builds it in place (setuptools runs build_ext with inplace=True for
editable installs), where minidl/backend/c/_ffi.py imports it.
During development: `python minidl/backend/_build_ckernels.py` rebuilds it in place.
"""

import importlib.util
import pathlib
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class optional_build_ext(build_ext):
    """build_ext that turns a failed C build into a warning instead of a failed install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler/toolchain failure
            self._skip(exc)

    def build_extension(self, ext):
        try:
            if ext.name.endswith("_cuda_real"):
                _cuda_build_module().compile_cuda_objects(_cuda_build_module().REAL_OBJECT_DIR)  # nvcc first
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._skip(exc, ext.name)

    _warned = set()

    def _skip(self, exc, name=None):
        if name in optional_build_ext._warned:  # a failed compile also fails the later copy step: say it once
            return
        optional_build_ext._warned.add(name)
        what = {
            None: "minidl's compiled kernels could not be built",
            "minidl.backend._ckernels": "minidl's C kernels could not be built",
            "minidl.backend.cuda._cuda_emulated": "minidl's emulated CUDA kernels could not be built",
            "minidl.backend.cuda._cuda_real": "minidl's CUDA kernels for a GPU could not be built with nvcc",
        }.get(name, f"{name} could not be built")
        consequence = {
            "minidl.backend.cuda._cuda_emulated": "the 'cuda' device will not be available without a GPU. "
            "Install a C++ compiler (g++) and reinstall to get it.",
            "minidl.backend.cuda._cuda_real": "the 'cuda' device will use the CPU emulator.",
        }.get(name, "minidl will run on its NumPy kernels. Install a C compiler and reinstall to get them.")
        print(f"WARNING: {what} ({type(exc).__name__}: {exc}); {consequence}", file=sys.stderr)


def _cuda_build_module():
    """minidl/backend/cuda/_build.py, loaded by path: importing the minidl package would need numpy."""
    path = pathlib.Path(__file__).parent / "minidl" / "backend" / "cuda" / "_build.py"
    spec = importlib.util.spec_from_file_location("minidl_cuda_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


extra = {}
try:
    import cffi  # noqa: F401 - listed in [build-system] requires; absent only in odd set-ups
except ImportError:
    print("WARNING: cffi is not available at build time; minidl's C kernels will not be built", file=sys.stderr)
else:
    extra["cffi_modules"] = [
        "minidl/backend/_build_ckernels.py:ffibuilder",
        "minidl/backend/cuda/_build.py:ffibuilder",
    ]
    if _cuda_build_module().real_ffibuilder is not None:  # nvcc and the CUDA runtime are here
        extra["cffi_modules"].append("minidl/backend/cuda/_build.py:real_ffibuilder")

setup(cmdclass={"build_ext": optional_build_ext}, **extra)
