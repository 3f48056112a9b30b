"""The `minidl` command: `minidl train` (the main job), `minidl launch`, `minidl simulate`, `minidl info`;
for courses `minidl lectures build`, `minidl exercises release` and `minidl grade`.

This file parses arguments and prints; the work is done by `minidl.training` (fit, the
model recipes, plots), which notebooks call directly. The library names settings the
Python way (`lr=0.005`, `download=True`); here every message names the command-line flag
instead (`--lr 0.005`, `--download`). Bad input is one line on stderr and exit status 2,
a failure of the system (disk full, no permission) exit status 1, Ctrl-C 130.

A subcommand is a function `add_<name>_command(subparsers)` that adds its parser and sets
`run=` to the function that carries it out; COMMANDS lists them.

Only the standard library is imported at the top: `minidl/__init__.py` calls
exit_on_environment_error() from here while minidl itself failed to import.
"""

import argparse
import os
import shlex
import sys
import time
import warnings

# The values the environment variables read by minidl's backend accept.
ENVIRONMENT_VALUES = {
    "MINIDL_KERNELS": "numpy, c, auto (the default: c when built)",
    "MINIDL_SIMD": "scalar, avx2, avx512 (x86-64), neon (aarch64), auto (the default: the best this CPU runs)",
}


class UsageError(Exception):
    """A problem with what the user asked for: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def flag(arg):
    """How the command line writes a setting named in a library message: --data-dir, --lr 0.005, --download."""
    name = "--" + arg.name.replace("_", "-")
    if not arg.has_value or arg.value is True:
        return name
    return f"{name} {arg.value}"


# ---------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------
def add_train_command(commands):
    from minidl.training import DATASETS, MODELS, OPTIMIZER_LR, OPTIMIZERS, RECIPES

    recipes = "; ".join(f"{m}: {r['optimizer']} lr {r['lr']}, {r['epochs']} epochs" for m, r in RECIPES.items())
    train = commands.add_parser(
        "train",
        help="train a model (default: a small CNN on the built-in digits)",
        description="Train a model and write a checkpoint (after every epoch), metrics.json and training curves "
        f"to --out. Each model has a recipe that trains well on the digits ({recipes}).",
    )
    what = train.add_argument_group("what to train")
    what.add_argument("--model", choices=MODELS, help="network: mlp, cnn or lstm (default: cnn)")
    what.add_argument("--dataset", choices=DATASETS, help="data set (default: digits, bundled with scikit-learn)")
    what.add_argument("--data-dir", help="folder with the MNIST / Fashion-MNIST IDX files (plain or .gz)")
    what.add_argument(
        "--download", action="store_true", help="download missing MNIST files (into --data-dir, or ~/.cache/minidl)"
    )
    what.add_argument("--mirror", metavar="URL", help="where --download fetches from (default: the official mirror)")
    what.add_argument("--hidden", type=int, help="hidden units of the mlp / lstm (default: 128)")
    what.add_argument("--dropout", type=float, help="dropout probability before the classifier (default: 0)")
    how = train.add_argument_group("how to train")
    how.add_argument("--optimizer", choices=OPTIMIZERS, help="update rule (default: the model's recipe)")
    how.add_argument(
        "--lr",
        type=float,
        help="initial learning rate α₀ (default: the recipe's; for another optimizer "
        + ", ".join(f"{k} {v}" for k, v in OPTIMIZER_LR.items())
        + ")",
    )
    how.add_argument("--momentum", type=float, help="μ for --optimizer momentum (default: 0.9)")
    how.add_argument("--weight-decay", type=float, help="L2 weight decay ε (default: 0)")
    how.add_argument("--lr-decay", type=float, help="β in α = α₀·e^(-β·epoch), 0-50 (default: 0.1; 0 = constant)")
    how.add_argument("--clip-grad-norm", type=float, help="clip the gradient norm to this value")
    how.add_argument("--average", choices=("none", "polyak", "ema"), help="evaluate with averaged parameters")
    how.add_argument("--epochs", type=int, help="number of epochs (default: the recipe's, 15 or 10 for lstm)")
    how.add_argument("--batch-size", type=int, help="examples per step (default: 32)")
    how.add_argument("--seed", type=int, help="random seed (default: 0)")
    run = train.add_argument_group("run")
    run.add_argument("--out", help="output folder (default: runs/<time>, or the checkpoint's folder on --resume)")
    run.add_argument("--resume", metavar="CHECKPOINT", help="continue training from this checkpoint")
    run.add_argument("--kernels", choices=("numpy", "c"), help="kernel set (default: c when built, else numpy)")
    run.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        help="where to train (default: cpu); cuda runs on the emulator without a GPU",
    )
    run.add_argument("--no-fuse", action="store_true", help="run Linear/Conv2d and their activation as separate ops")
    run.add_argument("--no-plot", action="store_true", help="do not write training_curves.png")
    run.add_argument("--quiet", action="store_true", help="print only the output folder (and errors, warnings)")
    from minidl.distributed import driver  # imports no MPI: that happens when a distributed job starts

    driver.add_arguments(train)
    train.set_defaults(run=train_command)


def add_launch_command(commands):
    launch = commands.add_parser(
        "launch",
        help="run a minidl command on N MPI ranks (mpiexec from this environment, or srun under Slurm)",
        description="Start `minidl COMMAND ...` on N ranks, e.g. minidl launch -n 4 -- train --distributed sync",
    )
    launch.add_argument("-n", "--ranks", type=int, required=True, help="number of ranks (processes)")
    launch.add_argument("--launcher", choices=("mpiexec", "srun"), help="default: srun inside Slurm, else mpiexec")
    launch.add_argument("program", nargs=argparse.REMAINDER, help="the minidl command line to run, after --")
    launch.set_defaults(run=launch_command)


def add_info_command(commands):
    info = commands.add_parser("info", help="versions, kernels, SIMD path, BLAS and CUDA availability")
    info.set_defaults(run=info_command)


def add_simulate_command(commands):
    simulate = commands.add_parser(
        "simulate",
        help="a simulated cluster: parameter-server experiments with hundreds of workers in one process",
        description="Run a named experiment of the simulated cluster (real gradients, simulated time) or a JSON "
        "config file, and write its data (history.csv, summary.json) and plot to --out. Experiments: "
        "sync-vs-async, backup-workers, staleness, bounded-delay, failures, compression, hogwild "
        "(--list says what each shows).",
    )
    simulate.add_argument("experiment", nargs="?", help="an experiment name, or a .json config file")
    simulate.add_argument("--list", action="store_true", help="list the experiments and what each shows")
    params = simulate.add_argument_group("experiment parameters (each experiment takes some of them)")
    params.add_argument("--workers", metavar="N", help="workers N (staleness: a list, e.g. 1,4,16)")
    params.add_argument("--backup", metavar="B", type=int, help="backup workers b (sync-vs-async, backup-workers)")
    params.add_argument("--updates", metavar="U", type=int, help="updates per run")
    params.add_argument("--time", metavar="SECONDS", type=float, help="simulated seconds per run")
    params.add_argument("--lr", type=float, help="the server's learning rate")
    params.add_argument("--compute", metavar="MODEL", help="compute-time model, e.g. lognormal:median=0.1,sigma=0.3")
    params.add_argument("--seed", type=int, help="random seed (default 0)")
    params.add_argument(
        "--set",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="any other parameter of the experiment (VALUE in JSON), e.g. --set 'lrs=[0.1,0.01]'",
    )
    run = simulate.add_argument_group("run")
    run.add_argument("--quick", action="store_true", help="the small version (seconds; what the docs show)")
    run.add_argument("--out", help="output folder (default: runs/sim-<experiment>-<time>)")
    run.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    run.add_argument("--quiet", action="store_true", help="print only the output folder")
    simulate.set_defaults(run=simulate_command)


def add_lectures_command(commands):
    lectures = commands.add_parser(
        "lectures",
        help="the lecture notebooks: run them and write HTML pages with their figures",
        description="Work with the lecture notebooks in lectures/ (NN_topic.ipynb).",
    )
    actions = lectures.add_subparsers(dest="lectures_action", parser_class=_Parser)
    build = actions.add_parser(
        "build",
        help="execute the notebooks and write one HTML page each (and index.html) into DEST",
        description="Execute the lecture notebooks top to bottom (full mode unless --fast) in a fresh python3 "
        "kernel and write DEST/NN_topic.html with their outputs and figures, plus DEST/index.html. "
        "The notebooks in lectures/ stay without outputs.",
    )
    build.add_argument("dest", metavar="DEST", help="output folder for the HTML pages (created if missing)")
    build.add_argument(
        "notebooks",
        nargs="*",
        metavar="NOTEBOOK",
        help="only these notebooks: a number (2 or 02), a name or part of one (backprop); default: all",
    )
    build.add_argument("--fast", action="store_true", help="fast mode (MINIDL_NOTEBOOK_FAST=1): small data, few epochs")
    build.add_argument("--source", help="the folder with the notebooks (default: lectures/ beside the minidl package)")
    build.add_argument("--quiet", action="store_true", help="no progress bar; print only the written pages")
    lectures.set_defaults(run=lectures_command)


def add_exercises_command(commands):
    exercises = commands.add_parser(
        "exercises",
        help="course exercises: write the student version (release)",
        description="Work with the course exercises in exercises/ (see exercises/README.md).",
    )
    actions = exercises.add_subparsers(dest="action", parser_class=_Parser)
    release = actions.add_parser(
        "release",
        help="write the student version of exercises to DEST",
        description="Write DEST/<exercise>/ for each exercise: solution regions replaced by stubs, the wrong-answer "
        "fixtures (wrong/) and instructor-only tests (tests/test_instructor_*.py) left out.",
    )
    release.add_argument("dest", metavar="DEST", help="folder to write the exercises into")
    release.add_argument(
        "names", metavar="NAME", nargs="*", help="exercises to release, e.g. 01_backward (default: all)"
    )
    release.add_argument(
        "--from", dest="source", metavar="DIR", help="the exercises folder (default: the repository's)"
    )
    release.set_defaults(run=release_command)
    exercises.set_defaults(run=lambda args: _missing_action(exercises))


def add_grade_command(commands):
    grade = commands.add_parser(
        "grade",
        help="grade a student's copy of an exercise and print the score table",
        description="Run each task's graded tests (one process per task, killed at the task's timeout) against the "
        "code in PATH and print a score table. Exit status 0 whenever grading completed, whatever the score.",
    )
    grade.add_argument("path", nargs="?", default=".", help="the student's exercise folder (default: here)")
    grade.add_argument("--instructor", metavar="DIR", help="the original exercise folder: grade with its tests, "
                       "hidden ones included")  # fmt: skip
    grade.add_argument("--json", action="store_true", help="print the result as JSON (for a gradebook)")
    grade.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="per-task time limit (default: exercise.toml's)"
    )
    grade.add_argument("--task", action="append", metavar="ID", help="grade only this task (repeatable)")
    grade.add_argument("--jobs", type=int, metavar="N", help="tasks graded side by side (default: the CPU count)")
    grade.set_defaults(run=grade_command)


COMMANDS = [
    add_train_command, add_launch_command, add_simulate_command, add_info_command, add_lectures_command,
    add_exercises_command, add_grade_command,
]  # fmt: skip


def build_parser():
    from minidl import __version__

    parser = _Parser(prog="minidl", description="minidl: a small deep learning framework you can read.")
    parser.add_argument("--version", action="version", version=f"minidl {__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    for add_command in COMMANDS:
        add_command(commands)
    return parser


def main(argv=None):
    """Entry point of the `minidl` console script; returns the exit status."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning_line
            parser = build_parser()
            args = parser.parse_args(argv)
            if getattr(args, "run", None) is None:
                parser.print_help(sys.stderr)
                return 2
            return args.run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, no permission, a directory in the way: the system's problem, not a bug
        print(f"error: {_describe_os_error(e)}", file=sys.stderr)
        return 1
    except (RuntimeError, ValueError) as e:
        line = environment_error_line(e)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _describe_os_error(error):
    """The file that failed (a rename's target) and why, e.g. "run/checkpoint.npz: Is a directory"."""
    filename = error.filename2 if error.filename2 is not None else error.filename
    if filename is None or not error.strerror:
        return str(error)
    return f"{filename}: {error.strerror}"


