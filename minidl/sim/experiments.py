"""The lectures' distributed-training claims as named experiments: `minidl simulate NAME`.

Each experiment is a set of simulated runs (SimConfigs), the numbers that test the claim,
and one picture. Parameters have defaults sized for a few minutes on a laptop; `quick`
sizes them for seconds (the docs and the tests use those); any parameter can be overridden.

    sync-vs-async    Chen et al. 2016: under heavy-tailed stragglers, sync with a few backup
                     workers reaches the target accuracy sooner than plain sync, and sooner and
                     higher than async
    backup-workers   a sync step lasts the slowest of N draws; b backups make it the N-th of
                     N + b: the order statistics, computed and simulated, with diminishing returns
    staleness        async: mean staleness ≈ N - 1; the learning rate that works shrinks as N grows
    bounded-delay    Li et al. 2014: the workers' idle time falls as the bound τ grows
    failures         a worker dies mid-run: async and backup-worker sync finish, plain sync stalls;
                     a server shard restarts from its checkpoint
    compression      a saturated server link: 16-bit transfers halve the bytes and speed updates up
    hogwild          sparse embedding rows: per-row staleness stays near 0 while the global one is N - 1

A config file (JSON) runs either a named experiment with other parameters,
{"experiment": "staleness", "params": {"workers": [1, 8, 64]}}, or runs of your own,
{"runs": {"name": {SimConfig settings}, ...}, "title": "...", "target_accuracy": 0.9}.
"""

import json
import math
import os

import numpy as np

from minidl.sim.cluster import Simulation
from minidl.sim.config import SimConfig
from minidl.sim.results import _jsonable, new_figure, plot_curves, plot_runs, save_figure, write_history_csv
from minidl.sim.timing import describe_compute, expected_order_statistic, parse_compute

STRAGGLERS = "straggler:median=0.1,sigma=0.1,p=0.01,slowdown=4,tail=2"
STEADY = "lognormal:median=0.1,sigma=0.2"
FREE_NETWORK = {"latency": 0.0, "bandwidth": math.inf, "server_bandwidth": math.inf}


class Experiment:
    """A named experiment: parameters (defaults, quick sizes), its runs, its numbers, its picture."""

    name = ""
    claim = ""
    defaults = {}
    quick = {}

    def params(self, quick=False, **overrides):
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"experiment {self.name}: no parameter {unknown[0]!r}; it takes {', '.join(sorted(self.defaults))}"
            )
        return {**self.defaults, **(self.quick if quick else {}), **overrides}

    def runs(self, p):
        """{run name: SimConfig}."""
        raise NotImplementedError

    def analyze(self, p, results):
        """(numbers: a JSON-ready dict, lines: what they say)."""
        raise NotImplementedError

    def plot(self, p, results, numbers, path):
        raise NotImplementedError


def _base(p, **settings):
    """A SimConfig from the common parameters, with run-specific settings."""
    common = {k: p[k] for k in ("seed", "batch_size", "hidden") if k in p}
    config = SimConfig(**{**common, **settings})
    config.check()
    return config


