"""Graded: the predicted staleness histogram against minidl's simulator (deterministic: fixed step times)."""

import pytest
from staleness import mean_staleness, predicted_staleness_histogram

from minidl.sim import simulate


@pytest.mark.task("predict")
@pytest.mark.parametrize("workers, updates", [(1, 9), (2, 7), (5, 5), (6, 3), (7, 30)])
def test_prediction_equals_the_simulated_histogram(workers, updates):
    run = simulate(mode="async", workers=workers, updates=updates, compute="fixed:seconds=0.1", hidden=8, seed=1)
    assert predicted_staleness_histogram(workers, updates) == run.shards[0]["staleness_histogram"]


@pytest.mark.task("predict")
def test_mean_staleness_approaches_n_minus_1_as_the_lecture_says():
    for workers in (1, 4, 16, 64):
        histogram = predicted_staleness_histogram(workers, 2000)
        assert sum(histogram) == 2000
        # the first round gives 0, 1, ..., N - 1 instead of N - 1 each: N(N - 1)/2 fewer counts in all
        expected = (workers - 1) - workers * (workers - 1) / 2 / 2000
        assert mean_staleness(histogram) == pytest.approx(expected, rel=1e-12, abs=1e-12)
