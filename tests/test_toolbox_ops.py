"""The toolbox's new ops (issue 13): erf and GELU, 1-D convolution and pooling, adaptive average
pooling, maxout, layer norm, KL divergence and attention. Each is gradchecked in float64 (first and
second derivatives: backward is written with Tensor ops), its values are checked against a direct
computation, and bad arguments raise errors naming the op. PyTorch parity: test_toolbox_torch_parity.py.
"""

import math

import numpy as np
import pytest
from core_helpers import check_grad, check_gradgrad, distinct, leaf
from tolerances import TRANSCENDENTAL_ULPS, assert_within, eps

import minidl
import minidl.nn.functional as F
from minidl import backend


# ---------------------------------------------------------------------------
# erf (a new optional kernel primitive, composed from the core) and GELU
# ---------------------------------------------------------------------------
def erf_rtol(dtype):
    """The composed erf's worst-case relative error (backend/composed.py), from its operations:
    below 2.5 the n-th series term is n steps of (multiply, multiply, divide) from the first, so it is
    within 3n·u of exact; 35 terms (n <= 34) and their 35 additions give at most (3·34 + 35)·u = 137u;
    exp(-s²) adds TRANSCENDENTAL_ULPS plus s²·u <= 6.25u from the rounded argument; the constant and the
    product 2 more roundings. About 80 eps in all (the measured error is 5-6 eps). Above 2.5,
    erf = 1 - erfc with erfc <= 4e-4: its error is far below one ulp of the result."""
    return (137 / 2 + TRANSCENDENTAL_ULPS + 6.25 / 2 + 1) * eps(dtype)


@pytest.mark.parametrize("kernels", backend.available_kernels())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_erf_matches_math_erf_everywhere(kernel_set, kernels, dtype):
    kernel_set(kernels)
    x = np.concatenate([np.linspace(-7, 7, 4001), [0.0, 1e-300, -1e-30, 2.5, -2.5, 2.4999999, 40.0]]).astype(dtype)
    x = x[np.isfinite(x)]
    expected = np.array([math.erf(v) for v in x.astype(np.float64)])
    got = minidl.erf(minidl.tensor(x)).array
    assert got.dtype == dtype
    assert_within(got, expected, 0, "erf", rtol=erf_rtol(dtype))
    special = minidl.erf(minidl.tensor(np.array([np.inf, -np.inf, np.nan], dtype))).array
    assert special[0] == 1 and special[1] == -1 and np.isnan(special[2])
    np.testing.assert_array_equal(minidl.erf(minidl.tensor(-x)).array, -got)  # odd, exactly


def test_erf_gradients_on_both_branches():
    x = minidl.tensor(np.array([-3.1, -2.6, -1.2, -0.3, 0.0, 0.4, 1.7, 2.45, 2.55, 3.5]), requires_grad=True)
    check_grad(minidl.erf, [x])
    check_gradgrad(minidl.erf, [x])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_values_and_gradients(approximate):
    x = leaf((3, 5), low=-4, high=4, seed=1)
    values = x.array
    if approximate == "none":
        expected = values * 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in values.ravel()]).reshape(3, 5))
    else:
        expected = 0.5 * values * (1 + np.tanh(math.sqrt(2 / math.pi) * (values + 0.044715 * values**3)))
    # x/2 · (1 + erf(·)): 1 + erf cancels for negative x, so the error is absolute: erf's (or tanh's,
    # TRANSCENDENTAL_ULPS per library) relative error times |erf| <= 1, plus the rounding of the
    # argument and of 1 + erf, times |x|/2; then two multiplications relative to the result.
    f = eps(np.float64)
    inner = erf_rtol(np.float64) if approximate == "none" else (2 * TRANSCENDENTAL_ULPS + 4) * f
    atol = np.abs(values) / 2 * (inner + 3 * f) + 2 * f * np.abs(expected)
    assert_within(minidl.gelu(x, approximate).array, expected, atol, "gelu")
    check_grad(lambda x: minidl.gelu(x, approximate), [x])
    check_gradgrad(lambda x: minidl.gelu(x, approximate), [x])
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh'"):
        minidl.gelu(x, "fast")
    with pytest.raises(TypeError, match="erf: expected a floating point tensor"):
        minidl.erf(minidl.tensor(np.array([1, 2])))


