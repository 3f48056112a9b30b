"""fit(): the whole training job of `minidl train`, callable from a notebook or a script.

    result = minidl.training.fit(model="mlp", dataset="digits", epochs=3)
    result.test_accuracy, result.history["train_loss"], result.model

Each epoch is the lecture's SGD loop: for every mini-batch, forward, loss, backward, (clip
the gradient norm), step. After each epoch the learning rate decays (α₀·e^(−βt)), the test
accuracy is measured and, when `out` is given, a checkpoint is written atomically; so a run
killed at any moment (even `kill -9`) resumes from its last epoch with `resume=` and ends
with the same weights, bit for bit, as a run that was never interrupted.

The loop watches the loss: a NaN or infinite loss stops training at once (DivergedError,
the last checkpoint is kept), and a loss that grows for GROWING_EPOCHS epochs in a row
raises a DivergenceWarning. Both give the lecture's advice: keep calm and lower your
learning rate.
"""

import dataclasses
import json
import math
import os
import time
import warnings

import numpy as np

import minidl
from minidl import data, nn, optim
from minidl.checkpoint import CheckpointError
from minidl.training.config import TrainingConfig
from minidl.training.errors import Arg, DivergedError, DivergenceWarning, TrainingError, TrainingInterrupted
from minidl.training.plot import plot_history, run_title
from minidl.training.progress import Callback, CallbackList, ProgressBar
from minidl.training.recipes import describe_data, load_data, make_model, make_optimizer, mnist_folder

# A loss that rises this many epochs in a row is flagged: SGD's noise rarely does that three
# times running once the learning rate decays, a learning rate that is too high does.
GROWING_EPOCHS = 3
CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.json"
PLOT_NAME = "training_curves.png"


@dataclasses.dataclass
class FitResult:
    """What fit() returns.

    model, optimizer      the trained network (unfused: the one the checkpoint holds) and its optimizer
    config                the resolved TrainingConfig of the run
    history               per-epoch lists: train_loss, train_accuracy, test_accuracy, lr (since epoch 1)
    test_accuracy         after the last epoch (with averaged parameters if config.average says so)
    train_loss, train_accuracy   the last epoch's means
    epochs                epochs completed in total; trained_epochs: by this call (0: the run was finished)
    seconds               this call's wall time; total_seconds: training time over every resumed part
    resumed_from_epoch    the checkpoint's epoch when resuming, else None
    out, checkpoint       the output folder and the last checkpoint written (None without out)
    metrics               the contents of metrics.json
    """

    model: nn.Module
    optimizer: optim.Optimizer
    config: TrainingConfig
    history: dict
    test_accuracy: float | None
    train_loss: float | None
    train_accuracy: float | None
    epochs: int
    trained_epochs: int
    seconds: float
    total_seconds: float
    resumed_from_epoch: int | None
    out: str | None
    checkpoint: str | None
    metrics: dict

    @property
    def already_finished(self):
        """True when resume= pointed at a run that had already trained all its epochs (nothing was done)."""
        return self.trained_epochs == 0


class NonFiniteLoss(FloatingPointError):
    """train_one_epoch: the loss of a batch was NaN or infinite (raised before its backward pass)."""

    def __init__(self, loss, step):
        super().__init__(f"the loss became {loss} at step {step}")
        self.loss, self.step = loss, step


# ---------------------------------------------------------------------------
# One epoch, and evaluation
# ---------------------------------------------------------------------------
def train_one_epoch(
    model, loader, optimizer, loss_fn=None, clip_grad_norm=None, averager=None, on_batch=None, device=None
):
    """One pass over `loader`: forward, loss, backward, (clip), step. Returns (mean loss, accuracy).

    device: where the model is ("cpu", "cuda"); each batch is copied there (None: leave it where it is).

    on_batch(batch, running_loss, running_accuracy) is called after every step (batch counts
    from 1). A NaN or infinite loss raises NonFiniteLoss before its backward pass, so the
    weights are those of the last good step. NumPy's floating-point warnings are silenced
    here: the loss check reports the problem once, in words, instead of a pile of RuntimeWarnings.
    """
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    with np.errstate(all="ignore"):
        for step, (x, y) in enumerate(loader, start=1):
            targets = y.array  # the host's copy, for the accuracy
            if device is not None:
                x, y = x.to(device), y.to(device)
            scores = model(x)
            loss = loss_fn(scores, y)
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLoss(value, step)
            optimizer.zero_grad()
            loss.backward()
            if clip_grad_norm:
                optim.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            if averager is not None:
                averager.update()
            n = len(y)
            total_loss += value * n
            correct += _correct(scores, targets)
            seen += n
            if on_batch is not None:
                on_batch(step, total_loss / seen, correct / seen)
    return total_loss / seen, correct / seen


