"""Builds matmul.cu against minidl's CUDA emulator (a cffi module in a temporary directory).

    from matmul_build import load
    ffi, lib = load()     # compiles on the first call in a process (about half a minute)

The recipe is minidl's own emulated build (minidl/backend/cuda/_build.py): the C++ compiler
compiles the .cu file as C++ (through a one-line .cpp wrapper, because setuptools does not
know .cu) and links it with the emulator (csrc/cuda/emu/cuda_emu.cpp) and minidl's device-memory
runtime (csrc/cuda/runtime.cu: mdc_malloc, the copies, the checker's controls), which are
compiled once and cached. The module is
named after a hash of matmul.cu, so an edited kernel is rebuilt, never a stale one reused.
"""

import hashlib
import importlib.util
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from cffi import FFI

from minidl.backend.cuda import _build as minidl_cuda_build

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "matmul.cu"
CUDA_SRC = minidl_cuda_build.CUDA_SRC

CDEF = """
int mdc_malloc(void **ptr, int64_t bytes);
int mdc_free(void *ptr);
int mdc_memcpy_htod(void *dst, const void *src, int64_t bytes);
int mdc_memcpy_dtoh(void *dst, const void *src, int64_t bytes);
int mdc_memset(void *dst, int value, int64_t bytes);
int mdc_synchronize(void);
const char *mdc_error_string(int code);
int mdc_emu_set_check(int on);
long mdc_emu_take_reports(char *buf, long len);
int ex_sgemm_naive(int M, int N, int K, const float *A, const float *B, float *C);
int ex_sgemm_tiled(int M, int N, int K, const float *A, const float *B, float *C);
"""

_loaded = {}
# Built modules, named by a hash of their sources: reused by later runs and by pytest-xdist workers.
CACHE = pathlib.Path(tempfile.gettempdir()) / f"minidl-exercises-{os.getuid() if hasattr(os, 'getuid') else 0}"


def load():
    """(ffi, lib) of the module built from the current matmul.cu."""
    sources = [SOURCE, *(CUDA_SRC / "emu").glob("*.*"), CUDA_SRC / "runtime.cu", CUDA_SRC / "mdc_cuda.cuh"]
    sources.append(CUDA_SRC / "minidl_cuda.h")  # the emulator and runtime too: a newer minidl rebuilds
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    if digest not in _loaded:
        _loaded[digest] = _build(f"_ex07_matmul_{digest}")
    return _loaded[digest]


def _build(module_name):
    path = CACHE / (module_name + sysconfig.get_config_var("EXT_SUFFIX"))
    if not path.exists():
        _compile(module_name, path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module.ffi, module.lib


def _emulator_objects():
    """The emulator and minidl's device-memory runtime, compiled once per version of their sources.

    They are most of a build's time and never change with matmul.cu, so every build of a new
    matmul.cu (a student's edit, each wrong fixture in CI) links the same object files.
    """
    sources = [CUDA_SRC / "emu" / "cuda_emu.cpp", CUDA_SRC / "emu" / "units" / "runtime.cpp"]
    if not sources[0].exists():
        raise RuntimeError(f"build: the CUDA emulator's sources are not at {CUDA_SRC} (use a checkout of minidl)")
    inputs = [*sources, *(CUDA_SRC / "emu").glob("*.h"), CUDA_SRC / "runtime.cu", CUDA_SRC / "mdc_cuda.cuh"]
    inputs.append(CUDA_SRC / "minidl_cuda.h")
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in inputs)).hexdigest()[:16]
    folder = CACHE / f"ex07_emulator_{digest}"
    objects = [folder / (p.stem + ".o") for p in sources]
    if all(o.exists() for o in objects):
        return objects
    compiler = shlex.split(os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "c++")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="minidl_ex07_emu_"))
    folder.mkdir(parents=True, exist_ok=True)
    for source, target in zip(sources, objects):
        command = [*compiler, *minidl_cuda_build.EMULATED_ARGS, "-fPIC", "-I", str(CUDA_SRC), "-c", str(source)]
        subprocess.run([*command, "-o", str(tmp / target.name)], check=True, capture_output=True)
        os.replace(tmp / target.name, target)  # atomic: a concurrent build sees the old file or the new
    shutil.rmtree(tmp, ignore_errors=True)
    return objects


def _compile(module_name, path):
    objects = _emulator_objects()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="minidl_ex07_"))
    unit = tmp / "matmul_unit.cpp"
    unit.write_text(f'#include "{SOURCE}"\n')
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        module_name,
        '#include "minidl_cuda.h"\nextern "C" {\n' + "\n".join(CDEF.strip().splitlines()[-2:]) + "\n}\n",
        source_extension=".cpp",
        sources=[str(unit)],
        extra_objects=[str(o) for o in objects],
        include_dirs=[str(CUDA_SRC), str(HERE)],
        extra_compile_args=minidl_cuda_build.EMULATED_ARGS,
        libraries=["stdc++", "pthread", "m"],
    )
    built = ffi.compile(tmpdir=str(tmp), verbose=False)
    # one copy per source hash, shared by pytest-xdist workers and later runs; os.replace is atomic
    CACHE.mkdir(parents=True, exist_ok=True)
    os.replace(built, path)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    load()
    print("built matmul.cu against the CUDA emulator")
