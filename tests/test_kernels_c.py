"""Every C kernel agrees with its NumPy twin, on every SIMD path this CPU can run.

Each test takes the `simd` fixture, so it runs once per path (scalar, avx2, avx512 on
x86-64; scalar, neon on aarch64), forced through the library's mdk_set_simd_path(). A path the
machine cannot run is skipped with a reason naming the missing CPU features.

The `c` fixture sets the size thresholds (every MIN_* of the kernel modules) to 0, so even
a 1x1 problem goes to C, and records which C functions were called, so a test fails if an
override silently fell back to NumPy.

Set MINIDL_TEST_CKERNELS_MODULE=/path/to/module.so to run these tests against another
build of the same sources (tests/test_sanitizers.py does this with an ASan/UBSan build).
"""

import itertools
import os
import subprocess
import sys
import threading
import time

import ckernel_helpers as helpers
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import TRANSCENDENTAL_ULPS, assert_within, eps, half_ulp_float16, linear_atol, matmul_atol, sum_atol

from minidl.backend import c as ck
from minidl.backend import reference_kernels as nk
from minidl.backend.c import _ffi

pytestmark = pytest.mark.skipif(not ck.available, reason=f"C kernels not built: {ck.unavailable_reason}")

_ALT, PATHS, X86 = helpers.ALT, helpers.PATHS, helpers.X86
simd, c = helpers.simd, helpers.c  # the fixtures (see ckernel_helpers)

AWKWARD = [1, 3, 7, 17, 31, 33, 65, 127, 129]


