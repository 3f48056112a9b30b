"""The parameter server over MPI: Downpour SGD with async, bounded-delay and backup-worker modes.

DistBelief's picture: "Parameter Server p'' = p' + Δp'", with model replicas (workers) each
training on its own shard of the data. Ranks 0 .. S-1 are servers, each holding a shard of
the parameters (whole arrays, balanced by size); the other ranks are workers. A worker runs
Downpour SGD:

    every n_fetch steps:  pull the parameters from every server
    every step:           compute ∂W on the next batch of its data shard (on its copy of W)
    every n_push steps:   push the gradients accumulated since the last push

A server answers pulls and applies pushed gradients with minidl.optim's update functions.
*Which* gradient is applied, *when*, and how stale it was are decided by
minidl.distributed.rules.ServerRules (no MPI in it); this module only moves bytes.

Messages are one buffer each, a 48-byte header of six int64 and a payload (the parameters
or gradients of the server's shard, possibly 16-bit compressed):

    PULL    worker -> server   [worker]
    PARAMS  server -> worker   [version, done] + parameters
    PUSH    worker -> server   [worker, version, examples, correct, loss sum (float64 bits)] + gradients
    LEAVE   worker -> server   [worker]

(examples, correct and the loss sum describe the batches behind the gradient, for the progress bar.)

A server never blocks on one worker: it answers whoever sends something, so in async and
backup mode a slow or hung worker cannot stall training. When the rules make a pull wait
(bounded delay) or a synchronous step cannot finish for longer than the timeout, the server
raises an error naming the worker ranks it waits for. Workers wait twice as long as the
server, so that the server, which knows whom everyone waits for, is the one that reports.
"""

import os
import time

import numpy as np

from minidl.distributed.comm import DistributedTimeout
from minidl.distributed.comm import poll as _poll
from minidl.distributed.compression import get_compressor
from minidl.distributed.rules import shard_parameters

TAG_PULL, TAG_PARAMS, TAG_PUSH, TAG_LEAVE, TAG_SNAPSHOT = 101, 102, 103, 104, 105
HEADER_SLOTS = 6
HEADER_BYTES = 8 * HEADER_SLOTS


def poll(test, timeout, on_timeout, comm):
    """minidl.distributed.comm.poll, yielding the CPU in short waits when ranks outnumber cores."""
    _poll(test, timeout, on_timeout, share_cpu=comm.oversubscribed)


def pack(header, payload=None):
    """One message: HEADER_SLOTS int64 header values (zero-padded), then the payload's bytes."""
    size = 0 if payload is None else payload.nbytes
    message = np.empty(HEADER_BYTES + size, np.uint8)
    message[:HEADER_BYTES].view(np.int64)[:] = list(header) + [0] * (HEADER_SLOTS - len(header))
    if payload is not None:
        message[HEADER_BYTES:] = np.ascontiguousarray(payload).view(np.uint8).reshape(-1)
    return message


def unpack(message, wire_dtype):
    """(header as a list of ints, payload as an array of wire_dtype) of a packed message."""
    header = message[:HEADER_BYTES].view(np.int64)
    return [int(h) for h in header], message[HEADER_BYTES:].view(wire_dtype)


class Outbox:
    """Non-blocking sends in flight, each kept with its buffer until MPI has taken it (a buffer
    freed early would be sent half-overwritten). Bytes sent are counted on the Comm."""

    def __init__(self, mpi_comm, comm, timeout, what):
        self.mpi, self.comm, self.timeout, self.what = mpi_comm, comm, timeout, what
        self.pending = []  # (request, buffer)

    def send(self, message, rank, tag, counted=True):
        if counted:
            self.comm.bytes_sent += message.nbytes
        self.pending.append((self.mpi.Isend(message, dest=rank, tag=tag), message))

    def flush(self, wait=False):
        """Forget the sends MPI has completed; with wait=True, wait (up to the timeout) for all of them."""
        if wait and self.pending:
            requests = [r for r, _ in self.pending]
            poll(
                lambda: self.comm.MPI.Request.Testall(requests),
                self.timeout,
                lambda waited: f"{self.what} not taken after {waited:.1f} s",
                self.comm,
            )
            self.pending = []
        else:
            self.pending = [(r, m) for r, m in self.pending if not r.Test()]


