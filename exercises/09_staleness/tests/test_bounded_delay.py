"""Graded: the bounded-delay rule, on the rules alone and inside the simulator against minidl's own."""

import numpy as np
import pytest
from staleness import BoundedDelayRules, simulate_with_rules

from minidl.distributed.rules import ServerRules, UpdateRule


def rules(bound, workers=3):
    return BoundedDelayRules(
        [np.zeros(2, np.float32)], UpdateRule("sgd", lr=0.1, momentum=0.0), "bounded", workers, bound
    )


def push(r, worker):
    return r.push(worker, [np.ones(2, np.float32)], r.version).released


@pytest.mark.task("bounded_delay")
def test_a_worker_tau_ahead_may_pull_and_one_further_ahead_waits():
    r = rules(bound=1)
    push(r, 0)
    assert r.pull(0)  # one ahead of the slowest: allowed with τ = 1
    push(r, 0)
    assert not r.pull(0)  # two ahead: waits
    assert push(r, 1) == []  # worker 2 is still at 0
    assert push(r, 2) == [0]  # now the slowest has 1 push: worker 0 (2 pushes) is released
    assert r.pull(1) and r.pull(2)


@pytest.mark.task("bounded_delay")
def test_lock_step_at_tau_zero():
    r = rules(bound=0, workers=2)
    assert r.pull(0) and r.pull(1)
    push(r, 0)
    assert not r.pull(0)
    assert push(r, 1) == [0]


@pytest.mark.task("bounded_delay")
def test_a_worker_that_left_is_not_waited_for():
    r = rules(bound=1)
    push(r, 0)
    push(r, 0)
    push(r, 1)
    push(r, 1)
    assert not r.pull(0)  # worker 2 has pushed nothing
    assert r.leave(2) == [0]
    assert r.pull(1)


@pytest.mark.task("bounded_delay")
@pytest.mark.parametrize("bound", [0, 2])
def test_simulated_runs_equal_those_with_minidls_rules(bound):
    settings = dict(mode="bounded", bound=bound, workers=4, updates=40, hidden=8, seed=3)
    settings["compute"] = "lognormal:median=0.1,sigma=0.5"  # noisy steps: the bound matters
    mine = simulate_with_rules(BoundedDelayRules, **settings)
    reference = simulate_with_rules(ServerRules, **settings)
    assert mine.updates == reference.updates == 40
    assert mine.shards[0]["staleness_histogram"] == reference.shards[0]["staleness_histogram"]
    np.testing.assert_array_equal(mine.update_times, reference.update_times)
