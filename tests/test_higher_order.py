"""Second (and third) derivatives: closed forms for x³ and tanh(x)·eˣ, a Hessian-vector
product of a small MLP against finite differences of its gradient (and torch), and
second-order gradchecks of every op (all are twice differentiable).

Two second-order checks are used. minidl.debug.gradgradcheck differentiates vᵀJ with
respect to the inputs only; core_helpers.check_gradgrad (the torch recipe) also
differentiates with respect to v, which is what makes the check meaningful for ops whose
derivative does not depend on their input (add, reshape, indexing, relu...).
"""

import numpy as np
import pytest
import torch
from core_helpers import check_gradgrad, distinct, leaf
from tolerances import assert_within, chain_atol, transcendental_rtol

import minidl
from minidl.debug import gradcheck, gradgradcheck


# ---------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------
def test_second_and_third_derivative_of_x_cubed():
    x = minidl.tensor(np.array([-1.5, 0.0, 0.5, 2.0]), requires_grad=True)
    (d1,) = minidl.grad((x**3).sum(), x, create_graph=True)
    (d2,) = minidl.grad(d1.sum(), x, create_graph=True)
    (d3,) = minidl.grad(d2.sum(), x)
    # Dyadic inputs: 3x², 6x and 6 are exact in float64, however they are computed (1e-15: ~4 ulps).
    np.testing.assert_allclose(d1.data, 3 * x.data**2, rtol=1e-15)
    np.testing.assert_allclose(d2.data, 6 * x.data, rtol=1e-15)
    np.testing.assert_allclose(d3.data, 6.0, rtol=1e-15)


def test_second_derivative_of_the_readme_example():
    x = minidl.tensor(2.0, requires_grad=True)
    (dx,) = minidl.grad(x**3, x, create_graph=True)
    (d2x,) = minidl.grad(dx, x)
    assert dx.item() == 12.0 and d2x.item() == 12.0


def test_second_derivative_of_tanh_times_exp():
    values = np.array([-2.0, -0.3, 0.0, 0.7, 1.9])
    x = minidl.tensor(values, requires_grad=True)
    (d1,) = minidl.grad((x.tanh() * x.exp()).sum(), x, create_graph=True)
    (d2,) = minidl.grad(d1.sum(), x)
    t, e = np.tanh(values), np.exp(values)
    sech2 = 1 - t**2
    # f = t e;  f' = (sech² + t) e;  f'' = (-2 t sech² + 2 sech² + t) e
    # tanh and exp plus a few ops in a different order than the graph's; f'' has terms up to
    # 1.8 times its value here (x = -2) and ~16 ops on the autograd side: relative bounds.
    np.testing.assert_allclose(d1.data, (sech2 + t) * e, rtol=transcendental_rtol(np.float64, extra_ulps=6))
    np.testing.assert_allclose(
        d2.data, (-2 * t * sech2 + 2 * sech2 + t) * e, rtol=2 * transcendental_rtol(np.float64, extra_ulps=16)
    )


def test_backward_with_create_graph_leaves_a_differentiable_grad():
    x = minidl.tensor(np.array([0.5, 1.5]), requires_grad=True)
    (x.sin() * x).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (d2,) = minidl.grad(x.grad.sum(), x)
    # cos and sin plus 4 ops; at x = 1.5 the terms are 1.2 times the result: relative, doubled.
    np.testing.assert_allclose(
        d2.data, 2 * np.cos(x.data) - x.data * np.sin(x.data), rtol=2 * transcendental_rtol(np.float64, extra_ulps=4)
    )


# ---------------------------------------------------------------------------
# Hessian-vector product of a small MLP
# ---------------------------------------------------------------------------
def _mlp_params(seed=0):
    g = np.random.default_rng(seed)
    shapes = [(4, 3), (4,), (2, 4), (2,)]
    return [minidl.tensor(g.standard_normal(s) * 0.7, requires_grad=True) for s in shapes]


def _mlp_loss(params, x, y):
    w1, b1, w2, b2 = params
    hidden = minidl.linear(x, w1, b1).tanh()
    return minidl.mse_loss(minidl.linear(hidden, w2, b2), y)


