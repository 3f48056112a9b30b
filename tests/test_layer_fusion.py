"""Layer fusion and the fast paths of a training step: same numbers, fewer graph nodes.

- nn.Sequential runs Linear + ReLU/Sigmoid/Tanh as one LinearAct op on the C kernels,
  and keeps them apart on the NumPy kernels, under hooks, under debugging tools that
  watch the forward pass, and when told (fuse_layers = False).
- LinearAct and Linear compute their backward on raw arrays in a plain backward() and
  from Tensor ops under create_graph=True, so both are twice differentiable.
- cross_entropy folds its mean/sum into the op: one node, same values and gradients.
"""

import numpy as np
import pytest
from core_helpers import leaf
from tolerances import (
    ACTIVATION_ULPS,
    TRANSCENDENTAL_ULPS,
    assert_within,
    chain_atol,
    cross_entropy_atol,
    eps,
    linear_act_backward_atol,
    linear_act_forward_atol,
    matmul_atol,
)

import minidl
from minidl import nn
from minidl.backend import numpy_kernels
from minidl.debug import gradcheck, gradgradcheck, record_modules

ACTIVATIONS = [(nn.ReLU, "relu"), (nn.Sigmoid, "sigmoid"), (nn.Tanh, "tanh")]


def graph_ops(tensor):
    """Names of the ops in the graph below `tensor`, outputs first (a plain DFS over grad_fn)."""
    names, seen, stack = [], set(), [tensor]
    while stack:
        t = stack.pop()
        fn = t.grad_fn
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        names.append(fn.name)
        stack.extend(fn.inputs)
    return names


def mlp(activation_module, fuse_layers=True, seed=0):
    minidl.manual_seed(seed)
    model = nn.Sequential(nn.Linear(7, 33), activation_module(), nn.Linear(33, 5))
    model.fuse_layers = fuse_layers
    return model


def step_tolerances(x, y, activation, w1, b1, w2, b2, image=None):
    """How far two runs of step_results (fused, separate) may be apart: tolerances.py's chain rule
    through layer 1 (act(x W1ᵀ + b1)), layer 2, the cross-entropy and both layers' backward.

    image=(N, C_out, positions): layer 1 is a convolution run as a product of its im2col rows x
    (N·positions, C·kh·kw), whose output Flatten reads as (N, C_out·positions).
    """
    h, _, h_atol = linear_act_forward_atol(x, w1, b1, activation)
    if image is not None:  # (N·P, C_out) rows -> (N, C_out·P), as Flatten sees them: exact copies
        n, c_out, positions = image
        h, h_atol = (a.reshape(n, positions, c_out).transpose(0, 2, 1).reshape(n, -1) for a in (h, h_atol))
    logits, _, logits_atol = linear_act_forward_atol(h, w2, b2, None, x_atol=h_atol)
    _, loss_atol, dlogits, dlogits_atol = cross_entropy_atol(logits, y, logits_atol=logits_atol)
    top = linear_act_backward_atol(h, w2, b2, None, dlogits, x_atol=h_atol, grad_atol=dlogits_atol)
    dh, dh_atol = top["x"]
    if image is not None:
        dh, dh_atol = (a.reshape(n, c_out, positions).transpose(0, 2, 1).reshape(-1, c_out) for a in (dh, dh_atol))
    bottom = linear_act_backward_atol(x, w1, b1, activation, dh, grad_atol=dh_atol)
    grads = [bottom["weight"][1], bottom["bias"][1], top["weight"][1], top["bias"][1]]
    return loss_atol, logits_atol, grads


def step_results(model, x, y):
    """Loss, output and every parameter's gradient after one forward/backward."""
    for p in model.parameters():
        p.grad = None
    out = model(x)
    loss = minidl.cross_entropy(out, y)
    loss.backward()
    return loss.item(), out.data.copy(), [p.grad.data.copy() for p in model.parameters()]


