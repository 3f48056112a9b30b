"""Build script: the package metadata lives in pyproject.toml; this file only adds the C kernels.

The cffi extension (minidl/backend/_ckernels) is optional: if it cannot be built
(no C compiler), installation still succeeds and minidl runs on the NumPy kernels.
`pip install -e .` builds it in place (setuptools runs build_ext with inplace=True for
editable installs), where minidl/backend/c/_ffi.py imports it.
During development: `python minidl/backend/_build_ckernels.py` rebuilds it in place.
"""

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
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._skip(exc)

    _warned = False

    def _skip(self, exc):
        if optional_build_ext._warned:  # a failed compile also fails the later copy step: say it once
            return
        optional_build_ext._warned = True
        print(
            f"WARNING: minidl's C kernels could not be built ({type(exc).__name__}: {exc}); "
            "minidl will run on its NumPy kernels. Install a C compiler and reinstall to get them.",
            file=sys.stderr,
        )


extra = {}
try:
    import cffi  # noqa: F401 - listed in [build-system] requires; absent only in odd set-ups
except ImportError:
    print("WARNING: cffi is not available at build time; minidl's C kernels will not be built", file=sys.stderr)
else:
    extra["cffi_modules"] = ["minidl/backend/_build_ckernels.py:ffibuilder"]

setup(cmdclass={"build_ext": optional_build_ext}, **extra)
