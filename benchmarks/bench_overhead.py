"""Per-op overhead on small tensors: minidl beside PyTorch CPU eager, measured in the same run.

On 4x4 and 32x32 tensors the arithmetic costs next to nothing, so these numbers are the
framework's own cost per op: Python dispatch, argument checks, recording the graph, and
the backward engine. "fwd" runs the op on inputs that require grad (so the graph is
recorded, as in training); "fwd+bwd" also runs backward from the op's output and clears
the gradients. Each number is the median over several repeats of the time per call.
PyTorch runs on one thread; without PyTorch installed, only minidl is printed.

    python benchmarks/bench_overhead.py [--repeats 7] [--min-time 0.02] [--kernels numpy|c] [--no-torch] [--chains-only]

The second table times chains of 100 ops with one backward() at the end: the cost per op
of recording the graph and of the backward pass, which is what a deep model pays per layer.
"""

import argparse
import statistics
import time

import numpy as np

import minidl

SIZES = (4, 32)


def load_torch(wanted):
    if not wanted:
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


class Framework:
    """The few calls the benchmark needs, for minidl or torch, so every case is written once."""

    def __init__(self, name, module):
        self.name = name
        self.module = module

    def tensor(self, array, requires_grad=True):
        if self.name == "minidl":
            return minidl.tensor(array, requires_grad=requires_grad)
        return self.module.tensor(array, requires_grad=requires_grad)

    def ones_like(self, t):
        return minidl.ones_like(t) if self.name == "minidl" else self.module.ones_like(t)

    def linear(self, x, w, b):
        return minidl.linear(x, w, b) if self.name == "minidl" else self.module.nn.functional.linear(x, w, b)

    def mse_loss(self, prediction, target):
        if self.name == "minidl":
            return minidl.mse_loss(prediction, target)
        return self.module.nn.functional.mse_loss(prediction, target)

    def no_grad(self):
        return minidl.no_grad() if self.name == "minidl" else self.module.no_grad()


# name -> the op on (a, b); both are float32 (n, n) tensors that require grad
OPS = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "scalar mul": lambda a, b: a * 2.0,
    "exp": lambda a, b: a.exp(),
    "relu": lambda a, b: a.relu(),
    "sum": lambda a, b: a.sum(),
    "matmul": lambda a, b: a @ b,
    "reshape": lambda a, b: a.reshape(-1),
    "getitem": lambda a, b: a[1:, :2],
}


def op_case(fw, op, n):
    """(forward, forward_and_backward) closures for one op at size n x n."""
    g = np.random.default_rng(0)
    a = fw.tensor(g.standard_normal((n, n)).astype(np.float32))
    b = fw.tensor(g.standard_normal((n, n)).astype(np.float32))
    out = op(a, b)
    seed_grad = fw.ones_like(out)  # backward from a non-scalar output needs d out

    def forward():
        op(a, b)

    def forward_backward():
        op(a, b).backward(seed_grad)
        a.grad = None
        b.grad = None

    return forward, forward_backward


# name -> one link of a chain y -> op(y); values stay bounded over 100 links (w is orthogonal)
CHAIN_OPS = {
    "add": lambda y, b, w: y + b,
    "mul": lambda y, b, w: y * b,
    "scalar mul": lambda y, b, w: y * 1.0001,
    "tanh": lambda y, b, w: y.tanh(),
    "relu": lambda y, b, w: y.relu(),
    "sigmoid": lambda y, b, w: y.sigmoid(),
    "matmul": lambda y, b, w: y @ w,
    "reshape": lambda y, b, w: y.reshape(-1),
}
CHAIN_LENGTH = 100


def chain_case(fw, op, n):
    """(forward, forward_and_backward) of a CHAIN_LENGTH-op chain from one leaf, backward from its sum.

    This is the per-op cost a deep model pays: the fixed cost of one backward() call is shared
    by the whole chain, so what remains is recording a node and visiting it in the backward pass.
    """
    g = np.random.default_rng(0)
    a = fw.tensor(g.standard_normal((n, n)).astype(np.float32))
    b = fw.tensor((1 + 0.001 * g.standard_normal((n, n))).astype(np.float32))
    w = fw.tensor(np.linalg.qr(g.standard_normal((n, n)))[0].astype(np.float32))

    def forward():
        y = a
        for _ in range(CHAIN_LENGTH):
            y = op(y, b, w)
            if y.ndim == 1:  # reshape(-1) flattens: bring it back for the next link
                y = y.reshape(n, n)
        return y

    def forward_backward():
        forward().sum().backward()
        a.grad = b.grad = w.grad = None

    return forward, forward_backward


