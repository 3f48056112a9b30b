"""Attention: a differentiable look-up that lets a decoder read back its whole input sequence.

The lecture's fix for the sequence-to-sequence bottleneck (Bahdanau, Cho & Bengio, "Neural Machine
Translation by Jointly Learning to Align and Translate", ICLR 2015): instead of squeezing a sentence
into one vector, at every output step the decoder scores each input position against its current
state, turns the scores into weights with a softmax, and reads the weighted average of the inputs,

    scores_s = score(query, key_s),   weights = softmax(scores),   context = Σ_s weights_s · value_s.

"If X_2 translates to Y_2, the model can make A_2 look like X_2." Content-based addressing is
also "the main idea behind" memory networks and Neural Turing Machines. The score functions:

    dot          qᵀk                         (Luong, Pham & Manning 2015)
    scaled_dot   qᵀk / √d                    (Vaswani et al. 2017; keeps softmax out of saturation)
    general      qᵀ W k                      (Luong et al.)
    additive     vᵀ tanh(W_q q + W_k k)      (Bahdanau et al.)

All of it is composed from matmul, tanh, softmax and where: gradients (and second derivatives) come
from those ops.
"""

import math

import numpy as np

from minidl import ops
from minidl.nn import init
from minidl.nn.linear import Linear
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.tensor import Tensor

SCORES = ("dot", "scaled_dot", "general", "additive")


def _as_mask(mask, scores, op, per_example=True):
    """A boolean array broadcastable to scores (..., L, S): True where a key may be attended to.

    per_example: a 2-D mask of scores (N, L, S) is a (N, S) key mask, the same for every query (the
    encoder-decoder's padding); otherwise masks broadcast as NumPy does ((L, S) for every example).
    """
    mask = mask.array if isinstance(mask, Tensor) else np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"{op}: mask must be boolean (True where a key takes part), got dtype {mask.dtype}")
    if per_example and mask.ndim == 2 and scores.ndim == 3 and mask.shape == (scores.shape[0], scores.shape[2]):
        mask = mask[:, None, :]
    try:
        np.broadcast_shapes(mask.shape, scores.shape)
    except ValueError:
        raise ValueError(f"{op}: mask of shape {mask.shape} does not fit scores of shape {scores.shape}") from None
    return mask


def attend(scores, value, mask=None, op="attention"):
    """weights = softmax(scores over the keys), context = weights @ value; masked keys get weight 0.

    scores (..., L, S), value (..., S, Dv) -> (context (..., L, Dv), weights (..., L, S)).
    Masked scores are set to the most negative float before the softmax (not -inf: a row with no
    key left then averages every key instead of producing NaN).
    """
    if mask is not None:
        mask = _as_mask(mask, scores, op)
        scores = ops.where(mask, scores, float(np.finfo(scores.dtype).min))
    weights = scores.softmax(axis=-1)
    return weights @ value, weights


def _three_d(op, query, key, value):
    """Queries, keys and values as batches of matrices; a query of one vector per example becomes one row."""
    single = query.ndim == 2
    if single:
        query = query.unsqueeze(1)
    if query.ndim != 3 or key.ndim != 3 or value.ndim != 3:
        raise ValueError(
            f"{op}: expected query (N, D) or (N, L, D), keys (N, S, D) and values (N, S, Dv), "
            f"got {query.shape}, {key.shape} and {value.shape}"
        )
    if key.shape[:2] != value.shape[:2] or query.shape[0] != key.shape[0]:
        raise ValueError(f"{op}: query {query.shape}, keys {key.shape} and values {value.shape} do not align")
    return query, single


def attention(query, key, value=None, mask=None, score="dot"):
    """Dot-product attention: (context, weights) for query (N, D) or (N, L, D) over keys (N, S, D).

    score "dot" uses qᵀk, "scaled_dot" qᵀk/√D. value defaults to the keys (the decoder reading the
    encoder's states). mask (N, S) or (N, L, S), boolean: False hides a key (padding). Returns context
    (N, Dv) or (N, L, Dv) and weights (N, S) or (N, L, S) (each row sums to 1).
    For the score functions with parameters ("general", "additive") use the Attention module.
    """
    if score not in ("dot", "scaled_dot"):
        raise ValueError(f"attention: score must be 'dot' or 'scaled_dot' (the others: nn.Attention), got {score!r}")
    value = key if value is None else value
    q, single = _three_d("attention", query, key, value)
    if q.shape[2] != key.shape[2]:
        raise ValueError(f"attention: query size {q.shape[2]} differs from key size {key.shape[2]}")
    scores = q @ key.transpose(1, 2)
    if score == "scaled_dot":
        scores = scores * (1 / math.sqrt(q.shape[2]))
    context, weights = attend(scores, value, mask, "attention")
    return (context.squeeze(1), weights.squeeze(1)) if single else (context, weights)


