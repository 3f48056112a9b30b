"""Every CUDA launcher agrees with its NumPy twin (minidl/backend/numpy_kernels.py) on awkward sizes.

Sizes are 1 element, sizes that are not multiples of a block (31, 33, 255, 257, 1000) and empty
arrays where NumPy allows them. Tolerances come from each operation's error bound (a comment
says which); single IEEE operations (+ - * /, max, copies, conversions) must match exactly.
The launchers are called directly (cffi underneath), on the emulator here and in CI.
"""

import numpy as np
import pytest
from cuda_helpers import EPS32, dev, host, load_or_skip

from minidl.backend import reference_kernels as nk

load_or_skip()

from minidl.backend.cuda import kernels as ck  # noqa: E402
from minidl.backend.cuda import runtime  # noqa: E402
from minidl.backend.cuda.array import DeviceArray  # noqa: E402

SIZES = [1, 3, 31, 33, 255, 257, 1000]
rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Memory, views and copies
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.int32, np.uint16, np.uint8, np.bool_])
def test_roundtrip_every_dtype(dtype):
    a = (rng.standard_normal((7, 5)) * 100).astype(dtype)
    np.testing.assert_array_equal(host(DeviceArray.from_numpy(a)), a)


def test_empty_and_zero_size():
    assert host(dev(np.zeros((0, 3)))).shape == (0, 3)
    assert host(DeviceArray.zeros((4, 0))).shape == (4, 0)
    np.testing.assert_array_equal(host(DeviceArray.full((3, 2), 2.5)), np.full((3, 2), 2.5, np.float32))


def test_views_transpose_slice_broadcast_reshape():
    a = randn(4, 6, 5)
    d = dev(a)
    np.testing.assert_array_equal(host(d.transpose(2, 0, 1)), a.transpose(2, 0, 1))
    np.testing.assert_array_equal(host(d[1:, ::2, -1]), a[1:, ::2, -1])
    np.testing.assert_array_equal(host(d[..., None, 2]), a[..., None, 2])
    np.testing.assert_array_equal(host(d.T.reshape(-1, 8)), a.T.reshape(-1, 8))
    np.testing.assert_array_equal(
        host(dev(a[0, :, :1]).broadcast_to((3, 6, 5))), np.broadcast_to(a[0, :, :1], (3, 6, 5))
    )
    with pytest.raises(ValueError, match="cannot broadcast"):
        d.broadcast_to((4, 6, 4))
    with pytest.raises(IndexError, match="out of bounds"):
        d[4]


def test_concatenate_stack_pad():
    a, b = randn(3, 4), randn(3, 2)
    np.testing.assert_array_equal(host(ck.concatenate([dev(a), dev(b)], axis=1)), np.concatenate([a, b], 1))
    np.testing.assert_array_equal(host(ck.stack([dev(a), dev(a)], axis=1)), np.stack([a, a], 1))
    np.testing.assert_array_equal(host(ck.pad(dev(a), ((1, 0), (2, 3)))), np.pad(a, ((1, 0), (2, 3))))


# ---------------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------------
EXACT_BINARY = ["add", "sub", "mul", "div", "maximum", "minimum"]


@pytest.mark.parametrize("op", EXACT_BINARY)
@pytest.mark.parametrize("n", SIZES + [0])
def test_binary_same_shape_exact(op, n):
    x, y = randn(n), randn(n)
    np.testing.assert_array_equal(host(getattr(ck, op)(dev(x), dev(y))), getattr(nk, op)(x, y))


@pytest.mark.parametrize("op", EXACT_BINARY)
@pytest.mark.parametrize(
    "xs, ys", [((3, 1, 5), (4, 1)), ((1,), (33, 7)), ((31, 1), (1, 33)), ((2, 1, 3, 1, 2), (4, 1, 1, 1))]
)
def test_binary_broadcasting_exact(op, xs, ys):
    x, y = randn(*xs), randn(*ys)
    np.testing.assert_array_equal(host(getattr(ck, op)(dev(x), dev(y))), getattr(nk, op)(x, y))


def test_binary_strided_inputs_and_scalars():
    x, y = randn(33, 17), randn(17, 33)
    np.testing.assert_array_equal(host(ck.add(dev(x), dev(y).T)), x + y.T)
    np.testing.assert_array_equal(host(ck.mul(dev(x)[::2, 1:], 2.5)), x[::2, 1:] * np.float32(2.5))
    np.testing.assert_array_equal(host(ck.sub(1.0, dev(x))), np.float32(1.0) - x)