def test_erf_is_an_optional_primitive_with_a_composed_fallback():
    from minidl.backend import composed, contract

    assert "erf" in contract.OPTIONAL and "erf" not in contract.REQUIRED
    assert backend.reference_kernels.erf.func is composed.erf  # the NumPy set uses the composed version


# ---------------------------------------------------------------------------
# 1-D convolution and pooling
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "stride", "padding", "dilation", "groups", "bias"),
    [
        ((2, 3, 11), (4, 3, 3), 1, 0, 1, 1, True),
        ((1, 2, 12), (2, 2, 4), 2, 1, 1, 1, False),
        ((2, 4, 10), (4, 1, 3), 1, 2, 2, 4, True),  # depthwise and dilated
        ((1, 4, 9), (6, 2, 2), (3,), (1,), (2,), 2, True),  # 1-tuples, grouped
    ],
)
def test_conv1d_is_conv2d_on_one_row_and_gradchecks(x_shape, w_shape, stride, padding, dilation, groups, bias):
    x, w = leaf(x_shape, seed=1), leaf(w_shape, seed=2)
    b = leaf((w_shape[0],), seed=3) if bias else None
    out = minidl.conv1d(x, w, b, stride, padding, dilation, groups)

    def one(v):
        return v[0] if isinstance(v, tuple) else v

    as_2d = minidl.conv2d(
        x.unsqueeze(2), w.unsqueeze(2), b, (1, one(stride)), (0, one(padding)), (1, one(dilation)), groups
    )
    np.testing.assert_array_equal(out.array, as_2d.array[:, :, 0])  # the same computation, to the bit
    inputs = [x, w] + ([b] if bias else [])
    check_grad(lambda *a: minidl.conv1d(*a[:2], a[2] if bias else None, stride, padding, dilation, groups), inputs)


def test_conv1d_rejects_bad_arguments_by_name():
    x, w = minidl.randn(1, 2, 8), minidl.randn(3, 2, 3)
    with pytest.raises(ValueError, match=r"conv1d: expected input \(N, C, L\), got shape \(2, 8\)"):
        minidl.conv1d(minidl.randn(2, 8), w)
    with pytest.raises(ValueError, match=r"conv1d: expected weight \(F, C/groups, k\)"):
        minidl.conv1d(x, minidl.randn(3, 2, 1, 3))
    with pytest.raises(TypeError, match="conv1d: stride must be an int or a 1-tuple of ints, got"):
        minidl.conv1d(x, w, stride=(1, 2))
    with pytest.raises(ValueError, match="conv1d: a 1x9 window .* does not fit in a 1x8 input"):
        minidl.conv1d(x, minidl.randn(3, 2, 9))


@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 1, 1), (3, 2, 1), (4, 3, 2)])
def test_pool1d_values_and_gradients(kernel, stride, padding):
    x = distinct((2, 3, 10), seed=4)
    step = kernel if stride is None else stride
    padded = np.pad(x.array, ((0, 0), (0, 0), (padding, padding)), constant_values=-np.inf)
    windows = [padded[:, :, i : i + kernel] for i in range(0, padded.shape[2] - kernel + 1, step)]
    np.testing.assert_array_equal(
        minidl.max_pool1d(x, kernel, stride, padding).array, np.stack([w.max(-1) for w in windows], -1)
    )
    zero_padded = np.where(np.isinf(padded), 0, padded)  # average pooling counts zero padding
    windows = [zero_padded[:, :, i : i + kernel] for i in range(0, padded.shape[2] - kernel + 1, step)]
    assert_within(minidl.avg_pool1d(x, kernel, stride, padding).array, np.stack([w.mean(-1) for w in windows], -1),
                  (kernel + 1) * eps(np.float64) * np.abs(x.array).max(), "avg_pool1d")  # fmt: skip
    check_grad(lambda x: minidl.max_pool1d(x, kernel, stride, padding), [x])
    check_grad(lambda x: minidl.avg_pool1d(x, kernel, stride, padding), [x])


@pytest.mark.parametrize("shape,size", [((2, 3, 6, 4), (1, 1)), ((1, 2, 6, 4), (3, 2)), ((1, 2, 7, 5), (3, 2)),
                                        ((1, 1, 5, 5), 4), ((1, 2, 4, 6), (None, 4))])  # fmt: skip
