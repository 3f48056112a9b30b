"""The real learning problem behind a simulation: data shards, a minidl model, real gradients, evaluation.

Simulated time is made up; the gradients are not. Every simulated worker computes the
gradient of a real minidl model (minidl.training's recipes: the mlp on the digits by
default) on minibatches from its own shard of the training set, on the parameters it pulled.

Stacking workers that share parameters. In synchronous SGD all N workers compute on the same
version; one forward/backward per worker would cost N small passes, each dominated by
per-op overhead. Stacking their minibatches into one batch of N·B rows costs little more
than one pass - but the gradient of the stacked mean loss is the *mean* of the N gradients,
and the server's rules need each one (they average only the first N of N + b, drop late
ones, record each one's staleness). For a model whose parameters all sit in Linear layers
(with row-wise layers between them: ReLU, Tanh, Flatten, Dropout), each worker's gradient
can still be read off one pass. A Linear computes y = x·Wᵀ + b row by row, so

    ∂L/∂W = Σ_rows δ_rowᵀ · x_row,        δ = ∂L/∂y

and worker k's gradient is the same sum over its own rows only. So: one forward pass over
the stacked batch (a forward hook keeps each Linear's input x and output y), one backward
pass of L = Σ_k mean-loss_k = (1/B)·Σ_rows loss_row that stops at the outputs y
(minidl.grad(L, [y₁, y₂, ...]) gives every δ), then per layer one batched matrix product
δ.reshape(K, B, out)ᵀ @ x.reshape(K, B, in) -> (K, out, in): K per-worker gradients. Other
models (cnn, lstm, embeddings) compute one pass per worker.

The sparse task ('embedding' on 'topics') is for Hogwild-style runs: each example is a bag
of 8 word ids out of 10,000; a worker reads only the embedding rows its batch uses and
writes back only their gradient.
"""

import time

import numpy as np

import minidl
from minidl import nn
from minidl.data import TensorDataset
from minidl.distributed.rules import SparseRows

ROW_WISE = (nn.Flatten, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity, nn.Sequential)


class BagMean(nn.Module):
    """(batch, ids, dim) -> (batch, dim): the mean of a bag of embeddings (a bag-of-words document vector)."""

    def forward(self, vectors):
        return vectors.mean(axis=1)


def sparse_topics(num_examples=5000, vocabulary=10000, classes=10, ids_per_example=8, topical=0.5, seed=0):
    """A sparse classification task: (train, test) TensorDatasets of (word ids (8,), class).

    Each class owns vocabulary/classes words; an example draws each of its ids from its class's
    words with probability `topical` (Zipf-distributed, so a few words are frequent: those rows
    are where updates collide), else uniformly from the whole vocabulary (noise). 80/20 split.
    """
    rng = np.random.default_rng(seed)
    per_class = vocabulary // classes
    labels = rng.integers(classes, size=num_examples)
    zipf = 1.0 / np.arange(1, per_class + 1)
    zipf /= zipf.sum()
    topic_word = rng.choice(per_class, size=(num_examples, ids_per_example), p=zipf) + per_class * labels[:, None]
    noise_word = rng.integers(vocabulary, size=(num_examples, ids_per_example))
    ids = np.where(rng.random((num_examples, ids_per_example)) < topical, topic_word, noise_word).astype(np.int64)
    n_test = num_examples // 5
    return TensorDataset(ids[n_test:], labels[n_test:]), TensorDataset(ids[:n_test], labels[:n_test])


def embedding_model(vocabulary, classes, dim=16):
    """Embedding (vocabulary x dim) -> mean over the bag -> Linear(dim, classes)."""
    model = nn.Sequential(nn.Embedding(vocabulary, dim), BagMean(), nn.Linear(dim, classes))
    nn.init.normal_(model[0].weight, std=0.1)
    nn.init.small_last_layer_(model[2], scale=0.1)
    return model


