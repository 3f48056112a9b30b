"""minidl.distributed: training on several processes with MPI (the lectures' model and data parallelism).

    mpiexec -n 4 minidl train --distributed sync      # or: minidl launch -n 4 -- train --distributed sync

- comm: the MPI seam (rank, size, waits with timeouts that name the rank waited for)
- collectives: parameter broadcast, MPI's allreduce and a ring allreduce written out, fused buckets
- compression: none, fp16 and the lectures' truncated 16-bit float, with bytes counted
- ddp, sampler: synchronous data parallelism (DistributedDataParallel, DistributedSampler)
- shared_memory, zero: ranks on one machine averaging in shared memory, and sharing one copy of
  the weights with the update split over them (ZeroRedundancyOptimizer)
- rules, parameter_server: Downpour SGD on a parameter server, async / bounded delay / backup workers
- model_parallel: a pipeline of layers over ranks (GPipe micro-batches) and a Linear split by outputs
- launch, driver: finding mpiexec (or srun) and the `minidl train --distributed` job

Importing this package does not import mpi4py: the MPI-free parts (rules, compression,
sampler, launch) work without it, and the rest loads MPI on first use.
"""

from minidl.distributed.compression import get_compressor
from minidl.distributed.rules import ServerRules, UpdateRule, shard_parameters
from minidl.distributed.sampler import DistributedSampler

_LAZY = {
    "Communicator": "comm",
    "DistributedTimeout": "comm",
    "world": "comm",
    "ring_allreduce": "collectives",
    "RingAllreduce": "collectives",
    "allreduce": "collectives",
    "broadcast_parameters": "collectives",
    "DistributedDataParallel": "ddp",
    "ZeroRedundancyOptimizer": "zero",
    "Pipeline": "model_parallel",
    "ColumnParallelLinear": "model_parallel",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'minidl.distributed' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"minidl.distributed.{module}"), name)


__all__ = ["get_compressor", "ServerRules", "UpdateRule", "shard_parameters", "DistributedSampler", *_LAZY]
