"""Optimizer: the base class that walks parameter groups and applies an update rule in place.

A parameter group is a dict {"params": [...], "lr": ..., other hyperparameters}; giving
several groups lets layers learn at different rates. Updates run under no_grad on
`p.array` and bump the parameter's version counter, so a backward pass recorded before
the update (and not yet run) fails loudly instead of using stale values.
"""

import numpy as np

from minidl.autograd import enable_grad, no_grad
from minidl.backend import get_kernels
from minidl.tensor import Tensor


class Optimizer:
    """Subclasses set `defaults` (hyperparameters) and implement update(param, grad, state, group).

    `state_keys` names the per-parameter state a subclass keeps ("momentum_buffer", ...), so that
    load_state_dict can refuse the state of another kind of optimizer; None skips that check.
    """

    state_keys = None
    # Options added after the first release, with the value that means "off": a state saved
    # before they existed loads as if they were off.
    added_hyperparameters = {}

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
                    with no_grad():
                        p.grad.detach().zero_()  # in place, on whatever device the gradient lives

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
                    else:
                        _state_to_device(state, p)
                    self.update(p.array, p.grad.array, state, group)
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
                    state[index_of[id(p)]] = {k: _host_copy(v) for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and per-parameter state saved by state_dict().

        The state must come from the same kind of optimizer over parameters of the same shapes:
        the same number of groups and parameters, the same hyperparameter names (plus a scheduler's
        "initial_lr"), valid values, and only the per-parameter state this optimizer keeps.
        Everything is checked before anything changes; the error names what does not match.
        """
        groups = self._check_saved_groups(state_dict["param_groups"])
        params = [p for group in self.param_groups for p in group["params"]]
        indices = [i for saved in state_dict["param_groups"] for i in saved["params"]]
        saved_state = {int(k): v for k, v in state_dict["state"].items()}
        new_state = {}
        for index, p in zip(indices, params):
            if index in saved_state:
                new_state[p] = self._checked_param_state(saved_state[index], index, p)
        for group, checked in zip(self.param_groups, groups):
            group.update(checked)
        self.state = new_state

    def _check_saved_groups(self, saved_groups):
        """The saved groups' hyperparameters (without "params"), checked against this optimizer's groups."""
        name = type(self).__name__
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the state has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        checked = []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {i} has {len(saved['params'])} parameters in the state "
                    f"but {len(group['params'])} in this optimizer"
                )
            checked.append(self._checked_hyperparameters(saved, group, i))
        return checked

    def _checked_hyperparameters(self, saved, group, i):
        """Group i's saved hyperparameters: the same names as this optimizer's, with valid values."""
        name = type(self).__name__
        hyper = {k: v for k, v in saved.items() if k != "params"}
        for key, value in self.added_hyperparameters.items():  # state saved before these options existed
            hyper.setdefault(key, value)
        unknown = sorted(set(hyper) - set(self.defaults) - {"initial_lr"})
        missing = sorted(set(self.defaults) - set(hyper))
        problems = [f"has hyperparameters {unknown} that {name} does not know"] if unknown else []
        problems += [f"lacks hyperparameters {missing}"] if missing else []
        if problems:
            raise ValueError(
                f"{name}.load_state_dict: group {i} {' and '.join(problems)}; was the state saved by another "
                f"optimizer? {name} expects {sorted(self.defaults)}"
            )
        for key, default in self.defaults.items():
            if isinstance(default, tuple):
                hyper[key] = tuple(hyper[key])  # e.g. Adam's betas, which JSON stores as a list
        try:
            self.check_hyperparameters({**group, **hyper})
        except ValueError as e:
            raise ValueError(f"{name}.load_state_dict: group {i}: {e}") from None
        return hyper

    def _checked_param_state(self, saved, index, p):
        """Our own copy of one parameter's saved state, in its dtype, after checking keys and shapes."""
        name = type(self).__name__
        if self.state_keys is not None and not set(saved) <= set(self.state_keys):
            raise ValueError(
                f"{name}.load_state_dict: parameter {index} has state {sorted(saved)}, "
                f"but {name} keeps {sorted(self.state_keys)} (expected a subset); was it saved by another optimizer?"
            )
        entry = {}
        for key, value in saved.items():
            if isinstance(value, np.ndarray) and value.ndim > 0:
                if value.shape != p.shape:
                    raise ValueError(
                        f"{name}.load_state_dict: state {key!r} of parameter {index} has shape {value.shape}, "
                        f"but the parameter has shape {p.shape}"
                    )
                value = np.array(value, dtype=p.dtype)
            elif isinstance(value, np.ndarray):
                value = value.item()
            entry[key] = value
        return entry

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"


def _host_copy(value):
    """A state value as saved: arrays copied to NumPy (from any device), numbers as they are."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if hasattr(value, "to_numpy"):  # a DeviceArray
        return value.to_numpy()
    return value


def _state_to_device(state, p):
    """Move a parameter's state arrays to the device it now lives on (after Module.to or load_state_dict)."""
    for key, value in state.items():
        if type(value) is not type(p.array) and getattr(value, "ndim", 0) > 0:
            host = _host_copy(value)
            state[key] = get_kernels(p.device).from_numpy(np.ascontiguousarray(host, dtype=p.dtype))
