"""ZeroRedundancyOptimizer: the ranks of one machine share one copy of the weights and split the update.

With DistributedDataParallel every rank keeps the whole model and applies the whole
optimizer step to it, N times the same arithmetic on N copies. ZeRO (Rajbhandari et al.,
2020) shards the optimizer instead: rank r updates only its slice of the parameters (and
keeps momentum, Adam moments... for that slice only), then the ranks exchange the updated
slices. On one machine the exchange can be skipped altogether: the weights live in shared
memory (shared_memory.py), one copy that every rank reads in its forward pass, and rank r
writes slice r in place.

A step, rank r of N:

    backward              this rank's gradient, in its own arrays, as usual
    reduce-scatter        publish the slices others own; fence; average slice r   (shared_memory.py)
    update slice r        the wrapped optimizer's own update rule, on slice r of the weights
    fence                 every slice is updated before anyone's next forward reads the weights

so each rank does 1/N of the update, and no averaged gradient is copied anywhere. The
result is the one DistributedDataParallel gives (the same averages, the same update rule).

    model = DistributedDataParallel(model, algorithm="shared")
    optimizer = ZeroRedundancyOptimizer(model, optim.SGD, lr=0.1, momentum=0.9)
    loss = loss_fn(model(x), y); optimizer.zero_grad(); loss.backward()
    optimizer.step()                      # no model.synchronize(): the step averages

As in PyTorch's ZeroRedundancyOptimizer (which takes the parameters and an optimizer class;
this one takes the DDP model, whose window the weights move into). Since the weights are
shared, change them only through this optimizer: an in-place change on every rank
(`p.array *= 0.5`) would be applied N times to the one copy. After step(), .grad is still
this rank's own gradient: the averaged one exists only slice by slice. The optimizer must
update each value from its own gradient and state alone (SGD, Adam, AdaGrad, RMSProp), not
from whole-vector quantities (LBFGS), which no rank sees here; the one such quantity it supports
is the gradient's norm, for clipping (max_grad_norm).
"""

import math

import numpy as np

from minidl.autograd import enable_grad, no_grad
from minidl.optim.clip import _sum_of_squares as sum_of_squares  # clip_grad_norm_'s, so the norms agree
from minidl.optim.optimizer import Optimizer


