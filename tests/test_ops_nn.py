"""Neural-network ops: conv2d (stride, padding, with and without bias), max/avg pooling,
embedding (repeated indices), dropout (seeded inside the function under test), and the
losses cross_entropy (ignore_index, reductions), nll_loss, mse_loss and
binary_cross_entropy_with_logits. Forward values and gradients against torch, gradchecks,
error messages.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from core_helpers import check_grad, check_gradgrad, distinct, leaf
from tolerances import TRANSCENDENTAL_ULPS, assert_within, chain_atol, eps

import minidl

F64 = eps(np.float64)


def _t(tensor):
    return torch.tensor(tensor.array, requires_grad=tensor.requires_grad)


# ---------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------
CONV_CASES = [
    # x shape, weight shape, stride, padding, bias
    ((1, 1, 4, 4), (1, 1, 3, 3), 1, 0, False),
    ((2, 2, 5, 5), (3, 2, 3, 3), 2, 1, True),
    ((1, 3, 4, 5), (2, 3, 2, 2), 1, 1, True),
    ((2, 1, 5, 4), (2, 1, 1, 1), 1, 0, True),  # 1x1 convolution
    ((1, 2, 6, 6), (1, 2, 3, 3), 3, 0, False),  # stride = kernel: no overlap
    ((1, 2, 5, 5), (2, 2, 2, 2), (2, 2), (1, 1), False),  # tuple arguments
    ((2, 2, 7, 6), (3, 2, 3, 1), (2, 1), (1, 0), True),  # rectangular kernel, stride and padding
]


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "stride", "padding", "dilation", "groups"),
    [
        ((1, 2, 7, 7), (3, 2, 3, 3), 1, 2, 2, 1),  # dilated
        ((2, 4, 6, 5), (4, 1, 3, 3), 1, 1, 1, 4),  # depthwise
        ((1, 4, 6, 6), (6, 2, 2, 3), (2, 1), (0, 1), (1, 2), 2),  # everything at once
    ],
)
def test_dilated_and_grouped_conv2d_match_torch_and_gradcheck(x_shape, w_shape, stride, padding, dilation, groups):
    x, w, b = leaf(x_shape, seed=1), leaf(w_shape, seed=2), leaf((w_shape[0],), seed=3)
    out = minidl.conv2d(x, w, b, stride, padding, dilation, groups)
    xt, wt, bt = _t(x), _t(w), _t(b)
    expected = F.conv2d(xt, wt, bt, stride, padding, dilation, groups)
    np.testing.assert_allclose(out.array, expected.detach().numpy(), rtol=1e-12, atol=1e-14)
    check_grad(lambda x, w, b: minidl.conv2d(x, w, b, stride, padding, dilation, groups), [x, w, b])


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "bias"), CONV_CASES)
def test_conv2d_forward_and_gradients_match_torch(x_shape, w_shape, stride, padding, bias):
    x, w = leaf(x_shape, seed=1), leaf(w_shape, seed=2)
    b = leaf((w_shape[0],), seed=3) if bias else None
    out = minidl.conv2d(x, w, b, stride=stride, padding=padding)
    xt, wt, bt = _t(x), _t(w), None if b is None else _t(b)
    expected = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
    # Our im2col GEMM and torch's convolution sum each output's C·kh·kw products (+ bias) in
    # different orders: the dot-product bound, relative to the same convolution of |x|, |w|, |b|.
    # Gradients: dW and db sum over N·OH·OW positions, dx over at most C_out·kh·kw; their
    # magnitudes are the same backward pass with |x|, |w|, |b| and |upstream|.
    kh, kw = w_shape[2:]
    abs_x, abs_w = (torch.tensor(np.abs(t.array), requires_grad=True) for t in (x, w))
    abs_b = None if b is None else torch.tensor(np.abs(b.array), requires_grad=True)
    abs_out = F.conv2d(abs_x, abs_w, abs_b, stride=stride, padding=padding)
    k = w_shape[1] * kh * kw + bias
    assert_within(out.array, expected.detach().numpy(), 2 * k * F64 * abs_out.detach().numpy(), "conv2d")

    weights = np.random.default_rng(4).standard_normal(out.shape)
    (out * minidl.tensor(weights)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    (abs_out * torch.tensor(np.abs(weights))).sum().backward()
    positions = out.shape[0] * out.shape[2] * out.shape[3]
    terms = {"x": w_shape[0] * kh * kw, "w": positions, "b": positions}
    pairs = [("x", x, xt, abs_x), ("w", w, wt, abs_w)] + ([("b", b, bt, abs_b)] if bias else [])
    for name, ours, theirs, scale in pairs:
        atol = 2 * terms[name] * F64 * scale.grad.numpy()
        assert_within(ours.grad.array, theirs.grad.numpy(), atol, f"conv2d gradient of {name}")


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "bias"), CONV_CASES[:3])
def test_conv2d_gradcheck(x_shape, w_shape, stride, padding, bias):
    inputs = [leaf(x_shape, seed=1), leaf(w_shape, seed=2)] + ([leaf((w_shape[0],), seed=3)] if bias else [])
    check_grad(lambda x, w, *b: minidl.conv2d(x, w, *b, stride=stride, padding=padding), inputs)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs", "error", "message"),
    [
        ((1, 2, 4, 4), (3, 3, 2, 2), {}, ValueError, r"conv2d: input has 2 channels but weight \(3, 3, 2, 2\) expects"),
        ((2, 4, 4), (3, 2, 2, 2), {}, ValueError, r"conv2d: expected input \(N, C, H, W\) .* got \(2, 4, 4\)"),
        ((1, 2, 2, 2), (1, 2, 3, 3), {}, ValueError, r"conv2d: a 3x3 window with padding 0 does not fit in a 2x2"),
        ((1, 2, 4, 4), (1, 2, 2, 2), {"stride": 0}, ValueError, r"conv2d: stride and dilation must be >= 1"),
        ((1, 2, 4, 4), (1, 2, 2, 2), {"stride": (1, 2, 3)}, TypeError, r"conv2d: stride must be an int or a pair"),
        ((1, 4, 4, 4), (2, 2, 2, 2), {"groups": 3}, ValueError, r"conv2d: groups=3 must divide both the 4 input"),
        ((1, 2, 4, 4), (3, 2, 2, 2), {"bias": (2,)}, ValueError, r"conv2d: bias shape \(2,\) does not match the 3"),
    ],
)
def test_conv2d_errors_name_the_op_and_shapes(x_shape, w_shape, kwargs, error, message):
    kwargs = dict(kwargs)
    bias = minidl.ones(*kwargs.pop("bias")) if "bias" in kwargs else None
    with pytest.raises(error, match=message):
        minidl.conv2d(minidl.ones(*x_shape), minidl.ones(*w_shape), bias, **kwargs)


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------
POOL_CASES = [((1, 2, 4, 4), 2, None, 0), ((2, 1, 5, 5), 3, 2, 1), ((1, 1, 5, 4), 2, 1, 1), ((1, 2, 3, 3), 3, 1, 0)]


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_matches_torch_and_gradchecks(kind, shape, kernel, stride, padding):
    x = distinct(shape, seed=2)  # no ties inside a window: the max is unique
    ours = getattr(minidl, f"{kind}_pool2d")
    theirs = getattr(F, f"{kind}_pool2d")
    out = ours(x, kernel, stride, padding)
    xt = _t(x)
    expected = theirs(xt, kernel, stride, padding)  # avg: zero padding counts, as torch's default
    # max selects (exact on every machine); avg sums kernel² values and divides (a different
    # order in torch): kernel² + 1 roundings each, relative to the window's mean of |x|.
    abs_x = torch.tensor(np.abs(x.array), requires_grad=True)
    abs_out = theirs(abs_x, kernel, stride, padding)
    rounding = 2 * (kernel * kernel + 1) * F64 if kind == "avg" else 0.0
    assert_within(out.array, expected.detach().numpy(), rounding * abs_out.detach().numpy(), f"{kind}_pool2d")
    weights = np.random.default_rng(1).standard_normal(out.shape)
    (out * minidl.tensor(weights)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    # dx adds up the gradients of the (at most kernel²) windows that use each input, in any order.
    (abs_out * torch.tensor(np.abs(weights))).sum().backward()
    atol = 2 * (kernel * kernel + 1) * F64 * abs_x.grad.numpy()
    assert_within(x.grad.array, xt.grad.numpy(), atol, f"{kind}_pool2d gradient")
    check_grad(lambda t: ours(t, kernel, stride, padding), [x])


def test_max_pool_sends_each_window_gradient_to_its_winner_only():
    x = minidl.tensor(np.array([[[[1.0, 5.0], [3.0, 2.0]]]]), requires_grad=True)
    minidl.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.array, [[[[0.0, 1.0], [0.0, 0.0]]]])


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_pooling_errors_name_the_op(name):
    op = getattr(minidl, name)
    with pytest.raises(ValueError, match=rf"{name}: expected input \(N, C, H, W\), got shape \(4, 4\)"):
        op(minidl.ones(4, 4), 2)
    with pytest.raises(
        ValueError, match=rf"{name}: need kernel_size >= 1, .* got kernel_size=2, stride=\(2, 2\), padding=\(2, 2\)"
    ):
        op(minidl.ones(1, 1, 4, 4), 2, padding=2)
    with pytest.raises(ValueError, match=rf"{name}: a 5x5 window with padding 0 does not fit in a 4x4 input"):
        op(minidl.ones(1, 1, 4, 4), 5)


# ---------------------------------------------------------------------------
# embedding
# ---------------------------------------------------------------------------
def test_embedding_looks_up_rows_and_scatter_adds_repeated_indices_like_torch():
    weight = leaf((5, 3), seed=1)
    indices = np.array([[1, 4, 1], [1, 0, 4]])  # row 1 three times, row 4 twice, rows 2 and 3 never
    out = minidl.embedding(minidl.tensor(indices), weight)
    np.testing.assert_array_equal(out.array, weight.array[indices])
    grad_out = np.random.default_rng(2).standard_normal(out.shape)
    out.backward(minidl.tensor(grad_out))

    wt = _t(weight)
    F.embedding(torch.tensor(indices), wt).backward(torch.tensor(grad_out))
    # A row used 3 times gets a sum of 3 gradients, in whatever order each library adds them.
    magnitudes = np.zeros((5, 3))
    np.add.at(magnitudes, indices, np.abs(grad_out))
    assert_within(weight.grad.array, wt.grad.numpy(), 2 * 3 * F64 * magnitudes, "embedding gradient")
    np.testing.assert_array_equal(weight.grad.array[[2, 3]], 0.0)
    row_1 = grad_out[0, 0] + grad_out[0, 2] + grad_out[1, 0]
    assert_within(weight.grad.array[1], row_1, 2 * 3 * F64 * magnitudes[1], "embedding row 1")


def test_embedding_gradcheck():
    indices = np.array([3, 0, 3, 3])
    check_grad(lambda w: minidl.embedding(indices, w), [leaf((4, 2), seed=3)])


@pytest.mark.parametrize(
    ("indices", "weight_shape", "error", "message"),
    [
        (np.array([0, 5]), (5, 2), IndexError, "embedding: index 5 is out of range for 5 embeddings"),
        (np.array([-1, 0]), (5, 2), IndexError, "embedding: index -1 is out of range for 5 embeddings"),
        (np.array([0.0, 1.0]), (5, 2), TypeError, "embedding: indices must be integers, got dtype float64"),
        (np.array([0, 1]), (5,), ValueError, r"embedding: weight must be \(num_embeddings, dim\), got shape \(5,\)"),
    ],
)
def test_embedding_errors(indices, weight_shape, error, message):
    with pytest.raises(error, match=message):
        minidl.embedding(indices, minidl.ones(*weight_shape))


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------
def _seeded_dropout(p):
    def apply(x):
        minidl.manual_seed(1234)  # the same mask on every call, so finite differences are meaningful
        return minidl.dropout(x, p)

    return apply


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_gradcheck_with_a_fixed_seed(p):
    check_grad(_seeded_dropout(p), [leaf((3, 4), seed=1)])


def test_dropout_zeroes_about_p_and_scales_survivors_by_one_over_one_minus_p():
    minidl.manual_seed(0)
    x = minidl.ones(100_000, dtype=np.float64, requires_grad=True)
    out = minidl.dropout(x, 0.3)
    kept = out.array != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01  # 7 standard deviations of a 100k-sample mean (0.0014)
    np.testing.assert_allclose(out.array[kept], 1 / 0.7, rtol=2 * F64)  # 1 * (1/0.7) or 1 / 0.7: one rounding each
    out.sum().backward()
    np.testing.assert_allclose(x.grad.array, out.array)  # the gradient is the same mask
    assert out.dtype == np.float64


def test_dropout_same_seed_same_mask():
    x = minidl.ones(50)
    assert np.array_equal(_seeded_dropout(0.5)(x).array, _seeded_dropout(0.5)(x).array)


def test_dropout_is_the_identity_in_eval_mode_and_for_p_zero():
    x = leaf((2, 3))
    assert minidl.dropout(x, 0.5, training=False) is x
    assert minidl.dropout(x, 0.0) is x


def test_dropout_with_p_one_zeroes_everything_and_its_gradient():
    x = leaf((2, 3))
    out = minidl.dropout(x, 1.0)
    np.testing.assert_array_equal(out.array, 0.0)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.array, 0.0)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_p_outside_the_unit_interval(p):
    with pytest.raises(ValueError, match=rf"dropout: p must be in \[0, 1\], got {p}"):
        minidl.dropout(minidl.ones(2), p)


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------
TARGETS = np.array([2, 0, 3, 1, 2])
IGNORED = np.array([2, -100, 3, -100, 0])
# A row's cross-entropy is logsumexp(z) - z[target]: a max, C exps and their sum, a log, two
# subtractions, then a mean or sum over at most 5 rows. Budget in eps (tolerances.chain_atol):
# C + 2 transcendentals + 3 basic ops + 5; relative to the terms, |logsumexp| + |z[t]| <= 2·max|z| + log C.
CE_BUDGET = 4 + 2 * TRANSCENDENTAL_ULPS + 3 + 5


def _ce_scale(scores, reduction, classes=4):
    """Magnitude of the terms of a cross-entropy loss (per row; times the row count for 'sum')."""
    row = 2 * np.abs(scores).max() + np.log(classes)
    return row * (len(scores) if reduction == "sum" else 1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("targets", [TARGETS, IGNORED], ids=["all-rows", "ignore_index"])
@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_classification_losses_match_torch(loss, targets, reduction):
    scores = leaf((5, 4), -3, 3, seed=7)
    if loss == "nll_loss":  # nll takes log-probabilities
        scores = minidl.tensor(np.log(np.random.default_rng(3).dirichlet(np.ones(4), size=5)), requires_grad=True)
    out = getattr(minidl, loss)(scores, targets, reduction=reduction)
    st = _t(scores)
    expected = getattr(F, loss)(st, torch.tensor(targets), reduction=reduction, ignore_index=-100)
    atol = chain_atol(_ce_scale(scores.array, reduction), budget=CE_BUDGET)
    assert_within(out.array, expected.detach().numpy(), atol, f"{loss} vs torch")
    weights = np.random.default_rng(1).standard_normal(out.shape)
    (out * minidl.tensor(weights)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    # d/dz = weight · (softmax(z) - onehot): terms of size <= 2·|weight|, softmax off by the same budget.
    atol = chain_atol(2 * np.abs(weights).max(), budget=CE_BUDGET)
    assert_within(scores.grad.array, st.grad.numpy(), atol, f"{loss} gradient vs torch")
    check_grad(lambda s: getattr(minidl, loss)(s, targets, reduction=reduction), [scores])


def test_cross_entropy_with_a_custom_ignore_index_and_tensor_targets():
    logits = leaf((3, 4), seed=2)
    targets = minidl.tensor([1, 3, 3])
    out = minidl.cross_entropy(logits, targets, ignore_index=3)
    expected = F.cross_entropy(torch.tensor(logits.array), torch.tensor(targets.array), ignore_index=3)
    assert_within(out.array, expected.numpy(), chain_atol(_ce_scale(logits.array, "mean"), budget=CE_BUDGET))


def test_cross_entropy_equals_log_softmax_then_nll():
    logits = leaf((4, 3), -2, 2, seed=5)
    targets = np.array([0, 2, 2, 1])
    fused = minidl.cross_entropy(logits, targets)
    composed = minidl.nll_loss(logits.log_softmax(-1), targets)
    # Same math, different code paths (fused kernel vs log_softmax + pick + mean): the CE budget.
    assert_within(fused.array, composed.array, chain_atol(_ce_scale(logits.array, "mean", 3), budget=CE_BUDGET))


def test_cross_entropy_is_stable_for_huge_logits_and_keeps_float32():
    logits = minidl.tensor(np.array([[1000.0, 0.0], [0.0, -1000.0]], dtype=np.float32), requires_grad=True)
    out = minidl.cross_entropy(logits, np.array([1, 1]))
    assert out.dtype == np.float32 and np.isfinite(out.item())
    # 1000 is exact in float32 and exp(-1000) underflows to 0: only a few roundings of terms ~1000.
    np.testing.assert_allclose(out.item(), 1000.0 / 2 + 1000.0 / 2, rtol=8 * eps(np.float32))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch_and_gradchecks(reduction):
    prediction, target = leaf((3, 4), seed=1), leaf((3, 4), seed=2)
    out = minidl.mse_loss(prediction, target, reduction=reduction)
    expected = F.mse_loss(torch.tensor(prediction.array), torch.tensor(target.array), reduction=reduction)
    # A sum of 12 squares: no cancellation, so relative: 2·(12 + 3 ops)·eps = 6.7e-15.
    np.testing.assert_allclose(out.array, expected.numpy(), rtol=2 * (12 + 3) * F64)
    check_grad(lambda p, t: minidl.mse_loss(p, t, reduction=reduction), [prediction, target])


def test_mse_loss_accepts_an_array_target():
    prediction = leaf((2, 2), seed=1)
    target = np.ones((2, 2))
    np.testing.assert_allclose(minidl.mse_loss(prediction, target).item(), np.mean((prediction.array - 1) ** 2))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_logits_matches_torch_and_gradchecks(reduction):
    logits = leaf((3, 4), -4, 4, seed=3)
    targets = leaf((3, 4), 0, 1, seed=4)
    out = minidl.binary_cross_entropy_with_logits(logits, targets, reduction=reduction)
    lt, tt = _t(logits), _t(targets)
    expected = F.binary_cross_entropy_with_logits(lt, tt, reduction=reduction)
    # max(z, 0) - z·t + log1p(exp(-|z|)): 2 transcendentals, 4 basic ops, then a sum of up to 12
    # elements; each element's terms are at most 2·|z| + log 2 in size.
    scale = (2 * np.abs(logits.array) + np.log(2)).max() * (12 if reduction == "sum" else 1)
    atol = chain_atol(scale, budget=2 * TRANSCENDENTAL_ULPS + 4 + 12)
    assert_within(out.array, expected.detach().numpy(), atol, "binary_cross_entropy_with_logits vs torch")
    check_grad(lambda z, t: minidl.binary_cross_entropy_with_logits(z, t, reduction=reduction), [logits, targets])


def test_binary_cross_entropy_with_logits_gradient_at_zero_logits_is_sigmoid_minus_target():
    # Zero logits are common (a zero-initialized last layer); the gradient there is 1/2 - t.
    logits = minidl.tensor(np.zeros(4), requires_grad=True)
    targets = np.array([0.0, 1.0, 0.25, 0.5])
    minidl.binary_cross_entropy_with_logits(logits, targets, reduction="sum").backward()
    lt = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    F.binary_cross_entropy_with_logits(lt, torch.tensor(targets), reduction="sum").backward()
    np.testing.assert_array_equal(logits.grad.array, lt.grad.numpy())  # sigmoid(0) = 1/2 and 1/2 - t: exact
    np.testing.assert_array_equal(logits.grad.array, 0.5 - targets)


def test_binary_cross_entropy_with_logits_is_stable_for_huge_logits():
    logits = minidl.tensor(np.array([-1000.0, 1000.0]), requires_grad=True)
    with np.errstate(over="raise"):
        out = minidl.binary_cross_entropy_with_logits(logits, np.array([1.0, 0.0]), reduction="none")
        out.sum().backward()
    np.testing.assert_allclose(out.array, [1000.0, 1000.0])
    np.testing.assert_allclose(logits.grad.array, [-1.0, 1.0])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: minidl.cross_entropy(minidl.ones(2, 3, 4), np.array([0, 1])),
            ValueError,
            r"cross_entropy: expected scores of shape \(N, C\), got \(2, 3, 4\)",
        ),
        (
            lambda: minidl.cross_entropy(minidl.ones(2, 3), np.array([0.0, 1.0])),
            TypeError,
            "cross_entropy: targets must be integer class indices, got dtype float64",
        ),
        (
            lambda: minidl.cross_entropy(minidl.ones(2, 3), np.array([0, 1, 2])),
            ValueError,
            r"cross_entropy: scores \(2, 3\) need targets of shape \(2,\), got \(3,\)",
        ),
        (
            lambda: minidl.cross_entropy(minidl.ones(2, 3), np.array([0, 3])),
            IndexError,
            "cross_entropy: target 3 of row 1 is out of range for 3 classes",
        ),
        (
            lambda: minidl.cross_entropy(minidl.ones(2, 3), np.array([0, 1]), reduction="avg"),
            ValueError,
            "cross_entropy: reduction must be 'mean', 'sum' or 'none', got 'avg'",
        ),
        (
            lambda: minidl.nll_loss(minidl.ones(2, 3), np.array([0, -2])),
            IndexError,
            "nll_loss: target -2 of row 1 is out of range for 3 classes",
        ),
        (
            lambda: minidl.mse_loss(minidl.ones(2, 3), minidl.ones(3)),
            ValueError,
            r"mse_loss: prediction shape \(2, 3\) and target shape \(3,\) differ",
        ),
        (
            lambda: minidl.binary_cross_entropy_with_logits(minidl.ones(2), minidl.ones(2, 1)),
            ValueError,
            r"binary_cross_entropy_with_logits: logits \(2,\) and targets \(2, 1\) differ",
        ),
    ],
    ids=["ce-3d", "ce-float-targets", "ce-target-shape", "ce-target-range", "ce-reduction", "nll-range", "mse", "bce"],
)
def test_loss_errors_name_the_op_and_shapes(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------------------
# float32 end to end
# ---------------------------------------------------------------------------
def _small_cnn(dtype):
    """conv -> relu -> max_pool -> flatten -> linear -> cross_entropy, with every activation's grad kept."""
    g = np.random.default_rng(0)
    x = minidl.tensor(g.standard_normal((2, 2, 6, 6)).astype(dtype))
    w = minidl.tensor((g.standard_normal((3, 2, 3, 3)) * 0.5).astype(dtype), requires_grad=True)
    b = minidl.tensor(g.standard_normal(3).astype(dtype), requires_grad=True)
    fc = minidl.tensor((g.standard_normal((4, 12)) * 0.5).astype(dtype), requires_grad=True)
    activations = []
    h = minidl.conv2d(x, w, b, padding=1)
    activations.append(h)
    h = minidl.max_pool2d(minidl.relu(h), 3)
    activations.append(h)
    logits = minidl.linear(h.flatten(1), fc)
    activations.append(logits)
    for a in activations:
        a.retain_grad()
    loss = minidl.cross_entropy(logits, np.array([1, 3]))
    loss.backward()
    return loss, activations, (w, b, fc)


