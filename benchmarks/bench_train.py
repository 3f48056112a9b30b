"""Training-step throughput: minidl beside PyTorch CPU, both on one thread, measured in the same run.

    python benchmarks/bench_train.py [--repeats 7] [--min-time 0.3] [--kernels numpy,c,c-fused] [--cases mlp,cnn]

One step = zero_grad, forward, cross-entropy loss, backward, SGD step, for
  - an MLP 784-512-512-10 (ReLU), batch 128, and
  - a small CNN on 1x28x28 images (conv3x3 16 - relu - maxpool2 - conv3x3 32 - relu - maxpool2 - linear 10), batch 64.
Both frameworks start from the same weights and see the same batch (the first step's
losses are compared, so we know they compute the same thing). minidl runs with each
kernel set that is built ("numpy": the reference kernels on NumPy/OpenBLAS; "c": the C
SIMD kernels, the model as written, every layer its own node; "c-fused": the same after
nn.fuse(model), each Linear/Conv2d and the activation after it one op, as `minidl train` runs). OpenBLAS is
limited to 1 thread with threadpoolctl, PyTorch with torch.set_num_threads(1). Each
number is the median of --repeats samples; samples of the two frameworks are
interleaved so a noisy neighbour slows both.
ratio = minidl samples/s / PyTorch samples/s (> 1: minidl is faster).
"""

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

import minidl
from minidl import nn, optim


def mlp_minidl():
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def mlp_torch(torch):
    t = torch.nn
    return t.Sequential(t.Linear(784, 512), t.ReLU(), t.Linear(512, 512), t.ReLU(), t.Linear(512, 10))


def cnn_minidl():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip


def cnn_torch(torch):
    t = torch.nn
    return t.Sequential(
        t.Conv2d(1, 16, 3, padding=1), t.ReLU(), t.MaxPool2d(2),
        t.Conv2d(16, 32, 3, padding=1), t.ReLU(), t.MaxPool2d(2),
        t.Flatten(), t.Linear(32 * 7 * 7, 10),
    )  # fmt: skip


CASES = [
    ("MLP 784-512-512-10, batch 128", mlp_minidl, mlp_torch, (128, 784), 128),
    ("CNN 1x28x28 16-32 conv, batch 64", cnn_minidl, cnn_torch, (64, 1, 28, 28), 64),
]


def minidl_step(model, optimizer, x, y):
    def step():
        optimizer.zero_grad()
        loss = minidl.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def torch_step(torch, model, optimizer, x, y):
    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def median_seconds(steps, repeats, min_time):
    """Median seconds per call of each step function; calls interleaved, each sample loops >= min_time."""
    loops = []
    for step in steps:
        for _ in range(3):  # warm up: allocations, kernel dispatch, first-call caches
            step()
        start = time.perf_counter()
        step()
        loops.append(max(1, int(min_time / max(time.perf_counter() - start, 1e-6))))
    samples = [[] for _ in steps]
    for _ in range(repeats):
        for i, step in enumerate(steps):
            start = time.perf_counter()
            for _ in range(loops[i]):
                step()
            samples[i].append((time.perf_counter() - start) / loops[i])
    return [statistics.median(s) for s in samples]


