"""Second-order tools (issue 13): minidl.autograd.functional (vjp, jvp, hvp, vhp, jacobian, hessian) and
optim.LBFGS. hvp equals both the Hessian times v (from hessian) and a finite difference of gradients;
jvp and vjp agree with the Jacobian; L-BFGS minimizes classic problems. PyTorch parity of both:
test_toolbox_torch_parity.py.
"""

import minidl.autograd.functional as AF
import numpy as np
import pytest
from tolerances import assert_within, chain_atol, eps

import minidl
from minidl import nn, optim


def objective(x):
    """A smooth non-quadratic scalar function of a vector: tanh's derivatives are bounded by 2."""
    a = minidl.tensor(np.random.default_rng(0).standard_normal((6, x.shape[0])) / 2)
    return (a @ x).tanh().pow(2).sum() + (x * x * x).sum() * 0.1 + (x.sin() * x).sum()


def gradient_of(x):
    (g,) = minidl.grad(objective(x), x)
    return g.array


def test_autograd_functional_is_reachable_as_pytorch_spells_it():
    import minidl.autograd as autograd

    assert autograd.functional is AF and minidl.autograd.functional.hvp is AF.hvp
    from minidl.autograd.functional import hessian  # noqa: F401 - the import itself is the test


def test_hvp_equals_the_hessian_times_v_and_a_finite_difference_of_gradients():
    rng = np.random.default_rng(1)
    x = minidl.tensor(rng.standard_normal(5))
    v = minidl.tensor(rng.standard_normal(5))
    value, hv = AF.hvp(objective, x, v)
    assert abs(value.item() - objective(x).item()) <= 4 * eps(np.float64) * 10
    hessian = AF.hessian(objective, x)
    assert hessian.shape == (5, 5)
    # Both are double-backward passes through the same ops, seeded with v or with each unit vector:
    # H @ v adds 5 rounded products to what each entry of H already carries (the chain below).
    assert_within(hv.array, hessian.array @ v.array, chain_atol(hv.array, budget=5 + 60, fan_in=5), "hvp vs hessian")
    assert_within(hessian.array, hessian.array.T, chain_atol(hessian.array, budget=60, fan_in=5), "symmetry")
    # Central difference of gradients along v: (∇f(x + hv) - ∇f(x - hv)) / 2h = Hv + O(h²·f'''·|v|³) with
    # a rounding error of about eps·|∇f|/h. With h = 1e-5, |v| ~ 2 and third derivatives of this f of
    # order 10 that is ~1e-9 + 1e-10: 1e-7 leaves a factor 100.
    h = 1e-5
    finite = (gradient_of(minidl.tensor(x.array + h * v.array, requires_grad=True))
              - gradient_of(minidl.tensor(x.array - h * v.array, requires_grad=True))) / (2 * h)  # fmt: skip
    assert_within(hv.array, finite, 1e-7 * max(1.0, np.abs(finite).max()), "hvp vs finite differences")
    # And with a coarser step, truncation shows: the check can fail.
    coarse = (gradient_of(minidl.tensor(x.array + 0.3 * v.array, requires_grad=True))
              - gradient_of(minidl.tensor(x.array - 0.3 * v.array, requires_grad=True))) / 0.6  # fmt: skip
    assert np.abs(coarse - hv.array).max() > 1e-4


