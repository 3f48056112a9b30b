"""Which CUDA build runs ("real" on a GPU, "emulated" on the CPU, or none), and talking to it.

MINIDL_CUDA chooses:
    auto (default)  the real build if it is compiled and a GPU answers, else the emulator
                    (saying so once, with the reason);
    real            the real build, or an error saying why it cannot run;
    emulate         the emulator, even on a GPU machine (for printf, gdb and the checker);
    off             no CUDA at all: asking for it is an error.
MINIDL_CUDA_CHECK=1 turns on the emulator's memory checker (out-of-bounds accesses, races on
shared memory); MINIDL_CUDA_EMU_THREADS=n runs blocks on n OS threads (default 1).

This layer knows nothing of Tensor; `minidl.backend.cuda.kernels` builds on it.
"""

import os
import warnings

_state = {}  # "lib", "ffi", "build", "reason"


class CudaUnavailable(RuntimeError):
    """No CUDA build can run here (not compiled, no GPU for MINIDL_CUDA=real, or MINIDL_CUDA=off)."""


class CudaError(RuntimeError):
    """A CUDA call or kernel launch failed; the message names the kernel and the error."""


class CudaCheckError(CudaError):
    """The emulator's checker (MINIDL_CUDA_CHECK=1) found bad memory accesses or races in a kernel."""


class CudaEmulatorWarning(UserWarning):
    """'cuda' was asked for and runs on the emulator (no GPU, or the real build is missing)."""


def _import_real():
    try:
        from minidl.backend.cuda import _cuda_real
    except ImportError as exc:
        return None, f"the real CUDA build is not compiled ({exc})"
    count = _cuda_real.ffi.new("int *")
    rc = _cuda_real.lib.mdc_device_count(count)
    if rc != 0:
        why = _cuda_real.ffi.string(_cuda_real.lib.mdc_error_string(rc)).decode()
        return None, f"the real CUDA build cannot reach a GPU: {why}"
    if count[0] == 0:
        return None, "the real CUDA build found no GPU"
    return _cuda_real, None


def _import_emulated():
    try:
        from minidl.backend.cuda import _cuda_emulated
    except ImportError as exc:
        return None, (
            f"the emulated CUDA build is not compiled ({exc}); build it with a C++ compiler: "
            "python minidl/backend/cuda/_build.py --emulated (or reinstall: pip install -e .)"
        )
    return _cuda_emulated, None


def _choose():
    wanted = os.environ.get("MINIDL_CUDA", "auto").strip().lower() or "auto"
    if wanted not in ("auto", "real", "emulate", "emulated", "off"):
        raise CudaUnavailable(f"MINIDL_CUDA={wanted!r}: expected one of auto, real, emulate, off")
    if wanted == "off":
        raise CudaUnavailable("CUDA is turned off (MINIDL_CUDA=off)")
    if wanted in ("auto", "real"):
        module, why_not_real = _import_real()
        if module is not None:
            return module, "real", None
        if wanted == "real":
            raise CudaUnavailable(f"MINIDL_CUDA=real: {why_not_real}")
    else:
        why_not_real = "MINIDL_CUDA=emulate"
    module, why_not_emulated = _import_emulated()
    if module is None:
        raise CudaUnavailable(f"no CUDA build can run: {why_not_real}; {why_not_emulated}")
    return module, "emulated", why_not_real


def load():
    """The loaded cffi module (lib, ffi) of the CUDA build in use; chosen once, on first use."""
    if "module" not in _state:
        module, build, reason = _choose()
        _state.update(module=module, lib=module.lib, ffi=module.ffi, build=build, reason=reason)
        if build == "emulated":
            lib = module.lib
            lib.mdc_emu_set_check(1 if os.environ.get("MINIDL_CUDA_CHECK", "") not in ("", "0") else 0)
            threads = os.environ.get("MINIDL_CUDA_EMU_THREADS", "").strip()
            if threads:
                set_emulator_threads(int(threads))
            if reason and not reason.startswith("MINIDL_CUDA=emulate"):
                warnings.warn(
                    f"minidl: 'cuda' runs on the CUDA emulator (slow, exact; printf and gdb work in kernels) "
                    f"because {reason}. Set MINIDL_CUDA=emulate to silence this, or MINIDL_CUDA=off.",
                    CudaEmulatorWarning,
                    stacklevel=3,
                )
    return _state["module"]


def lib():
    return load().lib


def ffi():
    return load().ffi


def build():
    """'real' or 'emulated'."""
    load()
    return _state["build"]


def is_available():
    """True if some CUDA build (real or emulated) can run here."""
    try:
        load()
    except CudaUnavailable:
        return False
    return True


def unavailable_reason():
    try:
        load()
    except CudaUnavailable as exc:
        return str(exc)
    return None


def error_string(code):
    return ffi().string(lib().mdc_error_string(code)).decode()


def take_reports():
    """The emulator checker's reports since the last call (a list of lines; [] on the real build)."""
    if build() != "emulated":
        return []
    buf = ffi().new("char[]", 1 << 16)
    count = lib().mdc_emu_take_reports(buf, len(buf))
    return ffi().string(buf).decode().splitlines() if count else []


def check(rc, what):
    """Raise CudaError (CudaCheckError for checker findings) if a call returned an error code."""
    reports = take_reports() if rc != 0 or checking() else []
    if rc == 0 and not reports:
        return
    details = "\n  ".join(reports)
    if reports:
        raise CudaCheckError(f"{what}: the CUDA emulator's checker reports:\n  {details}")
    raise CudaError(f"{what}: {error_string(rc)} (CUDA error {rc})")


_checking = []


def checking():
    """Whether the emulator's memory checker is on."""
    return bool(_checking) and _checking[-1]


def set_checking(on):
    """Turn the emulator's checker (MINIDL_CUDA_CHECK) on or off; an error on the real build."""
    if build() != "emulated":
        raise CudaError("set_checking: the checker belongs to the emulator; on a GPU use compute-sanitizer")
    lib().mdc_emu_set_check(1 if on else 0)
    _checking[:] = [bool(on)]


def set_emulator_threads(n):
    """Run the emulator's blocks on n OS threads (1, the default, is deterministic and gdb-friendly)."""
    if build() != "emulated":
        raise CudaError("set_emulator_threads: only the emulated build has this setting")
    if lib().mdc_emu_set_threads(int(n)) != 0:
        raise ValueError(f"set_emulator_threads: expected n >= 1, got {n}")


def synchronize():
    """Wait until every launched kernel has finished (kernel launches are asynchronous on a GPU)."""
    check(lib().mdc_synchronize(), "synchronize")


def device_name():
    buf = ffi().new("char[]", 256)
    check(lib().mdc_device_name(0, buf, len(buf)), "device_name")
    return ffi().string(buf).decode()


def describe():
    """What `minidl info` says about CUDA: the build in use, the device and what was compiled."""
    try:
        load()
    except CudaUnavailable as exc:
        return {"cuda": f"not available: {exc}"}
    info = {
        "cuda": build(),
        "cuda_device": device_name(),
        "cuda_compiled_for": ffi().string(lib().mdc_compiled_for()).decode(),
    }
    if build() == "real":
        major, minor = ffi().new("int *"), ffi().new("int *")
        if lib().mdc_device_capability(0, major, minor) == 0:
            info["cuda_device"] += f" (sm_{major[0]}{minor[0]})"
    elif _state.get("reason"):
        info["cuda_why_emulated"] = _state["reason"]
    return info


def _init_checking_flag():
    _checking[:] = [os.environ.get("MINIDL_CUDA_CHECK", "") not in ("", "0")]


_init_checking_flag()