def test_adaptive_avg_pool2d_uses_pytorchs_bins_and_gradchecks(shape, size):
    x = leaf(shape, seed=5)
    out = minidl.adaptive_avg_pool2d(x, size)
    oh, ow = (size, size) if isinstance(size, int) else (size[0] or shape[2], size[1] or shape[3])
    expected = np.empty(shape[:2] + (oh, ow))
    for i in range(oh):  # bin i covers [floor(i·H/oh), ceil((i+1)·H/oh))
        h0, h1 = (i * shape[2]) // oh, -((-(i + 1) * shape[2]) // oh)
        for j in range(ow):
            w0, w1 = (j * shape[3]) // ow, -((-(j + 1) * shape[3]) // ow)
            expected[:, :, i, j] = x.array[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    assert_within(out.array, expected, 2 * shape[2] * shape[3] * eps(np.float64), "adaptive_avg_pool2d")
    check_grad(lambda x: minidl.adaptive_avg_pool2d(x, size), [x])
    if size == (1, 1):
        np.testing.assert_allclose(out.array[:, :, 0, 0], minidl.nn.GlobalAvgPool()(x).array, rtol=0, atol=1e-15)


def test_adaptive_avg_pool1d_and_its_errors():
    x = leaf((2, 3, 7), seed=6)
    out = minidl.adaptive_avg_pool1d(x, 3)  # bins [0, 3), [2, 5), [4, 7)
    expected = np.stack([x.array[:, :, 0:3].mean(-1), x.array[:, :, 2:5].mean(-1), x.array[:, :, 4:7].mean(-1)], -1)
    assert_within(out.array, expected, 8 * eps(np.float64), "adaptive_avg_pool1d")
    check_grad(lambda x: minidl.adaptive_avg_pool1d(x, 3), [x])
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: output sizes must be positive integers"):
        minidl.adaptive_avg_pool2d(minidl.randn(1, 1, 4, 4), (0, 2))
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: expected input \(N, C, H, W\)"):
        minidl.adaptive_avg_pool2d(minidl.randn(1, 4, 4), 2)


# ---------------------------------------------------------------------------
# maxout, layer norm, KL divergence
# ---------------------------------------------------------------------------
def test_maxout_takes_the_max_of_consecutive_pieces():
    x = distinct((3, 6, 2), seed=7)
    out = minidl.maxout(x, 3, axis=1)
    np.testing.assert_array_equal(out.array, x.array.reshape(3, 2, 3, 2).max(axis=2))
    check_grad(lambda x: minidl.maxout(x, 3, axis=1), [x])
    check_grad(lambda x: minidl.maxout(x, 2, axis=-1), [distinct((4, 6), seed=8)])
    with pytest.raises(ValueError, match="maxout: axis of shape .* must hold a multiple of pieces=4"):
        minidl.maxout(x, 4)


@pytest.mark.parametrize("normalized_shape", [5, (3, 5)])
def test_layer_norm_normalizes_each_example(normalized_shape):
    x = leaf((2, 3, 5), low=-3, high=5, seed=9)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    w, b = leaf(shape, seed=10), leaf(shape, seed=11)
    axes = tuple(range(3 - len(shape), 3))
    expected = (x.array - x.array.mean(axes, keepdims=True)) / np.sqrt(x.array.var(axes, keepdims=True) + 1e-5)
    n = int(np.prod(shape))  # mean and variance are sums of n terms, then a few roundings per element
    assert_within(
        minidl.layer_norm(x, normalized_shape, eps=1e-5).array,
        expected,
        (2 * n + 8) * eps(np.float64) * 4,
        "layer_norm",
    )
    check_grad(lambda x, w, b: minidl.layer_norm(x, normalized_shape, w, b), [x, w, b])
    check_gradgrad(lambda x, w: minidl.layer_norm(x, normalized_shape, w), [x, w])
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape \(4,\) must be the trailing axes"):
        minidl.layer_norm(x, 4)


@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_is_the_kl_divergence(reduction, log_target):
    rng = np.random.default_rng(12)
    p = rng.dirichlet(np.ones(4), size=3)
    p[0, 1] = 0  # a zero target probability counts 0·log 0 = 0
    p[0] /= p[0].sum()
    q = rng.dirichlet(np.ones(4), size=3)
    log_q = minidl.tensor(np.log(q), requires_grad=True)
    target = np.log(np.where(p > 0, p, 1e-300)) if log_target else p
    loss = minidl.kl_div(log_q, minidl.tensor(target), reduction=reduction, log_target=log_target)
    pointwise = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - np.log(q)), 0)
    expected = {"none": pointwise, "sum": pointwise.sum(), "mean": pointwise.mean(), "batchmean": pointwise.sum() / 3}
    assert_within(loss.array, expected[reduction], 32 * eps(np.float64), f"kl_div {reduction}")
    check_grad(lambda a: minidl.kl_div(a, minidl.tensor(target), reduction=reduction, log_target=log_target), [log_q])
    soft = minidl.tensor(p[1:], requires_grad=True)  # strictly positive targets: differentiable in the target too
    check_grad(
        lambda t, a: minidl.kl_div(a, t, reduction=reduction), [soft, minidl.tensor(np.log(q[1:]), requires_grad=True)]
    )


