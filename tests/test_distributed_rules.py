"""The parameter server's rules, compression, the distributed sampler and the launcher: no MPI needed."""

import subprocess
import sys

import numpy as np
import pytest

from minidl.distributed import launch
from minidl.distributed.compression import FP16Compressor, Truncated16Compressor, get_compressor
from minidl.distributed.rules import ServerRules, UpdateRule, shard_parameters
from minidl.distributed.sampler import DistributedSampler


def make_rules(mode="async", workers=3, **kwargs):
    params = [np.zeros(3, np.float32), np.ones((2, 2), np.float32)]
    return ServerRules(params, UpdateRule("sgd", lr=0.5), mode=mode, num_workers=workers, **kwargs)


def grads(value):
    return [np.full(3, value, np.float32), np.full((2, 2), value, np.float32)]


# ---------------------------------------------------------------- async (Downpour)
def test_async_applies_every_gradient_and_records_staleness():
    rules = make_rules("async", workers=3)
    for w in range(3):
        assert rules.pull(w)  # everyone starts on version 0
    for w in range(3):
        result = rules.push(w, grads(1.0), version=0)
        assert result.applied and result.staleness == w  # the k-th arrival is k updates old
    assert rules.version == 3
    np.testing.assert_allclose(rules.params[0], -1.5)  # three steps of -0.5·1
    assert rules.summary()["mean_staleness"] == 1.0


def test_async_staleness_of_identical_workers_is_n_minus_1():
    # Round-robin workers that pull right after they push: in steady state each gradient has
    # seen the other N - 1 workers' updates while it was computed.
    n = 4
    rules = make_rules("async", workers=n)
    version_of = {}
    for w in range(n):
        rules.pull(w)
        version_of[w] = rules.version
    for step in range(200):
        w = step % n
        rules.push(w, grads(0.0), version_of[w])
        rules.pull(w)
        version_of[w] = rules.version
    staleness = np.array(rules.staleness[n:])  # after the first round
    assert (staleness == n - 1).all()


def test_async_never_waits_for_a_hung_worker():
    rules = make_rules("async", workers=3)
    for w in range(3):
        rules.pull(w)
    for step in range(50):  # worker 2 never pushes again
        w = step % 2
        rules.push(w, grads(0.1), rules.version)
        assert rules.pull(w)
    assert rules.version == 50 and rules.applied_by_worker[2] == 0


# ---------------------------------------------------------------- bounded delay
def test_bounded_delay_holds_a_worker_tau_ahead_of_the_slowest():
    tau = 2
    rules = make_rules("bounded", workers=2, bound=tau)
    rules.pull(0)
    rules.pull(1)
    for step in range(tau):
        rules.push(0, grads(0.1), rules.version)
        assert rules.pull(0), f"step {step}: worker 0 is only {step + 1} ahead"
    rules.push(0, grads(0.1), rules.version)
    assert not rules.pull(0)  # 3 ahead of worker 1: it must wait
    assert rules.waiting == [0]
    assert rules.blocking_workers() == [1]
    result = rules.push(1, grads(0.1), 0)  # the slow worker catches up by one
    assert result.released == [0]
    assert result.staleness == 3


def test_bounded_delay_stops_waiting_for_a_worker_that_left():
    rules = make_rules("bounded", workers=2, bound=0)
    rules.pull(0)
    rules.pull(1)
    rules.push(0, grads(0.1), 0)
    assert not rules.pull(0)
    assert rules.leave(1) == [0]


def test_bounded_with_infinite_bound_is_async():
    rules = make_rules("bounded", workers=2, bound=10**9)
    rules.pull(0)
    for _ in range(20):
        rules.push(0, grads(0.1), rules.version)
        assert rules.pull(0)


# ---------------------------------------------------------------- sync with backup workers
def test_backup_applies_the_first_n_and_drops_the_late():
    rules = make_rules("backup", workers=3, num_backup=1)  # N = 2 of 3
    for w in range(3):
        assert rules.pull(w)
    first = rules.push(2, grads(1.0), 0)
    assert first.applied and rules.version == 0  # waits for a second gradient
    assert not rules.pull(2)  # no new version yet: worker 2 waits
    second = rules.push(0, grads(3.0), 0)
    assert rules.version == 1 and sorted(second.released) == [2]
    np.testing.assert_allclose(rules.params[0], -0.5 * 2.0)  # the mean of 1 and 3, times lr
    late = rules.push(1, grads(100.0), 0)  # computed on version 0: too late
    assert late.dropped and not late.applied
    np.testing.assert_allclose(rules.params[0], -1.0)
    assert rules.pull(1)  # the late worker gets the new version at once
    assert rules.summary()["dropped_gradients"] == 1
    assert set(rules.staleness) == {0}