# ---------------------------------------------------------------------------
class SyncVsAsync(Experiment):
    name = "sync-vs-async"
    claim = "under heavy-tailed stragglers, sync + backups reaches the target first; async needs a smaller lr"
    defaults = {"workers": 32, "backup": 4, "time": 20.0, "compute": STRAGGLERS, "lr": 0.1, "async_lr": None,
                "target": 0.95, "seed": 0}  # fmt: skip
    quick = {"workers": 8, "backup": 2, "time": 6.0, "target": 0.9}

    def runs(self, p):
        n, b, lr = p["workers"], p["backup"], p["lr"]
        async_lr = p["async_lr"] if p["async_lr"] is not None else min(lr, 0.3 / n)
        common = dict(workers=n, compute=p["compute"], optimizer="adagrad", updates=None, max_time=p["time"],
                      eval_every=p["time"] / 40, target_accuracy=p["target"])  # fmt: skip
        runs = {
            f"sync (N={n})": _base(p, mode="sync", lr=lr, **common),
            f"sync, {b} backup workers": _base(p, mode="backup", backup=b, lr=lr, **common),
            f"async, lr {async_lr:.3g}": _base(p, mode="async", lr=async_lr, **common),
        }
        if async_lr != lr:
            runs[f"async, lr {lr:.3g} (sync's)"] = _base(p, mode="async", lr=lr, **common)
        return runs

    def analyze(self, p, results):
        numbers, lines = {}, []
        for name, r in results.items():
            numbers[name] = {
                "time_to_target": r.time_to_target,
                "final_accuracy": r.final_accuracy,
                "best_accuracy": r.best_accuracy(),
                "updates": r.updates,
                "mean_step_time": float(r.step_times.mean()),
                "mean_staleness": r.mean_staleness,
            }
            reach = f"{r.time_to_target:.1f} s" if r.time_to_target is not None else "never"
            lines.append(
                f"{name:32s} reaches {p['target']:.0%} at {reach:>7s}; final {r.final_accuracy:.3f}, best "
                f"{r.best_accuracy():.3f}; {r.updates} updates of {r.step_times.mean() * 1000:.1f} ms"
            )
        return numbers, lines

    def plot(self, p, results, numbers, path):
        figure, axes = new_figure(1, 3, (15, 4.5))
        plot_curves(axes[0][0], results, "time", "test_accuracy", p["target"])
        axes[0][0].set_title("test accuracy against simulated time")
        axes[0][0].legend(loc="lower right", fontsize=8)
        plot_curves(axes[0][1], results, "updates", "test_accuracy", p["target"])
        axes[0][1].set_xscale("log")
        axes[0][1].set_title("... against updates (log scale)")
        ax = axes[0][2]
        names = list(results)
        times = [numbers[n]["time_to_target"] for n in names]
        heights = [t if t is not None else p["time"] for t in times]
        for i, (height, t) in enumerate(zip(heights, times)):
            reached = t is not None
            ax.barh(i, height, color=f"C{i}", alpha=1.0 if reached else 0.25, hatch=None if reached else "//")
            text = f" {t:.1f} s" if reached else f" not within {p['time']:g} s"
            ax.text(height, i, text, va="center", fontsize=8)
        ax.set_yticks(range(len(names)), [n.replace(", ", ",\n") for n in names], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, p["time"] * 1.3)
        ax.set(title=f"simulated time to {p['target']:.0%} test accuracy", xlabel="simulated seconds")
        figure.suptitle(f"{p['workers']} workers, {describe_compute(p['compute'])}; AdaGrad on the server")
        return save_figure(figure, path)


