"""The parameter server's rules: which gradient is applied, when, and how stale it was. No MPI here.

A parameter server holds the parameters (or one shard of them); workers pull parameters
and push gradients. `ServerRules` decides everything a server decides, on plain NumPy
arrays, and is driven by events: `pull(worker)` and `push(worker, grads, version)`. The MPI
transport (minidl.distributed.parameter_server) and the simulated cluster call the same
class, so what a student simulates is what runs on a cluster.

Versions and staleness. The server counts the updates it has applied: the version t. A
worker pulls the parameters of version v, computes ∂W on them and pushes it; by the time it
arrives the server may be at version t > v. The lecture's pipelined / asynchronous update

    W_{t+1} ← W_t - α·∂W_{t-k}

applies a gradient that is k = t - v updates old: its staleness. For N identical workers
running asynchronously, the other N - 1 push once while one computes, so k ≈ N - 1; "k is
effectively unbounded if one training loop is slower than the others".

Modes:
- "async" (Downpour SGD): every pushed gradient is applied at once; pulls are answered at
  once. Nothing ever waits for a slow worker.
- "bounded" (bounded delay τ): as async, but a worker that has pushed c_w gradients gets
  its next parameters only while c_w ≤ min_j c_j + τ, i.e. it runs at most τ updates
  ahead of the slowest worker. τ = 0 keeps every worker in step; τ = ∞ is async.
- "backup" (synchronous SGD with backup workers, Chen et al. 2016): N + b workers compute a
  gradient on the same version t; the first N to arrive are averaged and applied,

      W_{t+1} = W_t - α · (1/N) Σ_{first N} ∂W_t

  and the b late ones are dropped (their version is already old). A worker waits for
  version t+1 before computing again. b = 0 is plain synchronous SGD, which waits for the
  slowest worker at every step ("cost of synchronization grows with K: need to wait for
  stragglers"). Every applied gradient has staleness 0.

Sparse rows (Hogwild-style updates of embeddings). In async and bounded mode a pushed
gradient may be a `SparseRows`: the rows it touches and their values, zero elsewhere. Only
those rows are updated (SGD or AdaGrad: the same update functions on the gathered rows), so
a worker that read a few rows of a large embedding writes back only those, with no lock and
no global step. The server counts the updates of every row; a worker that says how many each
row had when it read them (`read_rows`, then `SparseRows(..., read_counts=...)`) gets each
row's own staleness recorded: how many other updates hit that row in between. With sparse
inputs that is usually 0 even when the global staleness is N - 1, which is why Hogwild (Recht
et al. 2011) works with many replicas.

The update itself (SGD, momentum, AdaGrad - the DistBelief server used AdaGrad) is
minidl.optim's update function for that rule, applied to the server's arrays in place.
"""

import math

import numpy as np

from minidl.optim.updates import adagrad_update, sgd_update

MODES = ("async", "bounded", "backup")
UPDATE_RULES = ("sgd", "momentum", "adagrad")


