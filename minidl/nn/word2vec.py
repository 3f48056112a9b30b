"""word2vec: skip-gram and CBOW word embeddings, with any of the large-output layers, and the queries.

"Instead of training embeddings on the supervised task at hand, train them first to represent
semantic similarity using unsupervised training on a large text corpus" (Mikolov, Chen, Corrado &
Dean 2013; Mikolov, Sutskever, Chen, Corrado & Dean 2013):

- skip-gram: predict each surrounding word from the word's embedding;
- CBOW (continuous bag of words): predict the word from the mean of its neighbours' embeddings.

The prediction is a softmax over the vocabulary, the costly part, so the output layer is a choice:
"full" (nn.Linear and cross-entropy), "hierarchical" (nn.HierarchicalSoftmax over the Huffman tree
of word counts), "sampled" (nn.SampledSoftmax) or "negative" (nn.NegativeSampling, word2vec's
default; "nce" for noise-contrastive estimation). The embeddings learned are the input table;
nearest neighbours and analogies (V_king - V_man + V_woman ≈ V_queen) are cosine similarities.

    model, vocabulary = train_word2vec(data.analogy_corpus(), mode="skipgram", output="hierarchical")
    analogy(model.vectors(), vocabulary, "man", "king", "woman")     # -> ["queen", ...]
"""

import numpy as np

from minidl import data as _data
from minidl import ops, optim
from minidl.nn import init
from minidl.nn.large_output import HierarchicalSoftmax, NegativeSampling, SampledSoftmax
from minidl.nn.linear import Linear
from minidl.nn.module import Module
from minidl.nn.sparse import Embedding
from minidl.tensor import Tensor

OUTPUTS = ("full", "hierarchical", "sampled", "negative", "nce")


class Word2Vec(Module):
    """Word embeddings trained to predict context words (skip-gram) or the center word (CBOW).

    forward(inputs, targets) -> the loss. Skip-gram: inputs are center ids (N,), targets context
    ids (N,). CBOW: inputs are contexts (N, 2·window) with -1 for missing words, targets the centers.
    counts (one per word) are needed by "hierarchical" (the Huffman tree) and used as the sampling
    proposal by "sampled", "negative" and "nce" (raised to `power`). num_samples: samples per batch
    (sampled) or negatives per example (negative, nce).
    """

    def __init__(self, vocab_size, embedding_dim=16, mode="skipgram", output="negative", counts=None,
                 num_samples=5, power=0.75, dtype=np.float32):  # fmt: skip
        super().__init__()
        if mode not in ("skipgram", "cbow"):
            raise ValueError(f"Word2Vec: mode must be 'skipgram' or 'cbow', got {mode!r}")
        if output not in OUTPUTS:
            raise ValueError(f"Word2Vec: output must be one of {OUTPUTS}, got {output!r}")
        if output == "hierarchical" and counts is None:
            raise ValueError("Word2Vec: output='hierarchical' needs the word counts (to build the Huffman tree)")
        self.mode, self.output_kind = mode, output
        self.embedding = Embedding(vocab_size, embedding_dim, dtype=dtype)
        init.uniform_(self.embedding.weight, -0.5 / embedding_dim, 0.5 / embedding_dim)  # word2vec's start
        if output == "full":
            self.output = Linear(embedding_dim, vocab_size, dtype=dtype)
        elif output == "hierarchical":
            self.output = HierarchicalSoftmax(embedding_dim, counts, dtype=dtype)
        elif output == "sampled":
            self.output = SampledSoftmax(embedding_dim, vocab_size, num_samples, counts, power, dtype=dtype)
        else:
            self.output = NegativeSampling(
                embedding_dim, vocab_size, num_samples, counts, power, nce=output == "nce", dtype=dtype
            )

    def hidden(self, inputs):
        """The vector that predicts: a center word's embedding, or the mean of the context embeddings."""
        ids = inputs.array if isinstance(inputs, Tensor) else np.asarray(inputs)
        if self.mode == "skipgram":
            return self.embedding(ids)
        present = ids >= 0
        vectors = self.embedding(np.where(present, ids, 0))  # (N, 2w, d); missing words masked out
        weights = present / np.maximum(present.sum(axis=1, keepdims=True), 1)
        return (vectors * Tensor(weights[:, :, None].astype(vectors.dtype))).sum(axis=1)

    def forward(self, inputs, targets):
        h = self.hidden(inputs)
        if self.output_kind == "full":
            return ops.cross_entropy(self.output(h), targets)
        return self.output(h, targets)

    def log_prob(self, inputs):
        """log P(target | inputs) over the whole vocabulary (N, V), whatever the training loss."""
        h = self.hidden(inputs)
        if self.output_kind == "full":
            return self.output(h).log_softmax(axis=1)
        return self.output.log_prob(h)

    def vectors(self):
        """The learned embeddings, one unit-length row per word (a NumPy array (V, d))."""
        table = self.embedding.weight.array.astype(np.float64)
        return table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(vectors, vocabulary, word, k=5):
    """The k words whose vectors are most cosine-similar to `word`'s (itself excluded), best first."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit[vocabulary[word]]
    similarity[vocabulary[word]] = -np.inf
    return [vocabulary.words[i] for i in np.argsort(-similarity, kind="stable")[:k]]


def analogy(vectors, vocabulary, a, b, c, k=1):
    """Answer "a is to b as c is to ?": the k words closest (cosine) to v_b - v_a + v_c, a, b and c excluded.

    analogy(vectors, vocabulary, "man", "king", "woman") should start with "queen".
    """
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    target = unit[vocabulary[b]] - unit[vocabulary[a]] + unit[vocabulary[c]]
    similarity = unit @ target
    for word in (a, b, c):
        similarity[vocabulary[word]] = -np.inf
    return [vocabulary.words[i] for i in np.argsort(-similarity, kind="stable")[:k]]


def analogy_accuracy(vectors, vocabulary, questions=None, k=1):
    """The fraction of questions (a, b, c, d) whose answer d is among analogy(a, b, c)'s top k.

    questions default to data.analogy_questions(), the 36 planted in data.analogy_corpus().
    """
    questions = _data.analogy_questions() if questions is None else questions
    hits = [d in analogy(vectors, vocabulary, a, b, c, k) for a, b, c, d in questions]
    return float(np.mean(hits))


def train_word2vec(sentences, mode="skipgram", output="negative", embedding_dim=16, window=5, epochs=3,
                   batch_size=256, lr=0.01, num_samples=5, power=0.75, min_count=1):  # fmt: skip
    """Train word2vec on sentences (lists of words) with Adam: (model, vocabulary).

    Examples come from data.skipgram_pairs (skip-gram) or data.cbow_windows (CBOW); the counts for
    the Huffman tree and the sampling proposal are the vocabulary's. Seed with minidl.manual_seed.
    """
    vocabulary = _data.Vocabulary([w for s in sentences for w in s], min_count=min_count)
    if mode == "skipgram":
        inputs, targets = _data.skipgram_pairs(sentences, vocabulary, window)
    else:
        inputs, targets = _data.cbow_windows(sentences, vocabulary, window)
    counts = np.array([vocabulary.counts[w] for w in vocabulary.words], dtype=np.float64)
    model = Word2Vec(len(vocabulary), embedding_dim, mode, output, counts, num_samples, power)
    optimizer = optim.Adam(model.parameters(), lr=lr)
    loader = _data.DataLoader(_data.TensorDataset(inputs, targets), batch_size=batch_size, shuffle=True)
    for _ in range(epochs):
        for batch_inputs, batch_targets in loader:
            loss = model(batch_inputs, batch_targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model, vocabulary
