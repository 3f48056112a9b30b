"""Ranks on one machine averaging their gradients in shared memory instead of sending messages.

On one machine MPI's allreduce moves the gradients through shared memory anyway, but as
messages: copied into MPI's buffers by the sender and out of them by the receiver, in
pieces, with the sum in between. With MPI-3 the ranks of a machine can instead map one window
of memory (`MPI_Win_allocate_shared`) and read each other's values where they lie. The
average then takes the two phases of the ring allreduce (collectives.py), with loads and
stores instead of sends:

    the gradient, G values, is cut into N slices; rank r owns slice r
    1. publish     rank r copies the N-1 slices it does not own into its row of the window
    2. fence       (a barrier) every row is written
    3. reduce      rank r averages slice r: its own values plus slice r of the N-1 other rows, / N
    4. fence       every slice is averaged
    5. gather      every rank copies the averaged slices into its own gradients

Each rank reads and writes about 2·(N-1)/N·G values, as each rank sends in the ring, and no
rank waits for a message. Steps 1-4 are `reduce_scatter`, step 5 `gather`.

ZeroRedundancyOptimizer (zero.py) stops after step 4: the ranks keep one copy of the weights
in the window and rank r applies the optimizer's update to slice r only, so no averaged
gradient has to be copied anywhere and each rank does 1/N of the update.

The window needs every rank on one machine (`SharedMemory.available` says whether they are).
"""

import atexit

import numpy as np

ALIGN = 16  # float32 values: parameters and slices start on 64-byte boundaries (a cache line)


def _round_up(count, multiple=ALIGN):
    return -(-count // multiple) * multiple


class FlatLayout:
    """Where each of a list of arrays lives in one flat buffer, and which rank owns which slice of it.

    offsets[i]   the first value of array i (aligned; the gaps between arrays stay zero)
    size         the whole buffer's length (a multiple of ALIGN)
    slices[r]    (start, end) of rank r's slice: nearly equal, aligned, covering the buffer
    """

    def __init__(self, sizes, ranks):
        self.sizes = [int(s) for s in sizes]
        self.offsets, position = [], 0
        for size in self.sizes:
            self.offsets.append(position)
            position += _round_up(size)
        self.size = max(position, ALIGN)
        step = _round_up(-(-self.size // ranks))
        self.slices = [(min(r * step, self.size), min((r + 1) * step, self.size)) for r in range(ranks)]

    def views(self, buffer, shapes):
        """Array i's place in `buffer` (a flat array of at least `size` values), shaped shapes[i]."""
        return [buffer[o : o + n].reshape(shape) for o, n, shape in zip(self.offsets, self.sizes, shapes)]

    def pieces(self, rank):
        """(array index, start, end) of the parts of the arrays in rank's slice; start/end index the array."""
        low, high = self.slices[rank]
        for i, (offset, size) in enumerate(zip(self.offsets, self.sizes)):
            start, end = max(low, offset), min(high, offset + size)
            if start < end:
                yield i, start - offset, end - offset


class SharedMemory:
    """One window of float32 memory mapped by every rank of `comm` (all on one machine).

    Rows: `rows[r]` is where rank r publishes the slices the other ranks own; `averaged` holds
    the averaged slices; `weights` (used by ZeroRedundancyOptimizer) one copy of the parameters.
    Every region is `layout.size` values long.
    """

    def __init__(self, comm, layout):
        MPI = comm.MPI
        if not SharedMemory.available(comm):
            raise ValueError(
                "shared-memory averaging needs every rank on one machine; these ranks span several "
                "(use DistributedDataParallel(algorithm='mpi') or 'ring')"
            )
        self.comm, self.layout = comm, layout
        n, size = comm.size, layout.size
        total = (n + 2) * size
        # Rank 0 allocates the whole window; the others map it (size 0 of their own). MPI does not
        # align it to a cache line (mpich's starts 16 bytes past one), so allocate ALIGN values more
        # and start at the first 64-byte boundary: the C kernels read aligned weights in place. The
        # window lies at the same offset within a page in every process, so every rank finds the
        # same boundary.
        self.window = MPI.Win.Allocate_shared(4 * (total + ALIGN) if comm.rank == 0 else 0, 4, comm=comm.comm)
        memory, _ = self.window.Shared_query(0)
        whole = np.ndarray(buffer=memory, dtype=np.float32, shape=(total + ALIGN,))
        skip = (-whole.ctypes.data % (4 * ALIGN)) // 4
        flat = whole[skip : skip + total]
        self.rows = flat[: n * size].reshape(n, size)
        self.averaged = flat[n * size : (n + 1) * size]
        self.weights = flat[(n + 1) * size :]
        # A passive-target epoch for the window's whole life: Win_sync then orders our loads and
        # stores against the other ranks' around each barrier (MPI's "unified" memory model).
        self.window.Lock_all(MPI.MODE_NOCHECK)
        if comm.rank == 0:
            flat.fill(0)  # padding between arrays is summed and never written: zero it once
        self.fence("setting up the shared-memory window")
        atexit.register(self._unlock)

    @staticmethod
    def available(comm):
        """Whether every rank of `comm` shares this machine's memory (MPI's COMM_TYPE_SHARED)."""
        node = comm.comm.Split_type(comm.MPI.COMM_TYPE_SHARED)
        everyone = node.Get_size() == comm.size
        node.Free()
        return everyone

    def fence(self, what):
        """Wait until every rank has reached this point, with everything written before it visible."""
        self.window.Sync()
        self.comm.barrier(what)
        self.window.Sync()

    def _unlock(self):
        if not self.comm.MPI.Is_finalized():
            self.window.Unlock_all()

    # ------------------------------------------------------------ the two phases
    def reduce_scatter(self, arrays, out, what="shared-memory average"):
        """Average `arrays` (this rank's, one per layout entry; None = zeros) over the ranks, slice by slice.

        Writes the average of this rank's slice into `out`, a flat array of layout.size values
        (out may be `self.averaged`, for the others to gather, or private memory); the other
        slices of `out` are not touched. Returns bytes published for the other ranks.
        """
        n, me = self.comm.size, self.comm.rank
        if n == 1:  # the average of one rank's gradient is that gradient
            for i, start, end in self.layout.pieces(me):
                offset = self.layout.offsets[i]
                target = out[offset + start : offset + end]
                target[...] = 0 if arrays[i] is None else arrays[i].reshape(-1)[start:end]
            return 0
        row = self.rows[me]
        published = 0
        for owner in range(n):  # 1. publish what the others average
            if owner == me:
                continue
            for i, start, end in self.layout.pieces(owner):
                offset = self.layout.offsets[i]
                target = row[offset + start : offset + end]
                if arrays[i] is None:
                    target.fill(0)
                else:
                    target[...] = arrays[i].reshape(-1)[start:end]
                published += target.nbytes
        self.fence(what + " (every rank's gradient published)")  # 2.
        others = [r for r in range(n) if r != me]
        scale = np.float32(1.0 / n)
        for i, start, end in self.layout.pieces(me):  # 3. average my slice
            offset = self.layout.offsets[i]
            span = slice(offset + start, offset + end)
            total = out[span]
            if arrays[i] is None:
                total[...] = self.rows[others[0], span]
            else:
                np.add(arrays[i].reshape(-1)[start:end], self.rows[others[0], span], out=total)
            for r in others[1:]:
                total += self.rows[r, span]
            total *= scale
        return published

    def gather(self, out):
        """Copy every rank's averaged slice from the window into `out` (after a fence): the whole average."""
        out[...] = self.averaged
