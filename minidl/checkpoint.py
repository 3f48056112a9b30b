"""Checkpoints: model, optimizer, step and random state in one .npz file, written atomically.

    minidl.save_checkpoint("run/checkpoint.npz", model=model, optimizer=optimizer, step=epoch)
    info = minidl.load_checkpoint("run/checkpoint.npz", model=model, optimizer=optimizer)   # info["step"]

(minidl.save(obj, f) and minidl.load(f), in minidl/serialization.py, save and load plain
state dicts and containers of tensors, with PyTorch's argument order.)

Inside the .npz: one array per parameter/buffer ("model/<name>"), one per array of optimizer
or extra state ("arrays/<n>", referred to from the header), and a JSON header ("meta") with
everything else, so `np.load` can inspect it without minidl. The file is written to a
temporary file in the same directory, flushed to disk, then moved over the old one with
os.replace: a crash or a full disk mid-write leaves the previous checkpoint intact.
Restoring the random state makes a resumed run draw the same shuffles and dropout masks
as an uninterrupted one.
"""

import json
import os
import tempfile

import numpy as np

from minidl import random as _random
from minidl.nn.module import compare_state_dicts
from minidl.tensor import Tensor

FORMAT = "minidl-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not fit the model/optimizer it is loaded into."""


# ---------------------------------------------------------------------------
# Nested state <-> (JSON skeleton, arrays)
# ---------------------------------------------------------------------------
_ARRAY = "__array__"  # {"__array__": "arrays/3"} in the JSON stands for the stored array of that name


