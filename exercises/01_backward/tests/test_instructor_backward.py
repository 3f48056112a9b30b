"""Hidden tests (instructor only): other shapes and values than the public tests."""

import backward_ops as ops
import pytest
from helpers import check, inputs

from minidl.ops._util import unbroadcast as reference_unbroadcast


@pytest.mark.task("unary_backward")
@pytest.mark.instructor
def test_chain_of_unary_functions():
    (x,) = inputs((2, 5), seed=20, low=0.2)
    check(lambda t: ops.tanh(ops.log(ops.exp(ops.sigmoid(t)) + t)), x)


@pytest.mark.task("binary_backward")
@pytest.mark.instructor
def test_quotient_of_products(monkeypatch):
    monkeypatch.setattr(ops, "unbroadcast", reference_unbroadcast)
    a, b = inputs((2, 1, 3), (4, 1), seed=21)
    (c,) = inputs((3,), seed=22, low=1.0)
    check(lambda a, b, c: ops.div(ops.mul(a, b), c), a, b, c)


@pytest.mark.task("unbroadcast")
@pytest.mark.instructor
def test_unbroadcast_used_by_a_broadcast_product():
    import minidl

    g = minidl.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]] * 4)  # (4, 2, 3)
    assert ops.unbroadcast(g, (1, 3)).tolist() == [[20.0, 28.0, 36.0]]
    assert ops.unbroadcast(g, (2, 1)).tolist() == [[24.0], [60.0]]
    assert ops.unbroadcast(g, (4, 1, 1)).tolist() == [[[21.0]]] * 4


@pytest.mark.task("reduction_backward")
@pytest.mark.instructor
def test_mean_of_max_of_sum():
    (x,) = inputs((2, 3, 4, 2), seed=23)
    check(lambda t: ops.mean(ops.max(ops.sum(t, 3), (0, 2), True), None), x)


@pytest.mark.task("matmul_backward")
@pytest.mark.instructor
def test_two_layers():
    w1, w2, x = inputs((5, 3), (2, 5), (3, 6), seed=24)
    check(lambda w1, w2, x: ops.matmul(w2, ops.matmul(w1, x).tanh()), w1, w2, x)