def _mlp_gradient(values, x, y):
    params = [minidl.tensor(v, requires_grad=True) for v in values]
    return [g.data for g in minidl.grad(_mlp_loss(params, x, y), params)]


def test_hessian_vector_product_of_an_mlp_matches_finite_differences_and_torch():
    g = np.random.default_rng(1)
    x, y = minidl.tensor(g.standard_normal((5, 3))), minidl.tensor(g.standard_normal((5, 2)))
    params = _mlp_params()
    direction = [g.standard_normal(p.shape) for p in params]

    grads = minidl.grad(_mlp_loss(params, x, y), params, create_graph=True)
    grad_dot_v = sum((gr * minidl.tensor(v)).sum() for gr, v in zip(grads, direction))
    hvp = [h.data for h in minidl.grad(grad_dot_v, params)]

    # Central difference of the gradient along v: (∇L(θ + εv) - ∇L(θ - εv)) / 2ε ≈ H v
    eps = 1e-5
    plus = _mlp_gradient([p.data + eps * v for p, v in zip(params, direction)], x, y)
    minus = _mlp_gradient([p.data - eps * v for p, v in zip(params, direction)], x, y)
    for h, gp, gm in zip(hvp, plus, minus):
        # Central differences: truncation eps²·|f'''|/6 ~ 1e-10 and rounding 1e-16·|g|/eps ~ 1e-11
        # relative to O(1) values; 1e-6 / 1e-8 leave room for the third derivative's size.
        np.testing.assert_allclose(h, (gp - gm) / (2 * eps), rtol=1e-6, atol=1e-8)

    torch_params = [torch.tensor(p.data, requires_grad=True) for p in params]
    w1, b1, w2, b2 = torch_params
    xt, yt = torch.tensor(x.data), torch.tensor(y.data)
    loss = torch.nn.functional.mse_loss(torch.tanh(xt @ w1.T + b1) @ w2.T + b2, yt)
    torch_grads = torch.autograd.grad(loss, torch_params, create_graph=True)
    torch_hvp = torch.autograd.grad(
        sum((gr * torch.tensor(v)).sum() for gr, v in zip(torch_grads, direction)), torch_params
    )
    # Two libraries, a chain: forward (linear 3 + 1, tanh, linear 4 + 1, mse over 10), the
    # gradient and the Hessian-vector pass each about as long, plus the 26-term dot with v.
    budget = 3 * (4 + 4 + 5 + 12) + 26
    for h, th in zip(hvp, torch_hvp):
        assert_within(h, th.numpy(), chain_atol(th.numpy(), budget=budget, fan_in=5), "Hessian-vector product")


# ---------------------------------------------------------------------------
# gradgradcheck on ops whose derivative depends on their input
# ---------------------------------------------------------------------------
NONLINEAR = {
    "exp": (minidl.exp, [((2, 3), -1, 1)]),
    "log": (minidl.log, [((2, 3), 0.5, 2)]),
    "sqrt": (minidl.sqrt, [((2, 3), 0.5, 2)]),
    "sin": (minidl.sin, [((2, 3), -2, 2)]),
    "cos": (minidl.cos, [((2, 3), -2, 2)]),
    "tanh": (minidl.tanh, [((2, 3), -2, 2)]),
    "sigmoid": (minidl.sigmoid, [((2, 3), -2, 2)]),
    "pow_scalar": (lambda a: a**3, [((2, 3), -2, 2)]),
    "pow_fractional": (lambda a: a**-0.5, [((2, 3), 0.5, 2)]),
    "rpow": (lambda a: 3.0**a, [((2, 3), -1, 1)]),
    "pow_tensor": (lambda a, b: a**b, [((2, 3), 0.5, 2), ((3,), -1, 2)]),
    "mul": (lambda a, b: a * b, [((2, 3), -1, 1), ((2, 1), -1, 1)]),
    "div": (lambda a, b: a / b, [((2, 3), -1, 1), ((3,), 0.5, 2)]),
    "matmul": (minidl.matmul, [((2, 3), -1, 1), ((3, 2), -1, 1)]),
    "matmul_batched": (minidl.matmul, [((2, 2, 3), -1, 1), ((3,), -1, 1)]),
    "linear": (minidl.linear, [((4, 3), -1, 1), ((2, 3), -1, 1), ((2,), -1, 1)]),
    "var": (lambda a: a.var(axis=1), [((2, 3), -1, 1)]),
    "var_unbiased_all": (lambda a: a.var(unbiased=True), [((2, 3), -1, 1)]),
    "logsumexp": (lambda a: a.logsumexp(axis=-1), [((2, 3), -2, 2)]),
    "softmax": (lambda a: a.softmax(0), [((2, 3), -2, 2)]),
    "log_softmax": (lambda a: a.log_softmax(-1), [((2, 3), -2, 2)]),
    "conv2d": (
        lambda x, w, b: minidl.conv2d(x, w, b, padding=1),
        [((1, 2, 3, 3), -1, 1), ((2, 2, 2, 2), -1, 1), ((2,), -1, 1)],
    ),
    "mse_loss": (minidl.mse_loss, [((2, 3), -1, 1), ((2, 3), -1, 1)]),
    "bce_with_logits": (minidl.binary_cross_entropy_with_logits, [((2, 3), -2, 2), ((2, 3), 0, 1)]),
    "normalize": (lambda a: (a - a.mean(0)) / (a.var(0) + 0.1).sqrt(), [((3, 2), -1, 1)]),
}


