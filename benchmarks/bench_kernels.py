"""Benchmark minidl's C kernels against NumPy / OpenBLAS on one thread.

    python benchmarks/bench_kernels.py            # all tables (a few minutes on a busy machine)
    python benchmarks/bench_kernels.py --quick    # fewer repeats
    python benchmarks/bench_kernels.py --crossover  # sizes where the C kernels start to win
    python benchmarks/bench_kernels.py --tune     # GEMM cache-block (KC, MC) sweep per SIMD path

GEMM: GFLOP/s of our sgemm beside NumPy's matmul (OpenBLAS) limited to 1 thread, for
square sizes and the MLP 784-512-512-10 batch-128 forward/backward products. OpenBLAS
picks its kernel from the CPU unless OPENBLAS_CORETYPE says otherwise, and reads the
environment when it is loaded, so each setting runs in a fresh subprocess:
  1. the environment as given (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as set, if at all),
  2. both variables removed,
  3. OPENBLAS_CORETYPE=Haswell: OpenBLAS's AVX2 kernel, against our AVX2 and AVX-512 paths.
Each table names the OpenBLAS kernel in use (threadpoolctl's 'architecture').

Fused kernels: each C kernel beside its reference (minidl.backend.reference_kernels: NumPy's
core with the composed extras).

Every number is a median of several runs; the C and NumPy runs are interleaved so a
noisy neighbour slows both. Ratio = NumPy time / our time (> 1: we are faster).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.abspath(__file__)


def _median_times(fns, repeats, min_time=0.02):
    """Median seconds per call of each fn, calls interleaved; each sample loops to >= min_time."""
    loops = []
    for fn in fns:  # warm up and pick a loop count per function
        fn()
        start = time.perf_counter()
        fn()
        once = max(time.perf_counter() - start, 1e-7)
        loops.append(max(1, int(min_time / once)))
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(loops[i]):
                fn()
            samples[i].append((time.perf_counter() - start) / loops[i])
    return [statistics.median(s) for s in samples]


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


GEMM_CASES = [
    # label, m, k, n, transpose A (read A^T from a (k, m) array), transpose B
    ("square 256", 256, 256, 256, False, False),
    ("square 512", 512, 512, 512, False, False),
    ("square 1024", 1024, 1024, 1024, False, False),
    ("square 2048", 2048, 2048, 2048, False, False),
    ("MLP fwd  X·W1ᵀ  128x784·784x512", 128, 784, 512, False, True),
    ("MLP fwd  H·W2ᵀ  128x512·512x512", 128, 512, 512, False, True),
    ("MLP bwd  dH·W2  128x512·512x512", 128, 512, 512, False, False),
    ("MLP bwd  dZ·W1  128x512·512x784", 128, 512, 784, False, False),
    ("MLP bwd dW1=dZᵀX 512x128·128x784", 512, 128, 784, True, False),
    ("MLP bwd dW2=dZᵀH 512x128·128x512", 512, 128, 512, True, False),
]


def gemm_table(paths, repeats):
    from threadpoolctl import threadpool_info, threadpool_limits

    from minidl.backend import c as ck

    blas = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    arch = blas[0].get("architecture", "?") if blas else "not OpenBLAS"
    version = blas[0].get("version", "?") if blas else "?"
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    print(f"NumPy {np.__version__}, OpenBLAS {version}, OpenBLAS kernel: {arch}; env: {env or 'none set'}")
    header = f"{'product':36s} {'OpenBLAS':>9s}" + "".join(f" {'ours ' + p:>12s} {'ratio':>6s}" for p in paths)
    print(header + "      (GFLOP/s, 1 thread; ratio = ours / OpenBLAS speed)")
    before = ck.simd_path()
    rows = []
    with threadpool_limits(1):
        for label, m, k, n, ta, tb in GEMM_CASES:
            a = _rand(k, m, seed=1).T if ta else _rand(m, k, seed=1)
            b = _rand(n, k, seed=2).T if tb else _rand(k, n, seed=2)
            reps = max(3, repeats if m * n * k < 1e9 else repeats // 2)

            def ours(path, a=a, b=b):
                def run():
                    ck.set_simd_path(path)
                    ck.gemm.sgemm(a, b)

                return run

            times = _median_times([lambda a=a, b=b: np.matmul(a, b)] + [ours(p) for p in paths], reps)
            flops = 2.0 * m * n * k
            line = f"{label:36s} {flops / times[0] / 1e9:9.1f}"
            row = {"case": label, "openblas": flops / times[0] / 1e9}
            for p, t in zip(paths, times[1:]):
                line += f" {flops / t / 1e9:12.1f} {times[0] / t:6.2f}"
                row[p] = flops / t / 1e9
            print(line, flush=True)
            rows.append(row)
    ck.set_simd_path(before)
    return {"arch": arch, "rows": rows}


def fused_table(repeats):
    from threadpoolctl import threadpool_limits

    from minidl.backend import c as ck
    from minidl.backend import reference_kernels as nk

    x = _rand(256, 1024, seed=1)
    w, y = _rand(256, 1024, seed=11) * 0.03, np.maximum(_rand(256, 1024, seed=12), 0)
    bias = _rand(1024, seed=2)
    logits_big, logits_mlp = _rand(512, 1000, seed=3), _rand(128, 10, seed=3)
    t_big, t_mlp = np.random.default_rng(4).integers(0, 1000, 512), np.random.default_rng(4).integers(0, 10, 128)
    g_big, g_mlp = np.full(512, 1 / 512, np.float32), np.full(128, 1 / 128, np.float32)
    img = _rand(32, 16, 28, 28, seed=5)  # a small CNN layer: 16 channels, 3x3, padding 1
    window = ((3, 3), (1, 1), (1, 1))
    cols = nk.im2col(img, *window)
    gcols = _rand(*cols.shape, seed=6)
    pool_in = _rand(32, 16, 28, 28, seed=7)
    pool = ((2, 2), (2, 2), (0, 0))
    _, am = nk.max_pool2d_forward(pool_in, *pool)
    gpool = _rand(32, 16, 14, 14, seed=8)
    n_adam = 1 << 20
    adam_state = {impl: [_rand(n_adam, seed=9), np.zeros(n_adam, np.float32), np.zeros(n_adam, np.float32)]
                  for impl in ("numpy", "c")}  # fmt: skip
    adam_grad = _rand(n_adam, seed=10)

    def ce(k, logits, t, g):
        return lambda: k.cross_entropy_backward(k.cross_entropy_forward(logits, t)[1], t, g)

    def pool_fwd_bwd(k):
        return lambda: k.max_pool2d_backward(gpool, k.max_pool2d_forward(pool_in, *pool)[1], pool_in.shape, *pool)

    def adam(k, impl):
        p, m, v = adam_state[impl]
        return lambda: k.adam_update(p, adam_grad, m, v, 10, 1e-3)

    cases = [
        ("linear + bias + ReLU 256x1024 -> 256", lambda k: lambda: k.linear(x, w, bias[:256], "relu")),
        ("act_backward (ReLU) 256x1024", lambda k: lambda: k.act_backward(x, y, "relu")),
        ("softmax-CE fwd+bwd 512x1000", lambda k: ce(k, logits_big, t_big, g_big)),
        ("softmax-CE fwd+bwd 128x10 (MLP)", lambda k: ce(k, logits_mlp, t_mlp, g_mlp)),
        ("im2col 32x16x28x28 k3 p1", lambda k: lambda: k.im2col(img, *window)),
        ("col2im 32x16x28x28 k3 p1", lambda k: lambda: k.col2im(gcols, img.shape, *window)),
        ("max-pool 2x2 fwd+bwd 32x16x28x28", pool_fwd_bwd),
        ("Adam update 1M params", lambda k: adam(k, "c" if k is ck else "numpy")),
        ("sigmoid 1M", lambda k: (lambda v: lambda: k.sigmoid(v))(adam_grad)),
        ("softmax 512x1000", lambda k: lambda: k.softmax(logits_big)),
        ("row sum 512x1000", lambda k: lambda: k.sum(logits_big, axis=1)),
        ("float32 -> float16 1M", lambda k: lambda: k.float32_to_float16(adam_grad)),
    ]
    print(f"{'kernel':36s} {'NumPy us':>10s} {'C us':>10s} {'ratio':>7s}   (median time per call; ratio = NumPy/C)")
    rows = []
    with threadpool_limits(1):
        for label, make in cases:
            t_np, t_c = _median_times([make(nk), make(ck)], repeats)
            print(f"{label:36s} {t_np * 1e6:10.1f} {t_c * 1e6:10.1f} {t_np / t_c:7.2f}", flush=True)
            rows.append({"case": label, "numpy_us": t_np * 1e6, "c_us": t_c * 1e6})
    return rows


def crossover(repeats):
    """Smallest sizes at which each C kernel beats its NumPy twin (sets the MIN_* thresholds)."""
    from threadpoolctl import threadpool_limits

    from minidl.backend import c as ck
    from minidl.backend import reference_kernels as nk

    modules = (ck.gemm, ck.elementwise, ck.losses)
    saved = {(m, k): getattr(m, k) for m in modules for k in dir(m) if k.startswith("MIN_")}
    for m, k in saved:
        setattr(m, k, 0)
    try:
        with threadpool_limits(1):
            print(f"{'kernel':14s} {'size':>8s} {'NumPy us':>9s} {'C us':>9s} {'ratio':>6s}")
            for n in (16, 32, 64, 96, 128, 160, 192, 256):
                a, b = _rand(n, n), _rand(n, n, seed=1)
                t = _median_times([lambda a=a, b=b: np.matmul(a, b), lambda a=a, b=b: ck.matmul(a, b)], repeats)
                print(f"{'gemm n^3':14s} {n:8d} {t[0] * 1e6:9.2f} {t[1] * 1e6:9.2f} {t[0] / t[1]:6.2f}")
            for size in (256, 1024, 4096, 16384, 65536):
                x, y = _rand(size), _rand(size, seed=1)
                for name in ("add", "mul", "exp", "tanh", "sigmoid", "relu"):
                    fn_np, fn_c = getattr(nk, name), getattr(ck, name)
                    args = (x, y) if name in ("add", "mul") else (x,)
                    t = _median_times([lambda f=fn_np, a=args: f(*a), lambda f=fn_c, a=args: f(*a)], repeats)
                    print(f"{name:14s} {size:8d} {t[0] * 1e6:9.2f} {t[1] * 1e6:9.2f} {t[0] / t[1]:6.2f}")
                logits, tg = _rand(size // 16, 16), np.zeros(size // 16, np.int64)
                ce_np = lambda z=logits, t=tg: nk.cross_entropy_forward(z, t)  # noqa: E731
                ce_c = lambda z=logits, t=tg: ck.cross_entropy_forward(z, t)  # noqa: E731
                t = _median_times([ce_np, ce_c], repeats)
                print(f"{'CE fwd':14s} {size:8d} {t[0] * 1e6:9.2f} {t[1] * 1e6:9.2f} {t[0] / t[1]:6.2f}")
    finally:
        for (m, k), v in saved.items():
            setattr(m, k, v)


def tune(repeats):
    """Sweep the GEMM cache blocks (KC, MC) of each SIMD path against OpenBLAS at 1024^3."""
    from threadpoolctl import threadpool_limits

    from minidl.backend import c as ck

    grid = {"avx512": [(256, 240), (384, 240), (512, 240), (512, 480), (768, 120)],
            "avx2": [(256, 120), (512, 120), (512, 240), (768, 96)],
            "scalar": [(128, 128), (256, 128)], "neon": [(128, 128), (256, 128), (512, 128)]}  # fmt: skip
    n = 1024
    a, b = _rand(n, n), _rand(n, n, seed=1)
    saved = ck.ffi.new("int64_t[3]")
    before = ck.simd_path()
    with threadpool_limits(1):
        for path in ck.simd_paths_supported():
            code = ck.SIMD_PATHS[path]
            ck.lib.mdk_gemm_get_blocking(code, saved)
            ck.set_simd_path(path)
            print(f"{path}: default KC={saved[0]} MC={saved[1]} NC={saved[2]}; ratio = ours / OpenBLAS at {n}^3")
            try:
                for kc, mc in grid.get(path, []):
                    ck.lib.mdk_gemm_set_blocking(code, kc, mc, saved[2])
                    t_np, t_c = _median_times([lambda: np.matmul(a, b), lambda: ck.gemm.sgemm(a, b)], repeats)
                    print(f"  KC={kc:4d} MC={mc:4d}: {2 * n**3 / t_c / 1e9:6.1f} GFLOP/s  ratio {t_np / t_c:.2f}")
            finally:
                ck.lib.mdk_gemm_set_blocking(code, saved[0], saved[1], saved[2])
    ck.set_simd_path(before)


def child(args):
    from minidl.backend import c as ck

    if not ck.available:
        print(f"C kernels not available: {ck.unavailable_reason}")
        return
    print(f"\n=== {args.label} ===")
    paths = [p for p in ("avx2", "avx512", "neon") if p in ck.simd_paths_supported()] or ["scalar"]
    if args.paths:
        paths = [p for p in args.paths.split(",") if p in ck.simd_paths_supported()]
    result = {"label": args.label, "gemm": gemm_table(paths, args.repeats)}
    if args.fused:
        print()
        result["fused"] = fused_table(args.repeats)
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(result) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--crossover", action="store_true", help="measure the C/NumPy crossover sizes")
    parser.add_argument("--tune", action="store_true", help="sweep the GEMM cache blocks per SIMD path")
    parser.add_argument("--json", help="append machine-readable results to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--label", default="", help=argparse.SUPPRESS)
    parser.add_argument("--fused", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--paths", default="", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=0, help="runs per median (default 9, --quick 5)")
    args = parser.parse_args()
    args.repeats = args.repeats or (5 if args.quick else 9)
    if args.child:
        return child(args)
    if args.crossover:
        return crossover(args.repeats)
    if args.tune:
        return tune(args.repeats)

    print(
        f"minidl kernel benchmark on {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    try:
        from minidl.backend import describe

        print(f"minidl: {describe()}")
    except Exception as exc:  # noqa: BLE001 - still run the rest
        print(f"minidl.backend.describe() failed: {exc}")
    base = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MINIDL_SIMD="")
    unset = {k: v for k, v in base.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    given = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    settings = [
        (f"OpenBLAS as configured in the environment {given}", base, True, ""),
        ("OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset", unset, False, ""),
        ("OPENBLAS_CORETYPE=Haswell (OpenBLAS's AVX2 kernel)", dict(unset, OPENBLAS_CORETYPE="Haswell"), False, ""),
    ]
    common = ["--repeats", str(args.repeats)] + (["--json", args.json] if args.json else [])
    for label, env, fused, paths in settings:
        cmd = [sys.executable, HERE, "--child", "--label", label] + common + (["--fused"] if fused else [])
        if paths:
            cmd += ["--paths", paths]
        subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
