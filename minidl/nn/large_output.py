"""Output layers for very many classes: hierarchical softmax, sampled softmax, negative sampling and NCE.

A full softmax over V classes costs a V-row matrix product per example, forward and backward:
"text vocabularies start at 10000s of words and go up to millions". The lecture: "for up to a
few 10000s of classes, we use a full softmax. For large vocabularies, we use either (1)
hierarchical softmax or (2) noise-contrastive estimation". Each layer here trains with its cheap
loss, `forward(h, targets)`, and still answers the full question, `log_prob(h)`: log P(class | h)
for every class (for evaluation, perplexity, nearest classes). For a hidden vector h (N, d):

- HierarchicalSoftmax (Morin & Bengio 2005; Mikolov et al. 2013): the classes are the leaves of a
  binary tree, Huffman-built from their frequencies so frequent classes sit near the root. P(class)
  is the product of left/right decisions σ(±h·w_node) along its path: O(log V) per example, and an
  exactly normalized distribution (the probabilities of all leaves add up to 1).
- SampledSoftmax (Bengio & Senécal 2008; Jean et al. 2015): the softmax's normalizer Z = Σ_j e^{s_j}
  estimated from k classes drawn from a proposal Q, Ẑ = e^{s_t} + Σ_{samples j ≠ t} e^{s_j}/(k·Q(j)).
  E[Ẑ] = Z exactly (importance sampling), so exp(loss) is an unbiased estimate of exp(full loss)
  = 1/P(target); the loss itself is slightly optimistic (Jensen), by O(1/k).
- NegativeSampling (Mikolov et al. 2013): tell the target apart from k noise classes with logistic
  losses, -log σ(s_t) - Σ_j log σ(-s_j). Not an estimate of the softmax loss: it learns s ≈ PMI - log k
  (Levy & Goldberg 2014), good embeddings but no probabilities. nce=True subtracts log(k·Q) from
  every score: noise-contrastive estimation (Gutmann & Hyvärinen 2010, Mnih & Teh 2012), whose
  optimum is the true log-probability when the model normalizes itself.
"""

import heapq
import math

import numpy as np

from minidl import ops
from minidl import random as _random
from minidl.creation import tensor
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter, check_sizes
from minidl.ops._util import host_values
from minidl.tensor import Tensor


# ---------------------------------------------------------------------------
# The Huffman tree
# ---------------------------------------------------------------------------
class HuffmanTree:
    """A binary tree over classes 0..V-1 built from their counts (the Huffman code of their frequencies).

    The two least frequent subtrees are merged first, so a class with frequency f ends up about
    log2(1/f) decisions from the root, and the average path is as short as a code can be.
    Internal nodes are numbered 0..V-2 (the root is V-2). For every class:
        nodes[c, :depth[c]]  the internal nodes from the root down to the leaf
        bits[c, :depth[c]]   at each, 1 if the path goes to the node's second child, 0 if to its first
    (padded to the deepest path with node 0, bit 0, and mask[c] False there).
    """

    def __init__(self, counts):
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 1 or len(counts) < 2 or np.any(counts < 0):
            raise ValueError(f"HuffmanTree: need non-negative counts for at least 2 classes, got shape {counts.shape}")
        size = len(counts)
        # (count, tie-breaker, node): classes are nodes 0..V-1, merges are V, V+1, ... (in creation order)
        heap = [(float(c), i, i) for i, c in enumerate(counts)]
        heapq.heapify(heap)
        children = {}
        next_node = size
        while len(heap) > 1:
            count_a, _, a = heapq.heappop(heap)
            count_b, _, b = heapq.heappop(heap)
            children[next_node] = (a, b)
            heapq.heappush(heap, (count_a + count_b, next_node, next_node))
            next_node += 1
        paths = {}
        stack = [(next_node - 1, [], [])]  # from the root: (node, internal nodes passed, bits taken)
        while stack:
            node, passed, bits = stack.pop()
            if node < size:
                paths[node] = (passed, bits)
                continue
            for bit, child in enumerate(children[node]):
                stack.append((child, passed + [node - size], bits + [bit]))
        depth = np.array([len(paths[c][0]) for c in range(size)])
        self.num_classes = size
        self.depth = depth
        self.nodes = np.zeros((size, depth.max()), dtype=np.int64)
        self.bits = np.zeros((size, depth.max()), dtype=np.float64)
        self.mask = np.arange(depth.max())[None, :] < depth[:, None]
        for c in range(size):
            self.nodes[c, : depth[c]] = paths[c][0]
            self.bits[c, : depth[c]] = paths[c][1]

    def average_depth(self, counts):
        """Decisions per example, weighted by the counts (what a training step costs, in tree nodes)."""
        counts = np.asarray(counts, dtype=np.float64)
        return float((counts * self.depth).sum() / counts.sum())


