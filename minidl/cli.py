"""The `minidl` command: `minidl train` (the main job), `minidl launch` and `minidl info`.

`minidl train` trains a small CNN on the built-in digits by default: a progress bar with
running loss and accuracy, the test accuracy at the end, and in --out a checkpoint after
every epoch, metrics.json and a plot of the training curves. `--resume CHECKPOINT`
continues an interrupted run exactly where it stopped (same final weights as a run that
was never interrupted). Everything here uses only minidl's public API; read it as an
example of a complete training loop.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

import minidl
from minidl import data, nn, optim
from minidl.checkpoint import CheckpointError

MODELS = ("mlp", "cnn", "lstm")
DATASETS = ("digits", "mnist", "fashion-mnist", "spirals", "moons", "blobs")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam")
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "adagrad": 0.05, "rmsprop": 0.001, "adam": 0.001}

# Settings that define a run. They are stored in the checkpoint; --resume takes them from
# there, and refuses different values given on the command line.
RUN_DEFAULTS = {
    "model": "cnn",
    "dataset": "digits",
    "optimizer": "momentum",
    "lr": None,  # None: DEFAULT_LR[optimizer]
    "momentum": 0.9,
    "weight_decay": 0.0,
    "lr_decay": 0.1,
    "batch_size": 32,
    "seed": 0,
    "clip_grad_norm": None,
    "average": "none",
    "hidden": 128,
    "dropout": 0.0,
}
DEFAULT_EPOCHS = 15
# The largest --lr-decay β accepted: β = 50 already shrinks the learning rate e^50 ≈ 5e21-fold
# per epoch, and past β ≈ 745 e^(-β) underflows to 0 and the schedule stops making sense.
MAX_LR_DECAY = 50


class UsageError(Exception):
    """A problem with what the user asked for: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser():
    parser = _Parser(prog="minidl", description="minidl: a small deep learning framework you can read.")
    parser.add_argument("--version", action="version", version=f"minidl {minidl.__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="train a model (default: a small CNN on the built-in digits)",
        description="Train a model and write a checkpoint, metrics.json and training curves to --out.",
    )
    what = train.add_argument_group("what to train")
    what.add_argument("--model", choices=MODELS, help="network: mlp, cnn or lstm (default: cnn)")
    what.add_argument("--dataset", choices=DATASETS, help="data set (default: digits, bundled with scikit-learn)")
    what.add_argument("--data-dir", help="folder with the MNIST / Fashion-MNIST IDX files")
    what.add_argument("--download", action="store_true", help="download missing MNIST files into --data-dir")
    what.add_argument("--mirror", help="base URL to download MNIST files from (a mirror, or file:// folder)")
    what.add_argument("--hidden", type=int, help="hidden units of the mlp / lstm (default: 128)")
    what.add_argument("--dropout", type=float, help="dropout probability before the classifier (default: 0)")
    how = train.add_argument_group("how to train")
    how.add_argument("--optimizer", choices=OPTIMIZERS, help="update rule (default: momentum, i.e. SGD with μ=0.9)")
    how.add_argument("--lr", type=float, help="initial learning rate α₀ (default depends on --optimizer)")
    how.add_argument("--momentum", type=float, help="μ for --optimizer momentum (default: 0.9)")
    how.add_argument("--weight-decay", type=float, help="L2 weight decay ε (default: 0)")
    how.add_argument("--lr-decay", type=float, help="β in α = α₀·e^(-β·epoch), 0-50 (default: 0.1; 0 = constant)")
    how.add_argument("--clip-grad-norm", type=float, help="clip the gradient norm to this value")
    how.add_argument("--average", choices=("none", "polyak", "ema"), help="evaluate with averaged parameters")
    how.add_argument("--epochs", type=int, help=f"number of epochs (default: {DEFAULT_EPOCHS})")
    how.add_argument("--batch-size", type=int, help="examples per step (default: 32)")
    how.add_argument("--seed", type=int, help="random seed (default: 0)")
    run = train.add_argument_group("run")
    run.add_argument("--out", help="output folder (default: runs/<timestamp>, or the checkpoint's folder on --resume)")
    run.add_argument("--resume", metavar="CHECKPOINT", help="continue training from this checkpoint")
    run.add_argument("--kernels", choices=("numpy", "c"), help="kernel set (default: c when built, else numpy)")
    run.add_argument("--no-plot", action="store_true", help="do not write training_curves.png")
    run.add_argument("--quiet", action="store_true", help="no progress bars or summary, only errors")
    distributed_driver().add_arguments(train)

    launch = commands.add_parser(
        "launch",
        help="run a minidl command on N MPI ranks (mpiexec from this environment, or srun under Slurm)",
        description="Start `minidl COMMAND ...` on N ranks, e.g. minidl launch -n 4 -- train --distributed sync",
    )
    launch.add_argument("-n", "--ranks", type=int, required=True, help="number of ranks (processes)")
    launch.add_argument("--launcher", choices=("mpiexec", "srun"), help="default: srun inside Slurm, else mpiexec")
    launch.add_argument("program", nargs=argparse.REMAINDER, help="the minidl command line to run, after --")

    commands.add_parser("info", help="versions, kernels, SIMD path, BLAS and CUDA availability")
    return parser


