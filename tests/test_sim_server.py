"""The simulator's server is the MPI server: same arrival order, same parameters, bit for bit.

The MPI server's loop (minidl.distributed.parameter_server.ParameterServer.run) is driven
here without MPI: a fake communicator hands it, one by one, the very messages (PULL, PUSH
with the encoded gradient bytes, LEAVE) that reached one of the simulator's shards, in the
order they arrived there. Both use ServerRules; this checks that everything around it (the
message headers, decoding, splitting the payload into arrays, which pulls are answered and
when) is the same too. Also here: the sparse-row extension of ServerRules (Hogwild) and the
stacked per-worker gradients.
"""

import subprocess
import sys

import numpy as np
import pytest

from minidl.distributed.parameter_server import (
    TAG_LEAVE,
    TAG_PARAMS,
    TAG_PULL,
    TAG_PUSH,
    ParameterServer,
    pack,
    unpack,
)
from minidl.distributed.rules import ServerRules, SparseRows, UpdateRule
from minidl.sim.cluster import Simulation
from minidl.sim.workload import Workload


# ---------------------------------------------------------------- a fake MPI for one server rank
class FakeStatus:
    def __init__(self):
        self.source = self.tag = self.count = None

    def Get_source(self):
        return self.source

    def Get_tag(self):
        return self.tag

    def Get_count(self, _datatype):
        return self.count


class FakeRequest:
    @staticmethod
    def Test():
        return True

    @staticmethod
    def Testall(requests):
        return True


class FakeMPI:
    ANY_SOURCE, ANY_TAG, BYTE = -1, -1, "byte"
    Status = FakeStatus
    Request = FakeRequest


class FakeChannel:
    """A server's communicator: Iprobe/Recv take the scripted messages in order; Isend records replies."""

    def __init__(self, script):
        self.script = list(script)  # (source rank, tag, bytes)
        self.sent = []  # (dest rank, tag, header)

    def Dup(self):
        return self

    def Iprobe(self, source, tag, status):
        if not self.script:
            raise AssertionError("the server waited for a message after the script ended")
        status.source, status.tag, message = self.script[0]
        status.count = message.nbytes
        return True

    def Recv(self, buffer, source, tag):
        _, _, message = self.script.pop(0)
        buffer[...] = message

    def Isend(self, message, dest, tag):
        header, _ = unpack(message, np.uint8)
        self.sent.append((dest, tag, header[:2]))
        return FakeRequest()


class FakeComm:
    MPI = FakeMPI
    rank, timeout, oversubscribed = 0, 5.0, False

    def __init__(self, script):
        self.comm = FakeChannel(script)
        self.bytes_sent = 0


def replay_into_mpi_server(log, initial, rule, mode, num_workers, codec, **rules_options):
    """Feed a shard's arrival log to a fresh MPI ParameterServer; returns (its parameters, its replies)."""
    rank_of = {w: w + 1 for w in range(num_workers)}  # rank 0 is the server
    script = []
    for kind, worker, version, payload in log:
        if kind == "pull":
            script.append((rank_of[worker], TAG_PULL, pack([worker])))
        else:
            script.append((rank_of[worker], TAG_PUSH, pack([worker, version, 0, 0, 0], payload)))
    script += [(rank_of[w], TAG_LEAVE, pack([w])) for w in range(num_workers)]
    rules = ServerRules([p.copy() for p in initial], rule, mode=mode, num_workers=num_workers, **rules_options)
    comm = FakeComm(script)
    server = ParameterServer(comm, rules, [rank_of[w] for w in range(num_workers)], compression=codec)
    server.run()
    replies = [(dest - 1, header[0]) for dest, tag, header in comm.comm.sent if tag == TAG_PARAMS]
    return rules.params, replies


