"""Datasets: indexable collections of examples, and ways to split them.

A Dataset answers len(ds) and ds[i] -> one example (usually a tuple (input, target)).
TensorDataset holds whole arrays and can also hand out a batch in one indexing
operation (get_batch), which is what makes the DataLoader fast on in-memory data.
"""

import numpy as np

from minidl import random as _random
from minidl.tensor import Tensor


class Dataset:
    """Base class: subclasses define __len__ and __getitem__(index) -> one example."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class TensorDataset(Dataset):
    """Examples are rows of the given tensors: ds[i] == (a[i], b[i], ...). All need the same first dimension.

    Accepts Tensors or NumPy arrays and keeps their arrays; ds[i] gives Tensors, as in PyTorch
    (sharing memory with the rows), and the DataLoader takes whole batches with get_batch.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset: give at least one array")
        self.arrays = tuple(a.array if isinstance(a, Tensor) else np.asarray(a) for a in arrays)
        n = len(self.arrays[0])
        for i, a in enumerate(self.arrays):
            if a.ndim == 0 or len(a) != n:
                raise ValueError(
                    f"TensorDataset: all arrays need the same first dimension; array 0 has {n} rows, "
                    f"array {i} has shape {a.shape}"
                )

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(Tensor._wrap(np.asarray(a[index])) for a in self.arrays)

    def get_batch(self, indices):
        """A whole batch at once: one fancy-indexing per array instead of len(indices) lookups."""
        return tuple(a[indices] for a in self.arrays)

    @property
    def tensors(self):
        return tuple(Tensor._wrap(a) for a in self.arrays)


class Subset(Dataset):
    """The examples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    @property
    def supports_batches(self):
        return hasattr(self.dataset, "get_batch") and getattr(self.dataset, "supports_batches", True)

    def get_batch(self, indices):
        """Batched arrays, when the underlying dataset can index a whole batch at once."""
        return self.dataset.get_batch(self.indices[indices])


def _rng(seed):
    return _random.generator() if seed is None else np.random.default_rng(seed)


def random_split(dataset, lengths, seed=None):
    """Split into non-overlapping random Subsets of the given lengths (or fractions that sum to 1).

    The permutation comes from minidl's generator, or from `seed` when given.
    """
    n = len(dataset)
    lengths = list(lengths)
    if all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1) < 1e-6:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):  # hand out the remainder one by one, as PyTorch does
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n or any(x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths {lengths} must be non-negative and add up to len(dataset) = {n}")
    order = _rng(seed).permutation(n)
    subsets, start = [], 0
    for length in lengths:
        subsets.append(Subset(dataset, order[start : start + length]))
        start += length
    return subsets


def train_test_split(dataset, test_fraction=0.2, seed=0):
    """(train, test) Subsets, with a fixed seed by default so the test set is the same in every run."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"train_test_split: test_fraction must be in (0, 1), got {test_fraction}")
    n_test = max(1, int(round(len(dataset) * test_fraction)))
    train, test = random_split(dataset, [len(dataset) - n_test, n_test], seed=seed)
    return train, test
