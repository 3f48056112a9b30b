"""Instructions per op, counted by valgrind's callgrind: the per-op overhead without the machine's noise.

    python benchmarks/bench_instructions.py                    # the chains and the statements below
    python benchmarks/bench_instructions.py --chains tanh,add  # some chains only
    python benchmarks/bench_instructions.py --statements       # the one-statement table only

Wall-clock timings of tiny ops swing by 20-40% on a shared machine; the number of instructions
the CPU retires does not (+-3% between runs here), so it is how docs/kernels.md compares engine
changes. Each measurement runs Python under callgrind twice, with the work repeated R times and
0 times, and divides the difference by the number of ops, so start-up and imports cancel out.

- chains: a 100-op chain of one op on 4x4 float32 tensors from one leaf, forward then backward
  (bench_overhead.py's chains), minidl and PyTorch (when installed), per op.
- statements: single statements (a NumPy ufunc, a Tensor made and freed, `a * b` with recording
  off, `torch.mul`), the pieces a Python op is built from.

Needs valgrind (`apt install valgrind`); slow (callgrind runs code ~50x slower): a minute or two
per row.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

CHAIN_OPS = ["add", "mul", "smul", "tanh", "relu", "sigmoid", "matmul", "reshape"]
STATEMENTS = {
    "np.multiply(x, y)": "np.multiply(xa, ya)",
    "np.tanh(x)": "np.tanh(xa)",
    "a Tensor made and freed": "Tensor._make(xa)",
    "object.__new__(Tensor) and freed": "object.__new__(Tensor)",
    "a Function node made and freed": "Mul()",
    "a * b, recording off": "a * b",
    "torch.mul(a, b)": "torch.mul(ta, tb)",
}


def child_chain(lib, op_name, repeats):
    """The measured program for one chain: `repeats` chains of 100 ops, forward and backward."""
    import numpy as np

    if lib == "minidl":
        import minidl as m
    else:
        import torch as m

        m.set_num_threads(1)
    g = np.random.default_rng(0)
    a = m.tensor(g.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    b = m.tensor((1 + 0.001 * g.standard_normal((4, 4))).astype(np.float32), requires_grad=True)
    w = m.tensor(np.linalg.qr(g.standard_normal((4, 4)))[0].astype(np.float32), requires_grad=True)
    ops = {
        "add": lambda y: y + b,
        "mul": lambda y: y * b,
        "smul": lambda y: y * 1.0001,
        "tanh": lambda y: y.tanh(),
        "relu": lambda y: y.relu(),
        "sigmoid": lambda y: y.sigmoid(),
        "matmul": lambda y: y @ w,
        "reshape": lambda y: y.reshape(-1).reshape(4, 4),
    }
    op = ops[op_name]

    def chain():
        y = a
        for _ in range(100):
            y = op(y)
        y.sum().backward()
        a.grad = b.grad = w.grad = None

    chain()  # warm up: first-call costs must not count
    for _ in range(repeats):
        chain()


def child_statement(statement, repeats):
    import numpy as np

    import minidl
    from minidl.ops.elementwise import Mul  # noqa: F401 - used by the statements
    from minidl.tensor import Tensor  # noqa: F401

    xa = np.random.rand(4, 4).astype(np.float32)
    ya = np.random.rand(4, 4).astype(np.float32)
    a, b = minidl.tensor(xa), minidl.tensor(ya)  # noqa: F841
    if "torch" in statement:
        import torch

        ta, tb = torch.tensor(xa), torch.tensor(ya)  # noqa: F841
    minidl.set_grad_enabled(False)
    exec(compile(f"for _ in range(10): {statement}", "warm-up", "exec"))
    exec(compile(f"for _ in range({repeats}): {statement}", "measured", "exec"))


def instructions(child_args):
    """Instructions retired by `python this_file child_args` under callgrind."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    done = subprocess.run(command + child_args, capture_output=True, text=True, env=env)
    found = re.search(r"refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run failed ({' '.join(child_args)}):\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_op(child_args, repeats, ops_per_repeat):
    with_work = instructions(child_args + [str(repeats)])
    without = instructions(child_args + ["0"])
    return (with_work - without) / (repeats * ops_per_repeat)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", default=None, help=f"comma-separated, from {','.join(CHAIN_OPS)}")
    parser.add_argument("--statements", action="store_true", help="the one-statement table only")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # running under callgrind
        kind, *rest = args.child
        if kind == "chain":
            child_chain(rest[0], rest[1], int(rest[2]))
        else:
            child_statement(rest[0], int(rest[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench_instructions: valgrind not found; install it (apt install valgrind)")
    try:
        import torch  # noqa: F401

        libraries = ["minidl", "torch"]
    except ImportError:
        libraries = ["minidl"]
    if not args.statements:
        chains = CHAIN_OPS if args.chains is None else args.chains.split(",")
        print("instructions per op, 100-op chain of 4x4 float32, forward + backward")
        header = f"{'op':10s}" + "".join(f"{lib:>12s}" for lib in libraries)
        print(header + ("       ratio" if len(libraries) > 1 else ""))
        for op in chains:
            counts = [per_op(["--child", "chain", lib, op], 200, 100) for lib in libraries]
            ratio = f"{counts[0] / counts[1]:11.2f}x" if len(counts) > 1 else ""
            print(f"{op:10s}" + "".join(f"{c / 1e3:11.1f}k" for c in counts) + ratio, flush=True)
    if args.statements or args.chains is None:
        print("\ninstructions per statement (4x4 float32, recording off)")
        for label, statement in STATEMENTS.items():
            if "torch" in statement and "torch" not in libraries:
                continue
            count = per_op(["--child", "statement", statement], 5000, 1)
            print(f"{label:36s} {count / 1e3:8.1f}k", flush=True)


if __name__ == "__main__":
    main()
