"""minidl.training: the complete training job (`minidl train`) as a library for notebooks and scripts.

    import minidl
    result = minidl.training.fit(model="mlp", dataset="digits", epochs=3)
    print(result.test_accuracy)
    minidl.training.plot_history(result.history)          # a matplotlib Figure

What is where:
    config.py     TrainingConfig (the settings of a run), each model's recipe, the checks
    recipes.py    make_model, make_optimizer, load_data: the model zoo and the data sets
    loop.py       fit, train_one_epoch, evaluate: the loop, checkpoints, resume, divergence watch
    progress.py   Callback hooks and ProgressBar (tqdm on a terminal, a line per epoch elsewhere)
    plot.py       plot_history: loss on a log scale, accuracies, titled with the result
    errors.py     TrainingError and friends: messages that name settings the caller's way

`minidl train` (minidl/cli.py) only parses arguments, calls fit() and prints.
"""

from minidl.training.config import (
    DATASETS,
    DEFAULTS,
    MODELS,
    OPTIMIZER_LR,
    OPTIMIZERS,
    RECIPES,
    TrainingConfig,
)
from minidl.training.errors import Arg, DivergedError, DivergenceWarning, TrainingError, TrainingInterrupted
from minidl.training.loop import (
    FitResult,
    NonFiniteLoss,
    apply_fusion,
    evaluate,
    fit,
    loss_is_growing,
    lower_lr,
    train_one_epoch,
)
from minidl.training.plot import plot_history
from minidl.training.progress import Callback, ProgressBar
from minidl.training.recipes import SequenceClassifier, default_mirror, load_data, make_model, make_optimizer

__all__ = [
    "fit",
    "FitResult",
    "TrainingConfig",
    "make_model",
    "make_optimizer",
    "load_data",
    "default_mirror",
    "evaluate",
    "train_one_epoch",
    "apply_fusion",
    "plot_history",
    "Callback",
    "ProgressBar",
    "TrainingError",
    "DivergedError",
    "DivergenceWarning",
    "TrainingInterrupted",
    "NonFiniteLoss",
    "Arg",
    "SequenceClassifier",
    "loss_is_growing",
    "lower_lr",
    "MODELS",
    "DATASETS",
    "OPTIMIZERS",
    "RECIPES",
    "OPTIMIZER_LR",
    "DEFAULTS",
]
