"""The MPI program the graded tests launch: `mpiexec -n N python ring_job.py PHASE SIZES...`.

Each rank fills its buffer from its own seed; rank 0 gathers every rank's input and result,
compares them with the float64 sum, and prints one line `RESULT {json}`. Any exception aborts
the whole job (so no rank is left waiting in a Sendrecv).
"""

import json
import os
import sys
import traceback

import numpy as np
from mpi4py import MPI

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the exercise folder

import ring  # noqa: E402


def inputs(rank, size):
    return np.random.default_rng(1000 + rank).standard_normal(size).astype(np.float32)


def run(phase, size, comm):
    n, r = comm.Get_size(), comm.Get_rank()
    x = inputs(r, size)
    exact = sum(inputs(k, size).astype(np.float64) for k in range(n))
    magnitude = sum(np.abs(inputs(k, size).astype(np.float64)) for k in range(n))
    buffer = x.copy()
    if phase == "reduce_scatter":
        owned = ring.ring_reduce_scatter(buffer, comm)
        start, end = ring.chunk_bounds(size, n)[owned]
        checked = slice(start, end)
        report = {"owned": int(owned), "expected_owned": (r + 1) % n}
    else:  # allgather: start from the state reduce-scatter leaves, other chunks poisoned with NaN
        owned = (r + 1) % n
        start, end = ring.chunk_bounds(size, n)[owned]
        buffer[:] = np.nan
        buffer[start:end] = exact[start:end].astype(np.float32)
        ring.ring_allgather(buffer, comm)
        checked = slice(0, size)
        report = {}
    # (N - 1) float32 additions in some order: within (N - 1)·2⁻²⁴·Σ|x| of the exact sum, plus
    # the one rounding of the exact sum to float32 given to allgather.
    bound = (n - 1) * 2.0**-24 * magnitude[checked] + 2.0**-24 * np.abs(exact[checked])
    error = np.abs(buffer[checked].astype(np.float64) - exact[checked])
    report["ok"] = bool(np.all(error <= bound))  # NaN fails too
    report["max_error"] = float(np.nanmax(error)) if error.size and not np.all(np.isnan(error)) else 0.0
    report["nan"] = int(np.isnan(buffer[checked]).sum())
    return report


def main():
    comm = MPI.COMM_WORLD
    phase, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
    try:
        reports = {size: run(phase, size, comm) for size in sizes}
    except Exception:
        traceback.print_exc()
        sys.stdout.flush()
        comm.Abort(3)
    everything = comm.gather(reports, root=0)
    if comm.Get_rank() == 0:
        print("RESULT " + json.dumps({"ranks": comm.Get_size(), "per_rank": everything}), flush=True)


if __name__ == "__main__":
    main()
