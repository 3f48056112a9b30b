"""The C convolution kernels agree with the reference kernel set, on every SIMD path this CPU can run.

conv2d_forward (bias and activation fused in), conv2d_backward_input and conv2d_backward_weight
are compared with the reference's composed versions (NumPy im2col, then one matrix product per
group) run in float64, with an error bound scaled by the same computation on |inputs|. The
geometries are awkward on purpose: batch 1,
odd channel counts, padding 0, 1 and 2, stride 1 and 2 (and a pair), non-square kernels and
images, dilation 2 (with and without a whole number of strides), groups (depthwise too), 1x1
convolutions (which need no columns in C), maps narrower and wider than a vector, and the two
layers of benchmarks/bench_train.py's CNN. Also here: act_backward, the sum over every axis but
one (a convolution's bias gradient), linear with an activation, and parameter_storage.

Each test runs once per SIMD path (the `simd` and `c` fixtures of ckernel_helpers: every size
threshold at 0, and a check that the C function really ran); tests/test_sanitizers.py runs
this file under AddressSanitizer and UndefinedBehaviorSanitizer too.
"""

import threading

import ckernel_helpers as helpers
import numpy as np
import pytest
from tolerances import SAFETY, assert_within, eps, sum_atol, transcendental_rtol

from minidl.backend import c as ck
from minidl.backend import memory
from minidl.backend import reference_kernels as ref

pytestmark = pytest.mark.skipif(not ck.available, reason=f"C kernels not built: {ck.unavailable_reason}")

simd, c = helpers.simd, helpers.c  # the fixtures (see ckernel_helpers)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------------------
# The oracle: the reference kernel set (NumPy's core, composed extras) on float64 copies
# ---------------------------------------------------------------------------------------
def out_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def activate(z, activation):
    return z if activation is None else getattr(ref, activation)(z)


def twin_forward(x, weight, bias, stride, padding, dilation, groups, activation=None):
    return ref.conv2d_forward(x, weight, bias, stride, padding, dilation, groups, activation)


def twin_backward_input(grad, weight, x_shape, stride, padding, dilation, groups):
    return ref.conv2d_backward_input(grad, weight, x_shape, stride, padding, dilation, groups)


def twin_backward_weight(x, grad, weight_shape, stride, padding, dilation, groups):
    return ref.conv2d_backward_weight(x, grad, weight_shape, stride, padding, dilation, groups)


def f64(*arrays):
    return [None if a is None else a.astype(np.float64) for a in arrays]


def assert_sum_close(got, want, scale, terms, what, activation_output=None):
    """float32 sums of `terms` products against the exact (float64) reference, tests/tolerances.py's rule:

    a sum of k products in any order (blocking, SIMD lanes, FMA) is within gamma_k ~ k·eps of
    sum |a b| (`scale`, the same computation on |inputs|), one side rounding. An activation
    after the sum is 1-Lipschitz (sigmoid 1/4) and adds its own rounding, a few ulps of the
    output (transcendental_rtol; relu adds none, the bound does not need to know).
    """
    assert got.dtype == np.float32, got.dtype
    atol = SAFETY / 2 * terms * eps(np.float32) * scale
    if activation_output is not None:
        atol = atol + transcendental_rtol(np.float32, libraries=1) * np.abs(activation_output)
    assert_within(got, want, atol, what)