def main(argv=None):
    """Entry point of the `minidl` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "train":
            return train_command(args)
        if args.command == "info":
            return info_command()
        if args.command == "launch":
            return launch_command(args)
        parser.print_help(sys.stderr)
        return 2
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, no permission, a directory in the way: the system's problem, not a bug
        print(f"error: {_describe_os_error(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _describe_os_error(error):
    """The file that failed (a rename's target) and why, e.g. "run/checkpoint.npz: Is a directory"."""
    filename = error.filename2 if error.filename2 is not None else error.filename
    if filename is None or not error.strerror:
        return str(error)
    return f"{filename}: {error.strerror}"


# ---------------------------------------------------------------------------
# minidl launch, and train --distributed (the logic lives in minidl.distributed)
# ---------------------------------------------------------------------------
def distributed_driver():
    from minidl.distributed import driver  # imports no MPI: that happens when a job starts

    return driver


def launch_command(args):
    from minidl.distributed import launch

    program = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not program:
        raise UsageError(
            "launch: give the command to run after --, e.g. minidl launch -n 4 -- train --distributed sync"
        )
    try:
        return launch.launch(args.ranks, program, args.launcher)
    except launch.LaunchError as e:
        raise UsageError(str(e)) from None


def train_distributed(args, settings):
    """`minidl train --distributed MODE`: hand the run to minidl.distributed's driver, on every rank."""
    driver = distributed_driver()
    recipe = driver.Recipe(
        load_datasets=lambda s: load_datasets(s, args),
        build_model=build_model,
        build_optimizer=build_optimizer,
        evaluate=evaluate,
        progress_bar=None if args.quiet else _progress_bar_factory(),
        plot=plot_training_curves,
    )
    out = args.out or (os.path.dirname(os.path.abspath(args.resume)) if args.resume else _default_out_dir())
    options = driver.distributed_options(args)
    return driver.run(settings, options, recipe, out, resume=args.resume, quiet=args.quiet, no_plot=args.no_plot)


# ---------------------------------------------------------------------------
# minidl info
# ---------------------------------------------------------------------------
def info_command():
    import platform

    from minidl import backend

    print(f"minidl {minidl.__version__}")
    print(f"python {platform.python_version()} ({platform.machine()}), numpy {np.__version__}")
    print(f"kernels in use: {minidl.kernels_name()} (available: {', '.join(minidl.available_kernels())})")
    for key, value in backend.describe().items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value)) or "-"
        print(f"  {key}: {value}")
    for line in _blas_lines():
        print(line)
    cuda = backend.describe().get("cuda_available", False)
    print(f"CUDA available: {'yes' if cuda else 'no'}")
    return 0


def _blas_lines():
    try:
        from threadpoolctl import threadpool_info

        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            return [
                f"BLAS: {p.get('internal_api')} {p.get('version')} ({p.get('threading_layer', '?')} threading, "
                f"{p.get('num_threads')} threads, {p.get('architecture', '?')})"
                for p in pools
            ]
    except ImportError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return [f"BLAS: {blas.get('name')} {blas.get('version')}"]
    except Exception:  # older NumPy builds describe themselves differently
        return ["BLAS: unknown"]