# ---------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------
def test_attention_is_a_softmax_weighted_average_of_the_values():
    q, k, v = leaf((2, 3, 4), seed=13), leaf((2, 5, 4), seed=14), leaf((2, 5, 6), seed=15)
    context, weights = F.attention(q, k, v, score="scaled_dot")
    scores = q.array @ k.array.transpose(0, 2, 1) / 2
    expected_weights = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    assert_within(weights.array, expected_weights, 64 * eps(np.float64), "weights")
    assert_within(context.array, expected_weights @ v.array, 64 * eps(np.float64) * np.abs(v.array).max(), "context")
    check_grad(lambda q, k, v: F.attention(q, k, v, score="dot")[0], [q, k, v])
    check_gradgrad(lambda q, k: F.attention(q, k, score="scaled_dot")[0], [q, k])


def test_attention_mask_hides_padding_and_a_single_query_keeps_its_shape():
    q, k = leaf((2, 4), seed=16), leaf((2, 5, 4), seed=17)
    mask = np.array([[True, True, True, False, False], [True] * 5])
    context, weights = F.attention(q, k, mask=mask)
    assert context.shape == (2, 4) and weights.shape == (2, 5)
    assert np.all(weights.array[0, 3:] == 0)
    short, _ = F.attention(q[:1], k[:1, :3])  # the masked keys behave as if absent
    np.testing.assert_allclose(context.array[0], short.array[0], rtol=1e-14, atol=1e-15)
    check_grad(lambda q, k: F.attention(q, k, mask=mask)[0], [q, k])
    with pytest.raises(TypeError, match="attention: mask must be boolean"):
        F.attention(q, k, mask=mask.astype(int))
    with pytest.raises(ValueError, match="attention: score must be 'dot' or 'scaled_dot'"):
        F.attention(q, k, score="additive")


def test_additive_attention_scores_with_a_tanh_layer():
    q, k, v = leaf((2, 3), seed=18), leaf((2, 4, 5), seed=19), leaf((2, 4, 2), seed=20)
    wq, wk, a = leaf((6, 3), seed=21), leaf((6, 5), seed=22), leaf((6,), seed=23)
    context, weights = F.additive_attention(q, k, v, wq, wk, a)
    scores = np.tanh((q.array @ wq.array.T)[:, None, :] + k.array @ wk.array.T) @ a.array
    expected = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    assert_within(weights.array, expected, 64 * eps(np.float64), "additive weights")
    check_grad(lambda q, k, v, wq, wk, a: F.additive_attention(q, k, v, wq, wk, a)[0], [q, k, v, wq, wk, a])


@pytest.mark.parametrize("case", ["plain", "bool mask", "float mask", "causal"])
def test_scaled_dot_product_attention_gradchecks(case):
    q, k, v = leaf((2, 3, 4), seed=24), leaf((2, 5, 4), seed=25), leaf((2, 5, 3), seed=26)
    kwargs = {"is_causal": True} if case == "causal" else {}
    if case == "bool mask":
        kwargs["attn_mask"] = np.array([[True, False, True, True, False]] * 3)
    elif case == "float mask":
        kwargs["attn_mask"] = minidl.tensor(np.random.default_rng(27).standard_normal((3, 5)))
    check_grad(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs), [q, k, v])
