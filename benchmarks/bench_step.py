"""Where a training step's time goes: minidl beside PyTorch CPU, phase by phase, in the same run.

    python benchmarks/bench_step.py [--case mlp|cnn] [--tiny] [--rounds 15] [--steps 20] [--cold]

bench_train.py says how fast a whole step is; this says where the difference lies. One
step of bench_train.py's model is cut into three phases, each timed on its own:

    forward + loss    optimizer.zero_grad(); loss = cross_entropy(model(x), y)
    backward          loss.backward()
    optimizer         optimizer.step()

for minidl as written, minidl after nn.fuse(model), and PyTorch (1 thread each). Rounds
interleave the three (alternating their order), and each ratio is the median of the
ratios paired within a round, so a noisy minute slows all three alike.

A second pass runs minidl's steps with every C kernel call timed (a spy around
`minidl.backend.c._ffi.lib`, which adds about a microsecond per call) and splits each
phase into its C kernels and the rest: the Python of the ops, the engine and the
optimizer, and NumPy calls. Compare the rest with the same model's step at tiny sizes
(`--tiny`): on a real model the Python runs after kernels that streamed megabytes through
the caches, and costs several times more than on a model whose arrays fit in L1.

--cold shows that effect directly for a few small ops, both frameworks: each op is timed
right after reading 0, 4 and 16 MB of other data (docs/kernels.md, session 10).
"""

import argparse
import statistics
import sys
import time
from collections import defaultdict

import numpy as np
from bench_train import CASES, load_peer, same_start

import minidl
from minidl import nn, optim

PHASES = ("forward + loss", "backward", "optimizer")


def phase_timer(zero_grad, loss_of, optimizer_step):
    """A function running one step and adding each phase's seconds to a 3-list; mark(i), if
    given, is called at the end of phase i (the kernel split below cuts its timings there)."""

    def step(seconds, mark=None):
        t0 = time.perf_counter()
        zero_grad()
        loss = loss_of()
        t1 = time.perf_counter()
        if mark:
            mark(0)
        loss.backward()
        t2 = time.perf_counter()
        if mark:
            mark(1)
        optimizer_step()
        t3 = time.perf_counter()
        if mark:
            mark(2)
        seconds[0] += t1 - t0
        seconds[1] += t2 - t1
        seconds[2] += t3 - t2

    return step


def minidl_phases(model, x, y):
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    return phase_timer(optimizer.zero_grad, lambda: minidl.cross_entropy(model(x), y), optimizer.step)


def torch_phases(torch, model, x, y):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def loss_of():
        return torch.nn.functional.cross_entropy(model(x), y)

    return phase_timer(optimizer.zero_grad, loss_of, optimizer.step)


def build(torch, case):
    """The three contenders on the same weights and batch (the fused model shares the written one's weights)."""
    _, make_ours, make_theirs, input_shape, batch = case
    written, theirs, x, y = same_start(torch, make_ours, make_theirs, input_shape, batch)
    mx, my = minidl.tensor(x), minidl.tensor(y)
    return {
        "as written": minidl_phases(written, mx, my),
        "fused": minidl_phases(nn.fuse(written), mx, my),
        "PyTorch": torch_phases(torch, theirs, torch.from_numpy(x), torch.from_numpy(y)),
    }


def measure(contenders, rounds, steps):
    """Per contender, per round: seconds per step of each phase (a list of 3-lists)."""
    names = list(contenders)
    for step in contenders.values():
        for _ in range(5):  # warm up
            step([0.0, 0.0, 0.0])
    samples = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            seconds = [0.0, 0.0, 0.0]
            for _ in range(steps):
                contenders[name](seconds)
            samples[name].append([s / steps for s in seconds])
    return samples


def print_phases(samples, reference="PyTorch"):
    names = [n for n in samples if n != reference]
    header = f"{'phase':16}" + "".join(f"{n + ' ms':>16}" for n in samples)
    header += "".join(f"{reference + '/' + n:>20}" for n in names)
    print(header)
    print("-" * len(header))
    for i, phase in enumerate(PHASES + ("whole step",)):

        def value(sample, i=i):
            return sum(sample) if i == len(PHASES) else sample[i]

        line = f"{phase:16}"
        for n in samples:
            line += f"{statistics.median(value(s) for s in samples[n]) * 1e3:16.3f}"
        for n in names:
            ratios = [value(t) / value(s) for s, t in zip(samples[n], samples[reference])]
            line += f"{statistics.median(ratios):20.2f}"
        print(line)
    print(f"(ratio = {reference}'s time / minidl's; > 1: minidl is faster in that phase)")


class KernelSpy:
    """Stands in for minidl.backend.c._ffi.lib and adds up the seconds of each mdk_* call."""

    def __init__(self, lib):
        self._lib = lib
        self.seconds = defaultdict(float)

    def __getattr__(self, name):
        function = getattr(self._lib, name)
        if not name.startswith("mdk_"):
            return function
        seconds = self.seconds

        def timed(*args):
            start = time.perf_counter()
            try:
                return function(*args)
            finally:
                seconds[name] += time.perf_counter() - start

        return timed


