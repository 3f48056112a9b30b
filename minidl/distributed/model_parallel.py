"""Model parallelism: a model's layers split over ranks (a pipeline), and a Linear split by its outputs.

"Distribute the model, keep the data local." Two ways to cut a model:

- Between layers (Pipeline): rank k holds a contiguous group of layers, a *stage*. A batch
  flows forward through the stages and its gradient flows back. Alone that keeps one rank
  busy at a time; cutting the batch into M micro-batches (GPipe) lets stage k work on
  micro-batch m while stage k+1 works on micro-batch m-1. All M forwards, then all M
  backwards; the gradients of the micro-batches add up in .grad, each micro-batch's mean
  loss weighted by its share of the batch, so one step equals a step on the whole batch.
  Idle time ("bubble") is about (K-1)/(M+K-1) of a step for K stages; each stage measures the
  time it waits for its neighbours (wait_seconds, of step_seconds in train_step).

- Inside a layer (ColumnParallelLinear), the DistBelief picture: a Linear's output units are
  split over the ranks, rank r computing y_r = x·W_rᵀ + b_r for its rows W_r of W. Only the
  activations that cross a partition are sent: the y_r are all-gathered into y, and in
  backward the partial input gradients dX_r = dY_r·W_r are summed (allreduce) into dX.

"Model parallelism means you need to exchange activations between workers: O(batch size ×
# network edges) values sent at every step" - the bytes counted here are those activations.
"""

import time

import numpy as np

from minidl import nn, ops
from minidl.autograd import Function, no_grad
from minidl.distributed.collectives import chunk_bounds
from minidl.distributed.comm import world
from minidl.nn.parameter import Parameter
from minidl.tensor import Tensor

_FORWARD_TAG, _BACKWARD_TAG = 41000, 42000
_MAX_DIMS = 7


# ---------------------------------------------------------------------------
# Pipeline of stages
# ---------------------------------------------------------------------------
def partition_layers(layers, parts):
    """Cut a list of layers into `parts` contiguous groups with about equal numbers of parameters.

    A layer without parameters (an activation, a pooling) stays with the layer before it,
    so a cut never separates a Linear from its ReLU. Returns a list of (start, end).
    """
    blocks = []  # (start, end, parameter count): a layer with parameters and what follows it
    for i, layer in enumerate(layers):
        count = sum(p.array.size for p in layer.parameters())
        if blocks and count == 0:
            start, _, total = blocks[-1]
            blocks[-1] = (start, i + 1, total)
        else:
            blocks.append((i, i + 1, count))
    if len(blocks) < parts:
        raise ValueError(f"Pipeline: the model has {len(blocks)} blocks of layers, too few for {parts} stages")
    # Greedy: close a stage once it holds its fair share of what is left.
    bounds, start_block, remaining = [], 0, sum(b[2] for b in blocks)
    for stage in range(parts):
        stages_left = parts - stage
        if stages_left == 1:
            end_block = len(blocks)
        else:
            share, taken, end_block = remaining / stages_left, 0, start_block
            max_end = len(blocks) - (stages_left - 1)  # leave at least one block per later stage
            while end_block < max_end and (end_block == start_block or taken + blocks[end_block][2] / 2 <= share):
                taken += blocks[end_block][2]
                end_block += 1
            remaining -= taken
        bounds.append((blocks[start_block][0], blocks[end_block - 1][1]))
        start_block = end_block
    return bounds