def test_backup_without_backups_is_plain_sync_and_names_the_straggler():
    rules = make_rules("backup", workers=3, num_backup=0)
    for w in range(3):
        rules.pull(w)
    rules.push(0, grads(1.0), 0)
    rules.push(2, grads(1.0), 0)
    assert rules.version == 0 and rules.blocking_workers() == [1]
    rules.push(1, grads(1.0), 0)
    assert rules.version == 1


def test_backup_rejects_two_pushes_for_one_step():
    rules = make_rules("backup", workers=3, num_backup=1)
    rules.pull(0)
    rules.push(0, grads(1.0), 0)
    with pytest.raises(ValueError, match="pushed twice"):
        rules.push(0, grads(1.0), 0)


# ---------------------------------------------------------------- updates, stopping, checkpoints, errors
@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad"])
def test_update_rules_match_minidl_optim(name):
    import minidl
    from minidl import optim

    rng = np.random.default_rng(0)
    start = rng.standard_normal(5).astype(np.float32)
    steps = [rng.standard_normal(5).astype(np.float32) for _ in range(4)]
    rule = UpdateRule(name, lr=0.1, momentum=0.9)
    server = [start.copy()]
    param = minidl.nn.Parameter(start.copy())
    opt = {
        "sgd": lambda: optim.SGD([param], lr=0.1),
        "momentum": lambda: optim.SGD([param], lr=0.1, momentum=0.9),
        "adagrad": lambda: optim.AdaGrad([param], lr=0.1),
    }[name]()
    for g in steps:
        rule.apply(server, [g])
        param.grad = minidl.tensor(g)
        opt.step()
    np.testing.assert_allclose(server[0], param.data, rtol=1e-6, atol=1e-7)


def test_training_stops_after_total_updates():
    rules = make_rules("async", workers=1, total_updates=2)
    rules.pull(0)
    rules.push(0, grads(1.0), 0)
    rules.push(0, grads(1.0), 1)
    assert rules.done and rules.reply()[2] is True
    result = rules.push(0, grads(1.0), 2)
    assert not result.applied and rules.version == 2


def test_state_dict_round_trip_continues_identically():
    a = make_rules("async", workers=2)
    a.rule = UpdateRule("momentum", lr=0.1)
    a.pull(0)
    a.push(0, grads(1.0), 0)
    b = make_rules("async", workers=2)
    b.rule = UpdateRule("momentum", lr=0.1)
    b.load_state_dict(a.state_dict())
    for rules in (a, b):
        rules.pull(1)
        rules.push(1, grads(2.0), 1)
    for pa, pb in zip(a.params, b.params):
        np.testing.assert_array_equal(pa, pb)
    assert a.summary()["updates"] == b.summary()["updates"] == 2


def test_rules_reject_bad_input_by_name():
    with pytest.raises(ValueError, match="unknown mode"):
        make_rules("hogwild")
    with pytest.raises(ValueError, match="needs a bound"):
        make_rules("bounded")
    with pytest.raises(ValueError, match="num_backup"):
        make_rules("backup", workers=2, num_backup=2)
    rules = make_rules("async", workers=2)
    with pytest.raises(ValueError, match="worker 5 is out of range"):
        rules.pull(5)
    with pytest.raises(ValueError, match="claims version 3"):
        rules.push(0, grads(1.0), 3)
    with pytest.raises(ValueError, match="unknown rule"):
        UpdateRule("adam")


def test_shard_parameters_balances_values():
    owner = shard_parameters([1000, 10, 600, 500, 10], 2)
    load = [sum(s for s, o in zip([1000, 10, 600, 500, 10], owner) if o == k) for k in range(2)]
    assert sorted(load) == [1020, 1100]  # largest first onto the lighter server: 1000+10+10 vs 600+500
    assert shard_parameters([5, 5], 1) == [0, 0]