def test_binary_nan_propagates_like_numpy():
    x = np.array([np.nan, 1, np.nan, -np.inf], np.float32)
    y = np.array([0, np.nan, np.nan, 3], np.float32)
    for op in ("maximum", "minimum"):
        np.testing.assert_array_equal(host(getattr(ck, op)(dev(x), dev(y))), getattr(nk, op)(x, y))


def test_power():
    x, y = np.abs(randn(257)) + 0.1, randn(257)
    # powf is not correctly rounded: a few ulp on either side (CUDA documents <= 4 ulp)
    np.testing.assert_allclose(host(ck.power(dev(x), dev(y))), nk.power(x, y), rtol=16 * EPS32)


def test_bad_shapes_and_types_are_named():
    with pytest.raises(ValueError, match=r"add: shapes \(3,\) and \(4,\) do not broadcast"):
        ck.add(dev(randn(3)), dev(randn(4)))
    with pytest.raises(TypeError, match="mul: y is a ndarray, not a DeviceArray"):
        ck.mul(dev(randn(3)), randn(3))
    with pytest.raises(TypeError, match="expects float32"):
        ck.exp(dev(np.arange(3), np.int64))


# Unary ops with their tolerance: libm (emulator) and CUDA's device math are within 1-2 ulp
# of the exact result (CUDA's documented bounds), NumPy's SIMD versions within ~1 ulp; so
# the two differ by a few ulp of the result (rtol), and sin/cos near their zeros by a few ulp
# of the argument (atol).
UNARY = {
    "neg": (0, 0), "abs": (0, 0), "relu": (0, 0), "sign": (0, 0), "sqrt": (0, 0),
    "exp": (4 * EPS32, 0), "log": (4 * EPS32, 0), "tanh": (4 * EPS32, 1e-7),
    "sin": (4 * EPS32, 8 * EPS32), "cos": (4 * EPS32, 8 * EPS32), "sigmoid": (8 * EPS32, 0),
}  # fmt: skip


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("n", [1, 33, 1000])
def test_unary(op, n):
    x = randn(n) * 4
    if op in ("log", "sqrt"):
        x = np.abs(x) + 1e-3
    rtol, atol = UNARY[op]
    got, want = host(getattr(ck, op)(dev(x))), getattr(nk, op)(x)
    if rtol == atol == 0:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def test_unary_on_transposed_view():
    x = randn(31, 33)
    np.testing.assert_array_equal(host(ck.abs(dev(x).T)), np.abs(x.T))


def test_leaky_relu_clip_where_and_comparisons():
    x, y = randn(257), randn(257)
    np.testing.assert_array_equal(host(ck.leaky_relu(dev(x), 0.1)), nk.leaky_relu(x, 0.1))
    np.testing.assert_array_equal(host(ck.clip(dev(x), -0.5, 0.25)), nk.clip(x, -0.5, 0.25))
    for op in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal"):
        got = host(getattr(ck, op)(dev(x), dev(np.where(x > 0, x, y))))
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, getattr(nk, op)(x, np.where(x > 0, x, y)))
    cond = x > 0
    np.testing.assert_array_equal(host(ck.where(dev(cond, np.bool_), dev(x), dev(y[:1]))), nk.where(cond, x, y[:1]))


@pytest.mark.parametrize("n", SIZES)
def test_relu_backward(n):
    g, x = randn(n), randn(n)
    x[0] = 0.0
    np.testing.assert_array_equal(host(ck.relu_backward(dev(g), dev(x))), g * (x > 0))  # the mask of ReLU's backward


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("rows, cols", [(1, 1), (31, 33), (128, 10), (3, 257)])
def test_bias_act(activation, rows, cols):
    x, b, g = randn(rows, cols), randn(cols), randn(rows, cols)
    out = ck.bias_act_forward(dev(x), dev(b), activation)
    want = _bias_act_forward(x, b, activation)
    np.testing.assert_allclose(host(out), want, rtol=8 * EPS32, atol=1e-7)  # exp/tanh: a few ulp
    dz, db = ck.bias_act_backward(dev(g), dev(want), activation)
    want_dz = g if activation is None else nk.act_backward(g, want, activation)
    want_db = want_dz.sum(axis=0)
    np.testing.assert_array_equal(host(dz), want_dz)  # products of the same float32 values: exact
    # dbias: a column sum, ours in row order, NumPy's pairwise: each within rows*eps*sum|dz|
    bound = 2 * rows * EPS32 * np.abs(want_dz).sum(axis=0)
    assert np.all(np.abs(host(db) - want_db) <= bound + 1e-30)
    np.testing.assert_allclose(host(ck.bias_act_forward(dev(x), None, activation)),
                               _bias_act_forward(x, None, activation), rtol=8 * EPS32, atol=1e-7)  # fmt: skip


