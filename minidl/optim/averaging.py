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
"""

import contextlib

import numpy as np

from minidl.autograd import no_grad
from minidl.tensor import Tensor


class ParameterAverage:
    """Base class: the average starts at the current weights; update() folds the new weights in."""

    def __init__(self, parameters):
        if isinstance(parameters, Tensor):
            parameters = [parameters]
        elif hasattr(parameters, "parameters"):  # a Module
            parameters = parameters.parameters()
        self.params = list(parameters)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got no parameters to average")
        self.averages = [p.data.copy() for p in self.params]
        self.num_updates = 0

    def blend(self, average, current):
        raise NotImplementedError

    def update(self):
        """Fold the current weights into the average (call after each optimizer.step())."""
        self.num_updates += 1
        for average, p in zip(self.averages, self.params):
            self.blend(average, p.data)

    def _copy_into(self, values):
        with no_grad():
            for p, value in zip(self.params, values):
                p.data[...] = value
                p._bump_version()

    @contextlib.contextmanager
    def average_parameters(self, model=None):
        """Inside the block the parameters hold the averages; the training weights are restored on exit."""
        if model is not None:
            own = {id(p) for p in self.params}
            if any(id(p) not in own for p in model.parameters()):
                raise ValueError(
                    f"{type(self).__name__}.average_parameters: the model has parameters this averager does not track"
                )
        training_weights = [p.data.copy() for p in self.params]
        self._copy_into(self.averages)
        try:
            yield
        finally:
            self._copy_into(training_weights)

    def copy_to_parameters(self):
        """Make the averages the model's weights for good (e.g. before exporting the final model)."""
        self._copy_into(self.averages)

    def state_dict(self):
        return {"num_updates": self.num_updates, "averages": [a.copy() for a in self.averages]}

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
            mine[...] = theirs
        self.num_updates = int(state_dict["num_updates"])


class PolyakAverage(ParameterAverage):
    """The plain mean of the weights seen at every update(): w̄_n = w̄_{n-1} + (w_n - w̄_{n-1}) / n."""

    def blend(self, average, current):
        average += (current - average) / self.num_updates


class EMA(ParameterAverage):
    """Exponential moving average, w̄ ← decay·w̄ + (1 - decay)·w: recent weights count most."""

    def __init__(self, parameters, decay=0.999):
        if not 0 < decay < 1:
            raise ValueError(f"EMA: decay must be in (0, 1), got {decay}")
        self.decay = decay
        super().__init__(parameters)

    def blend(self, average, current):
        average *= self.decay
        average += (1 - self.decay) * current


ExponentialMovingAverage = EMA