def rand(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


F32 = eps(np.float32)
SUBNORMAL = 2.0**-148  # results below 2^-126 have a fixed spacing of 2^-149, no relative accuracy: two steps


def assert_gemm_close(got, a, b, bias=None):
    """Our float32 GEMM against the exact (float64) product: the dot-product bound, one side rounding.

    Any blocking, lane split or FMA keeps each output within (k + 1)·eps·(|a||b| + |bias|).
    """
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = a64 @ b64 + (0 if bias is None else bias)
    assert got.shape == want.shape and got.dtype == np.float32
    atol = matmul_atol(a, b, results=1) if bias is None else linear_atol(a, b.T, bias, results=1)
    assert_within(got, want, atol, f"sgemm {a.shape} @ {b.shape}")


def c_row_sum_depth(n):
    """Additions a term goes through in the C row sum (rowops_impl.h): n/32 in its lane (per 4096-block),
    5 to combine 32 lanes, or up to 31 in the tail; then the block's double total and the final float."""
    return max(min(n, 4096) // 32 + 5, min(n, 31)) + 2


def shifted(x):
    """x - max(x) over the last axis, rounded to float32 exactly as the C kernels and the twins do it.

    The shift is one IEEE subtraction from the same max, so it is bit-identical everywhere; the
    float64 twin evaluated on it is then the exact answer to the rest of the computation.
    """
    return (x - x.max(axis=-1, keepdims=True)).astype(np.float64)


def views(x, kind):
    """x itself or a non-contiguous view with the same values."""
    if kind == "contig":
        return x
    if kind == "T":  # a transposed copy viewed back: same values, transposed strides
        return np.ascontiguousarray(x.T).T
    if kind == "sliced":  # every other row/column of a bigger array
        big = np.zeros((2 * x.shape[0], 2 * x.shape[1]), np.float32)
        big[::2, ::2] = x
        return big[::2, ::2]
    if kind == "reversed":  # negative strides
        return np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------
# GEMM
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("m,k,n", [(m, k, n) for m, k, n in itertools.product(AWKWARD, [1, 17, 129], AWKWARD)][::4])
def test_matmul_awkward_sizes(c, m, k, n):
    a, b = rand(m, k, seed=1), rand(k, n, seed=2)
    assert_gemm_close(ck.matmul(a, b), a, b)
    assert "mdk_sgemm" in c


@pytest.mark.parametrize("kind_a,kind_b", list(itertools.product(["contig", "T", "sliced", "reversed"], repeat=2)))
def test_matmul_strided_operands_without_copies(c, kind_a, kind_b):
    a, b = rand(33, 65, seed=3), rand(65, 31, seed=4)
    va, vb = views(a, kind_a), views(b, kind_b)
    assert not (kind_a != "contig" and va.flags.c_contiguous)
    assert_gemm_close(ck.matmul(va, vb), a, b)
    assert c == ["mdk_sgemm"]


def test_matmul_many_cache_blocks(c, simd):
    """Tiny KC/MC/NC so small matrices cross every block boundary of the five loops."""
    lib = _ffi.lib
    path = ck.SIMD_PATHS[simd]
    saved = _ffi.ffi.new("int64_t[3]")
    assert lib.mdk_gemm_get_blocking(path, saved) == 0
    try:
        assert lib.mdk_gemm_set_blocking(path, 5, 13, 70) == 0
        for m, k, n in [(65, 33, 129), (31, 17, 127), (1, 129, 1)]:
            a, b = rand(m, k, seed=m), rand(n, k, seed=n)
            bias = rand(n, seed=7)
            assert_gemm_close(ck.matmul(a, b.T), a, b.T)
            assert_gemm_close(ck.linear(a, b, bias), a, b.T, bias)
            got = ck.linear(a, b, bias, "relu")
            # Our GEMM, same inputs, blocking and path: the same sums; relu in the epilogue is exact.
            np.testing.assert_allclose(got, np.maximum(ck.linear(a, b, bias), 0), rtol=0, atol=0)
    finally:
        lib.mdk_gemm_set_blocking(path, saved[0], saved[1], saved[2])


def test_matmul_packing_workspace_is_reused_grown_released_and_per_thread(c):
    """The packing buffers persist per thread: shrinking, growing and releasing them keep results exact,
    and threads running products at the same time (the GIL is released) do not share them."""
    shapes = [(128, 784, 512), (7, 33, 65), (300, 1100, 700), (64, 64, 64)]
    for m, k, n in shapes:
        a, b = rand(m, k, seed=m), rand(k, n, seed=n)
        assert_gemm_close(ck.matmul(a, b), a, b)
    _ffi.lib.mdk_gemm_release_workspace()
    _ffi.lib.mdk_gemm_release_workspace()  # releasing twice is harmless
    a, b = rand(129, 257, seed=5), rand(257, 130, seed=6)
    assert_gemm_close(ck.matmul(a, b), a, b)

    results, errors = {}, []

    def worker(seed):
        try:
            for round_ in range(3):
                m, k, n = 100 + 37 * seed, 300 + 11 * round_, 200 + 13 * seed
                a, b = rand(m, k, seed=seed), rand(k, n, seed=seed + 50)
                results[(seed, round_)] = (ck.matmul(a, b), a, b)
        except Exception as error:  # surfaced below: a thread's exception would otherwise be lost
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 12
    for got, a, b in results.values():
        assert_gemm_close(got, a, b)


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc to read resident memory")
def test_matmul_workspace_is_freed_when_a_thread_exits(c):
    """Each thread's packing buffers (~1.4 MB for a 512^3 product) must go away with the thread."""
    a, b = rand(512, 512, seed=1), rand(512, 512, seed=2)

    def one_product():
        ck.matmul(a, b)

    def run_threads(count):
        for _ in range(count):
            t = threading.Thread(target=one_product)
            t.start()
            t.join()

    run_threads(5)  # let the allocator reach its steady state first
    before = _resident_bytes()
    run_threads(60)
    grown = _resident_bytes() - before
    assert grown < 30e6, f"resident memory grew by {grown / 1e6:.0f} MB over 60 threads: workspaces leak"


def test_matmul_empty_inner_dimension(c):
    a, b = np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)
    np.testing.assert_array_equal(ck.matmul(a, b), np.zeros((3, 4), np.float32))
    bias = rand(4, seed=1)
    np.testing.assert_array_equal(
        ck.linear(a, np.zeros((4, 0), np.float32), bias, "relu"), np.maximum(bias, 0)[None].repeat(3, 0)
    )


@pytest.mark.parametrize(
    "a_shape,b_shape",
    [((2, 3, 7, 17), (17, 5)), ((1, 33, 9), (4, 9, 65)), ((5, 17, 31), (5, 31, 3)), ((3, 1, 6, 4), (2, 4, 7))],
)
def test_batched_matmul_with_broadcasting(c, a_shape, b_shape):
    a, b = rand(*a_shape, seed=1), rand(*b_shape, seed=2)
    got = ck.matmul(a, b)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert got.shape == want.shape
    assert_within(got, want, matmul_atol(a, b, results=1), "batched sgemm vs float64")
    assert "mdk_sgemm_batched" in c


def test_batched_matmul_transposed_views(c):
    a, b = rand(4, 31, 17, seed=1), rand(4, 33, 17, seed=2)
    got = ck.matmul(a, b.transpose(0, 2, 1))  # a strided batch: no copies
    bt = b.transpose(0, 2, 1)
    assert_within(got, np.matmul(a, bt), matmul_atol(a, bt), "batched sgemm vs NumPy's float32 BLAS")
    assert c == ["mdk_sgemm_batched"]


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_fuses_bias_and_activation(c, activation, with_bias):
    x, w = rand(65, 33, seed=1), rand(127, 33, seed=2)
    bias = rand(127, seed=3) if with_bias else None
    got = ck.linear(x, w, bias, activation)
    want = nk.linear(
        x.astype(np.float64), w.astype(np.float64), None if bias is None else bias.astype(np.float64), activation
    )
    # Against float64: the linear bound carried through the activation (Lipschitz <= 1), plus our
    # sigmoid/tanh's own error relative to the output (see test_unary_ops).
    act_rtol = 0.0 if activation in (None, "relu") else (2 * TRANSCENDENTAL_ULPS + 3) * F32
    assert_within(got, want, linear_atol(x, w, bias, results=1), f"linear_act {activation}", rtol=act_rtol)
    assert c == ["mdk_sgemm"]  # one call: bias and activation ran in the epilogue


def test_matmul_falls_back_to_numpy_for_other_dtypes_and_vectors(c):
    a64, b64 = rand(5, 4).astype(np.float64), rand(4, 3).astype(np.float64)
    np.testing.assert_array_equal(ck.matmul(a64, b64), a64 @ b64)  # the same np.matmul call on the same arrays
    v = rand(4)
    assert_within(ck.matmul(rand(5, 4), v), rand(5, 4) @ v, matmul_atol(rand(5, 4), v))  # new arrays: any BLAS order
    assert c == []


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 80),
    k=st.integers(0, 80),
    n=st.integers(1, 80),
    ta=st.booleans(),
    tb=st.booleans(),
    path=st.sampled_from(PATHS),
)
def test_matmul_hypothesis_shapes(m, k, n, ta, tb, path):
    if path not in ck.simd_paths_supported():
        return  # the per-path fixture tests report the skip with its reason
    lib = _ALT.lib if _ALT is not None else ck.lib
    saved = (_ffi.lib, _ffi.ffi, ck.gemm.MIN_GEMM_FLOPS, lib.mdk_simd_path())
    try:
        _ffi.lib, _ffi.ffi, ck.gemm.MIN_GEMM_FLOPS = lib, (_ALT or ck).ffi, 0
        assert lib.mdk_set_simd_path(ck.SIMD_PATHS[path]) == 0
        a = rand(k, m, seed=m).T if ta else rand(m, k, seed=m)
        b = rand(n, k, seed=n).T if tb else rand(k, n, seed=n)
        assert_gemm_close(ck.matmul(a, b), a, b)
    finally:
        _ffi.lib, _ffi.ffi, ck.gemm.MIN_GEMM_FLOPS = saved[:3]
        lib.mdk_set_simd_path(saved[3])