class Layout:
    """Which server holds which parameter, and how a server's shard is laid out in a flat buffer."""

    def __init__(self, shapes, num_servers):
        self.shapes = [tuple(s) for s in shapes]
        self.num_servers = num_servers
        sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.owner = shard_parameters(sizes, num_servers)
        self.indices = [[i for i, o in enumerate(self.owner) if o == s] for s in range(num_servers)]
        self.counts = [sum(sizes[i] for i in idx) for idx in self.indices]
        for s, count in enumerate(self.counts):
            if count == 0:
                raise ValueError(f"parameter server: server {s} would hold no parameters; use fewer servers")

    def shard(self, arrays, server):
        return [arrays[i] for i in self.indices[server]]


def _flat(arrays):
    return np.concatenate([np.asarray(a, dtype=np.float32).reshape(-1) for a in arrays])


def _split_into(flat, arrays):
    offset = 0
    for a in arrays:
        a[...] = flat[offset : offset + a.size].reshape(a.shape)
        offset += a.size


class ParameterServer:
    """One server rank: holds `rules.params` (its shard) and serves the workers until they all leave.

    comm           a Communicator (a private copy of MPI_COMM_WORLD is used for the messages)
    rules          the ServerRules for this server's shard
    worker_ranks   rank of worker 0, 1, ...
    on_update      called as on_update(server, result, stats) after every push, stats being the pushed batches'
                   (loss sum, correct, examples): progress bars, checkpoints, evaluation
    """

    def __init__(self, comm, rules, worker_ranks, compression="none", on_update=None):
        self.comm = comm
        self.mpi = comm.comm.Dup()  # our own channel: no other message can be taken for ours
        self.rules = rules
        self.worker_ranks = list(worker_ranks)
        self.worker_of = {rank: w for w, rank in enumerate(self.worker_ranks)}
        self.codec = get_compressor(compression)
        self.on_update = on_update
        self.timeout = comm.timeout
        self.outbox = Outbox(self.mpi, comm, self.timeout, f"server rank {comm.rank}: replies")
        self._encoded = (None, None)  # (version, encoded parameters): one encoding per version
        self._snapshots = {}  # (server rank, version) -> flat float32 shard, on server 0
        self.pull_waits = {}  # worker -> time its pull started waiting
        self.messages = 0
        self.missing = []  # worker ranks that never finished (given up on after training was done)

    # ------------------------------------------------------------ the loop
    def run(self):
        """Serve until every worker has left. Returns the rules' summary.

        Once training is done, a worker that stays silent for the timeout (hung) is given up
        on: its rank is listed in `self.missing` and the server returns without it.
        """
        MPI = self.comm.MPI
        status = MPI.Status()
        live = set(self.worker_ranks)
        last_message = time.perf_counter()
        pause = 0.0
        while live:
            if not self.mpi.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
                now = time.perf_counter()
                if self.rules.done and now - last_message > self.timeout:
                    self.missing = sorted(live)
                    break
                self._check_waits(now, last_message, live)
                pause = min(max(pause * 2, 5e-6), 1e-3) if now - last_message > 2e-3 else 0.0
                if pause:
                    time.sleep(pause)
                elif self.comm.oversubscribed:
                    os.sched_yield()  # a worker may be waiting for our core
                continue
            pause = 0.0
            source, tag = status.Get_source(), status.Get_tag()
            message = np.empty(status.Get_count(MPI.BYTE), np.uint8)
            self.mpi.Recv(message, source=source, tag=tag)
            last_message = time.perf_counter()
            self.messages += 1
            if tag == TAG_SNAPSHOT:
                header, payload = unpack(message, np.float32)
                self._snapshots[(source, header[0])] = payload.copy()
                continue
            worker = self.worker_of[source]
            if tag == TAG_PULL:
                if self.rules.pull(worker):
                    self._send_params([worker])
                else:
                    self.pull_waits[worker] = last_message
            elif tag == TAG_PUSH:
                header, payload = unpack(message, self.codec.wire_dtype)
                grads = [np.empty(self.rules.params[i].shape, np.float32) for i in range(len(self.rules.params))]
                _split_into(self.codec.decode(payload), grads)
                result = self.rules.push(worker, grads, header[1])
                self._send_params(result.released)
                if self.on_update is not None:
                    loss_sum = np.array([header[4]], np.int64).view(np.float64)[0]
                    self.on_update(self, result, np.array([loss_sum, header[3], header[2]]))
            elif tag == TAG_LEAVE:
                live.discard(source)
                self._send_params(self.rules.leave(worker))
            self.outbox.flush()
        if not self.missing:
            self.outbox.flush(wait=True)
        return self.rules.summary()

    def _send_params(self, workers):
        if not workers:
            return
        version, params, done = self.rules.reply()
        if self._encoded[0] != version:
            self._encoded = (version, self.codec.encode(_flat(params)))
        payload = self._encoded[1]
        for worker in workers:
            self.pull_waits.pop(worker, None)
            self.outbox.send(pack([version, int(done)], payload), self.worker_ranks[worker], TAG_PARAMS)

    def _check_waits(self, now, last_message, live):
        rank = self.comm.rank
        if self.pull_waits:
            oldest = min(self.pull_waits.values())
            if now - oldest > self.timeout:
                blocking = [self.worker_ranks[w] for w in self.rules.blocking_workers()]
                waiting = sorted(self.worker_ranks[w] for w in self.pull_waits)
                raise DistributedTimeout(
                    f"server rank {rank}: {self.rules.mode} mode: ranks {waiting} have waited {now - oldest:.1f} s "
                    f"for parameters; waiting for worker rank {', '.join(map(str, blocking))} "
                    f"(no gradient from it for version {self.rules.version})"
                )
        if now - last_message > self.timeout:
            raise DistributedTimeout(
                f"server rank {rank}: no message from any worker for {now - last_message:.1f} s; "
                f"waiting for worker rank {', '.join(map(str, sorted(live)))}"
            )

    # ------------------------------------------------------------ several servers: the full model on server 0
    def send_snapshot(self, root=0):
        """A non-root server sends its shard (as of now) to server `root`."""
        message = pack([self.rules.version], _flat(self.rules.params))
        self.outbox.send(message, root, TAG_SNAPSHOT, counted=False)  # the final model, not training traffic

    def receive_snapshots(self, server_ranks, version):
        """On server 0: every other server's shard at `version` (they send it when they reach it)."""
        MPI = self.comm.MPI
        status = MPI.Status()
        shards = {}
        for rank in server_ranks:
            if rank == self.comm.rank:
                continue

            def arrived(rank=rank):
                if (rank, version) in self._snapshots:
                    return True
                while self.mpi.Iprobe(source=rank, tag=TAG_SNAPSHOT, status=status):
                    message = np.empty(status.Get_count(MPI.BYTE), np.uint8)
                    self.mpi.Recv(message, source=rank, tag=TAG_SNAPSHOT)
                    header, payload = unpack(message, np.float32)
                    self._snapshots[(rank, header[0])] = payload.copy()
                return (rank, version) in self._snapshots

            poll(
                arrived,
                self.timeout,
                lambda waited, rank=rank: (
                    f"server rank {self.comm.rank}: no snapshot of version {version} "
                    f"from server rank {rank} after {waited:.1f} s"
                ),
                self.comm,
            )
            shards[rank] = self._snapshots.pop((rank, version))
        return shards