# ---------------------------------------------------------------------------
class BackupWorkers(Experiment):
    name = "backup-workers"
    claim = "sync waits for the slowest of N; b backups cut the step to the N-th of N + b, with diminishing returns"
    defaults = {"workers": 32, "backup": 8, "updates": 150, "compute": STRAGGLERS, "seed": 0}
    quick = {"workers": 8, "backup": 3, "updates": 60}

    def backups(self, p):
        values = sorted({0, *[b for b in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32) if b <= p["backup"]], p["backup"]})
        return values

    def runs(self, p):
        runs = {}
        for b in self.backups(p):
            for abort in (True, False) if b else (False,):
                mode = "sync" if b == 0 else "backup"
                name = f"b={b}" + ("" if b == 0 else (", late steps aborted" if abort else ", late steps finished"))
                runs[name] = _base(p, mode=mode, workers=p["workers"], backup=b, abort_late=abort,
                                   compute=p["compute"], updates=p["updates"], optimizer="adagrad", lr=0.1,
                                   **FREE_NETWORK)  # fmt: skip
        return runs

    def analyze(self, p, results):
        model = parse_compute(p["compute"])
        n = p["workers"]
        numbers, lines = {"mean_compute": model.mean, "backups": []}, []
        lines.append(f"one step's compute time: mean {model.mean * 1000:.1f} ms ({model.spec})")
        for b in self.backups(p):
            predicted = expected_order_statistic(model, n, n + b)
            aborted = results[f"b={b}" if b == 0 else f"b={b}, late steps aborted"].step_times
            finished = results[f"b={b}" if b == 0 else f"b={b}, late steps finished"].step_times
            row = {
                "b": b,
                "predicted": predicted,
                "aborted_mean": float(aborted.mean()),
                "aborted_se": float(aborted.std() / math.sqrt(len(aborted))),
                "finished_mean": float(finished.mean()),
            }
            numbers["backups"].append(row)
            lines.append(
                f"b={b:2d}: E[X_({n}:{n + b})] = {predicted * 1000:6.1f} ms; simulated step "
                f"{row['aborted_mean'] * 1000:6.1f} ± {row['aborted_se'] * 1000:.1f} ms (late steps aborted), "
                f"{row['finished_mean'] * 1000:6.1f} ms (late steps finished)"
            )
        return numbers, lines

    def plot(self, p, results, numbers, path):
        figure, axes = new_figure(1, 2, (12, 4.5))
        rows = numbers["backups"]
        b = [r["b"] for r in rows]
        ax = axes[0][0]
        ax.plot(b, [r["predicted"] * 1000 for r in rows], "k--", marker="o", label="order statistic E[X₍N:N+b₎]")
        ax.set_xticks(b)
        ax.errorbar(b, [r["aborted_mean"] * 1000 for r in rows], yerr=[2 * r["aborted_se"] * 1000 for r in rows],
                    marker="s", capsize=3, label="simulated, late steps aborted")  # fmt: skip
        ax.plot(b, [r["finished_mean"] * 1000 for r in rows], marker="^", label="simulated, late steps finished")
        ax.axhline(numbers["mean_compute"] * 1000, color="gray", linestyle=":", label="mean compute time")
        ax.set(title=f"mean sync step time, N = {p['workers']}", xlabel="backup workers b", ylabel="ms per step")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        ax = axes[0][1]
        gains = [
            (rows[i - 1]["predicted"] - rows[i]["predicted"]) * 1000 / (b[i] - b[i - 1]) for i in range(1, len(rows))
        ]
        ax.bar([str(x) for x in b[1:]], gains)
        ax.set(title="what one more backup worker saves (predicted)", xlabel="backup workers b",
               ylabel="ms per step saved, per added worker")  # fmt: skip
        ax.grid(True, alpha=0.3, axis="y")
        figure.suptitle(f"synchronous SGD with backup workers: {describe_compute(p['compute'])}")
        return save_figure(figure, path)


