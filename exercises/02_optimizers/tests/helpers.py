"""Shared by the tests: a small classification problem and two MLPs with the same initial weights."""

import copy

import numpy as np
from training import make_mlp

import minidl
import minidl.nn.functional as F

# Both sides compute the same float64 arithmetic, possibly in another order (minidl's reference
# updates may run in C): they differ by rounding, ~1e-16 relative per operation, which a few
# dozen steps of a small smooth network amplify at most a few orders of magnitude. Any mistake
# in an update rule changes the weights at the 1e-3 level or more.
RTOL, ATOL = 1e-9, 1e-12


def batches(count=4, size=8, features=4, classes=3, seed=0):
    """`count` batches of (inputs, labels): three Gaussian blobs, a little overlapping."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * 2
    made = []
    for _ in range(count):
        labels = rng.integers(0, classes, size)
        x = centers[labels] + rng.standard_normal((size, features))
        made.append((minidl.tensor(x, dtype=minidl.float64), minidl.tensor(labels)))
    return made


def twin_models(seed=0, features=4, hidden=6, classes=3):
    """Two float64 MLPs with identical weights."""
    minidl.manual_seed(seed)
    model = make_mlp(features, hidden, classes).double()
    return model, copy.deepcopy(model)


def loss_fn(outputs, labels):
    return F.cross_entropy(outputs, labels)


def one_step(model, optimizer, batch):
    optimizer.zero_grad()
    loss_fn(model(batch[0]), batch[1]).backward()
    optimizer.step()


def assert_same_weights(model, reference, when=""):
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"{name} {when}")


def compare_optimizers(make_yours, make_reference, steps=12, seed=0):
    """Step both optimizers on the same batches; the weights must agree after every step."""
    yours, reference = twin_models(seed)
    mine, theirs = make_yours(yours.parameters()), make_reference(reference.parameters())
    data = batches(seed=seed)
    for step in range(steps):
        batch = data[step % len(data)]
        one_step(yours, mine, batch)
        one_step(reference, theirs, batch)
        assert_same_weights(yours, reference, f"after step {step + 1}")
    return yours, mine
