"""What a simulated run measured, and how it is written down: CSV, JSON and matplotlib plots.

A SimResult holds the run's history (test loss and accuracy, training loss, against simulated
time, updates and epochs), the time of every update, each shard's ServerRules summary
(staleness histogram, dropped gradients), every worker's busy and idle time, the bytes sent,
failures, and a stall report when the run could not go on. Wall-clock numbers (how long the
simulation itself took) are kept apart, under `profile`: they are not part of the
simulated results and differ from run to run.

matplotlib is imported inside the plotting functions only.
"""

import csv
import json
import math
import os

import numpy as np

HISTORY_COLUMNS = ("time", "updates", "gradients", "epochs", "train_loss", "train_accuracy", "test_loss",
                   "test_accuracy")  # fmt: skip


class SimResult:
    """The outcome of one simulated run (see the module docstring). `parameters` are the final arrays."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    @classmethod
    def from_simulation(cls, sim, clock):
        c = sim.config
        end = sim.now
        workers = []
        for w in sim.workers:
            busy = w.compute_seconds + ((end - w.busy_since) if w.computing and w.alive else 0.0)
            life = (w.end if w.end is not None else end) or 0.0
            workers.append({
                "worker": w.index,
                "alive": w.alive,
                "compute_seconds": busy,
                "blocked_seconds": w.blocked_seconds,
                "lifetime": life,
                "idle_fraction": 1.0 - busy / life if life > 0 else 0.0,
                "steps": w.step,
                "pushes": w.pushes,
            })  # fmt: skip
        shards = []
        for shard in sim.shards:
            summary = shard.rules.summary()
            summary.update(lost_messages=shard.lost_messages, lost_updates=shard.lost_updates,
                           restarts=shard.restarts)  # fmt: skip
            shards.append(summary)
        stall = None
        if sim.finished == "stalled":
            waiting = {s.index: s.rules.blocking_workers() for s in sim.shards if s.up}
            blamed = sorted({w for ws in waiting.values() for w in ws})
            dead = sorted(w for w in blamed if w in sim.deaths)
            stall = {
                "time": sim.last_update,
                "updates": sim.shards[0].rules.version,
                "waiting_for": blamed,
                "dead": dead,
                "message": _stall_message(sim, blamed, dead),
            }
        clocks = {"total": clock, "gradients": sim.workload.clock["gradients"],
                  "evaluation": sim.workload.clock["evaluation"], "server_updates": sim.rules_clock}  # fmt: skip
        profile = {"events": sim.events, "gradients_computed": sim.pool.computed, "passes": sim.workload.passes,
                   "stacked_passes": sim.pool.stacked_passes}  # fmt: skip
        for kind in ("wall", "cpu"):
            for name, watch in clocks.items():
                profile[f"{name}_{kind}_seconds"] = getattr(watch, kind)
            rest = getattr(clock, kind) - sum(getattr(w, kind) for n, w in clocks.items() if n != "total")
            profile[f"overhead_{kind}_us_per_event"] = 1e6 * rest / max(sim.events, 1)
        return cls(
            config=c.as_dict(),
            compute=sim.compute.spec,
            measured_seconds=sim.measured_seconds,
            finished=sim.finished,
            end_time=end,
            history=list(sim.history),
            update_times=np.asarray(sim.update_times, dtype=np.float64),
            shards=shards,
            workers=workers,
            bytes_to_servers=sim.channels.bytes_to_servers,
            bytes_to_workers=sim.channels.bytes_to_workers,
            messages_to_servers=sim.channels.messages_to_servers,
            messages_to_workers=sim.channels.messages_to_workers,
            server_link_busy=[link.busy for link in sim.channels.into_shard],
            deaths=dict(sim.deaths),
            stall=stall,
            time_to_target=sim.time_to_target,
            updates_to_target=sim.updates_to_target,
            updates_per_epoch=sim.updates_per_epoch,
            profile=profile,
            parameters=[p.copy() for p in sim.current_parameters()],
            arrival_logs=[shard.log for shard in sim.shards],
        )

    # ------------------------------------------------------------ derived numbers
    @property
    def mode(self):
        return self.config["mode"]

    @property
    def updates(self):
        return self.shards[0]["updates"]

    @property
    def mean_staleness(self):
        return self.shards[0]["mean_staleness"]

    @property
    def staleness_histogram(self):
        return self.shards[0]["staleness_histogram"]

    @property
    def step_times(self):
        """Simulated seconds between consecutive updates of shard 0."""
        return np.diff(np.concatenate([[0.0], self.update_times]))

    @property
    def idle_fraction(self):
        """The workers' mean share of their lifetime not spent computing (waiting for the network or the rules)."""
        return float(np.mean([w["idle_fraction"] for w in self.workers]))

    @property
    def blocked_fraction(self):
        """The workers' mean share of their lifetime spent waiting for the servers' rules (not the network)."""
        return float(np.mean([w["blocked_seconds"] / w["lifetime"] if w["lifetime"] else 0.0 for w in self.workers]))

    @property
    def bytes_sent(self):
        return self.bytes_to_servers + self.bytes_to_workers

    @property
    def final_accuracy(self):
        return self.history[-1]["test_accuracy"]

    def column(self, name):
        return np.array([row[name] for row in self.history], dtype=np.float64)

    def best_accuracy(self):
        return float(np.max(self.column("test_accuracy")))

    def time_to_accuracy(self, target):
        """Simulated time of the first evaluation at or above `target` (None if never)."""
        for row in self.history:
            if row["test_accuracy"] >= target:
                return row["time"]
        return None

    def summary(self):
        """Everything but the history and the arrays, as JSON-ready values."""
        return {
            "config": self.config,
            "compute": self.compute,
            "measured_seconds": self.measured_seconds,
            "finished": self.finished,
            "end_time": self.end_time,
            "updates": self.updates,
            "final_test_accuracy": self.final_accuracy,
            "best_test_accuracy": self.best_accuracy(),
            "time_to_target": self.time_to_target,
            "updates_to_target": self.updates_to_target,
            "mean_staleness": self.mean_staleness,
            "mean_step_time": float(self.step_times.mean()) if len(self.update_times) else None,
            "idle_fraction": self.idle_fraction,
            "blocked_fraction": self.blocked_fraction,
            "bytes_to_servers": self.bytes_to_servers,
            "bytes_to_workers": self.bytes_to_workers,
            "bytes_per_update": self.bytes_sent / self.updates if self.updates else None,
            "messages_to_servers": self.messages_to_servers,
            "messages_to_workers": self.messages_to_workers,
            "deaths": {str(k): v for k, v in self.deaths.items()},
            "stall": self.stall,
            "shards": self.shards,
            "workers": self.workers,
            "profile": self.profile,
        }

    def describe(self):
        """One line: mode, how it ended, accuracy, staleness, idle time, bytes."""
        c = self.config
        what = f"{c['mode']} N={c['workers']}" + (f" b={c['backup']}" if c["mode"] == "backup" else "")
        what += f" τ={c['bound']}" if c["mode"] == "bounded" else ""
        ending = {"done": "done", "max_time": "time limit", "target": "target reached", "stalled": "STALLED"}
        line = (
            f"{what}: {ending[self.finished]} at t={self.end_time:.2f}s after {self.updates} updates; test accuracy "
            f"{self.final_accuracy:.3f}; mean staleness {self.mean_staleness:.2f}; idle {self.idle_fraction:.1%}; "
            f"{self.bytes_sent / 2**20:.1f} MiB sent"
        )
        if self.stall:
            line += f"; {self.stall['message']}"
        return line

    # ------------------------------------------------------------ files
    def write(self, folder, name="run"):
        """`name`.csv (the history) and `name`.json (the summary) in `folder`; returns their paths."""
        os.makedirs(folder, exist_ok=True)
        csv_path = os.path.join(folder, f"{name}.csv")
        write_history_csv(csv_path, {name: self})
        json_path = os.path.join(folder, f"{name}.json")
        with open(json_path, "w") as f:
            json.dump(_jsonable(self.summary()), f, indent=2)
        return csv_path, json_path


