"""What `minidl train`'s defaults reach: test accuracy and time of each model's recipe and each optimizer.

    python benchmarks/bench_recipes.py [--seeds 0,1,2] [--cases models,optimizers] [--no-peer]

Rows: every model with its recipe (mlp, cnn, lstm on the digits), then the default model
(cnn) with each --optimizer at its default learning rate (minidl.training.OPTIMIZER_LR).
Each row runs `minidl.training.fit` once per seed; "acc" is seed 0 (what `minidl train`
prints), "range" the lowest and highest over the seeds, "s" the median time from the first
epoch to the end of fit(): training plus the per-epoch test evaluation, not loading the data
or starting Python.

The peer is PyTorch CPU on one thread running the same recipe: same network, same
initial temperature (last layer scaled by 0.1, bias 0), same optimizer, learning rate and
e^(−βt) decay, batch size, epochs and train/test split, its own random initialization.
Similar accuracy says the recipe, not a lucky implementation detail, does the work;
time ratio = PyTorch s / minidl s (> 1: minidl is faster). The README's training table
comes from this script.
"""

import argparse
import math
import os
import platform
import statistics
import time

import numpy as np

import minidl
from minidl import data, training


def rows(cases):
    out = []
    if "models" in cases:
        out += [(model, None) for model in training.MODELS]
    if "optimizers" in cases:
        out += [("cnn", name) for name in training.OPTIMIZERS]
    return out


class Stopwatch(training.Callback):
    """Times fit() from its first epoch to its end: training and per-epoch evaluation, not data loading."""

    def on_fit_start(self, info):
        self.start = time.perf_counter()

    def on_fit_end(self):
        self.seconds = time.perf_counter() - self.start


def run_minidl(model, optimizer, seed):
    stopwatch = Stopwatch()
    result = training.fit(model=model, optimizer=optimizer, seed=seed, callbacks=[stopwatch])
    return result.test_accuracy, stopwatch.seconds, result.config


# ---------------------------------------------------------------------------
# The same recipe in PyTorch
# ---------------------------------------------------------------------------
def torch_model(torch, model, hidden=128):
    t = torch.nn
    if model == "mlp":
        net = t.Sequential(t.Flatten(), t.Linear(64, hidden), t.ReLU(), t.Linear(hidden, hidden), t.ReLU(),
                           t.Linear(hidden, 10))  # fmt: skip
        last = net[-1]
    elif model == "cnn":
        net = t.Sequential(t.Conv2d(1, 16, 3, padding=1), t.ReLU(), t.MaxPool2d(2), t.Conv2d(16, 32, 3, padding=1),
                           t.ReLU(), t.MaxPool2d(2), t.Flatten(), t.Linear(32 * 2 * 2, 10))  # fmt: skip
        last = net[-1]
    else:

        class Rows(t.Module):
            def __init__(self):
                super().__init__()
                self.lstm, self.out = t.LSTM(8, hidden, batch_first=True), t.Linear(hidden, 10)

            def forward(self, images):
                _, (h, _) = self.lstm(images.reshape(images.shape[0], 8, 8))
                return self.out(h[-1])

        net = Rows()
        last = net.out
    with torch.no_grad():
        last.weight.mul_(0.1)
        last.bias.zero_()
    return net


def run_torch(torch, config, seed, train, test):
    torch.manual_seed(seed)
    net = torch_model(torch, config.model, config.hidden)
    params, lr, wd = net.parameters(), config.lr, config.weight_decay
    optimizer = {
        "sgd": lambda: torch.optim.SGD(params, lr=lr, weight_decay=wd),
        "momentum": lambda: torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd),
        "adagrad": lambda: torch.optim.Adagrad(params, lr=lr, weight_decay=wd),
        "rmsprop": lambda: torch.optim.RMSprop(params, lr=lr, weight_decay=wd),
        "adam": lambda: torch.optim.Adam(params, lr=lr, weight_decay=wd),
    }[config.optimizer]()
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=math.exp(-config.lr_decay))
    (x, y), (x_test, y_test) = train, test
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(config.epochs):
        net.train()
        order = torch.randperm(len(y), generator=generator)
        for i in range(0, len(y), config.batch_size):
            batch = order[i : i + config.batch_size]
            loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
        net.eval()
        with torch.no_grad():  # evaluated every epoch, as fit() does
            accuracy = (net(x_test).argmax(1) == y_test).float().mean().item()
    return accuracy, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--cases", default="models,optimizers")
    parser.add_argument("--no-peer", action="store_true", help="skip PyTorch")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    torch = None
    if not args.no_peer:
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            print("PyTorch is not installed: no peer column")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # OpenBLAS on one thread, like PyTorch
    except ImportError:
        pass
    if torch is not None:
        train_set, test_set = data.digits(train=True), data.digits(train=False)
        as_torch = [(torch.from_numpy(d.arrays[0]), torch.from_numpy(d.arrays[1])) for d in (train_set, test_set)]

    print(f"minidl {minidl.__version__}, kernels {minidl.kernels_name()}, {platform.machine()}, seeds {seeds}, "
          f"{os.cpu_count()} CPUs; times: median over the seeds")  # fmt: skip
    header = "| model | optimizer | lr | epochs | minidl acc | range | minidl s |"
    if torch is not None:
        header += " PyTorch acc | range | PyTorch s | time ratio |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for model, optimizer in rows(args.cases.split(",")):
        runs = [run_minidl(model, optimizer, seed) for seed in seeds]
        config = runs[0][2]
        accuracies, seconds = [r[0] for r in runs], statistics.median(r[1] for r in runs)
        line = (
            f"| {model} | {config.optimizer} | {config.lr:g} | {config.epochs} | {accuracies[0]:.3f} | "
            f"{min(accuracies):.3f}-{max(accuracies):.3f} | {seconds:.1f} |"
        )
        if torch is not None:
            peer = [run_torch(torch, config, seed, *as_torch) for seed in seeds]
            peer_accuracies, peer_seconds = [p[0] for p in peer], statistics.median(p[1] for p in peer)
            line += (
                f" {peer_accuracies[0]:.3f} | {min(peer_accuracies):.3f}-{max(peer_accuracies):.3f} | "
                f"{peer_seconds:.1f} | {peer_seconds / seconds:.2f} |"
            )
        print(line, flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
