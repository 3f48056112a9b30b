"""Task im2col: patches as rows, compared with minidl's im2col."""

import conv
import numpy as np
import pytest
from helpers import GEOMETRIES, IDS, arrays, reference_im2col


@pytest.mark.task("im2col")
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
def test_im2col_matches_minidl(geometry):
    *_, kh, kw, s, p = geometry
    x, _, _ = arrays(geometry)
    got = conv.im2col(x, kh, kw, s, p)
    expected = reference_im2col(x, kh, kw, s, p)
    assert got.shape == expected.shape, f"shape {got.shape}, expected {expected.shape}"
    np.testing.assert_array_equal(got, expected)


@pytest.mark.task("im2col")
def test_small_example_by_hand():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    # 2x2 patches, stride 1, no padding: four patches, each row [top-left, top-right, bottom-left, bottom-right].
    expected = [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]
    np.testing.assert_array_equal(conv.im2col(x, 2, 2, 1, 0), expected)
    # With one pixel of zero padding: 4x4 patches; patch (0, 1) is [0, 0, x[0, 0], x[0, 1]],
    # patch (1, 0) is [0, x[0, 0], 0, x[1, 0]] and patch (3, 3) is [x[2, 2], 0, 0, 0].
    padded = conv.im2col(x, 2, 2, 1, 1)
    assert padded.shape == (16, 4)
    np.testing.assert_array_equal(padded[[1, 4, 15]], [[0, 0, 0, 1], [0, 0, 0, 3], [8, 0, 0, 0]])