class Pipeline:
    """Train an nn.Sequential as a pipeline of stages, one per rank (GPipe micro-batching).

        pipe = Pipeline(model, comm, micro_batches=4)    # every rank builds the same model
        loss = pipe.train_step(x, y, loss_fn)            # x on rank 0, y on the last rank
        optimizer(pipe.stage.parameters()).step()        # each rank updates its own layers

    train_step returns (loss, scores) on the last stage, (None, None) elsewhere.
    """

    def __init__(self, model, comm=None, micro_batches=4, bounds=None):
        if not isinstance(model, nn.Sequential):
            raise TypeError(f"Pipeline: expected an nn.Sequential to cut into stages, got {type(model).__name__}")
        if micro_batches < 1:
            raise ValueError(f"Pipeline: micro_batches must be >= 1, got {micro_batches}")
        self.comm = comm if comm is not None else world()
        layers = list(model)
        self.bounds = bounds if bounds is not None else partition_layers(layers, self.comm.size)
        start, end = self.bounds[self.comm.rank]
        self.stage = nn.Sequential(*layers[start:end])
        self.micro_batches = micro_batches
        self.first = self.comm.rank == 0
        self.last = self.comm.rank == self.comm.size - 1
        self._sends = []
        # Time inside train_step, and the part of it spent waiting for a neighbour's activations or
        # gradients: the pipeline's bubble on this stage (plus the transfers), measured, not modelled.
        self.step_seconds = 0.0
        self.wait_seconds = 0.0
        self._waited = 0.0

    def parameters(self):
        return self.stage.parameters()

    def train(self, mode=True):
        self.stage.train(mode)
        return self

    def eval(self):
        return self.train(False)

    # ------------------------------------------------------------ moving activations
    def _send(self, array, dest, tag):
        array = np.ascontiguousarray(array, dtype=np.float32)
        header = np.zeros(_MAX_DIMS + 1, np.int64)
        header[0] = array.ndim
        header[1 : 1 + array.ndim] = array.shape
        self._sends.append((self.comm.isend(header, dest, tag), header))
        self._sends.append((self.comm.isend(array, dest, tag + 1), array))

    def _receive(self, source, tag, what):
        start = time.perf_counter()
        header = self.comm.recv(np.empty(_MAX_DIMS + 1, np.int64), source, tag, what=what)
        shape = tuple(int(d) for d in header[1 : 1 + header[0]])
        array = self.comm.recv(np.empty(shape, np.float32), source, tag + 1, what=what)
        self._waited += time.perf_counter() - start
        return array

    def _finish_sends(self):
        self.comm.wait_all([r for r, _ in self._sends], "pipeline sends", peers=None)
        self._sends = []

    # ------------------------------------------------------------ one step
    def _split(self, batch):
        return np.array_split(batch, self.micro_batches) if batch is not None else [None] * self.micro_batches

    def forward_micro_batches(self, x):
        """Forward every micro-batch through this stage. Returns [(input tensor, output tensor)]."""
        rank = self.comm.rank
        results = []
        for m, chunk in enumerate(self._split(x)):
            if self.first:
                inp = Tensor._wrap(np.ascontiguousarray(chunk))
            else:
                received = self._receive(rank - 1, _FORWARD_TAG + 2 * m, f"pipeline forward, micro-batch {m}")
                inp = Tensor._wrap(received, requires_grad=True)
            out = self.stage(inp)
            if not self.last:
                self._send(out.array, rank + 1, _FORWARD_TAG + 2 * m)
            results.append((inp, out))
        return results

    def train_step(self, x, y, loss_fn):
        """One forward and backward of the whole batch, micro-batch by micro-batch; fills each stage's .grad."""
        start, waited_before = time.perf_counter(), self._waited
        rank = self.comm.rank
        results = self.forward_micro_batches(x)
        total_loss, scores = None, None
        if self.last:
            targets = self._split(y)
            batch = sum(len(t) for t in targets)
            losses = [loss_fn(out, Tensor._wrap(t)) * (len(t) / batch) for (_, out), t in zip(results, targets)]
            total_loss = sum(loss.item() for loss in losses)
            scores = np.concatenate([out.array for _, out in results])
        for m in reversed(range(self.micro_batches)):
            inp, out = results[m]
            if self.last:
                losses[m].backward()
            else:
                grad = self._receive(rank + 1, _BACKWARD_TAG + 2 * m, f"pipeline backward, micro-batch {m}")
                out.backward(Tensor._wrap(grad))
            if not self.first:
                self._send(inp.grad.array, rank - 1, _BACKWARD_TAG + 2 * m)
        self._finish_sends()
        self.step_seconds += time.perf_counter() - start
        self.wait_seconds += self._waited - waited_before
        return total_loss, scores

    def predict(self, x):
        """Forward only (no graph): the scores on the last stage, None elsewhere."""
        with no_grad():
            results = self.forward_micro_batches(x)
        self._finish_sends()
        if not self.last:
            return None
        return np.concatenate([out.array for _, out in results])