# ---------------------------------------------------------------- compression
def test_truncated16_keeps_the_top_16_bits():
    codec = Truncated16Compressor()
    x = np.array([1.0, -2.5, 3.14159265, 1e30, 1e-30, 0.0], np.float32)
    wire = codec.encode(x)
    assert wire.dtype == np.uint16 and codec.bytes_encoded == 12
    np.testing.assert_array_equal(wire, (x.view(np.uint32) >> 16).astype(np.uint16))
    back = codec.decode(wire)
    assert (np.abs(back) <= np.abs(x)).all()  # truncation rounds toward zero
    nonzero = x != 0
    assert (np.abs(back - x)[nonzero] / np.abs(x[nonzero]) < codec.relative_error).all()
    assert back[3] > 1e29  # float32's range is kept, unlike fp16


def test_fp16_rounds_to_nearest_within_its_precision():
    codec = FP16Compressor()
    x = np.random.default_rng(0).uniform(-100, 100, 1001).astype(np.float32)  # odd size: SIMD tails
    back = codec.decode(codec.encode(x))
    assert (np.abs(back - x) <= codec.relative_error * np.abs(x) + 1e-7).all()
    assert codec.bytes_encoded == 2002


def test_compression_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown method 'int8'"):
        get_compressor("int8")
    with pytest.raises(TypeError, match="expected a float32 array"):
        get_compressor("fp16").encode(np.ones(3))


# ---------------------------------------------------------------- the sampler
@pytest.mark.parametrize("n, replicas", [(48, 4), (50, 3), (7, 2)])
def test_sampler_shards_one_permutation(n, replicas):
    shards = [DistributedSampler(range(n), replicas, r, seed=1) for r in range(replicas)]
    one = DistributedSampler(range(n), 1, 0, seed=1)
    for s in shards + [one]:
        s.set_epoch(3)
    indices = [s.indices() for s in shards]
    assert len({len(i) for i in indices}) == 1  # every rank takes as many batches
    interleaved = np.stack(indices, axis=1).ravel()
    np.testing.assert_array_equal(interleaved[:n], one.indices())  # the N shards are the 1-process order
    assert set(np.concatenate(indices)) == set(range(n))


def test_sampler_changes_order_with_epoch_and_drop_last():
    s = DistributedSampler(range(10), 3, 0, seed=0, drop_last=True)
    assert len(s) == 3
    first = s.indices().copy()
    s.set_epoch(1)
    assert not np.array_equal(first, s.indices())
    with pytest.raises(ValueError, match="rank must be in"):
        DistributedSampler(range(10), 2, 2)


def test_dataloader_takes_a_sampler():
    import minidl

    dataset = minidl.data.TensorDataset(np.arange(10, dtype=np.float32)[:, None], np.arange(10))
    sampler = DistributedSampler(dataset, 2, 1, shuffle=False)
    loader = minidl.data.DataLoader(dataset, batch_size=2, sampler=sampler)
    assert len(loader) == 3
    assert [y.data.tolist() for _, y in loader] == [[1, 3], [5, 7], [9]]
    with pytest.raises(ValueError, match="either shuffle=True or a sampler"):
        minidl.data.DataLoader(dataset, sampler=sampler, shuffle=True)


# ---------------------------------------------------------------- launching and imports
def test_launch_command_uses_the_environments_mpiexec(tmp_path):
    command = launch.launch_command(4, ["train", "--distributed", "sync"], environ={})
    assert command[0] == launch.find_mpiexec() and command[1:5] == ["-n", "4", "-launcher", "fork"]
    assert command[-5:] == ["-m", "minidl", "train", "--distributed", "sync"]
    slurm = launch.launch_command(2, ["info"], launcher="srun")
    assert slurm[:3] == ["srun", "-n", "2"]
    assert launch.rank_environment({})["OPENBLAS_NUM_THREADS"] == "1"
    assert launch.rank_environment({"OMP_NUM_THREADS": "2"})["OMP_NUM_THREADS"] == "2"
    with pytest.raises(launch.LaunchError, match="must be >= 1"):
        launch.launch_command(0, ["info"])


def test_importing_minidl_and_its_distributed_rules_does_not_import_mpi4py():
    code = (
        "import sys, minidl, minidl.cli, minidl.distributed, minidl.distributed.rules, minidl.distributed.driver; "
        "print('mpi4py' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
