"""The discrete-event simulator: N workers and S parameter-server shards on one simulated clock.

Nothing here sleeps or reads a clock to decide anything: an event queue ordered by
simulated time (ties broken by the order events were scheduled) drives everything, so a run
is a pure function of its SimConfig and seed. The pieces:

- Workers run Downpour SGD exactly as minidl.distributed.parameter_server.downpour_worker
  does: pull the parameters from every shard, compute a gradient (its duration drawn from the
  compute model), push every n_push steps, pull again every n_fetch steps.
- Shards are the MPI server's logic without MPI: each holds a minidl.distributed.rules.ServerRules
  (the very class the MPI server uses), decodes pushes and encodes replies with the same codec,
  flattening and splitting functions, so for the same arrival order they apply the same
  gradients and end with the same bits (tests/test_sim_server.py checks this against the MPI
  server's own loop).
- Messages cross a simulated network (minidl.sim.network): latency, bandwidth, a shared
  server link.
- Gradients are real (minidl.sim.workload) and computed lazily: only when a push reaches a
  server are its values needed, and by then every worker that computes on the same parameter
  version has started, so all of them are computed in one stacked pass.
- Failures: a worker dies at a given time (its work is lost; the servers wait for it forever
  unless detect_failures_after is set, after which they call ServerRules.leave). A shard goes
  down and comes back from its last checkpoint (ServerRules.state_dict); messages sent to it
  in between are lost, and every worker is told to pull from it again.

A run ends when a shard has applied `updates` updates (as the MPI job does), at `max_time`,
at the target accuracy (stop_at_target), or when nothing can happen any more: a stall, which
is reported with the workers the servers wait for.
"""

import heapq
import math

import numpy as np

from minidl.distributed.compression import get_compressor
from minidl.distributed.parameter_server import Layout, _flat, _split_into
from minidl.distributed.rules import ServerRules, SparseRows, UpdateRule
from minidl.sim.config import SimConfig
from minidl.sim.network import Channels, Network
from minidl.sim.results import SimResult
from minidl.sim.timing import Fixed, parse_compute
from minidl.sim.workload import Stopwatch, Workload

# Event kinds.
TO_SHARD, TO_WORKER, COMPUTED, DIES, SHARD_DOWN, SHARD_UP, DETECTED = range(7)
# Message kinds.
PULL, PUSH, REPLY, RESTARTED, STEP_DONE = range(5)
MAX_STACK = 256  # batches per stacked pass: bounds the memory of per-worker gradients


class Snapshot:
    """A shard's parameters at one version, as a worker receives them (decoded, so compression's
    rounding is in them). Shared by every worker that pulled this version."""

    __slots__ = ("uid", "shard", "incarnation", "version", "arrays", "done", "nbytes")

    def __init__(self, uid, shard, incarnation, version, arrays, done, nbytes):
        self.uid, self.shard, self.incarnation, self.version = uid, shard, incarnation, version
        self.arrays, self.done, self.nbytes = arrays, done, nbytes


class Ticket:
    """One step's gradient, to be computed when it is first needed: parameters, batch, result."""

    __slots__ = ("key", "params", "batch", "result", "canceled")

    def __init__(self, key, params, batch):
        self.key, self.params, self.batch = key, params, batch
        self.result = None
        self.canceled = False


class LazyGradients:
    """Gradients computed on demand, stacking every pending step that shares the same parameters."""

    def __init__(self, workload):
        self.workload = workload
        self.pending = {}  # key -> tickets not computed yet
        self.computed = 0
        self.stacked_passes = 0

    def submit(self, key, params, batch):
        ticket = Ticket(key, params, batch)
        self.pending.setdefault(key, []).append(ticket)
        return ticket

    def cancel(self, ticket):
        if ticket.result is None and not ticket.canceled:
            ticket.canceled = True
            group = self.pending.get(ticket.key)
            if group is not None:
                group.remove(ticket)
                if not group:
                    del self.pending[ticket.key]

    def result(self, ticket):
        if ticket.result is None:
            group = self.pending.pop(ticket.key)
            for start in range(0, len(group), MAX_STACK):
                chunk = group[start : start + MAX_STACK]
                for t, r in zip(chunk, self.workload.gradients(chunk[0].params, [t.batch for t in chunk])):
                    t.result = r
                self.computed += len(chunk)
                self.stacked_passes += len(chunk) > 1 and self.workload.stackable
        return ticket.result


