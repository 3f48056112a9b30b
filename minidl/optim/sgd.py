"""Stochastic gradient descent, with the lecture's momentum and L2 weight decay.

"SGD is a terrible optimizer ... but it's very cheap": the hacks (momentum, learning-rate
decay, averaging) all reduce the noise of the gradient estimate while staying cheap.
"""

from minidl.optim.optimizer import Optimizer
from minidl.optim.updates import sgd_update, zeros_like


class SGD(Optimizer):
    """w' = w - α·g' with g' = μ·g + ∂L (momentum μ; plain SGD when μ = 0).

    nesterov=True uses the look-ahead step ∂L + μ·g'. weight_decay=ε adds ε·w to ∂L (L2
    regularization, the lecture's "L(ȳ, y) + ε|w|²" up to a factor 2 folded into ε).
    dampening d scales the gradient's share of the velocity from the second step on (the
    first step starts the velocity at ∂L, as PyTorch does). Matches torch.optim.SGD.
    """

    state_keys = ("momentum_buffer",)
    added_hyperparameters = {"dampening": 0.0}

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
        super().__init__(
            params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, dampening=dampening)
        )

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        if not 0 <= group["momentum"] < 1:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {group['momentum']}")
        if group["nesterov"] and group["momentum"] == 0:
            raise ValueError("SGD: nesterov=True needs a momentum > 0")
        if not 0 <= group.get("dampening", 0.0) <= 1:
            raise ValueError(f"SGD: dampening must be in [0, 1], got {group['dampening']}")
        if group["nesterov"] and group.get("dampening", 0.0):
            raise ValueError("SGD: nesterov=True needs dampening 0")

    def update(self, param, grad, state, group):
        velocity = None
        dampening = group.get("dampening", 0.0)
        if group["momentum"]:
            velocity = state.get("momentum_buffer")
            if velocity is None:
                velocity = state["momentum_buffer"] = zeros_like(param)
                dampening = 0.0  # the first step sets the velocity to the whole gradient
        momentum, decay, nesterov = group["momentum"], group["weight_decay"], group["nesterov"]
        sgd_update(param, grad, velocity, group["lr"], momentum, decay, nesterov, dampening)
