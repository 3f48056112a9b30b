"""Task training_loop: train() against the same loop written here, from the same weights.

These tests use minidl's own optimizers, so a bug in your update rules costs only those tasks.
"""

import math

import numpy as np
import pytest
import training
from helpers import assert_same_weights, batches, loss_fn, twin_models

import minidl


def reference_train(model, optimizer, data, epochs, lr_decay):
    initial = [g["lr"] for g in optimizer.param_groups]
    history = []
    for epoch in range(epochs):
        for g, lr in zip(optimizer.param_groups, initial):
            g["lr"] = lr * math.exp(-lr_decay * epoch)
        losses = []
        for x, y in data:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history.append(sum(losses) / len(losses))
    return history


OPTIMIZERS = {
    "sgd": lambda p: minidl.optim.SGD(p, lr=0.1),
    "momentum": lambda p: minidl.optim.SGD(p, lr=0.05, momentum=0.9),
    "adagrad": lambda p: minidl.optim.AdaGrad(p, lr=0.1),
}


@pytest.mark.task("training_loop")
@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("lr_decay", [0.0, 0.5])
def test_train_matches_the_lecture_loop(name, lr_decay):
    yours, reference = twin_models(seed=1)
    data = batches(count=3, seed=1)
    history = training.train(yours, OPTIMIZERS[name](yours.parameters()), loss_fn, data, 4, lr_decay=lr_decay)
    expected = reference_train(reference, OPTIMIZERS[name](reference.parameters()), data, 4, lr_decay)
    assert isinstance(history, list) and len(history) == 4
    np.testing.assert_allclose(history, expected, rtol=1e-9, err_msg="the per-epoch mean losses")
    assert_same_weights(yours, reference, "after training")


@pytest.mark.task("training_loop")
def test_training_reduces_the_loss():
    model, _ = twin_models(seed=2)
    history = training.train(model, minidl.optim.SGD(model.parameters(), lr=0.2), loss_fn, batches(seed=2), 15)
    assert history[-1] < 0.5 * history[0], history