def _show_warning_line(message, category, filename, lineno, file=None, line=None):
    """Warnings on the command line: one line each, settings named by their flags, no source lines."""
    text = message.format(flag) if hasattr(message, "parts") else " ".join(str(message).split())
    print(f"warning: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Bad MINIDL_KERNELS / MINIDL_SIMD values
# ---------------------------------------------------------------------------
def environment_error_line(error):
    """One line for an error caused by MINIDL_KERNELS or MINIDL_SIMD, or None if it is not one.

    The backend raises a RuntimeError or ValueError whose message starts with "MINIDL_SIMD="
    or "MINIDL_KERNELS=" when it cannot use the value (at import, where it reads them).
    """
    if not isinstance(error, (RuntimeError, ValueError)):
        return None
    message = " ".join(str(error).split())
    for variable in ENVIRONMENT_VALUES:
        if message.startswith(f"{variable}="):
            reason = message.split(":", 1)[1].strip() if ":" in message else message
            return _environment_line(variable, reason)
    return None


def _environment_line(variable, reason):
    for function in ("set_simd_path:", "set_kernels:"):  # the API function that raised: not the user's concern
        reason = reason.removeprefix(function).strip()
    value = os.environ.get(variable, "")
    line = f"error: {variable}={value}: {reason.rstrip('.')}"
    if "valid values" in reason.lower() or "expected one of" in reason:
        return line + "."  # the backend listed them already
    return f"{line}. Valid values: {ENVIRONMENT_VALUES[variable]}."


def _started_as_command():
    """True while the `minidl` console script, or `python -m minidl`, is starting up."""
    if sys.argv and os.path.basename(sys.argv[0]).removesuffix(".exe") == "minidl":
        return True
    original = list(getattr(sys, "orig_argv", []))
    return sys.argv[:1] == ["-m"] and any(a == "-m" and b == "minidl" for a, b in zip(original, original[1:]))


def exit_on_environment_error(error):
    """Called by minidl/__init__.py when importing minidl failed. For the `minidl` command, a bad
    MINIDL_KERNELS / MINIDL_SIMD value becomes one line and exit status 2; otherwise this returns
    and the import error goes on to the program that imported minidl."""
    line = environment_error_line(error)
    if line is not None and _started_as_command():
        print(line, file=sys.stderr)
        raise SystemExit(2)


# ---------------------------------------------------------------------------
# minidl train
# ---------------------------------------------------------------------------
def train_command(args):
    import minidl
    from minidl import training

    if args.kernels:
        try:
            minidl.set_kernels(args.kernels)
        except (RuntimeError, ValueError) as e:
            raise UsageError(f"--kernels {args.kernels}: {e}") from None
    if args.device == "cuda":
        if args.distributed:
            raise UsageError("--device cuda: not with --distributed yet (the MPI ranks train on the cpu)")
        if not minidl.cuda.is_available():
            raise UsageError(f"--device cuda: {minidl.cuda.unavailable_reason()}")
    if args.distributed:
        return train_distributed(args)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    settings = {name: getattr(args, name) for name in training.TrainingConfig.names()}
    out = args.out or (None if args.resume else _default_out_dir())
    if args.download and not args.mirror:
        dataset = args.dataset or _checkpoint_setting(args.resume, "dataset")
        url = training.default_mirror(dataset)
        if url:
            say(f"--download: missing {dataset} files come from {url} (--mirror URL for another)")
    progress = [] if args.quiet else [_announcer(say, args.resume), training.ProgressBar(sys.stderr)]

    try:
        result = training.fit(
            out=out, resume=args.resume, data_dir=args.data_dir, download=args.download, mirror=args.mirror,
            fuse=not args.no_fuse, callbacks=progress, plot=not args.no_plot, device=args.device, **settings,
        )  # fmt: skip
    except training.DivergedError as e:
        print(f"error: {e.format(flag)}", file=sys.stderr)
        return 1
    except training.TrainingError as e:
        raise UsageError(e.format(flag)) from None
    except training.TrainingInterrupted as e:
        if e.checkpoint is None:
            print(f"interrupted in epoch {e.epoch + 1}, before the first checkpoint: nothing to resume",
                  file=sys.stderr)  # fmt: skip
        else:
            print(f"interrupted after epoch {e.epoch}; continue the run with:", file=sys.stderr)
            print(f"minidl train --resume {shlex.quote(e.checkpoint)}", file=sys.stderr, flush=True)
        return 130

    if result.already_finished:
        print(
            f"{result.checkpoint}: the run already trained its {result.epochs} epochs (test accuracy "
            f"{result.test_accuracy:.4f}); nothing to do. Add --epochs N (more than {result.epochs}) to train longer.",
            file=sys.stderr,
        )
    else:
        files = "checkpoint.npz, metrics.json" + ("" if args.no_plot else " and training_curves.png")
        epochs = f"{result.epochs} epoch{'s' if result.epochs != 1 else ''}"
        say(f"test accuracy {result.test_accuracy:.4f} after {epochs} in {result.seconds:.1f}s; "
            f"{files} in {result.out}")  # fmt: skip
    if args.quiet:
        print(result.out)
    return 0


# ---------------------------------------------------------------------------
# minidl launch, and train --distributed (the logic lives in minidl.distributed)
# ---------------------------------------------------------------------------
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


def train_distributed(args):
    """`minidl train --distributed MODE` on every rank: minidl.distributed's driver with minidl.training's recipes."""
    import minidl
    from minidl import training
    from minidl.distributed import driver
    from minidl.training.recipes import describe_data

    given = {name: getattr(args, name) for name in training.TrainingConfig.names() if getattr(args, name) is not None}
    if args.resume:  # the run's settings come from its checkpoint; only --epochs may change
        try:
            saved = minidl.checkpoint.read(args.resume)["extra"].get("settings")
        except (OSError, ValueError) as e:
            raise UsageError(f"--resume: {e}") from None
        if saved is None:
            raise UsageError(f"--resume: {args.resume} was not written by `minidl train --distributed`")
        given = {**saved, **({"epochs": args.epochs} if args.epochs is not None else {})}
    try:
        settings = training.TrainingConfig(**given).resolved().as_dict()
    except training.TrainingError as e:
        raise UsageError(e.format(flag)) from None

    def load_datasets(s):
        train, test = training.load_data(s["dataset"], args.data_dir, args.download, args.mirror)
        return (train, test, *describe_data(train, test))

    def plot(history, path):
        what = f"{settings['model']} on {settings['dataset']}, --distributed {args.distributed}"
        training.plot_history(history, path, title=f"{what}: test accuracy {history['test_accuracy'][-1]:.2%}")

    recipe = driver.Recipe(
        load_datasets=load_datasets,
        build_model=lambda s, shape, classes: training.make_model(
            s["model"], shape, classes, s["hidden"], s["dropout"]
        ),
        build_optimizer=lambda s, module: training.make_optimizer(
            s["optimizer"], module.parameters(), s["lr"], s["momentum"], s["weight_decay"]
        ),
        evaluate=training.evaluate,
        progress_bar=None if args.quiet else driver.tqdm_bar,
        plot=plot,
    )
    out = args.out or (os.path.dirname(os.path.abspath(args.resume)) if args.resume else _default_out_dir())
    options = driver.distributed_options(args)
    return driver.run(settings, options, recipe, out, resume=args.resume, quiet=args.quiet, no_plot=args.no_plot)


def _announcer(say, resume):
    """A training.Callback that says what is being trained, before the first epoch."""
    from minidl import training

    class Announcer(training.Callback):
        def on_fit_start(self, info):
            c = info["config"]
            if info["resumed_from"] is not None:
                say(f"resuming {resume} after epoch {info['resumed_from']}")
            say(
                f"training {c.model} on {c.dataset} ({info['train_size']} train / {info['test_size']} test "
                f"examples, {info['parameters']} parameters; {c.optimizer} lr {c.lr}, {c.epochs} epochs; "
                f"kernels: {info['kernels']}{', fused' if info['fused'] else ''}) -> {info['out']}"
            )

    return Announcer()


def _checkpoint_setting(path, name):
    """A setting stored in a checkpoint (None if there is no readable one)."""
    if not path:
        return None
    import minidl

    try:
        return minidl.checkpoint.read(path)["extra"]["settings"].get(name)
    except Exception:  # fit() reports unreadable checkpoints properly; this is only for a hint
        return None


def _default_out_dir():
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, n = os.path.join("runs", stamp), 1
    while os.path.exists(out):
        n += 1
        out = os.path.join("runs", f"{stamp}-{n}")
    return out


# ---------------------------------------------------------------------------
# minidl simulate
# ---------------------------------------------------------------------------
SIMULATE_OPTIONS = ("workers", "backup", "updates", "time", "lr", "compute", "seed")


def simulate_command(args):
    import json

    from minidl.sim import experiments

    if args.list:
        for name, experiment in experiments.EXPERIMENTS.items():
            print(f"{name:15s} {experiment.claim}")
        return 0
    if not args.experiment:
        raise UsageError("simulate: name an experiment (minidl simulate --list shows them) or a .json config file")
    try:
        experiment, params, file_quick = _simulated_experiment(args.experiment, experiments)
    except (OSError, ValueError) as e:
        raise UsageError(f"simulate: {e}") from None
    for name in SIMULATE_OPTIONS:
        value = getattr(args, name)
        if value is None:
            continue
        if name not in experiment.defaults:
            takes = ", ".join(f"--{k}" for k in SIMULATE_OPTIONS if k in experiment.defaults) or "no such options"
            raise UsageError(f"simulate {experiment.name}: --{name} does not apply (it takes {takes}, and --set)")
        params[name] = _simulate_value(name, value, experiment.defaults[name])
    for item in args.set:
        key, eq, text = item.partition("=")
        if not eq:
            raise UsageError(f"--set {item}: expected NAME=VALUE")
        try:
            params[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            params[key.strip()] = text  # a bare string, e.g. --set compute=fixed:seconds=0.1
    out = args.out or os.path.join("runs", f"sim-{experiment.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    progress = None if args.quiet else _simulation_bar
    try:
        experiment.runs(experiment.params(quick=args.quick or file_quick, **params))  # checks before running
        say(f"simulating {experiment.name}: {experiment.claim}")
        result = experiments.run_experiment(
            experiment, out=out, quick=args.quick or file_quick, progress=progress, plot=not args.no_plot, **params
        )
    except ValueError as e:
        raise UsageError(f"simulate {experiment.name}: {e}") from None
    if args.quiet:
        print(out)
        return 0
    print(result.report())
    say(f"wrote {', '.join(os.path.basename(f) for f in result.files)} in {out}")
    return 0


def _simulated_experiment(name, experiments):
    if name in experiments.EXPERIMENTS:
        return experiments.EXPERIMENTS[name], {}, False
    if name.endswith(".json") or os.path.exists(name):
        if not os.path.exists(name):
            raise ValueError(f"config file {name} does not exist")
        return experiments.load_config(name)
    raise ValueError(
        f"unknown experiment {name!r}; expected one of {', '.join(experiments.EXPERIMENTS)} or a .json config file"
    )


def _simulate_value(name, value, default):
    """A command-line value in the experiment's terms: --workers 1,4,16 is a list where the default is one."""
    if name != "workers":
        return value
    try:
        values = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--workers {value}: expected a whole number (or a list such as 1,4,16)") from None
    if not values:
        raise UsageError(f"--workers {value}: expected a whole number")
    if isinstance(default, list):
        return values
    if len(values) != 1:
        raise UsageError(f"--workers {value}: this experiment takes one number of workers")
    return values[0]


def _simulation_bar(index, count, name, total, unit):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"[{index + 1}/{count}] {name}", unit=" upd" if unit == "updates" else " sim s",
                leave=True, dynamic_ncols=True, file=sys.stderr,
                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}{unit} [{elapsed}<{remaining}]")  # fmt: skip


# ---------------------------------------------------------------------------
# minidl lectures
# ---------------------------------------------------------------------------
def lectures_command(args):
    from minidl import lectures

    if args.lectures_action != "build":
        raise UsageError("lectures: name an action: minidl lectures build DEST")
    try:
        runs = lectures.build(
            args.dest, source=args.source, names=args.notebooks, fast=args.fast, progress=not args.quiet
        )
    except lectures.LectureError as e:
        raise UsageError(str(e)) from None
    except ImportError as e:
        raise UsageError(
            f"lectures build needs nbclient, ipykernel and nbconvert ({e}); pip install -e '.[dev]'"
        ) from None
    failed = [run for run in runs if not run.ok]
    for run in runs:
        state = "ok" if run.ok else "FAILED"
        print(f"{os.path.join(args.dest, run.path.stem + '.html')}  {run.seconds:5.1f} s  {state}")
    for run in failed:
        print(f"error: {run.error}", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} of {len(runs)} notebooks failed (their pages show where)", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------
# minidl info
# ---------------------------------------------------------------------------
def info_command(args):
    """Each fact once: versions, the kernel set, SIMD paths, memory tuning, BLAS, CUDA."""
    import platform

    import numpy as np

    import minidl
    from minidl import backend

    with warnings.catch_warnings():  # describe() also warns when the C kernels are missing: said once below
        warnings.simplefilter("ignore", RuntimeWarning)
        facts = dict(backend.describe())
    print(f"minidl {minidl.__version__} (python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.machine()})")  # fmt: skip
    print(f"kernels in use: {facts.pop('active_kernels')} (available: {', '.join(facts.pop('available_kernels'))})")
    c_kernels = facts.pop("c_kernels", "built")
    simd = facts.pop("simd_path", None)
    built, supported = facts.pop("simd_paths_built", []), facts.pop("simd_paths_supported", [])
    if simd:
        built, supported = ", ".join(built) or "-", ", ".join(supported) or "-"
        print(f"C kernels: SIMD path {simd} (built: {built}; this CPU runs: {supported})")
    else:
        print(f"C kernels: {c_kernels}")
    if "malloc_tuned" in facts:
        tuned = "yes" if facts.pop("malloc_tuned") else "no"
        print(f"malloc keeps freed memory for reuse: {tuned} (MINIDL_MALLOC_TUNING=0 turns it off)")
    facts.pop("cuda_available", None)  # the CUDA build speaks for itself below
    for key, value in facts.items():  # anything the backend reports that is not shown above
        if isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value)) or "-"
        print(f"{key.replace('_', ' ')}: {value}")
    for line in _blas_lines():
        print(line)
    for line in _cuda_lines():
        print(line)
    return 0


