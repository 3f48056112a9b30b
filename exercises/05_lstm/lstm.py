"""Exercise 05: the backward pass of one LSTM step, on NumPy arrays.

One step maps the input x (N, I) and the state (h, c), each (N, H), to (h', c'):

    a = x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh          the pre-activations, (N, 4H): four slices
    i = σ(a[:, 0H:1H])    input gate     WRITE?   how much of the candidate to store
    f = σ(a[:, 1H:2H])    forget gate    FORGET?  how much of the old memory to keep
    g = tanh(a[:, 2H:3H]) candidate      the value to write
    o = σ(a[:, 3H:4H])    output gate    READ?    how much of the memory to show
    c' = f·c + i·g
    h' = o·tanh(c')

W_ih is (4H, I), W_hh is (4H, H), b_ih and b_hh are (4H,): PyTorch's layout and gate order,
the same as minidl.nn.LSTMCell. The forward pass (given) returns a cache with everything the
backward pass needs; the backward pass is split into the three stages below, which
`lstm_cell_backward` (given) puts together.
"""

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step (given): returns h', c' and the cache for the backward pass."""
    a = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    hidden = h.shape[1]
    i, f, o = (sigmoid(a[:, k * hidden : (k + 1) * hidden]) for k in (0, 1, 3))
    g = np.tanh(a[:, 2 * hidden : 3 * hidden])
    c_next = f * c + i * g
    tanh_c = np.tanh(c_next)
    h_next = o * tanh_c
    cache = dict(x=x, h=h, c=c, w_ih=w_ih, w_hh=w_hh, a=a, i=i, f=f, g=g, o=o, c_next=c_next, tanh_c=tanh_c)
    return h_next, c_next, cache


def lstm_state_grads(dh_next, dc_next, cache):
    """Back through h' = o·tanh(c') and c' = f·c + i·g.

    dh_next, dc_next: the gradients arriving at h' and c' (from the loss and the next step).
    Returns (di, df, dg, do, dc_prev): the gradients of the gate values i, f, g, o (after
    their sigmoid / tanh) and of the previous memory c. Note that c' receives gradient twice:
    directly (dc_next) and through h'.
    """
    # BEGIN SOLUTION state_grads
    i, f, g, o, c, tanh_c = (cache[k] for k in ("i", "f", "g", "o", "c", "tanh_c"))
    dc = dc_next + dh_next * o * (1 - tanh_c**2)  # both paths into c'
    return dc * g, dc * c, dc * i, dh_next * tanh_c, dc * f
    # END SOLUTION


def lstm_preactivation_grads(di, df, dg, do, cache):
    """Back through the gate nonlinearities: da, (N, 4H), slices in the order i, f, g, o.

    σ'(z) = σ(z)·(1 - σ(z)) and tanh'(z) = 1 - tanh(z)²: write them with the gate values.
    """
    # BEGIN SOLUTION preactivation_grads
    i, f, g, o = (cache[k] for k in ("i", "f", "g", "o"))
    return np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], axis=1)
    # END SOLUTION


def lstm_input_grads(da, cache):
    """Back through a = x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh.

    Returns (dx, dh_prev, dw_ih, dw_hh, db_ih, db_hh), each shaped like what it is the gradient of.
    """
    # BEGIN SOLUTION input_grads
    x, h, w_ih, w_hh = (cache[k] for k in ("x", "h", "w_ih", "w_hh"))
    db = da.sum(axis=0)  # each bias is added to every row of the batch
    return da @ w_ih, da @ w_hh, da.T @ x, da.T @ h, db, db.copy()
    # END SOLUTION


def lstm_cell_backward(dh_next, dc_next, cache):
    """(dx, dh_prev, dc_prev, dw_ih, dw_hh, db_ih, db_hh) of one step (given: your three stages in order)."""
    di, df, dg, do, dc_prev = lstm_state_grads(dh_next, dc_next, cache)
    da = lstm_preactivation_grads(di, df, dg, do, cache)
    dx, dh_prev, dw_ih, dw_hh, db_ih, db_hh = lstm_input_grads(da, cache)
    return dx, dh_prev, dc_prev, dw_ih, dw_hh, db_ih, db_hh