# ---------------------------------------------------------------------------
class Staleness(Experiment):
    name = "staleness"
    claim = "async with N identical workers: mean staleness ≈ N - 1; the learning rate must shrink as N grows"
    defaults = {"workers": [1, 2, 4, 8, 16, 32, 64], "lrs": [0.1, 0.03, 0.01], "updates": 2000, "compute": STEADY,
                "seed": 0}  # fmt: skip
    quick = {"workers": [1, 4, 16], "lrs": [0.1, 0.01], "updates": 300}

    def runs(self, p):
        return {
            f"N={n}, lr {lr:g}": _base(p, mode="async", workers=n, lr=lr, optimizer="adagrad", compute=p["compute"],
                                       updates=p["updates"], eval_updates=max(1, p["updates"] // 10))
            for n in _as_list(p["workers"])
            for lr in _as_list(p["lrs"])
        }  # fmt: skip

    def analyze(self, p, results):
        numbers, lines = {"workers": [], "accuracy": {}}, []
        for n in _as_list(p["workers"]):
            r = results[f"N={n}, lr {_as_list(p['lrs'])[0]:g}"]
            numbers["workers"].append(
                {"N": n, "mean_staleness": r.mean_staleness, "max_staleness": r.shards[0]["max_staleness"]}
            )
            accs = {lr: results[f"N={n}, lr {lr:g}"].final_accuracy for lr in _as_list(p["lrs"])}
            numbers["accuracy"][n] = accs
            lines.append(
                f"N={n:3d}: mean staleness {r.mean_staleness:6.2f} (N - 1 = {n - 1}); final accuracy "
                + ", ".join(f"lr {lr:g}: {a:.3f}" for lr, a in accs.items())
            )
        return numbers, lines

    def plot(self, p, results, numbers, path):
        figure, axes = new_figure(1, 3, (15, 4.5))
        ns = [row["N"] for row in numbers["workers"]]
        ax = axes[0][0]
        ax.plot(ns, [n - 1 for n in ns], "k--", label="N - 1")
        ax.plot(ns, [row["mean_staleness"] for row in numbers["workers"]], "o", label="simulated mean")
        ax.plot(ns, [row["max_staleness"] for row in numbers["workers"]], "^", label="simulated max")
        ax.set(title="staleness of applied gradients", xlabel="workers N", ylabel="k = t - v (updates)")
        _log2_axis(ax, ns)
        ax.set_yscale("symlog", linthresh=1)
        top = max(row["max_staleness"] for row in numbers["workers"])
        ticks = [t for t in (0, 1, 3, 10, 30, 100, 300, 1000, 3000) if t <= 1.5 * top] or [0, 1]
        ax.set_yticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        ax = axes[0][1]
        shown = ns[-1] if len(ns) < 3 else ns[len(ns) // 2 + 1]
        histogram = np.asarray(results[f"N={shown}, lr {_as_list(p['lrs'])[0]:g}"].staleness_histogram, float)
        ax.bar(np.arange(len(histogram)), histogram / histogram.sum(), width=1.0)
        ax.axvline(shown - 1, color="k", linestyle="--", label=f"N - 1 = {shown - 1}")
        ax.set(title=f"staleness histogram, N = {shown}", xlabel="k (updates)", ylabel="fraction of gradients")
        ax.legend(fontsize=8)
        ax = axes[0][2]
        for lr in _as_list(p["lrs"]):
            ax.plot(ns, [numbers["accuracy"][n][lr] for n in ns], marker="o", label=f"AdaGrad lr {lr:g}")
        ax.set(title=f"test accuracy after {p['updates']} updates", xlabel="workers N", ylabel="test accuracy")
        _log2_axis(ax, ns)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        figure.suptitle(f"asynchronous SGD (Downpour), identical workers: {describe_compute(p['compute'])}")
        return save_figure(figure, path)


# ---------------------------------------------------------------------------
class BoundedDelay(Experiment):
    name = "bounded-delay"
    claim = "with bounded delay τ, the workers' idle time falls as τ grows (Li et al., OSDI 2014)"
    defaults = {"workers": 16, "bounds": [0, 1, 2, 4, 8, 16, None], "updates": 1500, "compute":
                "lognormal:median=0.1,sigma=0.5", "lr": 0.03, "seed": 0}  # fmt: skip
    quick = {"workers": 8, "bounds": [0, 1, 4, None], "updates": 250}

    def runs(self, p):
        runs = {}
        for tau in _as_list(p["bounds"]):
            mode = dict(mode="async") if tau is None else dict(mode="bounded", bound=tau)
            name = "async (τ = ∞)" if tau is None else f"τ = {tau}"
            runs[name] = _base(p, workers=p["workers"], compute=p["compute"], updates=p["updates"], lr=p["lr"],
                               optimizer="adagrad", eval_updates=max(1, p["updates"] // 20), **mode)  # fmt: skip
        return runs

    def analyze(self, p, results):
        numbers, lines = {}, []
        for name, r in results.items():
            numbers[name] = {
                "idle_fraction": r.idle_fraction,
                "blocked_fraction": r.blocked_fraction,
                "mean_staleness": r.mean_staleness,
                "max_staleness": r.shards[0]["max_staleness"],
                "time": r.end_time,
                "final_accuracy": r.final_accuracy,
            }
            lines.append(
                f"{name:14s}: idle {r.idle_fraction:6.1%} (waiting for the rules {r.blocked_fraction:6.1%}); "
                f"staleness mean {r.mean_staleness:5.2f}, max {r.shards[0]['max_staleness']:3d}; "
                f"{p['updates']} updates in {r.end_time:6.2f} s; test accuracy {r.final_accuracy:.3f}"
            )
        return numbers, lines

    def plot(self, p, results, numbers, path):
        figure, axes = new_figure(1, 3, (15, 4.5))
        names = list(results)
        labels = [n.replace("async (τ = ∞)", "∞").replace("τ = ", "") for n in names]
        ax = axes[0][0]
        ax.bar(labels, [numbers[n]["idle_fraction"] * 100 for n in names], label="idle (not computing)")
        ax.bar(labels, [numbers[n]["blocked_fraction"] * 100 for n in names], width=0.5,
               label="of which: held back by the bound")  # fmt: skip
        ax.set(title="worker idle time", xlabel="bound τ", ylabel="% of the workers' time")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3, axis="y")
        ax = axes[0][1]
        ax.plot(labels, [numbers[n]["mean_staleness"] for n in names], marker="o", label="mean")
        ax.plot(labels, [numbers[n]["max_staleness"] for n in names], marker="^", label="max")
        ax.set(title="staleness of applied gradients", xlabel="bound τ", ylabel="k (updates)")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        plot_curves(axes[0][2], results, "time", "test_accuracy")
        axes[0][2].set_title(f"test accuracy ({p['updates']} updates each)")
        axes[0][2].legend(fontsize=8, loc="lower right")
        figure.suptitle(f"bounded delay, {p['workers']} workers: {describe_compute(p['compute'])}")
        return save_figure(figure, path)


# ---------------------------------------------------------------------------
class Failures(Experiment):
    name = "failures"
    claim = "a worker dies mid-run: async and backup-worker sync finish, plain sync stalls; a shard restarts"
    defaults = {"workers": 8, "backup": 1, "time": 30.0, "dies_at": 10.0, "worker": 3, "restart_at": 15.0,
                "downtime": 1.0, "checkpoint_every": 100, "compute": STEADY, "seed": 0}  # fmt: skip
    quick = {"time": 8.0, "dies_at": 3.0, "restart_at": 5.0, "checkpoint_every": 50}

    def runs(self, p):
        death = [(p["worker"], p["dies_at"])]
        common = dict(workers=p["workers"], compute=p["compute"], optimizer="adagrad", updates=None,
                      max_time=p["time"], eval_every=p["time"] / 60, worker_failures=death)  # fmt: skip
        return {
            "async": _base(p, mode="async", lr=0.01, **common),
            f"sync, {p['backup']} backup": _base(p, mode="backup", backup=p["backup"], lr=0.1, **common),
            "plain sync": _base(p, mode="sync", lr=0.1, **common),
            "async, 2 shards, shard 1 restarts": _base(
                p, mode="async", lr=0.01, servers=2, server_restarts=[(1, p["restart_at"], p["downtime"])],
                checkpoint_every=p["checkpoint_every"], **common),
        }  # fmt: skip

    def analyze(self, p, results):
        numbers, lines = {}, []
        for name, r in results.items():
            numbers[name] = {
                "finished": r.finished,
                "end_time": r.end_time,
                "updates": r.updates,
                "final_accuracy": r.final_accuracy,
                "stall": r.stall,
                "lost_updates": sum(s["lost_updates"] for s in r.shards),
                "lost_messages": sum(s["lost_messages"] for s in r.shards),
            }
            text = "ran to the time limit" if r.finished == "max_time" else r.finished
            line = f"{name:34s}: {text}, {r.updates} updates, test accuracy {r.final_accuracy:.3f}"
            if r.stall:
                line += f"; {r.stall['message']}"
            if numbers[name]["lost_updates"]:
                line += (f"; the restart lost {numbers[name]['lost_updates']} updates and "
                         f"{numbers[name]['lost_messages']} messages")  # fmt: skip
            lines.append(line)
        return numbers, lines

    def plot(self, p, results, numbers, path):
        figure, axes = new_figure(1, 2, (13, 4.5))
        for k, (x, title) in enumerate((("time", "test accuracy against simulated time"),
                                        ("updates", "... against updates"))):  # fmt: skip
            ax = axes[0][k]
            plot_curves(ax, results, x, "test_accuracy")
            ax.set_title(title)
            if x == "time":
                ax.axvline(p["dies_at"], color="red", linestyle=":", linewidth=1)
                ax.text(p["dies_at"], 0.02, f" worker {p['worker']} dies", color="red", fontsize=8)
                ax.axvspan(p["restart_at"], p["restart_at"] + p["downtime"], color="orange", alpha=0.2)
                ax.text(p["restart_at"] + p["downtime"], 0.1, " shard 1 down", color="darkorange", fontsize=8)
                stalled = [n for n, r in results.items() if r.stall]
                for n in stalled:
                    ax.plot(results[n].stall["time"], results[n].final_accuracy, "rx", markersize=10)
                ax.legend(fontsize=8, loc="center right")
            ax.set_ylim(0, 1)
        figure.suptitle(f"{p['workers']} workers, one dies at t = {p['dies_at']:g} s (x: plain sync stalls)")
        return save_figure(figure, path)


# ---------------------------------------------------------------------------
class Compression(Experiment):
    name = "compression"
    claim = "when the server link saturates, 16-bit transfers halve the bytes and nearly double the updates"
    defaults = {"workers": 32, "hidden": 128, "server_bandwidth": 10e6, "time": 15.0, "compute": STEADY,
                "lr": 0.01, "seed": 0}  # fmt: skip
    quick = {"workers": 16, "time": 3.0, "server_bandwidth": 5e6}

    def runs(self, p):
        return {
            f"{c}": _base(
                p,
                mode="async",
                workers=p["workers"],
                compute=p["compute"],
                compression=c,
                server_bandwidth=p["server_bandwidth"],
                updates=None,
                max_time=p["time"],
                eval_every=p["time"] / 30,
                optimizer="adagrad",
                lr=p["lr"],
            )  # fmt: skip
            for c in ("none", "fp16", "trunc16")
        }

    def analyze(self, p, results):
        numbers, lines = {}, []
        for name, r in results.items():
            numbers[name] = {
                "bytes_per_update": r.bytes_sent / max(r.updates, 1),
                "updates_per_second": r.updates / r.end_time,
                "server_link_busy": r.server_link_busy[0] / r.end_time,
                "final_accuracy": r.final_accuracy,
                "mean_staleness": r.mean_staleness,
            }
            n = numbers[name]
            lines.append(
                f"{name:8s}: {n['bytes_per_update'] / 1e3:7.1f} kB per update, "
                f"{n['updates_per_second']:6.1f} updates/s (server link busy {n['server_link_busy']:.0%}), "
                f"staleness {n['mean_staleness']:.1f}, "
                f"test accuracy {n['final_accuracy']:.3f}"
            )
        return numbers, lines

    def plot(self, p, results, numbers, path):
        figure, axes = new_figure(1, 3, (15, 4.5))
        names = list(results)
        ax = axes[0][0]
        ax.bar(names, [numbers[n]["bytes_per_update"] / 1e3 for n in names], color=["C0", "C1", "C2"])
        ax.set(title="bytes sent per update (push + reply)", ylabel="kB")
        ax = axes[0][1]
        ax.bar(names, [numbers[n]["updates_per_second"] for n in names], color=["C0", "C1", "C2"])
        ax.set(title="updates per simulated second", ylabel="updates/s")
        plot_curves(axes[0][2], results, "time", "test_accuracy")
        axes[0][2].set_title("test accuracy against simulated time")
        axes[0][2].legend(fontsize=8, loc="lower right")
        mb = p["server_bandwidth"] / 1e6
        figure.suptitle(f"async, {p['workers']} workers, mlp hidden {p['hidden']}, server link {mb:g} MB/s")
        return save_figure(figure, path)


# ---------------------------------------------------------------------------
class Hogwild(Experiment):
    name = "hogwild"
    claim = "Hogwild: a worker reads and writes only its embedding rows: ~100x fewer bytes, per-row staleness ~1"
    defaults = {"workers": 32, "time": 4.0, "lr": 0.05, "compute": STEADY, "batch_size": 8,
                "server_bandwidth": 1.25e8, "seed": 0}  # fmt: skip
    quick = {"workers": 16, "time": 2.0}

    def runs(self, p):
        common = dict(
            workers=p["workers"],
            model="embedding",
            dataset="topics",
            compute=p["compute"],
            updates=None,
            max_time=p["time"],
            server_bandwidth=p["server_bandwidth"],
            optimizer="adagrad",
            lr=p["lr"],
            eval_every=p["time"] / 40,
        )
        return {
            "dense async (whole table)": _base(p, mode="async", **common),
            "hogwild (rows it uses)": _base(p, mode="hogwild", **common),
        }  # fmt: skip

    def analyze(self, p, results):
        numbers, lines = {}, []
        for name, r in results.items():
            s = r.shards[0]
            numbers[name] = {
                "bytes_per_update": r.bytes_sent / r.updates,
                "mean_staleness": r.mean_staleness,
                "mean_row_staleness": s.get("mean_row_staleness"),
                "row_staleness_histogram": s.get("row_staleness_histogram"),
                "time": r.end_time,
                "final_accuracy": r.final_accuracy,
            }
            rows = "" if "mean_row_staleness" not in s else f", per row {s['mean_row_staleness']:.2f}"
            lines.append(
                f"{name:26s}: {numbers[name]['bytes_per_update'] / 1e3:7.1f} kB per update, "
                f"{r.updates / r.end_time:5.0f} updates/s; staleness {r.mean_staleness:.1f}{rows}; "
                f"test accuracy {r.final_accuracy:.3f}"
            )
        return numbers, lines

    def plot(self, p, results, numbers, path):
        figure, axes = new_figure(1, 3, (15, 4.5))
        names = list(results)
        ax = axes[0][0]
        ax.bar([n.split(" (")[0] for n in names], [numbers[n]["bytes_per_update"] / 1e3 for n in names],
               color=["C0", "C1"])  # fmt: skip
        ax.set(title="bytes per update", ylabel="kB")
        ax.set_yscale("log")
        ax = axes[0][1]
        hog = numbers[names[1]]
        rows = np.asarray(hog["row_staleness_histogram"] or [1], float)
        whole = np.asarray(results[names[1]].staleness_histogram, float)
        ax.bar(np.arange(len(whole)), whole / whole.sum(), width=1.0, alpha=0.6, label="global: updates since the read")
        ax.bar(np.arange(len(rows)), rows / rows.sum(), width=0.6, alpha=0.8, label="per row: updates of that row")
        ax.set(title="staleness in hogwild mode", xlabel="k (updates)", ylabel="fraction")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        plot_curves(axes[0][2], results, "time", "test_accuracy")
        axes[0][2].set_title("test accuracy against simulated time")
        axes[0][2].legend(fontsize=8, loc="lower right")
        mb = p["server_bandwidth"] / 1e6
        figure.suptitle(f"sparse embeddings (10,000 x 16 table, bags of 8 ids), {p['workers']} async workers, "
                        f"server link {mb:g} MB/s")  # fmt: skip
        return save_figure(figure, path)


# ---------------------------------------------------------------------------
class Custom(Experiment):
    """Runs from a config file: {"runs": {name: settings}, "title": ..., "target_accuracy": ...}."""

    name = "custom"
    claim = "your own runs"

    def __init__(self, spec, where):
        runs = spec.get("runs")
        if not isinstance(runs, dict) or not runs:
            raise ValueError(f"{where}: 'runs' must be an object of run name -> settings")
        unknown = sorted(set(spec) - {"runs", "title", "target_accuracy", "common"})
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r}; expected runs, common, title, target_accuracy")
        self.spec = spec
        self.where = where
        self.defaults = {"title": spec.get("title"), "target_accuracy": spec.get("target_accuracy")}

    def runs(self, p):
        common = self.spec.get("common", {})
        target = {"target_accuracy": p["target_accuracy"]} if p["target_accuracy"] is not None else {}
        return {
            name: SimConfig.from_dict({**target, **common, **settings}, where=f"{self.where}: run {name!r}")
            for name, settings in self.spec["runs"].items()
        }

    def analyze(self, p, results):
        numbers = {name: r.summary() for name, r in results.items()}
        for n in numbers.values():
            n.pop("workers")
        return numbers, [f"{name}: {r.describe()}" for name, r in results.items()]

    def plot(self, p, results, numbers, path):
        return plot_runs(results, path, title=p["title"], target=p["target_accuracy"])


EXPERIMENTS = {e.name: e for e in (SyncVsAsync(), BackupWorkers(), Staleness(), BoundedDelay(), Failures(),
                                   Compression(), Hogwild())}  # fmt: skip


class ExperimentResult:
    """name, params, results {run name: SimResult}, numbers, lines (the report), files written."""

    def __init__(self, name, params, results, numbers, lines, files):
        self.name, self.params, self.results = name, params, results
        self.numbers, self.lines, self.files = numbers, lines, files

    def report(self):
        return "\n".join(self.lines)


def load_config(path):
    """(experiment, params) from a JSON config file."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if "experiment" in spec:
        unknown = sorted(set(spec) - {"experiment", "params", "quick"})
        if unknown:
            raise ValueError(f"{path}: unknown key {unknown[0]!r}; expected experiment, params, quick")
        name = spec["experiment"]
        if name not in EXPERIMENTS:
            raise ValueError(f"{path}: unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
        return EXPERIMENTS[name], dict(spec.get("params", {})), bool(spec.get("quick", False))
    return Custom(spec, path), {}, False


def run_experiment(name, out=None, quick=False, progress=None, plot=True, **overrides):
    """Run a named experiment (or an Experiment, or a config file's path); returns an ExperimentResult.

    out       a folder for history.csv (every run), summary.json and the picture <name>.png
    progress  progress(run index, run count, run name, total, unit) -> a bar with update(n) and close(), or None
    """
    if isinstance(name, Experiment):
        experiment = name
    elif name in EXPERIMENTS:
        experiment = EXPERIMENTS[name]
    elif isinstance(name, str) and (name.endswith(".json") or os.path.exists(name)):
        if not os.path.exists(name):
            raise ValueError(f"config file {name} does not exist")
        experiment, params, file_quick = load_config(name)
        overrides = {**params, **overrides}
        quick = quick or file_quick
    else:
        raise ValueError(
            f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)} or a .json config file"
        )
    p = experiment.params(quick=quick, **overrides)
    runs = experiment.runs(p)
    results = {}
    for index, (run_name, config) in enumerate(runs.items()):
        bar = None
        if progress is not None:
            total, unit = (config.updates, "updates") if config.max_time is None else (config.max_time, "s")
            bar = progress(index, len(runs), run_name, total, unit)
        reporter = _Reporter(bar, config.max_time is None)
        try:
            results[run_name] = Simulation(config, progress=reporter if bar else None).run()
        finally:
            if bar is not None:
                bar.close()
    numbers, lines = experiment.analyze(p, results)
    files = []
    if out is not None:
        os.makedirs(out, exist_ok=True)
        stem = experiment.name.replace("-", "_")
        csv_path = os.path.join(out, "history.csv")
        write_history_csv(csv_path, results)
        summary_path = os.path.join(out, "summary.json")
        summary = {"experiment": experiment.name, "claim": experiment.claim, "params": p, "numbers": numbers,
                   "report": lines, "runs": {n: r.summary() for n, r in results.items()}}  # fmt: skip
        with open(summary_path, "w") as f:
            json.dump(_jsonable(summary), f, indent=2)
        files += [csv_path, summary_path]
        if plot:
            files.append(experiment.plot(p, results, numbers, os.path.join(out, f"sim_{stem}.png")))
    return ExperimentResult(experiment.name, p, results, numbers, lines, files)


class _Reporter:
    """Feeds a progress bar from the simulation's per-update callback: updates, or simulated seconds."""

    def __init__(self, bar, by_updates):
        self.bar, self.by_updates, self.shown = bar, by_updates, 0.0

    def __call__(self, updates, now):
        value = updates if self.by_updates else now
        if value > self.shown:
            self.bar.update(value - self.shown)
            self.shown = value


def _log2_axis(ax, values):
    """A log-2 axis labelled with the values themselves (1, 2, 4, ... rather than 2⁰, 2¹, 2²)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(values, [str(v) for v in values])
    ax.minorticks_off()


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]
