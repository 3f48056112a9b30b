"""Training curves: loss (log scale) and train/test accuracy per epoch, titled with what was trained.

matplotlib is imported inside plot_history, so `import minidl` never loads it.
"""


def plot_history(history, path=None, title=None):
    """Draw a run's history: the training loss on a log scale, beside train and test accuracy.

    history   a dict of per-epoch lists: train_loss, train_accuracy, test_accuracy (FitResult.history)
    path      write a PNG there; None returns the matplotlib Figure (a notebook displays it)
    title     the figure's title, e.g. "cnn on digits: test accuracy 98.61%"
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    if path is None:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=(10, 4))
    else:  # a bare Figure draws with Agg: no window, no display needed, pyplot's state untouched
        from matplotlib.figure import Figure

        figure = Figure(figsize=(10, 4))
    left, right = figure.subplots(1, 2)
    losses = history["train_loss"]
    epochs = list(range(1, len(losses) + 1))
    left.plot(epochs, losses, marker="o")
    # Cross-entropy falls by orders of magnitude (2.3 -> 0.01): on a log scale the late epochs still show.
    if losses and all(0 < loss < float("inf") for loss in losses):
        left.set_yscale("log")
        if max(losses) / min(losses) < 1e3:  # few decades: ticks at 0.1, 0.2, 0.5, 1, 2 ... to read values off
            left.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        left.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        left.yaxis.set_minor_formatter(NullFormatter())
    left.set(title="training loss", xlabel="epoch", ylabel="cross-entropy (log scale)")
    right.plot(epochs, history["train_accuracy"], marker="o", label="train")
    right.plot(epochs, history["test_accuracy"], marker="o", label="test")
    right.set(title="accuracy", xlabel="epoch", ylabel="accuracy")
    right.legend(loc="lower right")
    for axes in (left, right):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs only
        axes.set_xlim(0.5, max(len(epochs), 1) + 0.5)  # one epoch: one point in the middle, tick "1"
        axes.grid(True, alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if path is None:
        return figure
    figure.savefig(path, dpi=100)
    return path


def run_title(config, test_accuracy):
    """'cnn on digits: test accuracy 98.61%' for a resolved TrainingConfig."""
    return f"{config.model} on {config.dataset}: test accuracy {test_accuracy:.2%}"
