"""Learning-rate schedules: change each parameter group's lr as training goes on.

The lecture: think of the loss as a fractal landscape whose dimensions have widely
differing scales; annealing the learning rate, α = α₀·e^(-βt), lets SGD explore all of
them. Call scheduler.step() once per epoch (or per step, with t counting steps).
"""

import math


class LRScheduler:
    """Base class: sets group["lr"] = lr_at(initial lr, t) after each step(); t starts at 0."""

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr, t):
        raise NotImplementedError(f"{type(self).__name__} must implement lr_at(base_lr, t)")

    def step(self):
        self.last_epoch += 1
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base_lr, self.last_epoch)

    def get_last_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base_lr, self.last_epoch)


class ExponentialLR(LRScheduler):
    """α_t = α₀·γ^t, i.e. the lecture's α₀·e^(-βt) with γ = e^(-β).

    Give either gamma (PyTorch's parameter) or beta (the lecture's decay rate).
    """

    def __init__(self, optimizer, gamma=None, *, beta=None, last_epoch=-1):
        if (gamma is None) == (beta is None):
            raise ValueError("ExponentialLR: give exactly one of gamma (α₀·γ^t) or beta (α₀·e^(-βt))")
        self.gamma = math.exp(-beta) if beta is not None else gamma
        if not 0 < self.gamma <= 1:
            raise ValueError(f"ExponentialLR: gamma must be in (0, 1] (beta >= 0), got {self.gamma}")
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        return base_lr * self.gamma**t


class StepLR(LRScheduler):
    """Multiply the learning rate by gamma every step_size epochs: α_t = α₀·γ^(t // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        return base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from α₀ down to eta_min over T_max epochs: α_t = η + (α₀ - η)(1 + cos(πt/T_max))/2."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):  # noqa: N803 - PyTorch's name
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