def additive_attention(query, key, value, w_query, w_key, v, mask=None):
    """Bahdanau's attention: scores_s = vᵀ tanh(W_q q + W_k k_s), then softmax and a weighted average.

    query (N, Dq) or (N, L, Dq), keys (N, S, Dk), values (N, S, Dv); w_query (A, Dq), w_key (A, Dk),
    v (A,). The tanh layer compares query and key in an A-dimensional space before scoring.
    """
    q, single = _three_d("additive_attention", query, key, value)
    projected_q = ops.linear(q, w_query).unsqueeze(2)  # (N, L, 1, A)
    projected_k = ops.linear(key, w_key).unsqueeze(1)  # (N, 1, S, A)
    scores = (projected_q + projected_k).tanh() @ v  # (N, L, S)
    context, weights = attend(scores, value, mask, "additive_attention")
    return (context.squeeze(1), weights.squeeze(1)) if single else (context, weights)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """PyTorch's functional form: softmax(q kᵀ · scale + mask) v for (..., L, E), (..., S, E), (..., S, Ev).

    scale defaults to 1/√E. attn_mask: boolean (True takes part) or float (added to the scores);
    is_causal hides the keys after each query. dropout_p drops attention weights (training only:
    pass 0 to evaluate). Returns the output (..., L, Ev) only, as torch does.
    """
    if query.ndim < 2 or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(
            f"scaled_dot_product_attention: query, key and value need the same number (>= 2) of dimensions, "
            f"got {query.shape}, {key.shape} and {value.shape}"
        )
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-1, -2)) * scale
    mask = None
    if is_causal:
        length, source = scores.shape[-2:]
        mask = np.tril(np.ones((length, source), dtype=bool))
    if attn_mask is not None:
        if (attn_mask.array if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)).dtype == np.bool_:
            bool_mask = attn_mask.array if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
            mask = bool_mask if mask is None else mask & bool_mask
        else:
            scores = scores + attn_mask
    if mask is not None:
        scores = ops.where(_as_mask(mask, scores, "scaled_dot_product_attention", False), scores, float("-inf"))
    weights = scores.softmax(axis=-1)
    if dropout_p:
        weights = ops.dropout(weights, dropout_p)
    return weights @ value


class Attention(Module):
    """Attention as a layer: forward(query, keys, values=None, mask=None) -> (context, weights).

    score: "dot" (qᵀk; query and key sizes equal), "scaled_dot" (qᵀk/√d), "general" (qᵀWk, W of
    shape (query_size, key_size), Luong et al. 2015) or "additive" (vᵀ tanh(W_q q + W_k k), Bahdanau
    et al. 2015, with hidden_size units). Shapes as nn.functional.attention: query (N, Dq) or
    (N, L, Dq), keys (N, S, Dk), values (N, S, Dv) (default: the keys), mask (N, S) boolean.
    """

    def __init__(self, query_size, key_size=None, score="dot", hidden_size=None, dtype=np.float32):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"Attention: score must be one of {SCORES}, got {score!r}")
        key_size = query_size if key_size is None else key_size
        if score in ("dot", "scaled_dot") and key_size != query_size:
            raise ValueError(f"Attention: score {score!r} needs query_size == key_size, got {query_size}, {key_size}")
        self.query_size, self.key_size, self.score = query_size, key_size, score
        if score == "general":
            self.weight = Parameter.empty((query_size, key_size), dtype=dtype)
            bound = 1 / math.sqrt(key_size)  # like a Linear layer from key_size inputs
            init.uniform_(self.weight, -bound, bound)
        elif score == "additive":
            hidden_size = query_size if hidden_size is None else hidden_size
            self.query_layer = Linear(query_size, hidden_size, bias=False, dtype=dtype)
            self.key_layer = Linear(key_size, hidden_size, bias=False, dtype=dtype)
            self.v = Linear(hidden_size, 1, bias=False, dtype=dtype)

    def forward(self, query, keys, values=None, mask=None):
        values = keys if values is None else values
        if self.score in ("dot", "scaled_dot"):
            return attention(query, keys, values, mask, self.score)
        if self.score == "general":  # qᵀ W k = (q W) · k: a dot product with the transformed query
            return attention(query @ self.weight, keys, values, mask, "dot")
        return additive_attention(
            query, keys, values, self.query_layer.weight, self.key_layer.weight, self.v.weight.reshape(-1), mask
        )

    def extra_repr(self):
        return f"query_size={self.query_size}, key_size={self.key_size}, score={self.score!r}"
