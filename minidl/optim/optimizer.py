"""Optimizer: the base class that walks parameter groups and applies an update rule in place.

A parameter group is a dict {"params": [...], "lr": ..., other hyperparameters}; giving
several groups lets layers learn at different rates. Updates run under no_grad on
`p.data` and bump the parameter's version counter, so a backward pass recorded before
the update (and not yet run) fails loudly instead of using stale values.
"""

import numpy as np

from minidl.autograd import enable_grad, no_grad
from minidl.tensor import Tensor


class Optimizer:
    """Subclasses set `defaults` (hyperparameters) and implement update(param, grad, state, group)."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # parameter -> its per-parameter state (momentum buffers, step counts...)
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of tensors (e.g. model.parameters())")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add {"params": [...], hyperparameter overrides...}; missing hyperparameters take the defaults."""
        name = type(self).__name__
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: parameter {i} is a {type(p).__name__}, not a Tensor")
            if not p.is_leaf:
                raise ValueError(f"{name}: can only optimize leaf tensors; parameter {i} was computed by an op")
            if id(p) in seen:
                raise ValueError(f"{name}: parameter {i} (shape {p.shape}) appears in more than one parameter group")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise TypeError(f"{name}: unknown hyperparameters {sorted(unknown)}; expected {sorted(self.defaults)}")
        full = {**self.defaults, **group, "params": params}
        self.check_hyperparameters(full)
        self.param_groups.append(full)

    def check_hyperparameters(self, group):
        """Raise ValueError naming the bad hyperparameter; subclasses extend it."""
        if group["lr"] < 0:
            raise ValueError(f"{type(self).__name__}: lr must be >= 0, got {group['lr']}")
        if group.get("weight_decay", 0) < 0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, got {group['weight_decay']}")

    def zero_grad(self, set_to_none=True):
        """Forget the gradients of every parameter (backward accumulates into .grad)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.data[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient. closure() (optional) recomputes and returns the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state.get(p)
                    if state is None:
                        state = self.state[p] = {}
                    self.update(p.data, p.grad.data, state, group)
                    p._bump_version()  # the values changed in place: backward through old graphs must fail
        return loss

    def update(self, param, grad, state, group):
        raise NotImplementedError(f"{type(self).__name__} must implement update()")

    # ------------------------------------------------------------- saving
    def state_dict(self):
        """{"state": {index: {name: array or number}}, "param_groups": [{hyperparameters, "params": [indices]}]}.

        Parameters are referred to by their position across the groups, as in PyTorch, so the
        state can be loaded into a new optimizer over a new (same-shaped) model.
        """
        index_of = {}
        groups = []
        for group in self.param_groups:
            indices = []
            for p in group["params"]:
                index_of[id(p)] = len(index_of)
                indices.append(index_of[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": indices})
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index_of[id(p)]] = {
                        k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and per-parameter state; the groups must have the same sizes and shapes."""
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the state has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        params = []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {i} has {len(saved['params'])} parameters in the state "
                    f"but {len(group['params'])} in this optimizer"
                )
            params.extend(zip(saved["params"], group["params"]))
        new_state = {}
        saved_state = {int(k): v for k, v in state_dict["state"].items()}
        for index, p in params:
            if index not in saved_state:
                continue
            entry = {}
            for key, value in saved_state[index].items():
                if isinstance(value, np.ndarray) and value.ndim > 0:
                    if value.shape != p.shape:
                        raise ValueError(
                            f"{name}.load_state_dict: state {key!r} of parameter {index} has shape {value.shape}, "
                            f"but the parameter has shape {p.shape}"
                        )
                    value = np.array(value, dtype=p.dtype)  # our own copy, in the parameter's dtype
                elif isinstance(value, np.ndarray):
                    value = value.item()
                entry[key] = value
            new_state[p] = entry
        for saved, group in zip(saved_groups, self.param_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"