def test_float32_stays_float32_forward_and_backward_and_agrees_with_float64():
    loss32, acts32, params32 = _small_cnn(np.float32)
    loss64, _, params64 = _small_cnn(np.float64)
    assert loss32.dtype == np.float32
    for a in acts32:
        assert a.dtype == np.float32 and a.grad.dtype == np.float32  # no silent promotion on the way
    # float32 against a float64 run (results=1). Forward budget in eps: conv (2·3·3 + 1 bias),
    # linear (12), cross-entropy (CE_BUDGET); gradients add the backward reductions, the longest
    # conv's dW/db over 2·6·6 = 72 positions. max-pool and relu select (no rounding; the data
    # keeps away from relu's kink).
    forward = 19 + 12 + CE_BUDGET
    np.testing.assert_allclose(loss32.item(), loss64.item(), rtol=chain_atol(1.0, budget=forward, dtype=np.float32))
    for p32, p64 in zip(params32, params64):
        assert p32.grad.dtype == np.float32
        atol = chain_atol(p64.grad.array, budget=forward + 4 + 72, fan_in=72, dtype=np.float32, results=1)
        assert_within(p32.grad.array, p64.grad.array, atol, "float32 gradient vs float64")


# ---------------------------------------------------------------------------
# Binary cross-entropy on probabilities, and one_hot
# ---------------------------------------------------------------------------
def test_binary_cross_entropy_gradchecks_in_both_arguments_first_and_second_order():
    p = leaf((3, 4), 0.05, 0.95, seed=8)
    t = leaf((3, 4), 0.0, 1.0, seed=9)
    check_grad(lambda a, b: minidl.binary_cross_entropy(a, b, reduction="sum"), [p, t])
    check_gradgrad(lambda a, b: minidl.binary_cross_entropy(a, b), [p, t])