# ---------------------------------------------------------------------------------------
# Geometries: (n, c, h, w, f, kh, kw, stride, padding, dilation, groups)
# ---------------------------------------------------------------------------------------
GEOMETRIES = {
    "cnn conv1": (2, 1, 28, 28, 16, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "cnn conv2": (2, 16, 14, 14, 32, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "batch 1, odd channels, padding 0": (1, 3, 7, 9, 5, 3, 3, (1, 1), (0, 0), (1, 1), 1),
    "stride 2": (3, 5, 9, 8, 7, 3, 3, (2, 2), (1, 1), (1, 1), 1),
    "5x5, padding 2": (2, 7, 11, 10, 3, 5, 5, (1, 1), (2, 2), (1, 1), 1),
    "2x3 kernel, stride (2, 1), padding (0, 1)": (2, 3, 10, 13, 4, 2, 3, (2, 1), (0, 1), (1, 1), 1),
    "dilation 2": (1, 4, 12, 12, 6, 3, 3, (1, 1), (2, 2), (2, 2), 1),
    "dilation 3 over stride 2": (1, 2, 13, 11, 3, 3, 3, (2, 2), (1, 1), (3, 3), 1),
    "dilation (2, 1) over stride 1": (2, 3, 10, 9, 2, 3, 2, (1, 1), (1, 0), (2, 1), 1),
    "groups 3": (2, 6, 8, 9, 9, 3, 3, (1, 1), (1, 1), (1, 1), 3),
    "depthwise, stride 2, padding 2": (2, 4, 7, 7, 4, 3, 3, (2, 2), (2, 2), (1, 1), 4),
    "1x1 (no columns)": (3, 5, 6, 7, 4, 1, 1, (1, 1), (0, 0), (1, 1), 1),
    "1x1 groups 2 (no columns)": (2, 4, 5, 3, 6, 1, 1, (1, 1), (0, 0), (1, 1), 2),
    "1x1 stride 2, padding 1": (2, 3, 6, 5, 2, 1, 1, (2, 2), (1, 1), (1, 1), 1),
    "3x3 on 3x3, one channel": (1, 1, 3, 3, 3, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "wide rows (37: two vectors and a tail)": (1, 2, 5, 37, 3, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    "window as large as the padded image": (2, 3, 4, 5, 2, 6, 7, (1, 1), (1, 1), (1, 1), 1),
    "many filters, few positions": (2, 3, 4, 4, 70, 3, 3, (1, 1), (0, 0), (1, 1), 1),
    "a 70x70 map (col2im's strip would not fit)": (1, 2, 70, 70, 3, 3, 3, (1, 1), (1, 1), (1, 1), 1),
}


def case(name, seed=0):
    n, ch, h, w, f, kh, kw, stride, padding, dilation, groups = GEOMETRIES[name]
    x = rand(n, ch, h, w, seed=seed + 1)
    weight = rand(f, ch // groups, kh, kw, seed=seed + 2)
    bias = rand(f, seed=seed + 3)
    oh, ow = out_size(h, kh, stride[0], padding[0], dilation[0]), out_size(w, kw, stride[1], padding[1], dilation[1])
    grad = rand(n, f, oh, ow, seed=seed + 4)
    return x, weight, bias, grad, (stride, padding, dilation, groups)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
def test_conv2d_forward_with_bias_and_activation(c, name, activation):
    x, weight, bias, _, geo = case(name)
    for b in (bias, None):
        terms = weight[0].size + (b is not None)  # products summed per output (C/groups * kh * kw), the bias
        got = ck.conv2d_forward(x, weight, b, *geo, activation)
        z = twin_forward(*f64(x, weight, b), *geo)
        scale = twin_forward(np.abs(x).astype(np.float64), np.abs(weight).astype(np.float64),
                             None if b is None else np.abs(b).astype(np.float64), *geo)  # fmt: skip
        want = activate(z, activation)
        assert_sum_close(got, want, scale, terms, f"{name}, {activation}, bias {b is not None}", want)
    assert c == ["mdk_conv2d_forward"] * 2


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_conv2d_backward_input(c, name):
    x, weight, _, grad, geo = case(name, seed=10)
    got = ck.conv2d_backward_input(grad, weight, x.shape, *geo)
    want = twin_backward_input(*f64(grad, weight), x.shape, *geo)
    scale = twin_backward_input(*f64(np.abs(grad), np.abs(weight)), x.shape, *geo)
    fg, (_, _, kh, kw) = weight.shape[0] // geo[3], weight.shape
    # each pixel: kh*kw window offsets, each a dot product over fg filters, added up by col2im
    assert_sum_close(got, want, scale, fg * kh * kw + kh * kw, name)
    assert c == ["mdk_conv2d_backward_input"]


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_conv2d_backward_weight(c, name):
    x, weight, _, grad, geo = case(name, seed=20)
    got = ck.conv2d_backward_weight(x, grad, weight.shape, *geo)
    want = twin_backward_weight(*f64(x, grad), weight.shape, *geo)
    scale = twin_backward_weight(*f64(np.abs(x), np.abs(grad)), weight.shape, *geo)
    n, _, oh, ow = grad.shape
    assert_sum_close(got, want, scale, n * oh * ow, name)
    assert c == ["mdk_conv2d_backward_weight"]


def test_conv2d_reads_views_of_any_layout(c):
    """Transposed or sliced inputs are made contiguous first; results do not depend on the layout."""
    x, weight, bias, grad, geo = case("stride 2", seed=30)
    x_view = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # same values, other strides
    w_view = np.zeros((weight.shape[0] * 2,) + weight.shape[1:], np.float32)[::2]
    w_view[...] = weight
    g_view = np.ascontiguousarray(grad.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)
    assert not (x_view.flags.c_contiguous or w_view.flags.c_contiguous or g_view.flags.c_contiguous)
    np.testing.assert_array_equal(ck.conv2d_forward(x_view, w_view, bias, *geo, "relu"),
                                  ck.conv2d_forward(x, weight, bias, *geo, "relu"))  # fmt: skip
    np.testing.assert_array_equal(ck.conv2d_backward_input(g_view, w_view, x.shape, *geo),
                                  ck.conv2d_backward_input(grad, weight, x.shape, *geo))  # fmt: skip
    np.testing.assert_array_equal(ck.conv2d_backward_weight(x_view, g_view, weight.shape, *geo),
                                  ck.conv2d_backward_weight(x, grad, weight.shape, *geo))  # fmt: skip
    assert c.count("mdk_conv2d_forward") == 2 and c.count("mdk_conv2d_backward_weight") == 2


def test_conv2d_work_buffers_are_per_thread(c):
    """Threads convolving at the same time (the GIL is released in C) never share column buffers."""
    names = ["cnn conv2", "stride 2", "5x5, padding 2", "groups 3"]
    cases = [case(name, seed=40 + i) for i, name in enumerate(names)]
    expected = [ck.conv2d_forward(x, w, b, *geo, "tanh") for x, w, b, _, geo in cases]
    expected_dx = [ck.conv2d_backward_input(g, w, x.shape, *geo) for x, w, _, g, geo in cases]
    errors = []

    def worker(i):
        x, w, b, g, geo = cases[i]
        try:
            for _ in range(5):
                np.testing.assert_array_equal(ck.conv2d_forward(x, w, b, *geo, "tanh"), expected[i])
                np.testing.assert_array_equal(ck.conv2d_backward_input(g, w, x.shape, *geo), expected_dx[i])
        except Exception as error:  # surfaced below: a thread's exception would otherwise be lost
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_conv2d_geometries_c_does_not_take_go_to_the_reference(c, monkeypatch):
    """Mismatched shapes are not the C kernel's business: the reference gets the call (and its error)."""
    calls = []
    monkeypatch.setattr(ck.conv.ref, "conv2d_forward", lambda *args: calls.append(args) or "reference")
    x, weight, bias, _, geo = case("stride 2")
    assert ck.conv2d_forward(x, weight[:, :2], bias, *geo, None) == "reference"  # channels do not match
    assert ck.conv2d_forward(x, weight, bias[:3], *geo, None) == "reference"  # bias does not match
    assert ck.conv2d_forward(x, weight, bias, *geo, "gelu") == "reference"  # no such activation in C
    assert ck.conv2d_forward(x.astype(np.float64), weight, bias, *geo, None) == "reference"
    assert ck.conv2d_forward(x, weight, bias, (2, 2), (1, 1), (1, 1), 2, None) == "reference"  # 5 channels, 2 groups
    assert len(calls) == 5 and c == []


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_im2col_col2im_with_pairs_and_dilation(c, name):
    """The contract's core im2col / col2im (the rows layout over the batch) on every geometry above."""
    x, weight, _, _, (stride, padding, dilation, _) = case(name, seed=50)
    kernel = weight.shape[2:]
    cols = ck.im2col(x, kernel, stride, padding, dilation)
    np.testing.assert_array_equal(cols, ref.im2col(x, kernel, stride, padding, dilation))  # a copy: exact
    g = rand(*cols.shape, seed=51)
    got = ck.col2im(g, x.shape, kernel, stride, padding, dilation)
    want = ref.col2im(g.astype(np.float64), x.shape, kernel, stride, padding, dilation)
    scale = ref.col2im(np.abs(g).astype(np.float64), x.shape, kernel, stride, padding, dilation)
    assert_sum_close(got, want, scale, kernel[0] * kernel[1], name)  # each pixel sums <= kh*kw patches
    assert c == ["mdk_im2col", "mdk_col2im"]


POOLS = [  # (n, c, h, w, kernel, stride, padding)
    (2, 3, 8, 9, (2, 2), (2, 2), (0, 0)),
    (2, 16, 28, 28, (2, 2), (2, 2), (0, 0)),  # the CNN's first pooling: 14 windows a row, one masked vector
    (1, 3, 5, 70, (2, 2), (2, 2), (0, 0)),  # 35 windows a row: two full AVX-512 vectors and a tail
    (2, 2, 7, 37, (2, 2), (2, 2), (0, 0)),  # odd height and width: a last row and column no window covers
    (1, 2, 4, 32, (2, 2), (2, 2), (0, 0)),  # exactly one AVX-512 vector (two AVX2 vectors) a row
    (1, 5, 7, 7, (2, 2), (2, 2), (0, 0)),  # odd size: the last row and column belong to no window
    (2, 2, 9, 11, (3, 2), (2, 1), (1, 1)),
    (1, 3, 6, 10, (1, 3), (1, 3), (0, 1)),
    (3, 1, 12, 5, (4, 4), (3, 3), (2, 2)),
]


@pytest.mark.parametrize("geometry", POOLS)
def test_max_pool_with_pairs(c, geometry):
    n, ch, h, w, kernel, stride, padding = geometry
    x = np.round(rand(n, ch, h, w, seed=60) * 2) / 2  # many ties: the first maximum must win
    x.flat[:: max(1, x.size // 7)] = -np.inf
    x.flat[3 :: max(1, x.size // 5)] = np.nan  # a NaN wins its window, as np.argmax picks it
    out, argmax = ck.max_pool2d_forward(x, kernel, stride, padding)
    want_out, want_argmax = ref.max_pool2d_forward(x, kernel, stride, padding)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(argmax, want_argmax)
    g = rand(*out.shape, seed=61)
    # Overlapping windows add several gradients into one pixel, in any order: kh*kw terms at most.
    magnitudes = ref.max_pool2d_backward(np.abs(g).astype(np.float64), want_argmax, x.shape, kernel, stride, padding)
    assert_within(
        ck.max_pool2d_backward(g, argmax, x.shape, kernel, stride, padding),
        ref.max_pool2d_backward(g, want_argmax, x.shape, kernel, stride, padding),
        SAFETY * kernel[0] * kernel[1] * eps(np.float32) * magnitudes,
        f"max-pool backward {geometry}",
    )
    assert c == ["mdk_max_pool2d_forward", "mdk_max_pool2d_backward"]


def test_other_dtypes_go_to_the_reference(c):
    x, weight, bias, grad, geo = case("stride 2", seed=70)
    x64, w64, b64, g64 = f64(x, weight, bias, grad)
    np.testing.assert_array_equal(ck.conv2d_forward(x64, w64, b64, *geo, "relu"),
                                  ref.conv2d_forward(x64, w64, b64, *geo, "relu"))  # fmt: skip
    np.testing.assert_array_equal(ck.conv2d_backward_input(g64, w64, x.shape, *geo),
                                  ref.conv2d_backward_input(g64, w64, x.shape, *geo))  # fmt: skip
    np.testing.assert_array_equal(ck.conv2d_backward_weight(x64, g64, weight.shape, *geo),
                                  ref.conv2d_backward_weight(x64, g64, weight.shape, *geo))  # fmt: skip
    np.testing.assert_array_equal(ck.act_backward(g64, np.abs(g64), "tanh"), ref.act_backward(g64, np.abs(g64), "tanh"))
    assert c == []


# ---------------------------------------------------------------------------------------
# act_backward, the bias gradient's sum, linear
# ---------------------------------------------------------------------------------------
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, np.inf, -np.inf, np.nan, 3.0, -2.5], np.float32)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("shape", [(1,), (7, 33), (3, 5, 17), (2, 3, 4, 5), (64, 16, 28, 28)])
def test_act_backward_matches_the_reference_formulas_bit_for_bit(c, activation, shape):
    """The same float32 operations in the same order as grad * act'(y): identical bits (NaNs where the
    formula gives NaN, inf * 0 included), on every path (no FMA contraction: -ffp-contract=off)."""
    grad, y = rand(*shape, seed=1), rand(*shape, seed=2)
    if activation == "relu":
        y = np.maximum(y, 0)
    grad.flat[: min(grad.size, SPECIAL.size)] = SPECIAL[: grad.size]
    y.flat[: min(y.size, SPECIAL.size)] = np.roll(SPECIAL, 3)[: y.size]
    with np.errstate(invalid="ignore", over="ignore"):
        got = ck.act_backward(grad, y, activation)
        if activation == "relu":
            want = grad * (y > 0)
        elif activation == "sigmoid":
            want = grad * (y * (np.float32(1) - y))
        else:
            want = grad * (np.float32(1) - y * y)
    assert got.dtype == np.float32 and got.shape == y.shape
    np.testing.assert_array_equal(got.view(np.uint32)[~np.isnan(want)], want.view(np.uint32)[~np.isnan(want)])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert c == ["mdk_act_backward"]


def test_act_backward_without_activation_is_the_gradient_itself(c):
    grad = rand(5, 7)
    assert ck.act_backward(grad, rand(5, 7, seed=1), None) is grad and c == []


@pytest.mark.parametrize(
    "shape,axis",
    [((2, 3, 4, 5), (0, 2, 3)), ((64, 32, 14, 14), (0, 2, 3)), ((1, 257, 1), (0, 2)), ((3, 300, 7), (0, 2)),
     ((5, 3, 40), (2, 0)), ((2, 3, 4, 5, 6), (0, 1, 3, 4)), ((4, 17, 3, 3), (-4, -2, -1))],
)  # fmt: skip
@pytest.mark.parametrize("keepdims", [False, True])
def test_sum_over_every_axis_but_one(c, shape, axis, keepdims):
    """A convolution's bias gradient, grad.sum(axis=(0, 2, 3)), and its relatives: one C pass."""
    x = rand(*shape, seed=3)
    got = ck.sum(x, axis=axis, keepdims=keepdims)
    want = x.astype(np.float64).sum(axis=axis, keepdims=keepdims)
    assert got.shape == want.shape and got.dtype == np.float32
    assert_within(got, want, sum_atol(x, axis, keepdims, results=1), f"sum {shape} over {axis}")
    assert c == ["mdk_sum_keep_axis"]


def test_sum_over_every_axis_but_one_of_a_view(c):
    x = rand(6, 5, 4, 3, seed=4).transpose(0, 3, 2, 1)  # (6, 3, 4, 5), not contiguous
    want = x.astype(np.float64).sum(axis=(0, 2, 3))
    assert_within(ck.sum(x, axis=(0, 2, 3)), want, sum_atol(x, (0, 2, 3), results=1), "sum of a view")
    assert c == ["mdk_sum_keep_axis"]


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
def test_linear_applies_the_activation_in_the_gemm(c, activation):
    x, w, b = rand(65, 33, seed=1), rand(127, 33, seed=2), rand(127, seed=3)
    got = ck.linear(x, w, b, activation)
    z = x.astype(np.float64) @ w.astype(np.float64).T + b
    scale = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64).T + np.abs(b)
    want = activate(z, activation)
    assert_sum_close(got, want, scale, 33 + 1, f"linear {activation}", want)
    assert c == ["mdk_sgemm"]  # one call: the bias and activation ran in its epilogue


# ---------------------------------------------------------------------------------------
# parameter_storage
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(), 0, 5, (3, 0), (512, 784), (7, 3, 3, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_parameter_storage_is_aligned_contiguous_writable_and_fresh(shape, dtype):
    a, b = ck.parameter_storage(shape, dtype), ck.parameter_storage(shape, dtype)
    want_shape = (shape,) if isinstance(shape, int) else shape
    assert type(a) is np.ndarray and a.shape == want_shape and a.dtype == dtype
    assert a.flags.c_contiguous and a.flags.writeable
    assert a.size == 0 or a.ctypes.data % memory.ALIGNMENT == 0  # (an empty array points nowhere in particular)
    a[...] = 1
    b[...] = 2
    assert not np.shares_memory(a, b) and (a.size == 0 or a.flat[0] == 1)


def test_parameter_storage_rejects_bad_shapes_and_object_dtypes():
    with pytest.raises(ValueError, match="negative dimensions are not allowed"):
        ck.parameter_storage((3, -1), np.float32)
    with pytest.raises(TypeError):  # uninitialized memory cannot hold Python references
        ck.parameter_storage(3, object)
    with pytest.raises(TypeError):
        ck.parameter_storage((2.5, 3), np.float32)
