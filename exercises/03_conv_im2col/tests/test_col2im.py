"""Task col2im: the adjoint of im2col, compared with minidl's col2im."""

import conv
import numpy as np
import pytest
from helpers import GEOMETRIES, IDS, arrays, reference_col2im, reference_im2col


@pytest.mark.task("col2im")
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
def test_col2im_matches_minidl(geometry):
    *_, kh, kw, s, p = geometry
    x, _, _ = arrays(geometry)
    cols = np.random.default_rng(1).standard_normal(reference_im2col(x, kh, kw, s, p).shape)
    got = conv.col2im(cols, x.shape, kh, kw, s, p)
    assert got.shape == x.shape, f"shape {got.shape}, expected {x.shape}"
    np.testing.assert_allclose(got, reference_col2im(cols, x.shape, kh, kw, s, p), rtol=1e-12, atol=1e-12)


@pytest.mark.task("col2im")
@pytest.mark.parametrize("geometry", GEOMETRIES[:3], ids=IDS[:3])
def test_col2im_is_the_adjoint_of_im2col(geometry):
    # <im2col(x), c> = <x, col2im(c)> for every x and c: what makes col2im the backward of im2col.
    *_, kh, kw, s, p = geometry
    x, _, _ = arrays(geometry, seed=2)
    cols = np.random.default_rng(3).standard_normal(reference_im2col(x, kh, kw, s, p).shape)
    left = np.sum(reference_im2col(x, kh, kw, s, p) * cols)
    right = np.sum(x * conv.col2im(cols, x.shape, kh, kw, s, p))
    assert abs(left - right) <= 1e-10 * (1 + abs(left))


@pytest.mark.task("col2im")
def test_overlapping_patches_add_up():
    # 2x2 patches with stride 1 over a 3x3 image: the centre pixel is in all four patches.
    counts = conv.col2im(np.ones((4, 4)), (1, 1, 3, 3), 2, 2, 1, 0)
    np.testing.assert_array_equal(counts[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