class UpdateRule:
    """The server's optimizer over plain arrays: 'sgd', 'momentum' (μ) or 'adagrad'.

    sgd:       w ← w - α·∂W
    momentum:  g ← μ·g + ∂W;  w ← w - α·g
    adagrad:   n ← n + ∂W²;   w ← w - α/√n · ∂W     (per-parameter learning rates: weights
               that rarely get a gradient keep a large step, which suits sparse models)
    lr_decay β makes α = α₀·e^(-β·epoch), the lectures' learning-rate decay.
    """

    def __init__(self, name="sgd", lr=0.1, momentum=0.9, weight_decay=0.0, lr_decay=0.0, eps=1e-10):
        if name not in UPDATE_RULES:
            raise ValueError(f"UpdateRule: unknown rule {name!r}; expected one of {UPDATE_RULES}")
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"UpdateRule: lr must be a positive number, got {lr}")
        if name == "momentum" and not 0 <= momentum < 1:
            raise ValueError(f"UpdateRule: momentum must be in [0, 1), got {momentum}")
        self.name, self.lr0, self.momentum = name, float(lr), float(momentum)
        self.weight_decay, self.lr_decay, self.eps = float(weight_decay), float(lr_decay), float(eps)
        self.epoch = 0.0
        self.state = None  # one buffer per parameter: velocity (momentum) or sum of squares (adagrad)

    @property
    def lr(self):
        return self.lr0 * math.exp(-self.lr_decay * self.epoch)

    def apply(self, params, grads):
        """Update every array of `params` in place with its gradient (an array, or a SparseRows)."""
        if self.state is None and self.name != "sgd":
            self.state = [np.zeros_like(p) for p in params]
        for i, (p, g) in enumerate(zip(params, grads)):
            if isinstance(g, SparseRows):
                self._apply_rows(i, p, g)
            elif self.name == "adagrad":
                adagrad_update(p, g, self.state[i], self.lr, eps=self.eps, weight_decay=self.weight_decay)
            else:
                velocity = self.state[i] if self.name == "momentum" else None
                momentum = self.momentum if self.name == "momentum" else 0.0
                sgd_update(p, g, velocity, self.lr, momentum=momentum, weight_decay=self.weight_decay)

    def _apply_rows(self, i, param, sparse):
        """The dense update of the rows `sparse.rows` only: gather them, update, scatter back.

        For sgd and adagrad a zero gradient leaves a row (and its sum of squares) unchanged,
        so this is the dense update with zeros elsewhere (weight decay, if any, is applied to
        the touched rows only). Momentum would have to keep moving every row: refused.
        """
        if self.name == "momentum":
            raise ValueError(
                "UpdateRule: sparse row updates need sgd or adagrad; momentum keeps moving rows that got no gradient"
            )
        sparse.check(param, f"parameter {i}")
        rows = sparse.rows
        values = param[rows]
        if self.name == "adagrad":
            sum_sq = self.state[i][rows]
            adagrad_update(values, sparse.values, sum_sq, self.lr, eps=self.eps, weight_decay=self.weight_decay)
            self.state[i][rows] = sum_sq
        else:
            sgd_update(values, sparse.values, None, self.lr, weight_decay=self.weight_decay)
        param[rows] = values

    def state_dict(self):
        return {"epoch": self.epoch, "state": None if self.state is None else [s.copy() for s in self.state]}

    def load_state_dict(self, state):
        self.epoch = float(state["epoch"])
        saved = state["state"]
        self.state = None if saved is None else [np.array(s, dtype=np.float32) for s in saved]


class SparseRows:
    """A gradient that is zero except in some rows of a parameter (an embedding's rows looked up by a batch).

    rows         distinct row indices (int64)
    values       float32 array (len(rows), *row_shape): the gradient of those rows
    read_counts  how many updates each row had had when the worker read it (ServerRules.read_rows),
                 or None; with it the server records each row's staleness
    """

    __slots__ = ("rows", "values", "read_counts")

    def __init__(self, rows, values, read_counts=None):
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        self.values = np.ascontiguousarray(values, dtype=np.float32)
        self.read_counts = None if read_counts is None else np.asarray(read_counts, dtype=np.int64).reshape(-1)

    @property
    def nbytes(self):
        """Bytes of the values and the row indices (what a transport sends)."""
        return self.values.nbytes + self.rows.nbytes

    def check(self, param, where):
        """Raise a ValueError naming `where` unless these rows fit `param`."""
        rows = self.rows
        if self.values.shape != (len(rows), *param.shape[1:]):
            raise ValueError(
                f"SparseRows for {where}: values of shape {self.values.shape} do not match {len(rows)} rows of a "
                f"parameter of shape {param.shape}"
            )
        if len(rows) and (rows.min() < 0 or rows.max() >= param.shape[0]):
            raise ValueError(f"SparseRows for {where}: row indices must be in [0, {param.shape[0]})")
        if len(np.unique(rows)) != len(rows):
            raise ValueError(f"SparseRows for {where}: row indices must be distinct (sum the gradients of a row)")
        if self.read_counts is not None and self.read_counts.shape != rows.shape:
            raise ValueError(f"SparseRows for {where}: {len(self.read_counts)} read counts for {len(rows)} rows")

    def dense(self, shape):
        """The full gradient: zeros with these rows filled in."""
        full = np.zeros(shape, np.float32)
        full[self.rows] = self.values
        return full

    def __repr__(self):
        return f"SparseRows({len(self.rows)} rows, values {self.values.shape})"