# ---------------------------------------------------------------------------
# minidl train: settings
# ---------------------------------------------------------------------------
def resolve_settings(args):
    """Merge command line, checkpoint and defaults into one settings dict; check them."""
    given = {k: getattr(args, k) for k in RUN_DEFAULTS if getattr(args, k) is not None}
    resume = None
    if args.resume:
        try:
            resume = minidl.checkpoint.read(args.resume)
        except (OSError, CheckpointError) as e:
            raise UsageError(f"--resume: {e}") from None
        saved = resume["extra"].get("settings")
        if saved is None:
            raise UsageError(f"--resume: {args.resume} was not written by `minidl train` (no settings inside)")
        for key, value in given.items():
            if value != saved.get(key):
                flag = "--" + key.replace("_", "-")
                raise UsageError(
                    f"--resume: the checkpoint was trained with {flag} {saved.get(key)}; "
                    f"it cannot continue with {flag} {value}"
                )
        settings = dict(saved)
    else:
        settings = {**RUN_DEFAULTS, **given}
        if settings["lr"] is None:
            settings["lr"] = DEFAULT_LR[settings["optimizer"]]
    if args.epochs is not None:  # the one setting a resumed run may change: train longer (or not)
        settings["epochs"] = args.epochs
    settings.setdefault("epochs", DEFAULT_EPOCHS)
    _check_settings(settings, args)
    return settings, resume


