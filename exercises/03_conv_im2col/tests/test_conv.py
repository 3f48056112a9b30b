"""Tasks conv_forward and conv_backward, compared with minidl.nn.functional.conv2d and its gradients.

These tests put minidl's im2col and col2im into conv.py, so a bug in yours costs only those tasks.
"""

import conv
import numpy as np
import pytest
from helpers import (
    ATOL,
    GEOMETRIES,
    IDS,
    RTOL,
    arrays,
    output_shape,
    reference_col2im,
    reference_conv,
    reference_im2col,
)


@pytest.fixture(autouse=True)
def reference_unfolding(monkeypatch):
    monkeypatch.setattr(conv, "im2col", reference_im2col)
    monkeypatch.setattr(conv, "col2im", reference_col2im)


@pytest.mark.task("conv_forward")
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
def test_forward_matches_minidl(geometry):
    *_, s, p = geometry
    x, w, b = arrays(geometry)
    got = conv.conv2d_forward(x, w, b, stride=s, padding=p)
    assert got.shape == output_shape(geometry), f"shape {got.shape}, expected {output_shape(geometry)}"
    np.testing.assert_allclose(got, reference_conv(x, w, b, s, p), rtol=RTOL, atol=ATOL)


@pytest.mark.task("conv_forward")
def test_forward_by_hand():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])  # x[i, j] - x[i + 1, j + 1] = -5 everywhere
    np.testing.assert_array_equal(
        conv.conv2d_forward(x, w, np.array([2.0]), stride=2), [[[[-3.0, -3.0], [-3.0, -3.0]]]]
    )


@pytest.mark.task("conv_backward")
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
def test_backward_matches_minidl(geometry):
    *_, s, p = geometry
    x, w, b = arrays(geometry, seed=4)
    dy = np.random.default_rng(5).standard_normal(output_shape(geometry))
    got = conv.conv2d_backward(dy, x, w, stride=s, padding=p)
    expected = reference_conv(x, w, b, s, p, dy=dy)
    for name, g, e in zip(("dx", "dw", "db"), got, expected):
        assert np.shape(g) == e.shape, f"{name}: shape {np.shape(g)}, expected {e.shape}"
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.task("conv_backward")
def test_backward_matches_finite_differences():
    geometry = (1, 2, 5, 4, 2, 3, 2, 2, 1)
    *_, s, p = geometry
    x, w, b = arrays(geometry, seed=6)
    dy = np.random.default_rng(7).standard_normal(output_shape(geometry))
    dx, dw, db = conv.conv2d_backward(dy, x, w, stride=s, padding=p)

    def loss(x, w, b):
        return np.sum(reference_conv(x, w, b, s, p) * dy)

    eps = 1e-6
    for name, array, analytic in (("dx", x, dx), ("dw", w, dw), ("db", b, db)):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + eps
            plus = loss(x, w, b)
            array[index] = saved - eps
            minus = loss(x, w, b)
            array[index] = saved
            numeric[index] = (plus - minus) / (2 * eps)
        # Central differences of a function that is linear in each argument: only rounding, ~1e-10.
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7, err_msg=name)