class PushResult:
    """What happened to one pushed gradient.

    applied    True if it went into the parameters (now or as part of a synchronous step)
    dropped    True if it was thrown away (a late gradient in backup mode)
    staleness  t - v for an applied gradient (None otherwise)
    released   workers whose waiting pulls can be answered now
    """

    __slots__ = ("applied", "dropped", "staleness", "released")

    def __init__(self, applied, dropped, staleness, released):
        self.applied, self.dropped, self.staleness, self.released = applied, dropped, staleness, released

    def __repr__(self):
        return (
            f"PushResult(applied={self.applied}, dropped={self.dropped}, staleness={self.staleness}, "
            f"released={self.released})"
        )


class ServerRules:
    """One parameter server's decisions, over its shard `params` (a list of float32 arrays, updated in place).

    mode          'async', 'bounded' or 'backup'
    num_workers   workers pushing to this server (N + b in backup mode)
    bound         τ for 'bounded'
    num_backup    b for 'backup': each step applies the first num_workers - b gradients
    total_updates stop after this many updates (then every pull is answered with done=True)
    updates_per_epoch  for the learning-rate decay's epoch count (default: never decays)
    """

    def __init__(
        self,
        params,
        rule,
        mode="async",
        num_workers=1,
        bound=None,
        num_backup=0,
        total_updates=None,
        updates_per_epoch=None,
    ):
        if mode not in MODES:
            raise ValueError(f"ServerRules: unknown mode {mode!r}; expected one of {MODES}")
        if num_workers < 1:
            raise ValueError(f"ServerRules: num_workers must be >= 1, got {num_workers}")
        if mode == "bounded" and (bound is None or bound < 0):
            raise ValueError(f"ServerRules: mode 'bounded' needs a bound τ >= 0, got {bound}")
        if mode == "backup" and not 0 <= num_backup < num_workers:
            raise ValueError(
                f"ServerRules: num_backup must be in [0, num_workers) = [0, {num_workers}), got {num_backup}"
            )
        if mode != "backup" and num_backup:
            raise ValueError(f"ServerRules: num_backup is for mode 'backup', not {mode!r}")
        self.params = [np.ascontiguousarray(p, dtype=np.float32) for p in params]
        self.rule = rule
        self.mode = mode
        self.num_workers = num_workers
        self.bound = bound
        self.num_backup = num_backup if mode == "backup" else 0
        self.needed = num_workers - self.num_backup  # gradients averaged per synchronous step
        self.total_updates = total_updates
        self.updates_per_epoch = updates_per_epoch
        self.version = 0  # updates applied so far: t
        self.staleness = []  # t - v of every applied gradient, in the order applied
        self.dropped = 0  # late gradients thrown away (backup mode)
        self.applied_by_worker = [0] * num_workers
        self.dropped_by_worker = [0] * num_workers
        self.row_updates = {}  # parameter index -> updates of each row so far (created by sparse reads/pushes)
        self.row_staleness = []  # per-row staleness of every row a SparseRows with read_counts updated
        self._reset_worker_state()

    def _reset_worker_state(self):
        self.clock = [0] * self.num_workers  # gradients pushed by each worker (bounded delay)
        self.finished = [False] * self.num_workers
        self.sent_version = [-1] * self.num_workers  # the version each worker was last sent
        self.waiting = []  # workers whose pull is not answered yet, in arrival order
        self._sum = None  # backup mode: sum of this step's gradients so far
        self._count = 0
        self._pushed_this_step = set()

    # ------------------------------------------------------------ events
    @property
    def done(self):
        return self.total_updates is not None and self.version >= self.total_updates

    def pull(self, worker):
        """A worker asks for parameters. True: answer now (see `reply`); False: it waits (see `waiting`)."""
        self._check_worker(worker, "pull")
        if self._may_serve(worker):
            self.sent_version[worker] = self.version
            return True
        if worker not in self.waiting:
            self.waiting.append(worker)
        return False

    def push(self, worker, grads, version):
        """A worker sends gradients computed on parameters of `version`. Returns a PushResult."""
        self._check_worker(worker, "push")
        if len(grads) != len(self.params):
            raise ValueError(f"push: worker {worker} sent {len(grads)} gradients for {len(self.params)} parameters")
        if not 0 <= version <= self.version:
            raise ValueError(f"push: worker {worker} claims version {version}, the server is at {self.version}")
        sparse = [i for i, g in enumerate(grads) if isinstance(g, SparseRows)]
        if sparse and self.mode == "backup":
            raise ValueError(
                f"push: worker {worker} sent sparse rows in backup mode, which averages dense gradients; "
                "sparse updates are for async or bounded mode"
            )
        for i in sparse:
            grads[i].check(self.params[i], f"parameter {i} (push from worker {worker})")
        self.clock[worker] += 1
        if self.done:  # training is over: late gradients change nothing
            return PushResult(False, True, None, self._release())
        if self.mode == "backup":
            return self._push_sync(worker, grads, version)
        staleness = self.version - version
        self._apply(grads)
        self._record(worker, staleness)
        return PushResult(True, False, staleness, self._release())

    def leave(self, worker):
        """A worker stops (finished or gone): the bounded-delay rule stops waiting for it."""
        self._check_worker(worker, "leave")
        self.finished[worker] = True
        if worker in self.waiting:
            self.waiting.remove(worker)
        return self._release()

    def reply(self):
        """What an answered pull carries: (version, parameters, done)."""
        return self.version, self.params, self.done

    def read_rows(self, index, rows):
        """A sparse read of parameter `index`: (copy of those rows, how many updates each row has had).

        Send the counts back with the rows' gradient (SparseRows.read_counts) to have each row's
        staleness recorded.
        """
        if not 0 <= index < len(self.params):
            raise ValueError(f"read_rows: parameter {index} is out of range [0, {len(self.params)})")
        rows = np.asarray(rows, dtype=np.int64)
        return self.params[index][rows], self._row_counts(index)[rows]

    def _row_counts(self, index):
        if index not in self.row_updates:
            self.row_updates[index] = np.zeros(self.params[index].shape[0], np.int64)
        return self.row_updates[index]

    def blocking_workers(self):
        """Workers that others are waiting for: the slowest ones (bounded), or those missing from this step (backup)."""
        live = [w for w in range(self.num_workers) if not self.finished[w]]
        if self.mode == "bounded" and live:
            slowest = min(self.clock[w] for w in live)
            return [w for w in live if self.clock[w] == slowest]
        if self.mode == "backup":
            return [w for w in live if w not in self._pushed_this_step]
        return []

    # ------------------------------------------------------------ the rules
    def _may_serve(self, worker):
        if self.done:
            return True
        if self.mode == "async":
            return True
        if self.mode == "bounded":
            live = [self.clock[w] for w in range(self.num_workers) if not self.finished[w]]
            return self.clock[worker] <= min(live) + self.bound
        # backup: a worker computes once per version, so it waits for a version it has not seen.
        return self.sent_version[worker] < self.version

    def _release(self):
        released = [w for w in self.waiting if self._may_serve(w)]
        for w in released:
            self.waiting.remove(w)
            self.sent_version[w] = self.version
        return released

    def _push_sync(self, worker, grads, version):
        if version < self.version:  # late: its step has already been applied without it
            self.dropped += 1
            self.dropped_by_worker[worker] += 1
            return PushResult(False, True, None, self._release())
        if worker in self._pushed_this_step:
            raise ValueError(f"push: worker {worker} pushed twice for version {version} (backup mode needs n_push = 1)")
        if self._sum is None:
            self._sum = [np.array(g, dtype=np.float32) for g in grads]
        else:
            for s, g in zip(self._sum, grads):
                s += g
        self._pushed_this_step.add(worker)
        self._count += 1
        self._record(worker, 0)
        if self._count < self.needed:
            return PushResult(True, False, 0, [])
        for s in self._sum:
            s *= 1.0 / self.needed  # the mean of the first N gradients
        self._apply(self._sum)
        self._sum, self._count = None, 0
        self._pushed_this_step = set()
        return PushResult(True, False, 0, self._release())

    def _apply(self, grads):
        if self.updates_per_epoch:
            self.rule.epoch = self.version // self.updates_per_epoch
        for i, g in enumerate(grads):
            if isinstance(g, SparseRows):
                counts = self._row_counts(i)
                if g.read_counts is not None:  # how many other updates hit each row since the worker read it
                    self.row_staleness.extend((counts[g.rows] - g.read_counts).tolist())
                counts[g.rows] += 1
            elif i in self.row_updates:
                self.row_updates[i] += 1  # a dense update changes every row
        self.rule.apply(self.params, grads)
        self.version += 1

    def _record(self, worker, staleness):
        self.staleness.append(staleness)
        self.applied_by_worker[worker] += 1

    def _check_worker(self, worker, where):
        if not 0 <= worker < self.num_workers:
            raise ValueError(f"{where}: worker {worker} is out of range [0, {self.num_workers})")

    # ------------------------------------------------------------ summaries and checkpoints
    def summary(self):
        """Counts for metrics.json: updates, staleness (mean, max, histogram), dropped gradients."""
        staleness = np.asarray(self.staleness, dtype=np.int64)
        histogram = np.bincount(staleness).tolist() if staleness.size else []
        return {
            "updates": self.version,
            "gradients_applied": int(staleness.size),
            "mean_staleness": float(staleness.mean()) if staleness.size else 0.0,
            "max_staleness": int(staleness.max()) if staleness.size else 0,
            "staleness_histogram": histogram,
            "dropped_gradients": self.dropped,
            "applied_by_worker": list(self.applied_by_worker),
            "dropped_by_worker": list(self.dropped_by_worker),
            **self._row_summary(),
        }

    def _row_summary(self):
        """Per-row staleness of sparse updates (only when there were some)."""
        if not self.row_staleness:
            return {}
        rows = np.asarray(self.row_staleness, dtype=np.int64)
        return {
            "rows_updated": int(rows.size),
            "mean_row_staleness": float(rows.mean()),
            "max_row_staleness": int(rows.max()),
            "row_staleness_histogram": np.bincount(rows).tolist(),
        }

    def state_dict(self):
        """Parameters, optimizer state, version and the statistics. Worker clocks are not saved:
        after a restart every worker starts again from a fresh pull."""
        return {
            "params": [p.copy() for p in self.params],
            "rule": self.rule.state_dict(),
            "version": self.version,
            "staleness": np.asarray(self.staleness, dtype=np.int64),
            "dropped": self.dropped,
            "applied_by_worker": list(self.applied_by_worker),
            "dropped_by_worker": list(self.dropped_by_worker),
            **({"row_updates": {str(i): c.copy() for i, c in self.row_updates.items()}} if self.row_updates else {}),
            **({"row_staleness": np.asarray(self.row_staleness, dtype=np.int64)} if self.row_staleness else {}),
        }

    def load_state_dict(self, state):
        saved = state["params"]
        if len(saved) != len(self.params) or any(np.shape(s) != p.shape for s, p in zip(saved, self.params)):
            raise ValueError(
                "ServerRules.load_state_dict: the saved parameters have shapes "
                f"{[np.shape(s) for s in saved]}, this server holds {[p.shape for p in self.params]}"
            )
        for p, s in zip(self.params, saved):
            p[...] = s
        self.rule.load_state_dict(state["rule"])
        self.version = int(state["version"])
        self.staleness = [int(k) for k in np.asarray(state["staleness"]).ravel()]
        self.dropped = int(state["dropped"])
        if len(state["applied_by_worker"]) == self.num_workers:
            self.applied_by_worker = [int(n) for n in state["applied_by_worker"]]
            self.dropped_by_worker = [int(n) for n in state["dropped_by_worker"]]
        self.row_updates = {int(i): np.array(c, dtype=np.int64) for i, c in state.get("row_updates", {}).items()}
        self.row_staleness = [int(k) for k in np.asarray(state.get("row_staleness", []), dtype=np.int64).ravel()]
        self._reset_worker_state()


def shard_parameters(sizes, num_servers):
    """Assign whole parameters to servers, largest first onto the least loaded server.

    Returns a list: the server of each parameter. Balances the number of values each
    server holds (and so the bytes it receives and sends per step).
    """
    if num_servers < 1:
        raise ValueError(f"shard_parameters: num_servers must be >= 1, got {num_servers}")
    load = [0] * num_servers
    owner = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        server = min(range(num_servers), key=lambda s: (load[s], s))
        owner[i] = server
        load[server] += sizes[i]
    return owner
