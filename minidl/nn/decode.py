"""Decoding a sequence model: greedy search and beam search.

A sequence-to-sequence model gives, step by step, log P(next token | tokens so far, input). The
most probable output sequence maximizes the sum of those log-probabilities, which no practical
search can guarantee. Greedy decoding takes the single best token at each step. Beam search
(the lecture's "at inference time: beam search to choose most probable over possible output
sequences", Sutskever, Vinyals & Le 2014) keeps the `beam_width` best partial sequences instead,
extends each by every token and keeps the best beam_width of those, so a sequence whose first
token was only second best can still win.

Both drive any model through one function:

    step(tokens, state) -> (log_probs, new_state)

tokens: int64 array (B,) of the last token of each sequence; log_probs: (B, V) Tensor or array;
state: a Tensor, an array, or a (nested) tuple/list of them, each with the batch on axis 0
(beam search reorders and repeats their rows as beams are chosen). A sequence ends when it
emits `eos` (which counts in its score) or after max_length tokens.
"""

import numpy as np

from minidl.autograd import no_grad
from minidl.tensor import Tensor


def _rows(state, index):
    """The state with its batch rows picked (and repeated) by index, whatever nesting it has."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(_rows(part, index) for part in state)
    return state[index]


def _log_probs(step, tokens, state):
    log_probs, state = step(tokens, state)
    values = log_probs.array if isinstance(log_probs, Tensor) else np.asarray(log_probs)
    if values.ndim != 2 or values.shape[0] != len(tokens):
        raise ValueError(f"decode: step returned log_probs of shape {values.shape}, expected ({len(tokens)}, vocab)")
    return values.astype(np.float64), state


def _check(bos, eos, max_length, batch_size, beam_width=1):
    if not isinstance(max_length, (int, np.integer)) or max_length < 1:
        raise ValueError(f"decode: max_length must be a positive integer, got {max_length!r}")
    if not isinstance(beam_width, (int, np.integer)) or beam_width < 1:
        raise ValueError(f"beam_search: beam_width must be a positive integer, got {beam_width!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"decode: batch_size must be a positive integer, got {batch_size!r}")


def greedy_decode(step, state, bos, eos, max_length, batch_size=1):
    """The best token at every step: (sequences, scores).

    sequences: one list of token ids per example (ending with eos if it was produced, bos not
    included); scores: float64 array (B,), the sum of the chosen tokens' log-probabilities.
    """
    _check(bos, eos, max_length, batch_size)
    tokens = np.full(batch_size, bos, dtype=np.int64)
    sequences = [[] for _ in range(batch_size)]
    scores = np.zeros(batch_size)
    running = np.ones(batch_size, dtype=bool)
    with no_grad():
        for _ in range(max_length):
            log_probs, state = _log_probs(step, tokens, state)
            tokens = log_probs.argmax(axis=1)  # the first of equal maxima, as beam search's stable sort
            for b in np.flatnonzero(running):
                sequences[b].append(int(tokens[b]))
                scores[b] += log_probs[b, tokens[b]]
            running &= tokens != eos
            if not running.any():
                break
    return sequences, scores


def beam_search(step, state, bos, eos, beam_width=4, max_length=50, batch_size=1):
    """Keep the beam_width best partial sequences at every step: (sequences, scores) like greedy_decode.

    Scores are sums of log-probabilities (no length normalization). A candidate that ends with eos
    is set aside as finished; the beam goes on with the best beam_width that do not end. An
    example stops when its best finished sequence scores at least as well as its best live one
    (adding tokens only lowers a score, so nothing live can overtake it), or after max_length
    tokens, when its live sequences compete unfinished. With beam_width=1 this is greedy decoding.
    """
    _check(bos, eos, max_length, batch_size, beam_width)
    width = beam_width
    # Beam k of example b is row b·width + k. At the start only beam 0 is real: the others
    # score -inf so the first step does not pick the same sequence `width` times.
    scores = np.full((batch_size, width), -np.inf)
    scores[:, 0] = 0.0
    histories = [[[] for _ in range(width)] for _ in range(batch_size)]
    finished = [[] for _ in range(batch_size)]  # (score, tokens) of every sequence that emitted eos
    done = np.zeros(batch_size, dtype=bool)
    tokens = np.full(batch_size * width, bos, dtype=np.int64)
    state = _rows(state, np.repeat(np.arange(batch_size), width))
    with no_grad():
        for _ in range(max_length):
            log_probs, state = _log_probs(step, tokens, state)
            vocab = log_probs.shape[1]
            candidates = scores[:, :, None] + log_probs.reshape(batch_size, width, vocab)
            parents = np.arange(batch_size * width)  # done examples keep their rows
            new_scores, new_histories = scores.copy(), [list(h) for h in histories]
            for b in np.flatnonzero(~done):
                flat = candidates[b].reshape(-1)
                live = []
                for c in np.argsort(-flat, kind="stable"):  # best first; ties: the lower index, as argmax
                    if flat[c] == -np.inf:
                        break
                    k, token = divmod(int(c), vocab)
                    if token == eos:
                        finished[b].append((flat[c], histories[b][k] + [token]))
                    else:
                        live.append((flat[c], k, token))
                        if len(live) == width:
                            break
                for slot in range(width):
                    if slot < len(live):
                        score, k, token = live[slot]
                    else:  # fewer live candidates than beams (a tiny vocabulary): an empty slot
                        score, k, token = -np.inf, 0, eos
                    new_scores[b, slot] = score
                    new_histories[b][slot] = histories[b][k] + [token]
                    parents[b * width + slot] = b * width + k
                    tokens[b * width + slot] = token
                best_finished = max((s for s, _ in finished[b]), default=-np.inf)
                done[b] = best_finished >= new_scores[b].max()
            scores, histories = new_scores, new_histories
            state = _rows(state, parents)
            if done.all():
                break
    sequences, best = [], np.empty(batch_size)
    for b in range(batch_size):
        pool = finished[b] if done[b] else finished[b] + [(s, h) for s, h in zip(scores[b], histories[b])]
        score, sequence = max(pool, key=lambda item: item[0])  # the first of equal scores
        sequences.append(sequence)
        best[b] = score
    return sequences, best


__all__ = ["greedy_decode", "beam_search"]