def _proposal(num_classes, counts, power, op):
    """The sampling distribution Q: counts^power normalized (word2vec's unigram^0.75), or uniform."""
    if counts is None:
        return np.full(num_classes, 1 / num_classes)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (num_classes,) or np.any(counts < 0) or counts.sum() <= 0:
        raise ValueError(f"{op}: counts must be {num_classes} non-negative numbers, not all 0")
    weights = counts**power
    return weights / weights.sum()


def _targets(op, h, targets, num_classes, in_features):
    if h.ndim != 2 or h.shape[1] != in_features:
        raise ValueError(f"{op}: expected input (N, {in_features}), got shape {h.shape}")
    # The targets pick rows of host tables (the tree's paths) and are checked: on the host.
    t = host_values(op, targets) if isinstance(targets, Tensor) else np.asarray(targets)
    if t.shape != (h.shape[0],) or t.dtype.kind not in "iu":
        raise ValueError(f"{op}: expected integer targets of shape ({h.shape[0]},), got {t.shape} {t.dtype}")
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise IndexError(f"{op}: targets must be in [0, {num_classes}), got {t.min()}..{t.max()}")
    return t.astype(np.int64)


def _reduce(losses, reduction, op):
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class _OutputLayer(Module):
    """What the layers share: one output vector (and bias) per class or tree node, and the full path."""

    def __init__(self, in_features, rows, bias, dtype):
        super().__init__()
        check_sizes(type(self).__name__, in_features=in_features, rows=rows)
        self.in_features = in_features
        self.weight = Parameter.empty((rows, in_features), dtype=dtype)
        self.bias = Parameter(np.zeros(rows, dtype=dtype)) if bias else None
        bound = 1 / math.sqrt(in_features)
        init.uniform_(self.weight, -bound, bound)

    def _scores(self, h, rows):
        """h · weight[rows] + bias[rows] for rows (N, k) picked per example -> (N, k)."""
        w = self.weight[rows]  # (N, k, d): only these rows get a gradient
        scores = (w @ h.unsqueeze(2)).squeeze(2)
        return scores if self.bias is None else scores + self.bias[rows]

    def full_scores(self, h):
        """h · weightᵀ + bias for every row: what a full softmax would compute."""
        return ops.linear(h, self.weight, self.bias)

    def predict(self, h):
        """The most probable class of each example (int64 array (N,))."""
        return host_values("predict", self.log_prob(h)).argmax(axis=1)


class HierarchicalSoftmax(_OutputLayer):
    """P(class | h) = Π over the class's Huffman path of σ(±(h·w_node + b_node)) (see the module docstring).

    counts: one frequency per class (the tree puts frequent classes near the root). weight holds one
    vector per internal node, (V-1, in_features). forward(h, targets) -> the mean (or summed, or
    per-example) negative log-likelihood, log(V)-ish work per example; log_prob(h) -> (N, V).
    """

    def __init__(self, in_features, counts, bias=True, dtype=np.float32):
        tree = HuffmanTree(counts)
        super().__init__(in_features, tree.num_classes - 1, bias, dtype)
        self.tree = tree
        self.num_classes = tree.num_classes

    def _path_losses(self, scores, bits, mask):
        # -log σ(z) when the path turns to the second child (bit 1), -log σ(-z) when to the first:
        # a binary cross-entropy per decision (the stable op on scores); padding decisions count 0.
        labels = tensor(bits, dtype=scores.dtype, device=scores.device)
        losses = ops.binary_cross_entropy_with_logits(scores, labels, reduction="none")
        return (losses * tensor(mask, dtype=scores.dtype, device=scores.device)).sum(axis=-1)

    def forward(self, h, targets, reduction="mean"):
        t = _targets("HierarchicalSoftmax", h, targets, self.num_classes, self.in_features)
        tree = self.tree
        scores = self._scores(h, tree.nodes[t])  # (N, depth): one decision per node on the path
        return _reduce(self._path_losses(scores, tree.bits[t], tree.mask[t]), reduction, "HierarchicalSoftmax")

    def log_prob(self, h):
        """log P(class | h) for every class, (N, V): every node scored once, then each path summed."""
        tree = self.tree
        node_scores = self.full_scores(h)  # (N, V-1)
        scores = node_scores[:, tree.nodes]  # (N, V, depth)
        bits = np.broadcast_to(tree.bits, scores.shape)
        mask = np.broadcast_to(tree.mask, scores.shape)
        return -self._path_losses(scores, bits, mask)

    def extra_repr(self):
        return f"in_features={self.in_features}, num_classes={self.num_classes}, depth={self.tree.depth.max()}"


