"""The three stages of an LSTM cell's backward pass, each against minidl's autograd, and the whole
step against minidl.nn.LSTMCell with the other two stages taken from the reference."""

import lstm
import numpy as np
import pytest
from helpers import (
    ATOL,
    RTOL,
    assert_cell_gradients_match,
    autograd_input_grads,
    autograd_preactivation_grads,
    autograd_state_grads,
    only_stage,
    step,
)

SIZES = [(3, 4, 5), (1, 2, 3), (4, 3, 3)]  # (batch, inputs, hidden); the last has inputs == hidden


@pytest.mark.task("state_grads")
@pytest.mark.parametrize("sizes", SIZES)
def test_state_grads_match_autograd(sizes):
    _, cache, dh_next, dc_next = step(*sizes, seed=1)
    got = lstm.lstm_state_grads(dh_next, dc_next, cache)
    for name, g, e in zip(("di", "df", "dg", "do", "dc_prev"), got, autograd_state_grads(dh_next, dc_next, cache)):
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.task("preactivation_grads")
@pytest.mark.parametrize("sizes", SIZES)
def test_preactivation_grads_match_autograd(sizes):
    _, cache, _, _ = step(*sizes, seed=2)
    rng = np.random.default_rng(3)
    upstream = [rng.standard_normal(cache["i"].shape) for _ in range(4)]
    got = lstm.lstm_preactivation_grads(*upstream, cache)
    assert np.shape(got) == cache["a"].shape
    np.testing.assert_allclose(got, autograd_preactivation_grads(*upstream, cache), rtol=RTOL, atol=ATOL)


@pytest.mark.task("input_grads")
@pytest.mark.parametrize("sizes", SIZES)
def test_input_grads_match_autograd(sizes):
    _, cache, _, _ = step(*sizes, seed=4)
    da = np.random.default_rng(5).standard_normal(cache["a"].shape)
    got = lstm.lstm_input_grads(da, cache)
    names = ("dx", "dh_prev", "dw_ih", "dw_hh", "db_ih", "db_hh")
    for name, g, e in zip(names, got, autograd_input_grads(da, cache)):
        assert np.shape(g) == e.shape, f"{name}: shape {np.shape(g)}, expected {e.shape}"
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL, err_msg=name)


TASKS = [
    pytest.param(task, marks=pytest.mark.task(task)) for task in ("state_grads", "preactivation_grads", "input_grads")
]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("sizes", SIZES[:2])
def test_cell_gradients_match_minidl_lstm_cell(task, sizes, monkeypatch):
    only_stage(monkeypatch, task)
    values, cache, dh_next, dc_next = step(*sizes, seed=6)
    assert_cell_gradients_match(values, cache, dh_next, dc_next)


@pytest.mark.task("state_grads")
def test_memory_gradient_when_only_c_is_used():
    # With no gradient arriving at h', c receives dc' scaled by the forget gate, and nothing else.
    _, cache, _, dc_next = step(seed=7)
    di, df, dg, do, dc_prev = lstm.lstm_state_grads(np.zeros_like(dc_next), dc_next, cache)
    np.testing.assert_allclose(dc_prev, dc_next * cache["f"], rtol=1e-14)
    np.testing.assert_array_equal(do, 0)