# ---------------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------------
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30, 1e-45, 88.0, 89.0, -87.0, -104.0, -110.0, 20.0, -20.0,
                    0.49, 0.5, 0.51, -0.5, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan], np.float32)  # fmt: skip


def _values(n, seed=0):
    x = rand(n, seed=seed, scale=4.0)
    x[: min(n, SPECIAL.size)] = SPECIAL[: min(n, SPECIAL.size)]
    return x


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum", "minimum"])
@pytest.mark.parametrize("n", [1, 7, 33, 129, 1000])
def test_binary_ops(c, name, n):
    x, y = _values(n, seed=1), np.roll(_values(n, seed=2), 3)
    with np.errstate(all="ignore"):
        want = getattr(nk, name)(x, y)
        got = getattr(ck, name)(x, y)
    np.testing.assert_array_equal(got, want)  # IEEE ops: exact, NaNs in the same places
    assert c == ["mdk_binary"]


def test_binary_ops_noncontiguous_inputs_are_made_contiguous(c):
    x, y = rand(40, 30, seed=1), rand(40, 30, seed=2)
    got = ck.mul(x.T, y.T)
    np.testing.assert_array_equal(got, x.T * y.T)
    assert got.shape == (30, 40) and c == ["mdk_binary"]


def test_binary_ops_broadcasting_and_scalars_go_to_numpy(c):
    x = rand(4, 5)
    np.testing.assert_array_equal(ck.add(x, rand(5, seed=1)), x + rand(5, seed=1))
    np.testing.assert_array_equal(ck.mul(x, 2.0), x * 2.0)
    np.testing.assert_array_equal(ck.sub(x.astype(np.float64), x.astype(np.float64)), np.zeros((4, 5)))
    assert c == []


@pytest.mark.parametrize("name", ["neg", "abs", "sqrt", "exp", "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("n", [1, 17, 65, 1000])
def test_unary_ops(c, name, n):
    x = _values(n, seed=n)
    with np.errstate(all="ignore"):
        want = getattr(nk, name)(x)
        got = getattr(ck, name)(x)
        exact = getattr(nk, name)(x.astype(np.float64)).astype(np.float32)  # the twin in float64, rounded once
    assert got.dtype == np.float32 and got.shape == x.shape
    if name in ("neg", "abs", "sqrt", "relu"):
        np.testing.assert_array_equal(got, want)  # IEEE operations: exact on every machine
    else:
        # Against the twin in float64 (NumPy's own float32 approximations differ by machine):
        # exp within TRANSCENDENTAL_ULPS; sigmoid (e^-|x|, 1 + z, 1/(.), z·inv) and tanh
        # ((1 - e)/(1 + e), e = e^-2|x|; a Taylor series near 0) twice that; one more ulp for
        # rounding the float64 value. Subnormal results (< 2^-126) have a fixed spacing of
        # 2^-149 and no relative accuracy: two steps absolute.
        ulps_allowed = TRANSCENDENTAL_ULPS * (1 if name == "exp" else 2) + 1
        assert_within(got, exact, SUBNORMAL, name, rtol=ulps_allowed * F32)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert c == ["mdk_unary"]


def test_exp_accuracy_on_a_dense_sweep(c):
    x = np.linspace(-104, 89, 200_001, dtype=np.float32)
    got, want = ck.exp(x), np.exp(x.astype(np.float64))
    normal = (want > np.finfo(np.float32).tiny) & (want <= np.finfo(np.float32).max)
    rel = np.abs(got[normal] - want[normal]) / want[normal]
    # Our exp's own accuracy, ~2.5 ulp: stricter than the TRANSCENDENTAL_ULPS the cross-library
    # tolerances assume, and machine-independent (fixed IEEE operations on each path).
    assert rel.max() < 3e-7
    small = want <= np.finfo(np.float32).tiny
    assert np.all(np.abs(got[small] - want[small]) <= 2.0**-149)  # subnormals: within one step
    assert np.isinf(got[want > np.finfo(np.float32).max]).all()


def test_act_backward_relu(c):
    g, y = rand(129, seed=1), np.maximum(_values(129, seed=2), 0)
    np.testing.assert_array_equal(ck.act_backward(g, y, "relu"), nk.act_backward(g, y, "relu"))
    assert c == ["mdk_act_backward"]


def _bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def test_act_backward_relu_keeps_nan_inf_and_signed_zeros_like_the_twin(c):
    """grad * [y > 0]: a NaN or inf gradient at an inactive unit gives NaN, and zeros keep their sign."""
    g = np.array([np.nan, np.inf, -np.inf, -1.0, 2.0, -0.0, np.nan, -3.0] * 9, np.float32)
    y = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 3.0, 4.0, 0.0] * 9, np.float32)
    with np.errstate(invalid="ignore"):  # inf * 0 = NaN is the point here
        np.testing.assert_array_equal(_bits(ck.act_backward(g, y, "relu")), _bits(nk.act_backward(g, y, "relu")))
        got = ck.act_backward(g.reshape(8, 9), y.reshape(8, 9), "relu")
        want = nk.act_backward(g.reshape(8, 9), y.reshape(8, 9), "relu")
    np.testing.assert_array_equal(_bits(got), _bits(want))