def _split_arrays(value, where, arrays):
    """Replace every array in a nested dict/list by {"__array__": name}, storing it in `arrays` (only those).

    Arrays are named by a counter ("arrays/0", "arrays/1", ...), not by their path: the paths of
    {"a/b": x} and {"a": {"b": y}} would both be "a/b". `where` is the path, for error messages only.
    NumPy scalars become Python numbers; dict keys must be strings (JSON would turn 1 into "1").
    """
    if isinstance(value, Tensor):
        value = value.detach().cpu().array  # a device tensor is saved from a host copy
    if isinstance(value, np.ndarray):
        name = f"arrays/{len(arrays)}"
        arrays[name] = value
        return {_ARRAY: name}
    if isinstance(value, dict):
        return {_check_key(k, where): _split_arrays(v, f"{where}/{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_arrays(v, f"{where}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"save_checkpoint: cannot store a {type(value).__name__} at {where!r}; "
        "use numbers, strings, arrays, lists, dicts"
    )


def _check_key(key, where):
    if not isinstance(key, str):
        raise TypeError(
            f"save_checkpoint: dict keys must be strings, got the {type(key).__name__} key {key!r} at {where!r} "
            "(it would come back as a string)"
        )
    if key == _ARRAY:
        raise TypeError(f"save_checkpoint: the dict key {_ARRAY!r} is reserved for arrays (at {where!r})")
    return key


def _join_arrays(value, arrays):
    if isinstance(value, dict):
        if set(value) == {_ARRAY}:
            return arrays[value[_ARRAY]]
        return {k: _join_arrays(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_arrays(v, arrays) for v in value]
    return value


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------
def save_checkpoint(path, model=None, optimizer=None, step=None, extra=None, save_rng=True):
    """Write a checkpoint to `path` atomically; returns the path.

    model      a Module (its state_dict) or a dict of name -> array/Tensor
    optimizer  an Optimizer (its state_dict)
    step       any number that says where training is (epoch or iteration)
    extra      a dict of anything else (numbers, strings, arrays, nested lists/dicts),
               e.g. a scheduler's or an averager's state_dict and the run's settings
    save_rng   also store minidl's global random generator state (restored by load)
    """
    arrays, model_arrays = {}, {}  # arrays/<n> for optimizer and extra state; model/<name>
    step = _split_arrays(step, "step", arrays)  # a NumPy integer becomes a Python int
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "step": step, "model": None, "optimizer": None}
    if model is not None:
        state = model.state_dict() if hasattr(model, "state_dict") else model
        meta["model"] = list(state)
        for name, value in state.items():
            model_arrays["model/" + name] = np.asarray(
                value.detach().cpu().array if isinstance(value, Tensor) else value
            )
    if optimizer is not None:
        meta["optimizer"] = _split_arrays(_with_string_keys(optimizer.state_dict()), "optimizer", arrays)
    meta["extra"] = _split_arrays(extra if extra is not None else {}, "extra", arrays)
    meta["rng_state"] = _random.get_rng_state() if save_rng else None
    _write_atomically(path, {**model_arrays, **arrays, "meta": np.array(json.dumps(meta))})
    return path


def _with_string_keys(optimizer_state):
    """An optimizer's state_dict with its parameter indices as strings ("0", "1", ...) for JSON;
    Optimizer.load_state_dict accepts either."""
    return {**optimizer_state, "state": {str(k): v for k, v in optimizer_state["state"].items()}}


def _write_atomically(path, arrays):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temp_path = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # from here on, leaving the block closes fd whatever happens
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes it private; give it normal permissions
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise
    _fsync_directory(directory)


def _read_umask():
    """The process's umask. Reading it means setting it, so this runs once, at import: changing it
    later, even for an instant, would race with other threads creating files."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------
def read_archive(f, what, not_ours):
    """(meta, arrays) of an .npz written by minidl (a checkpoint or minidl.save): every array, and
    the JSON `meta` entry decoded. Never unpickles. `what` names the file in errors ("load: x.npz")."""
    try:
        with np.load(f, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # a truncated or foreign file: zipfile, OSError, ValueError...
        raise CheckpointError(f"{what} cannot be read: {type(e).__name__}: {e}") from None
    if "meta" not in arrays:
        raise CheckpointError(f"{what} {not_ours} (no 'meta' entry)")
    return json.loads(str(arrays.pop("meta"))), arrays


def read(path):
    """Read a checkpoint without applying it: {"step", "model" (name -> array), "optimizer", "extra", "rng_state"}."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    meta, arrays = read_archive(path, f"checkpoint {path}", "is not a minidl checkpoint")
    if meta.get("format") == "minidl-save":
        raise CheckpointError(f"checkpoint {path} was written by minidl.save; read it with minidl.load(path)")
    if meta.get("format") != FORMAT or meta.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: unknown format {meta.get('format')!r} version {meta.get('version')}")
    model = None
    if meta["model"] is not None:
        model = {name: arrays["model/" + name] for name in meta["model"]}
    return {
        "step": _join_arrays(meta["step"], arrays),
        "model": model,
        "optimizer": _join_arrays(meta["optimizer"], arrays) if meta["optimizer"] is not None else None,
        "extra": _join_arrays(meta["extra"], arrays),
        "rng_state": meta["rng_state"],
    }


def check_model_state(path, model, saved):
    """Raise CheckpointError listing every name or shape that differs between `saved` and `model`."""
    missing, unexpected, mismatches = compare_state_dicts(model.state_dict(), saved)
    problems = []
    if missing:
        problems.append(f"missing from the checkpoint: {', '.join(missing)}")
    if unexpected:
        problems.append(f"not in the model: {', '.join(unexpected)}")
    if mismatches:
        shapes = [f"{k}: checkpoint {theirs} vs model {ours}" for k, ours, theirs in mismatches]
        problems.append(f"shape mismatch: {'; '.join(shapes)}")
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}: " + " | ".join(problems))


def load_checkpoint(path, model=None, optimizer=None, restore_rng=True):
    """Load a checkpoint into `model` and `optimizer` (both optional) and return what `read` returns.

    Names and shapes are checked first and every mismatch is reported at once; nothing is
    changed unless everything fits. restore_rng=True resets minidl's random generator to
    the saved state so training continues exactly as it would have.
    """
    state = read(path)
    if model is not None:
        if state["model"] is None:
            raise CheckpointError(f"checkpoint {path} holds no model state")
        check_model_state(path, model, state["model"])
    if optimizer is not None and state["optimizer"] is None:
        raise CheckpointError(f"checkpoint {path} holds no optimizer state")
    if optimizer is not None:  # checks everything before changing anything, so it goes first
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint {path}: optimizer state does not fit: {e}") from None
    if model is not None:
        model.load_state_dict(state["model"])
    if restore_rng and state["rng_state"] is not None:
        _random.set_rng_state(state["rng_state"])
    return state