@pytest.mark.parametrize(("module", "name"), ACTIVATIONS)
def test_sequential_fuses_linear_and_activation_on_c_kernels_with_the_same_results(kernel_set, module, name):
    kernel_set("c")
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((13, 7)).astype(np.float32))
    y = rng.integers(0, 5, 13)
    fused, separate = mlp(module), mlp(module, fuse_layers=False)
    assert "LinearAct" in graph_ops(fused(x)) and module.__name__ not in graph_ops(fused(x))  # ReLU, Sigmoid, Tanh
    assert module.__name__ in graph_ops(separate(x))
    assert "LinearAct" not in graph_ops(separate(x))
    want_loss, want_out, want_grads = step_results(separate, x, y)
    got_loss, got_out, got_grads = step_results(fused, x, y)
    loss_atol, out_atol, grad_atols = step_tolerances(x.data, y, name, *(p.data for p in separate.parameters()))
    assert_within(got_loss, want_loss, loss_atol, "loss")
    assert_within(got_out, want_out, out_atol, "output")
    for got, want, atol, (pname, _) in zip(got_grads, want_grads, grad_atols, separate.named_parameters()):
        assert_within(got, want, atol.reshape(want.shape), f"gradient of {pname}")


def test_numpy_kernels_never_fuse(kernel_set):
    kernel_set("numpy")
    assert graph_ops(mlp(nn.ReLU)(minidl.randn(4, 7))) == ["Linear", "ReLU", "Linear"]


def test_fusion_steps_aside_for_hooks_and_forward_watchers(kernel_set):
    kernel_set("c")
    x = minidl.randn(4, 7)
    model = mlp(nn.ReLU)
    assert graph_ops(model(x)) == ["Linear", "LinearAct"]
    seen = []
    handle = model[1].register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    assert graph_ops(model(x)) == ["Linear", "ReLU", "Linear"] and seen == [(4, 33)]  # the hook ran
    handle.remove()
    handle = model[0].register_forward_pre_hook(lambda module, inputs: None)
    assert "ReLU" in graph_ops(model(x))
    handle.remove()
    with record_modules():  # provenance for draw_graph watches every op: keep them all
        assert graph_ops(model(x)) == ["Linear", "ReLU", "Linear"]
    assert graph_ops(model(x)) == ["Linear", "LinearAct"]


def test_only_linear_then_activation_pairs_fuse(kernel_set):
    kernel_set("c")
    minidl.manual_seed(0)
    model = nn.Sequential(nn.ReLU(), nn.Linear(6, 6), nn.LeakyReLU(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 2))
    x = minidl.randn(3, 6, requires_grad=True)
    assert graph_ops(model(x)) == ["Linear", "LinearAct", "LeakyReLU", "Linear", "ReLU"]


def test_a_fused_layer_still_checks_its_input():
    with pytest.raises(ValueError, match=r"Linear\(in_features=7.*expected input of shape \(\.\.\., 7\)"):
        mlp(nn.ReLU)(minidl.randn(4, 8))


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("kernels", ["numpy", "c"])
def test_linear_act_is_twice_differentiable(kernel_set, kernels, activation):
    """create_graph=True builds LinearAct's backward from Tensor ops (a gradient penalty works through it)."""
    kernel_set(kernels)
    away = 0.05 if activation == "relu" else 0.0  # keep pre-activations off relu's kink
    x, w, b = leaf((3, 4), seed=1), leaf((5, 4), seed=2), leaf((5,), seed=3, away_from_zero=away)

    def f(x, w, b):
        return minidl.linear_act(x, w, b, activation)

    assert gradcheck(f, [x, w, b])
    assert gradgradcheck(f, [x, w, b])
    assert gradgradcheck(lambda x, w: minidl.linear_act(x, w, None, activation), [x, w])


