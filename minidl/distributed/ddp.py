"""Synchronous data parallelism: DistributedDataParallel averages every rank's gradients.

"Run K batches in parallel and aggregate": every rank holds the whole model, computes the
gradient of its own shard of the batch, and the ranks average their gradients before each
optimizer step, so every rank applies the same update and the replicas stay identical:

    ∂W = (1/N) Σ_r ∂W_r        (N ranks, ∂W_r the mean gradient of rank r's b examples)

which is the mean gradient of the whole N·b batch. The lecture's second key idea, "overlap
computation and data transfer", is how it is done: gradients are copied into a few large
buckets (last layers first, in the order backward produces them), and a bucket's
non-blocking allreduce starts as soon as its last gradient arrives, while backward is still
computing the gradients of earlier layers. `synchronize()` waits for the rest and writes the
averaged gradients into `.grad`, so the optimizer step runs as usual:

    model = DistributedDataParallel(model)            # parameters broadcast from rank 0
    loss = loss_fn(model(x), y); optimizer.zero_grad(); loss.backward()
    model.synchronize(); optimizer.step()

With compression 'fp16' or 'trunc16' each bucket is sent in 16 bits. MPI cannot add our 16-bit
formats, so the allreduce is done as its two halves with MPI's non-blocking collectives, like
the ring: a reduce-scatter (an alltoall of the 16-bit chunks; rank r adds up chunk r in
float32) and an allgather of the finished chunks, again in 16 bits. Each rank sends
2·(N-1)/N·2 bytes a value, half of the float32 allreduce, and every rank decodes the very
same bits, so the replicas stay identical.
"""

import numpy as np

from minidl.distributed.collectives import broadcast_parameters, make_buckets, ring_allreduce
from minidl.distributed.comm import world
from minidl.distributed.compression import get_compressor
from minidl.nn.module import Module
from minidl.tensor import Tensor


