"""Run under mpiexec by tests/test_distributed_mpi.py: collectives, DDP, pipeline and split-Linear checks.

Every rank computes; rank 0 prints one JSON line of results that the test asserts on. The
single-process references are computed in this same program (no MPI needed for them).
"""

import json
import sys

import numpy as np

import minidl
from minidl import nn, optim
from minidl.distributed.collectives import RingAllreduce, broadcast_parameters, ring_allreduce
from minidl.distributed.comm import world
from minidl.distributed.compression import get_compressor
from minidl.distributed.ddp import DistributedDataParallel
from minidl.distributed.model_parallel import ColumnParallelLinear, Pipeline
from minidl.distributed.sampler import DistributedSampler
from minidl.distributed.zero import ZeroRedundancyOptimizer

comm = world(timeout=30)
N, rank = comm.size, comm.rank
results = {"ranks": N}

# ---------------------------------------------------------------- ring allreduce vs MPI's
ring = {}
for count in (1, 2, 3, 5, 7, 31, 1000, 4099):  # fewer values than ranks, primes, not a multiple of N
    x = np.random.default_rng(100 + rank).standard_normal(count).astype(np.float32) * (rank + 1)
    expected = np.zeros(count, np.float64)
    for r in range(N):  # every rank's values, summed in float64: the exact answer
        expected += np.random.default_rng(100 + r).standard_normal(count).astype(np.float32) * (r + 1)
    mine, theirs = x.copy(), x.copy()
    ring_allreduce(mine, comm)
    comm.allreduce(theirs)
    entry = {
        "ring_vs_mpi": float(np.abs(mine - theirs).max()),
        "ring_vs_exact": float(np.abs(mine - expected).max()),
        "scale": float(np.abs(expected).max() + 1),
    }
    for method in ("fp16", "trunc16"):
        compressed = x.copy()
        ring_allreduce(compressed, comm, compression=method)
        everyone = comm.allgather(compressed)
        entry[method + "_same_on_all_ranks"] = bool((everyone == everyone[0]).all())
        # Each of the N-1 hops and the final broadcast may round once; the error of each rounding is at
        # most relative_error times a partial sum, so bound it by (N + 1)·ε·Σ|x_r|.
        bound = (
            (N + 1)
            * get_compressor(method).relative_error
            * sum(
                np.abs(np.random.default_rng(100 + r).standard_normal(count).astype(np.float32) * (r + 1))
                for r in range(N)
            )
        )
        entry[method + "_within_bound"] = bool((np.abs(compressed - expected) <= bound + 1e-6).all())
    ring[count] = entry
results["ring"] = ring

# A RingAllreduce planned once and run three times (with averaging), new values in place each time:
# every run must give what a fresh one-off ring gives on the same values (bit for bit: same order).
persistent = {}
for count in (3, 1000, 4099):
    buffer = np.empty(count, np.float32)
    planned = RingAllreduce(buffer, comm, average=True)
    worst = 0.0
    for run in range(3):
        values = np.random.default_rng(1000 * run + rank).standard_normal(count).astype(np.float32)
        buffer[...] = values
        planned.run()
        fresh = values.copy()
        ring_allreduce(fresh, comm, average=True)
        worst = max(worst, float(np.abs(buffer - fresh).max()))
    persistent[count] = worst
results["ring_persistent_vs_fresh"] = persistent

# ---------------------------------------------------------------- broadcast of parameters
minidl.manual_seed(rank)  # different on every rank on purpose
model = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3))
broadcast_parameters(list(model.parameters()), comm)
gathered = comm.allgather(np.concatenate([p.array.ravel() for p in model.parameters()]))
results["broadcast_equal"] = bool((gathered == gathered[0]).all())


# ---------------------------------------------------------------- sync data parallel == one process, batch N·b
def make_data(n=N * 8 * 6, features=12, classes=5):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = (x[:, :classes].argmax(axis=1) + (x[:, -1] > 1)).astype(np.int64) % classes
    return minidl.data.TensorDataset(x, y)


def make_model():
    minidl.manual_seed(3)
    return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 5))


def train(model, dataset, batch, replicas, me, epochs=2, wrap=None, momentum=0.9):
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
    runner = wrap(model) if wrap else model
    sampler = DistributedSampler(dataset, replicas, me, seed=11)
    loader = minidl.data.DataLoader(dataset, batch_size=batch, sampler=sampler)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = loss_fn(runner(x), y)
            opt.zero_grad()
            loss.backward()
            if wrap:
                runner.synchronize()
            opt.step()
    return np.concatenate([p.array.ravel() for p in model.parameters()])