class Workload:
    """Data, model and gradients for `num_workers` simulated workers.

    params          the model's initial parameters (float32 arrays, in model.parameters() order)
    sparse_params   indices of parameters a Hogwild worker reads and writes by rows (the embedding)
    next_batch(w)   worker w's next minibatch: indices into the training set (always batch_size of them)
    gradients(params, batches)   one gradient per batch, all on the same parameters (stacked if it can)
    evaluate(params)             (test loss, test accuracy)
    """

    def __init__(self, model="mlp", dataset="digits", hidden=32, batch_size=16, num_workers=1, seed=0, stack=True):
        from minidl import training
        from minidl.training.recipes import describe_data

        self.model_name, self.dataset_name = model, dataset
        self.batch_size = batch_size
        minidl.manual_seed(seed)  # the model's initial weights
        if model == "embedding":
            if dataset != "topics":
                raise ValueError(f"model 'embedding' trains on dataset 'topics' (sparse word ids), not {dataset!r}")
            train, test = sparse_topics()
            self.model = embedding_model(10000, 10)
        else:
            if dataset == "topics":
                raise ValueError(f"dataset 'topics' is word ids: use model 'embedding', not {model!r}")
            train, test = training.load_data(dataset)
            shape, classes = describe_data(train, test)
            self.model = training.make_model(model, shape, classes, hidden=hidden, dropout=0.0)
        self.model.train()
        self.parameters = list(self.model.parameters())
        self._storage = [p.array for p in self.parameters]  # the model's own (aligned) arrays
        self.params = [p.array.copy() for p in self.parameters]
        self.shapes = [p.shape for p in self.params]
        self.sparse_params = [
            i for i, p in enumerate(self.parameters) if any(p is m.weight for m in _modules(self.model, nn.Embedding))
        ]
        self.x_train, self.y_train = _arrays(train)
        self.x_test, self.y_test = _arrays(test)
        self.train_size = len(self.y_train)
        self.stackable = stack and _stackable(self.model)
        self._linears = {id(m): m for m in _modules(self.model, nn.Linear)}
        self._index = {id(p): i for i, p in enumerate(self.parameters)}
        self._captured = None
        if self.stackable:
            for module in self._linears.values():
                module.register_forward_hook(self._capture)
        self._make_shards(num_workers, seed)
        self.clock = {"gradients": Stopwatch(), "evaluation": Stopwatch()}  # for the benchmark only
        self.passes = 0

    # ------------------------------------------------------------ data shards
    def _make_shards(self, num_workers, seed):
        """Worker w gets a contiguous slice of one shuffled order (at least a batch: shards overlap when
        workers x batch_size exceeds the data), and reads it in its own shuffled order, epoch after epoch."""
        n = self.train_size
        order = np.random.default_rng([seed, 7]).permutation(n)
        size = max(-(-n // num_workers), self.batch_size)
        self.shards = [order[(w * n // num_workers + np.arange(size)) % n] for w in range(num_workers)]
        self._streams = [np.random.default_rng([seed, 11, w]) for w in range(num_workers)]
        self._queues = [np.empty(0, np.int64) for _ in range(num_workers)]

    def next_batch(self, worker):
        queue = self._queues[worker]
        if len(queue) < self.batch_size:  # new passes over the shard, each in a new order (a few at once)
            shard = self.shards[worker]
            passes = max(1, 256 // len(shard))
            orders = self._streams[worker].permuted(np.tile(shard, (passes, 1)), axis=1).reshape(-1)
            queue = np.concatenate([queue, orders])
        self._queues[worker] = queue[self.batch_size :]
        return queue[: self.batch_size]

    def rows_needed(self, batch):
        """The embedding rows a batch looks up (sorted, distinct), for a Hogwild worker's sparse read."""
        return np.unique(self.x_train[batch])

    # ------------------------------------------------------------ gradients
    def gradients(self, params, batches):
        """[(grads, (examples, correct, loss sum))] for each batch, on parameters `params`.

        An entry of `params` may be (rows, values) for a sparse parameter: the rows a Hogwild
        worker read; its gradient is then a SparseRows over those rows.
        """
        with self.clock["gradients"]:
            if self.stackable and len(batches) > 1:
                return self._stacked(params, batches)
            return [self._one(params, batch) for batch in batches]

    def _load(self, params):
        for p, storage, value in zip(self.parameters, self._storage, params):
            if storage.shape == value.shape:
                p.array = storage
                storage[...] = value
            else:
                p.array = np.ascontiguousarray(value, dtype=np.float32)  # a sparse read: just the rows read

    def _one(self, params, batch):
        """One forward/backward on one batch: the plain way."""
        self.passes += 1
        x, y = self.x_train[batch], self.y_train[batch]
        reads = {i: p for i, p in enumerate(params) if isinstance(p, tuple)}
        if reads:  # a sparse read: the embedding table is just the rows read, ids renumbered into it
            ((i, (rows, values)),) = reads.items()
            x = np.searchsorted(rows, x)
            params = [values if j == i else p for j, p in enumerate(params)]
        self._load(params)
        scores = self.model(minidl.tensor(x))
        loss = minidl.cross_entropy(scores, minidl.tensor(y))
        grads = [g.array for g in minidl.grad(loss, self.parameters)]
        for i, (rows, _values) in reads.items():
            grads[i] = SparseRows(rows, grads[i])
        correct = int((scores.array.argmax(axis=1) == y).sum())
        return grads, (len(y), correct, float(loss.item()) * len(y))

    def _capture(self, module, args, output):
        if self._captured is not None:
            output.retain_grad()
            self._captured.append((module, args[0], output))

    def _stacked(self, params, batches):
        """K batches on the same parameters in one pass; each batch's own gradient (see the module docstring)."""
        self.passes += 1
        k, b = len(batches), self.batch_size
        rows = np.concatenate(batches)
        y = self.y_train[rows]
        self._load(params)
        self._captured = []
        try:
            scores = self.model(minidl.tensor(self.x_train[rows]))
        finally:
            captured, self._captured = self._captured, None
        losses = minidl.cross_entropy(scores, minidl.tensor(y), reduction="none")
        total = losses.sum() * (1.0 / b)  # Σ_k (mean loss of batch k): each row weighs 1/B, as in its own batch
        deltas = minidl.grad(total, [out for _, _, out in captured])
        grads = [np.zeros((k, *shape), np.float32) for shape in self.shapes]
        for (module, x, _), delta in zip(captured, deltas):
            x = x.array.reshape(k, -1, module.in_features)
            d = delta.array.reshape(k, -1, module.out_features)
            grads[self._index[id(module.weight)]] += np.matmul(d.transpose(0, 2, 1), x)
            if module.bias is not None:
                grads[self._index[id(module.bias)]] += d.sum(axis=1)
        loss_sums = losses.array.reshape(k, b).sum(axis=1)
        correct = (scores.array.argmax(axis=1) == y).reshape(k, b).sum(axis=1)
        return [([g[j] for g in grads], (b, int(correct[j]), float(loss_sums[j]))) for j in range(k)]

    # ------------------------------------------------------------ evaluation
    def evaluate(self, params):
        """(mean cross-entropy, accuracy) of `params` on the test set."""
        with self.clock["evaluation"], minidl.no_grad(), np.errstate(all="ignore"):
            self._load(params)
            scores = self.model(minidl.tensor(self.x_test))
            loss = float(minidl.cross_entropy(scores, minidl.tensor(self.y_test)).item())
        accuracy = float((scores.array.argmax(axis=1) == self.y_test).mean())
        return loss, accuracy

    def measure_step_seconds(self, repeats=30):
        """The median wall-clock time of one worker's forward/backward on this machine (the 'measured' model)."""
        batch = np.arange(self.batch_size) % self.train_size
        params = [p.copy() for p in self.params]
        times = []
        for _ in range(repeats + 3):
            start = time.perf_counter()
            self._one(params, batch)
            times.append(time.perf_counter() - start)
        self.passes -= repeats + 3
        return float(np.median(times[3:]))  # the first passes warm up caches and allocators


class Stopwatch:
    """Wall-clock and CPU seconds spent inside `with stopwatch:` blocks (for the benchmark, never for
    simulated time). CPU time is what a shared machine's load does not inflate."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def _modules(model, kind):
    return [m for m in model.modules() if isinstance(m, kind)]


def _stackable(model):
    """True when every parameter is in a Linear and every other layer works row by row."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            continue
        if not isinstance(module, ROW_WISE):
            return False
    return True


def _arrays(dataset):
    if isinstance(dataset, TensorDataset):
        x, y = dataset.arrays[:2]
    else:
        x, y = dataset.get_batch(np.arange(len(dataset)))
    return np.ascontiguousarray(x), np.asarray(y, dtype=np.int64)
