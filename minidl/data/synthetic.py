"""Small 2-D classification problems generated with NumPy: spirals, moons and blobs.

Each is a TensorDataset of points (N, 2) float32 and labels (N,) int64, generated from
`seed` alone, so the same call always gives the same data. Good for watching a small
network bend its decision boundary (a linear model cannot separate spirals or moons).
"""

import numpy as np

from minidl.data.dataset import TensorDataset


def _check(name, n_samples, n_classes):
    if n_samples < n_classes:
        raise ValueError(f"{name}: n_samples ({n_samples}) must be at least the number of classes ({n_classes})")


def _per_class(n_samples, n_classes):
    """Split n_samples as evenly as possible between the classes."""
    return [n_samples // n_classes + (k < n_samples % n_classes) for k in range(n_classes)]


def spirals(n_samples=600, n_classes=3, noise=0.2, turns=1.0, seed=0):
    """n_classes interleaved spiral arms around the origin, one per class.

    A point at radius r in [0, 1] on arm k sits at angle 2π(k / n_classes + turns·r) + noise.
    """
    _check("spirals", n_samples, n_classes)
    rng = np.random.default_rng(seed)
    points, labels = [], []
    for k, n in enumerate(_per_class(n_samples, n_classes)):
        r = np.linspace(0.05, 1.0, n)
        angle = 2 * np.pi * (k / n_classes + turns * r) + rng.normal(0, noise, n)
        points.append(np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1))
        labels.append(np.full(n, k))
    return TensorDataset(np.concatenate(points).astype(np.float32), np.concatenate(labels).astype(np.int64))


def moons(n_samples=400, noise=0.1, seed=0):
    """Two interleaving half circles: class 0 the upper one, class 1 the lower one shifted right."""
    _check("moons", n_samples, 2)
    rng = np.random.default_rng(seed)
    n0, n1 = _per_class(n_samples, 2)
    t0 = np.linspace(0, np.pi, n0)
    t1 = np.linspace(0, np.pi, n1)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    points = np.concatenate([upper, lower]) + rng.normal(0, noise, (n_samples, 2))
    labels = np.concatenate([np.zeros(n0), np.ones(n1)])
    return TensorDataset(points.astype(np.float32), labels.astype(np.int64))


def blobs(n_samples=300, n_classes=3, n_features=2, cluster_std=1.0, center_box=(-8.0, 8.0), seed=0):
    """Gaussian clusters, one per class, with centers drawn uniformly in center_box."""
    _check("blobs", n_samples, n_classes)
    rng = np.random.default_rng(seed)
    centers = rng.uniform(center_box[0], center_box[1], (n_classes, n_features))
    points, labels = [], []
    for k, n in enumerate(_per_class(n_samples, n_classes)):
        points.append(centers[k] + rng.normal(0, cluster_std, (n, n_features)))
        labels.append(np.full(n, k))
    return TensorDataset(np.concatenate(points).astype(np.float32), np.concatenate(labels).astype(np.int64))
