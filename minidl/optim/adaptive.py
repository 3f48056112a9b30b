"""Optimizers that adapt the step size per parameter: AdaGrad, RMSProp and Adam.

The lecture's second strategy: "AdaGrad works more often, not always gets you the best
result" - it needs little tuning because each weight's learning rate decays with the
history of its own gradients.
"""

from minidl.optim.optimizer import Optimizer
from minidl.optim.updates import adagrad_update, adam_update, rmsprop_update, zeros_like


def _buffer(state, key, like):
    if key not in state:
        state[key] = zeros_like(like)
    return state[key]


class AdaGrad(Optimizer):
    """n ← n + ∂L²;  w ← w - α/(√n + eps) · ∂L. Matches torch.optim.Adagrad (lr_decay=0)."""

    state_keys = ("sum",)

    def __init__(self, params, lr=0.01, eps=1e-10, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))

    def update(self, param, grad, state, group):
        adagrad_update(param, grad, _buffer(state, "sum", param), group["lr"], group["eps"], group["weight_decay"])


Adagrad = AdaGrad  # PyTorch's spelling


class RMSProp(Optimizer):
    """n ← α·n + (1 - α)·∂L²;  w ← w - lr/(√n + eps) · ∂L. Matches torch.optim.RMSprop (no momentum).

    centered=True divides by √(n - m²) with m the running mean of ∂L (see optim.updates.rmsprop_update).
    """

    state_keys = ("square_avg", "grad_avg")
    added_hyperparameters = {"centered": False}

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, centered=centered))

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        if not 0 <= group["alpha"] < 1:
            raise ValueError(f"RMSProp: alpha must be in [0, 1), got {group['alpha']}")

    def update(self, param, grad, state, group):
        mean_sq = _buffer(state, "square_avg", param)
        mean = _buffer(state, "grad_avg", param) if group.get("centered") else None
        rmsprop_update(param, grad, mean_sq, group["lr"], group["alpha"], group["eps"], group["weight_decay"], mean)


RMSprop = RMSProp  # PyTorch's spelling


class Adam(Optimizer):
    """Momentum and a per-parameter scale, bias-corrected (see optim.updates.adam_update). Matches torch.optim.Adam.

    amsgrad=True scales by the largest second moment seen so far (AMSGrad).
    """

    state_keys = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    added_hyperparameters = {"amsgrad": False}

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        beta1, beta2 = group["betas"]
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"Adam: betas must be in [0, 1), got {group['betas']}")

    def update(self, param, grad, state, group):
        state["step"] = step = state.get("step", 0) + 1
        m = _buffer(state, "exp_avg", param)
        v = _buffer(state, "exp_avg_sq", param)
        max_v = _buffer(state, "max_exp_avg_sq", param) if group.get("amsgrad") else None
        beta1, beta2 = group["betas"]
        adam_update(param, grad, m, v, step, group["lr"], beta1, beta2, group["eps"], group["weight_decay"], max_v)