def test_vhp_jvp_vjp_and_jacobian_agree_with_each_other():
    rng = np.random.default_rng(2)
    x, v = minidl.tensor(rng.standard_normal(5)), minidl.tensor(rng.standard_normal(5))
    np.testing.assert_array_equal(AF.vhp(objective, x, v)[1].array, AF.hvp(objective, x, v)[1].array)

    def f(x):
        return (x.reshape(5, 1) * x.reshape(1, 5)).tanh().sum(axis=0) * x

    jacobian = AF.jacobian(f, x)
    assert jacobian.shape == (5, 5)
    out, jv = AF.jvp(f, x, v)
    np.testing.assert_allclose(jv.array, jacobian.array @ v.array, rtol=1e-12, atol=1e-13)
    u = minidl.tensor(rng.standard_normal(5))
    out2, uj = AF.vjp(f, x, u)
    np.testing.assert_allclose(uj.array, u.array @ jacobian.array, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(out.array, out2.array)
    assert not x.requires_grad and x.grad is None  # the inputs are not touched


def test_tuples_of_inputs_and_outputs_mirror_pytorch():
    a, b = minidl.randn(2, 3, dtype=np.float64), minidl.randn(3, dtype=np.float64)

    def f(a, b):
        return ((a @ b).exp()).sum()

    hessian = AF.hessian(f, (a, b))
    assert [[block.shape for block in row] for row in hessian] == [[(2, 3, 2, 3), (2, 3, 3)], [(3, 2, 3), (3, 3)]]
    np.testing.assert_allclose(hessian[0][1].array, hessian[1][0].array.transpose(1, 2, 0), rtol=1e-13)
    _, (ha, hb) = AF.hvp(f, (a, b), (minidl.ones(2, 3, dtype=np.float64), minidl.zeros(3, dtype=np.float64)))
    np.testing.assert_allclose(ha.array, hessian[0][0].array.reshape(6, 6).sum(axis=1).reshape(2, 3), rtol=1e-12)
    np.testing.assert_allclose(hb.array, hessian[1][0].array.reshape(3, 6).sum(axis=1), rtol=1e-12)


def test_create_graph_keeps_results_differentiable_and_strict_reports_unused_inputs():
    x = minidl.tensor(np.array([0.3, -1.2]), requires_grad=True)
    v = minidl.tensor(np.array([1.0, 2.0]))
    _, hv = AF.hvp(lambda x: (x**4).sum(), x, v, create_graph=True)  # Hv = 12x²·v
    (third,) = minidl.grad(hv.sum(), x)  # d/dx Σ 12x²v = 24x·v
    np.testing.assert_allclose(third.array, 24 * x.array * v.array, rtol=1e-14)
    _, (ga, gb) = AF.vjp(lambda a, b: a * 2, (minidl.randn(2), minidl.randn(2)), minidl.ones(2))
    np.testing.assert_array_equal(gb.array, 0)
    with pytest.raises(RuntimeError, match="vjp: the output does not depend on input 1"):
        AF.vjp(lambda a, b: a * 2, (minidl.randn(2), minidl.randn(2)), minidl.ones(2), strict=True)
    with pytest.raises(ValueError, match="hvp: the function must return a single tensor with one element"):
        AF.hvp(lambda x: x * 2, minidl.randn(2), minidl.randn(2))
    with pytest.raises(ValueError, match="vjp: v can be omitted only when the output is a single one-element"):
        AF.vjp(lambda x: x * 2, minidl.randn(2))


# ---------------------------------------------------------------------------
# L-BFGS
# ---------------------------------------------------------------------------
def test_lbfgs_with_line_search_solves_rosenbrock():
    w = nn.Parameter(np.array([-1.2, 1.0]))
    opt = optim.LBFGS([w], lr=1, max_iter=100, line_search_fn="strong_wolfe", tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2
        loss.backward()
        return loss

    opt.step(closure)
    np.testing.assert_allclose(w.array, [1.0, 1.0], atol=1e-7)  # the minimum
    assert opt.state[w]["func_evals"] < 100


def test_lbfgs_fits_a_full_batch_logistic_regression_to_a_stationary_point():
    rng = np.random.default_rng(3)
    x = minidl.tensor(rng.standard_normal((200, 4)))
    y = minidl.tensor((x.array @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.standard_normal(200) > 0).astype(np.float64))
    model = nn.Linear(4, 1).double()
    opt = optim.LBFGS(model.parameters(), line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = minidl.binary_cross_entropy_with_logits(model(x).reshape(-1), y)
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    closure()
    assert (
        max(np.abs(p.grad.array).max() for p in model.parameters()) < 1e-7
    )  # (2e-8 here; 2e-6 with the default tolerance_change)


def test_lbfgs_checks_its_arguments():
    a, b = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="LBFGS: parameter groups are not supported"):
        optim.LBFGS([{"params": [a]}, {"params": [b], "lr": 0.1}])
    with pytest.raises(ValueError, match="LBFGS: line_search_fn must be None or 'strong_wolfe'"):
        optim.LBFGS([a], line_search_fn="backtracking")
    with pytest.raises(ValueError, match="LBFGS: history_size must be a positive integer"):
        optim.LBFGS([a], history_size=0)
    with pytest.raises(ValueError, match="LBFGS.step: a closure that recomputes the loss"):
        optim.LBFGS([a]).step(None)
