"""Graded: numerical_gradient against derivatives known in closed form."""

import numpy as np
import pytest
from checker import numerical_gradient


def f(x, y):
    return float(np.sum(np.sin(x) * y**2))


@pytest.mark.task("numeric")
def test_central_differences_match_the_exact_gradient():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    gx, gy = numerical_gradient(f, [x, y], eps=1e-4)
    # Central differences with ε = 1e-4 err by ε²/6·|f'''| ≈ 2e-9·|y|² here (plus rounding,
    # ~1e-16·|f|/ε ≈ 1e-11). A one-sided difference errs by ε/2·|f''| ≈ 5e-5: far outside 1e-7.
    np.testing.assert_allclose(gx, np.cos(x) * y**2, rtol=0, atol=1e-7)
    np.testing.assert_allclose(gy, 2 * np.sin(x) * y, rtol=0, atol=1e-7)


@pytest.mark.task("numeric")
def test_inputs_are_restored_exactly_and_shapes_kept():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(()), rng.standard_normal((2, 3, 2)), rng.standard_normal(5)]
    before = [a.copy() for a in arrays]
    grads = numerical_gradient(lambda a, b, c: float(a * np.sum(b**3) + np.sum(np.exp(c))), arrays, eps=1e-5)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)  # bit for bit: every perturbation undone
    assert [g.shape for g in grads] == [(), (2, 3, 2), (5,)]
    a, b, c = before
    np.testing.assert_allclose(grads[0], np.sum(b**3), rtol=1e-7)
    np.testing.assert_allclose(grads[1], 3 * a * b**2, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grads[2], np.exp(c), rtol=1e-7)