def _bias_act_forward(x, b, activation):
    """The reference for the bias + activation kernel: act(x + b) with the reference kernels."""
    z = x if b is None else x + b
    return z if activation is None else getattr(nk, activation)(z)


# ---------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------
def _sum_bound(x, axis):
    """|ours - NumPy's| <= 2 n eps sum|x|: both orders are within n eps sum|x| of the exact sum."""
    n = x.size if axis is None else np.prod([x.shape[a] for a in np.atleast_1d(axis)])
    return 2 * n * EPS32 * np.sum(np.abs(x), axis=axis) + 1e-30


@pytest.mark.parametrize(
    "shape, axis",
    [((1,), None), ((1000,), 0), ((31, 33), 1), ((31, 33), 0), ((5, 257, 3), 1), ((2, 3, 4, 5), (1, 2)),
     ((2, 3, 4, 5), (0, 2)), ((4, 0), 1), ((3, 4), ()), ((100_003,), None), ((3, 20_000), 1)],
)  # fmt: skip
def test_sum(shape, axis):
    x = randn(*shape)
    got = host(ck.sum(dev(x), axis=axis))
    want = nk.sum(x, axis=axis)
    assert got.shape == np.shape(want)
    assert np.all(np.abs(got - want) <= _sum_bound(x, axis))


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("shape, axis", [((1,), None), ((1000,), 0), ((31, 33), 1), ((33, 31), 0), ((2, 3, 4), (0, 2))])
@pytest.mark.parametrize("keepdims", [False, True])
def test_max_min_exact(op, shape, axis, keepdims):
    x = randn(*shape)
    np.testing.assert_array_equal(host(getattr(ck, op)(dev(x), axis, keepdims)), getattr(nk, op)(x, axis, keepdims))


def test_max_of_empty_is_an_error_and_nan_propagates():
    with pytest.raises(ValueError, match="zero-size array"):
        ck.max(dev(np.zeros((0, 3))), axis=0)
    x = randn(3, 40)
    x[1, 17] = np.nan
    np.testing.assert_array_equal(host(ck.max(dev(x), axis=1)), nk.max(x, axis=1))


@pytest.mark.parametrize("shape, axis", [((1,), None), ((31, 33), 1), ((31, 33), 0), ((4, 5, 6), 1)])
def test_argmax(shape, axis):
    x = np.round(randn(*shape), 1)  # ties: the first maximum wins, as in NumPy
    got = host(ck.argmax(dev(x), axis))
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, nk.argmax(x, axis))


@pytest.mark.parametrize("shape, axis", [((1, 1), -1), ((31, 10), -1), ((7, 1000), 1), ((4, 33, 5), 1)])
def test_softmax_and_log_softmax(shape, axis):
    x = randn(*shape) * 3
    cols = shape[axis]
    # exp within a few ulp, the row sum within cols*eps: relative error (cols + 8) eps, twice (both sides)
    np.testing.assert_allclose(host(ck.softmax(dev(x), axis)), nk.softmax(x, axis), rtol=2 * (cols + 8) * EPS32)
    scale = np.abs(nk.log_softmax(x, axis)) + 1
    assert np.all(
        np.abs(host(ck.log_softmax(dev(x), axis)) - nk.log_softmax(x, axis)) <= 2 * (cols + 8) * EPS32 * scale
    )


# ---------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("rows, cols", [(1, 1), (1, 10), (31, 10), (33, 257), (128, 10)])
def test_cross_entropy(rows, cols):
    logits = randn(rows, cols) * 3
    t = rng.integers(0, cols, rows)
    losses, probs = ck.cross_entropy_forward(dev(logits), dev(t, np.int64))
    want_l, want_p = nk.cross_entropy_forward(logits, t)
    tol = 2 * (cols + 8) * EPS32
    np.testing.assert_allclose(host(probs), want_p, rtol=tol, atol=1e-30)
    assert np.all(np.abs(host(losses) - want_l) <= tol * (np.abs(want_l) + np.abs(logits).max() + 1))
    g = randn(rows)
    d = ck.cross_entropy_backward(dev(want_p), dev(t, np.int64), dev(g))
    np.testing.assert_array_equal(host(d), nk.cross_entropy_backward(want_p, t, g))  # (p - 1[t]) * g: exact


