"""Task sgd_step: plain SGD with weight decay, compared with minidl.optim.SGD from the same weights."""

import numpy as np
import optimizers
import pytest
from helpers import compare_optimizers

import minidl


@pytest.mark.task("sgd_step")
@pytest.mark.parametrize("lr", [0.1, 0.5])
def test_sgd_matches_minidl(lr):
    compare_optimizers(lambda p: optimizers.SGD(p, lr=lr), lambda p: minidl.optim.SGD(p, lr=lr))


@pytest.mark.task("sgd_step")
def test_sgd_with_weight_decay_matches_minidl():
    compare_optimizers(
        lambda p: optimizers.SGD(p, lr=0.2, weight_decay=0.1),
        lambda p: minidl.optim.SGD(p, lr=0.2, weight_decay=0.1),
    )


@pytest.mark.task("sgd_step")
def test_one_step_by_hand():
    w = minidl.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    opt = optimizers.SGD([w], lr=0.5, weight_decay=0.1)
    (w * minidl.tensor(np.array([2.0, 4.0, -6.0]))).sum().backward()  # dL/dw = [2, 4, -6]
    opt.step()
    # w - 0.5 * (g + 0.1 w)
    np.testing.assert_allclose(w.numpy(), [1 - 0.5 * 2.1, -2 - 0.5 * 3.8, 3 - 0.5 * (-5.7)], rtol=1e-12)