@pytest.mark.parametrize("kernels", ["numpy", "c"])
def test_linear_backward_paths_agree_and_are_twice_differentiable(kernel_set, kernels):
    """The plain backward() (raw arrays) and the create_graph one (Tensor ops) give the same gradients."""
    kernel_set(kernels)
    x, w, b = leaf((6, 4), seed=1), leaf((3, 4), seed=2), leaf((3,), seed=3)
    g = np.random.default_rng(4).standard_normal((6, 3))
    plain = minidl.grad(minidl.linear(x, w, b), [x, w, b], [g])
    recorded = minidl.grad(minidl.linear(x, w, b), [x, w, b], [g], create_graph=True)
    assert all(p.grad_fn is None for p in plain)
    assert recorded[0].grad_fn is not None and recorded[1].grad_fn is not None  # db = sum(g) is constant
    # The same products and sums, maybe through other strides (another BLAS order): their bounds.
    bounds = linear_act_backward_atol(x.data, w.data, b.data, None, g)
    for p, r, key in zip(plain, recorded, ("x", "weight", "bias")):
        assert_within(p.data, r.data, bounds[key][1], f"d{key}")
    assert gradgradcheck(minidl.linear, [x, w, b])
    only_w = minidl.grad(minidl.linear(x.detach(), w), [w], [g])  # no bias, no input gradient
    assert_within(only_w[0].data, g.T @ x.data, matmul_atol(g.T, x.data), "dW")


def test_gradient_penalty_through_a_fused_sequential(kernel_set):
    """d/dW of |dL/dx|^2 through Linear+Tanh: fused (C) and separate layers agree."""
    kernel_set("c")
    results = []
    for fuse in (True, False):
        model = mlp(nn.Tanh, fuse_layers=fuse)
        for p in model.parameters():
            p.data = p.data.astype(np.float64)
        x = leaf((4, 7), seed=5)
        (gx,) = minidl.grad(model(x).sum(), [x], create_graph=True)
        (gx * gx).sum().backward()
        results.append([None if p.grad is None else p.grad.data.copy() for p in model.parameters()])
    assert results[0][-1] is None and results[1][-1] is None  # dL/dx does not depend on the last bias
    # float64, a chain: forward (7 + 1, tanh, 33 + 1), dL/dx back through both layers (5, tanh', 33),
    # then all of it differentiated again (about 3 times the path) and the square summed over 28.
    budget = 3 * (8 + 2 * TRANSCENDENTAL_ULPS + 1 + 34 + 5 + 3 + 33) + 28
    for fused, separate in zip(results[0][:-1], results[1][:-1]):
        assert_within(fused, separate, chain_atol(separate, budget=budget, fan_in=33), "gradient penalty")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_reduction_is_one_node_with_the_same_values(reduction):
    logits = leaf((6, 4), seed=1)
    targets = np.array([0, 3, 1, 1, 2, 0])
    loss = minidl.cross_entropy(logits, targets, reduction=reduction)
    assert graph_ops(loss) == ["CrossEntropy"]
    z = logits.data
    rows = -(z[np.arange(6), targets] - np.log(np.exp(z).sum(axis=1)))
    want = {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[reduction]
    # Unshifted logsumexp here, shifted in the op: 4 + 2 transcendentals + 3, and 6 rows; relative to
    # the terms, 2·max|z| + log 4 per row.
    scale = (2 * np.abs(z).max() + np.log(4)) * (6 if reduction == "sum" else 1)
    assert_within(loss.data, want, chain_atol(scale, budget=4 + 2 * TRANSCENDENTAL_ULPS + 3 + 6), reduction)
    assert gradcheck(lambda t: minidl.cross_entropy(t, targets, reduction=reduction), [logits])


def test_cross_entropy_ignored_rows_take_no_part_in_loss_or_gradient():
    logits = leaf((5, 3), seed=1)
    targets = np.array([2, -100, 0, -100, 1])
    kept = np.array([0, 2, 4])
    loss = minidl.cross_entropy(logits, targets)
    reference = minidl.cross_entropy(logits[kept], targets[kept])
    # The same rows' losses (positive: relative) averaged in maybe another order, and softmax - onehot
    # over 3 (no value near 0 here): a few roundings, far inside 1e-12.
    np.testing.assert_allclose(loss.item(), reference.item(), rtol=1e-12)
    (g,) = minidl.grad(loss, [logits])
    (g_ref,) = minidl.grad(reference, [logits])
    np.testing.assert_allclose(g.data, g_ref.data, rtol=1e-12)
    assert not g.data[[1, 3]].any()
    assert minidl.cross_entropy(logits, np.full(5, -100)).item() == 0  # nothing counts: 0, not NaN
    with pytest.raises(IndexError, match="cross_entropy: target 3 is out of range for 3 classes"):
        minidl.cross_entropy(logits, np.array([0, 1, 2, 3, 0]))
    with pytest.raises(IndexError, match="target -1 is out of range"):
        minidl.cross_entropy(logits, np.array([0, -1, 2, 1, 0]))
    with pytest.raises(ValueError, match="cross_entropy: reduction must be"):
        minidl.cross_entropy(logits, np.zeros(5, int), reduction="avg")


@pytest.mark.parametrize(("module", "name"), ACTIVATIONS)
def test_sequential_fuses_conv2d_and_activation_with_the_same_results(kernel_set, module, name):
    kernel_set("c")
    rng = np.random.default_rng(1)
    x = minidl.tensor(rng.standard_normal((3, 2, 9, 9)).astype(np.float32))
    y = rng.integers(0, 4, 3)
    results = []
    for fuse in (True, False):
        minidl.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(2, 5, 3, padding=1), module(), nn.Flatten(), nn.Linear(5 * 81, 4))
        model.fuse_layers = fuse
        out = model(x)
        ops = graph_ops(out)
        assert ("LinearAct" in ops) == fuse and (module.__name__ in ops) != fuse
        results.append(step_results(model, x, y))
    (want_loss, want_out, want_grads), (got_loss, got_out, got_grads) = results[1], results[0]
    conv_w, conv_b, fc_w, fc_b = (p.data for p in model.parameters())
    cols = numpy_kernels.im2col(x.data, 3, 3, 1, 1)  # the convolution as the product it is: (3·81, 2·9) rows
    loss_atol, out_atol, grad_atols = step_tolerances(
        cols, y, name, conv_w.reshape(5, -1), conv_b, fc_w, fc_b, image=(3, 5, 81)
    )
    assert_within(got_loss, want_loss, loss_atol, "loss")
    assert_within(got_out, want_out, out_atol, "output")
    for got, want, atol in zip(got_grads, want_grads, grad_atols):
        assert_within(got, want, atol.reshape(want.shape), "gradient")


