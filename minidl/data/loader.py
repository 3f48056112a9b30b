"""DataLoader: turn a Dataset into mini-batches of Tensors, shuffled each epoch if asked.

SGD computes the loss on a very small subset of the data at a time (1 - 1024 examples):
"a terrible estimate, but we can afford to do it lots of times". The loader hands out
those subsets. Shuffling draws one permutation per epoch from minidl's generator (so
manual_seed makes it repeatable, and checkpoints restore it) or from its own `seed`.
"""

import numpy as np

from minidl import random as _random
from minidl.tensor import Tensor


def default_collate(examples):
    """A list of examples (tuples of arrays/numbers) -> a tuple of batched Tensors.

    Arrays keep their dtype, except that integers become int64 (class indices, as PyTorch);
    Python floats become float32 and Python ints int64.
    """
    first = examples[0]
    if isinstance(first, (tuple, list)):
        return tuple(default_collate([e[i] for e in examples]) for i in range(len(first)))
    if isinstance(first, bool):
        return Tensor(np.array(examples, dtype=np.bool_))
    if isinstance(first, float):
        return Tensor(np.array(examples, dtype=np.float32))
    return _to_tensor(np.stack([e.data if isinstance(e, Tensor) else np.asarray(e) for e in examples]))


def _to_tensor(array):
    if array.dtype.kind in "iu" and array.dtype != np.int64:
        array = array.astype(np.int64)
    return Tensor(array)


def _can_get_batches(dataset):
    """Whether the dataset hands out whole batches of arrays with get_batch(indices) (TensorDataset does)."""
    return hasattr(dataset, "get_batch") and getattr(dataset, "supports_batches", True)


class DataLoader:
    """for x, y in DataLoader(dataset, batch_size=64, shuffle=True): ...

    batch_size   examples per batch (the last one may be smaller unless drop_last=True)
    shuffle      a new random order every epoch
    seed         shuffle with a private generator seeded with this, instead of minidl's global one
    collate_fn   turns a list of examples into a batch (default: stack into Tensors)
    sampler      an iterable of indices with a len() that gives the order instead (e.g. a
                 minidl.distributed.DistributedSampler: this rank's share of the data)
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None, collate_fn=None, sampler=None):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if len(dataset) == 0:
            raise ValueError("DataLoader: the dataset is empty")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: give either shuffle=True or a sampler, not both (the sampler sets the order)")
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.collate_fn = collate_fn
        self._own_generator = np.random.default_rng(seed) if seed is not None else None

    def __len__(self):
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self):
        if self.sampler is not None:
            return np.fromiter(self.sampler, dtype=np.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        generator = self._own_generator if self._own_generator is not None else _random.generator()
        return generator.permutation(n)

    def __iter__(self):
        order = self._order()  # drawn when iteration starts: one permutation per epoch
        fast = self.collate_fn is None and _can_get_batches(self.dataset)
        for b in range(len(self)):
            indices = order[b * self.batch_size : (b + 1) * self.batch_size]
            if fast:
                yield tuple(_to_tensor(np.ascontiguousarray(c)) for c in self.dataset.get_batch(indices))
            else:
                examples = [self.dataset[int(i)] for i in indices]
                yield (self.collate_fn or default_collate)(examples)

    def state_dict(self):
        """The private shuffling generator's state (empty when shuffling uses minidl's global generator)."""
        if self._own_generator is None:
            return {}
        return {"generator": self._own_generator.bit_generator.state}

    def load_state_dict(self, state):
        if state.get("generator") is not None:
            if self._own_generator is None:
                self._own_generator = np.random.default_rng()
            self._own_generator.bit_generator.state = state["generator"]
