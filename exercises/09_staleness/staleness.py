"""Staleness in asynchronous SGD with a parameter server, measured in minidl's simulated cluster.

A worker pulls the parameters at version v (the server has applied v updates), computes a
gradient, and pushes it; the server applies it at version t. Its staleness is k = t - v: how
many other updates landed while it was computing. The lecture's claim: with N workers,
"k is now O(N)", about N - 1, so stale gradients need a smaller learning rate. And Li et al.'s
parameter server (OSDI 2014) bounds it: a worker may run at most τ pushes ahead of the slowest.

    predicted_staleness_histogram(workers, updates)   task `predict`
    BoundedDelayRules                                 task `bounded_delay`
    simulate_with_rules(rules_class, **settings)      runs minidl.sim with those rules (given)
"""

import contextlib

from minidl.distributed.rules import ServerRules
from minidl.sim import cluster, simulate


def predicted_staleness_histogram(workers, updates):
    """How many of the first `updates` updates have staleness 0, 1, 2, ... (a list, as np.bincount gives).

    The set-up: `workers` identical workers, every step takes exactly the same time, the network
    is instant enough not to reorder anything, and every worker pulls right after it pushes
    (minidl.sim's async mode with compute="fixed:seconds=..."). All workers pull version 0 at
    the start. Work out what the server sees in the first round of pushes, and after it.
    """
    if workers < 1 or updates < 0:
        raise ValueError(f"predicted_staleness_histogram: need workers >= 1 and updates >= 0, got {workers}, {updates}")
    # BEGIN SOLUTION predict
    # First round: all N pulled version 0 and push in turn, the i-th seeing i updates before it:
    # staleness 0, 1, ..., N - 1, once each. After it, each worker pulled just after its own push,
    # and the N - 1 others push once each before it pushes again: staleness N - 1, always.
    first_round = min(workers, updates)
    histogram = [1] * first_round + [0] * (workers - first_round)
    histogram[workers - 1] += updates - first_round
    while histogram and histogram[-1] == 0:  # np.bincount's length: up to the largest value seen
        histogram.pop()
    return histogram
    # END SOLUTION


def mean_staleness(histogram):
    """The mean of a staleness histogram (0 for an empty one)."""
    total = sum(histogram)
    return sum(k * count for k, count in enumerate(histogram)) / total if total else 0.0


class BoundedDelayRules(ServerRules):
    """minidl's parameter-server rules with the bounded-delay decision written by you.

    self.clock[w]      how many gradients worker w has pushed so far
    self.finished[w]   True once worker w has left (finished or dead): nobody waits for it
    self.bound         τ
    A pull that is refused waits; the rules re-ask _may_serve for the waiting workers after
    every push and every leave (ServerRules._release).
    """

    def _may_serve(self, worker):
        if self.done or self.mode != "bounded":
            return super()._may_serve(worker)
        # BEGIN SOLUTION bounded_delay
        # Serve while this worker is at most τ pushes ahead of the slowest worker still running.
        live = [self.clock[w] for w in range(self.num_workers) if not self.finished[w]]
        return self.clock[worker] <= min(live) + self.bound
        # END SOLUTION


@contextlib.contextmanager
def rules_in_simulator(rules_class):
    """Within the with-block, minidl.sim's server shards use `rules_class` instead of ServerRules."""
    saved = cluster.ServerRules
    cluster.ServerRules = rules_class
    try:
        yield
    finally:
        cluster.ServerRules = saved


def simulate_with_rules(rules_class, **settings):
    """minidl.sim.simulate(**settings) with the shards running `rules_class`."""
    with rules_in_simulator(rules_class):
        return simulate(**settings)


if __name__ == "__main__":
    for n in (1, 4, 16):
        run = simulate(mode="async", workers=n, updates=200, compute="fixed:seconds=0.1", hidden=8)
        print(
            f"N={n:3d}: simulated mean staleness {run.shards[0]['mean_staleness']:6.2f}, "
            f"predicted {mean_staleness(predicted_staleness_histogram(n, 200)):6.2f} (N - 1 = {n - 1})"
        )