def test_exp_of_very_negative_numbers_is_exactly_zero(c):
    """Below ln(smallest subnormal) e^x rounds to 0, as NumPy's does; masked softmax entries stay 0."""
    x = np.array([-np.inf, -1e30, -104.0, -110.0, -200.0] * 7, np.float32)
    np.testing.assert_array_equal(ck.sigmoid(x), nk.sigmoid(x))
    row = np.array([[0.0, -np.inf, 1.0, -np.inf] * 8], np.float32)
    probs = ck.softmax(row)
    assert np.all(probs[row == -np.inf] == 0.0)
    assert_within(probs, nk.softmax(shifted(row)), SUBNORMAL, "softmax with -inf", rtol=_softmax_ulps(32) * F32)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 33), (65, 17), (3, 5, 31)])
def test_act_backward(c, activation, shape):
    y = nk.linear(rand(int(np.prod(shape[:-1])), 4, seed=1, scale=3), rand(shape[-1], 4, seed=2), None, activation)
    y, g = y.reshape(shape), rand(*shape, seed=3)
    got = ck.act_backward(g, y, activation)
    want = nk.act_backward(g.astype(np.float64), y.astype(np.float64), activation)
    # dz = g·act'(y): 3 roundings, and 1 - y² cancels near |y| = 1, so absolute in |g|(1 + y²).
    assert_within(got, want, 3 * F32 * np.abs(g) * (1 + y.astype(np.float64) ** 2), f"{activation} dz")
    assert c == ["mdk_act_backward"]


# ---------------------------------------------------------------------------------------
# Reductions and softmax family
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sum", "max"])
@pytest.mark.parametrize(
    "shape,axis",
    [((1,), None), ((129,), 0), ((17, 33), 1), ((17, 33), 0), ((17, 33), -1), ((17, 33), None), ((3, 7, 65), (1, 2)),
     ((3, 7, 65), (0, 1)), ((3, 7, 65), 1), ((2, 5000), 1)],
)  # fmt: skip
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(c, name, shape, axis, keepdims):
    x = rand(*shape, seed=len(shape))
    got = getattr(ck, name)(x, axis=axis, keepdims=keepdims)
    want = getattr(nk, name)(x, axis=axis, keepdims=keepdims)
    assert np.shape(got) == np.shape(want) and np.asarray(got).dtype == np.float32
    if name == "max":
        np.testing.assert_array_equal(got, want)  # a selection: exact
    else:
        # Against the twin in float64, with the depth of C's fixed order: a row sum (inner == 1)
        # goes through 32 lanes, a column sum adds row after row.
        _, count, inner, _, _ = ck.reduce._axis_split(shape, axis)
        depth = c_row_sum_depth(count) if inner == 1 else count
        exact = nk.sum(x.astype(np.float64), axis=axis, keepdims=keepdims)
        assert_within(got, exact, sum_atol(x, axis, keepdims, results=1, depth=depth), f"sum {shape} axis={axis}")
    assert c == [f"mdk_{name}_axis"]


def test_reductions_noncontiguous_and_nan(c):
    x = rand(40, 30, seed=1)
    exact = x.T.astype(np.float64).sum(axis=1)  # C copies x.T to rows of 40 and sums each with its lanes
    assert_within(ck.sum(x.T, axis=1), exact, sum_atol(x.T, axis=1, results=1, depth=c_row_sum_depth(40)))
    x[5, 7] = np.nan
    assert np.isnan(ck.max(x, axis=1)[5]) and not np.isnan(ck.max(x, axis=1)[4])
    assert np.isnan(ck.max(x, axis=0)[7]) and np.isnan(ck.max(x))
    np.testing.assert_array_equal(ck.max(x, axis=1), np.max(x, axis=1))


