"""Compute-time models, the order statistics computed from them, and the network's arithmetic."""

import math

import numpy as np
import pytest

from minidl.sim.network import Channels, Network
from minidl.sim.timing import (
    Fixed,
    LogNormal,
    Straggler,
    expected_max,
    expected_order_statistic,
    order_statistic_survival,
    parse_compute,
)

MODELS = [
    LogNormal(median=0.1, sigma=0.3),
    LogNormal(median=2.0, sigma=1.0),
    Straggler(median=0.1, sigma=0.1, p=0.05, slowdown=4, tail=1.5),  # infinite variance
    Straggler(median=0.1, sigma=0.2, p=0.3, slowdown=2, tail=3.0),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.spec)
def test_samples_follow_the_distribution_function(model):
    n = 20000
    samples = np.sort(model.sample(np.random.default_rng(0), n))
    empirical = np.arange(1, n + 1) / n
    # Kolmogorov-Smirnov: sup |F_n - F| exceeds 1.95/sqrt(n) with probability 0.1% when F is right.
    assert np.abs(model.cdf(samples) - empirical).max() < 1.95 / math.sqrt(n)
    one = model.sample(np.random.default_rng(0))
    assert isinstance(one, float) and one > 0


@pytest.mark.parametrize("model", [m for m in MODELS if not (isinstance(m, Straggler) and m.tail <= 2)],
                         ids=lambda m: m.spec)  # fmt: skip
def test_the_mean_is_the_sample_mean(model):
    samples = model.sample(np.random.default_rng(1), 200000)
    se = samples.std() / math.sqrt(samples.size)
    assert abs(samples.mean() - model.mean) < 5 * se  # 5 standard errors: fails 1 seed in 1.7 million


@pytest.mark.parametrize("model", [MODELS[0], MODELS[1], MODELS[3]], ids=lambda m: m.spec)
@pytest.mark.parametrize("k, n", [(1, 1), (8, 8), (8, 10), (30, 32), (1, 5)])
def test_order_statistics_match_monte_carlo(model, k, n):
    trials = 20000
    draws = np.sort(model.sample(np.random.default_rng(2), (trials, n)), axis=1)[:, k - 1]
    se = draws.std() / math.sqrt(trials)
    # The integral is accurate to ~1e-6 relative; the Monte Carlo mean to its standard error.
    assert abs(expected_order_statistic(model, k, n) - draws.mean()) < 5 * se + 1e-6 * draws.mean()


def test_order_statistic_survival_is_a_probability_and_the_max_grows_with_n():
    model = MODELS[2]
    x = np.linspace(0.0, 5.0, 101)
    s = order_statistic_survival(model, 8, 8, x)
    assert s[0] == 1.0 and np.all(np.diff(s) <= 1e-12) and s[-1] < 0.1
    maxima = [expected_max(model, n) for n in (1, 2, 8, 32, 128)]
    assert maxima[0] == pytest.approx(model.mean, rel=1e-3)  # E[X_(1:1)] is the mean (heavy tail included)
    assert all(np.diff(maxima) > 0)
    assert expected_order_statistic(Fixed(0.25), 3, 7) == 0.25


def test_parse_compute_round_trips_and_names_bad_input():
    for model in MODELS + [Fixed(0.2)]:
        again = parse_compute(model.spec)
        assert type(again) is type(model) and again.params() == model.params()
    assert parse_compute("measured") == "measured"
    assert parse_compute({"name": "fixed", "seconds": 0.5}).seconds == 0.5
    for spec, message in [
        ("gamma:k=1", "unknown kind 'gamma'"),
        ("lognormal:median", "expected key=value"),
        ("lognormal:median=fast", "median must be a number"),
        ("lognormal:mu=1", "lognormal takes median, sigma"),
        ("straggler:tail=1", "tail must be > 1"),
        ("straggler:p=2", "p must be in"),
        ("fixed:seconds=0", "seconds must be > 0"),
        ("", "expected a string"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_compute(spec)


def test_network_latency_bandwidth_and_a_saturated_server_link():
    channels = Channels(Network(latency=0.001, bandwidth=1e6, server_bandwidth=2e6), num_workers=4, num_servers=1)
    # Alone: latency + bytes / the slower of the two links (48-byte header + 952 bytes = 1000 bytes).
    assert channels.to_shard(0.0, 0, 0, 952) == pytest.approx(0.001 + 1000 / 1e6)
    # Four workers at once with 1 MB each: the shared 2 MB/s link carries one at a time.
    channels = Channels(Network(latency=0.0, bandwidth=1e9, server_bandwidth=2e6), num_workers=4, num_servers=1)
    arrivals = [channels.to_shard(0.0, w, 0, 10**6 - 48) for w in range(4)]
    np.testing.assert_allclose(arrivals, [0.5, 1.0, 1.5, 2.0])
    # A small message after a large one between the same pair does not overtake it.
    channels = Channels(Network(latency=0.0, bandwidth=1e6, server_bandwidth=math.inf), num_workers=1, num_servers=1)
    big = channels.to_shard(0.0, 0, 0, 10**6)
    small = channels.to_shard(0.0, 0, 0, 0)
    assert small == big
    with pytest.raises(ValueError, match="latency must be"):
        Network(latency=-1)
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        Network(bandwidth=0)
