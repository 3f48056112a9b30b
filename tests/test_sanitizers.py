"""The C kernels run clean under AddressSanitizer and UndefinedBehaviorSanitizer.

We build a second copy of the cffi module from the same csrc/ sources with
-fsanitize=address,undefined into a temporary directory, then run the kernel comparison
suite (tests/test_kernels_c.py, every kernel on every SIMD path) against that build in a
subprocess. Python itself is not instrumented, so the ASan runtime is LD_PRELOADed.
Any report makes the process exit non-zero (halt_on_error=1, -fno-sanitize-recover).

Two positive controls show the sanitizers are really watching: a deliberate
out-of-bounds kernel call must be reported by ASan, and a division by zero inside a
kernel (stride 0) by UBSan.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from minidl.backend import c as ck

ROOT = pathlib.Path(__file__).resolve().parents[1]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
SUITE = ["tests/test_kernels_c.py", "tests/test_kernels_conv.py"]  # every C kernel against its twin, every path


def _runtime(name):
    """Absolute path of a sanitizer runtime shipped with the compiler, or None."""
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        return None
    out = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    return os.path.realpath(out) if out and os.path.isabs(out) and os.path.exists(out) else None


LIBASAN = _runtime("libasan.so")

pytestmark = [
    pytest.mark.skipif(not ck.available, reason=f"C kernels not built: {ck.unavailable_reason}"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sanitizer runtime preloading is set up for Linux"),
    pytest.mark.skipif(LIBASAN is None, reason="the C compiler has no libasan.so (install libasan for gcc)"),
]


@pytest.fixture(scope="module")
def sanitized_module(tmp_path_factory):
    from minidl.backend._build_ckernels import make_builder

    tmp = tmp_path_factory.mktemp("asan_build")
    ffi = make_builder(
        "_ckernels_asan",
        # -O2 keeps the loops vectorized, so the SIMD code is what gets checked.
        extra_compile_args=SANITIZE + ["-O2", "-g"],
        extra_link_args=SANITIZE,
        absolute_paths=True,
    )
    return ffi.compile(tmpdir=str(tmp))


def _env(module_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MINIDL_SIMD", "MINIDL_KERNELS")}
    env.update(
        LD_PRELOAD=LIBASAN,
        # Python's own allocations are never freed at exit: leak checking would only report those.
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87",
        MINIDL_TEST_CKERNELS_MODULE=module_path,
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _run(args, module_path, timeout=600):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(module_path), capture_output=True, text=True, timeout=timeout
    )


def test_kernel_suite_is_clean_under_asan_and_ubsan(sanitized_module):
    # Everything in the comparison suite except the tests that start more processes or
    # time threads (they exercise the regular build, not this one).
    deselect = "not simd_env and not without_the_built and not best_is_the_default and not gil and not concurrent"
    result = _run(
        ["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *SUITE, "-k", deselect],
        sanitized_module,
    )
    report = result.stdout[-3000:] + result.stderr[-6000:]
    assert "AddressSanitizer" not in result.stderr and "runtime error" not in result.stderr, report
    assert result.returncode == 0, report
    assert " passed" in result.stdout and " failed" not in result.stdout, report


def _call_kernel(code, module_path):
    prelude = (
        "import importlib.machinery, importlib.util, numpy as np\n"
        f"path = {module_path!r}\n"
        "loader = importlib.machinery.ExtensionFileLoader('_ckernels_asan', path)\n"
        "spec = importlib.util.spec_from_file_location('_ckernels_asan', path, loader=loader)\n"
        "mod = importlib.util.module_from_spec(spec); loader.exec_module(mod)\n"
        "ffi, lib = mod.ffi, mod.lib\n"
    )
    return _run(["-c", prelude + code], module_path, timeout=120)


def test_positive_control_asan_reports_an_out_of_bounds_kernel_call(sanitized_module):
    code = (
        "x = np.ones(4096, np.float32); y = np.ones(4096, np.float32); out = np.empty(4096, np.float32)\n"
        "lib.mdk_binary(lib.MDK_BIN_ADD, ffi.from_buffer('float[]', x), ffi.from_buffer('float[]', y),\n"
        "               ffi.from_buffer('float[]', out), 4096 + 5)  # 5 floats past the end\n"
        "print('not detected')\n"
    )
    result = _call_kernel(code, sanitized_module)
    assert result.returncode == 86, result.stdout + result.stderr[-3000:]
    assert "heap-buffer-overflow" in result.stderr and "not detected" not in result.stdout


def test_positive_control_ubsan_reports_undefined_behaviour_in_a_kernel(sanitized_module):
    code = (
        "x = np.ones((1, 1, 4, 4), np.float32); cols = np.empty(64, np.float32)\n"
        "shape = dict(n=1, c=1, h=4, w=4, f=0, kh=2, kw=2, sh=0, sw=0, ph=0, pw=0, dh=1, dw=1, groups=1)\n"
        "g = ffi.new('mdk_conv_geometry *', shape)\n"
        "lib.mdk_im2col(g, ffi.from_buffer('float[]', x), ffi.from_buffer('float[]', cols))\n"
        "print('not detected')  # stride 0: an integer division by zero\n"
    )
    result = _call_kernel(code, sanitized_module)
    assert result.returncode == 87, result.stdout + result.stderr[-3000:]
    assert "division by zero" in result.stderr and "not detected" not in result.stdout