def kernel_split(step, steps):
    """Per phase: seconds per step, and each C kernel's seconds per step in it."""
    from minidl.backend.c import _ffi

    spy = KernelSpy(_ffi.lib)
    _ffi.lib = spy
    try:
        for _ in range(5):
            step([0.0, 0.0, 0.0])
        seconds = [0.0, 0.0, 0.0]
        kernels = [defaultdict(float) for _ in PHASES]

        def mark(phase):  # the kernel seconds counted since the last mark belong to this phase
            for name, value in spy.seconds.items():
                kernels[phase][name] += value
            spy.seconds.clear()

        spy.seconds.clear()  # the warm-up's; from here on every step's mark(2) empties it
        for _ in range(steps):
            step(seconds, mark)
        return [(seconds[i] / steps, {k: v / steps for k, v in kernels[i].items()}) for i in range(len(PHASES))]
    finally:
        _ffi.lib = spy._lib


def print_split(name, split):
    print(f"\nminidl {name}: each phase's C kernels and the rest (Python, engine, NumPy), µs per step")
    for phase, (total, kernels) in zip(PHASES, split):
        c = sum(kernels.values())
        largest = sorted(kernels.items(), key=lambda kv: -kv[1])[:4]
        top = ", ".join(f"{k.removeprefix('mdk_')} {v * 1e6:.0f}" for k, v in largest)
        print(f"  {phase:15} {total * 1e6:7.0f} = C {c * 1e6:6.0f} ({top or 'none'}) + rest {(total - c) * 1e6:6.0f}")


def cold_ops(torch):
    """Small ops timed right after reading 0, 4 and 16 MB of other data, minidl beside PyTorch."""
    a = minidl.tensor(np.ones((128, 10), np.float32))
    b = minidl.tensor(np.ones((128, 10), np.float32))
    one = minidl.tensor(np.float32(1.0))
    ta, tb, tone = torch.ones(128, 10), torch.ones(128, 10), torch.tensor(1.0)
    cases = {
        "a + b": (lambda: a + b, lambda: ta + tb),
        "(a * b).sum(0)": (lambda: (a * b).sum(0), lambda: (ta * tb).sum(0)),
        "(g / 128).expand(128)": (lambda: (one / 128).expand(128), lambda: (tone / 128).expand(128)),
        "a.transpose(1, 0)": (lambda: a.transpose(1, 0), lambda: ta.transpose(1, 0)),
    }
    print("\nsmall ops (128x10) right after reading other data: µs per op, minidl / PyTorch (median of 300)")
    print(f"{'op':24}" + "".join(f"{f'after {mb} MB':>18}" for mb in (0, 4, 16)))
    for name, pair in cases.items():
        line = f"{name:24}"
        for mb in (0, 4, 16):
            junk = np.ones(max(mb, 1) << 18, np.float32)
            medians = []
            for op in pair:
                times = []
                for _ in range(300):
                    if mb:
                        junk.sum()
                    start = time.perf_counter()
                    op()
                    times.append(time.perf_counter() - start)
                medians.append(statistics.median(times) * 1e6)
            line += f"{medians[0]:9.1f} /{medians[1]:6.1f}"
        print(line)


def tiny_case():
    """The same model with every width cut to 8 (MLP only): what the phases cost when everything is in L1."""

    def make_ours():
        return nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 10))

    def make_theirs(torch):
        t = torch.nn
        return t.Sequential(t.Linear(8, 8), t.ReLU(), t.Linear(8, 8), t.ReLU(), t.Linear(8, 10))

    return ("MLP 8-8-8-10, batch 4", make_ours, make_theirs, (4, 8), 4)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="mlp", choices=["mlp", "cnn"])
    parser.add_argument("--tiny", action="store_true", help="the MLP at width 8, batch 4 (everything fits in L1)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (medians are reported)")
    parser.add_argument("--steps", type=int, default=20, help="steps per contender per round")
    parser.add_argument("--cold", action="store_true", help="also time small ops after reading other data")
    args = parser.parse_args(argv)
    peer = load_peer("bench_step")
    if peer is None:
        return 1
    torch, threadpool_limits = peer
    if "c" not in minidl.available_kernels():
        print("bench_step times the C kernels, which are not built here", file=sys.stderr)
        return 1
    minidl.set_kernels("c")
    case = tiny_case() if args.tiny else next(c for c in CASES if c[0].split()[0].lower() == args.case)
    label = case[0]
    with threadpool_limits(limits=1, user_api="blas"):
        contenders = build(torch, case)
        print(f"{label}: one SGD step in three phases; median of {args.rounds} rounds of {args.steps} steps\n")
        print_phases(measure(contenders, args.rounds, args.steps))
        for name in ("as written", "fused"):
            print_split(name, kernel_split(contenders[name], steps=max(50, args.steps * 5)))
        if args.cold:
            cold_ops(torch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
