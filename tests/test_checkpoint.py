"""Checkpoints: round trips, random state, atomic writes, and errors that say exactly what does not fit."""

import os

import numpy as np
import pytest

import minidl
from minidl import checkpoint, nn, optim


def make_model(hidden=8):
    return nn.Sequential(nn.Linear(4, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 3))


def train_a_little(model, optimizer, steps=3):
    for _ in range(steps):
        loss = nn.CrossEntropyLoss()(model(minidl.randn(16, 4)), minidl.randint(0, 3, (16,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_round_trip_restores_model_optimizer_step_extra_and_random_state(tmp_path):
    minidl.manual_seed(0)
    model = make_model()
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    train_a_little(model, optimizer)
    path = tmp_path / "run" / "checkpoint.npz"
    extra = {"history": [0.5, 0.25], "note": "hello", "averages": [np.arange(3.0)], "nested": {"k": np.ones((2, 2))}}
    minidl.save_checkpoint(path, model=model, optimizer=optimizer, step=7, extra=extra)
    expected_draw = minidl.randn(5).array  # what the generator gives right after saving

    minidl.manual_seed(123)
    restored = make_model()
    restored_optimizer = optim.Adam(restored.parameters(), lr=0.5)
    info = minidl.load_checkpoint(path, model=restored, optimizer=restored_optimizer)

    assert info["step"] == 7
    assert info["extra"]["history"] == [0.5, 0.25] and info["extra"]["note"] == "hello"
    np.testing.assert_array_equal(info["extra"]["averages"][0], np.arange(3.0))
    np.testing.assert_array_equal(info["extra"]["nested"]["k"], np.ones((2, 2)))
    for (name, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items()):
        np.testing.assert_array_equal(a.array, b.array, err_msg=name)
    assert restored_optimizer.param_groups[0]["lr"] == 0.01
    np.testing.assert_array_equal(minidl.randn(5).array, expected_draw)

    # Both continue identically from here: same weights, same optimizer moments, same random numbers.
    minidl.manual_seed(5)
    train_a_little(model, optimizer)
    minidl.manual_seed(5)
    train_a_little(restored, restored_optimizer)
    for (name, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items()):
        np.testing.assert_array_equal(a.array, b.array, err_msg=name)


def test_the_file_is_a_plain_npz_with_a_json_header(tmp_path):
    path = tmp_path / "c.npz"
    model = nn.Linear(2, 3)
    minidl.save_checkpoint(path, model=model, step=1)
    with np.load(path) as npz:
        assert {"model/weight", "model/bias", "meta"} <= set(npz.files)
        np.testing.assert_array_equal(npz["model/weight"], model.weight.array)
    assert oct(os.stat(path).st_mode & 0o777) != oct(0o600)  # not left private like a temp file


def test_a_failing_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    model = nn.Linear(2, 2)
    minidl.save_checkpoint(path, model=model, step=1)
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    with minidl.no_grad():
        model.weight.fill_(42.0)
    monkeypatch.setattr(checkpoint.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        minidl.save_checkpoint(path, model=model, step=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]  # the temporary file was removed
    assert checkpoint.read(path)["step"] == 1


def test_a_crash_in_the_middle_of_serializing_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    minidl.save_checkpoint(path, model=nn.Linear(2, 2), step=1)
    before = path.read_bytes()
    real_savez = np.savez

    def savez_then_crash(file, **arrays):
        real_savez(file, **arrays)  # bytes are written to the temporary file...
        raise KeyboardInterrupt  # ...and then the process is interrupted

    monkeypatch.setattr(checkpoint.np, "savez", savez_then_crash)
    with pytest.raises(KeyboardInterrupt):
        minidl.save_checkpoint(path, model=nn.Linear(2, 2), step=2)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]


def test_the_new_file_replaces_the_old_one_in_a_single_rename(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    renames = []
    real_replace = os.replace

    def recording_replace(src, dst):
        renames.append((os.path.dirname(src), os.path.basename(src), dst))
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", recording_replace)
    minidl.save_checkpoint(path, model=nn.Linear(2, 2), step=1)
    ((directory, temp_name, destination),) = renames
    assert directory == str(tmp_path) and temp_name != "checkpoint.npz" and destination == path


def test_loading_into_a_different_model_lists_every_mismatch_and_changes_nothing(tmp_path):
    path = tmp_path / "c.npz"
    minidl.save_checkpoint(path, model=make_model(hidden=8))
    other = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3), nn.Linear(3, 3))
    before = {k: v.array.copy() for k, v in other.state_dict().items()}
    with pytest.raises(checkpoint.CheckpointError) as error:
        minidl.load_checkpoint(path, model=other)
    message = str(error.value)
    assert str(path) in message and "does not fit Sequential" in message
    assert "missing from the checkpoint: 2.weight, 2.bias |" in message
    assert "not in the model: 1.weight, 1.bias, 1.running_mean, 1.running_var, 1.num_batches_tracked |" in message
    assert (
        "shape mismatch: 0.weight: checkpoint (8, 4) vs model (6, 4); 0.bias: checkpoint (8,) vs model (6,); "
        "3.weight: checkpoint (3, 8) vs model (3, 3)"
    ) in message
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v.array, before[k])


def test_loading_optimizer_state_for_other_parameters_is_an_error(tmp_path):
    path = tmp_path / "c.npz"
    model = nn.Linear(3, 2)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train_step = model(minidl.randn(2, 3)).sum()
    train_step.backward()
    optimizer.step()
    minidl.save_checkpoint(path, model=model, optimizer=optimizer)
    other = nn.Linear(3, 2, bias=False)
    with pytest.raises(
        checkpoint.CheckpointError, match="optimizer state does not fit.*2 parameters in the state but 1"
    ):
        minidl.load_checkpoint(path, optimizer=optim.SGD(other.parameters(), lr=0.1, momentum=0.9))
    with pytest.raises(checkpoint.CheckpointError, match="holds no optimizer state"):
        minidl.save_checkpoint(path, model=model)
        minidl.load_checkpoint(path, optimizer=optimizer)


def test_unreadable_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        minidl.load_checkpoint(tmp_path / "nope.npz")
    truncated = tmp_path / "truncated.npz"
    minidl.save_checkpoint(truncated, model=nn.Linear(2, 2))
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(checkpoint.CheckpointError, match="cannot be read"):
        minidl.load_checkpoint(truncated)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(checkpoint.CheckpointError, match="not a minidl checkpoint"):
        minidl.load_checkpoint(foreign)


def test_extra_must_be_storable(tmp_path):
    with pytest.raises(TypeError, match="cannot store a object at 'extra/thing'"):
        minidl.save_checkpoint(tmp_path / "c.npz", extra={"thing": object()})
    assert not os.path.exists(tmp_path / "c.npz")


def test_arrays_whose_paths_look_alike_are_stored_apart(tmp_path):
    # "a/b" the key and "a" -> "b" the nesting used to be stored under one name: one overwrote the other.
    extra = {"a/b": np.ones(2), "a": {"b": np.zeros(2)}, "list": [np.full(1, 3.0)], "list/0": np.full(1, 4.0)}
    minidl.save_checkpoint(tmp_path / "c.npz", extra=extra)
    loaded = checkpoint.read(tmp_path / "c.npz")["extra"]
    np.testing.assert_array_equal(loaded["a/b"], np.ones(2))
    np.testing.assert_array_equal(loaded["a"]["b"], np.zeros(2))
    np.testing.assert_array_equal(loaded["list"][0], [3.0])
    np.testing.assert_array_equal(loaded["list/0"], [4.0])


@pytest.mark.parametrize(
    "extra,where",
    [({1: "one"}, "'extra'"), ({"outer": {(1, 2): np.ones(1)}}, "'extra/outer'"), ({"x": {"__array__": 0}}, "")],
)
def test_dict_keys_must_be_strings_and_not_the_reserved_one(tmp_path, extra, where):
    with pytest.raises(
        TypeError,
        match=f"save_checkpoint: .*key.* at {where}" if where else "save_checkpoint: .*__array__.* is reserved",
    ):
        minidl.save_checkpoint(tmp_path / "c.npz", extra=extra)
    assert not os.path.exists(tmp_path / "c.npz")


def test_numpy_scalars_are_stored_as_plain_numbers(tmp_path):
    minidl.save_checkpoint(tmp_path / "c.npz", step=np.int64(3), extra={"lr": np.float32(0.5), "done": np.bool_(True)})
    info = checkpoint.read(tmp_path / "c.npz")
    assert info["step"] == 3 and type(info["step"]) is int
    assert info["extra"] == {"lr": 0.5, "done": True} and type(info["extra"]["done"]) is bool


def open_file_descriptors():
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count open files")
def test_a_failing_chmod_closes_the_temporary_file(tmp_path, monkeypatch):
    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(checkpoint.os, "chmod", refuse)
    monkeypatch.setattr(checkpoint.os, "fchmod", refuse)
    before = open_file_descriptors()
    with pytest.raises(PermissionError):
        minidl.save_checkpoint(tmp_path / "c.npz", model=nn.Linear(2, 2))
    assert open_file_descriptors() == before
    assert os.listdir(tmp_path) == []


def test_saving_never_changes_the_process_umask(tmp_path, monkeypatch):
    # os.umask(0) to read the mask would briefly make every other thread create world-writable files.
    def no_umask_calls(mask):
        raise AssertionError(f"os.umask({mask:o}) called while saving")

    monkeypatch.setattr(checkpoint.os, "umask", no_umask_calls)
    minidl.save_checkpoint(tmp_path / "c.npz", model=nn.Linear(2, 2))
    monkeypatch.undo()
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(tmp_path / "c.npz").st_mode & 0o777 == 0o666 & ~mask