def test_sum_of_a_long_row_is_accurate(c):
    x = np.full(1_000_003, 0.1, np.float32)
    # Lanes, 4096-blocks and a double total keep the depth at 135 additions (1.6e-5 relative,
    # worst case); one float32 accumulator would go through a million and be off by ~1%.
    exact = x.astype(np.float64).sum()
    assert_within(ck.sum(x), exact, sum_atol(x, results=1, depth=c_row_sum_depth(x.size)), "long row sum")


def _softmax_ulps(n):
    """C softmax against the float64 twin on the same shifted row, in ulps: exp (TRANSCENDENTAL_ULPS),
    the row sum of positive terms (relative; depth from c_row_sum_depth), 1/s and e·(1/s)."""
    return TRANSCENDENTAL_ULPS + c_row_sum_depth(n) + 2


def _log_softmax_atol(want, n):
    """(x - m) - log s: the sum's relative error becomes an absolute one in log s, logf adds its ulps of
    |log s| <= log n, and the last subtraction rounds at |result|."""
    return (c_row_sum_depth(n) + TRANSCENDENTAL_ULPS * (1 + np.log(n)) + 2) * F32 + F32 * np.abs(want)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (17, 129), (65, 1000), (2, 3, 31)])
def test_softmax_and_log_softmax(c, shape):
    x = rand(*shape, seed=1, scale=5)
    n = shape[-1]
    assert_within(ck.softmax(x), nk.softmax(shifted(x)), SUBNORMAL, "softmax", rtol=_softmax_ulps(n) * F32)
    want = nk.log_softmax(shifted(x))
    assert_within(ck.log_softmax(x), want, _log_softmax_atol(want, n), "log_softmax")
    x[0, ...] = 1e4  # huge logits must not overflow
    assert np.isfinite(ck.log_softmax(x)).all()
    assert c.count("mdk_softmax") == 1 and c.count("mdk_log_softmax") == 2


@pytest.mark.parametrize("rows,cols", [(1, 1), (1, 10), (7, 3), (33, 129), (128, 10), (17, 1000)])
def test_cross_entropy_forward_backward(c, rows, cols):
    logits = rand(rows, cols, seed=1, scale=4)
    logits[0, 0] = 80.0  # exp would overflow without the max shift
    targets = np.random.default_rng(2).integers(0, cols, rows)
    losses, probs = ck.cross_entropy_forward(logits, targets)
    want_losses, want_probs = nk.cross_entropy_forward(shifted(logits), targets)
    log_probs = np.log(want_probs)
    assert_within(losses, want_losses, _log_softmax_atol(log_probs, cols)[np.arange(rows), targets], "CE losses")
    assert_within(probs, want_probs, SUBNORMAL, "CE probabilities", rtol=_softmax_ulps(cols) * F32)
    g = rand(rows, seed=3)
    # (p - [j = t])·g: the same two IEEE operations per element in C and NumPy, so the same bits.
    np.testing.assert_array_equal(
        ck.cross_entropy_backward(probs, targets, g), nk.cross_entropy_backward(probs, targets, g)
    )
    assert c == ["mdk_cross_entropy_forward", "mdk_cross_entropy_backward"]


def test_cross_entropy_target_out_of_range_raises(c):
    with pytest.raises(IndexError, match="target 3 of row 2 is out of range for 3 classes"):
        ck.cross_entropy_forward(rand(4, 3), np.array([0, 1, 3, 2]))
    with pytest.raises(IndexError, match="target -1 of row 0 is out of range"):
        ck.cross_entropy_backward(np.full((4, 3), 1 / 3, np.float32), np.array([-1, 1, 0, 2]), rand(4))