def test_binary_cross_entropy_matches_torch_even_at_0_and_1():
    p = np.array([0.0, 1e-30, 0.3, 1.0, 1.0], np.float32)
    t = np.array([1.0, 1.0, 0.0, 1.0, 0.0], np.float32)
    p_o, p_t = minidl.tensor(p, requires_grad=True), torch.tensor(p, requires_grad=True)
    loss = minidl.binary_cross_entropy(p_o, minidl.tensor(t), reduction="none")
    loss_t = F.binary_cross_entropy(p_t, torch.tensor(t), reduction="none")
    # log and a few ops per element (both clamp at -100); the gradient (p - t) / max(p(1 - p), 1e-12).
    assert_within(
        loss.array, loss_t.detach().numpy(), chain_atol(loss_t.detach().numpy(), budget=TRANSCENDENTAL_ULPS + 4), "loss"
    )
    loss.sum().backward()
    loss_t.sum().backward()
    assert_within(p_o.grad.array, p_t.grad.numpy(), chain_atol(p_t.grad.numpy(), budget=6), "gradient")
    with pytest.raises(ValueError, match="binary_cross_entropy: every probability must be between 0 and 1"):
        minidl.binary_cross_entropy(minidl.tensor([1.5]), minidl.tensor([1.0]))


def test_one_hot_matches_torch_and_checks_the_classes():
    labels = np.array([[2, 0], [1, 3]])
    np.testing.assert_array_equal(
        minidl.nn.functional.one_hot(minidl.tensor(labels), 5).array, F.one_hot(torch.tensor(labels), 5).numpy()
    )
    with pytest.raises(IndexError, match=r"one_hot: class values must be in \[0, 3\)"):
        minidl.nn.functional.one_hot(minidl.tensor([0, 3]), 3)
    with pytest.raises(TypeError, match="one_hot: expects integer class indices"):
        minidl.nn.functional.one_hot(minidl.tensor([0.0]))
