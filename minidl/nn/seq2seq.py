"""An encoder-decoder with attention: the lectures' translation model, at toy size.

Sutskever, Vinyals & Le (2014) read the source sentence with one recurrent network and write the
translation with another, starting from the reader's final state ("A B C D _ X Y Z"). Bahdanau,
Cho & Bengio (2015) let the writer look back at every source position through attention, so the
whole sentence need not fit in one vector. This module is that model:

    encoder   embedding -> bidirectional GRU over the (packed, variable-length) source
              -> memory (N, S, 2H): each source position seen from both sides
    bridge    the decoder starts from tanh(W [h_forward; h_backward])
    decoder   per step: embed the previous token, GRUCell on [embedding; previous context]
              ("input feeding"), attention of the new state over the memory -> context,
              scores over the target vocabulary from [state; context]

Training feeds the true previous tokens (teacher forcing); decoding feeds the model's own, with
nn.decode.greedy_decode or nn.decode.beam_search through `decode_step`.
"""

import numpy as np

from minidl import ops
from minidl.creation import as_tensor
from minidl.nn import decode
from minidl.nn.attention import Attention
from minidl.nn.linear import Linear
from minidl.nn.module import Module
from minidl.nn.recurrent import GRU, GRUCell
from minidl.nn.sparse import Embedding
from minidl.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from minidl.tensor import Tensor