def test_cross_entropy_bad_target_names_the_row():
    t = np.array([0, 3, 10, 1])
    with pytest.raises(IndexError, match="target 10 of row 2 is out of range for 10 classes"):
        ck.cross_entropy_forward(dev(randn(4, 10)), dev(t, np.int64))
    with pytest.raises(IndexError, match="target -1 of row 0"):
        ck.cross_entropy_backward(dev(randn(4, 10)), dev([-1, 0, 0, 0], np.int64), dev(randn(4)))


# ---------------------------------------------------------------------------------------
# Gather / scatter
# ---------------------------------------------------------------------------------------
def test_getitem_and_scatter_add_rows():
    x = randn(33, 5)
    idx = np.array([3, 0, 32, 3, -1, 7])
    d_idx = dev(idx, np.int64)
    np.testing.assert_array_equal(host(ck.getitem(dev(x), d_idx)), nk.getitem(x, idx))
    v = randn(6, 5)
    # repeated index 3 adds two values: a float sum of two terms, exact in any order
    np.testing.assert_array_equal(
        host(ck.scatter_add((33, 5), d_idx, dev(v))), nk.scatter_add((33, 5), idx, v, np.float32)
    )
    np.testing.assert_array_equal(host(ck.getitem(dev(x), (slice(1, 9, 2),))), x[1:9:2])
    with pytest.raises(IndexError, match="out of bounds for 33 rows"):
        ck.getitem(dev(x), dev([1, 33], np.int64))


# ---------------------------------------------------------------------------------------
# Convolution and pooling
# ---------------------------------------------------------------------------------------
CONV_CASES = [((1, 1, 1, 1), 1, 1, 0), ((2, 3, 7, 5), 3, 1, 1), ((2, 2, 9, 9), 3, 2, 0), ((1, 4, 8, 6), 2, 2, 1),
              ((3, 1, 5, 7), 5, 3, 2)]  # fmt: skip


@pytest.mark.parametrize("shape, k, stride, pad", CONV_CASES)
def test_im2col_col2im(shape, k, stride, pad):
    x = randn(*shape)
    window = ((k, k), (stride, stride), (pad, pad))  # the reference takes (h, w) pairs
    cols = ck.im2col(dev(x), k, k, stride, pad)
    want = nk.im2col(x, *window)
    np.testing.assert_array_equal(host(cols), want)
    g = randn(*want.shape)
    # each pixel sums its windows in the twin's order (offset i, then j): exact
    np.testing.assert_array_equal(host(ck.col2im(dev(g), shape, k, k, stride, pad)), nk.col2im(g, shape, *window))


@pytest.mark.parametrize("shape, k, stride, pad", [c for c in CONV_CASES if c[1] <= 3])
def test_pooling(shape, k, stride, pad):
    x = np.round(randn(*shape), 1)  # ties inside windows
    window = ((k, k), (stride, stride), (pad, pad))  # the reference takes (h, w) pairs
    out, arg = ck.max_pool2d_forward(dev(x), k, stride, pad)
    want_out, want_arg = nk.max_pool2d_forward(x, *window)
    np.testing.assert_array_equal(host(out), want_out)
    np.testing.assert_array_equal(host(arg), want_arg)
    g = randn(*want_out.shape)
    dx = ck.max_pool2d_backward(dev(g), arg, shape, k, stride, pad)
    np.testing.assert_array_equal(host(dx), nk.max_pool2d_backward(g, want_arg, shape, *window))
    # average: a sum of k*k terms (NumPy's pairwise, ours sequential), then / k*k
    avg = host(ck.avg_pool2d_forward(dev(x), k, stride, pad))
    want_avg = nk.avg_pool2d_forward(x, *window)
    assert np.all(np.abs(avg - want_avg) <= 2 * k * k * EPS32 * np.abs(x).max() + 1e-30)
    np.testing.assert_array_equal(
        host(ck.avg_pool2d_backward(dev(g), shape, k, stride, pad)), nk.avg_pool2d_backward(g, shape, *window)
    )


def test_conv_geometry_errors():
    with pytest.raises(ValueError, match="im2col: a 5x5 window does not fit a 3x3 image"):
        ck.im2col(dev(randn(1, 1, 3, 3)), 5, 5, 1, 0)


