"""Exercise 02, part 1: three update rules from the lecture, as minidl optimizers.

An optimizer holds the parameters; `step()` (written in minidl.optim.Optimizer, given) calls
`update(param, grad, state, group)` once per parameter that has a gradient, where

    param   the parameter's values, a NumPy array: change it IN PLACE (param -= ...)
    grad    ∂L/∂w, a NumPy array of the same shape (do not change it)
    state   a dict kept for this parameter between steps: put your buffers here
    group   the hyperparameters: group["lr"], group["momentum"], group["eps"], group["weight_decay"]

Assigning `param = param - ...` makes a new array and leaves the parameter unchanged; use
`param -= ...` (or `param[...] = ...`). The same holds for buffers kept in `state`.
"""

import numpy as np

from minidl.optim import Optimizer


class SGD(Optimizer):
    """Plain stochastic gradient descent with L2 weight decay ε:

    ∂ ← ∂L/∂w + ε·w        (the gradient of the loss plus (ε/2)|w|²)
    w ← w - α·∂
    """

    def __init__(self, params, lr=0.01, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    def update(self, param, grad, state, group):
        # BEGIN SOLUTION sgd_step
        step = grad + group["weight_decay"] * param if group["weight_decay"] else grad
        param -= group["lr"] * step
        # END SOLUTION


class Momentum(Optimizer):
    """SGD with momentum μ, the lecture's form (and PyTorch's):

    g ← μ·g + ∂L/∂w        (the velocity g starts at 0 and is kept in state["velocity"])
    w ← w - α·g
    """

    def __init__(self, params, lr=0.01, momentum=0.9):
        if not 0 <= momentum < 1:
            raise ValueError(f"Momentum: momentum must be in [0, 1), got {momentum}")
        super().__init__(params, dict(lr=lr, momentum=momentum))

    def update(self, param, grad, state, group):
        # BEGIN SOLUTION momentum_step
        if "velocity" not in state:
            state["velocity"] = np.zeros_like(param)
        velocity = state["velocity"]
        velocity *= group["momentum"]
        velocity += grad
        param -= group["lr"] * velocity
        # END SOLUTION


class AdaGrad(Optimizer):
    """AdaGrad: learning-rate decay applied adaptively, per parameter:

    n ← n + (∂L/∂w)²       (elementwise; n starts at 0 and is kept in state["sum"])
    w ← w - α / (√n + eps) · ∂L/∂w
    """

    def __init__(self, params, lr=0.01, eps=1e-10):
        super().__init__(params, dict(lr=lr, eps=eps))

    def update(self, param, grad, state, group):
        # BEGIN SOLUTION adagrad_step
        if "sum" not in state:
            state["sum"] = np.zeros_like(param)
        total = state["sum"]
        total += grad * grad
        param -= group["lr"] * grad / (np.sqrt(total) + group["eps"])
        # END SOLUTION