def write_history_csv(path, results):
    """One CSV of several runs' histories: a `run` column, then HISTORY_COLUMNS."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("run", *HISTORY_COLUMNS))
        for name, result in results.items():
            for row in result.history:
                writer.writerow((name, *(_csv_value(row[c]) for c in HISTORY_COLUMNS)))


def _csv_value(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _stall_message(sim, blamed, dead):
    rules = sim.shards[0].rules
    who = ", ".join(map(str, blamed)) or "nobody (no worker can make progress)"
    text = (
        f"stalled at t={sim.last_update:.2f}s: {sim.config.mode} mode, shard 0 at version {rules.version} "
        f"waits for worker {who}"
    )
    if dead:
        text += f" (dead since t={', '.join(f'{sim.deaths[w]:.2f}s' for w in dead)})"
    return text


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------
def new_figure(rows, columns, size):
    """A bare matplotlib Figure (Agg, no pyplot state) and its axes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def save_figure(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def plot_curves(axes, results, x="time", y="test_accuracy", target=None, styles=None):
    """One line per run of `y` against `x` on `axes`, labelled by the runs' names."""
    labels = {"time": "simulated time (s)", "updates": "updates applied", "epochs": "epochs of data"}
    for name, result in results.items():
        style = (styles or {}).get(name, {})
        xs, ys = result.column(x), result.column(y)
        keep = np.isfinite(ys)  # no gradient applied since the last evaluation: no training loss to show
        axes.plot(xs[keep], ys[keep], label=name, **style)
    if target is not None and y == "test_accuracy":
        axes.axhline(target, color="gray", linestyle=":", linewidth=1)
    axes.set_xlabel(labels.get(x, x))
    axes.set_ylabel(y.replace("_", " "))
    axes.grid(True, alpha=0.3)


def plot_runs(results, path, title=None, target=None):
    """The standard picture of several runs (a dict name -> SimResult): test accuracy and training loss
    against simulated time and against updates, each run's staleness histogram, and its workers'
    idle fraction beside the bytes it sent. Writes a PNG to `path`."""
    from matplotlib.ticker import FuncFormatter

    figure, axes = new_figure(2, 3, (16, 8))
    plot_curves(axes[0][0], results, "time", "test_accuracy", target)
    axes[0][0].set_title("test accuracy against simulated time")
    axes[0][0].legend(loc="lower right", fontsize=8)
    plot_curves(axes[0][1], results, "updates", "test_accuracy", target)
    axes[0][1].set_title("test accuracy against updates")
    for k, x in enumerate(("time", "updates")):
        plot_curves(axes[1][k], results, x, "train_loss")
        axes[1][k].set_yscale("log")
        for axis in (axes[1][k].yaxis,):  # 0.3, 1, 2 rather than 3×10⁻¹, 10⁰, 2×10⁰
            axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}" if str(value)[0] in "1235" else ""))
        axes[1][k].set_ylabel("loss of the gradients applied (log scale)")
        axes[1][k].set_title(f"training loss against {'simulated time' if k == 0 else x}")
    if max(r.updates for r in results.values()) > 20 * max(min(r.updates for r in results.values()), 1):
        for ax in (axes[0][1], axes[1][1]):  # runs far apart in updates (sync and async): a log axis
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xlim(left=0)
    ax = axes[0][2]
    widest = 1
    for name, result in results.items():
        histogram = np.asarray(result.staleness_histogram, dtype=np.float64)
        if histogram.sum():
            share = histogram / histogram.sum()
            ax.stairs(share, np.arange(len(share) + 1) - 0.5, label=name, linewidth=1.5)
            widest = max(widest, int(np.searchsorted(np.cumsum(share), 0.995)) + 2)
    ax.set_xlim(-1, widest)
    ax.set(title="staleness k = t - v of applied gradients", xlabel="k (updates; 99.5% shown)",
           ylabel="fraction of gradients")  # fmt: skip
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    ax = axes[1][2]
    names = list(results)
    positions = np.arange(len(names))
    ax.bar(positions - 0.2, [100 * results[n].idle_fraction for n in names], width=0.4, color="C0", label="idle %")
    ax.set_ylabel("workers idle (% of their time)", color="C0")
    other = ax.twinx()
    other.bar(positions + 0.2, [results[n].bytes_sent / 2**20 for n in names], width=0.4, color="C1")
    other.set_ylabel("MiB sent", color="C1")
    ax.set_xticks(positions, [n.replace(" ", "\n", 1) if len(n) > 12 else n for n in names], fontsize=8)
    ax.set_title("idle time (left bars) and bytes sent (right bars)")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)
