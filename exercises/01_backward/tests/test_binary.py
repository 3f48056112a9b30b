"""Task binary_backward: Mul and Div, with broadcasting.

These tests use minidl's own unbroadcast, so a bug in yours costs only the unbroadcast task.
"""

import backward_ops as ops
import pytest
from helpers import check, check_shapes, inputs

from minidl.ops._util import unbroadcast as reference_unbroadcast

SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 3, 4), (3, 1)), ((3, 1), (1, 4))]


@pytest.fixture(autouse=True)
def reference_unbroadcast_in_ops(monkeypatch):
    monkeypatch.setattr(ops, "unbroadcast", reference_unbroadcast)


@pytest.mark.task("binary_backward")
@pytest.mark.parametrize("shape_a, shape_b", SHAPES)
def test_mul_matches_finite_differences(shape_a, shape_b):
    a, b = inputs(shape_a, shape_b, seed=2)
    check(ops.mul, a, b)
    check_shapes(ops.mul, *inputs(shape_a, shape_b, seed=3))


@pytest.mark.task("binary_backward")
@pytest.mark.parametrize("shape_a, shape_b", SHAPES)
def test_div_matches_finite_differences(shape_a, shape_b):
    a, b = inputs(shape_a, seed=4) + inputs(shape_b, seed=5, low=0.5)
    check(ops.div, a, b)
    check_shapes(ops.div, *inputs(shape_a, seed=6) + inputs(shape_b, seed=7, low=0.5))
