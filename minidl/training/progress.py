"""Watching `fit()` as it runs: the Callback hooks, and the progress display `progress=True` uses.

`fit()` itself prints nothing. It calls the hooks of each callback it is given; a callback
overrides the hooks it cares about. ProgressBar shows a tqdm bar per epoch on a terminal
and, where a bar would be a mess of carriage returns (a log file, a pipe, CI), one line
per epoch instead.
"""

import sys


class Callback:
    """Hooks `fit()` calls; each does nothing unless overridden.

    on_fit_start(info)           info: config, out, train_size, test_size, parameters, kernels,
                                 first_epoch, epochs, batches (per epoch), resumed_from
    on_epoch_start(epoch, epochs, batches)
    on_batch_end(epoch, batch, loss, accuracy)
                                 batch counts from 1; loss and accuracy are this epoch's running means
    on_epoch_end(epoch, stats)   stats: epochs, train_loss, train_accuracy, test_accuracy, lr, seconds
    on_fit_end()                 always, also when fit() stops with an exception
    """

    def on_fit_start(self, info):
        pass

    def on_epoch_start(self, epoch, epochs, batches):
        pass

    def on_batch_end(self, epoch, batch, loss, accuracy):
        pass

    def on_epoch_end(self, epoch, stats):
        pass

    def on_fit_end(self):
        pass


class CallbackList(Callback):
    """Several callbacks called in order, as one."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def on_fit_start(self, info):
        for c in self.callbacks:
            c.on_fit_start(info)

    def on_epoch_start(self, epoch, epochs, batches):
        for c in self.callbacks:
            c.on_epoch_start(epoch, epochs, batches)

    def on_batch_end(self, epoch, batch, loss, accuracy):
        for c in self.callbacks:
            c.on_batch_end(epoch, batch, loss, accuracy)

    def on_epoch_end(self, epoch, stats):
        for c in self.callbacks:
            c.on_epoch_end(epoch, stats)

    def on_fit_end(self):
        for c in self.callbacks:
            c.on_fit_end()


def epoch_summary(epoch, epochs, stats):
    """'epoch 3/15: loss 0.1234, train acc 0.963, test acc 0.975, lr 0.0407, 0.3s'."""
    return (
        f"epoch {epoch}/{epochs}: loss {stats['train_loss']:.4f}, train acc {stats['train_accuracy']:.3f}, "
        f"test acc {stats['test_accuracy']:.3f}, lr {stats['lr']:.3g}, {stats['seconds']:.1f}s"
    )


class ProgressBar(Callback):
    """A tqdm bar per epoch (running loss and accuracy) on a terminal; otherwise one line per epoch.

    stream   where to write (default sys.stderr)
    bar      True / False forces the bar on or off; None (default): a bar only if stream is a terminal
    """

    def __init__(self, stream=None, bar=None):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.use_bar = bar if bar is not None else bool(isatty and isatty())
        self._bar = None

    def on_epoch_start(self, epoch, epochs, batches):
        if self.use_bar:
            from tqdm import tqdm  # imported here: `import minidl` stays light

            self._bar = tqdm(
                total=batches, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=True, dynamic_ncols=True,
                file=self.stream,
            )  # fmt: skip

    def on_batch_end(self, epoch, batch, loss, accuracy):
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.3f}", refresh=False)
            self._bar.update(1)

    def on_epoch_end(self, epoch, stats):
        if self._bar is not None:
            self._bar.set_postfix(
                loss=f"{stats['train_loss']:.4f}", acc=f"{stats['train_accuracy']:.3f}",
                test=f"{stats['test_accuracy']:.3f}",
            )  # fmt: skip
            self._close_bar()
        else:
            print(epoch_summary(epoch, stats["epochs"], stats), file=self.stream, flush=True)

    def on_fit_end(self):
        self._close_bar()

    def _close_bar(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