class WorkerClient:
    """A worker's side of the conversation: pull parameters from, and push gradients to, every server."""

    def __init__(self, comm, layout, server_ranks, worker_index, compression="none"):
        self.comm = comm
        self.mpi = comm.comm.Dup()  # matches the servers' Dup (MPI_Comm_dup is collective, in the same order)
        self.layout = layout
        self.server_ranks = list(server_ranks)
        self.worker = worker_index
        self.codec = get_compressor(compression)
        self.timeout = 2 * comm.timeout  # the server reports first: it knows whom everyone waits for
        self.versions = [0] * len(self.server_ranks)
        self.outbox = Outbox(self.mpi, comm, self.timeout, f"worker rank {comm.rank}: sends")

    def pull(self, params):
        """Fill `params` (arrays, all of the model's) with the servers' values. Returns done (training over)."""
        for rank in self.server_ranks:
            self.outbox.send(pack([self.worker]), rank, TAG_PULL)
        done = False
        MPI = self.comm.MPI
        status = MPI.Status()
        for s, rank in enumerate(self.server_ranks):
            poll(
                lambda rank=rank: self.mpi.Iprobe(source=rank, tag=TAG_PARAMS, status=status),
                self.timeout,
                lambda waited, rank=rank: (
                    f"worker rank {self.comm.rank}: no parameters from server rank {rank} after {waited:.1f} s"
                ),
                self.comm,
            )
            message = np.empty(status.Get_count(MPI.BYTE), np.uint8)
            self.mpi.Recv(message, source=rank, tag=TAG_PARAMS)
            header, payload = unpack(message, self.codec.wire_dtype)
            self.versions[s] = header[0]
            done = done or bool(header[1])
            _split_into(self.codec.decode(payload), self.layout.shard(params, s))
        self.outbox.flush()
        return done

    def push(self, grads, versions=None, stats=(0, 0, 0.0)):
        """Send each server the gradients of its shard, with the version they were computed on.

        stats: (examples, correct, loss sum) of the batches behind the gradients.
        """
        versions = self.versions if versions is None else versions
        examples, correct, loss_sum = stats
        loss_bits = int(np.array([loss_sum], np.float64).view(np.int64)[0])
        for s, rank in enumerate(self.server_ranks):
            payload = self.codec.encode(_flat(self.layout.shard(grads, s)))
            header = [self.worker, versions[s], int(examples), int(correct), loss_bits]
            self.outbox.send(pack(header, payload), rank, TAG_PUSH)
        self.outbox.flush()

    def leave(self):
        for rank in self.server_ranks:
            self.outbox.send(pack([self.worker]), rank, TAG_LEAVE)
        self.outbox.flush(wait=True)