class Seq2Seq(Module):
    """Encoder-decoder with attention for token sequences (see the module docstring).

    source_vocab / target_vocab: vocabulary sizes (target defaults to source); embedding_size E,
    hidden_size H (per direction in the encoder); score: the attention's score function
    ("general" qᵀWk by default, or "dot", "scaled_dot" on keys projected to H, or "additive").
    pad, bos, eos: the token ids for padding (ignored by the loss), start and end of a sequence.

        logits = model(source, lengths, target_in)          # teacher forcing: (N, T, target_vocab)
        loss = model.loss(source, lengths, target)          # target = answer + eos, padded with pad
        sequences, scores = model.generate(source, lengths, beam_width=3)
    """

    def __init__(self, source_vocab, target_vocab=None, embedding_size=32, hidden_size=64, score="general",
                 pad=0, bos=1, eos=2, dtype=np.float32):  # fmt: skip
        super().__init__()
        target_vocab = source_vocab if target_vocab is None else target_vocab
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.hidden_size = hidden_size
        self.pad, self.bos, self.eos = pad, bos, eos
        memory_size = 2 * hidden_size
        self.source_embedding = Embedding(source_vocab, embedding_size, dtype=dtype)
        self.target_embedding = Embedding(target_vocab, embedding_size, dtype=dtype)
        self.encoder = GRU(embedding_size, hidden_size, batch_first=True, bidirectional=True, dtype=dtype)
        self.bridge = Linear(memory_size, hidden_size, dtype=dtype)
        self.decoder = GRUCell(embedding_size + memory_size, hidden_size, dtype=dtype)
        if score in ("dot", "scaled_dot"):  # these compare equal sizes: project the memory to H for the keys
            self.key_projection = Linear(memory_size, hidden_size, bias=False, dtype=dtype)
            self.attention = Attention(hidden_size, score=score)
        else:
            self.key_projection = None
            self.attention = Attention(hidden_size, memory_size, score=score, dtype=dtype)
        self.output = Linear(hidden_size + memory_size, target_vocab, dtype=dtype)

    # ------------------------------------------------------------------ encoder
    def encode(self, source, lengths):
        """The decoder's starting state for source (N, S) int64 with lengths (N,):
        (h, context, keys, memory, mask), each with the batch on axis 0."""
        source = source.array if isinstance(source, Tensor) else np.asarray(source)
        lengths = lengths.array if isinstance(lengths, Tensor) else np.asarray(lengths)
        if source.ndim != 2 or lengths.shape != (source.shape[0],):
            raise ValueError(
                f"Seq2Seq: expected source (N, S) and lengths (N,), got {source.shape} and {lengths.shape}"
            )
        steps = int(lengths.max())
        source = source[:, :steps]
        embedded = self.source_embedding(as_tensor(source))
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        output, h_n = self.encoder(packed)
        memory, _ = pad_packed_sequence(output, batch_first=True, total_length=steps)  # (N, S, 2H)
        h = self.bridge(ops.concat([h_n[0], h_n[1]], axis=1)).tanh()  # h_n: forward then backward direction
        context = Tensor(np.zeros((source.shape[0], memory.shape[2]), dtype=memory.dtype))
        keys = memory if self.key_projection is None else self.key_projection(memory)
        mask = np.arange(steps)[None, :] < lengths[:, None]  # (N, S): True at real source positions
        return h, context, keys, memory, mask

    # ------------------------------------------------------------------ decoder
    def decoder_step(self, tokens, state):
        """One decoder step: (scores (B, target_vocab), new state, attention weights (B, S))."""
        h, context, keys, memory, mask = state
        tokens = tokens.array if isinstance(tokens, Tensor) else np.asarray(tokens)
        embedded = self.target_embedding(as_tensor(tokens))
        h = self.decoder(ops.concat([embedded, context], axis=1), h)
        context, weights = self.attention(h, keys, memory, mask)
        scores = self.output(ops.concat([h, context], axis=1))
        return scores, (h, context, keys, memory, mask), weights

    def decode_step(self, tokens, state):
        """The step function of nn.decode: (log-probabilities (B, target_vocab), new state)."""
        scores, state, _ = self.decoder_step(tokens, state)
        return scores.log_softmax(axis=1), state

    def forward(self, source, lengths, target_in):
        """Teacher forcing: scores (N, T, target_vocab) for every position of target_in (N, T)."""
        target_in = target_in.array if isinstance(target_in, Tensor) else np.asarray(target_in)
        state = self.encode(source, lengths)
        scores = []
        for t in range(target_in.shape[1]):
            step_scores, state, _ = self.decoder_step(target_in[:, t], state)
            scores.append(step_scores)
        return ops.stack(scores, axis=1)

    def loss(self, source, lengths, target):
        """Mean cross-entropy of target (N, T) (answer + eos, padded with pad) given the source.

        The decoder reads bos then target[:, :-1], and pad positions do not count.
        """
        target = target.array if isinstance(target, Tensor) else np.asarray(target)
        target_in = np.concatenate([np.full((len(target), 1), self.bos), target[:, :-1]], axis=1)
        scores = self(source, lengths, target_in)
        scored = np.where(target == self.pad, -100, target).reshape(-1)
        return ops.cross_entropy(scores.reshape(-1, self.target_vocab), scored, ignore_index=-100)

    def generate(self, source, lengths, beam_width=1, max_length=None):
        """Decode every source: (sequences, scores), greedy for beam_width=1, else beam search.

        Each sequence is a list of token ids ending with eos (unless max_length, by default twice
        the longest source plus 2, cut it short); scores are the sums of their log-probabilities.
        """
        lengths_array = lengths.array if isinstance(lengths, Tensor) else np.asarray(lengths)
        max_length = 2 * int(lengths_array.max()) + 2 if max_length is None else max_length
        state = self.encode(source, lengths)
        batch = len(lengths_array)
        if beam_width == 1:
            return decode.greedy_decode(self.decode_step, state, self.bos, self.eos, max_length, batch)
        return decode.beam_search(self.decode_step, state, self.bos, self.eos, beam_width, max_length, batch)

    def extra_repr(self):
        return f"source_vocab={self.source_vocab}, target_vocab={self.target_vocab}, hidden_size={self.hidden_size}"


def exact_match_accuracy(sequences, target, eos):
    """The fraction of decoded sequences equal to their target (N, T) up to and including eos."""
    target = target.array if isinstance(target, Tensor) else np.asarray(target)
    correct = 0
    for sequence, row in zip(sequences, target):
        end = int(np.flatnonzero(row == eos)[0]) + 1 if np.any(row == eos) else len(row)
        correct += list(sequence) == row[:end].tolist()
    return correct / len(target)