def _nonlinear_inputs(name):
    return [leaf(shape, low, high, seed=i + 1) for i, (shape, low, high) in enumerate(NONLINEAR[name][1])]


@pytest.mark.parametrize("name", sorted(NONLINEAR))
def test_gradgradcheck_nonlinear_ops(name):
    assert gradgradcheck(NONLINEAR[name][0], _nonlinear_inputs(name))


@pytest.mark.parametrize("name", sorted(NONLINEAR))
def test_second_order_check_including_the_direction_nonlinear_ops(name):
    check_gradgrad(NONLINEAR[name][0], _nonlinear_inputs(name))


# ---------------------------------------------------------------------------
# Ops whose derivative does not depend on their input (linear or piecewise linear)
# ---------------------------------------------------------------------------
def _dropout(x):
    minidl.manual_seed(5)
    return minidl.dropout(x, 0.5)


OTHER = {
    "add": (lambda a, b: a + b, lambda: [leaf((2, 3), seed=1), leaf((3,), seed=2)]),
    "sub": (lambda a, b: a - b, lambda: [leaf((2, 1), seed=1), leaf((3,), seed=2)]),
    "neg": (lambda a: -a, lambda: [leaf((2, 3))]),
    "abs": (minidl.abs, lambda: [leaf((2, 3), away_from_zero=0.1)]),
    "relu": (minidl.relu, lambda: [leaf((2, 3), away_from_zero=0.1)]),
    "leaky_relu": (lambda a: minidl.leaky_relu(a, 0.1), lambda: [leaf((2, 3), away_from_zero=0.1)]),
    "maximum": (minidl.maximum, lambda: [distinct((2, 3), seed=1), distinct((3,), seed=2) + 0.033]),
    "minimum": (minidl.minimum, lambda: [distinct((2, 3), seed=1), distinct((3,), seed=2) + 0.033]),
    "clip": (lambda a: a.clip(-0.5, 0.5), lambda: [leaf((2, 3))]),
    "where": (lambda a, b: minidl.where(np.array([True, False, True]), a, b), lambda: [leaf((2, 3)), leaf((3,))]),
    "clone": (minidl.clone, lambda: [leaf((2, 3))]),
    "astype": (lambda a: a.astype(np.float32).astype(np.float64), lambda: [leaf((2,))]),
    "sum": (lambda a: a.sum(axis=(0, -1), keepdims=True), lambda: [leaf((2, 3, 2))]),
    "mean": (lambda a: a.mean(axis=1), lambda: [leaf((2, 3))]),
    "max": (lambda a: a.max(axis=0), lambda: [distinct((2, 3))]),
    "min": (lambda a: a.min(), lambda: [distinct((2, 3))]),
    "reshape": (lambda a: a.reshape(3, -1), lambda: [leaf((2, 3))]),
    "permute": (lambda a: a.permute(2, 0, 1), lambda: [leaf((2, 3, 2))]),
    "transpose": (lambda a: a.T, lambda: [leaf((2, 3))]),
    "contiguous": (lambda a: a.T.contiguous(), lambda: [leaf((2, 3))]),
    "expand": (lambda a: a.expand(2, 3, 4), lambda: [leaf((3, 1))]),
    "squeeze_unsqueeze": (lambda a: a.squeeze(1).unsqueeze(0), lambda: [leaf((2, 1, 3))]),
    "flatten": (lambda a: a.flatten(1), lambda: [leaf((2, 2, 2))]),
    "concat": (lambda a, b: minidl.concat([a, b, a], axis=1), lambda: [leaf((2, 2)), leaf((2, 1))]),
    "stack": (lambda a, b: minidl.stack([a, b], axis=-1), lambda: [leaf((2, 2)), leaf((2, 2))]),
    "split": (lambda a: a.split([1, 2], axis=1), lambda: [leaf((2, 3))]),
    "getitem_basic": (lambda a: a[None, 1:, ::-1], lambda: [leaf((3, 3))]),
    "getitem_repeated": (lambda a: a[[0, 2, 0], [1, 1, 1]], lambda: [leaf((3, 3))]),
    "getitem_mask": (lambda a: a[np.array([[True, False], [True, True]])], lambda: [leaf((2, 2))]),
    "pad": (lambda a: minidl.pad(a, [(1, 0), (2, 1)], value=1.0), lambda: [leaf((2, 2))]),
    "avg_pool2d": (lambda a: minidl.avg_pool2d(a, 2, 1, 1), lambda: [leaf((1, 1, 3, 3))]),
    "embedding": (lambda w: minidl.embedding(np.array([1, 1, 0]), w), lambda: [leaf((3, 2))]),
    "dropout": (_dropout, lambda: [leaf((2, 3))]),
    "nll_loss": (lambda a: minidl.nll_loss(a, np.array([1, -100, 0])), lambda: [leaf((3, 2))]),
}


