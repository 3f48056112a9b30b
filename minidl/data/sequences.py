"""A toy sequence-to-sequence task: read a sequence of symbols, then write it back (copied or reversed).

Like the lectures' sequence-to-sequence model (A B C D _ X Y Z), one recurrent network
reads the input, then after a "go" marker must produce the answer from its memory alone:

    inputs   3 1 4 1 | 0 0 0 0        (0 is the blank / go symbol)
    targets  - - - - | 1 4 1 3        (reverse; "-" = ignore_index, not scored)

Chance accuracy on the answer positions is 1 / (vocab_size - 1).
"""

import numpy as np

from minidl.data.dataset import TensorDataset

IGNORE_INDEX = -100


def sequence_task(kind="reverse", n_samples=1000, length=5, vocab_size=6, seed=0):
    """TensorDataset of inputs (N, 2·length) int64 and targets (N, 2·length) int64.

    Symbols are 1 .. vocab_size-1 (0 is the blank); targets are IGNORE_INDEX (-100) while
    the sequence is being read, so cross_entropy(..., ignore_index=-100) scores only the answer.
    """
    if kind not in ("copy", "reverse"):
        raise ValueError(f"sequence_task: kind must be 'copy' or 'reverse', got {kind!r}")
    if vocab_size < 3 or length < 1:
        raise ValueError(f"sequence_task: need vocab_size >= 3 and length >= 1, got {vocab_size} and {length}")
    rng = np.random.default_rng(seed)
    symbols = rng.integers(1, vocab_size, size=(n_samples, length))
    answer = symbols[:, ::-1] if kind == "reverse" else symbols
    inputs = np.concatenate([symbols, np.zeros_like(symbols)], axis=1)
    targets = np.concatenate([np.full_like(symbols, IGNORE_INDEX), answer], axis=1)
    return TensorDataset(inputs.astype(np.int64), targets.astype(np.int64))


# The token ids of seq2seq_task: padding, start and end of a sequence; symbols are 3 .. vocab_size - 1.
PAD, BOS, EOS = 0, 1, 2


def seq2seq_task(kind="reverse", n_samples=2000, length=(3, 8), vocab_size=12, seed=0):
    """The copy/reverse task for an encoder-decoder: variable-length sources and their answers.

    TensorDataset of (source (N, max_len) int64 padded with PAD, lengths (N,) int64, target
    (N, max_len + 1) int64: the answer then EOS, padded with PAD). length is a fixed length or a
    (shortest, longest) range; symbols are drawn from 3 .. vocab_size - 1 (PAD=0, BOS=1, EOS=2
    are the special tokens, shared by source and target). A decoder starts from BOS and must
    write the answer and EOS: the lecture's A B C D _ X Y Z, with the lengths left to the model.
    """
    if kind not in ("copy", "reverse"):
        raise ValueError(f"seq2seq_task: kind must be 'copy' or 'reverse', got {kind!r}")
    shortest, longest = (length, length) if isinstance(length, (int, np.integer)) else length
    if vocab_size < 4 or not 1 <= shortest <= longest:
        raise ValueError(f"seq2seq_task: need vocab_size >= 4 and 1 <= shortest <= longest, got {vocab_size}, {length}")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(shortest, longest + 1, size=n_samples)
    source = np.full((n_samples, longest), PAD, dtype=np.int64)
    target = np.full((n_samples, longest + 1), PAD, dtype=np.int64)
    for i, n in enumerate(lengths):
        symbols = rng.integers(3, vocab_size, size=n)
        source[i, :n] = symbols
        target[i, :n] = symbols[::-1] if kind == "reverse" else symbols
        target[i, n] = EOS
    return TensorDataset(source, lengths.astype(np.int64), target)
