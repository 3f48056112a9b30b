"""GFLOP/s of each CUDA GEMM stage (csrc/cuda/gemm.cu), next to a vendor GEMM when one is importable.

    python benchmarks/bench_cuda.py                 # sizes suited to the build in use
    python benchmarks/bench_cuda.py --sizes 1024,2048,4096 --repeat 20
    MINIDL_CUDA=emulate python benchmarks/bench_cuda.py

On a GPU machine (the real build loaded) it times every stage and cuBLAS (through CuPy or
torch.cuda, whichever imports with a GPU) on the same sizes, medians of --repeat runs after a
warm-up, and prints the ratio to cuBLAS. Without a GPU it runs the emulator and says so: those
numbers are the CPU emulating thousands of threads, useful only to see what a test costs.
"""

import argparse
import statistics
import time
import warnings

import numpy as np

from minidl.backend.cuda import DeviceArray, kernels, runtime


def vendor_gemm():
    """(name, fn(a_host, b_host) -> timing function) for cuBLAS through CuPy or torch, or None."""
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:

            def prepare(a, b):
                da, db = cupy.asarray(a), cupy.asarray(b)
                return lambda: (da @ db, cupy.cuda.Device().synchronize())

            return "cuBLAS (CuPy)", prepare
    except Exception:  # noqa: BLE001 - not installed, or no GPU
        pass
    try:
        import torch

        if torch.cuda.is_available():

            def prepare(a, b):
                ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
                return lambda: (ta @ tb, torch.cuda.synchronize())

            return "cuBLAS (torch.cuda)", prepare
    except Exception:  # noqa: BLE001
        pass
    return None


def median_seconds(fn, repeat):
    fn()  # warm-up (and, on a GPU, module loading)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", help="comma-separated square sizes, or MxKxN products")
    parser.add_argument("--repeat", type=int)
    args = parser.parse_args()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", runtime.CudaEmulatorWarning)
        build = runtime.build()
    emulated = build == "emulated"
    default_sizes = "128x784x512,256" if emulated else "128x784x512,1024,2048,4096"
    repeat = args.repeat or (3 if emulated else 20)
    products = []
    for item in (args.sizes or default_sizes).split(","):
        dims = [int(v) for v in item.split("x")]
        products.append(tuple(dims) if len(dims) == 3 else (dims[0],) * 3)

    print(f"CUDA build: {build} -- {runtime.device_name()}")
    if emulated:
        why = f" ({caught[0].message})" if caught else ""
        print("THIS IS THE CPU EMULATOR, not a GPU: every CUDA thread is a fiber on this CPU." + why)
        print("The numbers show what the emulator costs; they say nothing about GPU speed.\n")
    vendor = None if emulated else vendor_gemm()
    if not emulated:
        print(f"vendor GEMM: {vendor[0] if vendor else 'none importable (install cupy or a CUDA torch)'}\n")

    rng = np.random.default_rng(0)
    header = f"{'M x K x N':>16} {'stage':>14} {'ms':>10} {'GFLOP/s':>9}" + ("  vs vendor" if vendor else "")
    print(header)
    for m, k, n in products:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        da, db = DeviceArray.from_numpy(a), DeviceArray.from_numpy(b)
        flops = 2.0 * m * n * k
        vendor_s = None
        if vendor:
            vendor_s = median_seconds(vendor[1](a, b), repeat)
            print(f"{m:>4} x {k:>4} x {n:>4} {'vendor':>14} {vendor_s * 1e3:>10.3f} {flops / vendor_s / 1e9:>9.1f}")
        for stage in kernels.GEMM_STAGES:

            def run(stage=stage, da=da, db=db):
                kernels.matmul(da, db, stage=stage)
                runtime.synchronize()

            s = median_seconds(run, repeat)
            ratio = f"  {vendor_s / s:9.2f}" if vendor_s else ""
            print(f"{m:>4} x {k:>4} x {n:>4} {stage:>14} {s * 1e3:>10.3f} {flops / s / 1e9:>9.3f}{ratio}")


if __name__ == "__main__":
    main()
