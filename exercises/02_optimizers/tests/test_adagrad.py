"""Task adagrad_step: AdaGrad, compared with minidl.optim.AdaGrad."""

import numpy as np
import optimizers
import pytest
from helpers import compare_optimizers

import minidl


@pytest.mark.task("adagrad_step")
@pytest.mark.parametrize("lr", [0.1, 0.02])
def test_adagrad_matches_minidl(lr):
    _, optimizer = compare_optimizers(lambda p: optimizers.AdaGrad(p, lr=lr), lambda p: minidl.optim.AdaGrad(p, lr=lr))
    assert all("sum" in s for s in optimizer.state.values()), "keep the sum of squared gradients in state['sum']"


@pytest.mark.task("adagrad_step")
def test_steps_shrink_by_hand():
    w = minidl.tensor(np.array([0.0, 0.0]), requires_grad=True)
    opt = optimizers.AdaGrad([w], lr=1.0, eps=0.0)
    steps = []
    for _ in range(4):  # constant gradient g: the k-th step is g / sqrt(k g²) = sign(g) / sqrt(k)
        before = w.numpy().copy()
        opt.zero_grad()
        (w * minidl.tensor(np.array([3.0, -0.5]))).sum().backward()
        opt.step()
        steps.append(w.numpy() - before)
    expected = [[-1 / np.sqrt(k), 1 / np.sqrt(k)] for k in range(1, 5)]
    np.testing.assert_allclose(steps, expected, rtol=1e-12)
