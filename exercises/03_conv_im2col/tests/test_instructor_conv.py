"""Hidden tests (instructor only): batch and channel counts the public tests do not use, float32."""

import conv
import numpy as np
import pytest
from helpers import arrays, output_shape, reference_col2im, reference_conv, reference_im2col

GEOMETRY = (4, 5, 9, 6, 6, 3, 2, 2, 1)


@pytest.mark.task("im2col")
@pytest.mark.instructor
def test_im2col_float32_keeps_its_dtype():
    x, _, _ = arrays(GEOMETRY, seed=10)
    x = x.astype(np.float32)
    got = conv.im2col(x, 3, 2, 2, 1)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, reference_im2col(x, 3, 2, 2, 1))


@pytest.mark.task("col2im")
@pytest.mark.instructor
def test_col2im_wide_padding():
    x_shape = (2, 3, 4, 4)
    cols = np.random.default_rng(11).standard_normal(reference_im2col(np.zeros(x_shape), 3, 3, 1, 3).shape)
    np.testing.assert_allclose(conv.col2im(cols, x_shape, 3, 3, 1, 3), reference_col2im(cols, x_shape, 3, 3, 1, 3))


@pytest.mark.task("conv_forward")
@pytest.mark.instructor
def test_forward_larger(monkeypatch):
    monkeypatch.setattr(conv, "im2col", reference_im2col)
    x, w, b = arrays(GEOMETRY, seed=12)
    np.testing.assert_allclose(
        conv.conv2d_forward(x, w, b, 2, 1), reference_conv(x, w, b, 2, 1), rtol=1e-10, atol=1e-10
    )


@pytest.mark.task("conv_backward")
@pytest.mark.instructor
def test_backward_larger(monkeypatch):
    monkeypatch.setattr(conv, "im2col", reference_im2col)
    monkeypatch.setattr(conv, "col2im", reference_col2im)
    x, w, b = arrays(GEOMETRY, seed=13)
    dy = np.random.default_rng(14).standard_normal(output_shape(GEOMETRY))
    for g, e in zip(conv.conv2d_backward(dy, x, w, 2, 1), reference_conv(x, w, b, 2, 1, dy=dy)):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)