class ZeroRedundancyOptimizer:
    """Shard `optimizer_class(model.parameters(), **defaults)` over the ranks of `model` (see the module docstring).

    model             a DistributedDataParallel with algorithm='shared'
    optimizer_class   an elementwise minidl.optim optimizer class (SGD, Adam, AdaGrad, RMSProp), made
                      over the model's parameters with **defaults; or such an optimizer already made
                      over them (its parameter groups and hyperparameters are kept; it must not have
                      stepped yet)
    max_grad_norm     if given, clip the averaged gradient to this 2-norm before each update, as
                      clip_grad_norm_ would (no rank holds the whole average, so the square sums of
                      the slices are added up over the ranks); `last_grad_norm` is the norm before
    param_groups      the wrapped optimizer's, so learning-rate schedulers work on this object
    """

    def __init__(self, model, optimizer_class, max_grad_norm=None, **defaults):
        from minidl.distributed.ddp import DistributedDataParallel

        if not isinstance(model, DistributedDataParallel) or model._shared is None:
            raise TypeError(
                "ZeroRedundancyOptimizer: expected a DistributedDataParallel(model, algorithm='shared') "
                f"(its ranks share the weights' memory), got {type(model).__name__}"
                + (f" with algorithm={model.algorithm!r}" if isinstance(model, DistributedDataParallel) else "")
            )
        if model.sharded is not None:
            raise ValueError("ZeroRedundancyOptimizer: this model's update is already sharded by another optimizer")
        made = optimizer_class if isinstance(optimizer_class, Optimizer) else None
        if made is not None:
            optimizer_class = type(made)
            if defaults:
                raise TypeError(
                    "ZeroRedundancyOptimizer: hyperparameters go to the optimizer, not here, when it is made"
                )
            if made.state:
                raise ValueError("ZeroRedundancyOptimizer: the optimizer has stepped already; wrap it before training")
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, Optimizer)):
            raise TypeError(
                "ZeroRedundancyOptimizer: optimizer_class must be a minidl.optim class or optimizer, "
                f"got {optimizer_class!r}"
            )
        if optimizer_class.step is not Optimizer.step:
            raise ValueError(
                f"ZeroRedundancyOptimizer: {optimizer_class.__name__} steps with whole-vector quantities "
                "(line searches, dot products), which no rank sees when the update is split into slices; "
                "use an elementwise optimizer (SGD, Adam, AdaGrad, RMSProp)"
            )
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"ZeroRedundancyOptimizer: max_grad_norm must be > 0, got {max_grad_norm}")
        self.max_grad_norm, self.last_grad_norm = max_grad_norm, None
        self.model = model
        self.params = model._params
        self.optimizer = made if made is not None else optimizer_class(self.params, **defaults)
        owned = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
        if owned != {id(p) for p in self.params}:
            raise ValueError(
                "ZeroRedundancyOptimizer: the optimizer must hold exactly the model's parameters that require grad"
            )
        self._group_of = [self._group(p) for p in self.params]
        shared = model._shared
        self._pieces = list(shared.layout.pieces(model.comm.rank))  # (parameter index, start, end) of my slice
        self._state = {}  # (parameter index, start) -> the update's state for that piece
        self._move_weights_into(shared)
        # Each piece's weights and averaged gradient, as flat views of the window (made once).
        averaged = shared.layout.views(shared.averaged, [(size,) for size in shared.layout.sizes])
        self._slices = [
            (i, start, self.params[i].array.reshape(-1)[start:end], averaged[i][start:end])
            for i, start, end in self._pieces
        ]
        model.sharded = self
        self.steps = 0

    def _group(self, param):
        for group in self.optimizer.param_groups:
            if any(p is param for p in group["params"]):
                return group
        raise ValueError("ZeroRedundancyOptimizer: a parameter of the model is in no parameter group")

    def _move_weights_into(self, shared):
        """Make every parameter's array a view of the window's one copy of the weights (rank 0's values)."""
        views = shared.layout.views(shared.weights, [p.shape for p in self.params])
        if self.model.comm.rank == 0:
            for p, view in zip(self.params, views):
                view[...] = p.array
        shared.fence("ZeroRedundancyOptimizer: sharing the weights")
        for p, view in zip(self.params, views):
            p.array = view
            p._bump_version()

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def defaults(self):
        return self.optimizer.defaults

    def zero_grad(self, set_to_none=True):
        self.optimizer.zero_grad(set_to_none)

    def step(self, closure=None):
        """Average this rank's slice of the gradients, update that slice of the weights, wait for the others."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        model, shared = self.model, self.model._shared
        model.comm.arrive(model.steps)  # a timed-out fence names the ranks that never got here
        what = f"ZeroRedundancyOptimizer step {self.steps}"
        arrays = [None if p.grad is None else p.grad.array for p in self.params]
        model.comm.bytes_sent += shared.reduce_scatter(arrays, shared.averaged, what)
        if self.max_grad_norm is not None:
            self._clip(what)
        with no_grad():
            for i, start, weights, grad in self._slices:
                state = self._state.setdefault((i, start), {})
                self.optimizer.update(weights, grad, state, self._group_of[i])
            shared.fence(what + " (every slice updated)")
        for p in self.params:
            p._bump_version()  # the values changed in place: backward through old graphs must fail
        model.steps += 1
        self.steps += 1
        return loss

    def _clip(self, what):
        """Scale this rank's averaged slice by min(1, max_grad_norm / (‖g‖ + 1e-6)), ‖g‖ over every slice."""
        mine = [grad for _, _, _, grad in self._slices]
        square_sum = sum(sum_of_squares(g) for g in mine)
        total = math.sqrt(self.model.comm.allreduce(np.array([square_sum]), what=what + " (gradient norm)")[0])
        self.last_grad_norm = total
        coefficient = self.max_grad_norm / (total + 1e-6)
        if coefficient < 1 or math.isnan(coefficient):  # as clip_grad_norm_: NaN spreads to every value
            with np.errstate(invalid="ignore"):
                for g in mine:
                    g *= np.float32(coefficient)

    def state_dict(self):
        """The whole optimizer's state, as the wrapped optimizer's state_dict() would give (collective: every rank).

        Each rank holds the state of its slice; the slices are gathered and put together, so
        the result loads into a plain optimizer, or into this one on any number of ranks.
        """
        comm = self.model.comm
        everyone = None
        for root in range(comm.size):  # every rank gets every slice's state (point to point, with timeouts)
            got = comm.gather_object(self._state, root=root, what="ZeroRedundancyOptimizer.state_dict")
            everyone = got if root == comm.rank else everyone
        full = {}
        for pieces in everyone:
            for (i, start), state in pieces.items():
                size = self.params[i].array.size
                entry = full.setdefault(i, {})
                for name, value in state.items():
                    if isinstance(value, np.ndarray) and value.ndim == 1:  # per value: this piece's part
                        whole = entry.setdefault(name, np.zeros(size, value.dtype))
                        whole[start : start + value.size] = value
                    else:  # a step count: the same in every piece
                        entry[name] = value
        for i, entry in full.items():
            for name, value in entry.items():
                if isinstance(value, np.ndarray) and value.size == self.params[i].array.size:
                    entry[name] = value.reshape(self.params[i].shape)
        saved = self.optimizer.state_dict()
        saved["state"] = full
        return saved

    def load_state_dict(self, state_dict):
        """Load a state saved by state_dict() (or by the plain optimizer): each rank keeps its slice of it."""
        self.optimizer.load_state_dict(state_dict)  # checks it and sets the hyperparameters
        self._state = {}
        for i, start, end in self._pieces:
            saved = self.optimizer.state.get(self.params[i])
            if saved is None:
                continue
            piece = {}
            for name, value in saved.items():
                if isinstance(value, np.ndarray) and value.shape == self.params[i].shape:
                    piece[name] = np.ascontiguousarray(value.reshape(-1)[start:end])
                else:
                    piece[name] = value
            self._state[(i, start)] = piece
        self.optimizer.state = {}  # the wrapped optimizer never steps: its state lives in the pieces

    def __repr__(self):
        comm = self.model.comm
        return f"ZeroRedundancyOptimizer({type(self.optimizer).__name__}, rank {comm.rank} of {comm.size})"
