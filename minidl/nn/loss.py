"""Loss layers: how close are we? Each wraps a loss op from minidl.ops.nn.

The lecture's two losses: L2, sum |ȳ - y|², and cross-entropy, -sum ȳ log y.
reduction="mean" (the default) averages over the batch, "sum" adds, "none" keeps one per example.
"""

from minidl import ops
from minidl.nn.module import Module


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self):
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class CrossEntropyLoss(_Loss):
    """-log softmax(scores)[target] for scores (N, C) and integer targets (N,).

    Takes raw scores (logits), not probabilities: softmax and log are one op, which is
    stable and gives the gradient softmax(scores) - onehot(target). Targets equal to
    ignore_index are skipped (and not counted in the mean).
    """

    def __init__(self, reduction="mean", ignore_index=-100):
        super().__init__(reduction)
        self.ignore_index = ignore_index

    def forward(self, scores, targets):
        return ops.cross_entropy(scores, targets, self.reduction, self.ignore_index)


class NLLLoss(_Loss):
    """-log_probs[target] for log-probabilities (N, C) (e.g. from LogSoftmax) and targets (N,)."""

    def __init__(self, reduction="mean", ignore_index=-100):
        super().__init__(reduction)
        self.ignore_index = ignore_index

    def forward(self, log_probs, targets):
        return ops.nll_loss(log_probs, targets, self.reduction, self.ignore_index)


class MSELoss(_Loss):
    """(prediction - target)², averaged over all elements: the lecture's L2 loss."""

    def forward(self, prediction, target):
        return ops.mse_loss(prediction, target, self.reduction)


class BCELoss(_Loss):
    """Binary cross-entropy on probabilities p in [0, 1] (after a sigmoid) with targets t:
    -[t log p + (1 - t) log(1 - p)], each log clamped at -100 as in PyTorch. On raw scores,
    BCEWithLogitsLoss is the same loss, computed more accurately."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__(reduction)
        self.weight = weight

    def forward(self, probabilities, targets):
        return ops.binary_cross_entropy(probabilities, targets, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on raw scores z with targets t in [0, 1]:
    -[t log σ(z) + (1 - t) log(1 - σ(z))], computed without overflow."""

    def forward(self, scores, targets):
        return ops.binary_cross_entropy_with_logits(scores, targets, self.reduction)


class KLDivLoss(Module):
    """KL(target ‖ p) = Σ target·(log target - input) for log-probabilities `input`, as torch.nn.KLDivLoss.

    reduction "batchmean" (sum / batch size) is the divergence per example; "mean" averages over
    every element (PyTorch's default, kept for compatibility). log_target=True takes log-probabilities
    as targets. Distillation's soft-target term is KLDivLoss("batchmean") · T² (see nn.DistillationLoss).
    """

    def __init__(self, reduction="mean", log_target=False):
        super().__init__()
        if reduction not in ("mean", "batchmean", "sum", "none"):
            raise ValueError(f"KLDivLoss: reduction must be 'mean', 'batchmean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction
        self.log_target = log_target

    def forward(self, input, target):  # noqa: A002 - PyTorch's argument name
        return ops.kl_div(input, target, self.reduction, self.log_target)

    def extra_repr(self):
        return f"reduction={self.reduction!r}" + (", log_target=True" if self.log_target else "")