def evaluate(model, dataset, batch_size=512, device=None):
    """Accuracy of `model` on `dataset`, in eval mode (no dropout) and without recording the graph."""
    was_training = model.training
    model.eval()
    correct = 0
    with minidl.no_grad(), np.errstate(all="ignore"):
        for x, y in data.DataLoader(dataset, batch_size=batch_size):
            correct += _correct(model(x if device is None else x.to(device)), y.array)
    model.train(was_training)
    return correct / len(dataset)


def _kernels_name(device):
    """What computes the run: the cpu kernel set's name, or "cuda (emulated)" / "cuda (real)"."""
    if device is None or device.type == "cpu":
        return minidl.kernels_name()
    return f"cuda ({minidl.cuda.build()})"


def _correct(scores, targets):
    """How many rows of `scores` have their largest score at the target (a host array): the argmax runs
    where the scores are, and only the predicted classes come back to the host."""
    kernels = minidl.backend.get_kernels(scores.device)
    predicted = kernels.to_numpy(kernels.argmax(scores.array, 1))
    return int((predicted == targets).sum())


def _test_accuracy(net, model, dataset, averager, device=None):
    if averager is None:
        return evaluate(net, dataset, device=device)
    with averager.average_parameters(model):  # averaged weights for testing only, never for training
        return evaluate(net, dataset, device=device)


