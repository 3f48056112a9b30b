"""Training on the C kernels matches training on the NumPy kernels (same seed), step by step.

A small MLP (linear / relu / cross-entropy, SGD with momentum) is trained for a few dozen
steps once per kernel set; the losses and the final weights must agree to float32
tolerance. The sizes are chosen above the C kernels' crossover thresholds, and a spy on
the C library checks that the GEMM, cross-entropy and SGD kernels really ran.
Variants: plain minidl ops and the fused ops of minidl.ops.fused (linear_act).
"""

import numpy as np
import pytest
from tolerances import assert_within, chain_atol, linear_act_backward_atol, linear_act_forward_atol

import minidl
from minidl import backend
from minidl.backend import c as ck
from minidl.backend.c import _ffi
from minidl.ops.fused import linear_act

pytestmark = pytest.mark.skipif(not ck.available, reason=f"C kernels not built: {ck.unavailable_reason}")

N, IN, HIDDEN, OUT, STEPS = 128, 256, 256, 10, 30  # the big products are above the GEMM crossover
# Roundings on a path through one training step, counted as in tests/tolerances.py: forward
# 256 + 1 and 256 + 1 (two linear layers), cross-entropy 10 + 2 transcendentals + 3 and the
# mean over 128 rows; backward 2 (dlogits), 128 (dW2, db2), 10 (dh), 128 (dW1, db1); SGD 6.
STEP_ROUNDINGS = 257 + 257 + 21 + 128 + 2 + 128 + 10 + 128 + 6


class _Spy:
    def __init__(self, lib):
        self._lib, self.calls = lib, set()

    def __getattr__(self, attr):
        value = getattr(self._lib, attr)
        if callable(value) and attr.startswith("mdk_"):
            self.calls.add(attr)
        return value


@pytest.fixture
def kernel_sets(monkeypatch):
    """Yields a function that switches the global kernel set; restores the original after."""
    before = backend.kernels_name()
    spy = _Spy(_ffi.lib)
    monkeypatch.setattr(_ffi, "lib", spy)
    yield backend.set_kernels, spy.calls
    backend.set_kernels(before)


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, IN)).astype(np.float32)
    y = rng.integers(0, OUT, N)
    return minidl.tensor(x), y


def _init_params():
    rng = np.random.default_rng(1)
    shapes = [(HIDDEN, IN), (HIDDEN,), (OUT, HIDDEN), (OUT,)]
    return [
        minidl.tensor((rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32), requires_grad=True) for s in shapes
    ]


def _train(forward):
    x, y = _data()
    params = _init_params()
    velocity = [np.zeros_like(p.array) for p in params]
    losses = []
    for _ in range(STEPS):
        for p in params:
            p.grad = None
        loss = minidl.cross_entropy(forward(x, *params), y)
        loss.backward()
        k = backend.get_kernels()
        for p, v in zip(params, velocity):
            k.sgd_update(p.array, p.grad.array, v, 0.05, momentum=0.9, weight_decay=1e-4)
        losses.append(loss.item())
    return np.array(losses), [p.array.copy() for p in params]


def _mlp(x, w1, b1, w2, b2):
    return minidl.linear(minidl.relu(minidl.linear(x, w1, b1)), w2, b2)


def _mlp_fused(x, w1, b1, w2, b2):
    return minidl.linear(linear_act(x, w1, b1, "relu"), w2, b2)