@pytest.mark.parametrize("name", sorted(OTHER))
def test_second_order_checks_of_the_other_ops(name):
    op, make_inputs = OTHER[name]
    # astype rounds through float32; every op here is piecewise linear, so a large step is exact.
    assert gradgradcheck(op, make_inputs(), eps=1e-3)  # the second derivative in x is 0 (a.e.)
    check_gradgrad(op, make_inputs(), eps=1e-3)  # the gradient graph is right in v as well


# ---------------------------------------------------------------------------
# The second-order checks can fail
# ---------------------------------------------------------------------------
class _SquareWithFlatBackward(minidl.Function):
    """x²: first derivative right, but computed on raw arrays, so it has no graph to differentiate."""

    def forward(self, x):
        return x * x

    def backward(self, grad):
        (x,) = self.saved_tensors
        return minidl.tensor(grad.data * 2 * x.data)


def test_second_order_checks_catch_a_backward_that_is_not_differentiable():
    x = leaf((3,), seed=1)
    assert gradcheck(_SquareWithFlatBackward.apply, [x])  # first order is fine...
    assert not gradgradcheck(_SquareWithFlatBackward.apply, [x], raise_exception=False)  # ...second is not
    with pytest.raises((AssertionError, ValueError)):  # ValueError: the "gradient" has no graph at all
        check_gradgrad(_SquareWithFlatBackward.apply, [x])


# ---------------------------------------------------------------------------
# Every op is twice differentiable, the fused kernels' ops included
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "loss", "shape"),
    [
        ("MaxPool2d", lambda t: (minidl.max_pool2d(t, 2) ** 2).sum(), (1, 1, 4, 4)),
        ("MaxPool2d overlapping", lambda t: (minidl.max_pool2d(t, 3, 1, 1) ** 2).sum(), (1, 2, 4, 5)),
        ("CrossEntropy", lambda t: minidl.cross_entropy(t, np.array([0, 2])), (2, 3)),
        ("CrossEntropy sum", lambda t: minidl.cross_entropy(t * t, np.array([1, 0, 2]), reduction="sum"), (3, 4)),
        ("CrossEntropy none", lambda t: minidl.cross_entropy(t, np.array([1, 0]), reduction="none").sum(), (2, 3)),
    ],
)
def test_double_backward_of_pooling_and_cross_entropy(name, loss, shape):
    x = distinct(shape)
    assert gradgradcheck(loss, [x])
