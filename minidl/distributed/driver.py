"""The main job, distributed: `minidl train --distributed MODE` on every rank of an MPI job.

    mpiexec -n 4 minidl train --distributed sync|async|bounded|backup|pipeline [options]
    minidl launch -n 4 -- train --distributed async          # finds mpiexec (or srun) for you

Every rank runs `run()`. What differs is the mode:

  sync      every rank trains a replica on its shard of each batch (DistributedSampler) and
            the gradients are averaged with an allreduce after backward (DDP; --overlap starts it during backward).
            --batch-size is per rank: N ranks take batches of N·b together.
  async     Downpour SGD: rank 0 (ranks 0..S-1 with --servers S) is the parameter server,
            the others are workers that pull parameters and push gradients, never waiting.
  bounded   as async, but no worker runs more than τ updates ahead of the slowest (--staleness-bound).
  backup    synchronous SGD on the parameter server with b backup workers (--backup-workers):
            each step averages the first N gradients and drops the b late ones.
  pipeline  the model's layers split over the ranks, batches cut into micro-batches (GPipe).

One progress bar, on rank 0. At the end rank 0 writes metrics.json (test accuracy, bytes
sent, staleness, samples per second...) and the training curves to --out, as `minidl train`
does for one process. Rank 0 (sync) or each server (async, bounded, backup) writes a
checkpoint atomically every --checkpoint-every steps and after every epoch; a job started
again with --resume continues from it (MPI stops the whole job when one rank dies).

Faults can be simulated, for experiments and tests: --slow-rank R --slowdown F makes rank R
sleep (F - 1) times its typical step time after every step; --hang-rank R --hang-at-step K
makes rank R stop answering at step K; --fail-rank R --fail-at-step K makes it exit abruptly,
as a dying machine would. Faults are not repeated on a resumed run.

The single-process pieces (data sets, model recipes, optimizer, evaluation, plots) come in
through a `Recipe`, so this module does not depend on the command line's code.
"""

import json
import math
import os
import sys
import time

import numpy as np

import minidl
from minidl import data, nn, optim
from minidl.distributed.sampler import DistributedSampler

MODES = ("sync", "async", "bounded", "backup", "pipeline")
PS_MODES = ("async", "bounded", "backup")
SERVER_RULES = {"sgd": "sgd", "momentum": "momentum", "adagrad": "adagrad"}


class DistributedUsageError(Exception):
    """A problem with the distributed options; reported once, by rank 0."""


class Recipe:
    """The single-process training pieces the driver reuses.

    load_datasets(settings) -> (train, test, input_shape, num_classes)
    build_model(settings, input_shape, num_classes) -> Module
    build_optimizer(settings, module) -> Optimizer
    evaluate(model, dataset) -> accuracy
    progress_bar(total, description) -> a tqdm-like bar, or None
    plot(history, path) -> writes the training curves
    """

    def __init__(self, load_datasets, build_model, build_optimizer, evaluate, progress_bar=None, plot=None):
        self.load_datasets = load_datasets
        self.build_model = build_model
        self.build_optimizer = build_optimizer
        self.evaluate = evaluate
        self.progress_bar = progress_bar
        self.plot = plot


def add_arguments(parser):
    """The distributed options, as a group of the `train` command's parser."""
    group = parser.add_argument_group("distributed (run under mpiexec, or with `minidl launch -n N -- train ...`)")
    group.add_argument("--distributed", choices=MODES, help="train on all MPI ranks: " + ", ".join(MODES))
    group.add_argument("--servers", type=int, default=1, help="parameter servers (async/bounded/backup; default 1)")
    group.add_argument("--staleness-bound", type=int, default=2, help="τ for --distributed bounded (default 2)")
    group.add_argument("--backup-workers", type=int, default=1, help="b for --distributed backup (default 1)")
    group.add_argument("--n-fetch", type=int, default=1, help="Downpour: pull parameters every n steps (default 1)")
    group.add_argument("--n-push", type=int, default=1, help="Downpour: push gradients every n steps (default 1)")
    group.add_argument(
        "--compression",
        choices=("none", "fp16", "trunc16"),
        default="none",
        help="16-bit transfers: fp16 or trunc16, the truncated float32 (default none)",
    )
    group.add_argument(
        "--allreduce",
        choices=("mpi", "ring", "shared"),
        default="mpi",
        help="sync: MPI's allreduce, the ring, or shared (ranks on one machine average in shared memory)",
    )
    group.add_argument(
        "--shard-optimizer",
        action="store_true",
        help="sync with --allreduce shared: the ranks share one copy of the weights and each updates "
        "its slice (ZeroRedundancyOptimizer)",
    )
    group.add_argument("--bucket-mb", type=float, default=4.0, help="sync: fused gradient bucket size in MiB")
    group.add_argument(
        "--overlap",
        dest="no_overlap",
        action="store_false",
        default=True,
        help="sync: start each bucket's allreduce during backward (off by default: on a machine "
        "without spare cores it costs more than it hides, see docs/distributed.md)",
    )
    group.add_argument(
        "--no-overlap",
        dest="no_overlap",
        action="store_true",
        help="sync: communicate after backward, not during it (the default)",
    )
    group.add_argument("--micro-batches", type=int, default=4, help="pipeline: micro-batches per batch (default 4)")
    group.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every K steps/updates")
    group.add_argument("--timeout", type=float, default=120.0, help="seconds any wait may take (default 120)")
    group.add_argument("--slow-rank", type=int, help="simulated straggler: this rank computes --slowdown times slower")
    group.add_argument("--slowdown", type=float, default=10.0, help="factor for --slow-rank (default 10)")
    group.add_argument("--hang-rank", type=int, help="simulated hang: this rank stops at --hang-at-step")
    group.add_argument("--hang-at-step", type=int, default=5, help="the step after which --hang-rank hangs (default 5)")
    group.add_argument("--fail-rank", type=int, help="simulated crash: this rank exits abruptly at --fail-at-step")
    group.add_argument("--fail-at-step", type=int, default=5, help="the step after which --fail-rank exits (default 5)")
    return group


