"""Training on the C kernels matches training on the NumPy kernels (same seed), step by step.

A small MLP (linear / relu / cross-entropy, SGD with momentum) is trained for a few dozen
steps once per kernel set; the losses and the final weights must agree to float32
tolerance. The sizes are chosen above the C kernels' crossover thresholds, and a spy on
the C library checks that the GEMM, cross-entropy and SGD kernels really ran.
Variants: plain minidl ops and the fused ops of minidl.ops.fused (linear_act).
"""

import numpy as np
import pytest

import minidl
from minidl import backend
from minidl.backend import c as ck
from minidl.backend.c import _ffi
from minidl.ops.fused import linear_act

pytestmark = pytest.mark.skipif(not ck.available, reason=f"C kernels not built: {ck.unavailable_reason}")

N, IN, HIDDEN, OUT, STEPS = 128, 256, 256, 10, 30  # the big products are above the GEMM crossover


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
    velocity = [np.zeros_like(p.data) for p in params]
    losses = []
    for _ in range(STEPS):
        for p in params:
            p.grad = None
        loss = minidl.cross_entropy(forward(x, *params), y)
        loss.backward()
        k = backend.get_kernels()
        for p, v in zip(params, velocity):
            k.sgd_update(p.data, p.grad.data, v, 0.05, momentum=0.9, weight_decay=1e-4)
        losses.append(loss.item())
    return np.array(losses), [p.data.copy() for p in params]


def _mlp(x, w1, b1, w2, b2):
    return minidl.linear(minidl.relu(minidl.linear(x, w1, b1)), w2, b2)


def _mlp_fused(x, w1, b1, w2, b2):
    return minidl.linear(linear_act(x, w1, b1, "relu"), w2, b2)


def _assert_same_training(a, b):
    losses_a, params_a = a
    losses_b, params_b = b
    assert losses_a[-1] < 0.7 * losses_a[0], "the model did not train"
    np.testing.assert_allclose(losses_b, losses_a, rtol=2e-5, atol=2e-6)
    for pa, pb in zip(params_a, params_b):
        np.testing.assert_allclose(pb, pa, rtol=1e-4, atol=2e-5)


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
            want = [t.grad.data.copy() for t in (x, w, b)]
            for t in (x, w, b):
                t.grad = None
            fused = linear_act(x, w, b, activation)
            np.testing.assert_allclose(fused.data, unfused.data, rtol=1e-5, atol=1e-6)
            fused.backward(g)
            for t, wg in zip((x, w, b), want):
                np.testing.assert_allclose(t.grad.data, wg, rtol=1e-4, atol=1e-5)
