"""Collectives on NumPy buffers: broadcast of parameters, MPI's allreduce, and a ring allreduce for teaching.

The ring allreduce (as in Horovod / Baidu's ring) sums a buffer over N ranks while every rank
sends only 2·(N-1)/N of it, whatever N is. Cut the buffer into N chunks; ranks sit in a ring
and each sends to its right neighbour while receiving from its left one.

  reduce-scatter, N-1 steps: at step s rank r sends chunk (r - s) mod N and adds the chunk
      (r - s - 1) mod N it receives into its own copy. After N-1 steps rank r holds the
      complete sum of chunk (r + 1) mod N.

        N = 3, chunks a b c        step 0            step 1              result
        rank 0: a0 b0 c0      sends a0 -> 1     sends c0+c2 -> 1     owns b0+b1+b2
        rank 1: a1 b1 c1      sends b1 -> 2     sends a0+a1 -> 2     owns c0+c1+c2
        rank 2: a2 b2 c2      sends c2 -> 0     sends b1+b2 -> 0     owns a0+a1+a2

  allgather, N-1 steps: at step s rank r sends chunk (r + 1 - s) mod N (complete) and
      copies the complete chunk (r - s) mod N it receives. Afterwards every rank has the sum.

Gradients are first copied into a few large flat buckets ("tensor fusion"): one message per
bucket instead of one per parameter, so per-message latency is paid a few times, not
hundreds. With compression, each hop sends 16-bit values and adds in float32.
"""

import numpy as np

from minidl.distributed.compression import get_compressor

_RING_TAG = 31000