@pytest.mark.parametrize(
    "mode, settings",
    [
        ("async", dict(workers=4, compression="trunc16")),
        ("async", dict(workers=3, n_fetch=2, n_push=2, compression="fp16")),
        ("bounded", dict(workers=4, bound=1, compression="none")),
        ("backup", dict(workers=3, backup=1, compression="trunc16")),
        ("sync", dict(workers=3, compression="none")),
    ],
)
def test_the_simulated_and_the_mpi_server_end_with_identical_parameters(mode, settings):
    sim = Simulation(mode=mode, servers=2, updates=40, optimizer="adagrad", lr=0.05, hidden=8, batch_size=4,
                     compute="lognormal:median=0.1,sigma=0.5", eval_updates=40, record_arrivals=True,
                     **settings)  # fmt: skip
    initial = [[sim.workload.params[i] for i in sim.layout.indices[s]] for s in range(2)]
    result = sim.run()
    assert result.finished == "done"
    for s, shard in enumerate(sim.shards):
        log = result.arrival_logs[s]
        assert sum(kind == "push" for kind, *_ in log) >= 30  # shard 0 reached 40 updates; the other is close
        c = sim.config
        options = dict(bound=c.bound, num_backup=c.backup if mode == "backup" else 0, total_updates=c.updates)
        params, replies = replay_into_mpi_server(
            log, initial[s], UpdateRule("adagrad", lr=0.05), c.rules_mode, c.total_workers, c.compression, **options
        )
        for mine, theirs in zip(shard.rules.params, params):
            np.testing.assert_array_equal(mine, theirs)  # bit for bit: the same operations in the same order
        # Every pull the simulator's shard answered, the MPI server answered with the same version, in
        # the same order (it then goes on to answer the final LEAVEs' releases, if any).
        answered = [(w, v) for kind, w, v, _ in sim.shards[s].replies]
        assert replies[: len(answered)] == answered


def test_sparse_rows_update_exactly_the_rows_a_dense_update_would():
    rng = np.random.default_rng(0)
    table = rng.standard_normal((50, 4)).astype(np.float32)
    rows = np.array([3, 17, 42])
    values = rng.standard_normal((3, 4)).astype(np.float32)
    for name in ("sgd", "adagrad"):
        dense_rule, sparse_rule = UpdateRule(name, lr=0.1), UpdateRule(name, lr=0.1)
        dense, sparse = [table.copy()], [table.copy()]
        for _ in range(3):
            dense_rule.apply(dense, [SparseRows(rows, values).dense(table.shape)])
            sparse_rule.apply(sparse, [SparseRows(rows, values)])
        untouched = np.setdiff1d(np.arange(50), rows)
        np.testing.assert_array_equal(sparse[0][untouched], table[untouched])
        # The same elementwise update on the same values; a SIMD kernel may fuse a multiply-add in
        # its main loop and not in its tail, so allow 2 units in the last place of |w| ≤ 4.
        np.testing.assert_allclose(sparse[0], dense[0], rtol=0, atol=2 * 4 * np.finfo(np.float32).eps)


def test_rules_record_each_rows_own_staleness():
    rules = ServerRules([np.zeros((10, 2), np.float32)], UpdateRule("sgd", lr=1.0), mode="async", num_workers=2)
    rules.pull(0)
    rules.pull(1)
    _, counts0 = rules.read_rows(0, [1, 2])
    _, counts1 = rules.read_rows(0, [2, 5])
    rules.push(1, [SparseRows([2, 5], np.ones((2, 2)), counts1)], version=0)
    rules.push(0, [SparseRows([1, 2], np.ones((2, 2)), counts0)], version=0)
    # Worker 0's push is 1 update old globally; of its rows only row 2 was written in between.
    assert rules.staleness == [0, 1]
    assert sorted(rules.row_staleness) == [0, 0, 0, 1]
    summary = rules.summary()
    assert summary["mean_row_staleness"] == 0.25 and summary["row_staleness_histogram"] == [3, 1]
    np.testing.assert_array_equal(rules.params[0][:, 0], [0, -1, -2, 0, 0, -1, 0, 0, 0, 0])
    state = rules.state_dict()
    again = ServerRules([np.zeros((10, 2), np.float32)], UpdateRule("sgd", lr=1.0), mode="async", num_workers=2)
    again.load_state_dict(state)
    np.testing.assert_array_equal(again.row_updates[0], rules.row_updates[0])
    assert again.row_staleness == rules.row_staleness


