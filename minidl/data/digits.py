"""The 8x8 handwritten digits bundled with scikit-learn: minidl's built-in data set.

1797 grayscale images of the digits 0-9 (UCI "optdigits" test set), already on disk
with scikit-learn, so `minidl train` works without any download. The file is read
directly when the data is asked for (scikit-learn itself is imported only if that fails).
"""

import numpy as np

from minidl.data.dataset import TensorDataset


def load_digits_arrays():
    """images (1797, 1, 8, 8) float32 in [0, 1] and labels (1797,) int64."""
    table = _read_bundled_csv()
    if table is not None:
        pixels, labels = table[:, :-1], table[:, -1]
    else:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ImportError(
                "digits: scikit-learn is needed for the built-in digits data (pip install scikit-learn)"
            ) from None
        bunch = load_digits()
        pixels, labels = bunch.data, bunch.target
    images = (pixels.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)  # pixel values are 0..16
    return images, labels.astype(np.int64)


def _read_bundled_csv():
    """scikit-learn's digits.csv.gz read directly (64 pixels and the label per row), or None.

    Importing scikit-learn takes seconds (it loads SciPy); reading its 1797-row file does not.
    That matters when every rank of an MPI job, or every test, loads the digits.
    """
    import importlib.util
    import os

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "digits.csv.gz")
    try:
        table = np.loadtxt(path, delimiter=",")
    except (OSError, ValueError):
        return None
    return table if table.ndim == 2 and table.shape[1] == 65 else None


def digits(train=None, test_fraction=0.2, seed=0):
    """The digits as a TensorDataset of (image (1, 8, 8), label).

    train=None gives all 1797 images; train=True / False gives the training or test part
    of a fixed random split (test_fraction of the images, chosen with `seed`), so every
    run and every model is tested on the same images.
    """
    images, labels = load_digits_arrays()
    if train is None:
        return TensorDataset(images, labels)
    if not 0 < test_fraction < 1:
        raise ValueError(f"digits: test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(round(len(labels) * test_fraction))
    chosen = order[n_test:] if train else order[:n_test]
    return TensorDataset(images[chosen], labels[chosen])
