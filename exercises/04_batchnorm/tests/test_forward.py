"""Tasks batchnorm_forward and inference_forward, against minidl's BatchNorm1d / BatchNorm2d."""

import batchnorm
import numpy as np
import pytest
from helpers import ATOL, IDS, RTOL, SHAPES, case, reference_layer

import minidl


@pytest.mark.task("batchnorm_forward")
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_training_forward_and_running_averages_match_minidl(shape):
    x, gamma, beta = case(shape)
    layer = reference_layer(x, gamma, beta, momentum=0.2)
    running = {"mean": np.zeros(shape[1]), "var": np.ones(shape[1])}
    for step in range(3):
        batch = x + step  # three batches with different statistics
        y = batchnorm.batchnorm_forward(batch, gamma, beta, eps=1e-5, running=running, momentum=0.2)
        with minidl.no_grad():
            expected = layer(minidl.tensor(batch, dtype=minidl.float64)).numpy()
        np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL, err_msg=f"y of batch {step}")
        np.testing.assert_allclose(running["mean"], layer.running_mean.numpy(), rtol=RTOL, err_msg="running mean")
        np.testing.assert_allclose(running["var"], layer.running_var.numpy(), rtol=RTOL, err_msg="running var")


@pytest.mark.task("batchnorm_forward")
def test_normalized_output_has_zero_mean_and_unit_variance():
    x, _, _ = case((16, 3, 2, 2), seed=1)
    y = batchnorm.batchnorm_forward(x, np.ones(3), np.zeros(3), eps=0.0)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-12)


@pytest.mark.task("inference_forward")
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_inference_matches_minidl_in_eval_mode(shape):
    x, gamma, beta = case(shape, seed=2)
    rng = np.random.default_rng(3)
    running_mean, running_var = rng.standard_normal(shape[1]), rng.uniform(0.2, 3.0, shape[1])
    layer = reference_layer(x, gamma, beta)
    with minidl.no_grad():
        layer.running_mean.array[...] = running_mean
        layer.running_var.array[...] = running_var
        expected = layer.eval()(minidl.tensor(x, dtype=minidl.float64)).numpy()
    got = batchnorm.inference_forward(x, gamma, beta, running_mean, running_var, eps=1e-5)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.task("inference_forward")
def test_inference_of_one_example_does_not_depend_on_the_batch():
    x, gamma, beta = case((5, 3), seed=4)
    mean, var = np.array([0.5, -1.0, 2.0]), np.array([4.0, 0.25, 1.0])
    alone = batchnorm.inference_forward(x[:1], gamma, beta, mean, var, eps=0.0)
    np.testing.assert_allclose(alone, gamma * (x[:1] - mean) / np.sqrt(var) + beta, rtol=1e-12)
