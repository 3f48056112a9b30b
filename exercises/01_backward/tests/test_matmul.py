"""Task matmul_backward: Y = A @ B."""

import backward_ops as ops
import pytest
from helpers import check, check_shapes, inputs


@pytest.mark.task("matmul_backward")
@pytest.mark.parametrize("n, k, m", [(3, 4, 2), (4, 4, 4), (1, 5, 3), (2, 1, 2)])
def test_matmul_matches_finite_differences(n, k, m):
    a, b = inputs((n, k), (k, m), seed=11)
    check(ops.matmul, a, b)
    check_shapes(ops.matmul, *inputs((n, k), (k, m), seed=12))


@pytest.mark.task("matmul_backward")
def test_lecture_layer_gradients():
    # The lecture's layer H = W·X with an L2 loss: dW = dH·Xᵀ must come out of backward.
    w, x, y = inputs((3, 4), (4, 8), (3, 8), seed=13)
    check(lambda w, x: ((ops.matmul(w, x) - y) ** 2).sum(), w, x)
