"""The kernels of a training step, one by one: minidl's C kernels beside PyTorch's CPU kernels
and the NumPy reference, on one thread, measured in the same run.

    python benchmarks/bench_conv.py [--repeats 9] [--min-time 0.05] [--cases cnn,mlp] [--paths avx512,avx2]
                                    [--clock wall|cpu]

Shapes are those of benchmarks/bench_train.py:
  - CNN, batch 64: conv1 3x3 1->16 pad 1 on 28x28, conv2 3x3 16->32 pad 1 on 14x14, each
    followed by ReLU and a 2x2 max-pool: conv2d_forward (bias + ReLU fused), backward_input,
    backward_weight, max-pool forward and backward, act_backward (ReLU), the bias gradient
    sum over (0, 2, 3);
  - MLP 784-512-512-10, batch 128: linear (bias + ReLU fused), act_backward, the bias
    gradient sum over axis 0.
PyTorch's equivalents: F.conv2d then relu (what its nn.Conv2d + nn.ReLU run),
torch.nn.grad.conv2d_input / conv2d_weight (aten::convolution_backward, one output each),
F.max_pool2d(return_indices=True) and aten::max_pool2d_with_indices_backward,
aten::threshold_backward (ReLU's backward), Tensor.sum, F.linear then relu.
The NumPy column is the reference kernel set (NumPy with OpenBLAS limited to 1 thread).

Each number is the median of --repeats samples; the samples of the three are interleaved,
so a noisy neighbour slows all of them. ratio = their time / our time (> 1: we are faster).
"""

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np


def median_times(fns, repeats, min_time, clock=time.perf_counter):
    """Median seconds per call of each fn (None: not measured); calls interleaved, samples >= min_time."""
    loops = []
    for fn in fns:
        if fn is None:
            loops.append(0)
            continue
        fn()  # warm up: allocations, work buffers, first-call caches
        start = clock()
        fn()
        loops.append(max(1, int(min_time / max(clock() - start, 1e-7))))
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            if fn is None:
                continue
            start = clock()
            for _ in range(loops[i]):
                fn()
            samples[i].append((clock() - start) / loops[i])
    return [statistics.median(s) if s else None for s in samples]


def rand(*shape, seed=0, relu=False):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return np.maximum(x, 0) if relu else x


GEO = ((1, 1), (1, 1), (1, 1), 1)  # stride, padding, dilation, groups of both CNN layers
POOL = ((2, 2), (2, 2), (0, 0))  # kernel, stride, padding of both poolings


