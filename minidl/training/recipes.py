"""The model zoo and the data sets of `minidl train`, as functions a notebook can call too.

    train, test = load_data("digits")
    model = make_model("cnn", input_shape=(1, 8, 8), num_classes=10)
    optimizer = make_optimizer("momentum", model.parameters(), lr=0.05)

Every network starts with a small last layer: the lecture's "high initial temperature",
a soft softmax and small gradients at first, peakier as the classifier grows confident.
"""

import os

import numpy as np

from minidl import data, nn, optim
from minidl.data.mnist import BASE_URLS, default_cache_dir
from minidl.training.config import DATASETS, DEFAULTS, OPTIMIZER_LR
from minidl.training.errors import Arg, TrainingError

MNIST_KINDS = {"mnist": "mnist", "fashion-mnist": "fashion"}


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
def default_mirror(dataset):
    """The URL `download=True` fetches MNIST or Fashion-MNIST from when no mirror is given."""
    return BASE_URLS[MNIST_KINDS[dataset]] if dataset in MNIST_KINDS else None


def mnist_folder(dataset, data_dir=None, download=False):
    """The folder the IDX files are read from: data_dir, or with download=True and no data_dir the cache."""
    if data_dir is not None:
        return os.path.abspath(os.path.expanduser(str(data_dir)))
    if download:
        return default_cache_dir(MNIST_KINDS[dataset])
    raise TrainingError(
        Arg("dataset", dataset), " needs ", Arg("data_dir"), " (a folder with the IDX files) or ", Arg("download", True)
    )


def load_data(dataset="digits", data_dir=None, download=False, mirror=None):
    """(train, test) TensorDatasets for a data set name (see TrainingConfig for the names).

    digits       scikit-learn's 8x8 digits, a fixed 80/20 split
    mnist, fashion-mnist
                 the IDX files in data_dir; download=True fetches missing ones (from `mirror`,
                 default: default_mirror(dataset)) and checks their published checksums
    spirals, moons, blobs
                 2-D points, generated with seed 0, a fixed 75/25 split
    """
    if dataset not in DATASETS:
        raise TrainingError(Arg("dataset"), f" must be one of {', '.join(map(repr, DATASETS))}, got {dataset!r}")
    try:
        if dataset == "digits":
            return data.digits(train=True), data.digits(train=False)
        if dataset in MNIST_KINDS:
            root = mnist_folder(dataset, data_dir, download)
            options = dict(kind=MNIST_KINDS[dataset], download=download, base_url=mirror)
            return data.mnist(root, train=True, **options), data.mnist(root, train=False, **options)
        generate = {"spirals": data.spirals, "moons": data.moons, "blobs": data.blobs}[dataset]
        return data.train_test_split(generate(seed=0), test_fraction=0.25, seed=0)
    except data.MissingFilesError as e:
        raise TrainingError(
            Arg("data_dir", e.root), f" does not contain {' and '.join(e.missing)} (plain or .gz): put the files "
            "there, or use ", Arg("download", True), f" to fetch them from {e.url}",
        ) from None  # fmt: skip
    except data.DownloadError as e:
        raise TrainingError(Arg("dataset", dataset), f": {e} (", Arg("mirror"), " chooses another mirror)") from None
    except (OSError, ValueError, ImportError) as e:
        raise TrainingError(Arg("dataset", dataset), f": {e}") from None


def describe_data(train, test):
    """(input_shape, num_classes) of a (train, test) pair: the shape of one example and 1 + the largest label."""
    x, _ = train[0]
    labels = np.concatenate([_labels(train), _labels(test)])
    return tuple(np.shape(x)), int(labels.max()) + 1


def _labels(dataset):
    if isinstance(dataset, data.TensorDataset):
        return dataset.arrays[1]
    return np.array([dataset[i][1] for i in range(len(dataset))])


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
class SequenceClassifier(nn.Module):
    """Reads an image row by row with an LSTM and classifies it from the last hidden state."""

    def __init__(self, row_size, hidden, num_classes, dropout=0.0):
        super().__init__()
        self.lstm = nn.LSTM(row_size, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, images):
        rows = images.reshape(images.shape[0], images.shape[-2], images.shape[-1])  # (N, H, W): H steps of W
        _, (h, _) = self.lstm(rows)
        return self.out(self.dropout(h[-1]))


def make_model(name, input_shape=(1, 8, 8), num_classes=10, hidden=None, dropout=None):
    """A fresh network: "mlp" (two hidden ReLU layers), "cnn" (two conv + pool stages) or "lstm".

    input_shape is one example's shape: (C, H, W) images for cnn and lstm (lstm needs C = 1),
    anything for mlp (it flattens). hidden sizes the mlp's and lstm's layers (default 128);
    dropout is applied before the classifier (default 0).
    """
    hidden = DEFAULTS["hidden"] if hidden is None else hidden
    p = DEFAULTS["dropout"] if dropout is None else dropout
    input_shape = tuple(input_shape)
    if name == "mlp":
        model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(int(np.prod(input_shape)), hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(p),
            nn.Linear(hidden, num_classes),
        )
        last = model[-1]
    elif name == "cnn":
        if len(input_shape) != 3:
            raise TrainingError(Arg("model", "cnn"), f" needs images (C, H, W), but the data has shape {input_shape}")
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
    elif name == "lstm":
        if len(input_shape) != 3 or input_shape[0] != 1:
            raise TrainingError(
                Arg("model", "lstm"), f" reads single-channel images row by row; the data has shape {input_shape}"
            )
        model = SequenceClassifier(input_shape[2], hidden, num_classes, p)
        last = model.out
    else:
        raise TrainingError(Arg("model"), f" must be one of 'mlp', 'cnn', 'lstm', got {name!r}")
    nn.init.small_last_layer_(last, scale=0.1)
    return model


def make_optimizer(name, parameters, lr=None, momentum=0.9, weight_decay=0.0):
    """The update rule by name: "sgd", "momentum" (SGD with μ = momentum), "adagrad", "rmsprop", "adam".

    lr defaults to OPTIMIZER_LR[name]. weight_decay is the lecture's L2 term ε.
    """
    lr = OPTIMIZER_LR.get(name) if lr is None else lr
    common = dict(lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return optim.SGD(parameters, **common)
    if name == "momentum":
        return optim.SGD(parameters, momentum=momentum, **common)
    rules = {"adagrad": optim.AdaGrad, "rmsprop": optim.RMSProp, "adam": optim.Adam}
    if name not in rules:
        raise TrainingError(Arg("optimizer"), f" must be one of 'sgd', 'momentum', {', '.join(map(repr, rules))}, "
                            f"got {name!r}")  # fmt: skip
    return rules[name](parameters, **common)
