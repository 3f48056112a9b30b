"""The step benchmarks still run and still compare like with like (no timing is asserted).

Benchmarks are scripts nobody imports, so a change to the library can break them silently.
These run the ones that measure minidl beside PyTorch with the smallest settings, each in a
fresh interpreter (they set the kernel set and thread limits for the whole process), and
check what their tables say beyond time: that both frameworks computed the same loss, and
that the kernel split saw the C kernels.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import minidl

pytest.importorskip("torch", reason="the benchmarks compare with PyTorch (pip install -e '.[dev]')")
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
needs_c = pytest.mark.skipif("c" not in minidl.available_kernels(), reason="the C kernels are not built")


def run(script, *args):
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True, text=True, timeout=300, cwd=BENCHMARKS,
    )  # fmt: skip
    assert proc.returncode == 0, f"{script} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@needs_c
def test_bench_train_compares_the_same_step():
    out = run("bench_train.py", "--repeats", "1", "--min-time", "0.01", "--cases", "mlp", "--kernels", "c,c-fused")
    rows = [line for line in out.splitlines() if line.startswith("MLP")]
    assert [row.split()[4] for row in rows] == ["c", "c-fused"]
    for row in rows:
        ratio, loss_difference = (float(v) for v in row.split()[-2:])
        assert ratio > 0
        assert loss_difference < 1e-4, f"the first step's losses differ: {row}"


@needs_c
def test_bench_step_splits_each_phase():
    out = run("bench_step.py", "--rounds", "1", "--steps", "2")
    for phase in ("forward + loss", "backward", "optimizer", "whole step"):
        assert re.search(rf"^{re.escape(phase)}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
    # the fused model's backward runs its matrix products in C, and the split sees them
    fused = out.split("minidl fused:")[1]
    backward = next(line for line in fused.splitlines() if line.strip().startswith("backward"))
    c_microseconds = float(re.search(r"= C\s+(\d+)", backward).group(1))
    assert c_microseconds > 0 and "sgemm" in backward, backward


def test_bench_overhead_chains():
    out = run("bench_overhead.py", "--repeats", "1", "--min-time", "0.001", "--chains-only")
    for op in ("add", "mul", "tanh", "relu", "matmul", "reshape"):
        assert re.search(rf"^{op}\s+4x4 fwd\+bwd\s+[\d.]+\s+[\d.]+\s+[\d.]+x$", out, re.M), out
