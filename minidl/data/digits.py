"""The 8x8 handwritten digits bundled with scikit-learn: minidl's built-in data set.

1797 grayscale images of the digits 0-9 (UCI "optdigits" test set), already on disk
with scikit-learn, so `minidl train` works without any download. scikit-learn is
imported only when the data is asked for.
"""

import numpy as np

from minidl.data.dataset import TensorDataset


def load_digits_arrays():
    """images (1797, 1, 8, 8) float32 in [0, 1] and labels (1797,) int64."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "digits: scikit-learn is needed for the built-in digits data (pip install scikit-learn)"
        ) from None
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]  # pixel values are 0..16
    return images, bunch.target.astype(np.int64)


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
