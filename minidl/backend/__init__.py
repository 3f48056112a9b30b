"""The backend seam: which kernel set computes the array primitives for each device.

Ops never call NumPy directly for work that a faster backend could do; they call
`self.kernels.<primitive>(...)`, the kernel set active for their tensors' device. What a
kernel set must and may provide is the kernel contract (contract.py); the "numpy" set
(numpy_kernels.py plus composed.py) defines every primitive, and the "c" set (SIMD C via
cffi) replaces the ones that pay. The "cpu" device starts on the C set when it is built
and can be switched, globally, with `set_kernels("numpy")` or the MINIDL_KERNELS
environment variable. This layer knows nothing of Tensor.

    where                    what
    contract.py              the required core and the optional extras, KernelSet
    numpy_kernels.py         the core in NumPy (the reference)
    composed.py              every extra, built from a kernel set's core
    c/, csrc/                the C SIMD kernel set (c/ by family; c_kernels.py an alias)
    cuda/                    the "cuda" device: DeviceArray, the CUDA build (real or emulated), its kernel set
    memory.py                malloc tuning for the training loop's big temporaries
"""

import os
import warnings

from minidl.backend import memory, numpy_kernels
from minidl.backend.contract import KernelContractError, KernelSet
from minidl.backend.device import CPU, device

memory.tune_malloc()  # keep freed activations for reuse (see memory.py; MINIDL_MALLOC_TUNING=0 to skip)

# Kernels keep floating point warnings to themselves: exp overflowing to inf is a result for
# the op above to report (detect_anomaly names the op and the line that made it; the trainer
# flags a NaN loss with advice), not a NumPy RuntimeWarning pointing into a kernel file.
# NumPy attributes the warning to the Python line that called the ufunc: a kernel file, or an
# op's forward where a kernel is the ufunc itself. A filter on those modules costs nothing per
# call (np.errstate around each kernel would cost ~2 µs).
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"minidl\.(backend|ops)(\.|$)")

KERNEL_SET_NAMES = ("numpy", "c")
CUDA = device("cuda:0")  # "cuda" means the first (and only) GPU, as in PyTorch
_KERNEL_SETS = {"numpy": KernelSet("numpy", numpy_kernels)}
# The reference: NumPy's core with every extra composed from it (what other sets are tested against).
reference_kernels = _KERNEL_SETS["numpy"]
# device -> kernel set; ops look kernels up here on every call, so switching is instant.
# A device with no entry here is not available (minidl.cuda.is_available() asks about "cuda").
active_kernels = {CPU: reference_kernels}


def _load_c_kernels():
    """Import the C kernel set if it has been built; None otherwise.

    A MINIDL_SIMD value the CPU cannot run is not swallowed here: c_kernels raises a
    RuntimeError that names the missing CPU features.
    """
    module = _c_kernels_module()
    return module if module is not None and module.available else None


def _c_kernels_module():
    try:
        from minidl.backend import c_kernels
    except ImportError:
        return None
    return c_kernels


def available_kernels():
    """Names of the kernel sets that can run on this machine."""
    names = ["numpy"]
    if _load_c_kernels() is not None:
        names.append("c")
    return names


def set_kernels(name):
    """Choose the kernel set for the cpu device: "numpy" (readable reference) or "c" (fast)."""
    if name not in KERNEL_SET_NAMES:
        raise ValueError(f"set_kernels: unknown kernel set {name!r}; expected 'numpy' or 'c'")
    if name == "c" and "c" not in _KERNEL_SETS:
        module = _load_c_kernels()
        if module is None:
            raise RuntimeError(
                "set_kernels: the C kernels are not built on this install "
                "(reinstall with a C compiler: pip install -e .); staying on 'numpy'"
            )
        _KERNEL_SETS["c"] = KernelSet("c", module)
    active_kernels[CPU] = _KERNEL_SETS[name]


def enable_cuda():
    """Register the "cuda" kernel set (loading the CUDA build on first use); returns None or why it cannot run.

    Nothing CUDA is loaded by `import minidl`: the first tensor made on, or moved to, "cuda" (or
    minidl.cuda.is_available()) calls this. With no GPU, the emulator runs the same kernels and
    says so once (a CudaEmulatorWarning naming the reason).
    """
    if CUDA in active_kernels:
        return None
    from minidl.backend.cuda import kernel_set, runtime

    reason = runtime.unavailable_reason()
    if reason is not None:
        return reason
    kernels = KernelSet("cuda", kernel_set)
    active_kernels[CUDA] = active_kernels[device("cuda")] = kernels
    return None


def get_kernels(where=CPU):
    """The kernel set currently computing for the device `where` ("cpu" or a minidl.device)."""
    try:
        return active_kernels[where]
    except KeyError:
        if device(where).type == "cuda" and enable_cuda() is None:
            return active_kernels[CUDA]
        raise ValueError(
            f"device {str(where)!r} is not available; available devices: {sorted(map(str, active_kernels))}"
        ) from None


def kernels_name(where=CPU):
    return get_kernels(where).name


def kernels_for_array(array):
    """The kernel set for the device an array lives on: a NumPy array is on the cpu, a DeviceArray on cuda.

    For code below the tensors (optimizer update rules, parameter servers) that holds raw arrays.
    """
    where = getattr(array, "device", None)
    if isinstance(where, str) and where != "cpu":
        return get_kernels(device(where))
    return active_kernels[CPU]


def _initial_choice():
    """MINIDL_KERNELS picks the start-up kernel set; by default the C set when it is built."""
    wanted = os.environ.get("MINIDL_KERNELS", "").strip().lower()
    if wanted in ("", "auto"):
        if _load_c_kernels() is not None:
            set_kernels("c")
        return
    if wanted not in KERNEL_SET_NAMES:
        raise ValueError(
            f"MINIDL_KERNELS={wanted}: unknown kernel set; valid values are auto, {', '.join(KERNEL_SET_NAMES)}"
        )
    try:
        set_kernels(wanted)
    except RuntimeError as exc:
        raise RuntimeError(f"MINIDL_KERNELS={wanted}: {exc}") from None


_initial_choice()


_warned_no_c = []


def describe():
    """What computes minidl's arrays on this machine (for `minidl info`).

    If the C kernels are not built, says why (once, as a warning too): minidl then
    runs on the NumPy kernels, correct but slower.
    """
    c_module = _load_c_kernels()
    info = {
        "active_kernels": active_kernels[CPU].name,
        "available_kernels": available_kernels(),
        "simd_path": None,
        "simd_paths_built": [],
        "simd_paths_supported": [],
        "c_kernels": "built",
        "cuda_available": False,
        "malloc_tuned": memory.tuned,
    }
    if c_module is not None:
        info["simd_path"] = c_module.simd_path()
        info["simd_paths_built"] = c_module.simd_paths_built()
        info["simd_paths_supported"] = c_module.simd_paths_supported()
    else:
        module = _c_kernels_module()
        reason = module.unavailable_reason if module is not None else "minidl.backend.c_kernels is missing"
        info["c_kernels"] = f"not available: {reason}; running on the NumPy kernels"
        if not _warned_no_c:
            import warnings

            _warned_no_c.append(True)
            warnings.warn(
                f"minidl: the C kernels are not available ({reason}); using the NumPy kernels. "
                "Reinstall with a C compiler (pip install -e .) to build them.",
                RuntimeWarning,
                stacklevel=2,
            )
    return info
