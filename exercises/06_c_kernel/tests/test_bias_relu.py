"""Graded tests: the C kernel against NumPy's max(x + bias, 0), on awkward sizes, on each path.

Every comparison is exact: both paths compute one float32 addition and a comparison per
element, which round identically in C (built with -ffp-contract=off: no fused multiply-add)
and in NumPy. The output array starts filled with NaN, so an element the kernel never writes
(a forgotten tail) shows up instead of passing by luck.
"""

import numpy as np
import pytest
from bias_relu import avx2_supported, bias_relu
from bias_relu_build import load

# (rows, cols): cols below, at, just above and far from multiples of 8 (the AVX2 width),
# single rows and columns, and a long row whose tail is 7.
SHAPES = [(1, 1), (3, 7), (5, 8), (4, 9), (2, 15), (3, 16), (7, 17), (6, 31), (1, 1023), (33, 100)]

needs_avx2 = pytest.mark.skipif(not avx2_supported(), reason="this CPU cannot run AVX2 code")


def reference(x, bias):
    return np.maximum(x + bias, np.float32(0))


def inputs(rows, cols, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    bias = rng.standard_normal(cols).astype(np.float32)  # a different bias for every column
    return x, bias


def run(x, bias, path):
    out = np.full(x.shape, np.nan, dtype=np.float32)
    x_before = x.copy()
    bias_relu(x, bias, path=path, out=out)
    np.testing.assert_array_equal(x, x_before, err_msg="the kernel must not write into x")
    return out


def check_path(path):
    for seed, (rows, cols) in enumerate(SHAPES):
        x, bias = inputs(rows, cols, seed)
        np.testing.assert_array_equal(
            run(x, bias, path), reference(x, bias), err_msg=f"{path} path, shape {(rows, cols)}"
        )


@pytest.mark.task("scalar")
def test_scalar_matches_numpy_on_awkward_sizes():
    check_path("scalar")


@pytest.mark.task("scalar")
def test_scalar_keeps_positives_zeroes_negatives_and_adds_the_column_bias():
    x = np.array([[1.0, -1.0, 0.5, -3.0, 2.0], [-1.0, 1.0, -0.5, 3.0, -2.0]], dtype=np.float32)
    bias = np.array([0.0, 0.5, -1.0, 4.0, 10.0], dtype=np.float32)
    expected = np.array([[1.0, 0.0, 0.0, 1.0, 12.0], [0.0, 1.5, 0.0, 7.0, 8.0]], dtype=np.float32)
    np.testing.assert_array_equal(run(x, bias, "scalar"), expected)


@needs_avx2
@pytest.mark.task("avx2")
def test_avx2_matches_numpy_on_awkward_sizes():
    check_path("avx2")


@needs_avx2
@pytest.mark.task("avx2")
def test_avx2_handles_every_tail_length():
    # cols = 8k + r for every r in 0..7, so each length of the scalar tail loop is used
    for cols in range(1, 26):
        x, bias = inputs(3, cols, 100 + cols)
        np.testing.assert_array_equal(run(x, bias, "avx2"), reference(x, bias), err_msg=f"cols={cols}")


@needs_avx2
@pytest.mark.task("avx2")
def test_dispatcher_runs_the_avx2_path_when_forced_and_by_default():
    _, lib = load()
    x, bias = inputs(9, 45, 7)
    try:
        assert lib.bias_relu_set_path(2) == 0
        assert lib.bias_relu_path() == 2
        np.testing.assert_array_equal(run(x, bias, "auto"), reference(x, bias))
    finally:
        lib.bias_relu_set_path(0)
    assert lib.bias_relu_path() == 2  # the best path this CPU runs


@pytest.mark.task("scalar")
def test_dispatcher_runs_the_scalar_path_when_forced():
    _, lib = load()
    x, bias = inputs(9, 45, 8)
    try:
        assert lib.bias_relu_set_path(1) == 0
        assert lib.bias_relu_path() == 1
        np.testing.assert_array_equal(run(x, bias, "auto"), reference(x, bias))
    finally:
        lib.bias_relu_set_path(0)
