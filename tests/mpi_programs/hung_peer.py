"""Blocking waits (Communicator.wait_blocking) with a peer that never comes, on 2 ranks.

    mpiexec -n 2 python hung_peer.py ring|ring-single-threaded|send

Rank 1 never takes part: it sleeps until the job is ended.
- ring: rank 0 runs a ring allreduce, whose first step blocks on a receive from rank 1. The
  watchdog cancels it after the timeout and rank 0 raises DistributedTimeout naming rank 1;
  the program prints "CAUGHT <type>: <message>" and ends the job.
- ring-single-threaded: the same with MPI started without thread support (no watchdog
  possible), so the ring's waits poll instead; same error.
- send: rank 0 blocks on a 4 MB send to rank 1, which MPI cannot cancel: the watchdog prints
  the timeout message and aborts the job (MPI_Abort), so nothing after the wait runs.
"""

import sys
import time

import numpy as np

from minidl.distributed.collectives import ring_allreduce
from minidl.distributed.comm import world

TIMEOUT = 2.0
mode = sys.argv[1]
if mode == "ring-single-threaded":
    import mpi4py

    mpi4py.rc.thread_level = "single"  # before MPI starts (world() starts it)
comm = world(timeout=TIMEOUT)
print(f"rank {comm.rank}: waits block inside MPI: {comm._multithreaded}", flush=True)
if comm.rank == 1:
    time.sleep(120)  # never takes part; ended by rank 0's abort (or the test's job timeout)
    sys.exit(0)

try:
    if mode.startswith("ring"):
        ring_allreduce(np.ones(1 << 18, np.float32), comm)
    else:
        send = comm.isend(np.ones(1 << 20, np.float32), 1, tag=5)  # large: MPI waits for the receiver
        comm.wait_blocking([send], "test send to rank 1", peers=1)
    print("NOT REACHED: the wait returned", flush=True)
except Exception as error:  # noqa: BLE001 - report whatever was raised
    print(f"CAUGHT {type(error).__name__}: {error}", flush=True)
comm.comm.Abort(3)
