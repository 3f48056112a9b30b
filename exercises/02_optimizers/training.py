"""Exercise 02, part 2: the training loop, and the small MLP it trains.

The lecture's SGD, summarized:

    for each epoch:
        α = α₀·e^(-β·epoch)                        (learning-rate decay)
        for each batch (x, y):
            forget the previous gradients           (backward() adds into .grad)
            forward: the outputs, the loss L
            backward: ∂L/∂w for every parameter
            step: update the weights
"""

import math

import minidl.nn as nn


def make_mlp(inputs, hidden, outputs):
    """The network the tests train: Linear -> Tanh -> Linear (given)."""
    return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, outputs))


def train(model, optimizer, loss_fn, batches, epochs, lr_decay=0.0):
    """Train `model` for `epochs` passes over `batches`; return the mean loss of each epoch.

    batches     a list of (inputs, targets) tensor pairs, visited in order every epoch
    loss_fn     loss_fn(outputs, targets) -> a scalar Tensor (e.g. nn.functional.cross_entropy)
    lr_decay    β: in epoch t (counted from 0) every parameter group's lr is α₀·e^(-β·t), where
                α₀ is the group's lr when train() was called
    Returns a list of `epochs` floats: the mean over the epoch's batches of loss.item(),
    each measured before that batch's step.
    """
    # BEGIN SOLUTION training_loop
    initial = [group["lr"] for group in optimizer.param_groups]
    history = []
    for epoch in range(epochs):
        for group, lr in zip(optimizer.param_groups, initial):
            group["lr"] = lr * math.exp(-lr_decay * epoch)
        total = 0.0
        for inputs, targets in batches:
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.append(total / len(batches))
    return history
    # END SOLUTION
