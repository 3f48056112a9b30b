"""Ensembles and distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2014).

The lecture: "ensembling many models generally improves accuracy significantly (but with diminishing
returns after 5 or 10 models)", at the price of running them all at inference. Distillation trains
one small model on the ensemble's predictions instead of the labels alone: the teacher's soft
targets say not only which class is right but how the wrong ones compare (a 7 that looks a bit
like a 1), which is much more information per example.

Soft targets come from a temperature T: q = softmax(z / T), softer for T > 1. The student
matches them at the same temperature, and because the gradient of that term scales as 1/T², it is
multiplied by T² so that changing T does not change its weight against the hard-label term:

    loss = α · T² · KL(q_teacher ‖ softmax(z_student / T)) + (1 - α) · CE(z_student, labels).
"""

from minidl import ops
from minidl.autograd import no_grad
from minidl.nn.container import ModuleList
from minidl.nn.module import Module


def soft_targets(logits, temperature=1.0):
    """softmax(logits / T): a teacher's class probabilities at temperature T (no gradient)."""
    with no_grad():
        return (logits * (1.0 / temperature)).softmax(axis=-1).detach()


class Ensemble(Module):
    """Several models answering together: the average of their class probabilities.

    forward(x) -> the mean of softmax(model(x) / T) over the members, (N, C) probabilities (T =
    temperature, default 1); predict(x) -> the most probable class. The members are ordinary
    child modules (ensemble.members[i]), each trained on its own.
    """

    def __init__(self, models, temperature=1.0):
        super().__init__()
        self.members = ModuleList(models)
        if len(self.members) == 0:
            raise ValueError("Ensemble: needs at least one model")
        self.temperature = temperature

    def forward(self, x, temperature=None):
        temperature = self.temperature if temperature is None else temperature
        total = None
        for model in self.members:
            probabilities = (model(x) * (1.0 / temperature)).softmax(axis=-1)
            total = probabilities if total is None else total + probabilities
        return total * (1.0 / len(self.members))

    def predict(self, x):
        with no_grad():
            return self(x).array.argmax(axis=-1)

    def extra_repr(self):
        return f"members={len(self.members)}, temperature={self.temperature}"


def distillation_loss(student_logits, teacher_probs, targets=None, temperature=4.0, alpha=0.9):
    """α·T²·KL(teacher_probs ‖ softmax(student_logits/T)) + (1-α)·CE(student_logits, targets).

    teacher_probs: the teacher's probabilities at temperature T (soft_targets(teacher_logits, T), or
    Ensemble(models)(x, temperature=T)). Without targets (or with alpha=1) only the soft term counts.
    The KL is per example (summed over classes, averaged over the batch).
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"distillation_loss: alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"distillation_loss: temperature must be positive, got {temperature}")
    if student_logits.shape != teacher_probs.shape:
        raise ValueError(
            f"distillation_loss: student scores {student_logits.shape} and teacher probabilities "
            f"{teacher_probs.shape} differ"
        )
    student_log_probs = (student_logits * (1.0 / temperature)).log_softmax(axis=-1)
    soft = ops.kl_div(student_log_probs, teacher_probs, reduction="batchmean") * (temperature * temperature)
    if targets is None or alpha == 1:
        return soft
    return soft * alpha + ops.cross_entropy(student_logits, targets) * (1 - alpha)


class DistillationLoss(Module):
    """The distillation loss as a layer: DistillationLoss(T, α)(student_logits, teacher_probs, targets)."""

    def __init__(self, temperature=4.0, alpha=0.9):
        super().__init__()
        self.temperature, self.alpha = temperature, alpha

    def forward(self, student_logits, teacher_probs, targets=None):
        return distillation_loss(student_logits, teacher_probs, targets, self.temperature, self.alpha)

    def extra_repr(self):
        return f"temperature={self.temperature}, alpha={self.alpha}"
