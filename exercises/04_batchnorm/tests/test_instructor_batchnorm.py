"""Hidden tests (instructor only): other sizes, the composed backward, a different eps."""

import batchnorm
import numpy as np
import pytest
from helpers import case, reference_gradients, reference_layer

import minidl


@pytest.mark.task("batchnorm_forward")
@pytest.mark.instructor
def test_forward_two_examples_large_eps():
    x, gamma, beta = case((2, 3, 3, 3), seed=20)
    layer = reference_layer(x, gamma, beta, momentum=0.5)
    layer.eps = 0.1
    running = {"mean": np.zeros(3), "var": np.ones(3)}
    y = batchnorm.batchnorm_forward(x, gamma, beta, eps=0.1, running=running, momentum=0.5)
    with minidl.no_grad():
        expected = layer(minidl.tensor(x, dtype=minidl.float64)).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(running["var"], layer.running_var.numpy(), rtol=1e-10)


@pytest.mark.task("inference_forward")
@pytest.mark.instructor
def test_inference_image():
    x, gamma, beta = case((2, 3, 4, 4), seed=21)
    mean, var = np.array([1.0, 0.0, -1.0]), np.array([0.5, 2.0, 1.0])
    got = batchnorm.inference_forward(x, gamma, beta, mean, var, eps=0.01)
    expected = gamma[None, :, None, None] * (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 0.01)
    np.testing.assert_allclose(got, expected + beta[None, :, None, None], rtol=1e-12)


@pytest.mark.task("param_grads")
@pytest.mark.instructor
def test_param_grads_long_sequence():
    x, gamma, beta = case((3, 2, 17), seed=22)
    dy = np.random.default_rng(23).standard_normal(x.shape)
    dgamma, dbeta = batchnorm.batchnorm_param_grads(dy, batchnorm.batch_statistics(x, 1e-5)[0])
    _, ref_dgamma, ref_dbeta = reference_gradients(x, gamma, beta, dy)
    np.testing.assert_allclose(dgamma, ref_dgamma, rtol=1e-10)
    np.testing.assert_allclose(dbeta, ref_dbeta, rtol=1e-10)


@pytest.mark.task("input_grad")
@pytest.mark.instructor
def test_input_grad_small_batch_large_eps():
    x, gamma, beta = case((3, 5), seed=24)
    dy = np.random.default_rng(25).standard_normal(x.shape)
    x_hat, inv_std = batchnorm.batch_statistics(x, 0.5)
    dx = batchnorm.batchnorm_input_grad(dy, x_hat, inv_std, gamma)
    np.testing.assert_allclose(dx, reference_gradients(x, gamma, beta, dy, eps=0.5)[0], rtol=1e-9, atol=1e-11)
