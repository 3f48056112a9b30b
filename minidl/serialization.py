"""minidl.save and minidl.load, with PyTorch's argument order, and without pickle.

    minidl.save(model.state_dict(), "model.npz")
    model.load_state_dict(minidl.load("model.npz"))
    minidl.save({"epoch": 3, "model": model.state_dict(), "optimizer": opt.state_dict()}, "run.npz")

What can be saved: tensors, NumPy arrays, numbers, strings, None, and dicts, lists and tuples
of these, nested (a state dict, an optimizer's state_dict, a list of tensors). What cannot:
objects such as a whole Module; torch.save pickles those, and loading a pickle runs whatever
code the file names, so a file from a classmate could do anything. Here a file is an .npz
archive: one array per tensor or array, plus a JSON description of the containers around them
("meta"). minidl.load reads it with NumPy's allow_pickle=False, so loading never runs code,
and `np.load` can inspect the file without minidl.

Writing goes to a temporary file that replaces the old one only when complete (see
checkpoint._write_atomically): a crash mid-save leaves the previous file intact.

minidl.save_checkpoint / load_checkpoint (minidl/checkpoint.py) save a model, its optimizer,
the step and the random state in one call, for resuming training.
"""

import json
import os

import numpy as np

from minidl.checkpoint import FORMAT as CHECKPOINT_FORMAT
from minidl.checkpoint import CheckpointError, _write_atomically, read_archive
from minidl.tensor import Tensor, _device

FORMAT = "minidl-save"
FORMAT_VERSION = 1

# How the JSON description marks what JSON has no type for:
_TENSOR = "__tensor__"  # {"__tensor__": "arrays/0"}: the stored array, as a Tensor
_ARRAY = "__array__"  # {"__array__": "arrays/1"}: the stored array, as an ndarray
_TUPLE = "__tuple__"  # {"__tuple__": [...]}: a tuple (JSON has only lists)
_DICT = "__dict__"  # {"__dict__": [[key, value], ...]}: a dict with keys that are not all strings
_MARKERS = (_TENSOR, _ARRAY, _TUPLE, _DICT)


def save(obj, f=None, **checkpoint_arguments):
    """Save `obj` (tensors, arrays, numbers, strings and containers of them) to the file `f`.

    f is a path (written atomically) or a binary file object. PyTorch's argument order:
    save(obj, f). The file holds no pickled objects (see the module docstring).
    """
    if checkpoint_arguments or f is None:
        raise TypeError(
            "save(obj, f) saves an object to a file, as torch.save does: e.g. save(model.state_dict(), "
            "'model.npz'). To save a model, its optimizer and the step for resuming, use "
            "minidl.save_checkpoint(path, model=..., optimizer=..., step=...)"
        )
    arrays = {}
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "object": _encode(obj, "obj", arrays)}
    entries = {**arrays, "meta": np.array(json.dumps(meta, allow_nan=True))}
    if hasattr(f, "write"):
        np.savez(f, **entries)
    else:
        _write_atomically(os.fspath(f), entries)


def load(f, map_location=None, weights_only=True, **checkpoint_arguments):
    """Load what minidl.save wrote: tensors come back as Tensors, arrays as ndarrays, tuples as tuples.

    f is a path or a binary file object. map_location may name the device to load onto ("cpu");
    weights_only is accepted for PyTorch code and always holds (nothing but data is ever loaded).
    """
    if checkpoint_arguments:
        raise TypeError(
            "load(f) reads what minidl.save wrote, as torch.load does; to restore a model and optimizer "
            "from a checkpoint, use minidl.load_checkpoint(path, model=..., optimizer=...)"
        )
    where = _device(None if map_location is None else str(map_location), "load")
    name = getattr(f, "name", f)
    if not hasattr(f, "read") and not os.path.exists(f):
        raise FileNotFoundError(f"load: {f} does not exist")
    meta, arrays = read_archive(f, f"load: {name}", "was not written by minidl.save")
    if meta.get("format") == CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"load: {name} is a training checkpoint; restore it with "
            "minidl.load_checkpoint(path, model=..., optimizer=...)"
        )
    if meta.get("format") != FORMAT or meta.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"load: {name}: unknown format {meta.get('format')!r} version {meta.get('version')}")
    return _decode(meta["object"], arrays, where)


def _encode(value, where, arrays):
    """The JSON description of `value`, storing its tensors and arrays in `arrays` ("arrays/<n>").

    `where` is the path to the value (obj/model/weight), for error messages only.
    """
    if isinstance(value, Tensor):
        return {_TENSOR: _store(value.detach().cpu().array, arrays)}  # device tensors load back on the cpu
    if isinstance(value, np.ndarray):
        return {_ARRAY: _store(value, arrays)}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, f"{where}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{where}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not any(k in _MARKERS for k in value):
            return {k: _encode(v, f"{where}/{k}", arrays) for k, v in value.items()}
        return {_DICT: [[_encode(k, where, arrays), _encode(v, f"{where}/{k}", arrays)] for k, v in value.items()]}
    hint = "; save its state_dict() instead" if hasattr(value, "state_dict") else ""
    raise TypeError(
        f"save: cannot store a {type(value).__name__} at {where!r}: minidl.save keeps tensors, arrays, numbers, "
        f"strings, None, and dicts, lists and tuples of them (no pickled objects){hint}"
    )


def _store(array, arrays):
    name = f"arrays/{len(arrays)}"
    arrays[name] = np.ascontiguousarray(array)
    return name


def _decode(value, arrays, where):
    if isinstance(value, list):
        return [_decode(v, arrays, where) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((marker, content),) = value.items()
        if marker == _TENSOR:
            return Tensor._wrap(arrays[content], device=where)
        if marker == _ARRAY:
            return arrays[content]
        if marker == _TUPLE:
            return tuple(_decode(v, arrays, where) for v in content)
        if marker == _DICT:
            return {_hashable(_decode(k, arrays, where)): _decode(v, arrays, where) for k, v in content}
    return {k: _decode(v, arrays, where) for k, v in value.items()}


def _hashable(key):
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key
