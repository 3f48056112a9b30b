"""Registers and shared memory per CUDA kernel, from `nvcc -Xptxas -v`, as a markdown table.

    python benchmarks/cuda_ptxas.py            # sm_80 and sm_90 (pasted into docs/cuda.md)

Needs nvcc, not a GPU: this is what the compiler decided, not a measurement on hardware.
"""

import subprocess
import sys

from minidl.backend.cuda import _build


def main():
    nvcc = _build.find_nvcc()
    if nvcc is None:
        sys.exit("nvcc not found: install the CUDA toolkit (or set CUDA_HOME) to compile the kernels")
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    archs = _build.ARCHS
    usage = _build.ptxas_usage(archs=archs, nvcc=nvcc)
    print(f"nvcc: {version}; -O3; registers / static shared memory (bytes) / stack (bytes) per kernel\n")
    header = "| file | kernel | " + " | ".join(f"sm_{a} regs | sm_{a} smem | sm_{a} stack" for a in archs) + " |"
    print(header)
    print("|" + "---|" * (2 + 3 * len(archs)))
    kernels = sorted({(f, k) for _, f, k in usage})
    for f, k in kernels:
        cells = []
        for a in archs:
            u = usage.get((a, f, k))
            cells += [str(u["registers"]), str(u["shared"]), str(u["stack"])] if u else ["-", "-", "-"]
        print(f"| {f} | `{k}` | " + " | ".join(cells) + " |")
    spills = [(a, f, k) for (a, f, k), u in usage.items() if u["spill_stores"] or u["spill_loads"]]
    print(f"\nregister spills: {spills or 'none'}")


if __name__ == "__main__":
    main()
