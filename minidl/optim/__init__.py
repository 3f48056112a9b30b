"""minidl.optim: optimizers, learning-rate schedules, gradient clipping and parameter averaging.

    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss.backward(); optimizer.step(); optimizer.zero_grad()

The update rules themselves are plain functions over arrays in optim.updates. LBFGS, a quasi-Newton
method for full-batch problems, takes a closure that recomputes the loss: optimizer.step(closure).
"""

from minidl.optim import lr_scheduler, updates
from minidl.optim.adaptive import AdaGrad, Adagrad, Adam, RMSProp, RMSprop
from minidl.optim.averaging import EMA, ExponentialMovingAverage, ParameterAverage, PolyakAverage
from minidl.optim.clip import clip_grad_norm_, clip_grad_value_
from minidl.optim.lbfgs import LBFGS
from minidl.optim.optimizer import Optimizer
from minidl.optim.sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "AdaGrad",
    "Adagrad",
    "RMSProp",
    "RMSprop",
    "Adam",
    "LBFGS",
    "lr_scheduler",
    "updates",
    "clip_grad_norm_",
    "clip_grad_value_",
    "ParameterAverage",
    "PolyakAverage",
    "EMA",
    "ExponentialMovingAverage",
]
