"""Variable-length batches for recurrent layers: PackedSequence and its helpers, as torch.nn.utils.rnn.

Sentences in a batch have different lengths. Padding them to the longest makes one tensor, but a
recurrent layer would then read the padding as if it were input. A PackedSequence says how long
each sequence is, and nn.RNN / nn.LSTM / nn.GRU stop each sequence at its own end: its final state
is the state after its last real element, and the backward direction of a bidirectional layer
starts there too.

    packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
    output, h_n = gru(packed)
    output, lengths = pad_packed_sequence(output, batch_first=True)

The layout is PyTorch's: `data` holds the real elements only, time step by time step, the
sequences of each step ordered from longest to shortest; `batch_sizes[t]` says how many sequences
are still running at step t. Packing and unpacking are one gather and one scatter, so gradients flow.
"""

import numpy as np

from minidl import ops
from minidl.creation import as_tensor
from minidl.tensor import Tensor


class PackedSequence:
    """A batch of sequences of different lengths (see the module docstring for the layout).

    data              (total elements, *features): the real elements, step by step
    batch_sizes       int64 tensor (longest length,): how many sequences have a step t
    sorted_indices    the batch order used in data (longest first), or None when the batch was
                      already sorted (enforce_sorted=True)
    unsorted_indices  its inverse permutation (or None)
    """

    def __init__(self, data, batch_sizes, sorted_indices=None, unsorted_indices=None):
        self.data = data
        self.batch_sizes = batch_sizes
        self.sorted_indices = sorted_indices
        self.unsorted_indices = unsorted_indices

    @property
    def lengths(self):
        """Each sequence's length, in the batch's original order (an int64 array)."""
        sizes = self.batch_sizes.array
        sorted_lengths = (sizes[None, :] > np.arange(sizes[0])[:, None]).sum(axis=1)
        if self.unsorted_indices is None:
            return sorted_lengths
        return sorted_lengths[self.unsorted_indices.array]

    def __iter__(self):  # unpacks like PyTorch's namedtuple
        return iter((self.data, self.batch_sizes, self.sorted_indices, self.unsorted_indices))

    def __repr__(self):
        return f"PackedSequence(data shape {self.data.shape}, batch_sizes={self.batch_sizes.array.tolist()})"


def _lengths_array(lengths, op):
    values = lengths.array if isinstance(lengths, Tensor) else np.asarray(lengths)
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise TypeError(f"{op}: lengths must be a 1-D sequence of integers, got {lengths!r}")
    if values.size and values.min() < 1:
        raise ValueError(f"{op}: every length must be at least 1, got {values.tolist()}")
    return values.astype(np.int64)


def _flat_positions(order, sorted_lengths, batch):
    """Row indices into the (T·B, ...) padded tensor of every real element, in packed order."""
    steps = int(sorted_lengths[0]) if len(sorted_lengths) else 0
    sizes = (sorted_lengths[None, :] > np.arange(steps)[:, None]).sum(axis=1)
    rows = np.concatenate([t * batch + order[:size] for t, size in enumerate(sizes)]) if steps else np.zeros(0, int)
    return rows.astype(np.int64), sizes.astype(np.int64)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):  # noqa: A002 - PyTorch's name
    """Pack a padded batch (T, B, *) (or (B, T, *) with batch_first) whose sequence b has lengths[b] steps.

    enforce_sorted=True expects lengths in decreasing order (an error says so otherwise);
    enforce_sorted=False sorts them and remembers the order, so any batch works.
    """
    op = "pack_padded_sequence"
    lengths = _lengths_array(lengths, op)
    x = input.transpose(0, 1) if batch_first else input
    if x.ndim < 2 or x.shape[1] != len(lengths):
        raise ValueError(f"{op}: input {input.shape} holds {x.shape[1] if x.ndim > 1 else '?'} sequences "
                         f"but {len(lengths)} lengths were given")  # fmt: skip
    if lengths.max() > x.shape[0]:
        raise ValueError(f"{op}: a length of {lengths.max()} is longer than the {x.shape[0]} padded steps")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise ValueError(
                f"{op}: lengths {lengths.tolist()} must be in decreasing order when enforce_sorted=True; "
                "pass enforce_sorted=False to have them sorted"
            )
        order, sorted_indices, unsorted_indices = np.arange(len(lengths)), None, None
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = as_tensor(order.astype(np.int64))
        unsorted_indices = as_tensor(np.argsort(order).astype(np.int64))
    rows, sizes = _flat_positions(order, lengths[order], x.shape[1])
    data = x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])[rows]
    return PackedSequence(data, as_tensor(sizes), sorted_indices, unsorted_indices)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """The inverse of pack_padded_sequence: (padded (T, B, *) or (B, T, *), lengths int64 tensor (B,)).

    Padding positions hold padding_value; total_length pads to that many steps (at least the longest).
    """
    lengths = sequence.lengths
    batch = len(lengths)
    steps = int(lengths.max())
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"pad_packed_sequence: total_length={total_length} is shorter than the longest "
                             f"sequence ({steps} steps)")  # fmt: skip
        steps = int(total_length)
    order = np.arange(batch) if sequence.sorted_indices is None else sequence.sorted_indices.array
    rows, _ = _flat_positions(order, lengths[order], batch)
    features = sequence.data.shape[1:]
    flat = ops.scatter_add(sequence.data, rows, (steps * batch, *features))
    if padding_value != 0:
        filled = np.zeros((steps * batch,) + (1,) * len(features), dtype=bool)
        filled[rows] = True
        flat = ops.where(filled, flat, padding_value)
    padded = flat.reshape(steps, batch, *features)
    return (padded.transpose(0, 1) if batch_first else padded), as_tensor(lengths)


def pad_sequence(sequences, batch_first=False, padding_value=0.0):
    """Stack tensors (L_b, *) of different lengths into one (T, B, *) (or (B, T, *)) padded with padding_value."""
    sequences = list(sequences)
    if not sequences:
        raise ValueError("pad_sequence: expected at least one sequence")
    steps = max(s.shape[0] for s in sequences)
    padded = [ops.pad(s, [(0, steps - s.shape[0])] + [(0, 0)] * (s.ndim - 1), padding_value) for s in sequences]
    return ops.stack(padded, axis=0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of tensors (L_b, *) directly: pad_sequence, then pack_padded_sequence."""
    sequences = list(sequences)
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence"]
