"""Synchronous data parallelism: DistributedDataParallel averages every rank's gradients.

"Run K batches in parallel and aggregate": every rank holds the whole model, computes the
gradient of its own shard of the batch, and the ranks average their gradients before each
optimizer step, so every rank applies the same update and the replicas stay identical:

    ∂W = (1/N) Σ_r ∂W_r        (N ranks, ∂W_r the mean gradient of rank r's b examples)

which is the mean gradient of the whole N·b batch. The gradients are sent in a few large flat
buckets (last layers first, in the order backward produces them), each rank's divided by N
on the way in, so that the sum the allreduce computes is the average. After synchronize()
each parameter's `.grad` is a view of its slice of a bucket: the optimizer reads the average
where the allreduce left it, with no copy out. The lecture's second key idea, "overlap
computation and data transfer": with overlap=True a bucket's non-blocking allreduce starts as
soon as its last gradient has arrived, while backward is still computing the gradients of
earlier layers (off by default: without a spare core and an MPI progress thread it costs more
than it hides, see `overlap` below). `synchronize()` sends the rest and waits, so the optimizer
step runs as usual:

    model = DistributedDataParallel(model)            # parameters broadcast from rank 0
    loss = loss_fn(model(x), y); optimizer.zero_grad(); loss.backward()
    model.synchronize(); optimizer.step()

As with PyTorch's `gradient_as_bucket_view=True`, `.grad` after synchronize() is a view of
a bucket that the next step overwrites: copy it if you need to keep it.

With every rank on one machine, algorithm='shared' averages through a window of shared memory
instead of messages (shared_memory.py), and ZeroRedundancyOptimizer (zero.py) can then keep one
copy of the weights for all ranks and split the update between them.

Why the gradients live in the buckets (it is most of what a DDP step adds to a plain one on a
small machine): every pass over the gradients costs about as much as a whole pass over 2.6 MB
of memory, which for a small MLP is a sizeable fraction of a step, and it evicts what the next
matrix product needed from the cache. Without overlap, autograd leaves each gradient in an
array of its own, and synchronize() makes one pass: it copies it into the bucket, divided by
N. With overlap, hooks point .grad at the bucket before autograd stores the gradient there
(autograd adds into it, so it is zeroed first), and each gradient is divided by N as it
arrives. Either way nothing is copied back out.

With compression 'fp16' or 'trunc16' each bucket is sent in 16 bits. MPI cannot add our 16-bit
formats, so the allreduce is done as its two halves with MPI's non-blocking collectives, like
the ring: a reduce-scatter (an alltoall of the 16-bit chunks; rank r adds up chunk r in
float32) and an allgather of the finished chunks, again in 16 bits. Each rank sends
2·(N-1)/N·2 bytes a value, half of the float32 allreduce, and every rank decodes the very
same bits, so the replicas stay identical.
"""

import numpy as np

from minidl.backend.memory import aligned_empty
from minidl.distributed.collectives import RingAllreduce, broadcast_parameters, make_buckets
from minidl.distributed.comm import world
from minidl.distributed.compression import get_compressor
from minidl.distributed.shared_memory import FlatLayout, SharedMemory
from minidl.nn.module import Module
from minidl.tensor import Tensor


