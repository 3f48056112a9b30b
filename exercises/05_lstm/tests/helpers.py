"""Shared by the tests: a random LSTM step, and each stage's gradients by minidl's autograd.

The autograd versions compute the same quantities as the three stages by running the
forward formulas on minidl tensors and calling backward(): they are the reference, and the
tests put them in place of the stages a task is not about.
"""

import lstm
import numpy as np

import minidl
import minidl.nn as nn

# float64 throughout; the reference sums the same products in another order, so results differ
# by rounding, ~1e-15 relative for values of unit scale. 1e-10 leaves a wide margin.
RTOL, ATOL = 1e-10, 1e-12


def t(array):
    return minidl.tensor(array, dtype=minidl.float64, requires_grad=True)


def step(n=3, inputs=4, hidden=5, seed=0):
    """Random inputs, weights and upstream gradients for one LSTM step, and its forward cache."""
    rng = np.random.default_rng(seed)
    x, h, c = rng.standard_normal((n, inputs)), rng.standard_normal((n, hidden)), rng.standard_normal((n, hidden))
    w_ih, w_hh = rng.standard_normal((4 * hidden, inputs)) * 0.5, rng.standard_normal((4 * hidden, hidden)) * 0.5
    b_ih, b_hh = rng.standard_normal(4 * hidden) * 0.5, rng.standard_normal(4 * hidden) * 0.5
    _, _, cache = lstm.lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh)
    dh_next, dc_next = rng.standard_normal((n, hidden)), rng.standard_normal((n, hidden))
    return dict(x=x, h=h, c=c, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh), cache, dh_next, dc_next


def autograd_state_grads(dh_next, dc_next, cache):
    i, f, g, o, c = (t(cache[k]) for k in ("i", "f", "g", "o", "c"))
    c_next = f * c + i * g
    h_next = o * c_next.tanh()
    ((h_next * minidl.tensor(dh_next)).sum() + (c_next * minidl.tensor(dc_next)).sum()).backward()
    return tuple(v.grad.numpy() for v in (i, f, g, o, c))


def autograd_preactivation_grads(di, df, dg, do, cache):
    a = t(cache["a"])
    hidden = a.shape[1] // 4
    pieces = [a[:, k * hidden : (k + 1) * hidden] for k in range(4)]
    gates = [pieces[0].sigmoid(), pieces[1].sigmoid(), pieces[2].tanh(), pieces[3].sigmoid()]
    sum((gate * minidl.tensor(d)).sum() for gate, d in zip(gates, (di, df, dg, do))).backward()
    return a.grad.numpy()


def autograd_input_grads(da, cache):
    x, h, w_ih, w_hh = (t(cache[k]) for k in ("x", "h", "w_ih", "w_hh"))
    b_ih, b_hh = t(np.zeros(w_ih.shape[0])), t(np.zeros(w_ih.shape[0]))  # the values do not matter
    a = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    (a * minidl.tensor(da)).sum().backward()
    return tuple(v.grad.numpy() for v in (x, h, w_ih, w_hh, b_ih, b_hh))


def reference_cell_gradients(values, dh_next, dc_next):
    """(dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh) by autograd through minidl.nn.LSTMCell."""
    n, inputs = values["x"].shape
    hidden = values["h"].shape[1]
    cell = nn.LSTMCell(inputs, hidden).double()
    with minidl.no_grad():
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            getattr(cell, name.replace("w_", "weight_").replace("b_", "bias_")).array[...] = values[name]
    x, h, c = t(values["x"]), t(values["h"]), t(values["c"])
    h_next, c_next = cell(x, (h, c))
    ((h_next * minidl.tensor(dh_next)).sum() + (c_next * minidl.tensor(dc_next)).sum()).backward()
    weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    return tuple(v.grad.numpy() for v in (x, h, c) + weights)


STAGES = {
    "state_grads": ("lstm_state_grads", autograd_state_grads),
    "preactivation_grads": ("lstm_preactivation_grads", autograd_preactivation_grads),
    "input_grads": ("lstm_input_grads", autograd_input_grads),
}


def only_stage(monkeypatch, task):
    """Put the autograd reference in place of every stage but the task's own."""
    for other, (name, reference) in STAGES.items():
        if other != task:
            monkeypatch.setattr(lstm, name, reference)


NAMES = ("dx", "dh_prev", "dc_prev", "dw_ih", "dw_hh", "db_ih", "db_hh")


def assert_cell_gradients_match(values, cache, dh_next, dc_next):
    got = lstm.lstm_cell_backward(dh_next, dc_next, cache)
    for name, g, e in zip(NAMES, got, reference_cell_gradients(values, dh_next, dc_next)):
        assert np.shape(g) == e.shape, f"{name}: shape {np.shape(g)}, expected {e.shape}"
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL, err_msg=name)
