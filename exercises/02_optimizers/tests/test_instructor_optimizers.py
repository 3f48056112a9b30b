"""Hidden tests (instructor only): other settings, parameter groups, a longer run."""

import numpy as np
import optimizers
import pytest
import training
from helpers import assert_same_weights, batches, compare_optimizers, loss_fn, twin_models

import minidl


@pytest.mark.task("sgd_step")
@pytest.mark.instructor
def test_sgd_small_lr_long_run():
    compare_optimizers(
        lambda p: optimizers.SGD(p, lr=0.03, weight_decay=0.5),
        lambda p: minidl.optim.SGD(p, lr=0.03, weight_decay=0.5),
        steps=25,
        seed=3,
    )


@pytest.mark.task("momentum_step")
@pytest.mark.instructor
def test_momentum_per_group_settings():
    def groups(params):
        params = list(params)
        return [{"params": params[:2], "lr": 0.1}, {"params": params[2:], "lr": 0.01, "momentum": 0.3}]

    compare_optimizers(
        lambda p: optimizers.Momentum(groups(p), lr=0.05, momentum=0.8),
        lambda p: minidl.optim.SGD(groups(p), lr=0.05, momentum=0.8),
        seed=4,
    )


@pytest.mark.task("adagrad_step")
@pytest.mark.instructor
def test_adagrad_large_eps():
    compare_optimizers(
        lambda p: optimizers.AdaGrad(p, lr=0.2, eps=0.5), lambda p: minidl.optim.AdaGrad(p, lr=0.2, eps=0.5), seed=5
    )


@pytest.mark.task("training_loop")
@pytest.mark.instructor
def test_train_decays_each_group_from_its_own_lr():
    yours, reference = twin_models(seed=6)
    data = batches(count=2, seed=6)

    def groups(model):
        params = list(model.parameters())
        return minidl.optim.SGD([{"params": params[:2], "lr": 0.2}, {"params": params[2:], "lr": 0.05}], lr=0.1)

    opt = groups(yours)
    training.train(yours, opt, loss_fn, data, 3, lr_decay=1.0)
    np.testing.assert_allclose([g["lr"] for g in opt.param_groups], [0.2 * np.exp(-2), 0.05 * np.exp(-2)])
    ref = groups(reference)
    for epoch in range(3):
        for g, lr in zip(ref.param_groups, (0.2, 0.05)):
            g["lr"] = lr * np.exp(-epoch)
        for x, y in data:
            ref.zero_grad()
            loss_fn(reference(x), y).backward()
            ref.step()
    assert_same_weights(yours, reference)
