"""minidl.data: datasets, splits and the DataLoader that feeds mini-batches to SGD.

    train = data.digits(train=True)
    for images, labels in data.DataLoader(train, batch_size=64, shuffle=True): ...

Built in: digits (scikit-learn's 8x8 digits, no download), MNIST / Fashion-MNIST IDX files,
generated spirals / moons / blobs, copy/reverse sequence tasks and a text corpus for embeddings.
"""

from minidl.data.dataset import Dataset, Subset, TensorDataset, random_split, train_test_split
from minidl.data.digits import digits
from minidl.data.download import DownloadError, download_url
from minidl.data.loader import DataLoader, default_collate
from minidl.data.mnist import MissingFilesError, fashion_mnist, mnist, read_idx
from minidl.data.sequences import IGNORE_INDEX, seq2seq_task, sequence_task
from minidl.data.synthetic import blobs, moons, spirals
from minidl.data.text import (
    Vocabulary,
    analogy_corpus,
    analogy_questions,
    cbow_windows,
    skipgram_dataset,
    skipgram_pairs,
    text_file_corpus,
    tokenize,
)

__all__ = [
    "Dataset",
    "TensorDataset",
    "Subset",
    "random_split",
    "train_test_split",
    "DataLoader",
    "default_collate",
    "digits",
    "mnist",
    "fashion_mnist",
    "read_idx",
    "MissingFilesError",
    "download_url",
    "DownloadError",
    "spirals",
    "moons",
    "blobs",
    "sequence_task",
    "seq2seq_task",
    "IGNORE_INDEX",
    "Vocabulary",
    "tokenize",
    "analogy_corpus",
    "text_file_corpus",
    "skipgram_pairs",
    "skipgram_dataset",
    "cbow_windows",
    "analogy_questions",
]
