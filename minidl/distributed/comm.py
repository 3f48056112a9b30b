"""The MPI seam: rank, size, waits with a timeout, and point-to-point and collective helpers.

Everything in minidl.distributed that talks MPI goes through a `Communicator`. It adds two
things plain MPI lacks:

- Every blocking wait has a timeout. MPI waits forever for a rank that hangs; here a wait
  polls its request, and after `timeout` seconds raises DistributedTimeout naming the rank
  it waited for ("rank 0: no message from rank 3 after 10.0 s in ring allreduce").
- Polling pauses between tests once a wait lasts (a few µs, growing to 1 ms), so a rank that
  waits long leaves the CPU to the ranks that compute; with more ranks than cores (a laptop,
  the tests' 4 ranks on 2 cores) it pauses between all tests, so the rank it waits for can run.
- The ring allreduce's short waits block inside MPI instead (`wait_blocking`, `blocking_waits`),
  which hands the core over faster than any polling loop; a watchdog thread keeps their
  timeout (watchdog.py).

For collectives, where MPI does not say whom it is waiting for, each rank announces the
step it has reached (`arrive`), so a timed-out collective can name the ranks that never
arrived. mpi4py is imported here, on first use: `import minidl` never loads MPI.
"""

import os
import time

import numpy as np

from minidl.distributed.watchdog import Watchdog

DEFAULT_TIMEOUT = 120.0  # seconds; generous, since a step can be slow on an oversubscribed machine
_ARRIVE_TAG = 32001  # tag of the small "I reached step k" messages (above the tags other modules use)


class DistributedTimeout(RuntimeError):
    """A blocking wait ran out of time; the message names the rank (or ranks) waited for."""


