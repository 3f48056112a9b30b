"""Graded tests: both kernels against NumPy on awkward sizes, with the emulator's checker on.

The checker (MINIDL_CUDA_CHECK=1, docs/cuda.md) is on for every launch here, so a kernel
that writes past C, reads past A or B, or races on its shared tiles (a __syncthreads() left
out) fails even when its numbers happen to come out right.

Tolerance: a float32 dot product of length K, summed in any order, is within
γ_K·Σ_k |a_ik||b_kj| of the exact value, γ_K = K·u/(1 - K·u), u = 2⁻²⁴ (Higham, Accuracy and
Stability of Numerical Algorithms, §3.1). We compare with a float64 product, whose own error
is negligible next to that, and allow 2·K·u·(|A|·|B|) per element.
"""

import numpy as np
import pytest
from cuda_matmul import matmul

# (M, K, N): not multiples of the tile (8) or of the naive kernel's 16x16 blocks; K both
# below and well above one tile, so several tiles are accumulated; single rows and columns.
SHAPES = [(1, 1, 1), (1, 9, 1), (7, 5, 9), (9, 17, 8), (16, 16, 16), (13, 27, 20), (33, 19, 3), (5, 40, 17)]


def assert_close_to_product(C, A, B):
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    exact = A64 @ B64
    bound = 2 * A.shape[1] * 2.0**-24 * (np.abs(A64) @ np.abs(B64))
    assert C.shape == exact.shape
    assert np.all(np.isfinite(C)), "some elements of C were never written (NaN)"
    excess = np.abs(C - exact) - bound
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    assert excess[worst] <= 0, f"C{list(worst)} = {C[worst]}, expected {exact[worst]} (shape {C.shape})"


def check_kernel(kernel):
    rng = np.random.default_rng(0)
    for M, K, N in SHAPES:
        A = rng.standard_normal((M, K)).astype(np.float32)
        B = rng.standard_normal((K, N)).astype(np.float32)
        assert_close_to_product(matmul(A, B, kernel=kernel, check=True), A, B)


@pytest.mark.task("naive")
def test_naive_kernel_matches_numpy_on_awkward_sizes():
    check_kernel("naive")


@pytest.mark.task("naive")
def test_naive_kernel_on_a_rectangular_product_with_known_entries():
    A = np.arange(6, dtype=np.float32).reshape(2, 3)  # small integers: every sum is exact
    B = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(matmul(A, B, kernel="naive", check=True), A @ B)


@pytest.mark.task("tiled")
def test_tiled_kernel_matches_numpy_on_awkward_sizes():
    check_kernel("tiled")


@pytest.mark.task("tiled")
def test_tiled_kernel_on_a_rectangular_product_with_known_entries():
    A = np.arange(3 * 19, dtype=np.float32).reshape(3, 19) % 7  # small integers: every sum is exact
    B = np.arange(19 * 11, dtype=np.float32).reshape(19, 11) % 5
    np.testing.assert_array_equal(matmul(A, B, kernel="tiled", check=True), A @ B)
