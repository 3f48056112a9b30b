"""Tasks param_grads and input_grad, against minidl's autograd through its BatchNorm layers.

x̂ and 1/√(σ² + eps) come from batch_statistics (given), so these tests do not use your forward.
"""

import batchnorm
import numpy as np
import pytest
from helpers import ATOL, IDS, RTOL, SHAPES, case, reference_gradients


def upstream(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.task("param_grads")
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_param_grads_match_minidl(shape):
    x, gamma, beta = case(shape, seed=5)
    dy = upstream(shape, 6)
    x_hat, _ = batchnorm.batch_statistics(x, 1e-5)
    dgamma, dbeta = batchnorm.batchnorm_param_grads(dy, x_hat)
    _, ref_dgamma, ref_dbeta = reference_gradients(x, gamma, beta, dy)
    assert np.shape(dgamma) == np.shape(dbeta) == (shape[1],)
    np.testing.assert_allclose(dgamma, ref_dgamma, rtol=RTOL, atol=ATOL, err_msg="dgamma")
    np.testing.assert_allclose(dbeta, ref_dbeta, rtol=RTOL, atol=ATOL, err_msg="dbeta")


@pytest.mark.task("input_grad")
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_input_grad_matches_minidl(shape):
    x, gamma, beta = case(shape, seed=7)
    dy = upstream(shape, 8)
    x_hat, inv_std = batchnorm.batch_statistics(x, 1e-5)
    dx = batchnorm.batchnorm_input_grad(dy, x_hat, inv_std, gamma)
    ref_dx, _, _ = reference_gradients(x, gamma, beta, dy)
    assert np.shape(dx) == shape
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-9, atol=1e-11)


@pytest.mark.task("input_grad")
def test_input_grad_matches_finite_differences():
    x, gamma, beta = case((5, 2, 3), seed=9)
    dy = upstream(x.shape, 10)
    x_hat, inv_std = batchnorm.batch_statistics(x, 1e-5)
    dx = batchnorm.batchnorm_input_grad(dy, x_hat, inv_std, gamma)

    def loss(x):
        x_hat, _ = batchnorm.batch_statistics(x, 1e-5)
        return np.sum((batchnorm.per_feature(gamma, x) * x_hat + batchnorm.per_feature(beta, x)) * dy)

    numeric = np.zeros_like(x)
    eps = 1e-6
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        plus = loss(x)
        x[index] = saved - eps
        minus = loss(x)
        x[index] = saved
        numeric[index] = (plus - minus) / (2 * eps)
    # Central differences: truncation error ~eps² times the third derivative, rounding ~1e-16/eps.
    np.testing.assert_allclose(dx, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.task("input_grad")
def test_shifting_every_input_by_the_same_amount_changes_nothing():
    # y does not change when a constant is added to a feature's values, so dx sums to 0 per feature.
    x, gamma, _ = case((6, 4, 3), seed=11)
    x_hat, inv_std = batchnorm.batch_statistics(x, 1e-5)
    dx = batchnorm.batchnorm_input_grad(upstream(x.shape, 12), x_hat, inv_std, gamma)
    np.testing.assert_allclose(dx.sum(axis=(0, 2)), 0, atol=1e-10)
