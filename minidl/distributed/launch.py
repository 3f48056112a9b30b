"""Starting a job on N ranks: find the launcher (mpiexec next to this Python, or srun under Slurm).

    minidl launch -n 4 -- train --distributed sync

runs `mpiexec -n 4 <this python> -m minidl train --distributed sync`. The `mpich` wheel
from PyPI puts an `mpiexec` in the virtual environment's bin/ (no system MPI needed); we
look there first so the MPI library of mpi4py and the launcher always match. Inside a
Slurm allocation (SLURM_JOB_ID set) `srun` starts the ranks on the allocated nodes instead.
Each rank gets one BLAS thread: ranks, not threads, share the cores. No MPI is imported here.

When the ranks fit on this machine's cores, mpiexec pins each rank to a core of its own
(`-bind-to core`). Synchronous data parallelism waits for the slowest rank at every step, so
two ranks the scheduler happens to put on one core (it does, on a machine where other
processes come and go) halve the speed of the whole job. With a rank per core that cannot
happen; ranks that wait spin on their own core. With more ranks than cores nothing is pinned
and waiting ranks sleep between tests instead (minidl.distributed.comm).
"""

import os
import shutil
import sys

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class LaunchError(RuntimeError):
    """No way to start MPI ranks was found."""


def find_mpiexec(python=None):
    """The mpiexec beside `python` (default: this interpreter) or in this environment's bin/, else on PATH."""
    python = python or sys.executable
    for folder in (os.path.dirname(python), os.path.join(sys.prefix, "bin")):
        beside = os.path.join(folder, "mpiexec")
        if os.path.isfile(beside) and os.access(beside, os.X_OK):
            return beside
    found = shutil.which("mpiexec")
    if found is None:
        raise LaunchError(
            "launch: no mpiexec found next to this Python or on PATH; install one with `pip install mpich` "
            "(the wheel brings mpiexec into the virtual environment)"
        )
    return found


def mpiexec_prefix(num_ranks, python=None):
    """`mpiexec -n N -launcher fork [-bind-to core]`: N ranks on this machine, pinned if they fit."""
    # -launcher fork: start every rank on this machine without ssh (mpich's hydra launcher).
    prefix = [find_mpiexec(python), "-n", str(num_ranks), "-launcher", "fork"]
    if num_ranks <= len(os.sched_getaffinity(0)):
        prefix += ["-bind-to", "core"]
    return prefix


def under_slurm(environ=None):
    environ = os.environ if environ is None else environ
    return bool(environ.get("SLURM_JOB_ID")) and shutil.which("srun") is not None


def launch_command(num_ranks, program, launcher=None, python=None, environ=None):
    """The command line that starts `program` (a list of arguments to `python -m minidl`) on num_ranks ranks.

    launcher: 'mpiexec', 'srun' or None (srun inside a Slurm allocation, mpiexec otherwise).
    """
    if num_ranks < 1:
        raise LaunchError(f"launch: the number of ranks must be >= 1, got {num_ranks}")
    python = python or sys.executable
    if launcher is None:
        launcher = "srun" if under_slurm(environ) else "mpiexec"
    if launcher == "srun":
        prefix = ["srun", "-n", str(num_ranks), "--mpi=pmi2"]
    elif launcher == "mpiexec":
        prefix = mpiexec_prefix(num_ranks, python)
    else:
        raise LaunchError(f"launch: unknown launcher {launcher!r}; expected 'mpiexec' or 'srun'")
    return prefix + [python, "-m", "minidl", *program]


def rank_environment(environ=None):
    """The environment for the ranks: one BLAS/OpenMP thread each unless the user chose otherwise."""
    env = dict(os.environ if environ is None else environ)
    for name in THREAD_VARIABLES:
        env.setdefault(name, "1")
    return env


def launch(num_ranks, program, launcher=None):
    """Run the job and return its exit status (the launcher's)."""
    import subprocess

    command = launch_command(num_ranks, program, launcher)
    return subprocess.run(command, env=rank_environment()).returncode
