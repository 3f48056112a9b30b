"""Every CUDA kernel compiles with nvcc for sm_80 and sm_90, without register spills.

`nvcc -Xptxas -v` reports registers, shared memory, stack and spills per kernel;
docs/cuda.md records them (regenerate with `python benchmarks/cuda_ptxas.py`). Skipped where
nvcc is absent (CI has only gcc/g++): the emulated build is tested there instead.
"""

import re

import pytest

from minidl.backend.cuda import _build

NVCC = _build.find_nvcc()
pytestmark = pytest.mark.skipif(
    NVCC is None, reason="nvcc is absent (not on PATH, CUDA_HOME or /usr/local/cuda): cannot compile for a GPU here"
)


def declared_kernels():
    """(file, kernel name) of every __global__ function in csrc/cuda/*.cu (templates by name)."""
    found = set()
    for src in _build.kernel_sources():
        for name in re.findall(r"__global__\s+void\s+(\w+)", src.read_text()):
            found.add((src.name, name))
    return found


def test_every_kernel_compiles_for_sm80_and_sm90_without_spills():
    usage = _build.ptxas_usage(archs=("80", "90"), nvcc=NVCC)
    for arch in ("80", "90"):
        compiled = {(f, k.split("<")[0]) for a, f, k in usage if a == arch}
        missing = declared_kernels() - compiled
        assert not missing, f"sm_{arch}: ptxas reported nothing for {sorted(missing)}"
    for (arch, _src, kernel), u in usage.items():
        assert u["spill_stores"] == 0 and u["spill_loads"] == 0, f"{kernel} spills registers on sm_{arch}: {u}"
        assert 0 < u["registers"] <= 255
        assert u["shared"] <= 48 * 1024, f"{kernel} needs more static shared memory than a block may have"