class SampledSoftmax(_OutputLayer):
    """Softmax cross-entropy with the normalizer estimated from num_samples classes drawn from Q.

    Q ∝ counts^power (uniform without counts). One set of samples per call, shared by the batch
    (Jean et al.): scores are computed for the targets and the samples only. The loss per example,

        -s_t + log(e^{s_t} + Σ_{j ∈ samples, j ≠ t} e^{s_j - log(k·Q(j))}) = -s_t + log Ẑ,

    is the cross-entropy of those 1 + k corrected scores; E[Ẑ] = Z (see the module docstring).
    log_prob(h) is the full softmax of the same scores.
    """

    def __init__(self, in_features, num_classes, num_samples, counts=None, power=1.0, bias=True, dtype=np.float32):
        check_sizes("SampledSoftmax", num_classes=num_classes, num_samples=num_samples)
        super().__init__(in_features, num_classes, bias, dtype)
        self.num_classes, self.num_samples = num_classes, num_samples
        self.proposal = _proposal(num_classes, counts, power, "SampledSoftmax")

    def sample(self):
        """num_samples classes drawn with replacement from the proposal Q."""
        return _random.generator().choice(self.num_classes, size=self.num_samples, p=self.proposal)

    def forward(self, h, targets, reduction="mean", samples=None):
        t = _targets("SampledSoftmax", h, targets, self.num_classes, self.in_features)
        samples = self.sample() if samples is None else np.asarray(samples, dtype=np.int64)
        true_scores = self._scores(h, t[:, None])  # (N, 1)
        sample_scores = ops.linear(h, self.weight[samples], None if self.bias is None else self.bias[samples])
        correction = np.log(len(samples) * self.proposal[samples]).astype(h.dtype)
        sample_scores = sample_scores - tensor(correction, device=h.device)
        hits = samples[None, :] == t[:, None]  # a sample that is the target is already counted as the target
        sample_scores = ops.where(tensor(hits, device=h.device), float(np.finfo(h.dtype).min), sample_scores)
        scores = ops.concat([true_scores, sample_scores], axis=1)
        first = tensor(np.zeros(len(t), dtype=np.int64), device=h.device)  # the true class is column 0
        return ops.cross_entropy(scores, first, reduction=reduction)

    def log_prob(self, h):
        return self.full_scores(h).log_softmax(axis=1)

    def extra_repr(self):
        return f"in_features={self.in_features}, num_classes={self.num_classes}, num_samples={self.num_samples}"


class NegativeSampling(_OutputLayer):
    """Logistic loss of the target against num_negatives noise classes drawn from Q ∝ counts^power.

    loss = -log σ(s_t) - Σ_j log σ(-s_j), with fresh noise for every example (word2vec's SGNS;
    power=0.75 and no bias are word2vec's choices). nce=True scores s - log(k·Q(class)) instead:
    noise-contrastive estimation. log_prob(h) is the full softmax of the raw scores.
    """

    def __init__(self, in_features, num_classes, num_negatives=5, counts=None, power=0.75, bias=False, nce=False,
                 dtype=np.float32):  # fmt: skip
        check_sizes("NegativeSampling", num_classes=num_classes, num_negatives=num_negatives)
        super().__init__(in_features, num_classes, bias, dtype)
        self.num_classes, self.num_negatives, self.nce = num_classes, num_negatives, nce
        self.proposal = _proposal(num_classes, counts, power, "NegativeSampling")

    def sample(self, n):
        """(n, num_negatives) noise classes drawn with replacement from Q."""
        return _random.generator().choice(self.num_classes, size=(n, self.num_negatives), p=self.proposal)

    def forward(self, h, targets, reduction="mean", negatives=None):
        t = _targets("NegativeSampling", h, targets, self.num_classes, self.in_features)
        negatives = self.sample(len(t)) if negatives is None else np.asarray(negatives, dtype=np.int64)
        rows = np.concatenate([t[:, None], negatives], axis=1)  # (N, 1 + k): the target, then the noise
        scores = self._scores(h, rows)
        if self.nce:
            scores = scores - tensor(np.log(self.num_negatives * self.proposal[rows]), dtype=h.dtype, device=h.device)
        labels = np.zeros(rows.shape, dtype=h.dtype)
        labels[:, 0] = 1
        labels = tensor(labels, device=h.device)
        losses = ops.binary_cross_entropy_with_logits(scores, labels, reduction="none").sum(axis=1)
        return _reduce(losses, reduction, "NegativeSampling")

    def log_prob(self, h):
        return self.full_scores(h).log_softmax(axis=1)

    def extra_repr(self):
        text = f"in_features={self.in_features}, num_classes={self.num_classes}, num_negatives={self.num_negatives}"
        return text + (", nce=True" if self.nce else "")
