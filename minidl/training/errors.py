"""What can go wrong in `minidl.training`, phrased for whoever asked: a Python caller or `minidl train`.

A message names settings with `Arg` pieces. `str(error)` writes them the way a Python caller
spells them (`lr=0.05`, `download=True`, `data_dir`); `minidl train` writes the same message
with its flags (`--lr 0.05`, `--download`, `--data-dir`) through `error.format(write_arg)`.
So one check, written once, speaks both languages.
"""

_NO_VALUE = object()


class Arg:
    """A setting named in a message: `Arg("data_dir")`, or with the value it has: `Arg("lr", 0.005)`."""

    def __init__(self, name, value=_NO_VALUE):
        self.name = name
        self.value = value

    @property
    def has_value(self):
        return self.value is not _NO_VALUE

    def __repr__(self):
        return f"Arg({self.name!r})" if not self.has_value else f"Arg({self.name!r}, {self.value!r})"


def python_arg(arg):
    """How a Python caller writes a setting: `data_dir`, `lr=0.005`, `optimizer='adam'`, `download=True`."""
    return arg.name if not arg.has_value else f"{arg.name}={arg.value!r}"


def render(parts, write_arg=python_arg):
    """Join message parts, writing each Arg with `write_arg`."""
    return "".join(write_arg(part) if isinstance(part, Arg) else str(part) for part in parts)


class TrainingError(ValueError):
    """A setting, a data set or a checkpoint that `fit()` cannot use. One line; `parts` keeps its Args."""

    def __init__(self, *parts):
        self.parts = parts
        super().__init__(render(parts))

    def format(self, write_arg=python_arg):
        """The message with settings written by `write_arg` (`minidl train` passes its flag writer)."""
        return render(self.parts, write_arg)


class DivergedError(TrainingError):
    """The loss became NaN or infinite: training stopped. The last checkpoint (if any) is intact.

    epoch, step   where it happened (step counts batches from 1 within the epoch)
    checkpoint    the last checkpoint written before it (None if none was)
    result        a FitResult with the history of the completed epochs
    """

    def __init__(self, *parts, epoch, step, checkpoint, result):
        super().__init__(*parts)
        self.epoch, self.step, self.checkpoint, self.result = epoch, step, checkpoint, result


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `fit()`. Still a KeyboardInterrupt; it also says where the run can continue from.

    checkpoint    the last checkpoint written (pass it as resume=...), None if no epoch completed
    epoch         the last completed epoch (0 if none)
    result        a FitResult with the history so far
    """

    def __init__(self, checkpoint, epoch, result):
        where = f"; resume from {checkpoint}" if checkpoint else "; no epoch completed, nothing to resume"
        super().__init__(f"training interrupted after epoch {epoch}{where}")
        self.checkpoint, self.epoch, self.result = checkpoint, epoch, result


class DivergenceWarning(UserWarning):
    """The training loss grew for several epochs in a row: the learning rate is probably too high."""

    def __init__(self, *parts):
        self.parts = parts
        super().__init__(render(parts))

    def format(self, write_arg=python_arg):
        return render(self.parts, write_arg)
