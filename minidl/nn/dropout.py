"""Dropout: randomly zero activations during training so the network learns redundant features.

The lecture sets 50%+ of the activations to zero at training time and, at test time,
drops nothing but multiplies the activations by 1/2, so each unit's expected input is
the same in both modes. This is "inverted" dropout, the equivalent used everywhere
today: the survivors are scaled by 1/(1-p) during training instead, so at test time
the layer is the identity and the trained weights are used as they are.
"""

from minidl import ops
from minidl.nn.module import Module


class Dropout(Module):
    """Training: y = x · mask / (1 - p) with mask ~ Bernoulli(1 - p). Evaluation: y = x.

    With p = 1/2 both modes are the lecture's (train: x · mask, test: x · 1/2) multiplied
    by 1/(1-p) = 2, a constant factor that the next layer's weights absorb; the expected
    training output equals the test output either way. Masks come from minidl's seeded generator.
    """

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return ops.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
