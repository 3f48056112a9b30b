"""cffi build script for minidl's C kernels (csrc/ -> minidl.backend._ckernels).

Used by setup.py (`cffi_modules=["minidl/backend/_build_ckernels.py:ffibuilder"]`) and
by hand during development:

    python minidl/backend/_build_ckernels.py          # builds minidl/backend/_ckernels*.so

`make_builder(...)` is also used by tests/test_sanitizers.py to build an ASan/UBSan
copy of the same sources into a temporary directory.

Out-of-line API mode: cffi writes a C extension module that calls the kernels
directly (no libffi), and its wrappers release the GIL around every call.

Every csrc/*.c file is compiled into the one module (a new kernel file needs no change
here); the headers are listed as dependencies, so setuptools rebuilds when one changes.
Only csrc/minidl_kernels.h is visible to Python (through ffi.cdef).
"""

import pathlib
import sys

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
MODULE_NAME = "minidl.backend._ckernels"

# No -march=native: SIMD code is selected per function with target attributes and
# picked at run time, so one build runs on any CPU of the architecture.
# -ffp-contract=off: no FMA contraction of a*b+c, so every SIMD path rounds exactly like
# the scalar one outside the GEMM and the sums (GCC's -std=c99 implies it; clang does not).
# -fno-math-errno / -fno-trapping-math let the vectorizer if-convert selects and use
# sqrt instructions; neither changes a result.
COMPILE_ARGS = ["-O3", "-std=c99", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wextra"]


def _header_declarations():
    """The public header with preprocessor lines removed, for ffi.cdef()."""
    lines = []
    for line in (CSRC / "minidl_kernels.h").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#define MDK_") and len(stripped.split()) >= 3:
            name, value = stripped.split()[1], stripped.split()[2]
            lines.append(f"#define {name} {value.strip('()')}")  # cffi accepts integer #defines
        elif stripped.startswith("#") or stripped in ('extern "C" {', "}"):
            continue
        else:
            lines.append(line)
    return "\n".join(lines)


def make_builder(module_name=MODULE_NAME, extra_compile_args=(), extra_link_args=(), absolute_paths=False):
    """An FFI builder for the kernels; setuptools needs relative source paths, ffi.compile() absolute ones."""
    ffi = FFI()
    ffi.cdef(_header_declarations())
    sources = sorted(str(p.relative_to(ROOT)) for p in CSRC.glob("*.c"))
    headers = sorted(str(p.relative_to(ROOT)) for p in CSRC.glob("*.h"))
    ffi.set_source(
        module_name,
        '#include "minidl_kernels.h"\n',
        sources=[str(ROOT / s) for s in sources] if absolute_paths else sources,
        depends=[str(ROOT / h) for h in headers] if absolute_paths else headers,
        include_dirs=[str(CSRC)],
        extra_compile_args=COMPILE_ARGS + list(extra_compile_args),
        extra_link_args=list(extra_link_args),
        libraries=["m", "pthread"] if sys.platform != "win32" else [],
    )
    return ffi


ffibuilder = make_builder()


def build_in_place():
    """Compile the module into minidl/backend/, under the name `pip install -e .` gives it.

    cffi's generated C uses only the stable ABI, and setuptools names the file
    _ckernels.abi3.so; we use the same name and delete other variants, so a stale
    build can never shadow a fresh one (Python prefers the cpython-311-... suffix).
    """
    tmp = ROOT / "build" / "cffi"
    built = pathlib.Path(make_builder(absolute_paths=True).compile(tmpdir=str(tmp), verbose=False))
    backend = ROOT / "minidl" / "backend"
    for old in backend.glob("_ckernels*.so"):
        old.unlink()
    target = backend / ("_ckernels.abi3.so" if sys.platform != "win32" else built.name)
    built.replace(target)
    return target


if __name__ == "__main__":
    print(f"built {build_in_place()}")
