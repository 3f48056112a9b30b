"""Hidden tests (instructor only): three steps of backprop through time, each stage in turn."""

import lstm
import numpy as np
import pytest
from helpers import ATOL, RTOL, only_stage, t

import minidl
import minidl.nn as nn


def unrolled(task, monkeypatch, steps=3, n=2, inputs=3, hidden=4, seed=30):
    """Backprop through `steps` steps with lstm_cell_backward, against autograd through minidl's LSTMCell."""
    only_stage(monkeypatch, task)
    rng = np.random.default_rng(seed)
    cell = nn.LSTMCell(inputs, hidden).double()
    weights = [p.numpy() for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
    xs = [rng.standard_normal((n, inputs)) for _ in range(steps)]
    targets = [rng.standard_normal((n, hidden)) for _ in range(steps)]
    h, c, caches = np.zeros((n, hidden)), np.zeros((n, hidden)), []
    for x in xs:
        h, c, cache = lstm.lstm_cell_forward(x, h, c, *weights)
        caches.append(cache)
    dh, dc = np.zeros((n, hidden)), np.zeros((n, hidden))
    total = [np.zeros_like(w) for w in weights]
    dxs = []
    for k in reversed(range(steps)):  # loss = Σ_k <h_k, target_k>: each h_k gets its target as gradient
        dx, dh, dc, *dws = lstm.lstm_cell_backward(dh + targets[k], dc, caches[k])
        total = [a + b for a, b in zip(total, dws)]
        dxs.insert(0, dx)
    tx = [t(x) for x in xs]
    state = None
    loss = 0
    for x, target in zip(tx, targets):
        state = cell(x, state)
        loss = loss + (state[0] * minidl.tensor(target)).sum()
    loss.backward()
    for got, p in zip(total, (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)):
        np.testing.assert_allclose(got, p.grad.numpy(), rtol=RTOL, atol=ATOL)
    for got, x in zip(dxs, tx):
        np.testing.assert_allclose(got, x.grad.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.task("state_grads")
@pytest.mark.instructor
def test_bptt_state_grads(monkeypatch):
    unrolled("state_grads", monkeypatch)


@pytest.mark.task("preactivation_grads")
@pytest.mark.instructor
def test_bptt_preactivation_grads(monkeypatch):
    unrolled("preactivation_grads", monkeypatch)


@pytest.mark.task("input_grads")
@pytest.mark.instructor
def test_bptt_input_grads(monkeypatch):
    unrolled("input_grads", monkeypatch)