dataset = make_data()
b = 8
reference = train(make_model(), dataset, N * b, 1, 0)  # one process, batch N·b
ddp = {}
for name, kwargs in {
    "mpi_overlap": dict(overlap=True, bucket_cap_mb=1e-3),  # ~260 values a bucket: several buckets, several overlapping
    "mpi_no_overlap": dict(overlap=False),
    "ring": dict(algorithm="ring", bucket_cap_mb=1e-3),
    "fp16": dict(compression="fp16", overlap=True, bucket_cap_mb=1e-3),
    "trunc16": dict(compression="trunc16", overlap=True, bucket_cap_mb=1e-3),
    "ring_trunc16": dict(algorithm="ring", compression="trunc16"),
    "shared": dict(algorithm="shared"),  # averaged in one shared-memory window
}.items():
    params = train(make_model(), dataset, b, N, rank, wrap=lambda m, kw=kwargs: DistributedDataParallel(m, comm, **kw))
    everyone = comm.allgather(params)
    ddp[name] = {
        "max_diff_to_reference": float(np.abs(params - reference).max()),
        "same_on_all_ranks": bool((everyone == everyone[0]).all()),
    }
results["ddp"] = ddp
results["reference_norm"] = float(np.abs(reference).max())


# ---------------------------------------------------------------- DDP: .grad lives in the buckets
def ddp_variant(kind, steps=6, algorithm="mpi"):
    """A few steps of DDP with a twist in how the gradients get made; returns (params, facts)."""
    model = make_model()
    overlap = kind != "accumulate" and algorithm == "mpi"
    runner = DistributedDataParallel(model, comm, overlap=overlap, bucket_cap_mb=1e-3, algorithm=algorithm)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sampler = DistributedSampler(dataset, N, rank, seed=11)
    loader = minidl.data.DataLoader(dataset, batch_size=b, sampler=sampler)
    loss_fn = nn.CrossEntropyLoss()
    facts = {"grads_are_bucket_views": True, "second_backward_error": None}
    for step, (x, y) in zip(range(steps), loader):
        if kind == "zero_in_place":  # .grad stays the bucket view and is zeroed where it lies
            opt.zero_grad(set_to_none=False)
        else:
            opt.zero_grad()
        if kind == "accumulate":  # two half batches, one synchronize(): the same mean gradient
            for half in (slice(0, b // 2), slice(b // 2, b)):
                (loss_fn(runner(x[half]), y[half]) * 0.5).backward()
        else:
            loss = loss_fn(runner(x), y)
            loss.backward(retain_graph=kind == "second_backward")
            if kind == "second_backward" and step == 0:
                try:  # the first backward's buckets are already on their way: this must be refused
                    loss.backward()
                except RuntimeError as e:
                    facts["second_backward_error"] = str(e)
        runner.synchronize()
        buffers = [runner._flat] if algorithm == "shared" else [bucket.buffer for bucket in runner._buckets]
        for p in model.parameters():
            facts["grads_are_bucket_views"] &= any(np.shares_memory(p.grad.array, buf) for buf in buffers)
        opt.step()
    return np.concatenate([p.array.ravel() for p in model.parameters()]), facts


short_reference_model = make_model()  # one process, batch N·b, the same 6 steps
short_opt = optim.SGD(short_reference_model.parameters(), lr=0.1, momentum=0.9)
loader = minidl.data.DataLoader(dataset, batch_size=N * b, sampler=DistributedSampler(dataset, 1, 0, seed=11))
for _, (x, y) in zip(range(6), loader):
    short_opt.zero_grad()
    nn.CrossEntropyLoss()(short_reference_model(x), y).backward()
    short_opt.step()
short_reference = np.concatenate([p.array.ravel() for p in short_reference_model.parameters()])
views = {}
for kind in ("plain", "zero_in_place", "accumulate", "second_backward"):
    params, facts = ddp_variant(kind)
    everyone = comm.allgather(params)
    views[kind] = {
        **facts,
        "max_diff_to_reference": float(np.abs(params - short_reference).max()),
        "same_on_all_ranks": bool((everyone == everyone[0]).all()),
    }
for kind in ("plain", "zero_in_place", "accumulate"):  # algorithm='shared': .grad views one private flat buffer
    params, facts = ddp_variant(kind, algorithm="shared")
    everyone = comm.allgather(params)
    views["shared_" + kind] = {
        **facts,
        "max_diff_to_reference": float(np.abs(params - short_reference).max()),
        "same_on_all_ranks": bool((everyone == everyone[0]).all()),
    }
results["ddp_views"] = views


# ---------------------------------------------------------------- ZeroRedundancyOptimizer == one process
def zero_run(optimizer_class, hyper, steps, start=None, state=None, max_grad_norm=None):
    """`steps` steps of DDP(algorithm='shared') + ZeroRedundancyOptimizer on this rank's shard of each batch.

    start/state: weights and optimizer state to resume from. Returns (weights, state_dict, facts).
    """
    model = make_model()
    if start is not None:
        model.load_state_dict(start)
    runner = DistributedDataParallel(model, comm, algorithm="shared")
    opt = ZeroRedundancyOptimizer(runner, optimizer_class, max_grad_norm=max_grad_norm, **hyper)
    if state is not None:
        opt.load_state_dict(state)
    window = runner._shared.weights
    facts = {
        "weights_in_window": all(np.shares_memory(p.array, window) for p in model.parameters()),
        "weights_aligned": all(p.array.ctypes.data % 64 == 0 for p in model.parameters()),  # as parameter_storage's
    }
    loader = minidl.data.DataLoader(dataset, batch_size=b, sampler=DistributedSampler(dataset, N, rank, seed=11))
    batches = list(zip(range(6), loader))[6 - steps if start is not None else 0 :][:steps]
    norms = []
    for _, (x, y) in batches:
        opt.zero_grad()
        nn.CrossEntropyLoss()(runner(x), y).backward()
        opt.step()
        norms.append(opt.last_grad_norm)
    facts["norms"] = norms
    try:
        runner.synchronize()
    except RuntimeError as e:
        facts["synchronize_error"] = str(e)
    weights = {k: np.array(v.numpy()) for k, v in model.state_dict().items()}
    return weights, opt.state_dict(), facts


def reference_run(optimizer_class, hyper, steps=6, clip=None):
    """One process, batch N·b, the same steps (clipping the gradient's norm if asked): weights, state_dict, norms."""
    model = make_model()
    opt = optimizer_class(model.parameters(), **hyper)
    loader = minidl.data.DataLoader(dataset, batch_size=N * b, sampler=DistributedSampler(dataset, 1, 0, seed=11))
    norms = []
    for _, (x, y) in zip(range(steps), loader):
        opt.zero_grad()
        nn.CrossEntropyLoss()(model(x), y).backward()
        if clip is not None:
            norms.append(optim.clip_grad_norm_(model.parameters(), clip).item())
        opt.step()
    return {k: np.array(v.numpy()) for k, v in model.state_dict().items()}, opt.state_dict(), norms


def largest_difference(a, b):
    """The largest |a - b| over two state dicts, or over two optimizer states (nested dicts of arrays)."""
    if isinstance(a, dict):
        assert sorted(map(str, a)) == sorted(map(str, b)), (sorted(a), sorted(b))
        return max([largest_difference(a[k], b[k]) for k in a] + [0.0])
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


zero = {}
for label, optimizer_class, hyper in (
    ("sgd_momentum", optim.SGD, dict(lr=0.1, momentum=0.9)),
    ("adam", optim.Adam, dict(lr=0.01)),
):
    ref_weights, ref_state, _ = reference_run(optimizer_class, hyper)
    weights, state, facts = zero_run(optimizer_class, hyper, 6)
    # Resumed: 3 steps, save weights and the gathered state, 3 more steps in a new model and optimizer.
    half_weights, half_state, _ = zero_run(optimizer_class, hyper, 3)
    resumed, _, _ = zero_run(optimizer_class, hyper, 3, start=half_weights, state=half_state)
    flat = np.concatenate([w.ravel() for w in weights.values()])
    everyone = comm.allgather(flat)
    zero[label] = {
        **facts,
        "max_diff_to_reference": largest_difference(weights, ref_weights),
        "state_diff_to_reference": largest_difference(state["state"], ref_state["state"]),
        "resumed_diff_to_reference": largest_difference(resumed, ref_weights),
        "same_on_all_ranks": bool((everyone == everyone[0]).all()),
    }
# Clipped: the averaged gradient's norm over all slices, as clip_grad_norm_ on one process with batch N·b.
CLIP = 0.2  # below every step's norm here (0.24-0.40 on 2-3 ranks), so the steps clip
ref_weights, _, ref_norms = reference_run(optim.SGD, dict(lr=0.1, momentum=0.9), clip=CLIP)
weights, _, facts = zero_run(optim.SGD, dict(lr=0.1, momentum=0.9), 6, max_grad_norm=CLIP)
zero["clipped"] = {
    "max_diff_to_reference": largest_difference(weights, ref_weights),
    "norms": facts["norms"],
    "reference_norms": ref_norms,
}
errors = {}
for label, make in (
    ("shared_compressed", lambda: DistributedDataParallel(make_model(), comm, algorithm="shared", compression="fp16")),
    ("zero_on_mpi", lambda: ZeroRedundancyOptimizer(DistributedDataParallel(make_model(), comm), optim.SGD, lr=0.1)),
    (
        "zero_lbfgs",
        lambda: ZeroRedundancyOptimizer(DistributedDataParallel(make_model(), comm, algorithm="shared"), optim.LBFGS),
    ),
):
    try:
        make()
        errors[label] = None
    except (TypeError, ValueError) as e:
        errors[label] = f"{type(e).__name__}: {e}"
zero["errors"] = errors
results["zero"] = zero


# ---------------------------------------------------------------- pipeline == one process
def make_deep():
    minidl.manual_seed(5)
    return nn.Sequential(
        nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 20), nn.Tanh(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 5)
    )


x_all, y_all = dataset.arrays
single = make_deep()
opt = optim.SGD(single.parameters(), lr=0.1, momentum=0.9)
for step in range(6):
    xs, ys = x_all[step * 16 : (step + 1) * 16], y_all[step * 16 : (step + 1) * 16]
    opt.zero_grad()
    nn.CrossEntropyLoss()(single(minidl.tensor(xs)), minidl.tensor(ys)).backward()
    opt.step()
pipe = Pipeline(make_deep(), comm, micro_batches=3)
opt = optim.SGD(pipe.parameters(), lr=0.1, momentum=0.9)
for step in range(6):
    xs, ys = x_all[step * 16 : (step + 1) * 16], y_all[step * 16 : (step + 1) * 16]
    opt.zero_grad()
    pipe.train_step(xs if pipe.first else None, ys if pipe.last else None, nn.CrossEntropyLoss())
    opt.step()
start, end = pipe.bounds[rank]
mine = [p.array for p in pipe.stage.parameters()]
theirs = [p.array for p in nn.Sequential(*list(single)[start:end]).parameters()]
diff = max(float(np.abs(a - b).max()) for a, b in zip(mine, theirs))
results["pipeline"] = {"bounds": pipe.bounds, "max_diff": max(comm.allgather(np.array([diff]))[:, 0].tolist())}


# ---------------------------------------------------------------- a Linear split by output units == one Linear
def make_split(parallel):
    minidl.manual_seed(9)
    first = nn.Linear(12, 23)  # 23 outputs: an uneven split over 2, 3 or 4 ranks
    return nn.Sequential(
        ColumnParallelLinear.from_linear(first, comm) if parallel else first, nn.ReLU(), nn.Linear(23, 5)
    )


models = {}
for parallel in (False, True):
    m = make_split(parallel)
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    for step in range(6):
        xs, ys = x_all[step * 16 : (step + 1) * 16], y_all[step * 16 : (step + 1) * 16]
        opt.zero_grad()
        nn.CrossEntropyLoss()(m(minidl.tensor(xs)), minidl.tensor(ys)).backward()
        opt.step()
    models[parallel] = m
split = models[True][0]
results["split_linear"] = {
    "weight_diff": float(np.abs(split.full_weight() - models[False][0].weight.array).max()),
    "bias_diff": float(np.abs(split.full_bias() - models[False][0].bias.array).max()),
    "next_layer_diff": float(np.abs(models[True][2].weight.array - models[False][2].weight.array).max()),
    "rows_here": split.weight.shape[0],
}

comm.barrier()
if rank == 0:
    print("RESULTS " + json.dumps(results))
    sys.stdout.flush()
