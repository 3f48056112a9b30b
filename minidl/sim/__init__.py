"""minidl.sim: a simulated cluster - parameter-server experiments with hundreds of workers in one process.

Students cannot rent 200 machines; this runs the lectures' distributed experiments anyway,
with real gradients of a real minidl model and simulated time:

    from minidl.sim import simulate
    result = simulate(mode="backup", workers=32, backup=4, compute="straggler", max_time=20, updates=None)
    print(result.describe())

    minidl simulate sync-vs-async --workers 100 --backup 4      # a named experiment, with its plot

What is where:
    config.py       SimConfig: every setting of a run, checked
    cluster.py      the discrete-event simulator: workers, server shards (ServerRules, the MPI
                    server's own rules class), failures, lazy stacked gradients
    timing.py       compute-time models (fixed, lognormal, heavy-tailed stragglers, measured)
                    and the order statistics that predict a synchronous step
    network.py      latency + bytes / bandwidth, a shared server link that saturates
    workload.py     the real model and data: shards, per-worker gradients (stacked), evaluation
    results.py      SimResult: histories, staleness, idle time, bytes; CSV, JSON, plots
    experiments.py  the named experiments of `minidl simulate`

No mpi4py here (tests check it), and matplotlib and tqdm only when plotting or showing progress.
See docs/simulator.md.
"""

from minidl.sim.cluster import Simulation, simulate
from minidl.sim.config import MODES, SimConfig
from minidl.sim.experiments import EXPERIMENTS, run_experiment
from minidl.sim.network import Network
from minidl.sim.results import SimResult, plot_runs
from minidl.sim.timing import (
    Fixed,
    LogNormal,
    Straggler,
    expected_max,
    expected_order_statistic,
    parse_compute,
)

__all__ = [
    "simulate",
    "Simulation",
    "SimConfig",
    "SimResult",
    "MODES",
    "Network",
    "Fixed",
    "LogNormal",
    "Straggler",
    "parse_compute",
    "expected_max",
    "expected_order_statistic",
    "EXPERIMENTS",
    "run_experiment",
    "plot_runs",
]