# ---------------------------------------------------------------------------
# Layer fusion: the one place fit() asks for it
# ---------------------------------------------------------------------------
def apply_fusion(model, fuse=True):
    """The network fit() runs: `model` with each Linear/Conv2d + ReLU/Sigmoid/Tanh as one op (fuse=True).

    Fusion changes how the forward pass runs, not what is learned: nn.fuse shares the
    model's Parameters and buffers, so the optimizer, averager and checkpoint use `model`
    (its state_dict keys are the same either way) while the forward passes go through this.
    """
    return nn.fuse(model) if fuse else model


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------
def fit(
    config=None,
    *,
    out=None,
    resume=None,
    data_dir=None,
    download=False,
    mirror=None,
    fuse=True,
    progress=False,
    callbacks=(),
    plot=True,
    device=None,
    **settings,
):
    """Train a model from the recipes on a data set; returns a FitResult.

        fit(model="cnn", dataset="digits")                  # the defaults: ~98.6% in a few seconds
        fit(model="lstm", epochs=3, progress=True)          # a bar per epoch (one line per epoch off a terminal)
        fit(model="mlp", optimizer="adam", out="runs/a")    # checkpoint per epoch, metrics.json, plot
        fit(resume="runs/a/checkpoint.npz", epochs=20)      # continue that run, 20 epochs in all

    settings   any TrainingConfig field as a keyword (model, dataset, optimizer, lr, epochs, ...),
               or a TrainingConfig as `config`; unset ones take the model's recipe
    out        folder for checkpoint.npz (after every epoch), metrics.json and training_curves.png;
               None (default) writes nothing, except that resume= defaults it to the checkpoint's folder
    resume     a checkpoint of an earlier run: its settings are used (settings given here must agree,
               except epochs) and training continues after its epoch; a finished run trains nothing
               and leaves its files alone (result.already_finished)
    data_dir, download, mirror
               where the MNIST / Fashion-MNIST files are; download=True fetches missing ones from
               `mirror` (default: recipes.default_mirror(dataset)) into data_dir (default: the cache)
    fuse       run each Linear/Conv2d + activation as one fused op (the same function, faster)
    device     "cpu" (default) or "cuda": where the model, its gradients and the optimizer state live;
               batches are copied there step by step (the emulator runs "cuda" when there is no GPU)
    progress   True: a ProgressBar on stderr; or a Callback
    callbacks  more Callbacks (progress.Callback hooks)
    plot       write training_curves.png into `out`

    Raises TrainingError for settings, data or checkpoints that cannot work, DivergedError when
    the loss becomes NaN/inf, and TrainingInterrupted (a KeyboardInterrupt) on Ctrl-C; both
    carry the last checkpoint. Warns with DivergenceWarning when the loss keeps growing.
    """
    start = time.perf_counter()
    requested = _requested(config, settings)
    saved = None
    if resume is not None:
        resume = os.fspath(resume)
        saved = _read_checkpoint(resume)
        config = _resumed_config(saved["extra"]["settings"], requested)
        data_dir = data_dir if data_dir is not None else saved["extra"].get("data", {}).get("data_dir")
        mirror = mirror if mirror is not None else saved["extra"].get("data", {}).get("mirror")
        out = os.path.dirname(os.path.abspath(resume)) if out is None else out
    else:
        config = TrainingConfig(**requested)
    config = config.resolved()
    if config.dataset in ("mnist", "fashion-mnist"):
        data_dir = mnist_folder(config.dataset, data_dir, download)
    out = os.fspath(out) if out is not None else None
    checkpoint_path = os.path.join(out, CHECKPOINT_NAME) if out is not None else None

    minidl.manual_seed(config.seed)
    train_set, test_set = load_data(config.dataset, data_dir, download, mirror)
    input_shape, num_classes = describe_data(train_set, test_set)
    model = make_model(config.model, input_shape, num_classes, config.hidden, config.dropout)
    device = None if device is None else minidl.device(device)
    if device is not None:
        model.to(device)  # before the optimizer: its state is made where the parameters are
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr, config.momentum, config.weight_decay)
    scheduler = optim.lr_scheduler.ExponentialLR(optimizer, beta=config.lr_decay)
    averager = {"none": None, "polyak": optim.PolyakAverage, "ema": optim.EMA}[config.average]
    averager = averager(model.parameters()) if averager else None
    loader = data.DataLoader(train_set, batch_size=config.batch_size, shuffle=True)
    history = {"train_loss": [], "train_accuracy": [], "test_accuracy": [], "lr": []}
    first_epoch, previous_seconds = 1, 0.0
    if saved is not None:
        try:
            state = minidl.load_checkpoint(resume, model=model, optimizer=optimizer)
        except (OSError, CheckpointError) as e:
            raise TrainingError(Arg("resume"), f": {e}") from None
        scheduler.load_state_dict(state["extra"]["scheduler"])
        if averager is not None:
            averager.load_state_dict(state["extra"]["averager"])
        history = {k: list(v) for k, v in state["extra"]["history"].items()}
        first_epoch = int(state["step"]) + 1
        previous_seconds = float(state["extra"]["seconds"])
    resumed_from = first_epoch - 1 if saved is not None else None

    def result(trained_epochs, checkpoint, metrics=None):
        last = {k: (v[-1] if v else None) for k, v in history.items()}
        seconds = time.perf_counter() - start
        return FitResult(
            model=model, optimizer=optimizer, config=config, history=history,
            test_accuracy=last["test_accuracy"], train_loss=last["train_loss"],
            train_accuracy=last["train_accuracy"], epochs=len(history["train_loss"]),
            trained_epochs=trained_epochs, seconds=seconds,
            total_seconds=previous_seconds + (seconds if trained_epochs else 0.0),
            resumed_from_epoch=resumed_from, out=out, checkpoint=checkpoint, metrics=metrics or {},
        )  # fmt: skip

    if first_epoch > config.epochs:  # a finished run: nothing to train, its files stay as they are
        finished = result(0, resume)
        if out is not None and not os.path.exists(os.path.join(out, METRICS_NAME)):
            # killed between its last checkpoint and metrics.json: complete the run's files
            finished.metrics = _write_outputs(finished, out, plot, fuse)
        return finished

    net = apply_fusion(model, fuse)
    callback = CallbackList(
        ([ProgressBar()] if progress is True else [progress] if isinstance(progress, Callback) else [])
        + list(callbacks)
    )
    created = _make_out_dir(out) if out is not None else []
    last_checkpoint = resume
    completed = first_epoch - 1
    warned = False
    try:
        callback.on_fit_start(
            {
                "config": config, "out": out, "train_size": len(train_set), "test_size": len(test_set),
                "parameters": model.num_parameters(), "kernels": _kernels_name(device), "fused": fuse,
                "first_epoch": first_epoch, "epochs": config.epochs, "batches": len(loader),
                "resumed_from": resumed_from,
            }
        )  # fmt: skip
        for epoch in range(first_epoch, config.epochs + 1):
            epoch_start = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            callback.on_epoch_start(epoch, config.epochs, len(loader))

            def on_batch(step, loss, accuracy, epoch=epoch):
                callback.on_batch_end(epoch, step, loss, accuracy)

            train_loss, train_accuracy = train_one_epoch(
                net, loader, optimizer, clip_grad_norm=config.clip_grad_norm, averager=averager, on_batch=on_batch,
                device=device,
            )  # fmt: skip
            scheduler.step()
            test_accuracy = _test_accuracy(net, model, test_set, averager, device)
            for key, value in zip(history, (train_loss, train_accuracy, test_accuracy, lr)):
                history[key].append(value)
            if checkpoint_path is not None:
                extra = {
                    "settings": config.as_dict(),
                    "scheduler": scheduler.state_dict(),
                    "averager": averager.state_dict() if averager is not None else None,
                    "history": history,
                    "seconds": previous_seconds + time.perf_counter() - start,
                    "data": {"data_dir": data_dir, "mirror": mirror},
                }
                minidl.save_checkpoint(checkpoint_path, model=model, optimizer=optimizer, step=epoch, extra=extra)
            completed, last_checkpoint = epoch, checkpoint_path if checkpoint_path is not None else last_checkpoint
            stats = {
                "epochs": config.epochs, "train_loss": train_loss, "train_accuracy": train_accuracy,
                "test_accuracy": test_accuracy, "lr": lr, "seconds": time.perf_counter() - epoch_start,
            }  # fmt: skip
            callback.on_epoch_end(epoch, stats)
            if not warned and loss_is_growing(history["train_loss"]):
                warned = True
                warnings.warn(_growing_loss_warning(history["train_loss"], config, resumed_from), stacklevel=2)
    except NonFiniteLoss as e:
        raise DivergedError(
            f"the loss became {e.loss} in epoch {completed + 1} (step {e.step} of {len(loader)}): keep calm and "
            "lower your learning rate, e.g. ", Arg("lr", lower_lr(config.lr)), " (this run: ", Arg("lr", config.lr),
            ")" if resumed_from is None else "; a new run, since resume keeps the checkpoint's settings)",
            epoch=completed + 1, step=e.step, checkpoint=last_checkpoint,
            result=result(completed - (first_epoch - 1), last_checkpoint),
        ) from None  # fmt: skip
    except KeyboardInterrupt:
        # Ctrl-C may land between a checkpoint's rename and the line that notes it: ask the disk.
        if checkpoint_path is not None and os.path.exists(checkpoint_path):
            last_checkpoint, completed = checkpoint_path, _saved_epoch(checkpoint_path, completed)
        partial = result(completed - (first_epoch - 1), last_checkpoint)
        raise TrainingInterrupted(last_checkpoint, completed, partial) from None
    finally:
        callback.on_fit_end()
        _remove_if_empty(created)  # a run that wrote nothing leaves no empty folder behind

    finished = result(config.epochs - (first_epoch - 1), last_checkpoint)
    if out is not None:
        finished.metrics = _write_outputs(finished, out, plot, fuse)
    else:
        finished.metrics = _metrics(finished, fuse)
    return finished