def distributed_options(args):
    """The distributed options of a parsed command line, as a plain dict (stored in checkpoints and metrics)."""
    names = (
        "distributed",
        "servers",
        "staleness_bound",
        "backup_workers",
        "n_fetch",
        "n_push",
        "compression",
        "allreduce",
        "shard_optimizer",
        "bucket_mb",
        "no_overlap",
        "micro_batches",
        "checkpoint_every",
        "timeout",
        "slow_rank",
        "slowdown",
        "hang_rank",
        "hang_at_step",
        "fail_rank",
        "fail_at_step",
    )
    return {name: getattr(args, name) for name in names}


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------
def run(settings, options, recipe, out, resume=None, quiet=False, no_plot=False):
    """Train on every rank of the MPI job. Returns the exit status (0 on success).

    settings: the run's settings as `minidl train` resolves them (model, dataset, lr, ...)
    options:  distributed_options(args)
    resume:   a checkpoint file (or the run folder) to continue from
    """
    from minidl.distributed.comm import world

    comm = world(timeout=options["timeout"])
    out = comm.comm.bcast(out, root=0)  # rank 0's choice (a default folder name has a time stamp in it)
    job = _Job(comm, settings, options, recipe, out, resume, quiet, no_plot)
    try:
        job.check()
    except DistributedUsageError as e:
        if comm.rank == 0:
            print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return job.run()
    except Exception as e:  # one rank failing must stop them all, with the reason on stderr
        print(f"error: rank {comm.rank}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        if comm.size > 1:
            time.sleep(1.0)  # let mpiexec forward the message before MPI_Abort tears the job down
            comm.comm.Abort(1)
        return 1


class _Job:
    def __init__(self, comm, settings, options, recipe, out, resume, quiet, no_plot):
        self.comm, self.settings, self.options, self.recipe = comm, settings, options, recipe
        self.out, self.resume, self.quiet, self.no_plot = out, resume, quiet, no_plot
        self.mode = options["distributed"]
        self.rank, self.size = comm.rank, comm.size
        self.faults = resume is None  # simulated faults happen on a fresh run only
        self.checkpoint_every = options["checkpoint_every"] or 0

    def say(self, *parts):
        if self.rank == 0 and not self.quiet:
            print(*parts, file=sys.stderr, flush=True)

    def check(self):
        o, n = self.options, self.size
        if o["timeout"] <= 0:
            raise DistributedUsageError(f"--timeout must be > 0, got {o['timeout']}")
        for name in ("slow_rank", "hang_rank", "fail_rank"):
            if o[name] is not None and not 0 <= o[name] < n:
                raise DistributedUsageError(f"--{name.replace('_', '-')} {o[name]}: the job has ranks 0..{n - 1}")
        if o["slowdown"] < 1:
            raise DistributedUsageError(f"--slowdown must be >= 1, got {o['slowdown']}")
        if self.checkpoint_every < 0:
            raise DistributedUsageError(f"--checkpoint-every must be >= 0, got {self.checkpoint_every}")
        if self.mode in PS_MODES:
            servers = o["servers"]
            if not 1 <= servers < n:
                raise DistributedUsageError(
                    f"--distributed {self.mode} needs at least one server and one worker: --servers {servers} "
                    f"with {n} ranks (start more ranks, e.g. mpiexec -n {servers + 1})"
                )
            if self.settings["optimizer"] not in SERVER_RULES:
                raise DistributedUsageError(
                    f"--distributed {self.mode}: the server applies sgd, momentum or adagrad, "
                    f"not --optimizer {self.settings['optimizer']}"
                )
            if o["n_fetch"] < 1 or o["n_push"] < 1:
                raise DistributedUsageError("--n-fetch and --n-push must be >= 1")
            if self.mode == "bounded" and o["staleness_bound"] < 0:
                raise DistributedUsageError(f"--staleness-bound must be >= 0, got {o['staleness_bound']}")
            if self.mode == "backup":
                workers = n - servers
                if not 0 <= o["backup_workers"] < workers:
                    raise DistributedUsageError(
                        f"--backup-workers {o['backup_workers']}: with {workers} workers it must be in [0, {workers})"
                    )
                if o["n_fetch"] != 1 or o["n_push"] != 1:
                    raise DistributedUsageError("--distributed backup is synchronous: --n-fetch and --n-push are 1")
        if self.mode == "pipeline":
            if self.settings["model"] == "lstm":
                raise DistributedUsageError("--distributed pipeline cuts an nn.Sequential: use --model mlp or cnn")
            if o["micro_batches"] < 1:
                raise DistributedUsageError(f"--micro-batches must be >= 1, got {o['micro_batches']}")
            if self.resume is not None:
                raise DistributedUsageError("--resume is not supported with --distributed pipeline")
        if o.get("allreduce") == "shared" and o["compression"] != "none":
            raise DistributedUsageError(
                f"--allreduce shared averages in shared memory, with no wire to compress: drop --compression "
                f"{o['compression']} (or use --allreduce mpi)"
            )
        if o.get("shard_optimizer"):
            if self.mode != "sync" or o["allreduce"] != "shared":
                raise DistributedUsageError("--shard-optimizer needs --distributed sync --allreduce shared")
            if self.settings["optimizer"] == "lbfgs":
                raise DistributedUsageError("--shard-optimizer needs an elementwise optimizer, not --optimizer lbfgs")
        if self.mode in ("sync", "pipeline") and self.settings.get("average", "none") != "none":
            raise DistributedUsageError("--average is not supported with --distributed")

    # ------------------------------------------------------------ shared pieces
    def run(self):
        self.start = self.train_start = time.perf_counter()
        if self.rank == 0:
            os.makedirs(self.out, exist_ok=True)
        minidl.manual_seed(self.settings["seed"])
        self.train, self.test, shape, classes = self._load_datasets()
        self.model = self.recipe.build_model(self.settings, shape, classes)  # the same start on every rank
        self.say(
            f"training {self.settings['model']} on {self.settings['dataset']}, --distributed {self.mode} on "
            f"{self.size} ranks ({self._roles()}), {self.model.num_parameters()} parameters -> {self.out}"
        )
        result = {"sync": self._run_sync, "pipeline": self._run_pipeline}.get(self.mode, self._run_parameter_server)()
        return self._finish(result)

    def _load_datasets(self):
        """Rank 0 loads the data and sends it to the others (one import of scikit-learn, not N)."""
        loaded = None
        if self.rank == 0:
            try:
                loaded = ("ok", self.recipe.load_datasets(self.settings))
            except Exception as e:  # every rank must learn that it failed, or they would wait forever
                loaded = ("error", f"{type(e).__name__}: {e}")
        # The others wait in a barrier that sleeps between polls (MPI's bcast would spin), leaving
        # the cores to rank 0 while it imports scikit-learn and reads the files.
        self.comm.barrier("waiting for rank 0 to load the data")
        loaded = self.comm.comm.bcast(loaded, root=0)
        if loaded[0] == "error":
            raise RuntimeError(f"loading the data on rank 0 failed: {loaded[1]}")
        return loaded[1]

    def _roles(self):
        if self.mode in PS_MODES:
            s = self.options["servers"]
            servers = "rank 0" if s == 1 else f"ranks 0-{s - 1}"
            extra = ""
            if self.mode == "bounded":
                extra = f", τ = {self.options['staleness_bound']}"
            if self.mode == "backup":
                extra = f", {self.options['backup_workers']} of them backup"
            return f"server {servers}, {self.size - s} workers{extra}"
        if self.mode == "pipeline":
            return f"{self.size} stages, {self.options['micro_batches']} micro-batches"
        sharded = ", update sharded (ZeRO)" if self.options.get("shard_optimizer") else ""
        return (
            f"{self.size} replicas, {self.options['allreduce']} allreduce, "
            f"compression {self.options['compression']}{sharded}"
        )

    def _bar(self, total, description):
        if self.rank != 0 or self.quiet or self.recipe.progress_bar is None:
            return None
        return self.recipe.progress_bar(total, description)

    def _inject_faults(self, step, step_seconds):
        """Called after step number `step` (1, 2, ...) took step_seconds (not counting earlier sleeps).

        --slow-rank: sleep (F - 1) times this rank's typical step time (the median of its last 20
        steps, so that one step stretched by the operating system does not count 10 times), which
        makes the rank F times slower than it would be on its own; --hang-rank, --fail-rank.
        """
        o = self.options
        if o["slow_rank"] == self.rank and o["slowdown"] > 1:
            recent = self._recent_steps = (getattr(self, "_recent_steps", []) + [step_seconds])[-20:]
            time.sleep((o["slowdown"] - 1) * float(np.median(recent)))
        if not self.faults:
            return
        if o["hang_rank"] == self.rank and step == o["hang_at_step"]:
            print(f"rank {self.rank}: simulating a hang at step {step} (--hang-rank)", file=sys.stderr, flush=True)
            time.sleep(10**6)
        if o["fail_rank"] == self.rank and step == o["fail_at_step"]:
            print(f"rank {self.rank}: simulating a crash at step {step} (--fail-rank)", file=sys.stderr, flush=True)
            os._exit(17)

    def _checkpoint_path(self, name="checkpoint.npz"):
        return os.path.join(self.out, name)

    def _resume_file(self, name):
        """The checkpoint `name` beside --resume (a file in the run folder, or the folder itself)."""
        folder = self.resume if os.path.isdir(self.resume) else os.path.dirname(os.path.abspath(self.resume))
        return os.path.join(folder, name)

    # ------------------------------------------------------------ sync: DistributedDataParallel
    def _run_sync(self):
        from minidl.distributed.ddp import DistributedDataParallel
        from minidl.distributed.zero import ZeroRedundancyOptimizer

        s, o, comm = self.settings, self.options, self.comm
        model = self.model
        optimizer = self.recipe.build_optimizer(s, model)
        scheduler = optim.lr_scheduler.ExponentialLR(optimizer, beta=s["lr_decay"])
        try:
            ddp = DistributedDataParallel(
                model,
                comm,
                bucket_cap_mb=o["bucket_mb"],
                compression=o["compression"],
                overlap=not o["no_overlap"],
                algorithm=o["allreduce"],
            )
        except ValueError as e:  # e.g. --allreduce shared with ranks on several machines
            raise DistributedUsageError(str(e)) from None
        sharded = bool(o.get("shard_optimizer"))
        if sharded:  # the same optimizer and schedule; its update split over the ranks
            optimizer = ZeroRedundancyOptimizer(ddp, optimizer, max_grad_norm=s["clip_grad_norm"] or None)
        sampler = DistributedSampler(self.train, self.size, self.rank, seed=s["seed"])
        loader = data.DataLoader(self.train, batch_size=s["batch_size"], sampler=sampler)
        loss_fn = nn.CrossEntropyLoss()
        history = {"train_loss": [], "train_accuracy": [], "test_accuracy": [], "lr": []}
        first_epoch, skip, step = 1, 0, 0
        resumed_totals = np.zeros(3)
        if self.resume is not None:
            state = minidl.load_checkpoint(self._resume_file("checkpoint.npz"), model=model, optimizer=optimizer)
            extra = state["extra"]
            scheduler.load_state_dict(extra["scheduler"])
            history = {k: list(v) for k, v in extra["history"].items()}
            first_epoch, skip, step = int(extra["epoch"]), int(extra["batch"]), int(state["step"])
            resumed_totals = np.asarray(extra["totals"], dtype=np.float64) if self.rank == 0 else np.zeros(3)
            self.say(f"resuming after step {step} (epoch {first_epoch}, batch {skip})")
            if sharded:  # every rank wrote the same weights into the shared copy: all done before training
                comm.barrier("loading the checkpoint")

        def save(epoch, batch, totals):
            # The epoch's running totals over all ranks, so a resumed epoch reports the same mean loss.
            totals = comm.allreduce(totals.astype(np.float64), what="checkpoint totals") if batch else totals * 0
            # A sharded optimizer's state is gathered from every rank's slice: every rank takes part.
            saving = _SavedState(optimizer.state_dict()) if sharded else optimizer
            if self.rank == 0:
                extra = {
                    "settings": s,
                    "distributed": o,
                    "scheduler": scheduler.state_dict(),
                    "history": history,
                    "epoch": epoch,
                    "batch": batch,
                    "totals": totals,
                    "seconds": time.perf_counter() - self.start,
                }
                minidl.save_checkpoint(self._checkpoint_path(), model=model, optimizer=saving, step=step, extra=extra)

        samples = 0
        self.train_start = step_end = time.perf_counter()
        for epoch in range(first_epoch, s["epochs"] + 1):
            sampler.set_epoch(epoch)
            bar = self._bar(len(loader), f"epoch {epoch}/{s['epochs']}")
            totals = resumed_totals.copy() if epoch == first_epoch else np.zeros(3)  # loss sum, correct, examples
            lr = optimizer.param_groups[0]["lr"]
            for k, (x, y) in enumerate(loader):
                if epoch == first_epoch and k < skip:
                    if bar is not None:
                        bar.update(1)
                    continue
                scores = ddp(x)
                loss = loss_fn(scores, y)
                optimizer.zero_grad()
                loss.backward()
                if not sharded:  # a sharded optimizer's step() averages the gradients itself
                    ddp.synchronize()
                if s["clip_grad_norm"] and not sharded:  # a sharded optimizer clips the average in step()
                    optim.clip_grad_norm_(model.parameters(), s["clip_grad_norm"])
                optimizer.step()
                step += 1
                self._inject_faults(step, time.perf_counter() - step_end)
                step_end = time.perf_counter()
                n = len(y)
                samples += n * self.size
                totals += (loss.item() * n, int((scores.array.argmax(axis=1) == y.array).sum()), n)
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{totals[0] / totals[2]:.4f}", acc=f"{totals[1] / totals[2]:.3f}", refresh=False
                    )
                    bar.update(1)
                if self.checkpoint_every and step % self.checkpoint_every == 0:
                    save(epoch, k + 1, totals)
            totals = comm.allreduce(totals.astype(np.float64), what=f"epoch {epoch} totals")
            scheduler.step()
            test_accuracy = self.recipe.evaluate(model, self.test) if self.rank == 0 else float("nan")
            for key, value in zip(history, (totals[0] / totals[2], totals[1] / totals[2], test_accuracy, lr)):
                history[key].append(float(value))
            if bar is not None:
                bar.set_postfix(
                    loss=f"{history['train_loss'][-1]:.4f}",
                    acc=f"{history['train_accuracy'][-1]:.3f}",
                    test=f"{test_accuracy:.3f}",
                )
                bar.close()
            save(epoch + 1, 0, totals)
        return {"history": history, "samples": samples, "steps": step, "parameters": _arrays(model)}

    # ------------------------------------------------------------ pipeline
    def _run_pipeline(self):
        from minidl.distributed.model_parallel import Pipeline

        s, o, comm = self.settings, self.options, self.comm
        if not isinstance(self.model, nn.Sequential):
            raise DistributedUsageError("--distributed pipeline needs an nn.Sequential model")
        pipe = Pipeline(self.model, comm, micro_batches=o["micro_batches"])
        params = list(pipe.stage.parameters())
        optimizer = self.recipe.build_optimizer(s, pipe.stage) if params else None
        scheduler = optim.lr_scheduler.ExponentialLR(optimizer, beta=s["lr_decay"]) if optimizer else None
        # The first and the last stage read the same batches: a private generator with the same seed.
        loader = data.DataLoader(self.train, batch_size=s["batch_size"], shuffle=True, seed=s["seed"])
        loss_fn = nn.CrossEntropyLoss()
        first, last = pipe.first, pipe.last
        history = {"train_loss": [], "train_accuracy": [], "test_accuracy": [], "lr": []}
        step, samples = 0, 0
        self.train_start = time.perf_counter()
        for epoch in range(1, s["epochs"] + 1):
            bar = self._bar(len(loader), f"epoch {epoch}/{s['epochs']}")
            pipe.train()
            totals = np.zeros(3)
            lr = s["lr"] * math.exp(-s["lr_decay"] * (epoch - 1))
            for x, y in loader:
                if optimizer is not None:
                    optimizer.zero_grad()
                loss, scores = pipe.train_step(x.array if first else None, y.array if last else None, loss_fn)
                if optimizer is not None:
                    optimizer.step()
                step += 1
                samples += len(y)
                if last:
                    totals += (loss * len(y), int((scores.argmax(axis=1) == y.array).sum()), len(y))
                if bar is not None:
                    bar.update(1)
            if scheduler is not None:
                scheduler.step()
            pipe.eval()
            correct = 0
            for x, y in data.DataLoader(self.test, batch_size=512):
                scores = pipe.predict(x.array if first else None)
                if last:
                    correct += int((scores.argmax(axis=1) == y.array).sum())
            totals = np.append(totals, correct).astype(np.float64)
            totals = comm.allreduce(totals if last else np.zeros(4), what=f"epoch {epoch} totals")
            values = (totals[0] / totals[2], totals[1] / totals[2], totals[3] / len(self.test), lr)
            for key, value in zip(history, values):
                history[key].append(float(value))
            if bar is not None:
                bar.set_postfix(loss=f"{values[0]:.4f}", acc=f"{values[1]:.3f}", test=f"{values[2]:.3f}")
                bar.close()
        return {
            "history": history,
            "samples": samples,
            "steps": step,
            "parameters": _arrays(pipe.stage),
            "stages": [list(b) for b in pipe.bounds],
            "pipeline_seconds": (pipe.step_seconds, pipe.wait_seconds),
        }

    # ------------------------------------------------------------ parameter server modes
    def _run_parameter_server(self):
        from minidl.distributed.parameter_server import Layout, ParameterServer, WorkerClient, downpour_worker
        from minidl.distributed.rules import ServerRules, UpdateRule

        s, o, comm = self.settings, self.options, self.comm
        num_servers = o["servers"]
        num_workers = self.size - num_servers
        params = [p.array for p in self.model.parameters()]
        layout = Layout([p.shape for p in params], num_servers)
        needed = num_workers - (o["backup_workers"] if self.mode == "backup" else 0)
        batches_per_update = needed if self.mode == "backup" else 1
        updates_per_epoch = math.ceil(len(self.train) / (s["batch_size"] * batches_per_update))
        total_updates = s["epochs"] * updates_per_epoch

        if self.rank >= num_servers:  # a worker
            worker = self.rank - num_servers
            client = WorkerClient(comm, layout, range(num_servers), worker, compression=o["compression"])
            batches = _endless_batches(self.train, s["batch_size"], num_workers, worker, s["seed"])
            loss_fn = nn.CrossEntropyLoss()
            self.model.train()
            model_params = list(self.model.parameters())

            def compute_gradients():
                x, y = next(batches)
                scores = self.model(x)
                loss = loss_fn(scores, y)
                self.model.zero_grad()
                loss.backward()
                stats = (len(y), int((scores.array.argmax(axis=1) == y.array).sum()), loss.item() * len(y))
                return [p.grad.array for p in model_params], stats

            last_step_end = [time.perf_counter()]

            def after_step(step):
                # A worker's own work in a step: compute, push and pull (waiting for nobody in async).
                self._inject_faults(step, time.perf_counter() - last_step_end[0])
                last_step_end[0] = time.perf_counter()

            self.train_start = time.perf_counter()
            steps = downpour_worker(client, params, compute_gradients, o["n_fetch"], o["n_push"], after_step)
            return {"role": "worker", "steps": steps, "samples": steps * s["batch_size"]}

        # a server
        rule = UpdateRule(
            SERVER_RULES[s["optimizer"]],
            lr=s["lr"],
            momentum=s["momentum"],
            weight_decay=s["weight_decay"],
            lr_decay=s["lr_decay"],
        )
        rules = ServerRules(
            [p.copy() for p in layout.shard(params, self.rank)],
            rule,
            mode=self.mode,
            num_workers=num_workers,
            bound=o["staleness_bound"] if self.mode == "bounded" else None,
            num_backup=o["backup_workers"] if self.mode == "backup" else 0,
            total_updates=total_updates,
            updates_per_epoch=updates_per_epoch,
        )
        history = {"train_loss": [], "train_accuracy": [], "test_accuracy": [], "lr": []}
        name = f"checkpoint-server{self.rank}.npz" if num_servers > 1 else "checkpoint.npz"
        if self.resume is not None:
            state = minidl.checkpoint.read(self._resume_file(name))
            rules.load_state_dict(state["extra"]["rules"])
            history = {k: list(v) for k, v in state["extra"]["history"].items()}
            self.say(f"resuming at update {rules.version} of {total_updates}")
        server = ParameterServer(comm, rules, range(num_servers, self.size), compression=o["compression"])
        tracker = _EpochTracker(self, server, layout, params, updates_per_epoch, total_updates, history, name)
        server.on_update = tracker.on_update
        self.train_start = time.perf_counter()
        summary = server.run()
        tracker.close()
        if tracker.done_time is not None:  # the pace of training: until the last update, not the last goodbye
            self.train_end = tracker.done_time
        if server.missing:
            print(
                f"rank {self.rank}: training is done, but worker rank {', '.join(map(str, server.missing))} "
                f"sent nothing for {o['timeout']:.0f} s; finishing without it",
                file=sys.stderr,
                flush=True,
            )
        return {
            "role": "server",
            "history": history,
            "rules": summary,
            "updates": rules.version,
            "parameters": _arrays(self.model) if self.rank == 0 else None,
        }

    # ------------------------------------------------------------ the end: metrics.json on rank 0
    def _finish(self, result):
        seconds = time.perf_counter() - self.start
        train_seconds = getattr(self, "train_end", time.perf_counter()) - self.train_start
        mine = {
            "rank": self.rank,
            "bytes_sent": self.comm.bytes_sent,
            "samples": result.get("samples", 0),
            "steps": result.get("steps"),
            "role": result.get("role", "replica"),
            "rules": result.get("rules"),
            "pipeline_seconds": result.get("pipeline_seconds"),
        }
        everyone = self.comm.gather_object(mine, what="final statistics", tolerate_missing=True)
        if self.rank != 0:
            return 0
        missing = [r for r, entry in enumerate(everyone) if entry is None]
        everyone = [entry for entry in everyone if entry is not None]
        history = result["history"]
        samples = (
            sum(r["samples"] for r in everyone if r["role"] == "worker")
            if self.mode in PS_MODES
            else (result["samples"])
        )
        metrics = {
            "mode": self.mode,
            "ranks": self.size,
            "test_accuracy": history["test_accuracy"][-1] if history["test_accuracy"] else None,
            "train_loss": history["train_loss"][-1] if history["train_loss"] else None,
            "train_accuracy": history["train_accuracy"][-1] if history["train_accuracy"] else None,
            "epochs": self.settings["epochs"],
            "seconds": seconds,
            "train_seconds": train_seconds,
            "samples_per_second": samples / train_seconds,
            "steps_per_second": result["steps"] / train_seconds if self.mode not in PS_MODES else None,
            "bytes_sent": sum(r["bytes_sent"] for r in everyone),
            "bytes_sent_by_rank": [r["bytes_sent"] for r in everyone],
            "steps_by_rank": [r["steps"] for r in everyone],
            "kernels": minidl.kernels_name(),
            "settings": self.settings,
            "distributed": self.options,
            "resumed": self.resume is not None,
            "missing_ranks": missing,
            "history": history,
        }
        if self.mode in PS_MODES:
            servers = [r["rules"] for r in everyone if r["role"] == "server"]
            metrics["server"] = servers[0]
            metrics["mean_staleness"] = servers[0]["mean_staleness"]
            metrics["max_staleness"] = servers[0]["max_staleness"]
            metrics["dropped_gradients"] = servers[0]["dropped_gradients"]
            metrics["updates"] = result["updates"]
            metrics["updates_per_second"] = result["updates"] / train_seconds
        if "stages" in result:
            metrics["stages"] = result["stages"]
            # Per stage: seconds in train_step, and of those, seconds waiting for a neighbour (the bubble).
            metrics["pipeline_step_seconds_by_rank"] = [r["pipeline_seconds"][0] for r in everyone]
            metrics["pipeline_wait_seconds_by_rank"] = [r["pipeline_seconds"][1] for r in everyone]
        with open(os.path.join(self.out, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
        minidl.save_checkpoint(
            os.path.join(self.out, "model.npz"), model=self.model, extra={"settings": self.settings}
        ) if (self.mode != "pipeline") else None
        if not self.no_plot and self.recipe.plot is not None and history["train_loss"]:
            self.recipe.plot(history, os.path.join(self.out, "training_curves.png"))
            if self.mode in PS_MODES:
                plot_staleness(metrics["server"]["staleness_histogram"], os.path.join(self.out, "staleness.png"))
        line = f"test accuracy {metrics['test_accuracy']:.4f} after {self.settings['epochs']} epochs in {seconds:.1f}s"
        line += f" ({train_seconds:.1f}s training)"
        line += f"; {metrics['samples_per_second']:.0f} samples/s, {metrics['bytes_sent'] / 2**20:.1f} MiB sent"
        if self.mode in PS_MODES:
            line += (
                f"; {metrics['updates']} updates, mean staleness {metrics['mean_staleness']:.2f} "
                f"(max {metrics['max_staleness']}), {metrics['dropped_gradients']} gradients dropped"
            )
        self.say(line + f"; metrics.json in {self.out}")
        if self.quiet:
            print(self.out)  # as `minidl train --quiet` does: only the output folder
        if missing:  # MPI cannot end a job cleanly while a rank hangs: stop it, with the reason
            print(
                f"error: rank {', '.join(map(str, missing))} never reported (hung?); training finished without it, "
                "stopping the job",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(1.0)  # let mpiexec forward the messages before MPI_Abort tears the job down
            self.comm.comm.Abort(3)
        return 0


class _EpochTracker:
    """On each server: epoch boundaries (evaluation on server 0, snapshots from the others), checkpoints, the bar."""

    def __init__(self, job, server, layout, params, updates_per_epoch, total_updates, history, checkpoint_name):
        self.job, self.server, self.layout, self.params = job, server, layout, params
        self.updates_per_epoch, self.total = updates_per_epoch, total_updates
        self.history, self.checkpoint_name = history, checkpoint_name
        self.rules = server.rules
        self.last_version = self.rules.version
        self.totals = np.zeros(3)
        self.bar = None
        self.done_time = None
        self._new_bar()

    def _epoch(self):
        return self.rules.version // self.updates_per_epoch + 1

    def _new_bar(self):
        if self.rules.version >= self.total:
            return
        epoch = self._epoch()
        self.bar = self.job._bar(self.updates_per_epoch, f"epoch {epoch}/{self.job.settings['epochs']} (updates)")
        if self.bar is not None:
            self.bar.update(self.rules.version % self.updates_per_epoch)

    def on_update(self, server, result, stats):
        version = self.rules.version
        self.totals += stats  # (loss sum, correct, examples) of the pushed batches
        if version == self.last_version:
            return
        if self.bar is not None:
            self.bar.update(version - self.last_version)
            if self.totals[2]:
                self.bar.set_postfix(
                    loss=f"{self.totals[0] / self.totals[2]:.4f}",
                    acc=f"{self.totals[1] / self.totals[2]:.3f}",
                    refresh=False,
                )
        self.last_version = version
        if version >= self.total and self.done_time is None:
            self.done_time = time.perf_counter()
        if version % self.updates_per_epoch == 0:
            self._end_of_epoch(version)
        elif self.job.checkpoint_every and version % self.job.checkpoint_every == 0:
            self._checkpoint()

    def _end_of_epoch(self, version):
        job, rank = self.job, self.job.rank
        server_ranks = range(self.layout.num_servers)
        if rank != 0:
            self.server.send_snapshot(root=0)
        else:
            full = [p for p in self.params]
            for i, array in zip(self.layout.indices[0], self.rules.params):
                full[i][...] = array
            for other, flat in self.server.receive_snapshots(server_ranks, version).items():
                offset = 0
                for i in self.layout.indices[other]:
                    full[i][...] = flat[offset : offset + full[i].size].reshape(full[i].shape)
                    offset += full[i].size
            test_accuracy = job.recipe.evaluate(job.model, job.test)
            t = self.totals
            epoch = version // self.updates_per_epoch
            lr = self.rules.rule.lr0 * math.exp(-self.rules.rule.lr_decay * (epoch - 1))
            train_loss, train_acc = (t[0] / t[2], t[1] / t[2]) if t[2] else (float("nan"), float("nan"))
            for key, value in zip(self.history, (train_loss, train_acc, test_accuracy, lr)):
                self.history[key].append(float(value))
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{train_loss:.4f}", acc=f"{train_acc:.3f}", test=f"{test_accuracy:.3f}")
                self.bar.close()
            self.totals[:] = 0
            self._new_bar()
        self._checkpoint()

    def _checkpoint(self):
        job = self.job
        extra = {
            "settings": job.settings,
            "distributed": job.options,
            "rules": self.rules.state_dict(),
            "history": self.history,
            "seconds": time.perf_counter() - job.start,
        }
        minidl.save_checkpoint(job._checkpoint_path(self.checkpoint_name), step=self.rules.version, extra=extra)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def tqdm_bar(total, description):
    """A tqdm progress bar on stderr (imported here: `import minidl` stays light)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="batch", leave=True, dynamic_ncols=True, file=sys.stderr)


def _endless_batches(dataset, batch_size, num_workers, worker, seed):
    """This worker's shard of the data, batch after batch, epoch after epoch (a new order each time)."""
    sampler = DistributedSampler(dataset, num_workers, worker, seed=seed)
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from data.DataLoader(dataset, batch_size=batch_size, sampler=sampler)
        epoch += 1


def _arrays(module):
    return [p.array.copy() for p in module.parameters()]


def plot_staleness(histogram, path):
    """A bar chart of how many applied gradients had each staleness k = t - v."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.bar(range(len(histogram)), histogram)
    axes.set(title="staleness of applied gradients", xlabel="k = t - v (updates)", ylabel="gradients")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


class _SavedState:
    """What save_checkpoint asks of an optimizer (its state_dict()), for a state gathered beforehand."""

    def __init__(self, state):
        self.state = state

    def state_dict(self):
        return self.state
