"""MPI benchmarks: allreduce bandwidth (ring vs MPI's), data-parallel scaling with and without overlap, bytes sent.

    python benchmarks/bench_mpi.py [--repeats 5] [--ranks 2,4] [--batches 64,256] [--tables 1,2,3] [--quick]

Everything from one run; the script starts its own MPI jobs with the environment's mpiexec,
as `minidl launch` does (one BLAS thread per rank, each rank pinned to a core of its own when
the ranks fit), and prints three tables:

1. allreduce bandwidth for 4 KB - 64 MB float32 buffers on 2 and 4 ranks: the ring allreduce
   of minidl.distributed.collectives (written in Python over Sendrecv; since session 9 planned
   once per buffer, RingAllreduce, as DistributedDataParallel runs it) beside MPI's own
   MPI_Allreduce, samples interleaved (~32 MB moved per sample). Bandwidth = buffer bytes / time
   ("algorithm bandwidth"); the ms columns are medians. ratio = ring / MPI bandwidth, the median
   of the ratios of samples taken side by side (since session 9; before, the ratio of the two
   medians) (goal: >= 0.9 from 1 MB on).
2. synchronous data parallelism, samples/s of an MLP 784-512-512-10 (batch 64 and 256 per rank)
   on 1 process and on 2 ranks (DistributedDataParallel with the ring and with MPI's
   allreduce, overlap on and off; with algorithm='shared', the ranks averaging in shared
   memory; and that plus ZeroRedundancyOptimizer, one shared copy of the weights with the
   update split over the ranks), beside two peers: two independent processes, and the same
   in lockstep (a barrier every step). All in one 2-rank job, samples interleaved, so ratios
   compare like with like. speed-up = 2-rank samples/s / 1-process samples/s (goal: >= 1.7 on
   2 cores).
   The 1-process baseline (since session 7) is a separate plain process, with no MPI in it,
   that rank 0 starts and keeps for the whole job (PlainProcess): between the other samples
   rank 0 asks it over a pipe to run the same steps, on rank 0's core, while both ranks sleep.
   So it is what one process alone achieves, under the same machine load as the 2-rank
   samples next to it (this machine's speed drifts by 30% and more within minutes, so a
   baseline taken in another minute moves every ratio). The old baseline, rank 0 of the job
   training while rank 1 waits in a barrier, is still printed ("rank 0 in job"): in session 7
   the two agreed within the noise (rank 0 in job / 1 process = 0.94-1.14), so neither the
   waiting rank's polling nor MPI in the process slowed the old baseline measurably.
   Until session 8 the batch size never reached the MPI jobs: both rows of table 2 ran batch 64.
3. bytes sent per rank per step: a DDP step (MPI allreduce), a ring-allreduce DDP step and a
   parameter-server round trip (push gradients + pull parameters), with float32, fp16 and
   the truncated 16-bit float; and the bytes a shared-memory DDP step writes for the others.

Timings are medians of --repeats samples; on a shared machine they are noisy, ratios less so.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.abspath(__file__)
REPO = os.path.dirname(os.path.dirname(HERE))
SIZES = [4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20]  # bytes


# ---------------------------------------------------------------------------
# Parts that run under MPI (python bench_mpi.py --part NAME, started by mpiexec)
# ---------------------------------------------------------------------------
def part_allreduce(args):
    from minidl.distributed.collectives import RingAllreduce
    from minidl.distributed.comm import world

    comm = world(timeout=300)
    results = []
    for nbytes in SIZES:
        if args.quick and nbytes > (16 << 20):
            continue
        count = nbytes // 4
        buffer = np.zeros(count, np.float32)  # stays finite however many in-place sums (ones overflowed)
        iterations = max(1, min(200, (32 << 20) // nbytes))  # ~32 MB moved per sample, at least one call
        samples = {"ring": [], "mpi": []}
        ring = RingAllreduce(buffer, comm)  # planned once, as DistributedDataParallel does per bucket
        for repeat in range(args.repeats):
            # Interleaved, so a noisy neighbour slows both, and in alternating order, so neither
            # always runs first after the barrier.
            for name in ("ring", "mpi") if repeat % 2 == 0 else ("mpi", "ring"):
                comm.barrier()
                start = time.perf_counter()
                for _ in range(iterations):
                    if name == "ring":
                        ring.run()
                    else:
                        comm.comm.Allreduce(comm.MPI.IN_PLACE, buffer)
                elapsed = (time.perf_counter() - start) / iterations
                samples[name].append(comm.allreduce(np.array([elapsed]))[0] / comm.size)  # mean over ranks
        # The ratio of each pair of samples taken together, then their median: this machine's speed
        # drifts between samples, and a ratio of two separate medians would mix minutes.
        ratios = [m / r for r, m in zip(samples["ring"], samples["mpi"])]
        medians = {k: statistics.median(v) for k, v in samples.items()}
        results.append({"bytes": nbytes, **medians, "ratio": statistics.median(ratios)})
    return {"ranks": comm.size, "allreduce": results}


def mlp():
    from minidl import nn

    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


# The DistributedDataParallel settings of table 2 (the MLP's 2.6 MB of gradients fill one 4 MiB bucket).
DDP_VARIANTS = {
    "ring": dict(algorithm="ring"),
    "mpi_overlap": dict(algorithm="mpi", overlap=True, bucket_cap_mb=0.5),  # 4 buckets, 3 start during backward
    "mpi": dict(algorithm="mpi", overlap=False),
    "shared": dict(algorithm="shared"),  # the ranks average in one window of shared memory
    "zero": dict(algorithm="shared"),  # ... and share the weights, each updating its slice (ZeroRedundancyOptimizer)
}


class PlainProcess:
    """The "1 process" baseline: the same training step in a separate process with no MPI at all.

    Started by rank 0 (`bench_mpi.py --part plain`), kept alive for the whole job, and asked over a
    pipe to run `steps` steps whenever the job takes a "1 process" sample, so that its samples are
    interleaved with the 2-rank ones and see the same load from the rest of the machine. It
    keeps the core it inherits from rank 0, so it runs as each rank does (pinned, one BLAS
    thread) but with no MPI in it; while it runs both ranks are asleep (rank 0 blocked on the
    pipe, the others sleeping between tests of a barrier), so it is one process alone.
    """

    def __init__(self, args):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "MPIR_", "MPICH_"))}
        command = [sys.executable, HERE, "--part", "plain", "--batch", str(args.batch)]
        command += ["--quick"] if args.quick else []
        self.proc = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ask("ready")

    def ask(self, request):
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the plain 1-process baseline exited (code {self.proc.wait()})")
        return float(answer)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def training_data(batch, seed):
    """One fixed batch of random inputs and labels (each rank its own seed)."""
    import minidl

    rng = np.random.default_rng(seed)
    x = minidl.tensor(rng.standard_normal((batch, 784)).astype(np.float32))
    return x, minidl.tensor(rng.integers(0, 10, batch))


def training_model():
    """The MLP (the same initial weights everywhere) and its optimizer: the same step in every variant."""
    import minidl
    from minidl import optim

    minidl.manual_seed(0)
    model = mlp()
    return model, optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def part_plain(args):
    """The baseline process (no MPI): answer each request on stdin with the seconds `steps` steps took."""
    from minidl import nn

    model, opt = training_model()
    x, y = training_data(args.batch, seed=0)  # rank 0's batch
    loss_fn = nn.CrossEntropyLoss()
    steps = ddp_steps(args)
    for request in sys.stdin:
        start = time.perf_counter()
        if request.strip() == "run":
            for _ in range(steps):
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        print(time.perf_counter() - start, flush=True)


def ddp_steps(args):
    return 10 if args.quick else 20


def part_ddp(args):
    from minidl import nn, optim
    from minidl.distributed.collectives import RingAllreduce
    from minidl.distributed.comm import poll, world
    from minidl.distributed.ddp import DistributedDataParallel
    from minidl.distributed.zero import ZeroRedundancyOptimizer

    comm = world(timeout=300)
    batch, steps = args.batch, ddp_steps(args)
    x, y = training_data(batch, seed=comm.rank)
    loss_fn = nn.CrossEntropyLoss()
    # "single": the baseline, one process alone (PlainProcess above), between the other variants.
    # "rank0_alone": how it used to be measured, for comparison: rank 0 of this job trains, pinned
    #   to its core, while the other rank waits in a barrier (spinning 20 ms, then asleep).
    # "independent": every rank trains its own model, no communication: what the machine allows.
    # "lockstep": the same, plus a barrier after every step: what waiting for each other costs.
    variants = ["single", "rank0_alone"] + list(DDP_VARIANTS) + ["independent", "lockstep"]
    if args.variants:  # a subset (the baseline always runs)
        variants = ["single"] + [v for v in variants if v in args.variants.split(",") and v != "single"]
    models = {}
    for name in variants:
        if name == "single":
            continue
        model, opt = training_model()
        runner = DistributedDataParallel(model, comm, **DDP_VARIANTS[name]) if name in DDP_VARIANTS else model
        if name == "zero":  # the same SGD, its update split over the ranks
            opt = ZeroRedundancyOptimizer(runner, optim.SGD, lr=0.01, momentum=0.9)
        models[name] = (runner, opt)
    plain = PlainProcess(args) if comm.rank == 0 else None

    def step(name):
        runner, opt = models[name]
        loss = loss_fn(runner(x), y)
        opt.zero_grad()
        loss.backward()
        if name in DDP_VARIANTS and name != "zero":  # ZeroRedundancyOptimizer.step() averages itself
            runner.synchronize()
        opt.step()
        if name == "lockstep":
            comm.barrier()

    def sample(name):
        """Samples/s of `steps` steps of variant `name` (all ranks, or one process for the first two)."""
        comm.barrier()
        if name in ("single", "rank0_alone"):
            elapsed = np.zeros(1)
            if comm.rank == 0:
                if name == "single":
                    elapsed[0] = plain.ask("run")
                else:
                    start = time.perf_counter()
                    for _ in range(steps):
                        step(name)
                    elapsed[0] = time.perf_counter() - start
            if name == "single":  # asleep between tests, from the start: leave the machine to the plain process
                barrier = comm.comm.Ibarrier()
                poll(barrier.Test, comm.timeout, lambda waited: "baseline barrier", spin=0.0)
            else:
                comm.barrier()
            return batch * steps / comm.allreduce(elapsed)[0]
        start = time.perf_counter()
        for _ in range(steps):
            step(name)
        elapsed = comm.allreduce(np.array([time.perf_counter() - start]))[0] / comm.size
        return batch * comm.size * steps / elapsed

    for name in variants:  # warm up
        sample(name)
    samples = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name in variants:
            samples[name].append(sample(name))
    if plain is not None:
        plain.close()
    # The gradient allreduce alone, for the record: how much communication there is to hide.
    grads = np.zeros(sum(p.array.size for p in mlp().parameters()), np.float32)
    times = {"mpi": [], "ring": []}
    ring = RingAllreduce(grads, comm)
    for _ in range(args.repeats):
        for name in times:
            comm.barrier()
            start = time.perf_counter()
            for _ in range(10):
                comm.allreduce(grads) if name == "mpi" else ring.run()
            times[name].append((time.perf_counter() - start) / 10)
    return {
        "ranks": comm.size,
        "samples_per_second": {k: statistics.median(v) for k, v in samples.items()},
        "allreduce_ms": 1e3 * statistics.median(times["mpi"]),
        "ring_allreduce_ms": 1e3 * statistics.median(times["ring"]),
        "gradient_bytes": grads.nbytes,
    }


def part_bytes(args):
    import minidl
    from minidl import nn
    from minidl.distributed.comm import world
    from minidl.distributed.ddp import DistributedDataParallel
    from minidl.distributed.parameter_server import Layout, WorkerClient
    from minidl.distributed.rules import ServerRules, UpdateRule

    comm = world(timeout=300)
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((16, 784)).astype(np.float32))
    y = minidl.tensor(rng.integers(0, 10, 16))
    rows = {}
    for algorithm in ("mpi", "ring"):
        for compression in ("none", "fp16", "trunc16"):
            minidl.manual_seed(0)
            ddp = DistributedDataParallel(mlp(), comm, compression=compression, algorithm=algorithm)
            before = comm.bytes_sent
            nn.CrossEntropyLoss()(ddp(x), y).backward()
            ddp.synchronize()
            rows[f"DDP step, {algorithm} allreduce, {compression}"] = comm.bytes_sent - before
    minidl.manual_seed(0)
    ddp = DistributedDataParallel(mlp(), comm, algorithm="shared")  # bytes written for the other ranks to read
    before = comm.bytes_sent
    nn.CrossEntropyLoss()(ddp(x), y).backward()
    ddp.synchronize()
    rows["DDP step, shared memory (published), none"] = comm.bytes_sent - before
    # Parameter server: rank 0 serves one pull and one push from every worker, per compression.
    model = mlp()
    params = [p.array for p in model.parameters()]
    layout = Layout([p.shape for p in params], 1)
    for compression in ("none", "fp16", "trunc16"):
        comm.barrier()
        if comm.rank == 0:
            from minidl.distributed.parameter_server import ParameterServer

            rules = ServerRules(
                [p.copy() for p in params],
                UpdateRule("sgd", lr=0.01),
                "async",
                comm.size - 1,
                total_updates=comm.size - 1,
            )
            server = ParameterServer(comm, rules, range(1, comm.size), compression=compression)
            before = comm.bytes_sent
            server.run()
            sent = comm.bytes_sent - before
            rows[f"server, one reply to a pull, {compression}"] = sent // (2 * (comm.size - 1))  # 2 pulls each
        else:
            client = WorkerClient(comm, layout, [0], comm.rank - 1, compression=compression)
            before = comm.bytes_sent
            client.pull(params)
            client.push([np.ones_like(p) for p in params])
            client.pull(params)  # answered "done": training is over after one update per worker
            client.leave()
            rows[f"worker, one push (+ 2 pull requests), {compression}"] = comm.bytes_sent - before
    everyone = comm.gather_object(rows)
    if comm.rank == 0:
        merged = {}
        for entry in everyone:
            for key, value in entry.items():
                merged.setdefault(key, value)
        rows = merged
    return {"ranks": comm.size, "bytes": rows, "parameters": int(sum(p.size for p in params))}


PARTS = {"allreduce": part_allreduce, "ddp": part_ddp, "bytes": part_bytes, "plain": part_plain}


# ---------------------------------------------------------------------------
# The launcher: start the parts, print the tables
# ---------------------------------------------------------------------------
def run_part(ranks, part, args):
    from minidl.distributed.launch import mpiexec_prefix, rank_environment

    env = rank_environment()
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    # Started as `minidl launch` starts ranks: each pinned to a core of its own if they fit.
    command = mpiexec_prefix(ranks) + [sys.executable, HERE, "--part", part, "--repeats", str(args.repeats)]
    command += ["--batch", str(args.batch)]  # table 2's batch per rank (until session 8 it was left out: always 64)
    command += ["--quick"] if args.quick else []
    command += ["--variants", args.variants] if args.variants else []
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{part} on {ranks} ranks failed:\n{proc.stderr[-2000:]}")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def human(nbytes):
    for unit, size in (("MB", 1 << 20), ("KB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:g} {unit}"
    return f"{nbytes} B"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ranks", default="2,4", help="rank counts for the allreduce table")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and steps (a smoke test)")
    parser.add_argument("--batches", default="64,256", help="per-rank batch sizes for the data-parallel table")
    parser.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--tables", default="1,2,3", help="which tables to print (e.g. --tables 2)")
    parser.add_argument(
        "--variants",
        default="",
        help="table 2: only these columns, e.g. lockstep,zero (names: rank0_alone, independent, lockstep, "
        + ", ".join(DDP_VARIANTS)
        + "; default all)",
    )
    args = parser.parse_args()
    if args.part == "plain":  # the 1-process baseline: no MPI in this process
        part_plain(args)
        return
    if args.part:
        result = PARTS[args.part](args)
        from minidl.distributed.comm import world

        if world().rank == 0:
            print("RESULT " + json.dumps(result), flush=True)
        return
    import platform

    print(
        f"bench_mpi: {platform.machine()}, {os.cpu_count()} cores, one BLAS thread per rank, "
        f"median of {args.repeats} samples"
    )

    tables = set(args.tables.split(","))
    if "1" in tables:
        table_allreduce(args)
    if "2" in tables:
        table_data_parallel(args)
    if "3" in tables:
        table_bytes(args)


def table_allreduce(args):
    print("\n1. allreduce bandwidth (buffer bytes / time), ring vs MPI_Allreduce")
    print(f"{'ranks':>5} {'size':>8} {'ring ms':>9} {'MPI ms':>9} {'ring GB/s':>10} {'MPI GB/s':>9} {'ratio':>6}")
    for ranks in [int(r) for r in args.ranks.split(",")]:
        for row in run_part(ranks, "allreduce", args)["allreduce"]:
            ring, mpi = row["ring"], row["mpi"]
            print(
                f"{ranks:5d} {human(row['bytes']):>8} {ring * 1e3:9.3f} {mpi * 1e3:9.3f} "
                f"{row['bytes'] / ring / 1e9:10.3f} {row['bytes'] / mpi / 1e9:9.3f} {row['ratio']:6.2f}"
            )


def table_data_parallel(args):
    print("\n2. synchronous data parallelism, MLP 784-512-512-10: samples/s and speed-up over one process")
    print("   1 process = the same step in a plain process (no MPI, on rank 0's core) while the ranks sleep;")
    print("   rank 0 in job = the old baseline: rank 0 trains, pinned, while rank 1 waits in a barrier;")
    print("   2 independent = two processes training alone, no communication: the most 2 ranks can get here;")
    print("   2 lockstep = the same with a barrier after every step: what waiting for each other costs;")
    print("   DDP ring = algorithm='ring' (blocking, after backward); DDP MPI = MPI's allreduce, no overlap;")
    print("   DDP MPI overlap = 0.5 MiB buckets whose non-blocking allreduce starts during backward;")
    print("   DDP shared mem = algorithm='shared': the ranks average in one window of shared memory;")
    print("   ZeRO shared mem = the same plus ZeroRedundancyOptimizer: one shared copy of the weights,")
    print("                     each rank averages and updates its half")
    columns = [
        ("rank0_alone", "rank 0 in job"),
        ("independent", "2 independent"),
        ("lockstep", "2 lockstep"),
        ("ring", "DDP ring"),
        ("mpi", "DDP MPI"),
        ("mpi_overlap", "DDP MPI overlap"),
        ("shared", "DDP shared mem"),
        ("zero", "ZeRO shared mem"),
    ]
    header = ["batch/rank", "1 process"]
    for _, title in columns:
        header += [title, "x"]
    print(" ".join(f"{h:>15}" if len(h) > 1 else f"{h:>5}" for h in header))
    for batch in [int(b) for b in args.batches.split(",")]:
        args.batch = batch
        pairs = [run_part(2, "ddp", args) for _ in range(2)]  # two jobs, 2 x --repeats samples
        single = statistics.median(p["samples_per_second"]["single"] for p in pairs)
        row = [f"{batch:>15d}", f"{single:>15.0f}"]
        for name, _ in columns:
            if name not in pairs[0]["samples_per_second"]:
                row += [f"{'-':>15}", f"{'-':>5}"]
                continue
            value = statistics.median(p["samples_per_second"][name] for p in pairs)
            row += [f"{value:>15.0f}", f"{value / single:>5.2f}"]
        print(" ".join(row))
    print(
        f"(the gradients, {human(pairs[-1]['gradient_bytes'])}, take {pairs[-1]['allreduce_ms']:.2f} ms "
        f"with MPI's allreduce and {pairs[-1]['ring_allreduce_ms']:.2f} ms with the ring on 2 ranks between steps)"
    )


def table_bytes(args):
    print("\n3. bytes sent per rank (MLP 784-512-512-10)")
    for ranks in (2, 4):
        result = run_part(ranks, "bytes", args)
        print(f"{ranks} ranks, {result['parameters']} parameters ({human(4 * result['parameters'])} in float32):")
        rows = result["bytes"]
        for key in sorted(
            rows, key=lambda k: (k.rsplit(", ", 1)[0], ["none", "fp16", "trunc16"].index(k.rsplit(", ", 1)[1]))
        ):
            base = rows[key.rsplit(", ", 1)[0] + ", none"]
            if key.startswith("DDP step, shared"):  # against what the MPI allreduce sends for the same step
                base = rows["DDP step, mpi allreduce, none"]
            print(f"  {key:45s} {rows[key]:>12,d} bytes  {rows[key] / base:5.2f}x")


if __name__ == "__main__":
    main()
