"""The MLP training step's matrix products, ours beside PyTorch's, one by one.

The MLP of benchmarks/bench_train.py (784-512-512-10, batch 128) multiplies these eight
products per step. The operands are laid out as in a real step: weights come from the C
kernel set's `parameter_storage` (64-byte aligned, as Parameters are, which decides whether
the GEMM reads B in place), activations and gradients are ordinary NumPy arrays. The forward
layers run through `linear` with their bias (and ReLU for the hidden layers), against
PyTorch's `F.linear` (+ `relu`). "ours" is the route the step takes (products under
`gemm.MIN_GEMM_FLOPS` go to NumPy), "C" forces our GEMM. Samples of ours, C and PyTorch are
interleaved; times are thread CPU time; ratio = PyTorch / ours (>1: we are faster), the median
of the per-sample ratios.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_mlp_gemm.py [--samples 11]
"""

import argparse
import statistics
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=11, help="interleaved samples per product")
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    from minidl.backend.c import gemm, storage

    threadpool_limits(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    def activation(*shape):
        x = np.empty(shape, np.float32)
        x[...] = rng.standard_normal(shape)
        return x

    def parameter(*shape):
        x = storage.parameter_storage(shape)
        x[...] = rng.standard_normal(shape)
        return x

    x = activation(128, 784)
    w1, w2, w3 = parameter(512, 784), parameter(512, 512), parameter(10, 512)
    b1, b2, b3 = parameter(512), parameter(512), parameter(10)
    a1, a2, dz1, dz2, dz3 = (activation(128, n) for n in (512, 512, 512, 512, 10))
    products = [  # name, A, B, bias, activation (forward layers only)
        ("fwd1 X.W1^T+b relu", x, w1.T, b1, "relu"),
        ("fwd2 A1.W2^T+b relu", a1, w2.T, b2, "relu"),
        ("fwd3 A2.W3^T+b", a2, w3.T, b3, None),
        ("dW3 dZ3^T.A2", dz3.T, a2, None, None),
        ("dA2 dZ3.W3", dz3, w3, None, None),
        ("dW2 dZ2^T.A1", dz2.T, a1, None, None),
        ("dA1 dZ2.W2", dz2, w2, None, None),
        ("dW1 dZ1^T.X", dz1.T, x, None, None),
    ]
    totals = np.zeros(3)
    for name, a, b, bias, act in products:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        if bias is None:
            ours = lambda a=a, b=b: gemm.matmul(a, b)  # noqa: E731
            theirs = lambda ta=ta, tb=tb: torch.matmul(ta, tb)  # noqa: E731
            route = "C" if 2 * a.shape[0] * a.shape[1] * b.shape[1] >= gemm.MIN_GEMM_FLOPS else "NumPy"
        else:
            w, tw, tbias = b.T, torch.from_numpy(b.T), torch.from_numpy(bias)
            ours = lambda a=a, w=w, bias=bias, act=act: gemm.linear(a, w, bias, act)  # noqa: E731
            relu = torch.relu if act == "relu" else (lambda t: t)
            theirs = lambda ta=ta, tw=tw, tbias=tbias, relu=relu: relu(torch.nn.functional.linear(ta, tw, tbias))  # noqa: E731
            route = "C"
        forced = lambda a=a, b=b: gemm.sgemm(a, b)  # noqa: E731
        flops = 2 * a.shape[0] * a.shape[1] * b.shape[1]
        reps = max(5, int(1e8 / flops))
        samples = [[], [], []]
        for fn in (ours, forced, theirs):
            fn()
        for _ in range(args.samples):
            for i, fn in enumerate((ours, forced, theirs)):
                start = time.thread_time()
                for _ in range(reps):
                    fn()
                samples[i].append((time.thread_time() - start) / reps)
        med = [statistics.median(s) for s in samples]
        ratio = statistics.median(t / o for t, o in zip(samples[2], samples[0]))
        totals += med
        print(
            f"{name:20s} {a.shape[0]}x{a.shape[1]}x{b.shape[1]:<4d} route {route:5s} ours {med[0] * 1e6:7.1f} us "
            f"({flops / med[0] / 1e9:5.1f} GF/s)  C {med[1] * 1e6:7.1f} us  torch {med[2] * 1e6:7.1f} us  "
            f"torch/ours {ratio:4.2f}"
        )
    print(f"{'total':20s} ours {totals[0] * 1e3:.3f} ms  C {totals[1] * 1e3:.3f} ms  torch {totals[2] * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
