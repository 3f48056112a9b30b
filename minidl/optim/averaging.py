"""Parameter averaging: keep a running average of the weights over training, use it for evaluation.

The lecture: "Keep a running average of your parameters over time. Only use the averaged
parameters at test time, not for training!" The average smooths out SGD's random walk
around the minimum. So the averager keeps its own copies, and average_parameters()
swaps them into the model only inside a `with` block:

    averager = EMA(model.parameters(), decay=0.999)
    for x, y in loader:
        ...; optimizer.step(); averager.update()
    with averager.average_parameters(model):
        evaluate(model)              # uses the averaged weights
    # the training weights are back here

The averages are tensors on the parameters' device, updated with tensor ops, so averaging
works wherever the model trains.
"""

import contextlib

import numpy as np

from minidl.autograd import no_grad
from minidl.creation import tensor
from minidl.tensor import Tensor


class ParameterAverage:
    """Base class: keeps its own copy of the weights (the average) and update() folds the new weights in.

    The copy starts as the weights given here; each subclass says how much of them survives updates.
    """

    def __init__(self, parameters):
        if isinstance(parameters, Tensor):
            parameters = [parameters]
        elif hasattr(parameters, "parameters"):  # a Module
            parameters = parameters.parameters()
        self.params = list(parameters)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got no parameters to average")
        self.averages = [p.detach().clone() for p in self.params]  # on each parameter's device
        self.num_updates = 0

    def blend(self, average, current):
        raise NotImplementedError

    def update(self):
        """Fold the current weights into the average (call after each optimizer.step())."""
        self.num_updates += 1
        with no_grad():
            for average, p in zip(self.averages, self.params):
                self.blend(average, p.detach())

    def _copy_into(self, values):
        with no_grad():
            for p, value in zip(self.params, values):
                p.copy_(value)

    @contextlib.contextmanager
    def average_parameters(self, model=None):
        """Inside the block the parameters hold the averages; the training weights are restored on exit."""
        if model is not None:
            own = {id(p) for p in self.params}
            if any(id(p) not in own for p in model.parameters()):
                raise ValueError(
                    f"{type(self).__name__}.average_parameters: the model has parameters this averager does not track"
                )
        training_weights = [p.detach().clone() for p in self.params]
        self._copy_into(self.averages)
        try:
            yield
        finally:
            self._copy_into(training_weights)

    def copy_to_parameters(self):
        """Make the averages the model's weights for good (e.g. before exporting the final model)."""
        self._copy_into(self.averages)

    def state_dict(self):
        return {"num_updates": self.num_updates, "averages": [a.cpu().numpy().copy() for a in self.averages]}

    def load_state_dict(self, state_dict):
        averages = state_dict["averages"]
        if len(averages) != len(self.averages):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: {len(averages)} averages for {len(self.averages)} parameters"
            )
        for i, (mine, theirs) in enumerate(zip(self.averages, averages)):
            if mine.shape != np.shape(theirs):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: average {i} has shape {np.shape(theirs)}, "
                    f"expected {mine.shape}"
                )
            mine.copy_(tensor(theirs, dtype=mine.dtype, device=mine.device))
        self.num_updates = int(state_dict["num_updates"])


class PolyakAverage(ParameterAverage):
    """The plain mean of the weights seen at every update(): w̄_n = w̄_{n-1} + (w_n - w̄_{n-1}) / n.

    The weights given at construction (usually the random initial ones) are not part of the mean:
    the first update (n = 1) replaces them. Before it, average_parameters() swaps in those weights.
    """

    def blend(self, average, current):
        average.add_((current - average) / self.num_updates)


class EMA(ParameterAverage):
    """Exponential moving average, w̄ ← d·w̄ + (1 - d)·w: recent weights count most.

    The average starts at the weights given (usually the random initial ones). With
    warmup=True (the default) the decay grows with n, the number of updates including this one,

        d_n = min(decay, (1 + n) / (10 + n))        d_1 = 2/11, d_2 = 3/12, ...

    as in TensorFlow's ExponentialMovingAverage given num_updates. Without it (warmup=False,
    d_n = decay) and decay = 0.999, the average still holds 0.999^1000 ≈ 37% of the random
    initial weights after 1000 updates, so evaluating it early measures the initialization.
    With it the first updates mostly take the new weights; d_n reaches 0.999 after ~9000.
    """

    def __init__(self, parameters, decay=0.999, warmup=True):
        if not 0 < decay < 1:
            raise ValueError(f"EMA: decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        super().__init__(parameters)

    def current_decay(self):
        """d_n for the update being applied (num_updates counts it already)."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    def blend(self, average, current):
        decay = self.current_decay()
        average.mul_(decay)
        average.add_((1 - decay) * current)


ExponentialMovingAverage = EMA