class Push:
    """The gradients one worker pushes (the sum of its last n_push steps), sent to every shard."""

    __slots__ = ("worker", "tickets", "versions", "incarnations", "reads", "full", "stats", "remaining")

    def __init__(self, worker, tickets, versions, incarnations, reads, remaining):
        self.worker, self.tickets, self.versions, self.incarnations = worker, tickets, versions, incarnations
        self.reads = reads  # Hogwild: {parameter index: (rows, read counts)}
        self.full, self.stats = None, None
        self.remaining = remaining

    def gradients(self, pool):
        """The full model's gradient (summed over the steps) and the batches' (examples, correct, loss sum)."""
        if self.full is None:
            total, stats = None, np.zeros(3)
            for ticket in self.tickets:
                grads, batch_stats = pool.result(ticket)
                stats += batch_stats
                if total is None:
                    total = [g if isinstance(g, SparseRows) else np.array(g, dtype=np.float32) for g in grads]
                else:
                    for a, g in zip(total, grads):
                        a += g
            self.full, self.stats = total, stats
            self.tickets = None
        return self.full, self.stats


class WorkerState:
    __slots__ = (
        "index", "alive", "speed", "rng", "have", "outstanding", "known", "computing", "generation", "current",
        "busy_since", "step", "tickets", "oldest", "oldest_incarnations", "batch", "reads", "compute_seconds",
        "blocked_seconds", "end", "pushes",
    )  # fmt: skip

    def __init__(self, index, speed, rng, num_servers):
        self.index, self.alive, self.speed, self.rng = index, True, speed, rng
        self.have = [None] * num_servers  # the Snapshot held from each shard
        self.outstanding = set()  # shards whose reply is awaited
        self.known = [0] * num_servers  # each shard's incarnation as this worker knows it
        self.computing = False
        self.generation = 0  # bumped to cancel the step in progress
        self.current = None
        self.busy_since = 0.0
        self.step = 0
        self.tickets = []
        self.oldest = None
        self.oldest_incarnations = None
        self.batch = None  # Hogwild: the next batch, drawn before the pull that reads its rows
        self.reads = {}  # Hogwild: {parameter index: (rows, values, counts)} read from the shards
        self.compute_seconds = 0.0
        self.blocked_seconds = 0.0  # waiting for a server's rules (bounded delay, a sync step)
        self.end = None
        self.pushes = 0


class Shard:
    """One parameter-server shard: ServerRules, its codec, checkpoints, the snapshot of its current version."""

    def __init__(self, index, rules, codec, layout, sparse):
        self.index, self.rules, self.codec = index, rules, codec
        self.params_indices = layout.indices[index]
        self.dense = [k for k, i in enumerate(self.params_indices) if i not in sparse]  # positions within the shard
        self.sparse = [k for k, i in enumerate(self.params_indices) if i in sparse]
        self.dense_count = sum(rules.params[k].size for k in self.dense)
        self.up = True
        self.incarnation = 0
        self.checkpoint = rules.state_dict()  # the state it comes back with after a restart
        self.snapshot = None
        self.blocked_since = {}
        self.log = None  # [(kind, worker, version, payload)] when recording arrivals
        self.replies = None  # [("reply", worker, version, None)] when recording arrivals
        self.lost_messages = 0
        self.lost_updates = 0
        self.restarts = 0