def downpour_worker(client, params, compute_gradients, n_fetch=1, n_push=1, after_step=None):
    """Downpour SGD on one worker until the servers say training is done. Returns the steps taken.

    params              the model's parameter arrays (pulls overwrite them)
    compute_gradients() one batch's forward and backward; returns (gradient arrays in the order of
                        params, (examples, correct, loss sum) of the batch)
    n_fetch, n_push     pull every n_fetch steps, push the sum of the gradients every n_push steps
    after_step(step)    called after every step (e.g. a simulated slowdown)

    Between fetches the worker computes on its stale copy; a pushed sum carries the oldest
    version it was computed on, so the server's staleness counts the full delay.
    """
    if n_fetch < 1 or n_push < 1:
        raise ValueError(f"downpour_worker: n_fetch and n_push must be >= 1, got {n_fetch}, {n_push}")
    accumulated, oldest, stats = None, None, np.zeros(3)
    step = 0
    done = client.pull(params)
    while not done:
        grads, batch_stats = compute_gradients()
        stats += batch_stats
        if accumulated is None:
            accumulated = [np.array(g, dtype=np.float32) for g in grads]
            oldest = list(client.versions)
        else:
            for a, g in zip(accumulated, grads):
                a += g
        step += 1
        if step % n_push == 0:
            client.push(accumulated, oldest, stats)
            accumulated, stats = None, np.zeros(3)
        if after_step is not None:
            after_step(step)
        if step % n_fetch == 0:
            done = client.pull(params)
    client.leave()
    return step
