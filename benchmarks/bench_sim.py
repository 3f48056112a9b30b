"""The simulated cluster at scale: 1,000 workers, 10,000 async updates, and what stacking gradients buys.

    python benchmarks/bench_sim.py [--repeats 3] [--workers 1000] [--updates 10000] [--quick]

1. Scale. Async (Downpour) with 1,000 simulated workers pushing real gradients of a small
   MLP (64-32-32-10, batch 16 per worker, the digits) until the server has applied 10,000
   updates. Reported: wall time (goal: under 60 s on the 2-core development machine) and
   CPU time (which the other jobs on a shared machine do not inflate), simulated updates per
   second, events, and the simulator's own cost per event: the time minus the gradient passes,
   the test-set evaluations and the server's updates (ServerRules applying SGD, the same code
   the MPI server runs), divided by the events.
   The peer is the floor: the 10,000 forward/backward passes alone, timed in the same run.
   In async mode every worker computes on its own parameter version, so nothing can be
   stacked; a synchronous run of 1,000 workers is timed too, where everything is.

2. Stacking. K workers computing on the same parameters (a synchronous step): microseconds
   per worker gradient for three ways of getting K separate gradients,
   - one forward/backward per worker (the peer),
   - one stacked forward, then one backward per worker with grad_outputs selecting its rows
     (minidl.grad(losses, params, grad_outputs=mask_k / B, retain_graph=True)),
   - one stacked forward/backward and per-layer batched products δᵀx per worker (what the
     simulator does: minidl/sim/workload.py).

Numbers are medians of --repeats runs; the machine is shared, so expect noise.
"""

import argparse
import statistics

import numpy as np

import minidl
from minidl.sim import Simulation
from minidl.sim.cluster import _one_blas_thread
from minidl.sim.workload import Stopwatch, Workload


def scale(workers, updates, repeats):
    rows = []
    for _ in range(repeats):
        sim = Simulation(mode="async", workers=workers, updates=updates, hidden=32, batch_size=16,
                         eval_updates=max(1, updates // 10))  # fmt: skip
        result = sim.run()
        rows.append({**result.profile, "updates": result.updates, "staleness": result.mean_staleness})
    return rows


def floor(workers, updates):
    """The same number of plain forward/backward passes and nothing else: the least a simulation can cost."""
    workload = Workload(hidden=32, batch_size=16, num_workers=workers)
    params = [p.copy() for p in workload.params]
    batches = [workload.next_batch(k % workers) for k in range(updates)]
    with _one_blas_thread(), Stopwatch() as clock:
        for batch in batches:
            workload._one(params, batch)
    return clock


def sync_scale(workers, updates):
    sim = Simulation(mode="sync", workers=workers, updates=updates, hidden=32, batch_size=16, eval_updates=updates)
    result = sim.run()
    return result.profile


def grad_outputs_way(workload, params, batches):
    """One stacked forward; one backward per worker with grad_outputs picking its rows."""
    k, b = len(batches), workload.batch_size
    rows = np.concatenate(batches)
    workload._load(params)
    scores = workload.model(minidl.tensor(workload.x_train[rows]))
    losses = minidl.cross_entropy(scores, minidl.tensor(workload.y_train[rows]), reduction="none")
    grads = []
    for j in range(k):
        mask = np.zeros(k * b, np.float32)
        mask[j * b : (j + 1) * b] = 1.0 / b
        grads.append(minidl.grad(losses, workload.parameters, grad_outputs=minidl.tensor(mask), retain_graph=True))
    return grads


def stacking(sizes, repeats):
    workload = Workload(hidden=32, batch_size=16, num_workers=max(sizes))
    params = [p.copy() for p in workload.params]
    table = []
    with _one_blas_thread():
        for k in sizes:
            batches = [workload.next_batch(w) for w in range(k)]
            ways = {
                "one pass each": lambda batches=batches: [workload._one(params, b) for b in batches],
                "grad_outputs": (lambda batches=batches: grad_outputs_way(workload, params, batches))
                if k <= 256
                else None,
                "stacked": lambda batches=batches: workload.gradients(params, batches),
            }
            row = {"K": k}
            for name, way in ways.items():
                if way is None:
                    row[name] = None
                    continue
                times = []
                for _ in range(repeats):  # CPU time: what other jobs on a shared machine do not inflate
                    with Stopwatch() as clock:
                        way()
                    times.append(clock.cpu)
                row[name] = 1e6 * statistics.median(times) / k
            table.append(row)
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="100 workers, 1,000 updates: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.updates, args.repeats = 100, 1000, 1

    print(f"1. async, {args.workers} workers, {args.updates} updates, mlp 64-32-32-10, batch 16 (medians of "
          f"{args.repeats})")  # fmt: skip
    rows = scale(args.workers, args.updates, args.repeats)
    passes = floor(args.workers, args.updates)

    def med(key):
        return statistics.median(r[key] for r in rows)

    print("| clock | total s | gradients s | server updates s | evaluation s | simulator overhead µs/event | "
          "updates/s | floor: the passes alone, s | total / floor |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in ("wall", "cpu"):
        total = med(f"total_{kind}_seconds")
        print(f"| {kind} | {total:.1f} | {med(f'gradients_{kind}_seconds'):.1f} | "
              f"{med(f'server_updates_{kind}_seconds'):.1f} | {med(f'evaluation_{kind}_seconds'):.2f} | "
              f"{med(f'overhead_{kind}_us_per_event'):.1f} | {args.updates / total:.0f} | "
              f"{getattr(passes, kind):.1f} | {total / getattr(passes, kind):.2f}x |")  # fmt: skip
    wall = med("total_wall_seconds")
    print(f"{med('events'):.0f} events; mean staleness {rows[0]['staleness']:.1f} (N - 1 = {args.workers - 1}); "
          f"goal: wall < 60 s: {'met' if wall < 60 else 'NOT met'} ({wall:.1f} s)")  # fmt: skip

    steps = 10 if not args.quick else 5
    p = sync_scale(args.workers, steps)
    print(f"\nsync, {args.workers} workers, {steps} steps: {p['total_wall_seconds']:.2f} s wall "
          f"({p['total_cpu_seconds']:.2f} s CPU), {p['gradients_cpu_seconds']:.2f} s CPU in {p['passes']} stacked "
          f"passes for {p['gradients_computed']} worker gradients, {p['overhead_cpu_us_per_event']:.1f} µs CPU per "
          f"event of overhead over {p['events']} events")  # fmt: skip

    sizes = [1, 4, 16, 64, 256, 1000] if not args.quick else [1, 16, 64]
    print("\n2. µs (CPU) per worker gradient, K workers on the same parameters (median of 5; peer: one pass each)")
    print("| K | one pass each | stacked fwd + grad_outputs bwd per worker | ratio | stacked, per-layer δᵀx | ratio |")
    print("|---|---|---|---|---|---|")
    for row in stacking(sizes, 5):
        peer = row["one pass each"]
        go = row["grad_outputs"]
        go_text = "- | -" if go is None else f"{go:.0f} | {peer / go:.2f}x"
        print(f"| {row['K']} | {peer:.0f} | {go_text} | {row['stacked']:.0f} | {peer / row['stacked']:.2f}x |")


if __name__ == "__main__":
    main()