def loss_is_growing(losses, epochs=GROWING_EPOCHS):
    """True if each of the last `epochs` losses is larger than the one before it."""
    recent = losses[-(epochs + 1) :]
    return len(recent) == epochs + 1 and all(later > earlier for earlier, later in zip(recent, recent[1:]))


def lower_lr(lr):
    """A learning rate ten times smaller, to two significant digits: the lecture's first remedy."""
    return float(f"{lr / 10:.2g}")


def _growing_loss_warning(losses, config, resumed_from):
    trail = " -> ".join(f"{loss:.3g}" for loss in losses[-(GROWING_EPOCHS + 1) :])
    return DivergenceWarning(
        f"the training loss grew for {GROWING_EPOCHS} epochs in a row ({trail}): keep calm and lower your "
        "learning rate, e.g. ", Arg("lr", lower_lr(config.lr)), " (this run: ", Arg("lr", config.lr),
        ")" if resumed_from is None else "; in a new run)",
    )  # fmt: skip


def _requested(config, settings):
    """The settings asked for: a TrainingConfig's set fields, overridden by keywords."""
    unknown = sorted(set(settings) - set(TrainingConfig.names()))
    if unknown:
        raise TypeError(
            f"fit: unknown setting(s) {', '.join(unknown)}; settings are {', '.join(TrainingConfig.names())}"
        )
    if config is not None and not isinstance(config, TrainingConfig):
        raise TypeError(f"fit: config must be a TrainingConfig, got {type(config).__name__}")
    return {**(config.given() if config is not None else {}), **{k: v for k, v in settings.items() if v is not None}}