@pytest.mark.parametrize("kernels", ["numpy", "c"])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_conv2d_with_activation_gradchecks(kernel_set, kernels, activation):
    kernel_set(kernels)
    x = leaf((2, 2, 5, 5), seed=1)
    w = leaf((3, 2, 3, 3), seed=2)
    b = leaf((3,), seed=3, away_from_zero=0.05 if activation == "relu" else 0.0)

    def f(x, w, b):
        return minidl.conv2d(x, w, b, padding=1, activation=activation)

    want = minidl.conv2d(x, w, b, padding=1)
    act = {"relu": minidl.relu, "sigmoid": minidl.sigmoid, "tanh": minidl.tanh}[activation]
    # The same convolution (2·3·3 products + bias) maybe summed another way, through an activation of
    # slope <= 1 that rounds on its own: relative to the convolution of |x|, |w|, |b|.
    terms = minidl.conv2d(abs(x.detach()), abs(w.detach()), abs(b.detach()), padding=1).data
    got, expected = f(x, w, b).data, act(want).data
    atol = 2 * 19 * eps(np.float64) * terms + 2 * ACTIVATION_ULPS[activation] * eps(np.float64) * np.abs(expected)
    assert_within(got, expected, atol, activation)
    assert gradcheck(f, [x, w, b])


def test_a_fused_conv2d_still_checks_its_input(kernel_set):
    kernel_set("c")
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU())
    with pytest.raises(ValueError, match=r"Conv2d\(2, 3.*expected input \(N, 2, H, W\), got shape \(1, 3, 5, 5\)"):
        model(minidl.randn(1, 3, 5, 5))