def _assert_same_training(a, b):
    """Two float32 training runs that differ only in rounding (kernels, BLAS, SIMD path).

    30 steps is a long chain: the worst-case bound compounds to ~10% (tests/tolerances.py), so
    this uses the probabilistic rule, lam·sqrt(roundings)·u relative to the terms. A step's
    loss is made of terms up to 2·max|logit| + log 10 in size (logits at the end of the run,
    the largest); the parameters' terms are their own size. Assumes rounding errors behave
    as independent (Higham and Mary's model) and no relu input sits within rounding of 0.
    """
    losses_a, params_a = a
    losses_b, params_b = b
    assert losses_a[-1] < 0.7 * losses_a[0], "the model did not train"
    w1, b1, w2, b2 = (p.astype(np.float64) for p in params_a)
    logits = np.maximum(_data()[0].array @ w1.T + b1, 0) @ w2.T + b2
    scale = 2 * np.abs(logits).max() + np.log(OUT)
    steps = np.arange(1, STEPS + 1)
    loss_atol = [chain_atol(scale, budget=t * STEP_ROUNDINGS, dtype=np.float32, probabilistic=True) for t in steps]
    assert_within(losses_b, losses_a, np.array(loss_atol), "losses")
    atol = chain_atol(1.0, budget=STEPS * STEP_ROUNDINGS, dtype=np.float32, probabilistic=True)
    for i, (pa, pb) in enumerate(zip(params_a, params_b)):
        assert_within(pb, pa, atol * np.abs(pa).max(), f"parameter {i} after {STEPS} steps")


@pytest.mark.parametrize("forward", [_mlp, _mlp_fused], ids=["ops", "fused"])
def test_training_on_c_kernels_matches_numpy_kernels(kernel_sets, forward):
    set_kernels, c_calls = kernel_sets
    set_kernels("numpy")
    reference = _train(_mlp)  # the unfused graph on the reference kernels is the oracle
    assert not c_calls
    set_kernels("c")
    _assert_same_training(reference, _train(forward))
    assert {"mdk_sgemm", "mdk_cross_entropy_forward", "mdk_cross_entropy_backward", "mdk_sgd_update"} <= c_calls
    if forward is _mlp_fused:
        assert "mdk_act_backward" in c_calls  # the fused op's act_backward


def test_fused_ops_match_unfused_gradients_on_both_kernel_sets(kernel_sets):
    set_kernels, _ = kernel_sets
    for name in ("numpy", "c"):
        set_kernels(name)
        for activation in ("relu", "sigmoid", "tanh"):
            rng = np.random.default_rng(3)
            x, w, b = (minidl.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
                       for s in [(33, 65), (17, 65), (17,)])  # fmt: skip
            act = {"relu": minidl.relu, "sigmoid": minidl.sigmoid, "tanh": minidl.tanh}[activation]
            g = rng.standard_normal((33, 17)).astype(np.float32)
            unfused = act(minidl.linear(x, w, b))
            unfused.backward(g)
            want = [t.grad.array.copy() for t in (x, w, b)]
            for t in (x, w, b):
                t.grad = None
            fused = linear_act(x, w, b, activation)
            # One layer, two ways (fused kernel vs separate ops): tolerances.py's chain rule, elementwise.
            out, _, out_atol = linear_act_forward_atol(x.array, w.array, b.array, activation)
            assert_within(fused.array, unfused.array, out_atol, f"{name} {activation} output")
            fused.backward(g)
            bounds = linear_act_backward_atol(x.array, w.array, b.array, activation, g)
            for t, wg, key in zip((x, w, b), want, ("x", "weight", "bias")):
                assert_within(t.grad.array, wg, bounds[key][1], f"{name} {activation} gradient of {key}")


def test_fused_ops_check_their_arguments():
    x, w = minidl.randn(4, 3), minidl.randn(5, 3)
    with pytest.raises(ValueError, match="activation must be one of"):
        linear_act(x, w, None, "gelu")
    with pytest.raises(ValueError, match="linear_act: input has 3 features but weight expects 4"):
        linear_act(x, minidl.randn(5, 4))


def test_training_with_nn_and_optim_matches(kernel_sets):
    """The same comparison through the training stack's modules and optimizer."""
    nn, optim = minidl.nn, minidl.optim
    set_kernels, c_calls = kernel_sets
    results = []
    for name in ("numpy", "c"):
        set_kernels(name)
        minidl.manual_seed(0)
        model = nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT))
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()
        x, y = _data()
        losses = []
        for _ in range(STEPS):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        results.append((np.array(losses), [p.array.copy() for p in model.parameters()]))
    _assert_same_training(*results)
    assert {"mdk_sgemm", "mdk_sgd_update"} <= c_calls