def _check_settings(s, args):
    checks = [
        (s["epochs"] >= 1, f"--epochs must be >= 1, got {s['epochs']}"),
        (s["batch_size"] >= 1, f"--batch-size must be >= 1, got {s['batch_size']}"),
        (s["lr"] > 0 and math.isfinite(s["lr"]), f"--lr must be a positive number, got {s['lr']}"),
        (0 <= s["momentum"] < 1, f"--momentum must be in [0, 1), got {s['momentum']}"),
        (0 <= s["weight_decay"] < math.inf, f"--weight-decay must be a number >= 0, got {s['weight_decay']}"),
        (
            0 <= s["lr_decay"] <= MAX_LR_DECAY,
            f"--lr-decay must be a number in [0, {MAX_LR_DECAY}], got {s['lr_decay']}",
        ),
        (s["clip_grad_norm"] is None or s["clip_grad_norm"] > 0, "--clip-grad-norm must be > 0"),
        (s["hidden"] >= 1, f"--hidden must be >= 1, got {s['hidden']}"),
        (0 <= s["dropout"] < 1, f"--dropout must be in [0, 1), got {s['dropout']}"),
        (s["seed"] >= 0, f"--seed must be >= 0, got {s['seed']}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    if s["dataset"] in ("mnist", "fashion-mnist") and not args.data_dir and not args.download:
        raise UsageError(f"--dataset {s['dataset']} needs --data-dir DIR with the IDX files (and/or --download)")
    if s["dataset"] in ("spirals", "moons", "blobs") and s["model"] != "mlp":
        raise UsageError(f"--dataset {s['dataset']} is 2-D points, not images: use --model mlp")


# ---------------------------------------------------------------------------
# minidl train: data and models
# ---------------------------------------------------------------------------
def load_datasets(settings, args):
    """(train, test, input_shape, num_classes) for the chosen data set."""
    name = settings["dataset"]
    try:
        if name == "digits":
            train, test = data.digits(train=True), data.digits(train=False)
        elif name in ("mnist", "fashion-mnist"):
            kind = "mnist" if name == "mnist" else "fashion"
            options = dict(kind=kind, download=args.download, base_url=args.mirror)
            train = data.mnist(args.data_dir, train=True, **options)
            test = data.mnist(args.data_dir, train=False, **options)
        else:
            generate = {"spirals": data.spirals, "moons": data.moons, "blobs": data.blobs}[name]
            train, test = data.train_test_split(generate(seed=0), test_fraction=0.25, seed=0)
    except (OSError, ValueError, ImportError) as e:
        raise UsageError(f"--dataset {name}: {e}") from None
    x, y = train[0]
    labels = np.concatenate([_labels(train), _labels(test)])
    return train, test, tuple(np.shape(x)), int(labels.max()) + 1


def _labels(dataset):
    if isinstance(dataset, data.TensorDataset):
        return dataset.arrays[1]
    return np.array([dataset[i][1] for i in range(len(dataset))])


class SequenceClassifier(nn.Module):
    """Reads an image row by row with an LSTM and classifies it from the last hidden state."""

    def __init__(self, row_size, hidden, num_classes, dropout):
        super().__init__()
        self.lstm = nn.LSTM(row_size, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, images):
        rows = images.reshape(images.shape[0], images.shape[-2], images.shape[-1])  # (N, H, W): H steps of W
        _, (h, _) = self.lstm(rows)
        return self.out(self.dropout(h[-1]))


def build_model(settings, input_shape, num_classes):
    """The network for --model; the last layer starts small (the lecture's high initial temperature)."""
    kind, hidden, p = settings["model"], settings["hidden"], settings["dropout"]
    features = int(np.prod(input_shape))
    if kind == "mlp":
        model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(p),
            nn.Linear(hidden, num_classes),
        )
        last = model[-1]
    elif kind == "cnn":
        if len(input_shape) != 3:
            raise UsageError(f"--model cnn needs images (C, H, W), but the data has shape {input_shape}")
        channels, height, width = input_shape
        model = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(p),
            nn.Linear(32 * (height // 4) * (width // 4), num_classes),
        )
        last = model[-1]
    else:
        if len(input_shape) != 3 or input_shape[0] != 1:
            raise UsageError(f"--model lstm reads single-channel images row by row; the data has shape {input_shape}")
        model = SequenceClassifier(input_shape[2], hidden, num_classes, p)
        last = model.out
    nn.init.small_last_layer_(last, scale=0.1)
    return model


def build_optimizer(settings, model):
    params, name = model.parameters(), settings["optimizer"]
    common = dict(lr=settings["lr"], weight_decay=settings["weight_decay"])
    if name == "sgd":
        return optim.SGD(params, **common)
    if name == "momentum":
        return optim.SGD(params, momentum=settings["momentum"], **common)
    return {"adagrad": optim.AdaGrad, "rmsprop": optim.RMSProp, "adam": optim.Adam}[name](params, **common)


# ---------------------------------------------------------------------------
# minidl train: the loop
# ---------------------------------------------------------------------------
def evaluate(model, dataset, batch_size=512):
    """Accuracy of `model` on `dataset`, in eval mode and without recording the graph."""
    was_training = model.training
    model.eval()
    correct = 0
    with minidl.no_grad():
        for x, y in data.DataLoader(dataset, batch_size=batch_size):
            correct += int((model(x).data.argmax(axis=1) == y.data).sum())
    model.train(was_training)
    return correct / len(dataset)


def train_one_epoch(model, loader, loss_fn, optimizer, settings, averager, progress):
    """One pass over the training data: forward, loss, backward, (clip), step. Returns (mean loss, accuracy)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in loader:
        scores = model(x)
        loss = loss_fn(scores, y)
        optimizer.zero_grad()
        loss.backward()
        if settings["clip_grad_norm"]:
            optim.clip_grad_norm_(model.parameters(), settings["clip_grad_norm"])
        optimizer.step()
        if averager is not None:
            averager.update()
        n = len(y)
        total_loss += loss.item() * n
        correct += int((scores.data.argmax(axis=1) == y.data).sum())
        seen += n
        if progress is not None:
            progress.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
            progress.update(1)
    return total_loss / seen, correct / seen


def _default_out_dir():
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, n = os.path.join("runs", stamp), 1
    while os.path.exists(out):
        n += 1
        out = os.path.join("runs", f"{stamp}-{n}")
    return out


def train_command(args):
    start = time.perf_counter()
    settings, resume = resolve_settings(args)
    if args.kernels:
        try:
            minidl.set_kernels(args.kernels)
        except (RuntimeError, ValueError) as e:
            raise UsageError(f"--kernels {args.kernels}: {e}") from None
    if args.distributed:
        return train_distributed(args, settings)
    out = args.out or (os.path.dirname(os.path.abspath(args.resume)) if args.resume else _default_out_dir())
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: {e}") from None
    checkpoint_path = os.path.join(out, "checkpoint.npz")
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))

    minidl.manual_seed(settings["seed"])
    train, test, input_shape, num_classes = load_datasets(settings, args)
    model = build_model(settings, input_shape, num_classes)
    optimizer = build_optimizer(settings, model)
    scheduler = optim.lr_scheduler.ExponentialLR(optimizer, beta=settings["lr_decay"])
    averager = {"none": None, "polyak": optim.PolyakAverage, "ema": optim.EMA}[settings["average"]]
    averager = averager(model.parameters()) if averager else None
    loader = data.DataLoader(train, batch_size=settings["batch_size"], shuffle=True)
    loss_fn = nn.CrossEntropyLoss()
    history = {"train_loss": [], "train_accuracy": [], "test_accuracy": [], "lr": []}
    first_epoch, previous_seconds = 1, 0.0

    if resume is not None:
        try:
            state = minidl.load(args.resume, model=model, optimizer=optimizer)
        except (OSError, CheckpointError) as e:
            raise UsageError(f"--resume: {e}") from None
        scheduler.load_state_dict(state["extra"]["scheduler"])
        if averager is not None:
            averager.load_state_dict(state["extra"]["averager"])
        history = {k: list(v) for k, v in state["extra"]["history"].items()}
        first_epoch = int(state["step"]) + 1
        previous_seconds = float(state["extra"]["seconds"])
        say(f"resuming {args.resume} after epoch {state['step']}")

    say(f"training {settings['model']} on {settings['dataset']} ({len(train)} train / {len(test)} test examples, "
        f"{model.num_parameters()} parameters, kernels: {minidl.kernels_name()}) -> {out}")  # fmt: skip
    progress_bar = None if args.quiet else _progress_bar_factory()
    for epoch in range(first_epoch, settings["epochs"] + 1):
        progress = progress_bar(len(loader), f"epoch {epoch}/{settings['epochs']}") if progress_bar else None
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_accuracy = train_one_epoch(model, loader, loss_fn, optimizer, settings, averager, progress)
        scheduler.step()
        test_accuracy = _evaluate_maybe_averaged(model, test, averager)
        if progress is not None:
            progress.set_postfix(loss=f"{train_loss:.4f}", acc=f"{train_accuracy:.3f}", test=f"{test_accuracy:.3f}")
            progress.close()
        for key, value in zip(history, (train_loss, train_accuracy, test_accuracy, lr)):
            history[key].append(value)
        if not math.isfinite(train_loss):
            print(f"error: the loss became {train_loss} in epoch {epoch}; keep calm and lower the learning rate (--lr)",
                  file=sys.stderr)  # fmt: skip
            return 1
        extra = {
            "settings": settings,
            "scheduler": scheduler.state_dict(),
            "averager": averager.state_dict() if averager is not None else None,
            "history": history,
            "seconds": previous_seconds + time.perf_counter() - start,
        }
        minidl.save(checkpoint_path, model=model, optimizer=optimizer, step=epoch, extra=extra)

    seconds = time.perf_counter() - start
    if first_epoch <= settings["epochs"]:  # an epoch ran: it ended by measuring these very weights
        final_test = history["test_accuracy"][-1]
    else:  # resumed after the last epoch: nothing trained, measure the loaded weights
        final_test = _evaluate_maybe_averaged(model, test, averager)
    metrics = {
        "test_accuracy": final_test,
        "train_loss": history["train_loss"][-1] if history["train_loss"] else None,
        "train_accuracy": history["train_accuracy"][-1] if history["train_accuracy"] else None,
        "epochs": settings["epochs"],
        "seconds": seconds,
        "total_training_seconds": previous_seconds + seconds,
        "resumed_from_epoch": first_epoch - 1 if resume is not None else None,
        "kernels": minidl.kernels_name(),
        "settings": settings,
        "history": history,
    }
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    if not args.no_plot:
        plot_training_curves(history, os.path.join(out, "training_curves.png"))
    say(f"test accuracy {final_test:.4f} after {settings['epochs']} epochs in {seconds:.1f}s; "
        f"checkpoint, metrics.json{'' if args.no_plot else ' and training_curves.png'} in {out}")  # fmt: skip
    return 0


def _evaluate_maybe_averaged(model, dataset, averager):
    if averager is None:
        return evaluate(model, dataset)
    with averager.average_parameters(model):  # averaged weights for testing only, never for training
        return evaluate(model, dataset)


def _progress_bar_factory():
    from tqdm import tqdm

    def make(total, description):
        return tqdm(total=total, desc=description, unit="batch", leave=True, dynamic_ncols=True, file=sys.stderr)

    return make


def plot_training_curves(history, path):
    """Loss and accuracy per epoch, side by side, as a PNG (matplotlib's non-interactive Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history["train_loss"]) + 1)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, history["train_loss"], marker="o")
    left.set(title="training loss", xlabel="epoch", ylabel="cross-entropy")
    right.plot(epochs, history["train_accuracy"], marker="o", label="train")
    right.plot(epochs, history["test_accuracy"], marker="o", label="test")
    right.set(title="accuracy", xlabel="epoch", ylabel="accuracy")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