def _cuda_lines():
    """Which CUDA build is active (real / emulated / none), the device and what was compiled."""
    import warnings

    from minidl.backend.cuda import runtime

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", runtime.CudaEmulatorWarning)  # the reason is printed below
        info = runtime.describe()
    lines = [f"CUDA: {info.pop('cuda')}"]
    lines += [f"  {key.removeprefix('cuda_')}: {value}" for key, value in info.items()]
    lines.append(f"  builds compiled: {_compiled_cuda_builds()}")
    if not lines[0].startswith("CUDA: not available"):
        lines.append('  python device: "cuda", as in x.to("cuda"), model.to("cuda"), minidl train --device cuda')
    return lines


def _compiled_cuda_builds():
    """Which of the two CUDA libraries exist in this install (found, not loaded)."""
    import importlib.util

    found = [
        build
        for build, module in (("real (nvcc)", "_cuda_real"), ("emulated (C++)", "_cuda_emulated"))
        if importlib.util.find_spec(f"minidl.backend.cuda.{module}") is not None
    ]
    return ", ".join(found) or "none"


def _blas_lines():
    import numpy as np

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
# minidl exercises release, minidl grade (the logic lives in minidl.exercises)
# ---------------------------------------------------------------------------
def _missing_action(parser):
    parser.print_help(sys.stderr)
    return 2


def release_command(args):
    from minidl.exercises import ExerciseError, release

    try:
        written = release.release(args.dest, args.names, args.source)
    except ExerciseError as e:
        raise UsageError(f"exercises release: {e}") from None
    for name, count in written.items():
        print(f"{os.path.join(args.dest, name)}: {count} files")
    return 0


def grade_command(args):
    import json

    from minidl.exercises import ExerciseError, grade

    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: expected a positive number of seconds")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: expected 1 or more")
    try:
        result = grade.grade(
            args.path, instructor=args.instructor, timeout=args.timeout, jobs=args.jobs, tasks=args.task
        )
    except ExerciseError as e:
        raise UsageError(f"grade: {e}") from None
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    return 0
