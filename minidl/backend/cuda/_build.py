"""cffi build script for minidl's CUDA kernels: one C ABI (csrc/cuda/minidl_cuda.h), two builds.

    python minidl/backend/cuda/_build.py             # the emulated build (needs g++), and the real one if nvcc is found
    python minidl/backend/cuda/_build.py --emulated  # only the emulated build
    python minidl/backend/cuda/_build.py --real      # only the real build (needs nvcc)
    python minidl/backend/cuda/_build.py --debug     # emulated, -O0 -g: for stepping through kernels in gdb

* emulated -> minidl/backend/cuda/_cuda_emulated*.so: the system C++ compiler builds every .cu file
  (through the one-line .cpp wrappers in csrc/cuda/emu/units/) together with the emulator
  (csrc/cuda/emu/), which runs CUDA's execution model on the CPU.
* real -> minidl/backend/cuda/_cuda_real*.so: nvcc compiles every .cu file to machine code for
  each architecture in ARCHS (plus PTX for the newest, which the driver can compile for later
  GPUs), and the C compiler links them with cffi's wrapper and the static CUDA runtime.

setup.py registers `emulated_builder` (cffi_modules) and calls `real_builder` when nvcc is on
the PATH; both are optional and never fail an install. Both are cffi out-of-line API-mode
modules with the same `lib` functions, so Python cannot tell them apart except by asking
`lib.mdc_build()`.
"""

import os
import pathlib
import shutil
import subprocess
import sys

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parents[3]
CUDA_SRC = ROOT / "csrc" / "cuda"
EMULATED_MODULE = "minidl.backend.cuda._cuda_emulated"
REAL_MODULE = "minidl.backend.cuda._cuda_real"

# Compute capabilities compiled into the real build. CUDA 13 dropped everything before sm_75;
# sm_80 (A100) and sm_90 (H100) are the data-centre GPUs a course is likely to get.
ARCHS = ("80", "90")

# -ffp-contract=off: no fused multiply-add contraction, so the emulator rounds like NumPy.
EMULATED_ARGS = ["-std=c++17", "-O2", "-ffp-contract=off", "-fno-strict-aliasing", "-Wall", "-Wextra"]
DEBUG_ARGS = ["-std=c++17", "-O0", "-g3", "-ffp-contract=off", "-fno-strict-aliasing"]
NVCC_ARGS = ["-O3", "-std=c++17", "-Xcompiler", "-fPIC"]


def header_declarations():
    """minidl_cuda.h without preprocessor lines, for ffi.cdef() (integer #defines are kept)."""
    lines = []
    for line in (CUDA_SRC / "minidl_cuda.h").read_text().splitlines():
        stripped = line.strip()
        parts = stripped.split()
        if stripped.startswith("#define MDC_") and len(parts) >= 3:
            lines.append(f"#define {parts[1]} {parts[2].strip('()')}")
        elif stripped.startswith("#") or stripped in ('extern "C" {', "}"):
            continue
        else:
            lines.append(line)
    return "\n".join(lines)


def kernel_sources():
    """The .cu files, one per topic."""
    return sorted(CUDA_SRC.glob("*.cu"))


def _emulated_sources():
    return [CUDA_SRC / "emu" / "cuda_emu.cpp"] + [
        CUDA_SRC / "emu" / "units" / (p.stem + ".cpp") for p in kernel_sources()
    ]


def _rel(paths, absolute):
    return [str(p) if absolute else str(p.relative_to(ROOT)) for p in paths]


def emulated_builder(absolute_paths=False, debug=False, module_name=EMULATED_MODULE):
    """FFI builder for the emulated build (setuptools wants relative paths, ffi.compile absolute ones)."""
    ffi = FFI()
    ffi.cdef(header_declarations())
    ffi.set_source(
        module_name,
        '#include "minidl_cuda.h"\n',
        source_extension=".cpp",
        sources=_rel(_emulated_sources(), absolute_paths),
        include_dirs=[str(CUDA_SRC) if absolute_paths else str(CUDA_SRC.relative_to(ROOT))],
        extra_compile_args=DEBUG_ARGS if debug else EMULATED_ARGS,
        libraries=["stdc++", "pthread", "m"],
    )
    return ffi


def find_nvcc():
    """Path of nvcc (PATH, then $CUDA_HOME/bin, then /usr/local/cuda/bin), or None."""
    found = shutil.which("nvcc")
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and (pathlib.Path(home) / "bin" / "nvcc").exists():
            return str(pathlib.Path(home) / "bin" / "nvcc")
    return None


def cuda_home(nvcc):
    """The toolkit folder holding the static CUDA runtime (nvcc may be a wrapper script elsewhere)."""
    candidates = [pathlib.Path(nvcc).resolve().parents[1]]
    candidates += [pathlib.Path(p) for p in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")) if p]
    candidates.append(pathlib.Path("/usr/local/cuda"))
    for home in candidates:
        if any((home / lib / "libcudart_static.a").exists() for lib in ("lib64", "lib")):
            return home
    raise RuntimeError(f"libcudart_static.a not found under {', '.join(map(str, candidates))} (set CUDA_HOME)")


def arch_flags(archs=ARCHS):
    flags = []
    for a in archs:
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    flags += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]  # PTX for newer GPUs
    return flags


def compile_cuda_objects(out_dir, nvcc=None, archs=ARCHS, verbose=False):
    """nvcc -c every .cu file into out_dir; returns the object paths."""
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise RuntimeError("nvcc not found (PATH, CUDA_HOME, /usr/local/cuda)")
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    compiled_for = " ".join(f"sm_{a}" for a in archs) + f" +PTX compute_{archs[-1]}"
    objects = []
    for src in kernel_sources():
        obj = out_dir / (src.stem + ".o")
        cmd = [nvcc, *NVCC_ARGS, *arch_flags(archs), f'-DMDC_COMPILED_FOR="{compiled_for}"', "-I", str(CUDA_SRC)]
        cmd += ["-c", str(src), "-o", str(obj)]
        if verbose:
            print(" ".join(cmd))
        subprocess.run(cmd, check=True, capture_output=not verbose)
        objects.append(obj)
    return objects


