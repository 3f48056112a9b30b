"""The settings of one simulated run (SimConfig), checked, with errors that name the setting.

A config file for `minidl simulate` holds the same names (JSON), so a run can be written
down, shared and repeated: a run is determined by its SimConfig and its seed.
"""

import dataclasses
import math
import numbers

from minidl.distributed.compression import COMPRESSORS
from minidl.distributed.rules import UPDATE_RULES
from minidl.sim.timing import parse_compute

MODES = ("sync", "backup", "async", "bounded", "hogwild")
# The ServerRules mode each simulated mode runs: sync is backup mode without backups; Hogwild
# is async with sparse rows.
RULES_MODE = {"sync": "backup", "backup": "backup", "async": "async", "bounded": "bounded", "hogwild": "async"}
MODELS = ("mlp", "cnn", "lstm", "embedding")


@dataclasses.dataclass
class SimConfig:
    """One simulated run.

    the cluster
      mode          'sync', 'backup' (sync with backup workers), 'async' (Downpour), 'bounded'
                    (bounded delay τ), 'hogwild' (async, embedding rows read and written sparsely)
      workers       N: workers whose gradients make an update (sync, backup) or that push (others)
      backup        b: extra workers in backup mode; each step uses the first N of N + b
      servers       S: parameter-server shards (whole parameters, balanced by size)
      bound         τ for bounded mode (required there; math.inf-like large values behave as async)
      n_fetch, n_push  Downpour: pull every n_fetch steps, push every n_push steps
      abort_late    backup mode: a late worker stops its stale step when the new version exists
                    (otherwise it finishes it, pushes, and has the gradient dropped)
    the learning problem (real gradients of a real minidl model, minidl.training's recipes)
      model, dataset, hidden, batch_size     'mlp' on 'digits' by default; 'embedding' is the
                    sparse task of minidl.sim.workload (for hogwild)
      optimizer, lr, momentum, weight_decay, lr_decay   the server's update rule
    simulated time
      compute       a compute model spec (minidl.sim.timing), or 'measured'
      slow_workers  {worker: factor}: those workers' steps take factor times longer
      latency, bandwidth, server_bandwidth   the network (minidl.sim.network), seconds and bytes/s
      compression   'none', 'fp16', 'trunc16': the bytes of pushes and pulls, and their precision
    failures
      worker_failures  [(worker, time)]: the worker dies then
      server_restarts  [(shard, time, downtime)]: the shard goes down, and comes back from its last
                       checkpoint (taken every checkpoint_every updates, and at the start)
      detect_failures_after  seconds after a death at which the servers stop waiting for the
                       worker (ServerRules.leave); None: never (a dead worker is waited for forever)
    stopping and measuring
      updates       stop when the servers have applied this many updates (None: no limit)
      max_time      stop at this simulated time (None: no limit); one of the two is needed
      eval_every    evaluate the test set every this many simulated seconds, or
      eval_updates  every this many updates (default: 40 evaluations over the run)
      target_accuracy  report when the test accuracy first reaches it; stop_at_target stops there
      seed          everything random (data order, compute times, the model's start) follows it
      stack_gradients  compute the gradients of workers on the same parameters in one pass
    """

    mode: str = "async"
    workers: int = 8
    backup: int = 0
    servers: int = 1
    bound: int | None = None
    n_fetch: int = 1
    n_push: int = 1
    abort_late: bool = False
    model: str = "mlp"
    dataset: str = "digits"
    hidden: int = 32
    batch_size: int = 16
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_decay: float = 0.0
    compute: object = "lognormal:median=0.1,sigma=0.2"
    slow_workers: dict = dataclasses.field(default_factory=dict)
    latency: float = 5e-4
    bandwidth: float = 1.25e9
    server_bandwidth: float = 1.25e9
    compression: str = "none"
    worker_failures: list = dataclasses.field(default_factory=list)
    server_restarts: list = dataclasses.field(default_factory=list)
    checkpoint_every: int = 0
    detect_failures_after: float | None = None
    updates: int | None = 1000
    max_time: float | None = None
    eval_every: float | None = None
    eval_updates: int | None = None
    target_accuracy: float | None = None
    stop_at_target: bool = False
    seed: int = 0
    stack_gradients: bool = True

    @classmethod
    def names(cls):
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values, where="config"):
        """A checked SimConfig from a dict (a config file's run); unknown names are an error."""
        if not isinstance(values, dict):
            raise ValueError(f"{where}: a run is a JSON object of settings, got {type(values).__name__}")
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ValueError(f"{where}: unknown setting {unknown[0]!r}; settings are: {', '.join(cls.names())}")
        values = dict(values)
        if "slow_workers" in values and isinstance(values["slow_workers"], dict):
            values["slow_workers"] = {int(k): v for k, v in values["slow_workers"].items()}
        for key in ("worker_failures", "server_restarts"):
            if key in values and values[key] is not None:
                values[key] = [tuple(item) for item in values[key]]
        config = cls(**values)
        config.check()
        return config

    def as_dict(self):
        values = dataclasses.asdict(self)
        values["compute"] = self.compute if isinstance(self.compute, str) else parse_compute(self.compute).spec
        values["worker_failures"] = [list(x) for x in self.worker_failures]
        values["server_restarts"] = [list(x) for x in self.server_restarts]
        values["slow_workers"] = {str(k): v for k, v in self.slow_workers.items()}
        return values

    def replace(self, **changes):
        config = dataclasses.replace(self, **changes)
        config.check()
        return config

    @property
    def total_workers(self):
        """Workers in the cluster: N, plus the b backups in backup mode."""
        return self.workers + (self.backup if self.mode == "backup" else 0)

    @property
    def rules_mode(self):
        return RULES_MODE[self.mode]

    def check(self):
        """Raise a ValueError naming the first setting that cannot work."""
        _choice("mode", self.mode, MODES)
        _integer("workers", self.workers, 1)
        _integer("backup", self.backup, 0)
        _integer("servers", self.servers, 1)
        _integer("n_fetch", self.n_fetch, 1)
        _integer("n_push", self.n_push, 1)
        if self.mode == "sync" and self.backup:
            raise ValueError(f"backup={self.backup}: sync mode has no backup workers; use mode='backup'")
        if self.mode != "backup" and self.abort_late:
            raise ValueError("abort_late is for mode 'backup'")
        if self.mode == "bounded":
            if self.bound is None:
                raise ValueError("mode 'bounded' needs bound (τ, an integer >= 0)")
            _integer("bound", self.bound, 0)
        elif self.bound is not None:
            raise ValueError(f"bound={self.bound} is for mode 'bounded', not {self.mode!r}")
        if self.mode in ("sync", "backup", "hogwild") and (self.n_fetch != 1 or self.n_push != 1):
            raise ValueError(f"mode {self.mode!r} pulls and pushes every step: n_fetch and n_push must be 1")
        _choice("model", self.model, MODELS)
        if self.mode == "hogwild" and self.model != "embedding":
            raise ValueError("mode 'hogwild' updates embedding rows sparsely: use model='embedding'")
        _integer("hidden", self.hidden, 1)
        _integer("batch_size", self.batch_size, 1)
        _choice("optimizer", self.optimizer, UPDATE_RULES)
        if self.mode == "hogwild" and self.optimizer == "momentum":
            raise ValueError("mode 'hogwild': sparse row updates need optimizer 'sgd' or 'adagrad', not 'momentum'")
        _number("lr", self.lr, lambda v: v > 0, "> 0")
        _number("momentum", self.momentum, lambda v: 0 <= v < 1, "in [0, 1)")
        _number("weight_decay", self.weight_decay, lambda v: v >= 0, ">= 0")
        _number("lr_decay", self.lr_decay, lambda v: v >= 0, ">= 0")
        if not (isinstance(self.compute, str) and self.compute.strip() == "measured"):
            parse_compute(self.compute)  # raises with the reason
        if not isinstance(self.slow_workers, dict):
            raise ValueError(f"slow_workers must map worker -> factor, got {self.slow_workers!r}")
        for worker, factor in self.slow_workers.items():
            self._worker("slow_workers", worker)
            _number(f"slow_workers[{worker}]", factor, lambda v: v > 0, "> 0")
        _number("latency", self.latency, lambda v: v >= 0, ">= 0 seconds", finite=True)
        _number("bandwidth", self.bandwidth, lambda v: v > 0, "> 0 bytes/s (math.inf: no limit)", finite=False)
        _number("server_bandwidth", self.server_bandwidth, lambda v: v > 0, "> 0 bytes/s", finite=False)
        _choice("compression", self.compression, tuple(COMPRESSORS))
        for item in self.worker_failures:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ValueError(f"worker_failures: each entry is (worker, time), got {item!r}")
            self._worker("worker_failures", item[0])
            _number("worker_failures time", item[1], lambda v: v >= 0, ">= 0")
        for item in self.server_restarts:
            if not (isinstance(item, (tuple, list)) and len(item) == 3):
                raise ValueError(f"server_restarts: each entry is (shard, time, downtime), got {item!r}")
            shard, time, downtime = item
            if not (isinstance(shard, numbers.Integral) and 0 <= shard < self.servers):
                raise ValueError(f"server_restarts: shard {shard!r} is not in [0, {self.servers})")
            _number("server_restarts time", time, lambda v: v >= 0, ">= 0")
            _number("server_restarts downtime", downtime, lambda v: v >= 0, ">= 0")
        _integer("checkpoint_every", self.checkpoint_every, 0)
        if self.detect_failures_after is not None:
            _number("detect_failures_after", self.detect_failures_after, lambda v: v >= 0, ">= 0 seconds")
        if self.updates is None and self.max_time is None:
            raise ValueError("give updates (a number of updates) or max_time (simulated seconds), or both")
        if self.updates is not None:
            _integer("updates", self.updates, 1)
        if self.max_time is not None:
            _number("max_time", self.max_time, lambda v: v > 0, "> 0 seconds")
        if self.eval_every is not None:
            _number("eval_every", self.eval_every, lambda v: v > 0, "> 0 seconds")
        if self.eval_updates is not None:
            _integer("eval_updates", self.eval_updates, 1)
        if self.target_accuracy is not None:
            _number("target_accuracy", self.target_accuracy, lambda v: 0 < v <= 1, "in (0, 1]")
        if self.stop_at_target and self.target_accuracy is None:
            raise ValueError("stop_at_target needs target_accuracy")
        _integer("seed", self.seed, 0)

    def _worker(self, where, worker):
        n = self.total_workers
        if isinstance(worker, bool) or not isinstance(worker, numbers.Integral) or not 0 <= worker < n:
            raise ValueError(f"{where}: worker {worker!r} is not in [0, {n}) (this run has {n} workers)")


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _integer(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _number(name, value, ok, requirement, finite=True):
    good = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    if good and finite and not math.isfinite(value):
        good = False
    if not good or not ok(value):
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