class _Bucket:
    """One fused buffer: the gradients of `indices`, one after another (padded to a multiple of N).

    views[i] is parameter i's slice of the buffer, shaped like the parameter: it becomes its .grad.
    """

    def __init__(self, position, indices, shapes, ranks):
        self.position = position  # buckets are sent in this order on every rank
        self.indices = indices
        bucket_shapes = [shapes[i] for i in indices]
        layout = FlatLayout([int(np.prod(shape, dtype=np.int64)) for shape in bucket_shapes], ranks)
        self.chunk = -(-layout.size // ranks)  # compressed mode: rank r reduces values [r·chunk, (r+1)·chunk)
        self.buffer = aligned_empty(self.chunk * ranks)
        self.buffer[...] = 0  # the padding stays zero: it is summed and sent along, never read
        self.views = dict(zip(indices, layout.views(self.buffer, bucket_shapes)))
        self.arrived = set()  # parameters whose gradient of this step is in the buffer
        self.ring = None  # the bucket's RingAllreduce (algorithm='ring'), made on first use
        self.reset()

    @property
    def full(self):
        return len(self.arrived) == len(self.indices)

    def reset(self):
        self.arrived.clear()
        self.launched = False
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
    overlap         False (the default): communicate everything in synchronize(), after
                    backward (several backward passes before one synchronize() then accumulate,
                    as without DDP). True: start each bucket's allreduce from the gradient hooks
                    during backward. Overlap needs hooks, and with hooks each gradient costs two
                    more passes (see above); and MPI advances a collective only inside MPI calls
                    (there is no progress thread), here the hooks' tests between two gradients,
                    so little of it really runs behind backward. It was slower than no overlap in
                    every run on the 2-core development machine (docs/distributed.md), hence off
                    by default. It is there to show the idea; it might pay with an MPI progress
                    thread (MPICH_ASYNC_PROGRESS=1) and a spare core per rank (not tried here).
    algorithm       'mpi' (MPI's non-blocking allreduce), 'ring' (the ring allreduce of
                    minidl.distributed.collectives, blocking, so run in synchronize(): no overlap)
                    or 'shared' (every rank on one machine: the ranks average through one window
                    of shared memory, shared_memory.py; float32, no overlap). With 'shared',
                    ZeroRedundancyOptimizer can also share the weights and split the update.
    """

    def __init__(self, module, comm=None, bucket_cap_mb=4.0, compression="none", overlap=False, algorithm="mpi"):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a Module, got {type(module).__name__}")
        if bucket_cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        if algorithm not in ("mpi", "ring", "shared"):
            raise ValueError(f"DistributedDataParallel: algorithm must be 'mpi', 'ring' or 'shared', got {algorithm!r}")
        if algorithm == "shared" and compression != "none":
            raise ValueError(
                "DistributedDataParallel: algorithm='shared' averages in shared memory, where nothing goes "
                f"over a wire to compress; got compression={compression!r} (use 'none', or algorithm='mpi')"
            )
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
        sizes = [p.array.size for p in self._params]
        backward_order = list(reversed(range(len(sizes))))  # backward reaches the last layers first
        shapes = [p.shape for p in self._params]
        self._shared = self.sharded = None
        if algorithm == "shared":  # no buckets: one private flat buffer holds every .grad
            self._buckets, self._bucket_of = [], {}
            layout = FlatLayout(sizes, self.comm.size)
            self._shared = SharedMemory(self.comm, layout)
            self._flat = aligned_empty(layout.size)
            self._flat[...] = 0
            grad_arrays = layout.views(self._flat, shapes)
        else:
            cap = max(1, int(bucket_cap_mb * 2**20) // 4)
            groups = make_buckets([sizes[i] for i in backward_order], cap)
            self._buckets = [
                _Bucket(k, [backward_order[j] for j in group], shapes, self.comm.size) for k, group in enumerate(groups)
            ]
            self._bucket_of = {i: b for b in self._buckets for i in b.indices}
            grad_arrays = [self._bucket_of[i].views[i] for i in range(len(self._params))]
        # Each parameter's .grad, for good: a tensor over its slice of a bucket (or of the flat buffer).
        self._grads = [Tensor._wrap(array) for array in grad_arrays]
        self._scale = np.float32(1.0 / self.comm.size)  # each rank sends gradient / N: the sum is the mean
        self._arriving = None  # overlap: the parameter whose gradient autograd is adding into its bucket
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
            if self._bucket_of[index].launched:
                raise RuntimeError(
                    "DistributedDataParallel: backward() ran again before synchronize(), but the first "
                    "backward has already started sending its gradients; call synchronize() after every "
                    "backward, or use overlap=False to accumulate gradients over several backward passes"
                )
            # Autograd adds `grad` into .grad right after the hooks have run: point .grad at the
            # bucket first, and the gradient lands in the bucket.
            param, view = self._params[index], self._grads[index]
            if param.grad is not view:
                if param.grad is None:  # optimizer.zero_grad()'s default
                    view.array.fill(0)
                else:  # accumulated before this backward: keep adding onto it
                    view.array[...] = param.grad.array
                param.grad = view
            # The gradient of the parameter hooked before this one is in its bucket by now.
            if self._arriving is not None:
                self._arrived(self._arriving)
            self._arriving = index
            self._launch_full_buckets()
            self._make_progress()
            return None

        return hook

    def _arrived(self, index):
        """Parameter `index`'s gradient is in its bucket (.grad is its view): divide it by N there."""
        self._grads[index].array *= self._scale
        self._bucket_of[index].arrived.add(index)

    def _launch_full_buckets(self):
        # MPI needs every rank to start its collectives in the same order: buckets go in index
        # order, each as soon as it and all buckets before it are full.
        while self._next_launch < len(self._buckets) and self._buckets[self._next_launch].full:
            self._launch(self._buckets[self._next_launch])
            self._next_launch += 1

    def _launch(self, bucket):
        bucket.launched = True
        if self.algorithm == "ring":  # blocking: sums the bucket in place, 16-bit hops if compressed
            if bucket.ring is None:  # planned once per bucket, run every step
                bucket.ring = RingAllreduce(bucket.buffer, self.comm, compression=self.codec)
            bucket.ring.run()
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
        """Send the gradients not sent yet and wait for every bucket: each .grad is then the average."""
        if self.sharded is not None:
            raise RuntimeError(
                "DistributedDataParallel: this model's update is sharded by a ZeroRedundancyOptimizer, whose "
                "step() averages the gradients itself; call optimizer.step() without synchronize()"
            )
        self.comm.arrive(self.steps)  # "my backward of this step is done": a timed-out wait names who is not
        if self._shared is not None:
            self._synchronize_shared()
            return
        for index, param in enumerate(self._params):
            view = self._grads[index]
            if index in self._bucket_of[index].arrived:
                continue
            if param.grad is view:  # autograd added into the bucket (overlap, or .grad kept from before)
                self._arrived(index)
                continue
            if param.grad is None:  # no gradient reached this parameter: it contributes zeros
                view.array.fill(0)
            else:  # the one pass over a gradient autograd left in an array of its own
                np.multiply(param.grad.array, self._scale, out=view.array)
            param.grad = view
            self._bucket_of[index].arrived.add(index)
        self._launch_full_buckets()
        what = f"gradient allreduce of step {self.steps}"
        if self._gather_comm is not None:
            self.comm.wait_until(self._start_gathers, what + " (reduce-scatter)")
            self.comm.wait_all([b.gather_request for b in self._buckets], what + " (allgather)")
        else:
            self.comm.wait_all([b.request for b in self._buckets], what)
        for bucket in self._buckets:
            if bucket.gather_request is not None:  # the finished 16-bit chunks of every rank, decoded
                _, gathered = bucket.keep
                bucket.buffer[...] = self.codec.decode(gathered.reshape(-1).view(self.codec.wire_dtype))
            bucket.reset()
        self._arriving = None
        self._next_launch = self._next_gather = 0
        self.steps += 1

    def _synchronize_shared(self):
        """algorithm='shared': average through the window (shared_memory.py), then copy the average into .grad."""
        arrays = [None if p.grad is None else p.grad.array for p in self._params]
        what = f"shared-memory gradient average of step {self.steps}"
        self.comm.bytes_sent += self._shared.reduce_scatter(arrays, self._shared.averaged, what)
        self._shared.fence(what + " (every slice averaged)")
        self._shared.gather(self._flat)
        for param, view in zip(self._params, self._grads):
            param.grad = view
        self.steps += 1

    @property
    def bytes_sent(self):
        return self.comm.bytes_sent

    def extra_repr(self):
        if self._shared is not None:
            sharded = ", update sharded" if self.sharded is not None else ""
            return f"ranks={self.comm.size}, algorithm=shared{sharded}"
        return (
            f"ranks={self.comm.size}, buckets={len(self._buckets)}, compression={self.codec.name}, "
            f"overlap={self.overlap}"
        )