def ptxas_usage(archs=ARCHS, nvcc=None, sources=None, workers=2):
    """Compile every kernel for each sm_<arch> with `-Xptxas -v`; {(arch, file, kernel): usage dict}.

    usage: registers, shared (static __shared__ bytes), stack, spill_stores, spill_loads.
    Only device code is compiled (-fatbin, all archs in one nvcc call per file).
    """
    import concurrent.futures
    import re
    import tempfile

    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise RuntimeError("nvcc not found")
    sources = list(sources or kernel_sources())

    def one(src):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [nvcc, "-fatbin", "-O3", "-std=c++17", "-Xptxas", "-v", "-I", str(CUDA_SRC)]
            for arch in archs:
                cmd += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
            cmd += [str(src), "-o", str(pathlib.Path(tmp) / "out.fatbin")]
            done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"nvcc failed on {src.name}:\n{done.stderr}")
        return src.name, done.stderr

    usage = {}
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for name, log in pool.map(one, sources):
            kernel = None
            for line in log.splitlines():
                entry = re.search(r"Compiling entry function '(\w+)' for 'sm_(\d+)'", line)
                if entry:
                    kernel = (entry.group(2), name, _demangle(entry.group(1)))
                    usage[kernel] = {"registers": 0, "shared": 0, "stack": 0, "spill_stores": 0, "spill_loads": 0}
                    continue
                if kernel is None:
                    continue
                u = usage[kernel]
                frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
                if frame:
                    u["stack"], u["spill_stores"], u["spill_loads"] = map(int, frame.groups())
                used = re.search(r"Used (\d+) registers", line)
                if used:
                    u["registers"] = int(used.group(1))
                    smem = re.search(r"(\d+) bytes smem", line)
                    u["shared"] = int(smem.group(1)) if smem else 0
    return usage


def _demangle(symbol):
    """'_Z11sgemm_naiveiii...' -> 'sgemm_naive' (c++filt when available, else the raw symbol)."""
    try:
        out = subprocess.run(["c++filt", symbol], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return symbol
    return out.split("(")[0].replace("void ", "")


def real_builder(objects, nvcc=None, module_name=REAL_MODULE):
    """FFI builder for the real build, linking the nvcc objects with the static CUDA runtime."""
    home = cuda_home(nvcc or find_nvcc())
    ffi = FFI()
    ffi.cdef(header_declarations())
    ffi.set_source(
        module_name,
        '#include "minidl_cuda.h"\n',
        include_dirs=[str(CUDA_SRC)],
        extra_objects=[str(o) for o in objects],
        library_dirs=[str(home / "lib64"), str(home / "lib")],
        libraries=["cudart_static", "stdc++", "dl", "rt", "pthread", "m"],
    )
    return ffi


def _install(built, stem):
    """Move a freshly built module next to this file under the name `pip install -e .` gives it."""
    target_dir = ROOT / "minidl" / "backend" / "cuda"
    for old in target_dir.glob(f"{stem}*.so"):
        old.unlink()
    target = target_dir / (f"{stem}.abi3.so" if sys.platform != "win32" else pathlib.Path(built).name)
    pathlib.Path(built).replace(target)
    return target


def build_emulated(debug=False):
    tmp = ROOT / "build" / ("cuda_emulated_debug" if debug else "cuda_emulated")
    built = emulated_builder(absolute_paths=True, debug=debug).compile(tmpdir=str(tmp), verbose=False)
    return _install(built, "_cuda_emulated")


def build_real(verbose=False):
    nvcc = find_nvcc()
    if nvcc is None:
        raise RuntimeError("nvcc not found: the real CUDA build needs the CUDA toolkit")
    tmp = ROOT / "build" / "cuda_real"
    objects = compile_cuda_objects(tmp / "obj", nvcc, verbose=verbose)
    built = real_builder(objects, nvcc).compile(tmpdir=str(tmp), verbose=False)
    return _install(built, "_cuda_real")


# setup.py's cffi_modules entries: the emulated build (only needs a C++ compiler) and, where
# nvcc and the static CUDA runtime are found, the real one. setup.py runs nvcc into
# REAL_OBJECT_DIR (compile_cuda_objects) before it links `real_ffibuilder`.
ffibuilder = emulated_builder()
REAL_OBJECT_DIR = pathlib.Path("build") / "cuda_real" / "obj"


def _real_ffibuilder_or_none():
    nvcc = find_nvcc()
    if nvcc is None:
        return None
    try:
        return real_builder([REAL_OBJECT_DIR / (p.stem + ".o") for p in kernel_sources()], nvcc)
    except RuntimeError:  # nvcc without the static runtime: no real build
        return None


real_ffibuilder = _real_ffibuilder_or_none()


def main(argv):
    debug = "--debug" in argv
    want_emulated = debug or "--emulated" in argv or "--real" not in argv
    want_real = "--real" in argv or ("--emulated" not in argv and not debug)
    if want_emulated:
        print(f"built {build_emulated(debug=debug)}")
    if want_real:
        if find_nvcc() is None:
            if "--real" in argv:
                raise SystemExit("nvcc not found: cannot build the real CUDA library")
            print("nvcc not found: skipping the real CUDA build (the emulated one is enough without a GPU)")
        else:
            print(f"built {build_real(verbose='-v' in argv)}")


if __name__ == "__main__":
    main(sys.argv[1:])