class Simulation:
    """One simulated run of `config` (a SimConfig). run() returns a SimResult.

    progress(updates, now) is called after each update of shard 0, for a progress bar.
    record_arrivals=True keeps each shard's arrival log (kind, worker, version, wire payload),
    which a test replays into the MPI server.
    """

    def __init__(self, config=None, workload=None, progress=None, record_arrivals=False, **settings):
        config = SimConfig(**settings) if config is None else config.replace(**settings)
        config.check()
        self.config = c = config
        self.progress = progress
        n = c.total_workers
        self.workload = workload or Workload(
            c.model, c.dataset, c.hidden, c.batch_size, num_workers=n, seed=c.seed, stack=c.stack_gradients
        )
        if len(self.workload.shards) < n:
            raise ValueError(f"Simulation: the workload has data shards for {len(self.workload.shards)} workers, "
                             f"the run has {n}")  # fmt: skip
        compute = parse_compute(c.compute) if not _is_measured(c.compute) else "measured"
        self.measured_seconds = None
        if compute == "measured":  # timed once, then fixed: the run stays deterministic
            self.measured_seconds = self.workload.measure_step_seconds()
            compute = Fixed(self.measured_seconds)
        self.compute = compute
        self.network = Network(c.latency, c.bandwidth, c.server_bandwidth)
        self.channels = Channels(self.network, n, c.servers)
        self.layout = Layout(self.workload.shapes, c.servers)
        self.sparse = set(self.workload.sparse_params) if c.mode == "hogwild" else set()
        needed = c.workers
        batches_per_update = needed if c.mode in ("sync", "backup") else 1
        self.updates_per_epoch = max(1, math.ceil(self.workload.train_size / (c.batch_size * batches_per_update)))
        self.shards = []
        for s in range(c.servers):
            rule = UpdateRule(c.optimizer, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay,
                              lr_decay=c.lr_decay)  # fmt: skip
            rules = ServerRules(
                [self.workload.params[i].copy() for i in self.layout.indices[s]],
                rule,
                mode=c.rules_mode,
                num_workers=n,
                bound=c.bound,
                num_backup=c.backup if c.mode == "backup" else 0,
                total_updates=c.updates,
                updates_per_epoch=self.updates_per_epoch if c.lr_decay else None,
            )
            shard = Shard(s, rules, get_compressor(c.compression), self.layout, self.sparse_positions(s))
            shard.log = [] if record_arrivals else None
            shard.replies = [] if record_arrivals else None
            self.shards.append(shard)
        self.workers = [
            WorkerState(w, float(c.slow_workers.get(w, 1.0)), np.random.default_rng([c.seed, 3, w]), c.servers)
            for w in range(n)
        ]
        self.pool = LazyGradients(self.workload)
        self.queue = []
        self.sequence = 0
        self.now = 0.0
        self.finished = None  # why the run ended
        self.snapshot_uid = 0
        self.events = 0
        self.rules_clock = Stopwatch()
        self.update_times = []  # simulated time of every update of shard 0
        self.history = []
        self.window = np.zeros(3)  # (loss sum, correct, examples) of gradients applied since the last evaluation
        self.examples = 0
        self.time_to_target = None
        self.updates_to_target = None
        self.last_update = 0.0
        self.deaths = {}
        self.detected = set()
        self._eval_every = c.eval_every
        self._eval_updates = c.eval_updates
        if self._eval_every is None and self._eval_updates is None:
            if c.max_time is not None:
                self._eval_every = c.max_time / 40
            else:
                self._eval_updates = max(1, c.updates // 40)
        self._next_eval = self._eval_every

    def sparse_positions(self, shard):
        return {i for i in self.layout.indices[shard] if i in self.sparse}

    # ------------------------------------------------------------ the event loop
    def schedule(self, when, kind, a=None, b=None):
        self.sequence += 1
        heapq.heappush(self.queue, (when, self.sequence, kind, a, b))

    def run(self):
        """Simulate until the end; returns a SimResult. A Simulation runs once."""
        if self.events or self.finished:
            raise RuntimeError("Simulation.run: this simulation has already run; make a new Simulation")
        clock = Stopwatch()
        with _one_blas_thread(), clock:
            self._run()
        return SimResult.from_simulation(self, clock)

    def _run(self):
        c = self.config
        for w, when in c.worker_failures:
            self.schedule(float(when), DIES, w)
        for s, when, downtime in c.server_restarts:
            self.schedule(float(when), SHARD_DOWN, s)
            self.schedule(float(when) + float(downtime), SHARD_UP, s)
        self._evaluate(0.0)
        for worker in self.workers:
            self._pull(worker, range(c.servers))
        handlers = (self._at_shard, self._at_worker, self._computed, self._dies, self._shard_down, self._shard_up,
                    self._detected)  # fmt: skip
        queue, max_time = self.queue, c.max_time
        while queue and self.finished is None:
            when, _, kind, a, b = heapq.heappop(queue)
            if max_time is not None and when > max_time:
                self._evaluate_until(max_time)
                self.now = max_time
                self.finished = "max_time"
                break
            if self._next_eval is not None and when >= self._next_eval:
                self._evaluate_until(when)
            self.now = when
            handlers[kind](a, b)
            self.events += 1
        if self.finished is None:
            self.finished = "stalled"
            self.now = max(self.now, self.last_update)
        if not self.history or self.history[-1]["time"] < self.now:
            self._evaluate(self.now)

    # ------------------------------------------------------------ workers
    def _pull(self, worker, shards):
        """The worker asks each shard for its parameters (a Hogwild worker: the rows of its next batch)."""
        for s in shards:
            worker.outstanding.add(s)
            worker.have[s] = None
            payload = 0
            if self.shards[s].sparse:  # the row ids it wants
                if worker.batch is None:
                    worker.batch = self.workload.next_batch(worker.index)
                payload = 8 * len(self.workload.rows_needed(worker.batch)) * len(self.shards[s].sparse)
            arrival = self.channels.to_shard(self.now, worker.index, s, payload)
            self.schedule(arrival, TO_SHARD, s, (PULL, worker.index, worker.known[s]))

    def _at_worker(self, w, message):
        worker = self.workers[w]
        if not worker.alive:
            return
        kind = message[0]
        if kind == REPLY:
            _, s, snapshot, reads = message
            if s not in worker.outstanding or snapshot.incarnation != worker.known[s]:
                return  # an answer to a pull the worker has given up on
            worker.outstanding.discard(s)
            worker.have[s] = snapshot
            worker.reads.update(reads)
            if not worker.outstanding and not worker.computing:
                self._start_step(worker)
        elif kind == RESTARTED:  # a shard came back from its checkpoint: start again from a fresh pull
            _, s, incarnation = message
            worker.known[s] = incarnation
            self._cancel_step(worker)
            for ticket in worker.tickets:  # steps computed on parameters the restart took back
                self.pool.cancel(ticket)
            worker.tickets, worker.oldest = [], None
            worker.reads = {i: read for i, read in worker.reads.items() if self.layout.owner[i] != s}
            self._pull(worker, [s])
        elif kind == STEP_DONE:  # backup mode, abort_late: the step this worker computes for is over
            _, s, version = message
            have = worker.have[s]
            if worker.computing and have is not None and have.version < version:
                self._cancel_step(worker)
                # From every shard: the others are about to apply the same step (a shard that has not
                # yet holds the pull until it has, as for any pull in backup mode).
                self._pull(worker, range(len(self.shards)))

    def _start_step(self, worker):
        if worker.batch is None:
            worker.batch = self.workload.next_batch(worker.index)
        params = [None] * len(self.workload.shapes)
        key = []
        for s, snapshot in enumerate(worker.have):
            key.append(snapshot.uid)
            for i, array in zip(self.layout.indices[s], snapshot.arrays):
                params[i] = array
        for i, (rows, values, _counts) in worker.reads.items():
            params[i] = (rows, values)
        key = tuple(key) if not worker.reads else ("read", worker.index, self.sequence)  # a sparse read is private
        worker.current = self.pool.submit(key, params, worker.batch)
        worker.batch = None
        worker.computing = True
        worker.busy_since = self.now
        duration = float(self.compute.sample(worker.rng)) * worker.speed
        self.schedule(self.now + duration, COMPUTED, worker.index, worker.generation)

    def _cancel_step(self, worker):
        if worker.computing:
            worker.computing = False
            worker.compute_seconds += self.now - worker.busy_since  # wasted, but the worker was busy
            worker.batch = worker.current.batch  # the work is lost, the data is not: the next step uses it
            self.pool.cancel(worker.current)
            worker.current = None
            worker.generation += 1

    def _computed(self, w, generation):
        worker = self.workers[w]
        if not worker.alive or generation != worker.generation:
            return
        c = self.config
        worker.computing = False
        worker.compute_seconds += self.now - worker.busy_since
        worker.step += 1
        if not worker.tickets:  # the oldest parameters this push was computed on
            worker.oldest = [snapshot.version for snapshot in worker.have]
            worker.oldest_incarnations = [snapshot.incarnation for snapshot in worker.have]
        worker.tickets.append(worker.current)
        worker.current = None
        if worker.step % c.n_push == 0:
            self._push(worker)
        if worker.step % c.n_fetch == 0:
            self._pull(worker, range(c.servers))
        else:
            self._start_step(worker)

    def _push(self, worker):
        reads = {i: (rows, counts) for i, (rows, _values, counts) in worker.reads.items()}
        push = Push(worker.index, worker.tickets, worker.oldest, worker.oldest_incarnations, reads, len(self.shards))
        worker.tickets, worker.reads = [], {}
        worker.pushes += 1
        for s, shard in enumerate(self.shards):
            payload = shard.codec.wire_nbytes(shard.dense_count)
            for k in shard.sparse:
                rows = reads[shard.params_indices[k]][0]
                row_size = int(np.prod(shard.rules.params[k].shape[1:]))
                payload += shard.codec.wire_nbytes(len(rows) * row_size) + 8 * len(rows)
            arrival = self.channels.to_shard(self.now, worker.index, s, payload)
            self.schedule(arrival, TO_SHARD, s, (PUSH, push))

    def _dies(self, w, _):
        worker = self.workers[w]
        if not worker.alive:
            return
        self._cancel_step(worker)
        worker.alive = False
        worker.end = self.now
        self.deaths[w] = self.now
        if self.config.detect_failures_after is not None:
            self.schedule(self.now + self.config.detect_failures_after, DETECTED, w)

    def _detected(self, w, _):
        """The servers notice the dead worker and stop waiting for it (ServerRules.leave)."""
        self.detected.add(w)
        for shard in self.shards:
            if shard.up:
                self._reply(shard, shard.rules.leave(w))

    # ------------------------------------------------------------ shards
    def _at_shard(self, s, message):
        shard = self.shards[s]
        if not shard.up:
            shard.lost_messages += 1
            return
        kind = message[0]
        if kind == PULL:
            _, w, incarnation = message
            if incarnation != shard.incarnation:  # sent to the shard's previous life
                shard.lost_messages += 1
                return
            if shard.log is not None:
                shard.log.append(("pull", w, None, None))
            if shard.rules.pull(w):
                self._reply(shard, [w])
            else:
                shard.blocked_since[w] = self.now
        else:
            self._receive_push(shard, message[1])

    def _receive_push(self, shard, push):
        s = shard.index
        push.remaining -= 1
        if push.incarnations[s] != shard.incarnation:  # computed on parameters the restart took back
            shard.lost_messages += 1
            return
        full, stats = push.gradients(self.pool)
        if push.remaining == 0:
            push.full = None  # every shard has its part: let the memory go
        grads, wire = self._decode_push(shard, push, full)
        if shard.log is not None:
            shard.log.append(("push", push.worker, push.versions[s], wire))
        rules = shard.rules
        before = rules.version
        with self.rules_clock:  # for the benchmark's breakdown only
            result = rules.push(push.worker, grads, push.versions[s])
        if s == 0 and result.applied:
            self.window += (stats[2], stats[1], stats[0])
            self.examples += int(stats[0])
        self._reply(shard, result.released)
        if rules.version != before:
            self._updated(shard)

    def _decode_push(self, shard, push, full):
        """What the MPI server does with a push: decode the wire payload and split it into the shard's arrays."""
        rules = shard.rules
        grads = [None] * len(rules.params)
        dense = [full[shard.params_indices[k]] for k in shard.dense]
        wire = None
        if dense and shard.codec.name == "none" and shard.log is None:
            # float32 -> bytes -> float32 changes no bit: hand the arrays over as they are (the server only reads them)
            for k, array in zip(shard.dense, dense):
                grads[k] = array
        elif dense:
            wire = shard.codec.encode(_flat(dense))
            arrays = [np.empty(rules.params[k].shape, np.float32) for k in shard.dense]
            _split_into(shard.codec.decode(wire), arrays)
            for k, array in zip(shard.dense, arrays):
                grads[k] = array
        for k in shard.sparse:
            i = shard.params_indices[k]
            rows, counts = push.reads[i]
            sparse = full[i]
            values = shard.codec.decode(shard.codec.encode(sparse.values.reshape(-1))).reshape(sparse.values.shape)
            grads[k] = SparseRows(rows, values, read_counts=counts)
        return grads, wire

    def _reply(self, shard, workers):
        if not workers:
            return
        snapshot = self._snapshot(shard)
        for w in workers:
            worker = self.workers[w]
            if shard.replies is not None:
                shard.replies.append(("reply", w, snapshot.version, None))
            since = shard.blocked_since.pop(w, None)
            if since is not None:
                worker.blocked_seconds += self.now - since
            reads, payload = {}, snapshot.nbytes
            for k in shard.sparse:  # Hogwild: the rows this worker's next batch needs, as they are now
                i = shard.params_indices[k]
                rows = self.workload.rows_needed(worker.batch)
                values, counts = shard.rules.read_rows(k, rows)
                values = shard.codec.decode(shard.codec.encode(values.reshape(-1))).reshape(values.shape)
                reads[i] = (rows, values, counts)
                payload += shard.codec.wire_nbytes(values.size)
            arrival = self.channels.to_worker(self.now, shard.index, w, payload)
            self.schedule(arrival, TO_WORKER, w, (REPLY, shard.index, snapshot, reads))

    def _snapshot(self, shard):
        """The shard's current parameters as the wire delivers them, made once per version."""
        rules = shard.rules
        cached = shard.snapshot
        if cached is not None and cached.version == rules.version and cached.incarnation == shard.incarnation:
            return cached
        dense = [rules.params[k] for k in shard.dense]
        arrays = [None] * len(rules.params)
        nbytes = 0
        if dense and shard.codec.name == "none":  # no rounding on the wire: a copy is what the worker gets
            nbytes = 4 * shard.dense_count
            for k, array in zip(shard.dense, dense):
                arrays[k] = array.copy()
        elif dense:
            wire = shard.codec.encode(_flat(dense))
            nbytes = wire.nbytes
            decoded = [np.empty(a.shape, np.float32) for a in dense]
            _split_into(shard.codec.decode(wire), decoded)
            for k, array in zip(shard.dense, decoded):
                arrays[k] = array
        self.snapshot_uid += 1
        shard.snapshot = Snapshot(self.snapshot_uid, shard.index, shard.incarnation, rules.version, arrays,
                                  rules.done, nbytes)  # fmt: skip
        return shard.snapshot

    def _updated(self, shard):
        """After a shard applied an update: timing, checkpoints, evaluation, the end."""
        c = self.config
        rules = shard.rules
        self.last_update = self.now
        if c.checkpoint_every and rules.version % c.checkpoint_every == 0:
            shard.checkpoint = rules.state_dict()
        if c.abort_late:  # tell the workers still computing for the old version to stop
            for worker in self.workers:
                have = worker.have[shard.index]
                if worker.alive and worker.computing and have is not None and have.version < rules.version:
                    arrival = self.channels.to_worker(self.now, shard.index, worker.index, 0)
                    self.schedule(arrival, TO_WORKER, worker.index, (STEP_DONE, shard.index, rules.version))
        if shard.index == 0:
            self.update_times.append(self.now)
            if self.progress is not None:
                self.progress(rules.version, self.now)
            if self._eval_updates and rules.version % self._eval_updates == 0:
                self._evaluate(self.now)
        if rules.done:
            self.finished = "done"

    def _shard_down(self, s, _):
        shard = self.shards[s]
        shard.up = False
        shard.lost_updates += shard.rules.version - shard.checkpoint["version"]
        shard.blocked_since.clear()

    def _shard_up(self, s, _):
        """Back from the last checkpoint; every live worker is told to pull from it again."""
        shard = self.shards[s]
        shard.rules.load_state_dict(shard.checkpoint)
        for w in self.detected:  # the restored rules forgot who left
            shard.rules.leave(w)
        shard.incarnation += 1
        shard.restarts += 1
        shard.snapshot = None
        shard.up = True
        for worker in self.workers:
            if worker.alive:
                arrival = self.channels.to_worker(self.now, s, worker.index, 0)
                self.schedule(arrival, TO_WORKER, worker.index, (RESTARTED, s, shard.incarnation))

    # ------------------------------------------------------------ evaluation
    def _evaluate_until(self, when):
        while self._next_eval is not None and self._next_eval <= when:
            self._evaluate(self._next_eval)
            self._next_eval += self._eval_every

    def current_parameters(self):
        """The model's parameters as the servers hold them now (shard arrays put together)."""
        params = [None] * len(self.workload.shapes)
        for s, shard in enumerate(self.shards):
            for i, array in zip(self.layout.indices[s], shard.rules.params):
                params[i] = array
        return params

    def _evaluate(self, at):
        if self.history and self.history[-1]["time"] == at:
            return
        test_loss, test_accuracy = self.workload.evaluate(self.current_parameters())
        loss_sum, correct, examples = self.window
        rules = self.shards[0].rules
        row = {
            "time": at,
            "updates": rules.version,
            "gradients": len(rules.staleness),
            "epochs": self.examples / self.workload.train_size,
            "train_loss": loss_sum / examples if examples else math.nan,
            "train_accuracy": correct / examples if examples else math.nan,
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
        }
        self.history.append(row)
        self.window = np.zeros(3)
        target = self.config.target_accuracy
        if target is not None and self.time_to_target is None and test_accuracy >= target:
            self.time_to_target, self.updates_to_target = at, rules.version
            if self.config.stop_at_target:
                self.finished = "target"


def simulate(config=None, progress=None, **settings):
    """Run one simulation: simulate(mode="async", workers=16, updates=500) -> SimResult."""
    return Simulation(config, progress=progress, **settings).run()


def _is_measured(spec):
    return isinstance(spec, str) and spec.strip() == "measured"


class _one_blas_thread:
    """Run with one BLAS thread: the simulator is one process, and on a shared machine a second BLAS
    thread mostly waits for a core (stacked passes ran up to 30x slower with two). Wall-clock only."""

    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # scikit-learn brings threadpoolctl; without it, run as we are
            self.limits = None
            return self
        self.limits = threadpool_limits(limits=1, user_api="blas")
        return self

    def __exit__(self, *exc):
        if self.limits is not None:
            self.limits.restore_original_limits()