def chunk_bounds(count, parts):
    """Start and end of `parts` nearly equal chunks of range(count) (the first count % parts are one longer)."""
    base, extra = divmod(count, parts)
    bounds, start = [], 0
    for i in range(parts):
        end = start + base + (1 if i < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def ring_allreduce(buffer, comm, compression="none", average=False):
    """Sum (or average) a 1-D float32 buffer over the ranks of `comm`, in place, around a ring.

    compression 'fp16' / 'trunc16' sends every hop in 16 bits: a received chunk is decoded,
    added in float32, and encoded again for the next hop. Before the allgather each owner
    replaces its finished chunk by its 16-bit round trip, so all ranks end with the same bits.
    Every wait names the left neighbour it waits for. To reduce the same buffer again and
    again (a gradient bucket), make a RingAllreduce once and run() it.
    """
    return RingAllreduce(buffer, comm, compression, average).run()


class RingAllreduce:
    """The ring allreduce of one buffer, planned once and run any number of times.

    MPI-4 calls this a persistent collective (MPI_Allreduce_init, then MPI_Start each time).
    The plan is everything the ring needs besides the values in the buffer: its chunks, which
    chunk each step sends and receives, and the inbox slices received chunks land in. A
    training step reduces the same gradient buckets every step (DistributedDataParallel keeps
    one RingAllreduce per bucket), and working the plan out again costs ~12 µs of Python a call
    on 4 ranks, which the whole ring waits for when ranks share cores (docs/distributed.md).
    The plan holds views of the buffer, so it keeps the buffer alive.
    """

    def __init__(self, buffer, comm, compression="none", average=False):
        if buffer.ndim != 1 or buffer.dtype != np.float32 or not buffer.flags.c_contiguous:
            raise ValueError(
                f"ring_allreduce: expected a contiguous 1-D float32 buffer, got {buffer.dtype} {buffer.shape}"
            )
        self.buffer, self.comm, self.average = buffer, comm, average
        self.codec = get_compressor(compression)
        n, r = comm.size, comm.rank
        if n == 1:
            return
        self.right, self.left = (r + 1) % n, (r - 1) % n
        self.chunk = [buffer[start:end] for start, end in chunk_bounds(buffer.size, n)]
        longest = self.chunk[0].size  # the first chunk is one of the longest (chunk_bounds)
        # Two inboxes, one receiving while the other is read. The communicator keeps them for every
        # ring it runs (they run one at a time), so a one-off ring_allreduce does not allocate and
        # page in fresh ones on every call.
        wire = self.codec.wire_dtype
        inboxes = [comm.workspace(f"ring inbox {i}", longest, wire) for i in (0, 1)]
        self.plain = plain = self.codec.name == "none"  # float32 as it is: nothing to encode or decode
        backwards = [(r - k) % n for k in range(n)]  # r, r-1, r-2, ... (mod N): the order chunks go round in
        # phase: (chunks sent at each step, chunks received, where they are received into)
        self.steps = {}
        for phase, send_indices, receive_indices in (
            ("reduce-scatter", backwards[:-1], backwards[1:]),
            ("allgather", [(r + 1) % n] + backwards[:-2], backwards[:-1]),
        ):
            received = [self.chunk[i] for i in receive_indices]
            straight_in = plain and phase == "allgather"  # float32 kept as it comes: receive into place
            receive_into = received if straight_in else [inboxes[k % 2][: c.size] for k, c in enumerate(received)]
            self.steps[phase] = ([self.chunk[i] for i in send_indices], received, receive_into)

    def run(self):
        """Sum (or average) the buffer over the ranks, in place; returns it."""
        comm, codec, n = self.comm, self.codec, self.comm.size
        if n == 1:
            return self.buffer
        # Reduce-scatter: after N-1 steps rank r owns the full sum of chunk (r + 1) mod N.
        self._phase("reduce-scatter", reduce=True)
        owned = self.chunk[(comm.rank + 1) % n]
        if self.average:
            owned *= np.float32(1.0 / n)
        if not self.plain:
            owned[...] = codec.decode(codec.encode(owned))
            codec.bytes_encoded -= codec.wire_nbytes(owned.size)  # a local round trip, not sent
        # Allgather: pass the finished chunks around the ring. (The reduce-scatter's sends are all
        # complete by now: its last act. The allgather receives into the chunks they were sent from.)
        self._phase("allgather", reduce=False)
        return self.buffer

    def _phase(self, phase, reduce):
        """The N-1 steps of one phase. Step k sends chunk send_from[k] to the right, receives chunk
        received[k] from the left, and adds it to ours (reduce) or keeps it.

        Each receive is posted a step early, before this step's work on the last one (two
        inboxes, in turn), so the left neighbour's message finds it waiting. A step waits only
        for what it receives: our sends complete whenever the right neighbour takes them
        (collected at the end of the phase). Waiting for both would chain every step to both
        neighbours: with more ranks than cores, to two hand-overs of a core. With ranks sharing
        cores, every microsecond between a message coming in and the next going out delays the
        whole ring, so the loop calls mpi4py directly and does nothing it could have done before.
        """
        comm, codec, n, left, right = self.comm, self.codec, self.comm.size, self.left, self.right
        send_from, received, receive_into = self.steps[phase]
        plain = self.plain
        straight_in = received is receive_into
        receives = comm.blocking_waits(f"ring allreduce {phase} step {{step}} (receive from rank {left})", left)
        mpi = comm.comm
        sends, wires = [], []  # wires stay referenced until their sends complete
        sent = 0  # bytes
        pending = (mpi.Irecv(receive_into[0], source=left, tag=_RING_TAG),)
        for step in range(n - 1):
            wire = send_from[step] if plain else codec.encode(send_from[step])
            sends.append(mpi.Isend(wire, dest=right, tag=_RING_TAG))
            wires.append(wire)
            sent += wire.nbytes
            receives.wait(pending, step)
            if step < n - 2:
                pending = (mpi.Irecv(receive_into[step + 1], source=left, tag=_RING_TAG),)
            if reduce:
                received[step] += receive_into[step] if plain else codec.decode(receive_into[step])
            elif not straight_in:
                received[step][...] = codec.decode(receive_into[step])
        comm.bytes_sent += sent
        if not comm.MPI.Request.Testall(sends):  # usually done already: then no wait, no hand-over
            comm.wait_blocking(sends, f"ring allreduce {phase}: send to rank {right}", right)


def allreduce(buffer, comm, algorithm="mpi", compression="none", average=False):
    """Sum (or average) a float32 buffer over all ranks in place: algorithm 'mpi' (MPI's own) or 'ring'."""
    if algorithm == "ring":
        return ring_allreduce(buffer, comm, compression=compression, average=average)
    if algorithm != "mpi":
        raise ValueError(f"allreduce: unknown algorithm {algorithm!r}; expected 'mpi' or 'ring'")
    if compression != "none":
        raise ValueError("allreduce: MPI cannot add our 16-bit formats; use algorithm='ring' for compression")
    comm.allreduce(buffer)
    if average:
        buffer *= np.float32(1.0 / comm.size)
    return buffer


# ---------------------------------------------------------------------------
# Flat buffers ("tensor fusion")
# ---------------------------------------------------------------------------
def flatten(arrays, out=None):
    """Copy arrays one after another into one flat float32 buffer."""
    total = sum(a.size for a in arrays)
    if out is None:
        out = np.empty(total, np.float32)
    offset = 0
    for a in arrays:
        out[offset : offset + a.size] = a.reshape(-1)
        offset += a.size
    return out


def unflatten(buffer, arrays):
    """Copy a flat buffer back into `arrays` (in place, in order); the inverse of flatten."""
    offset = 0
    for a in arrays:
        a[...] = buffer[offset : offset + a.size].reshape(a.shape)
        offset += a.size


def broadcast_parameters(params, comm, root=0):
    """Make every rank's parameters equal to rank root's (one fused broadcast).

    params: Tensors (their .array is overwritten) or arrays.
    """
    arrays = [p if isinstance(p, np.ndarray) else p.array for p in params]
    buffer = flatten(arrays) if comm.rank == root else np.empty(sum(a.size for a in arrays), np.float32)
    comm.broadcast(buffer, root=root, what="broadcast of the parameters")
    if comm.rank != root:
        unflatten(buffer, arrays)
    return params


def make_buckets(sizes, cap_values):
    """Group parameter indices, in the given order, into buckets of at most cap_values values each.

    A parameter larger than the cap gets a bucket of its own. Returns a list of index lists.
    """
    buckets, current, filled = [], [], 0
    for i, size in enumerate(sizes):
        if current and filled + size > cap_values:
            buckets.append(current)
            current, filled = [], 0
        current.append(i)
        filled += size
    if current:
        buckets.append(current)
    return buckets
