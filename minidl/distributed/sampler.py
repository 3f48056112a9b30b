"""DistributedSampler: each rank's share of every epoch, so N ranks together see the data once.

Every rank draws the same permutation of the data set (seeded by seed + epoch) and takes
every N-th index starting at its rank:

    indices of rank r = permutation[r], permutation[r + N], permutation[r + 2N], ...

so the k-th batch of b indices on the N ranks together is exactly the k-th batch of N·b
indices that one process would take from the same permutation. That is why synchronous
data parallelism on N ranks with batch b follows the same path as one process with
batch N·b: averaging the N ranks' mean gradients gives the mean gradient of the N·b batch.
No MPI here: the sampler only needs its rank and the number of replicas.
"""

import numpy as np


class DistributedSampler:
    """for i in DistributedSampler(dataset, num_replicas=N, rank=r): ... (PyTorch's name and arguments)

    shuffle    a new permutation every epoch (call set_epoch(epoch) before each epoch)
    drop_last  drop the tail so every rank gets len(dataset) // N indices; otherwise the
               permutation is padded with its own first indices so that every rank gets
               ceil(len / N) (and the ranks' batch counts agree, as a collective needs)
    """

    def __init__(self, dataset, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=False):
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas}), got {rank}")
        n = len(dataset)
        if n < num_replicas and drop_last:
            raise ValueError(f"DistributedSampler: {n} examples cannot be split over {num_replicas} replicas")
        self.dataset_size = n
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        self.num_samples = n // num_replicas if drop_last else -(-n // num_replicas)

    def set_epoch(self, epoch):
        """Choose the epoch's permutation (the same on every rank, different every epoch)."""
        self.epoch = int(epoch)

    def indices(self):
        """This rank's indices for the current epoch, as an array."""
        n, total = self.dataset_size, self.num_samples * self.num_replicas
        if self.shuffle:
            order = np.random.default_rng((self.seed, self.epoch)).permutation(n)
        else:
            order = np.arange(n)
        if total > n:  # pad by repeating the start, so every rank has the same count
            order = np.concatenate([order, np.resize(order, total - n)])
        return order[:total][self.rank :: self.num_replicas]

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        return self.num_samples