# ---------------------------------------------------------------------------------------
# Optimizer updates: the emulator does NumPy's float32 operations in NumPy's order (exact);
# on a GPU nvcc contracts a*b+c into FMAs, one rounding instead of two (a few ulp).
# ---------------------------------------------------------------------------------------
def _assert_update(got, want):
    if runtime.build() == "emulated":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=8 * EPS32, atol=1e-7)


def _state(n, positive=False):
    a = randn(n)
    return np.abs(a) if positive else a


@pytest.mark.parametrize("n", [1, 257, 1000])
@pytest.mark.parametrize(
    "kw", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
           {"momentum": 0.5, "dampening": 0.3}],
)  # fmt: skip
def test_sgd_update(n, kw):
    p, g, v = randn(n), randn(n), randn(n)
    dp, dv = dev(p), dev(v)
    ck.sgd_update(dp, dev(g), dv, 0.1, **kw)
    nk.sgd_update(p, g, v, 0.1, **kw)
    _assert_update(host(dp), p)
    _assert_update(host(dv), v)


@pytest.mark.parametrize("n", [1, 257])
def test_adagrad_rmsprop_adam_updates(n):
    p, g, s = randn(n), randn(n), _state(n, True)
    dp, ds = dev(p), dev(s)
    ck.adagrad_update(dp, dev(g), ds, 0.01, weight_decay=1e-3)
    nk.adagrad_update(p, g, s, 0.01, weight_decay=1e-3)
    _assert_update(host(dp), p)
    _assert_update(host(ds), s)
    for centered in (False, True):
        p, g, ms = randn(n), randn(n), _state(n, True) + 1
        mean = randn(n) * 0.1 if centered else None
        dp, dms, dmean = dev(p), dev(ms), dev(mean) if centered else None
        ck.rmsprop_update(dp, dev(g), dms, 0.01, alpha=0.9, mean=dmean)
        nk.rmsprop_update(p, g, ms, 0.01, alpha=0.9, mean=mean)
        _assert_update(host(dp), p)
        _assert_update(host(dms), ms)
    for amsgrad in (False, True):
        p, g, m, v = randn(n), randn(n), randn(n), _state(n, True)
        max_v = _state(n, True) if amsgrad else None
        dp, dm, dv = dev(p), dev(m), dev(v)
        dmax = dev(max_v) if amsgrad else None
        ck.adam_update(dp, dev(g), dm, dv, 3, 1e-3, weight_decay=1e-2, max_v=dmax)
        nk.adam_update(p, g, m, v, 3, 1e-3, weight_decay=1e-2, max_v=max_v)
        for got, want in [(dp, p), (dm, m), (dv, v)] + ([(dmax, max_v)] if amsgrad else []):
            _assert_update(host(got), want)


def test_update_rejects_a_view():
    p = dev(randn(4, 4))
    with pytest.raises(ValueError, match="sgd_update: param is updated in place and must be a contiguous"):
        ck.sgd_update(p.T, dev(randn(4, 4)), None, 0.1)


# ---------------------------------------------------------------------------------------
# 16-bit conversions: bit for bit
# ---------------------------------------------------------------------------------------
def _conversion_inputs():
    """Every half as float32, midpoints between neighbours (ties to even) and their neighbours, edges."""
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32)
    mids = ((halves[:-1].astype(np.float64) + halves[1:]) / 2).astype(np.float32)
    edges = [65504, 65519.99, 65520, 1e6, 3e38, np.inf, 1e-8, 2.0**-25, 2.0**-24, 1.5 * 2.0**-24, 1e-45, np.nan]
    x = np.concatenate([halves, mids, np.nextafter(mids, 0), np.nextafter(mids, 1e9), edges]).astype(np.float32)
    return np.concatenate([x, -x])


def test_float32_to_float16_rounds_like_numpy():
    x = _conversion_inputs()
    with np.errstate(over="ignore"):
        want = nk.float32_to_float16(x)
    got = host(ck.float32_to_float16(dev(x)))
    assert got.dtype == np.float16
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint16), want[~nan].view(np.uint16))


def test_float16_to_float32_every_half():
    h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    got, want = host(ck.float16_to_float32(dev(h, np.float16))), nk.float16_to_float32(h)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


@pytest.mark.parametrize("n", [1, 33, 1000])
def test_truncated16(n):
    x = randn(n) * 1000
    t = ck.float32_to_truncated16(dev(x))
    np.testing.assert_array_equal(host(t), nk.float32_to_truncated16(x))
    np.testing.assert_array_equal(host(ck.truncated16_to_float32(t)), nk.truncated16_to_float32(host(t)))