def test_sparse_rows_are_refused_where_they_cannot_work():
    rules = ServerRules([np.zeros((4, 2), np.float32)], UpdateRule("sgd"), mode="backup", num_workers=2)
    with pytest.raises(ValueError, match="sparse rows in backup mode"):
        rules.push(0, [SparseRows([1], np.ones((1, 2)))], 0)
    with pytest.raises(ValueError, match="momentum keeps moving"):
        UpdateRule("momentum").apply([np.zeros((4, 2), np.float32)], [SparseRows([1], np.ones((1, 2)))])
    rules = ServerRules([np.zeros((4, 2), np.float32)], UpdateRule("sgd"), mode="async", num_workers=2)
    with pytest.raises(ValueError, match=r"row indices must be in \[0, 4\)"):
        rules.push(0, [SparseRows([4], np.ones((1, 2)))], 0)
    with pytest.raises(ValueError, match="distinct"):
        rules.push(0, [SparseRows([1, 1], np.ones((2, 2)))], 0)
    with pytest.raises(ValueError, match="do not match"):
        rules.push(0, [SparseRows([1], np.ones((1, 3)))], 0)
    assert rules.version == 0 and rules.row_updates == {}  # nothing was changed by the bad pushes


# ---------------------------------------------------------------- stacked gradients
@pytest.mark.parametrize("hidden, k", [(8, 2), (32, 7)])
def test_stacked_per_worker_gradients_equal_one_pass_per_worker(hidden, k):
    workload = Workload(hidden=hidden, batch_size=5, num_workers=k, seed=1)
    assert workload.stackable
    rng = np.random.default_rng(0)
    params = [p + 0.1 * rng.standard_normal(p.shape).astype(np.float32) for p in workload.params]
    batches = [workload.next_batch(w) for w in range(k)]
    stacked = workload._stacked(params, batches)
    for (grads, stats), batch in zip(stacked, batches):
        one_grads, one_stats = workload._one(params, batch)
        assert stats[:2] == one_stats[:2]
        # Each entry is a sum over the batch's 5 rows of products of float32 values, in another order
        # (and another GEMM blocking): a few units of rounding of the largest term, ~5·eps·max|term|.
        for g, one in zip(grads, one_grads):
            np.testing.assert_allclose(g, one, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(stats[2], one_stats[2], rtol=1e-5)


def test_a_run_with_stacked_gradients_ends_where_one_pass_per_worker_does():
    settings = dict(mode="backup", workers=6, backup=1, updates=20, hidden=16, optimizer="sgd", lr=0.1,
                    eval_updates=20)  # fmt: skip
    stacked = Simulation(stack_gradients=True, **settings).run()
    one_by_one = Simulation(stack_gradients=False, **settings).run()
    assert stacked.profile["stacked_passes"] >= 20 and one_by_one.profile["stacked_passes"] == 0
    assert stacked.history[-1]["updates"] == one_by_one.history[-1]["updates"]
    np.testing.assert_array_equal(stacked.update_times, one_by_one.update_times)  # time never depends on values
    # The same gradients up to float32 rounding (see above), through 20 SGD steps of lr 0.1 on
    # weights of size ~0.3: differences stay at rounding level, far below 1e-4.
    for a, b in zip(stacked.parameters, one_by_one.parameters):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


def test_models_that_mix_rows_or_have_other_layers_are_not_stacked():
    assert not Workload(model="cnn", hidden=8, batch_size=4).stackable
    assert not Workload(model="embedding", dataset="topics", batch_size=4).stackable


# ---------------------------------------------------------------- no MPI, no plotting at import
def test_the_simulator_imports_and_runs_without_mpi4py_matplotlib_or_tqdm():
    code = (
        "import sys, minidl, minidl.sim\n"
        "from minidl.sim import simulate\n"
        "simulate(mode='async', workers=2, updates=5, hidden=4)\n"
        "print(sorted(m for m in ('mpi4py', 'matplotlib', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