class _Bucket:
    """One fused buffer: the gradients of `indices`, one after another (padded to a multiple of N)."""

    def __init__(self, indices, sizes, ranks):
        self.indices = indices
        self.offsets = {}
        offset = 0
        for i in indices:
            self.offsets[i] = (offset, offset + sizes[i])
            offset += sizes[i]
        self.chunk = -(-offset // ranks)  # compressed mode: rank r reduces values [r·chunk, (r+1)·chunk)
        self.buffer = np.zeros(self.chunk * ranks, np.float32)
        self.filled = set()
        self.reset()

    @property
    def full(self):
        return len(self.filled) == len(self.indices)

    def reset(self):
        self.filled.clear()
        self.request = None  # the allreduce, or (compressed) the reduce-scatter
        self.gather_request = None  # compressed: the allgather of the reduced chunks
        self.keep = None  # send and receive buffers, alive until their requests complete


class DistributedDataParallel(Module):
    """Wrap a model so that its gradients are averaged over all ranks (see the module docstring).

    comm            a Communicator (default: all ranks)
    bucket_cap_mb   size of a fused gradient bucket, in MiB of float32 (PyTorch's default is 25).
                    Smaller buckets start earlier (more overlap) but each collective has a cost:
                    with mpich on one machine a 0.5 MiB non-blocking allreduce took ~4x as long
                    per byte as a 2.5 MiB one (benchmarks/bench_mpi.py, docs/distributed.md)
    compression     'none', 'fp16' or 'trunc16' for the gradient transfer
    overlap         True: start each bucket's allreduce from the gradient hooks during backward;
                    False: communicate everything in synchronize(), after backward
    algorithm       'mpi' (MPI's non-blocking allreduce) or 'ring' (the ring allreduce of
                    minidl.distributed.collectives, blocking, so run in synchronize(): no overlap)
    """

    def __init__(self, module, comm=None, bucket_cap_mb=4.0, compression="none", overlap=True, algorithm="mpi"):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a Module, got {type(module).__name__}")
        if bucket_cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        if algorithm not in ("mpi", "ring"):
            raise ValueError(f"DistributedDataParallel: algorithm must be 'mpi' or 'ring', got {algorithm!r}")
        self.module = module
        self.comm = comm if comm is not None else world()
        self.codec = get_compressor(compression)
        self.algorithm = algorithm
        self.overlap = overlap and algorithm == "mpi"
        self._params = [p for p in module.parameters() if p.requires_grad]
        if not self._params:
            raise ValueError("DistributedDataParallel: the module has no parameters that require grad")
        for p in self._params:
            if p.dtype != np.float32:
                raise TypeError(f"DistributedDataParallel: parameters must be float32, got {p.dtype} {p.shape}")
        sizes = [p.data.size for p in self._params]
        backward_order = list(reversed(range(len(sizes))))  # backward reaches the last layers first
        cap = max(1, int(bucket_cap_mb * 2**20) // 4)
        groups = make_buckets([sizes[i] for i in backward_order], cap)
        self._buckets = [_Bucket([backward_order[j] for j in group], sizes, self.comm.size) for group in groups]
        self._bucket_of = {i: b for b in self._buckets for i in b.indices}
        self._previous = {}  # parameter index -> .grad before this backward (gradient accumulation)
        self._next_launch = 0
        self._next_gather = 0  # compressed mode: buckets whose allgather has started
        # Compressed mode starts each bucket's allgather when its reduce-scatter ends, which happens
        # at different moments on different ranks; on a communicator of their own the allgathers
        # keep one order (bucket order) on every rank, as MPI requires.
        self._gather_comm = self.comm.comm.Dup() if self.codec.name != "none" and algorithm == "mpi" else None
        self.steps = 0
        self._grad_hook_handles = (
            [p.register_hook(self._make_hook(i)) for i, p in enumerate(self._params)] if self.overlap else []
        )
        broadcast_parameters(self._params, self.comm)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    # ------------------------------------------------------------ during backward
    def _make_hook(self, index):
        def hook(grad):
            self._collect(index, grad.data, from_hook=True)
            self._launch_full_buckets()
            self._make_progress()
            return None  # the local gradient goes into .grad as usual; synchronize() replaces it

        return hook

    def _collect(self, index, grad, from_hook):
        bucket = self._bucket_of[index]
        start, end = bucket.offsets[index]
        if index in bucket.filled:  # a second backward before synchronize(): accumulate
            bucket.buffer[start:end] += grad.reshape(-1)
            return
        param = self._params[index]
        if from_hook and param.grad is not None and index not in self._previous:
            self._previous[index] = param.grad.data.copy()  # accumulated before; added back after averaging
        bucket.buffer[start:end] = grad.reshape(-1)
        bucket.filled.add(index)

    def _launch_full_buckets(self):
        # MPI needs every rank to start its collectives in the same order: buckets go in index
        # order, each as soon as it and all buckets before it are full.
        while self._next_launch < len(self._buckets) and self._buckets[self._next_launch].full:
            self._launch(self._buckets[self._next_launch])
            self._next_launch += 1

    def _launch(self, bucket):
        if self.algorithm == "ring":  # blocking: sums the bucket in place, 16-bit hops if compressed
            ring_allreduce(bucket.buffer, self.comm, compression=self.codec)
            return
        if self.codec.name == "none":
            bucket.request = self.comm.iallreduce(bucket.buffer)
            return
        # Reduce-scatter: row r of `chunks` (16-bit) goes to rank r, which adds up what it receives.
        n = self.comm.size
        chunks = self.codec.encode(bucket.buffer).view(np.uint16).reshape(n, bucket.chunk)
        received = np.empty_like(chunks)
        self.comm.bytes_sent += chunks[0].nbytes * (n - 1)
        bucket.request = self.comm.comm.Ialltoall(chunks, received)
        bucket.keep = (chunks, received)

    def _start_gathers(self):
        """Compressed mode: for each bucket whose reduce-scatter is done, in order, start its allgather."""
        n, wire_dtype = self.comm.size, self.codec.wire_dtype
        while self._next_gather < self._next_launch:
            bucket = self._buckets[self._next_gather]
            if not bucket.request.Test():
                return False
            _, received = bucket.keep
            total = self.codec.decode(received[0].view(wire_dtype))
            for row in received[1:]:  # float32 sums, in rank order: the same on every rank
                total += self.codec.decode(row.view(wire_dtype))
            mine = self.codec.encode(total).view(np.uint16)
            gathered = np.empty((n, bucket.chunk), np.uint16)
            self.comm.bytes_sent += mine.nbytes * (n - 1)
            bucket.gather_request = self._gather_comm.Iallgather(mine, gathered)
            bucket.keep = (mine, gathered)
            self._next_gather += 1
        return True

    def _make_progress(self):
        # MPI advances a non-blocking collective only inside MPI calls: test the ones in flight.
        if self._gather_comm is not None:
            self._start_gathers()
        pending = [b.request for b in self._buckets[: self._next_launch]]
        pending += [b.gather_request for b in self._buckets[: self._next_gather]]
        if pending:
            self.comm.MPI.Request.Testall(pending)

    # ------------------------------------------------------------ after backward
    def synchronize(self):
        """Finish every bucket's allreduce and write the averaged gradients into each parameter's .grad."""
        self.comm.arrive(self.steps)  # "my backward of this step is done": a timed-out wait names who is not
        for bucket in self._buckets:
            for i in bucket.indices:
                if i in bucket.filled:
                    continue
                param = self._params[i]
                if not self.overlap and param.grad is not None:  # .grad as it is, accumulation included
                    self._collect(i, param.grad.data, from_hook=False)
                else:  # no gradient reached this parameter in this step: it contributes zeros
                    start, end = bucket.offsets[i]
                    bucket.buffer[start:end] = 0
                    bucket.filled.add(i)
                    if param.grad is not None:
                        self._previous.setdefault(i, param.grad.data.copy())
        self._launch_full_buckets()
        what = f"gradient allreduce of step {self.steps}"
        if self._gather_comm is not None:
            self.comm.wait_until(self._start_gathers, what + " (reduce-scatter)")
            self.comm.wait_all([b.gather_request for b in self._buckets], what + " (allgather)")
        else:
            self.comm.wait_all([b.request for b in self._buckets], what)
        scale = np.float32(1.0 / self.comm.size)
        for bucket in self._buckets:
            if bucket.gather_request is not None:  # the finished 16-bit chunks of every rank, decoded
                _, gathered = bucket.keep
                bucket.buffer[...] = self.codec.decode(gathered.reshape(-1).view(self.codec.wire_dtype))
            bucket.buffer *= scale
            for i in bucket.indices:
                self._write_grad(i, bucket)
            bucket.reset()
        self._previous.clear()
        self._next_launch = self._next_gather = 0
        self.steps += 1

    def _write_grad(self, index, bucket):
        param = self._params[index]
        start, end = bucket.offsets[index]
        value = bucket.buffer[start:end].reshape(param.shape)
        previous = self._previous.get(index)
        if previous is not None:
            value = previous + value
        if param.grad is not None and param.grad.grad_fn is None and param.grad.data.flags.writeable:
            param.grad.data[...] = value
        else:
            param.grad = Tensor(np.array(value, dtype=np.float32))

    @property
    def bytes_sent(self):
        return self.comm.bytes_sent

    def extra_repr(self):
        return (
            f"ranks={self.comm.size}, buckets={len(self._buckets)}, compression={self.codec.name}, "
            f"overlap={self.overlap}"
        )