# ---------------------------------------------------------------------------------------
# Convolution helpers and pooling
# ---------------------------------------------------------------------------------------
GEOMETRIES = [  # (n, c, h, w, kh, kw, stride, padding)
    (1, 1, 1, 1, 1, 1, 1, 0),
    (2, 3, 7, 7, 3, 3, 1, 1),
    (1, 2, 17, 13, 5, 3, 2, 2),
    (3, 1, 31, 33, 3, 3, 2, 0),
    (1, 4, 9, 9, 7, 7, 3, 3),
    (2, 2, 8, 6, 2, 2, 2, 0),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_im2col_col2im(c, geometry):
    n, ch, h, w, kh, kw, stride, pad = geometry
    x = rand(n, ch, h, w, seed=1)
    window = ((kh, kw), (stride, stride), (pad, pad))
    cols = ck.im2col(x, *window)
    np.testing.assert_array_equal(cols, nk.im2col(x, *window))
    g = rand(*cols.shape, seed=2)
    # Each pixel adds up the patches that cover it (at most kh·kw), in C's order or NumPy's.
    atol = 2 * kh * kw * F32 * nk.col2im(np.abs(g).astype(np.float64), x.shape, *window)
    assert_within(ck.col2im(g, x.shape, *window), nk.col2im(g, x.shape, *window), atol)
    assert c == ["mdk_im2col", "mdk_col2im"]


def test_im2col_noncontiguous_input(c):
    x = rand(3, 2, 9, 11, seed=1).transpose(0, 1, 3, 2)
    window = ((3, 3), (1, 1), (1, 1))
    np.testing.assert_array_equal(ck.im2col(x, *window), nk.im2col(x, *window))
    assert c == ["mdk_im2col"]


@pytest.mark.parametrize(
    ("n", "h", "w", "ch"), [(2, 1, 2, 3), (2, 3, 5, 7), (3, 17, 1, 33), (2, 31, 33, 16), (5, 7, 9, 65)]
)
def test_nhwc_nchw_copies_run_in_c_and_match_numpy(c, n, h, w, ch):
    """conv2d's permute(...).contiguous() and its backward's reshape: a batched transpose in C (every path)."""
    nhwc = rand(n, h, w, ch, seed=1)
    to_nchw = nhwc.transpose(0, 3, 1, 2)  # a view: the copy is a transpose per image
    got = ck.ascontiguousarray(to_nchw)
    np.testing.assert_array_equal(got, np.ascontiguousarray(to_nchw))
    assert got.flags.c_contiguous
    nchw = rand(n, ch, h, w, seed=2)
    back = nchw.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(ck.reshape(back, (n * h * w, ch)), back.reshape(n * h * w, ch))
    np.testing.assert_array_equal(ck.ascontiguousarray(back), np.ascontiguousarray(back))
    assert c == ["mdk_transpose_batched"] * 3


def test_reshape_stays_a_view_where_numpy_makes_one(c):
    back = rand(2, 3, 4, 5, seed=1).transpose(0, 2, 3, 1)
    view = ck.reshape(back, (2, 4, 5, 3, 1))  # splitting off a unit axis needs no copy
    assert np.shares_memory(view, back) and c == []
    one_image = rand(1, 3, 4, 5, seed=2).transpose(0, 2, 3, 1)  # with one image, H and W merge: a view
    assert np.shares_memory(ck.reshape(one_image, (20, 3)), one_image) and c == []
    for other in (rand(2, 3, 4, 5).transpose(0, 2, 1, 3), rand(2, 3, 4, 5)[:, ::2], rand(3, 4, 5).transpose(2, 0, 1)):
        np.testing.assert_array_equal(ck.ascontiguousarray(other), np.ascontiguousarray(other))  # other layouts
        np.testing.assert_array_equal(ck.reshape(other, (-1,)), other.reshape(-1))
    assert c == []  # ... go to NumPy
    np.testing.assert_array_equal(ck.ascontiguousarray([[1.0, 2.0]]), [[1.0, 2.0]])  # and non-arrays too


@pytest.mark.parametrize("geometry", [g for g in GEOMETRIES if g[4] == g[5] and g[7] <= g[4] // 2])
def test_max_pool(c, geometry):
    n, ch, h, w, k, _, stride, pad = geometry
    k, stride, pad = (k, k), (stride, stride), (pad, pad)
    x = np.round(rand(n, ch, h, w, seed=3) * 2) / 2  # many ties: the first maximum must win
    x.flat[:: max(1, x.size // 5)] = -np.inf
    out, argmax = ck.max_pool2d_forward(x, k, stride, pad)
    want_out, want_argmax = nk.max_pool2d_forward(x, k, stride, pad)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(argmax, want_argmax)
    g = rand(*out.shape, seed=4)
    # Overlapping windows (stride < kernel) add several gradients into one pixel, in any order.
    magnitudes = nk.max_pool2d_backward(np.abs(g).astype(np.float64), want_argmax, x.shape, k, stride, pad)
    assert_within(
        ck.max_pool2d_backward(g, argmax, x.shape, k, stride, pad),
        nk.max_pool2d_backward(g, want_argmax, x.shape, k, stride, pad),
        2 * k[0] * k[1] * F32 * magnitudes,
    )
    assert c == ["mdk_max_pool2d_forward", "mdk_max_pool2d_backward"]


def test_max_pool_nan_wins_like_numpy(c):
    x = rand(1, 1, 4, 4, seed=1)
    x[0, 0, 1, 1] = np.nan
    out, argmax = ck.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    want_out, want_argmax = nk.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(argmax, want_argmax)
    np.testing.assert_array_equal(out, want_out)


# ---------------------------------------------------------------------------------------
# Optimizer updates: bit-for-bit the NumPy semantics
# ---------------------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd": ("sgd_update", 1, {"lr": 0.1}),
    "sgd_momentum_wd": ("sgd_update", 1, {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3}),
    "sgd_nesterov": ("sgd_update", 1, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "adagrad": ("adagrad_update", 1, {"lr": 0.1, "weight_decay": 1e-2}),
    "rmsprop": ("rmsprop_update", 1, {"lr": 0.01, "alpha": 0.9, "eps": 1e-6}),
    "adam": ("adam_update", 2, {"lr": 1e-3, "weight_decay": 1e-4}),
}


@pytest.mark.parametrize("case", sorted(OPTIMIZERS))
@pytest.mark.parametrize("n", [1, 33, 1000])
def test_optimizer_updates_match_numpy_bit_for_bit(c, case, n):
    kernel, n_state, kwargs = OPTIMIZERS[case]
    arrays = {}
    for impl in ("numpy", "c"):
        param = rand(n, seed=1)
        state = [np.zeros(n, np.float32) for _ in range(n_state)]
        for step in range(1, 6):
            grad = rand(n, seed=10 + step)
            args = (param, grad, *state, step) if kernel == "adam_update" else (param, grad, *state)
            getattr(nk if impl == "numpy" else ck, kernel)(*args, **kwargs)
        arrays[impl] = [param, *state]
    for want, got in zip(arrays["numpy"], arrays["c"]):
        np.testing.assert_array_equal(got, want)
    assert c == [f"mdk_{kernel}"] * 5


def test_sgd_without_momentum_accepts_no_velocity(c):
    p1, p2, g = rand(50, seed=1), rand(50, seed=1), rand(50, seed=2)
    nk.sgd_update(p1, g, None, 0.1)
    ck.sgd_update(p2, g, None, 0.1)
    np.testing.assert_array_equal(p1, p2)


def test_optimizer_rejects_noncontiguous_param_and_accepts_noncontiguous_grad(c):
    param = rand(20, 10, seed=1).T  # a transposed view: C would update the wrong elements
    with pytest.raises(ValueError, match="adam_update: param .* C-contiguous"):
        ck.adam_update(param, rand(10, 20), np.zeros((10, 20), np.float32), np.zeros((10, 20), np.float32), 1, 1e-3)
    with pytest.raises(ValueError, match="sgd_update: state array 0"):
        ck.sgd_update(rand(10, 20), rand(10, 20), np.zeros((20, 10), np.float32).T, 0.1, momentum=0.9)
    p1, p2 = rand(10, 20, seed=3), rand(10, 20, seed=3)
    g = rand(20, 10, seed=4).T
    nk.sgd_update(p1, g, None, 0.1)
    ck.sgd_update(p2, g, None, 0.1)
    np.testing.assert_array_equal(p1, p2)


# ---------------------------------------------------------------------------------------
# 16-bit conversions
# ---------------------------------------------------------------------------------------
def _conversion_inputs():
    """Every half as float32, the midpoints between neighbours (ties round to even), and around them."""
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32)
    mids = (halves[:-1].astype(np.float64) + halves[1:]) / 2
    m32 = mids.astype(np.float32)
    edges = [65504, 65519.99, 65520, 1e6, 3e38, np.inf, 1e-8, 2.0**-25, 2.0**-24, 1.5 * 2.0**-24, np.nan]
    x = np.concatenate([halves, m32, np.nextafter(m32, 0), np.nextafter(m32, 1e9), edges])
    x = x.astype(np.float32)
    return np.concatenate([x, -x])


def test_float32_to_float16_rounds_like_numpy(c):
    x = _conversion_inputs()
    with np.errstate(over="ignore"):
        got, want = ck.float32_to_float16(x), nk.float32_to_float16(x)
    assert got.dtype == np.float16
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint16), want[~nan].view(np.uint16))  # IEEE rounding: exact
    fits = np.abs(x) < 65520  # the rest overflows to inf (or is NaN)
    assert_within(got[fits].astype(np.float32), x[fits], half_ulp_float16(x[fits]), "float16 round trip")
    assert c == ["mdk_f32_to_f16"]


def test_float16_to_float32_every_half(c):
    h = np.arange(0, 1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    got, want = ck.float16_to_float32(h), nk.float16_to_float32(h)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))
    assert c == ["mdk_f16_to_f32"]


@pytest.mark.parametrize("n", [1, 15, 17, 1000])
def test_truncated16_roundtrip(c, n):
    x = _values(n, seed=n)
    t = ck.float32_to_truncated16(x)
    np.testing.assert_array_equal(t, nk.float32_to_truncated16(x))
    np.testing.assert_array_equal(
        ck.truncated16_to_float32(t).view(np.uint32), nk.truncated16_to_float32(t).view(np.uint32)
    )
    assert c == ["mdk_f32_to_trunc16", "mdk_trunc16_to_f32"]


# ---------------------------------------------------------------------------------------
# Dispatch, the GIL, fallbacks
# ---------------------------------------------------------------------------------------
def test_every_path_is_reported_and_the_best_is_the_default():
    assert "scalar" in ck.simd_paths_built() and "scalar" in ck.simd_paths_supported()
    if X86:
        assert ck.simd_paths_built() == ["scalar", "avx2", "avx512"]
    code = "from minidl.backend import c_kernels as ck; print(ck.simd_path())"
    env = {k: v for k, v in os.environ.items() if k != "MINIDL_SIMD"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == ck.simd_paths_supported()[-1]


@pytest.mark.parametrize("path", PATHS)
def test_minidl_simd_env_forces_the_path(path):
    code = (  # entries in [0, 1): no cancellation, so the bound is relative: 2·90·eps = 2.1e-5 < 1e-4
        "import numpy as np, minidl\n"
        "from minidl.backend import c_kernels as ck, describe\n"
        "a = np.random.rand(70, 90).astype(np.float32); b = np.random.rand(90, 50).astype(np.float32)\n"
        "assert np.allclose(ck.matmul(a, b), a @ b, rtol=1e-4)\n"
        "print(ck.simd_path(), describe()['simd_path'])\n"
    )
    env = dict(os.environ, MINIDL_SIMD=path)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if path in ck.simd_paths_supported():
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [path, path]
    else:  # must fail loudly, naming what is missing
        assert result.returncode != 0
        assert f"MINIDL_SIMD={path}" in result.stderr
        assert ("lacks" in result.stderr) or ("not compiled" in result.stderr)


def test_minidl_simd_env_rejects_unknown_names():
    # Without MINIDL_KERNELS from the caller's shell: =numpy would never load the C kernels, so never read MINIDL_SIMD.
    env = {k: v for k, v in os.environ.items() if k != "MINIDL_KERNELS"} | {"MINIDL_SIMD": "sse9"}
    result = subprocess.run([sys.executable, "-c", "import minidl"], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "MINIDL_SIMD=sse9" in result.stderr and "unknown SIMD path" in result.stderr


def test_set_simd_path_errors():
    with pytest.raises(ValueError, match="unknown SIMD path"):
        ck.set_simd_path("mmx")
    if X86:
        with pytest.raises(RuntimeError, match="not compiled"):
            ck.set_simd_path("neon")


def _python_ticks_during(call, repeats=3):
    """Run call() in a thread; count main-thread loop iterations in the middle half of each call.

    The edges of each timing window are excluded: the interpreter may switch threads
    between taking a timestamp and entering the call.
    """
    windows = []
    done = threading.Event()

    def worker():
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            windows.append((start, time.perf_counter()))
        done.set()

    stamps = []
    thread = threading.Thread(target=worker)
    thread.start()
    while not done.is_set():
        stamps.append(time.perf_counter())
    thread.join()
    stamps = np.array(stamps)
    ticks = 0
    for s, e in windows:
        quarter = (e - s) / 4
        ticks += int(((stamps > s + quarter) & (stamps < e - quarter)).sum())
    return ticks


def test_the_gil_is_released_while_a_kernel_runs():
    """Python code in another thread keeps running while a thread is inside a long C GEMM."""
    # Calls long enough (tens of ms) that a thread switch at a window's edge (5 ms
    # switch interval) cannot reach the middle half.
    a = rand(1536, 1536, seed=1)
    result = {}
    inside_c = _python_ticks_during(lambda: result.setdefault("c", ck.gemm.sgemm(a, a)))
    # Control: a C function that holds the GIL (sorting a shuffled list) lets no Python run meanwhile.
    data = list(np.random.default_rng(0).permutation(400_000))
    inside_gil_holder = _python_ticks_during(lambda: sorted(data))
    assert inside_gil_holder < 50, f"the control leaked {inside_gil_holder} ticks: the measurement is broken"
    assert inside_c > 1000, f"only {inside_c} Python iterations ran while the C GEMM was running"
    assert_gemm_close(result["c"], a, a)


def test_concurrent_calls_from_threads_are_correct():
    mats = [(rand(130, 70, seed=i), rand(70, 90, seed=i + 100)) for i in range(4)]
    results = [None] * 4

    def run(i):
        for _ in range(5):
            results[i] = ck.gemm.sgemm(*mats[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (a, b), got in zip(mats, results):
        assert_gemm_close(got, a, b)


def test_without_the_built_module_minidl_runs_on_numpy_and_says_so_once():
    code = (
        "import sys, warnings\n"
        "sys.modules['minidl.backend._ckernels'] = None  # as if it was never built\n"
        "import minidl\n"
        "from minidl.backend import c_kernels, describe, kernels_name\n"
        "assert c_kernels.available is False and kernels_name() == 'numpy'\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    info = describe(); describe()\n"
        "assert len(w) == 1 and 'C kernels are not available' in str(w[0].message), w\n"
        "assert info['c_kernels'].startswith('not available') and info['simd_path'] is None\n"
        "try:\n"
        "    minidl.set_kernels('c')\n"
        "except RuntimeError as e:\n"
        "    print('raised:', e)\n"
        "x = minidl.randn(4, 3, requires_grad=True); (x @ x.T).sum().backward(); print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MINIDL_KERNELS", "MINIDL_SIMD")}
    result = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code], env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "raised: set_kernels: the C kernels are not built" in result.stdout
    assert result.stdout.strip().endswith("ok") and result.stderr == ""


def test_skinny_products_run_in_c_and_one_or_two_rows_stay_on_numpy(monkeypatch):
    # Below MIN_GEMM_FLOPS products go to NumPy, except skinny ones (a few rows against a large
    # matrix, or an outer product), where OpenBLAS's small-matrix path is slow (gemm.py).
    ran_in_c = []
    c_gemm = ck.gemm.sgemm

    def counted(a, b, *args, **kwargs):
        ran_in_c.append(a.shape)
        return c_gemm(a, b, *args, **kwargs)

    monkeypatch.setattr(ck.gemm, "sgemm", counted)
    w = rand(512, 784, seed=1)
    x = rand(1, 784, seed=2)
    cases = [  # (a, b, should run in C)
        (rand(1, 512, seed=3), w, False),  # dX of one example: NumPy's matrix-vector kernel
        (rand(2, 512, seed=4), w, False),
        (rand(4, 512, seed=5), w, True),  # dX of a batch of 4
        (rand(16, 512, seed=6), w, True),
        (rand(512, 1, seed=7), x, True),  # dW of one example: an outer product
        (rand(4, 64, seed=8), rand(64, 8, seed=9), False),  # small all round
    ]
    for a, b, in_c in cases:
        ran_in_c.clear()
        assert_gemm_close(ck.gemm.matmul(a, b), a, b)
        assert bool(ran_in_c) == (in_c and _ffi.available), f"{a.shape} @ {b.shape}: ran in C {bool(ran_in_c)}"