def _read_checkpoint(path):
    try:
        saved = minidl.checkpoint.read(path)
    except (OSError, CheckpointError) as e:
        raise TrainingError(Arg("resume"), f": {e}") from None
    if not isinstance(saved.get("extra"), dict) or saved["extra"].get("settings") is None:
        raise TrainingError(
            Arg("resume"), f": {path} was not written by `minidl train` or minidl.training.fit (no run settings inside)"
        )
    return saved


def _resumed_config(saved_settings, requested):
    """The checkpoint's settings; any setting also given must agree with it, except epochs (train longer)."""
    for key, value in requested.items():
        if key != "epochs" and value != saved_settings.get(key):
            raise TrainingError(
                Arg("resume"), ": the checkpoint was trained with ", Arg(key, saved_settings.get(key)),
                "; it cannot continue with ", Arg(key, value),
            )  # fmt: skip
    known = {k: v for k, v in saved_settings.items() if k in TrainingConfig.names()}
    if "epochs" in requested:
        known["epochs"] = requested["epochs"]
    return TrainingConfig(**known)


def _saved_epoch(path, default):
    try:
        return int(minidl.checkpoint.read(path)["step"])
    except (OSError, CheckpointError, TypeError, ValueError):
        return default


def _make_out_dir(out):
    """Create `out` (and missing parents); returns the folders created, outermost first."""
    created, folder = [], os.path.abspath(out)
    while not os.path.exists(folder):
        created.append(folder)
        folder = os.path.dirname(folder)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise TrainingError(Arg("out", out), f": cannot create the folder: {e.strerror or e}") from None
    if not os.path.isdir(out):
        raise TrainingError(Arg("out", out), ": not a folder")
    return created[::-1]


def _remove_if_empty(created):
    for folder in reversed(created):  # innermost first; stop at the first one that holds something
        try:
            os.rmdir(folder)
        except OSError:
            return


def _metrics(result, fuse):
    where = next(iter(result.model.parameters()), None)  # the device the run trained on
    return {
        "test_accuracy": result.test_accuracy,
        "train_loss": result.train_loss,
        "train_accuracy": result.train_accuracy,
        "epochs": result.epochs,
        "seconds": result.seconds,
        "total_training_seconds": result.total_seconds,
        "resumed_from_epoch": result.resumed_from_epoch,
        "kernels": _kernels_name(None if where is None else where.device),
        "fused": bool(fuse),
        "settings": result.config.as_dict(),
        "history": result.history,
    }


def _write_outputs(result, out, plot, fuse):
    """metrics.json and (plot=True) training_curves.png in `out`; returns the metrics."""
    metrics = _metrics(result, fuse)
    with open(os.path.join(out, METRICS_NAME), "w") as f:
        json.dump(metrics, f, indent=2)
    if plot and result.history["train_loss"]:
        plot_history(result.history, os.path.join(out, PLOT_NAME), title=run_title(result.config, result.test_accuracy))
    return metrics
