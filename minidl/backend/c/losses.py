"""Softmax cross-entropy in C (csrc/softmax.c): the loss and its gradient, one pass per row each."""

import numpy as np

from minidl.backend.c import _ffi
from minidl.backend.c._reference import ref

MIN_LOSS = 256  # elements of the logits: fusing the softmax, log and pick pays from tiny sizes

_I64 = "int64_t[]"


def cross_entropy_forward(logits, targets):
    """Per-row loss -log softmax(logits)[target] and the softmax probabilities, in one pass per row."""
    if (
        not _ffi.available
        or not _ffi.is_f32(logits)
        or logits.ndim != 2
        or logits.size < MIN_LOSS
        or logits.shape[1] == 0
        or np.shape(targets) != (logits.shape[0],)
    ):
        return ref.cross_entropy_forward(logits, targets)
    logits = _ffi.contig(logits)
    t = np.ascontiguousarray(targets, dtype=np.int64)
    rows, cols = logits.shape
    losses = np.empty(rows, _ffi.F32)
    probs = np.empty((rows, cols), _ffi.F32)
    bad = _ffi.lib.mdk_cross_entropy_forward(
        _ffi.buf(logits), _ffi.buf(t, _I64), _ffi.buf(losses), _ffi.buf(probs), rows, cols
    )
    if bad:
        row = -bad - 1
        raise IndexError(f"cross_entropy_forward: target {t[row]} of row {row} is out of range for {cols} classes")
    return losses, probs


def cross_entropy_backward(probs, targets, grad_losses):
    """d loss_i / d logits_i = softmax_i - onehot(target_i), scaled by each row's upstream grad."""
    if (
        not _ffi.available
        or not _ffi.is_f32(probs, grad_losses)
        or probs.ndim != 2
        or probs.size < MIN_LOSS
        or grad_losses.shape != (probs.shape[0],)
        or np.shape(targets) != (probs.shape[0],)
    ):
        return ref.cross_entropy_backward(probs, targets, grad_losses)
    t = np.ascontiguousarray(targets, dtype=np.int64)
    probs, g = _ffi.contig(probs), _ffi.contig(grad_losses)
    d = np.empty(probs.shape, _ffi.F32)
    bad = _ffi.lib.mdk_cross_entropy_backward(
        _ffi.buf(probs), _ffi.buf(t, _I64), _ffi.buf(g), _ffi.buf(d), *probs.shape
    )
    if bad:
        row = -bad - 1
        raise IndexError(
            f"cross_entropy_backward: target {t[row]} of row {row} is out of range for {probs.shape[1]} classes"
        )
    return d


__all__ = ["cross_entropy_forward", "cross_entropy_backward"]
