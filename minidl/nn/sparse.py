"""Embedding: a table of learned vectors, one per discrete symbol (word, token id, category).

The lecture's motivation: a 1-hot vector times a dense matrix just selects one column,
so do the lookup directly. A row is only trained when its symbol is seen, which is
why rare words get poor embeddings and why word2vec pre-trains them on lots of text.
"""

import numpy as np

from minidl import ops
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter, check_sizes


class Embedding(Module):
    """indices (any shape, integers) -> vectors (*indices.shape, embedding_dim); weight ~ N(0, 1) like PyTorch.

    Equivalent to one_hot(indices) @ weight, without building the one-hot matrix; the
    gradient of a row is the sum of the gradients of every position that looked it up.
    """

    def __init__(self, num_embeddings, embedding_dim, dtype=np.float32):
        check_sizes("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight = Parameter.empty((num_embeddings, embedding_dim), dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)

    def forward(self, indices):
        return ops.embedding(indices, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"