def same_start(torch, make_ours, make_theirs, input_shape, batch):
    """Both models with the same starting weights, and one batch (NumPy x, y) for both."""
    minidl.manual_seed(0)
    ours = make_ours()
    theirs = make_theirs(torch)
    with torch.no_grad():
        for (_, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            q.copy_(torch.from_numpy(p.array.copy()))
    rng = np.random.default_rng(0)
    return ours, theirs, rng.standard_normal(input_shape).astype(np.float32), rng.integers(0, 10, batch)


def load_peer(script):
    """(torch, threadpool_limits) with PyTorch on one thread, or None after saying what is missing."""
    try:
        import torch
        from threadpoolctl import threadpool_limits
    except ImportError as e:
        print(f"{script} needs PyTorch and threadpoolctl (pip install -e '.[dev]'): {e}", file=sys.stderr)
        return None
    torch.set_num_threads(1)
    return torch, threadpool_limits


def run_case(torch, label, make_ours, make_theirs, input_shape, batch, kernels, repeats, min_time):
    kernel_set, _, variant = kernels.partition("-")  # "c-fused": the C kernels and nn.fuse(model)
    minidl.set_kernels(kernel_set)
    ours, theirs, x, y = same_start(torch, make_ours, make_theirs, input_shape, batch)
    if variant == "fused":
        ours = nn.fuse(ours)  # shares the parameters: the same weights, fewer graph nodes
    step_ours = minidl_step(ours, optim.SGD(ours.parameters(), lr=0.01), minidl.tensor(x), minidl.tensor(y))
    step_theirs = torch_step(
        torch, theirs, torch.optim.SGD(theirs.parameters(), lr=0.01), torch.from_numpy(x), torch.from_numpy(y)
    )
    loss_difference = abs(step_ours().item() - step_theirs().item())
    seconds_ours, seconds_theirs = median_seconds([step_ours, step_theirs], repeats, min_time)
    return batch / seconds_ours, batch / seconds_theirs, loss_difference


def describe_machine(torch):
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    blas_text = ", ".join(f"{p['internal_api']} {p['version']} ({p.get('architecture', '?')})" for p in blas)
    info = minidl.backend.describe()
    c_kernels = f"built, SIMD path {info['simd_path']}" if "c" in info["available_kernels"] else "not built"
    return [
        f"CPU: {cpu}; {os.cpu_count()} logical cores (shared machine: numbers are noisy, medians help)",
        f"Python {platform.python_version()}, NumPy {np.__version__} with {blas_text or 'unknown BLAS'}",
        f"PyTorch {torch.__version__} ({torch.get_num_threads()} thread); minidl {minidl.__version__}, "
        f"C kernels: {c_kernels}",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="samples per measurement (median is reported)")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per sample")
    default_sets = minidl.available_kernels() + (["c-fused"] if "c" in minidl.available_kernels() else [])
    parser.add_argument(
        "--kernels",
        default=",".join(default_sets),
        help="comma-separated kernel sets: numpy, c, c-fused (C kernels on nn.fuse(model)), numpy-fused",
    )
    parser.add_argument("--cases", default="mlp,cnn", help="comma-separated: mlp, cnn")
    args = parser.parse_args(argv)
    peer = load_peer("bench_train")
    if peer is None:
        return 1
    torch, threadpool_limits = peer
    kernel_sets = [k for k in args.kernels.split(",") if k]
    missing = [k for k in kernel_sets if k.partition("-")[0] not in minidl.available_kernels()]
    if missing:
        print(f"kernel sets not available here: {missing}", file=sys.stderr)
        return 1

    with threadpool_limits(limits=1, user_api="blas"):
        for line in describe_machine(torch):
            print(line)
        print(f"one training step (forward, backward, SGD); median of {args.repeats} samples of >= {args.min_time}s\n")
        header = f"{'case':34} {'kernels':10} {'minidl samples/s':>17} {'PyTorch samples/s':>18} {'ratio':>7}"
        header += f" {'|Δ loss|':>9}"
        print(header)
        print("-" * len(header))
        wanted = {c.strip().lower() for c in args.cases.split(",")}
        for label, make_ours, make_theirs, shape, batch in CASES:
            if label.split()[0].lower() not in wanted:
                continue
            for kernels in kernel_sets:
                ours, theirs, difference = run_case(
                    torch, label, make_ours, make_theirs, shape, batch, kernels, args.repeats, args.min_time
                )
                print(f"{label:34} {kernels:10} {ours:17.0f} {theirs:18.0f} {ours / theirs:7.2f} {difference:9.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