def mpi():
    """The mpi4py.MPI module, imported on first use with a clear error if mpi4py is missing."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            f"minidl.distributed needs mpi4py and an MPI library ({e}); install them with "
            "`pip install mpi4py mpich` (the mpich wheel brings its own mpiexec)"
        ) from None
    return MPI


SPIN_SECONDS = 20e-3  # test without pausing this long: MPI only makes progress while we call it
SHARE_PAUSE = 1e-6  # seconds asked for between tests when ranks share cores (Linux makes it ~50-60 µs)


def poll(test, timeout, on_timeout, progress=None, spin=SPIN_SECONDS, share_cpu=False):
    """Call test() until it returns True; after `spin` seconds pause between tries; raise after `timeout` s.

    MPI moves a message or a collective forward only inside MPI calls (there is no progress
    thread), so a short wait keeps calling test() back to back; a long wait (a worker idle
    until the server answers) pauses longer and longer, up to 1 ms, to leave the CPU to others.
    share_cpu=True (more ranks than cores on this machine) sleeps between tries even in a short
    wait, so the rank we wait for can run on our core. A sleep, not sched_yield(): yielding
    leaves us on the run queue, and Linux's scheduler (EEVDF) often picks the yielding rank
    again until the other has waited out a time slice, about a millisecond. Asleep we are off
    the queue, the other rank runs at once, and we are back some 50-60 µs later (the kernel's
    timer slack). With 4 ranks on 2 cores this made a 1 MB ring allreduce 2-3x faster.
    on_timeout(waited) returns the error message. progress(), if given, is called between tries.
    """
    start = time.perf_counter()
    pause = 0.0
    while not test():
        waited = time.perf_counter() - start
        if timeout is not None and waited > timeout:
            raise DistributedTimeout(on_timeout(waited))
        if progress is not None:
            progress()
        if waited > spin:
            pause = min(max(pause * 2, 5e-6), 1e-3)
            time.sleep(pause)
        elif share_cpu:
            time.sleep(SHARE_PAUSE)


class Communicator:
    """A group of MPI ranks (default: all of them), with timeouts on every wait.

    rank, size             this process's index and the number of ranks
    timeout                seconds any single wait may take before DistributedTimeout
    bytes_sent             bytes this rank has put on the wire through this object (for
                           MPI's own collectives: what a bandwidth-optimal algorithm sends)
    """

    def __init__(self, comm=None, timeout=DEFAULT_TIMEOUT):
        MPI = mpi()
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout = timeout
        self.bytes_sent = 0
        self._arrived = [-1] * self.size  # the last step each rank announced
        self._arrive_sends = []  # (request, buffer) of our own announcements, until they complete
        self._announced = 0  # announcements sent to each peer
        self._heard = [0] * self.size  # announcements received from each peer
        self._step = -1
        # wait_blocking's watchdog cancels requests from a thread of its own
        self._multithreaded = MPI.Query_thread() == MPI.THREAD_MULTIPLE
        self._watchdog = None  # started by the first wait_blocking
        self._workspaces = {}  # name -> buffer kept between calls (workspace())
        # More ranks on this machine than cores they may use between them: waiting ranks must yield
        # their core. (A launcher that pins each rank to a core of its own leaves each one a single
        # core in its affinity mask, so count the cores of all the ranks here together.)
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        cores = set().union(*local.allgather(sorted(os.sched_getaffinity(0))))
        self.oversubscribed = local.Get_size() > len(cores)
        local.Free()
        import atexit

        # MPI must not finalize with announcements in flight (mpich's shared-memory transport kills
        # the rank); this handler, registered after mpi4py's, runs before MPI_Finalize.
        atexit.register(self.drain)

    def __repr__(self):
        return f"<Communicator rank {self.rank} of {self.size}>"

    # ------------------------------------------------------------ waiting
    def wait(self, request, what, peers=None):
        """Wait for one MPI request. peers: the ranks it depends on, for the error message."""
        self.wait_all([request], what, peers)

    def wait_all(self, requests, what, peers=None):
        """Wait for every request; on timeout name `peers`, or the ranks that have not arrived."""
        requests = [r for r in requests if r is not None]
        if not requests:
            return

        def message(waited):
            return f"rank {self.rank}: {what} did not complete after {waited:.1f} s; {self._describe_missing(peers)}"

        self._poll(lambda: self.MPI.Request.Testall(requests), message)

    def wait_blocking(self, requests, what, peers):
        """Wait for point-to-point requests inside MPI, with the same timeout and error as wait_all.

        For short waits on a hot path (the ring allreduce): MPI's own wait hands the core to the
        rank we wait for much faster than a polling loop when ranks share cores. A watchdog
        thread keeps the timeout (minidl/distributed/watchdog.py): it cancels a receive that has
        not come, and aborts the job if a send's receiver never comes. Needs
        MPI_THREAD_MULTIPLE (mpi4py's default); without it this polls like wait_all.
        """
        self.blocking_waits(what, peers).wait(requests)

    def blocking_waits(self, what, peers):
        """A BlockingWaits for a loop of waits on `peers` (wait_blocking, with the set-up done once)."""
        if self._multithreaded:
            if self._watchdog is None:
                self._watchdog = Watchdog(
                    self.timeout, self._timeout_message, abort=lambda: self.MPI.COMM_WORLD.Abort(1)
                )
            self._watchdog.timeout = self.timeout  # world(timeout=...) may have changed it
        return BlockingWaits(self, what, peers)

    def _timeout_message(self, waits, step, waited):
        """The DistributedTimeout text of a wait of `waits` (a BlockingWaits) at `step`, after `waited` s."""
        return f"rank {self.rank}: {waits.describe(step)} did not complete after {waited:.1f} s; " + (
            self._describe_missing(waits.peers)
        )

    def wait_until(self, test, what, peers=None):
        """Call test() (which may start or advance MPI requests) until it returns True, with the timeout."""

        def message(waited):
            return f"rank {self.rank}: {what} did not complete after {waited:.1f} s; {self._describe_missing(peers)}"

        self._poll(test, message)

    def _poll(self, test, message):
        poll(test, self.timeout, message, share_cpu=self.oversubscribed)

    def _describe_missing(self, peers):
        if peers is not None:
            peers = [peers] if isinstance(peers, int) else list(peers)
            return f"waiting for rank {', '.join(map(str, peers))}"
        self._read_arrivals()
        behind = [r for r in range(self.size) if r != self.rank and self._arrived[r] < self._step]
        if not behind:
            return "every rank has reached this step; the job may be out of step"
        seen = ", ".join(f"rank {r} last reached step {self._arrived[r]}" for r in behind)
        return f"waiting for rank {', '.join(map(str, behind))} ({seen}; this is step {self._step})"

    # ------------------------------------------------------------ who has arrived where
    def arrive(self, step):
        """Tell every other rank that this rank has reached `step` (a few bytes each, non-blocking)."""
        self._step = step
        self._arrived[self.rank] = step
        self._arrive_sends = [(r, b) for r, b in self._arrive_sends if not r.Test()]
        self._announced += 1
        for peer in range(self.size):
            if peer != self.rank:
                buffer = np.array([step], dtype=np.int64)
                self._arrive_sends.append((self.comm.Isend(buffer, dest=peer, tag=_ARRIVE_TAG), buffer))
        self._read_arrivals()

    def _read_arrivals(self):
        status = self.MPI.Status()
        buffer = np.empty(1, dtype=np.int64)
        while self.comm.Iprobe(source=self.MPI.ANY_SOURCE, tag=_ARRIVE_TAG, status=status):
            source = status.Get_source()
            self.comm.Recv(buffer, source=source, tag=_ARRIVE_TAG)
            self._arrived[source] = max(self._arrived[source], int(buffer[0]))
            self._heard[source] += 1

    def drain(self, timeout=5.0):
        """Complete our announcements and receive the peers' last ones, so that MPI can finalize cleanly.

        Every rank announces once per step; a peer that announced fewer times (it failed) is not
        waited for longer than `timeout`.
        """
        if self.MPI.Is_finalized() or not self._announced:
            return

        def settled():
            self._read_arrivals()
            sends_done = self.MPI.Request.Testall([r for r, _ in self._arrive_sends])
            return sends_done and all(self._heard[r] >= self._announced for r in range(self.size) if r != self.rank)

        try:
            poll(settled, timeout, lambda waited: "drain")
        except DistributedTimeout:
            pass

    def workspace(self, name, count, dtype):
        """`count` values of `dtype` that this communicator keeps for `name` between calls.

        Grown when a larger one is asked for, never shrunk. The ring allreduce receives into
        two of them: a fresh buffer every call would be allocated and paged in every call
        (for 64 MB on 2 ranks, two 32 MB inboxes: ~16,000 page faults a call), as MPI
        libraries keep their own buffers for the same reason.
        """
        buffer = self._workspaces.get(name)
        if buffer is None or buffer.size < count or buffer.dtype != dtype:
            buffer = self._workspaces[name] = np.empty(count, dtype)
        return buffer[:count]

    # ------------------------------------------------------------ point to point
    def isend(self, array, dest, tag):
        """Start sending a contiguous array; keep the array alive until the request completes."""
        array = np.ascontiguousarray(array)
        self.bytes_sent += array.nbytes
        return self.comm.Isend(array, dest=dest, tag=tag)

    def irecv(self, array, source, tag):
        return self.comm.Irecv(array, source=source, tag=tag)

    def send(self, array, dest, tag, what="send"):
        self.wait(self.isend(array, dest, tag), f"{what} to rank {dest}", peers=dest)

    def recv(self, array, source, tag, what="receive"):
        self.wait(self.irecv(array, source, tag), f"{what} from rank {source}", peers=source)
        return array

    def sendrecv(self, send_array, dest, recv_array, source, tag, what="sendrecv"):
        """Send to `dest` and receive from `source` at once (both sides of a ring step); waits for `source`."""
        receive = self.irecv(recv_array, source, tag)
        send = self.isend(send_array, dest, tag)
        self.wait_all([receive, send], f"{what} (receive from rank {source}, send to rank {dest})", peers=source)
        return recv_array

    # ------------------------------------------------------------ collectives (MPI's own)
    def barrier(self, what="barrier"):
        self.wait(self.comm.Ibarrier(), what)

    def broadcast(self, array, root=0, what="broadcast"):
        """Copy `array` from rank `root` into `array` on every rank (in place; contiguous)."""
        if self.rank == root:
            self.bytes_sent += array.nbytes * (self.size - 1) if self.size > 1 else 0
        self.wait(self.comm.Ibcast(array, root=root), what, peers=None if self.rank == root else root)
        return array

    def iallreduce(self, array):
        """Start MPI's sum-allreduce of `array` in place. Counts what a bandwidth-optimal allreduce sends."""
        self.bytes_sent += allreduce_bytes(array.nbytes, self.size)
        return self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)

    def allreduce(self, array, what="allreduce"):
        """Sum `array` over all ranks, in place, with MPI's algorithm."""
        self.wait(self.iallreduce(array), what)
        return array

    def iallgather(self, array, out):
        """Start gathering every rank's `array` into out[rank] (out has shape (size, *array.shape))."""
        self.bytes_sent += array.nbytes * (self.size - 1)
        return self.comm.Iallgather(array, out)

    def allgather(self, array, what="allgather"):
        out = np.empty((self.size,) + array.shape, array.dtype)
        self.wait(self.iallgather(np.ascontiguousarray(array), out), what)
        return out

    def gather_object(self, obj, root=0, what="gather", tolerate_missing=False):
        """Every rank's picklable `obj` as a list on `root` (None elsewhere). For small summaries only.

        Point to point, so that with tolerate_missing=True a rank that never sends (a hung one)
        costs one timeout and appears as None in the list, instead of stopping the gather.
        """
        import pickle

        tag = _ARRIVE_TAG - 1
        if self.rank != root:
            self.send(np.frombuffer(pickle.dumps(obj), dtype=np.uint8), root, tag, what=what)
            return None
        MPI, status = self.MPI, self.MPI.Status()
        result = []
        for r in range(self.size):
            if r == root:
                result.append(obj)
                continue
            try:
                poll(
                    lambda r=r: self.comm.Iprobe(source=r, tag=tag, status=status),
                    self.timeout,
                    lambda waited, r=r: (
                        f"rank {self.rank}: {what}: nothing from rank {r} after {waited:.1f} s; waiting for rank {r}"
                    ),
                )
            except DistributedTimeout:
                if not tolerate_missing:
                    raise
                result.append(None)
                continue
            buffer = np.empty(status.Get_count(MPI.BYTE), dtype=np.uint8)
            self.comm.Recv(buffer, source=r, tag=tag)
            result.append(pickle.loads(buffer.tobytes()))
        return result

    def split(self, color, key=None):
        """A Communicator over the ranks that passed the same color (MPI_Comm_split)."""
        comm = self.comm.Split(color, self.rank if key is None else key)
        return Communicator(comm, timeout=self.timeout)


class BlockingWaits:
    """Waits inside MPI for one stretch of a hot loop, such as a phase of the ring allreduce.

    wait(requests, step) blocks until the requests are done, or raises DistributedTimeout after
    the Communicator's timeout naming `peers` (and the step, if given), as wait_all would. The
    set-up is done once per loop and each wait only tells the watchdog about itself: with ranks
    sharing cores, every microsecond between a message arriving and the next leaving delays
    the whole ring (a wait that also built its message and looked up its watchdog made a 1 MB
    ring allreduce on 4 ranks ~10% slower).
    """

    __slots__ = ("_comm", "_what", "peers", "_watchdog")

    def __init__(self, comm, what, peers):
        self._comm, self._what, self.peers = comm, what, peers  # what may hold "{step}"
        self._watchdog = comm._watchdog

    def wait(self, requests, step=None):
        watchdog = self._watchdog
        if watchdog is None:  # MPI without thread support: poll
            self._comm.wait_all(requests, self.describe(step), self.peers)
            return
        watchdog.waits, watchdog.step, watchdog.requests = self, step, requests
        try:
            if len(requests) == 1:
                requests[0].Wait()
            else:
                self._comm.MPI.Request.Waitall(requests)
        finally:
            watchdog.requests = None
        if watchdog.expired:
            watchdog.expired = False
            raise DistributedTimeout(self._comm._timeout_message(self, step, self._comm.timeout))

    def describe(self, step):
        return self._what if step is None else self._what.format(step=step)


def allreduce_bytes(nbytes, size):
    """Bytes one rank sends in a bandwidth-optimal allreduce (the ring's): 2·(N-1)/N of the buffer."""
    return 0 if size < 2 else 2 * (size - 1) * nbytes // size


_world = []


def world(timeout=None):
    """The Communicator of all ranks (made once); timeout, if given, replaces its timeout."""
    if not _world:
        _world.append(Communicator())
    if timeout is not None:
        _world[0].timeout = timeout
    return _world[0]
