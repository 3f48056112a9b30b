"""Every GEMM stage (csrc/cuda/gemm.cu) agrees with NumPy on 1x1, 31x17x45 and 128x784x512.

31x17x45 fits no tile size (partial tiles on every edge, the scalar path of the vectorized
stage); 128x784x512 is the MLP's first layer (784 = 98 tiles of 8, the float4 path). Error
bound: each output is a K-term dot product; any two summation orders differ by at most
2 K eps (|A| |B|)_ij, the tolerance used here.
"""

import numpy as np
import pytest
from cuda_helpers import EPS32, dev, host, load_or_skip

load_or_skip()

from minidl.backend.cuda import kernels as ck  # noqa: E402

STAGES = list(ck.GEMM_STAGES)
rng = np.random.default_rng(1)


def check_product(got, a, b):
    want = a @ b
    k = a.shape[-1]
    bound = 2 * k * EPS32 * (np.abs(a) @ np.abs(b)) + 1e-30
    assert got.shape == want.shape
    assert np.all(np.abs(got - want) <= bound), f"max error {np.abs(got - want).max()}"


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (31, 17, 45), (128, 784, 512)])
def test_gemm_stage(stage, m, k, n):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    check_product(host(ck.matmul(dev(a), dev(b), stage=stage)), a, b)


@pytest.mark.parametrize("stage", STAGES)
def test_gemm_batched_broadcast_and_degenerate(stage):
    a = rng.standard_normal((3, 2, 33, 9)).astype(np.float32)
    b = rng.standard_normal((9, 20)).astype(np.float32)  # one B for every batch item (stride 0)
    check_product(host(ck.matmul(dev(a), dev(b), stage=stage)), a, b)
    b2 = rng.standard_normal((2, 9, 20)).astype(np.float32)
    check_product(host(ck.matmul(dev(a), dev(b2), stage=stage)), a, b2)
    np.testing.assert_array_equal(
        host(ck.matmul(dev(np.ones((4, 0))), dev(np.ones((0, 3))), stage=stage)), np.zeros((4, 3))
    )
    assert host(ck.matmul(dev(np.ones((0, 5))), dev(np.ones((5, 3))), stage=stage)).shape == (0, 3)


def test_gemm_transposed_operand_and_linear():
    x = rng.standard_normal((31, 20)).astype(np.float32)
    w = rng.standard_normal((7, 20)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    check_product(host(ck.matmul(dev(x), dev(w).T)), x, w.T)
    got = host(ck.linear_act(dev(x), dev(w), dev(bias), "relu"))
    want = np.maximum(x @ w.T + bias, 0)
    assert np.all(np.abs(got - want) <= 2 * 20 * EPS32 * (np.abs(x) @ np.abs(w.T) + np.abs(bias)) + 1e-30)


def test_gemm_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 2\) do not align"):
        ck.matmul(dev(np.ones((3, 4))), dev(np.ones((5, 2))))
    with pytest.raises(ValueError, match="unknown GEMM stage 'fastest'"):
        ck.matmul(dev(np.ones((3, 4))), dev(np.ones((4, 2))), stage="fastest")
