"""The settings of a training run, each model's recipe, and the checks that keep a run sane.

A run is defined by a TrainingConfig: model, data set, optimizer and their knobs. Settings
left as None take the model's recipe (RECIPES: the optimizer, learning rate and epochs it
trains well with, measured on the digits; README's table) or the common DEFAULTS. The
resolved settings are stored in every checkpoint, so `fit(resume=...)` continues the very
same run.
"""

import dataclasses
import math
import numbers

from minidl.training.errors import Arg, TrainingError

MODELS = ("mlp", "cnn", "lstm")
IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist")
POINT_DATASETS = ("spirals", "moons", "blobs")  # 2-D points: only the mlp reads them
DATASETS = IMAGE_DATASETS + POINT_DATASETS
OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam")
AVERAGES = ("none", "polyak", "ema")

# What each model trains well with on the digits within its default epochs (measured; the
# README's training table has the accuracies and times). The lecture's first strategy,
# momentum + learning-rate decay, "works best if you manage to get it to run": it does for
# the mlp and the cnn. The lstm's gradients pass through 8 time steps of gates, so its first
# epochs crawl with SGD (1 epoch: below chance); Adam's per-parameter step sizes get it going.
RECIPES = {
    "mlp": {"optimizer": "momentum", "lr": 0.1, "lr_decay": 0.1, "epochs": 15},
    "cnn": {"optimizer": "momentum", "lr": 0.05, "lr_decay": 0.1, "epochs": 15},
    "lstm": {"optimizer": "adam", "lr": 0.01, "lr_decay": 0.1, "epochs": 10},
}

# The learning rate α₀ for an optimizer chosen by hand (when lr is not given). The adaptive
# rules divide each step by a running √(mean ∂L²), so their α₀ is a step size in weight units
# and is much smaller than plain SGD's. Measured on the default model (README's table).
OPTIMIZER_LR = {"sgd": 0.3, "momentum": 0.05, "adagrad": 0.05, "rmsprop": 0.003, "adam": 0.005}

# Everything else, the same for every model.
DEFAULTS = {
    "model": "cnn",
    "dataset": "digits",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "batch_size": 32,
    "seed": 0,
    "clip_grad_norm": None,
    "average": "none",
    "hidden": 128,
    "dropout": 0.0,
}

# The largest lr_decay β accepted: β = 50 already shrinks the learning rate e^50 ≈ 5e21-fold
# per epoch, and past β ≈ 745 e^(-β) underflows to 0 and the schedule stops making sense.
MAX_LR_DECAY = 50


@dataclasses.dataclass
class TrainingConfig:
    """The settings that define a training run. None means "the default" (see resolved()).

    model            "mlp", "cnn" (default) or "lstm" (reads an image row by row)
    dataset          "digits" (default, bundled with scikit-learn), "mnist", "fashion-mnist",
                     or the 2-D point sets "spirals", "moons", "blobs" (mlp only)
    optimizer        "sgd", "momentum" (SGD with μ = momentum), "adagrad", "rmsprop", "adam";
                     default: the model's recipe (RECIPES)
    lr               initial learning rate α₀; default: the recipe's, or OPTIMIZER_LR[optimizer]
    lr_decay         β in α = α₀·e^(−β·epoch), 0 keeps α constant; default: the recipe's (0.1)
    epochs           default: the recipe's (15 for mlp and cnn, 10 for lstm)
    momentum         μ for "momentum" (0.9)
    weight_decay     L2 weight decay ε (0)
    batch_size       examples per step (32)
    seed             seeds the initial weights, shuffling and dropout (0)
    clip_grad_norm   clip the gradient norm to this value (None: off)
    average          "none", "polyak" or "ema": evaluate with averaged parameters
    hidden           hidden units of the mlp and lstm (128)
    dropout          dropout probability before the classifier (0)
    """

    model: str | None = None
    dataset: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    lr_decay: float | None = None
    epochs: int | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    batch_size: int | None = None
    seed: int | None = None
    clip_grad_norm: float | None = None
    average: str | None = None
    hidden: int | None = None
    dropout: float | None = None

    @classmethod
    def names(cls):
        return [field.name for field in dataclasses.fields(cls)]

    def given(self):
        """The settings that were set (not None), as a dict."""
        return {name: value for name, value in self.as_dict().items() if value is not None}

    def as_dict(self):
        return {name: getattr(self, name) for name in self.names()}

    def resolved(self):
        """A copy with every None filled in from the model's recipe and DEFAULTS; checked (TrainingError)."""
        settings = {**DEFAULTS, **{k: v for k, v in self.given().items() if k in DEFAULTS}}
        _check_choice("model", settings["model"], MODELS)
        recipe = RECIPES[settings["model"]]
        optimizer = self.optimizer if self.optimizer is not None else recipe["optimizer"]
        _check_choice("optimizer", optimizer, OPTIMIZERS)
        if self.lr is not None:
            lr = self.lr
        elif optimizer == recipe["optimizer"]:
            lr = recipe["lr"]
        else:
            lr = OPTIMIZER_LR[optimizer]
        settings.update(
            optimizer=optimizer,
            lr=lr,
            lr_decay=recipe["lr_decay"] if self.lr_decay is None else self.lr_decay,
            epochs=recipe["epochs"] if self.epochs is None else self.epochs,
        )
        config = TrainingConfig(**settings)
        config.check()
        return config

    def check(self):
        """Raise a TrainingError naming the first setting that cannot work (call on a resolved config)."""
        _check_choice("model", self.model, MODELS)
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("average", self.average, AVERAGES)
        _check_integer("epochs", self.epochs, minimum=1)
        _check_integer("batch_size", self.batch_size, minimum=1)
        _check_integer("hidden", self.hidden, minimum=1)
        _check_integer("seed", self.seed, minimum=0)
        _check_number("lr", self.lr, _in(self.lr, 0, math.inf, open_ends=True), "a positive number")
        _check_number("momentum", self.momentum, _in(self.momentum, 0, 1, open_ends=False), "in [0, 1)")
        _check_number("weight_decay", self.weight_decay, _in(self.weight_decay, 0, math.inf), "a number >= 0")
        _check_number(
            "lr_decay",
            self.lr_decay,
            _in(self.lr_decay, 0, MAX_LR_DECAY, closed=True),
            f"a number in [0, {MAX_LR_DECAY}]",
        )
        _check_number("dropout", self.dropout, _in(self.dropout, 0, 1), "in [0, 1)")
        if self.clip_grad_norm is not None:
            _check_number(
                "clip_grad_norm",
                self.clip_grad_norm,
                _in(self.clip_grad_norm, 0, math.inf, open_ends=True),
                "a number > 0",
            )
        if self.dataset in POINT_DATASETS and self.model != "mlp":
            raise TrainingError(Arg("dataset", self.dataset), " is 2-D points, not images: use ", Arg("model", "mlp"))


def _check_choice(name, value, choices):
    if value not in choices:
        raise TrainingError(Arg(name), f" must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_integer(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TrainingError(Arg(name), f" must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise TrainingError(Arg(name), f" must be >= {minimum}, got {value}")


def _in(value, low, high, open_ends=False, closed=False):
    """low <= value < high for a real number (low < value < high with open_ends, low <= value <= high
    with closed). False for NaN, which fails every comparison, and for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    if open_ends:
        return low < value < high
    return low <= value <= high if closed else low <= value < high


def _check_number(name, value, ok, requirement):
    if not ok:
        raise TrainingError(Arg(name), f" must be {requirement}, got {value!r}")
