"""Task momentum_step: SGD with momentum, compared with minidl.optim.SGD(momentum=μ)."""

import numpy as np
import optimizers
import pytest
from helpers import compare_optimizers

import minidl


@pytest.mark.task("momentum_step")
@pytest.mark.parametrize("mu", [0.9, 0.5])
def test_momentum_matches_minidl(mu):
    _, optimizer = compare_optimizers(
        lambda p: optimizers.Momentum(p, lr=0.05, momentum=mu), lambda p: minidl.optim.SGD(p, lr=0.05, momentum=mu)
    )
    assert all("velocity" in s for s in optimizer.state.values()), "keep the velocity in state['velocity']"


@pytest.mark.task("momentum_step")
def test_velocity_accumulates_by_hand():
    w = minidl.tensor(np.array([0.0, 0.0]), requires_grad=True)
    opt = optimizers.Momentum([w], lr=1.0, momentum=0.5)
    for _ in range(3):  # a constant gradient [1, -2]: velocities 1, 1.5, 1.75 times it
        opt.zero_grad()
        (w * minidl.tensor(np.array([1.0, -2.0]))).sum().backward()
        opt.step()
    np.testing.assert_allclose(w.numpy(), [-(1 + 1.5 + 1.75), 2 * (1 + 1.5 + 1.75)], rtol=1e-12)