def cnn_cases(torch, ck, ref):
    """(label, ours, theirs, numpy) for the CNN's kernels."""
    F = torch.nn.functional
    aten = torch.ops.aten
    cases = []
    for name, (n, c, h, w, f) in {"conv1": (64, 1, 28, 28, 16), "conv2": (64, 16, 14, 14, 32)}.items():
        x, wt, b = rand(n, c, h, w, seed=1), rand(f, c, 3, 3, seed=2) * 0.3, rand(f, seed=3)
        gy = rand(n, f, h, w, seed=4)
        y = rand(n, f, h, w, seed=5, relu=True)  # a ReLU output: about half zeros
        tx, tw, tb, tgy, ty = (torch.from_numpy(a) for a in (x, wt, b, gy, y))
        shape = f"{n}x{c}x{h}x{w} -> {f}"
        cases += [
            (f"{name} fwd + bias + ReLU {shape}", lambda x=x, wt=wt, b=b: ck.conv2d_forward(x, wt, b, *GEO, "relu"),
             lambda tx=tx, tw=tw, tb=tb: torch.relu(F.conv2d(tx, tw, tb, padding=1)),
             _maybe(ref, "conv2d_forward", x, wt, b, *GEO, "relu")),
            (f"{name} backward_weight", lambda x=x, gy=gy, s=wt.shape: ck.conv2d_backward_weight(x, gy, s, *GEO),
             lambda tx=tx, tgy=tgy, s=wt.shape: torch.nn.grad.conv2d_weight(tx, s, tgy, padding=1),
             _maybe(ref, "conv2d_backward_weight", x, gy, wt.shape, *GEO)),
        ]  # fmt: skip
        if c > 1:  # the first layer's input needs no gradient
            cases.append(
                (
                    f"{name} backward_input",
                    lambda gy=gy, wt=wt, s=x.shape: ck.conv2d_backward_input(gy, wt, s, *GEO),
                    lambda tgy=tgy, tw=tw, s=x.shape: torch.nn.grad.conv2d_input(s, tw, tgy, padding=1),
                    _maybe(ref, "conv2d_backward_input", gy, wt, x.shape, *GEO),
                )  # fmt: skip
            )
        cases += [
            (f"{name} act_backward (ReLU) {n}x{f}x{h}x{w}", lambda gy=gy, y=y: ck.act_backward(gy, y, "relu"),
             lambda tgy=tgy, ty=ty: aten.threshold_backward(tgy, ty, 0),
             _maybe(ref, "act_backward", gy, y, "relu")),
            (f"{name} bias grad sum (0,2,3)", lambda gy=gy: ck.sum(gy, axis=(0, 2, 3)),
             lambda tgy=tgy: tgy.sum((0, 2, 3)), lambda gy=gy: ref.sum(gy, axis=(0, 2, 3))),
        ]  # fmt: skip
        pooled = rand(n, f, h // 2, w // 2, seed=6)
        tpooled = torch.from_numpy(pooled)
        _, arg = ck.max_pool2d_forward(y, *POOL)
        _, targ = F.max_pool2d(ty, 2, return_indices=True)
        cases += [
            (f"{name} max-pool 2x2 fwd", lambda y=y: ck.max_pool2d_forward(y, *POOL),
             lambda ty=ty: F.max_pool2d(ty, 2, return_indices=True),
             lambda y=y: ref.max_pool2d_forward(y, *POOL)),
            (f"{name} max-pool 2x2 bwd", lambda g=pooled, a=arg, s=y.shape: ck.max_pool2d_backward(g, a, s, *POOL),
             lambda g=tpooled, ty=ty, a=targ: aten.max_pool2d_with_indices_backward(g, ty, [2, 2], [2, 2], [0, 0],
                                                                                   [1, 1], False, a),
             lambda g=pooled, a=arg, s=y.shape: ref.max_pool2d_backward(g, a, s, *POOL)),
        ]  # fmt: skip
    return cases


def mlp_cases(torch, ck, ref):
    """(label, ours, theirs, numpy) for the MLP's kernels."""
    F = torch.nn.functional
    aten = torch.ops.aten
    cases = []
    for fan_in, fan_out, act in ((784, 512, "relu"), (512, 512, "relu"), (512, 10, None)):
        x, wt, b = rand(128, fan_in, seed=1), rand(fan_out, fan_in, seed=2) * 0.05, rand(fan_out, seed=3)
        tx, tw, tb = (torch.from_numpy(a) for a in (x, wt, b))

        def theirs(tx=tx, tw=tw, tb=tb, act=act):
            z = F.linear(tx, tw, tb)
            return torch.relu(z) if act else z

        label = f"linear 128x{fan_in} -> {fan_out}" + (" + ReLU" if act else "")
        cases.append((label, lambda x=x, wt=wt, b=b, act=act: ck.linear(x, wt, b, act), theirs,
                      _maybe(ref, "linear", x, wt, b, act)))  # fmt: skip
    gy, y = rand(128, 512, seed=4), rand(128, 512, seed=5, relu=True)
    tgy, ty = torch.from_numpy(gy), torch.from_numpy(y)
    cases += [
        ("act_backward (ReLU) 128x512", lambda: ck.act_backward(gy, y, "relu"),
         lambda: aten.threshold_backward(tgy, ty, 0), _maybe(ref, "act_backward", gy, y, "relu")),
        ("bias grad sum axis 0, 128x512", lambda: ck.sum(gy, axis=0), lambda: tgy.sum(0),
         lambda: ref.sum(gy, axis=0)),
    ]  # fmt: skip
    return cases


def _maybe(ref, name, *args):
    """The reference kernel call, or None where the reference kernel set does not have it."""
    fn = getattr(ref, name, None)
    return None if fn is None else (lambda: fn(*args))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="samples per measurement (median is reported)")
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per sample")
    parser.add_argument("--cases", default="cnn,mlp", help="comma-separated: cnn, mlp")
    parser.add_argument("--paths", default="", help="SIMD paths to measure (default: the best this CPU runs)")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: this thread's CPU time (steadier when other processes share the cores; "
        "every kernel here runs on the calling thread)",
    )
    args = parser.parse_args(argv)
    try:
        import torch
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError as e:
        print(f"bench_conv needs PyTorch and threadpoolctl: {e}", file=sys.stderr)
        return 1
    from minidl.backend import c as ck
    from minidl.backend.c._reference import ref

    if not ck.available:
        print(f"the C kernels are not built: {ck.unavailable_reason}", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    paths = [p for p in args.paths.split(",") if p] or [ck.simd_path()]
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    blas_text = ", ".join(f"{p['internal_api']} {p['version']} ({p.get('architecture', '?')})" for p in blas)
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    print(f"{platform.machine()}, Python {platform.python_version()}, NumPy {np.__version__} with {blas_text}")
    print(f"OpenBLAS environment: {env or 'OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE unset'}")
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    print(f"PyTorch {torch.__version__}, 1 thread; median of {args.repeats} samples of >= {args.min_time}s "
          f"({args.clock} clock)")  # fmt: skip
    wanted = {c.strip() for c in args.cases.split(",")}
    before = ck.simd_path()
    with threadpool_limits(limits=1, user_api="blas"):
        for path in paths:
            ck.set_simd_path(path)
            print(f"\nminidl C kernels on the {path} path")
            header = f"{'kernel':42s} {'ours us':>9s} {'PyTorch us':>11s} {'ratio':>6s} {'NumPy us':>9s} {'ratio':>6s}"
            print(header + "\n" + "-" * len(header))
            cases = (cnn_cases(torch, ck, ref) if "cnn" in wanted else []) + (
                mlp_cases(torch, ck, ref) if "mlp" in wanted else []
            )
            for label, ours, theirs, numpy in cases:
                t_ours, t_torch, t_np = median_times([ours, theirs, numpy], args.repeats, args.min_time, clock)
                np_text = f"{t_np * 1e6:9.1f} {t_np / t_ours:6.2f}" if t_np else f"{'-':>9s} {'-':>6s}"
                print(f"{label:42s} {t_ours * 1e6:9.1f} {t_torch * 1e6:11.1f} {t_torch / t_ours:6.2f} {np_text}")
    ck.set_simd_path(before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
