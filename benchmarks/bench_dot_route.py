"""The GEMM's dot route against its blocked route and PyTorch, for x·Wᵀ with few rows or few columns.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_dot_route.py [--path avx2|avx512] [--samples 11]

A linear layer's forward x·Wᵀ + b reads W's rows in place when C has few columns (an output
layer with 10 classes) or few rows (a batch of 1-8): each element of C is a dot product of a
row of x and a row of W (`DOT` strategy, csrc/gemm_strategies.c; docs/kernels.md). This
prints, for the products of docs/kernels.md's tables, the time of the same call with the dot
route switched off (`blocked`) and on (`dot`, what minidl runs), and PyTorch's `F.linear`
(+ `relu`) in the same run:

- --path forces the SIMD path (default: the one this CPU would use), so an AVX-512 machine
  can measure the AVX2 kernels too;
- through `linear` with the bias, and ReLU for the hidden layers; every product goes to the C
  GEMM (`MIN_LINEAR_FLOPS` set to 0 here, so a batch of 1 does too);
- samples of the three interleaved, rotating their order; thread CPU time; medians of
  --samples; ratios are medians of the per-sample ratios (> 1: the second is faster).

A shape outside the route's rule takes the blocked route either way (the two columns agree):
the rule's thresholds were chosen with a build whose rule was opened up (docs/kernels.md).
"""

import argparse
import statistics
import time

import numpy as np

PRODUCTS = [  # name, rows m, outputs n, inputs k, activation
    ("x·W1ᵀ+b, ReLU", 1, 512, 784, "relu"),
    ("x·W1ᵀ+b, ReLU", 2, 512, 784, "relu"),
    ("x·W1ᵀ+b, ReLU", 4, 512, 784, "relu"),
    ("x·W1ᵀ+b, ReLU", 8, 512, 784, "relu"),
    ("A·W2ᵀ+b, ReLU", 1, 512, 512, "relu"),
    ("A·W2ᵀ+b, ReLU", 2, 512, 512, "relu"),
    ("A·W2ᵀ+b, ReLU", 4, 512, 512, "relu"),
    ("A·W2ᵀ+b, ReLU", 8, 512, 512, "relu"),
    ("A2·W3ᵀ+b", 128, 10, 512, None),
]


def thread_microseconds(call, repeats):
    start = time.thread_time_ns()
    for _ in range(repeats):
        call()
    return (time.thread_time_ns() - start) / repeats / 1e3


def repeats_for(call, budget_us=3000):
    """How many calls make a sample of about budget_us of CPU time."""
    repeats = 1
    while thread_microseconds(call, repeats) * repeats < budget_us:
        repeats *= 2
    return repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", default=None, help="force a SIMD path: avx2, avx512 (default: this CPU's)")
    parser.add_argument("--samples", type=int, default=11)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F
    from threadpoolctl import threadpool_limits

    from minidl.backend.c import _ffi, gemm, simd, storage

    threadpool_limits(1)
    torch.set_num_threads(1)
    if args.path:
        simd.set_simd_path(args.path)
    lib = _ffi.lib
    gemm.MIN_LINEAR_FLOPS = 0  # every product through the C GEMM, whatever its size
    rng = np.random.default_rng(0)
    print(f"SIMD path: {args.path or 'this CPU'}; PyTorch {torch.__version__}, 1 thread; medians of {args.samples}")
    print(
        f"{'product':16s} {'m x k -> n':>14s} {'blocked us':>11s} {'dot us':>8s} {'torch us':>9s} "
        f"{'torch/blocked':>14s} {'torch/dot':>10s} {'blocked/dot':>12s}"
    )
    for name, m, n, k, act in PRODUCTS:
        print(measure(name, m, n, k, act, rng, args.samples, torch, F, gemm, storage, lib))


def measure(name, m, n, k, act, rng, samples, torch, F, gemm, storage, lib):
    """One table row: x·Wᵀ + b (and act) with the dot route off and on, and PyTorch's."""
    everything, no_dot = lib.MDK_GEMM_ALL, lib.MDK_GEMM_ALL & ~lib.MDK_GEMM_DOT
    x = rng.standard_normal((m, k)).astype(np.float32)
    w, b = storage.parameter_storage((n, k)), storage.parameter_storage((n,))  # aligned, as Parameters
    w[...], b[...] = rng.standard_normal((n, k)), rng.standard_normal(n)
    tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)

    def ours():
        return gemm.linear(x, w, b, act)

    def theirs():
        y = F.linear(tx, tw, tb)
        return torch.relu(y) if act else y

    want = theirs().numpy()
    for strategies in (no_dot, everything):  # both routes give PyTorch's answer (float32 sums of k terms)
        lib.mdk_gemm_set_strategies(strategies)
        np.testing.assert_allclose(ours(), want, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    repeats = max(repeats_for(ours), repeats_for(theirs))
    times = {"blocked": [], "dot": [], "torch": []}
    for sample in range(samples):
        order = ["blocked", "dot", "torch"]
        for who in order[sample % 3 :] + order[: sample % 3]:
            if who == "torch":
                times[who].append(thread_microseconds(theirs, repeats))
            else:
                lib.mdk_gemm_set_strategies(no_dot if who == "blocked" else everything)
                times[who].append(thread_microseconds(ours, repeats))
    lib.mdk_gemm_set_strategies(everything)

    def ratio(slow, fast):
        return statistics.median(s / f for s, f in zip(times[slow], times[fast]))

    med = {who: statistics.median(t) for who, t in times.items()}
    return (
        f"{name:16s} {f'{m} x {k} -> {n}':>14s} {med['blocked']:11.1f} {med['dot']:8.1f} {med['torch']:9.1f} "
        f"{ratio('torch', 'blocked'):14.2f} {ratio('torch', 'dot'):10.2f} {ratio('blocked', 'dot'):12.2f}"
    )


if __name__ == "__main__":
    main()