# ---------------------------------------------------------------------------
# A Linear split over ranks by output units
# ---------------------------------------------------------------------------
class _CopyToRanks(Function):
    """Forward: x as it is (every rank has all of it). Backward: the sum of the ranks' partial dX."""

    supports_double_backward = False  # backward talks MPI on arrays: not differentiable again
    is_view = True  # the output is x itself

    def forward(self, x, comm):
        self.comm = comm
        return x

    def backward(self, grad):
        total = np.array(grad.array, dtype=np.float32)
        self.comm.allreduce(total, what="ColumnParallelLinear backward (sum of dX)")
        return Tensor._wrap(total)


class _GatherColumns(Function):
    """Forward: every rank's columns y_r side by side into y. Backward: this rank's columns of dY."""

    supports_double_backward = False

    def forward(self, y_local, comm, bounds):
        self.comm, self.bounds = comm, bounds
        widest = max(end - start for start, end in bounds)
        padded = np.zeros(y_local.shape[:-1] + (widest,), np.float32)
        padded[..., : y_local.shape[-1]] = y_local
        gathered = comm.allgather(padded, what="ColumnParallelLinear forward (allgather of y)")
        return np.concatenate([gathered[r][..., : end - start] for r, (start, end) in enumerate(bounds)], axis=-1)

    def backward(self, grad):
        start, end = self.bounds[self.comm.rank]
        return Tensor._wrap(np.ascontiguousarray(grad.array[..., start:end]))


class ColumnParallelLinear(nn.Module):
    """y = x·Wᵀ + b with W's rows (the output units) split over the ranks; every rank gets all of y.

    Rank r holds rows chunk_bounds(out_features, N)[r] of W and b. Build it from a Linear
    (`ColumnParallelLinear.from_linear(linear, comm)`) to start from the same weights a single
    process would have.
    """

    def __init__(self, in_features, out_features, comm=None, bias=True, source=None):
        super().__init__()
        comm = comm if comm is not None else world()
        if out_features < comm.size:
            raise ValueError(
                f"ColumnParallelLinear: {out_features} output units cannot be split over {comm.size} ranks"
            )
        self.comm = comm
        self.in_features, self.out_features = in_features, out_features
        self.bounds = chunk_bounds(out_features, comm.size)
        start, end = self.bounds[comm.rank]
        # Initialized as one Linear would be (or taken from `source`), then cut: the same start as one process.
        full = source if source is not None else nn.Linear(in_features, out_features, bias=bias)
        self.weight = Parameter(full.weight.array[start:end].copy())
        self.bias = Parameter(full.bias.array[start:end].copy()) if bias else None

    @classmethod
    def from_linear(cls, linear, comm=None):
        """This rank's rows of an existing nn.Linear."""
        return cls(linear.in_features, linear.out_features, comm, bias=linear.bias is not None, source=linear)

    def forward(self, x):
        x = _CopyToRanks.apply(x, comm=self.comm)
        y_local = ops.linear(x, self.weight, self.bias)
        return _GatherColumns.apply(y_local, comm=self.comm, bounds=self.bounds)

    def full_weight(self):
        """The whole W (out_features, in_features), gathered from every rank (all ranks get it)."""
        return self._gather_rows(self.weight.array)

    def full_bias(self):
        return None if self.bias is None else self._gather_rows(self.bias.array)

    def _gather_rows(self, rows):
        widest = max(end - start for start, end in self.bounds)
        padded = np.zeros((widest,) + rows.shape[1:], np.float32)
        padded[: rows.shape[0]] = rows
        gathered = self.comm.allgather(padded, what="ColumnParallelLinear gather of the weights")
        return np.concatenate([gathered[r][: end - start] for r, (start, end) in enumerate(self.bounds)])

    def extra_repr(self):
        start, end = self.bounds[self.comm.rank]
        return f"in_features={self.in_features}, out_features={self.out_features} (rows {start}:{end} here)"