def mlp_case(fw, n):
    """A two-layer MLP (n -> n -> n, batch n, relu, MSE): forward, or forward + backward + SGD step."""
    g = np.random.default_rng(0)
    x = fw.tensor(g.standard_normal((n, n)).astype(np.float32), requires_grad=False)
    y = fw.tensor(g.standard_normal((n, n)).astype(np.float32), requires_grad=False)
    params = [fw.tensor((g.standard_normal(shape) * 0.3).astype(np.float32)) for shape in [(n, n), (n,)] * 2]
    w1, b1, w2, b2 = params

    def loss():
        return fw.mse_loss(fw.linear(fw.linear(x, w1, b1).relu(), w2, b2), y)

    def step():
        loss().backward()
        with fw.no_grad():
            for p in params:
                p.sub_(p.grad * 0.01)
                p.grad = None

    return loss, step


def seconds_per_call(fn, repeats, min_time):
    """Median over `repeats` of the time per call, each repeat long enough to time reliably."""
    fn()  # warm up (first-call costs, caches)
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            break
        number *= 2 if elapsed == 0 else max(2, min(10, int(min_time / elapsed) + 1))
    samples = [elapsed / number]
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def run(frameworks, repeats, min_time):
    """Rows of (op, size, mode, {framework name: microseconds})."""
    names = [*OPS, "mlp step"]
    rows = []
    for name in names:
        for n in SIZES:
            timings = {}
            for fw in frameworks:
                forward, both = mlp_case(fw, n) if name == "mlp step" else op_case(fw, OPS[name], n)
                timings[fw.name] = (
                    seconds_per_call(forward, repeats, min_time) * 1e6,
                    seconds_per_call(both, repeats, min_time) * 1e6,
                )
            for mode_index, mode in enumerate(("fwd", "fwd+bwd")):
                rows.append((name, f"{n}x{n}", mode, {k: v[mode_index] for k, v in timings.items()}))
    return rows


def run_chains(frameworks, repeats, min_time):
    """Rows of (op, size, mode, {framework name: microseconds per op of the chain})."""
    rows = []
    for name, op in CHAIN_OPS.items():
        for n in SIZES:
            timings = {}
            for fw in frameworks:
                forward, both = chain_case(fw, op, n)
                links = CHAIN_LENGTH * (2 if name == "reshape" else 1)
                timings[fw.name] = (
                    seconds_per_call(forward, repeats, min_time) * 1e6 / links,
                    seconds_per_call(both, repeats, min_time) * 1e6 / links,
                )
            for mode_index, mode in enumerate(("fwd", "fwd+bwd")):
                rows.append((name, f"{n}x{n}", mode, {k: v[mode_index] for k, v in timings.items()}))
    return rows


def format_table(rows, with_torch):
    header = f"{'op':<12} {'size':>6} {'mode':<8} {'minidl µs':>10}"
    if with_torch:
        header += f" {'torch µs':>9} {'minidl/torch':>13}"
    lines = [header, "-" * len(header)]
    for name, size, mode, micros in rows:
        line = f"{name:<12} {size:>6} {mode:<8} {micros['minidl']:>10.1f}"
        if with_torch:
            line += f" {micros['torch']:>9.1f} {micros['minidl'] / micros['torch']:>12.1f}x"
        lines.append(line)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="repeats per measurement; the median is shown")
    parser.add_argument("--min-time", type=float, default=0.02, help="seconds each repeat runs for, at least")
    parser.add_argument("--kernels", choices=["numpy", "c"], help="minidl kernel set (default: minidl's choice)")
    parser.add_argument("--no-torch", action="store_true", help="measure minidl only")
    parser.add_argument("--chains-only", action="store_true", help="only the 100-op chains")
    args = parser.parse_args(argv)

    if args.kernels:
        minidl.set_kernels(args.kernels)
    torch = load_torch(not args.no_torch)
    frameworks = [Framework("minidl", minidl)] + ([Framework("torch", torch)] if torch is not None else [])

    peer = f"PyTorch {torch.__version__} eager on CPU, 1 thread" if torch is not None else "PyTorch not measured"
    kernels = minidl.kernels_name()
    print(f"Per-op overhead, float32, median of {args.repeats} repeats. minidl kernels: {kernels}. {peer}.")
    if not args.chains_only:
        print("\nOne op at a time (backward() from the op's output every call):")
        print(format_table(run(frameworks, args.repeats, args.min_time), with_torch=torch is not None))
    print(f"\nPer op in a {CHAIN_LENGTH}-op chain (one backward() for the whole chain; µs per op):")
    print(format_table(run_chains(frameworks, args.repeats, args.min_time), with_torch=torch is not None))


if __name__ == "__main__":
    main()
