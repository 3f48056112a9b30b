"""The backward engine: the lecture's hand-derived gradients, deep graphs, repeated backward,
freed graphs, grad modes, requires_grad propagation, retain_grad, gradient dtype and shape,
the in-place version counter, minidl.grad, and the gradcheck harness itself.

PyTorch is the reference for behaviour a student will later meet there (accumulation,
retain_graph, retain_grad), compared numerically in the same test.
"""

import gc
import sys

import numpy as np
import pytest
import torch
from tolerances import TRANSCENDENTAL_ULPS, assert_within, eps, matmul_atol, sum_atol, transcendental_rtol

import minidl
from minidl.debug import GradcheckError, gradcheck, gradgradcheck


def f64(values, requires_grad=False):
    return minidl.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


# ---------------------------------------------------------------------------
# The lecture's one-layer network (seeds/001: H0 = W·X, H1 = H0 + B, L2 loss)
# ---------------------------------------------------------------------------
def test_one_layer_network_gradients_match_the_lecture_formulas():
    g = np.random.default_rng(0)
    X = g.standard_normal((4, 8))  # 4 inputs x 8 examples, one example per column
    Y = g.standard_normal((3, 8))  # targets ȳ
    W = f64(g.standard_normal((3, 4)), requires_grad=True)
    B = f64(np.zeros((3, 1)), requires_grad=True)

    H0 = W @ f64(X)
    H1 = H0 + B
    loss = ((f64(Y) - H1) ** 2).sum()
    loss.backward()

    # By hand: ∂Y = ∂L/∂H1 = -2(ȳ - y);  H1 = H0 + B so ∂H0 = ∂H1;  ∂W = ∂H0·Xᵀ;  ∂B = ∂H1·1
    dH1 = -2 * (Y - (W.array @ X + B.array))
    dH0 = dH1
    # Products and sums over the 8 examples, in whatever order the BLAS takes: their bounds.
    assert_within(W.grad.array, dH0 @ X.T, matmul_atol(dH0, X.T), "dW")
    assert_within(B.grad.array, dH1 @ np.ones((8, 1)), sum_atol(dH1, axis=1, keepdims=True), "dB")
    assert W.grad.shape == W.shape and B.grad.shape == B.shape


def test_one_layer_network_intermediate_gradients_with_retain_grad():
    g = np.random.default_rng(1)
    X, Y = g.standard_normal((4, 5)), g.standard_normal((3, 5))
    W = f64(g.standard_normal((3, 4)), requires_grad=True)
    B = f64(g.standard_normal((3, 1)), requires_grad=True)
    H0 = W @ f64(X)
    H1 = H0 + B
    H0.retain_grad()
    H1.retain_grad()
    ((f64(Y) - H1) ** 2).sum().backward()
    expected_dH1 = -2 * (Y - H1.array)
    # One subtraction, the rest exact scalings: within an ulp whatever the order (1e-13 ≫ that).
    np.testing.assert_allclose(H1.grad.array, expected_dH1, rtol=1e-13)
    np.testing.assert_allclose(H0.grad.array, expected_dH1, rtol=1e-13)  # + passes the gradient unchanged


# ---------------------------------------------------------------------------
# Deep graphs
# ---------------------------------------------------------------------------
def test_ten_thousand_op_chain_backpropagates_without_recursion():
    x = f64(0.5, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001  # dy/dx = 1.0001 ** 10000
    limit = sys.getrecursionlimit()
    y.backward()
    assert sys.getrecursionlimit() == limit
    # 10,000 multiplications, each rounding once: within 10,000 ulps (x2 for the two results).
    np.testing.assert_allclose(x.grad.item(), 1.0001**10_000, rtol=2 * 10_000 * eps(np.float64))


def test_ten_thousand_op_chain_can_be_freed_without_backward():
    # Deleting a deep chain that was never backpropagated must not overflow the C stack.
    x = f64([1.0, 2.0], requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y + 1.0
    del y
    gc.collect()
    assert x.grad is None


def test_backward_through_a_kept_graph_leaves_no_reference_cycle():
    # During backward an op's self.output is the node's own output tensor; the engine must drop
    # that reference afterwards, or a retained graph (output -> op -> output) would wait for gc.
    import weakref

    x = f64([0.3, -1.2], requires_grad=True)
    y = x.tanh()
    loss = y.sum()
    loss.backward(retain_graph=True)
    alive = weakref.ref(y)
    gc.disable()
    try:
        del y, loss
        assert alive() is None, "the output tensor outlived its last reference: a cycle through its op"
    finally:
        gc.enable()


def test_diamond_graph_sums_the_gradients_of_both_paths():
    x = f64([0.3, -1.2, 2.0], requires_grad=True)
    a = x.exp()
    y = (a * x + a.sin() * x).sum()  # x and a each feed two consumers
    y.backward()
    xt = torch.tensor(x.array, requires_grad=True)
    at = xt.exp()
    (at * xt + at.sin() * xt).sum().backward()
    # dy/dx = a·x + a + cos(a)·a·x + sin(a), a = e^x: terms of both signs (x = -1.2 cancels to
    # -0.11 from terms ~0.3), so bound by the terms: exp, sin, cos in two libraries + 7 ops.
    a_ = np.exp(x.array)
    terms = np.abs(a_ * x.array) + a_ + np.abs(np.cos(a_) * a_ * x.array) + np.abs(np.sin(a_))
    budget = 2 * 3 * TRANSCENDENTAL_ULPS + 7
    assert_within(x.grad.array, xt.grad.numpy(), 2 * budget * eps(np.float64) * terms, "diamond gradient")


# ---------------------------------------------------------------------------
# Repeated backward and freed graphs
# ---------------------------------------------------------------------------
def _same_graph_twice_minidl(values):
    x = f64(values, requires_grad=True)
    w = f64([0.5, -2.0, 1.5], requires_grad=True)
    loss = ((x * w).tanh() * x).sum()
    loss.backward(retain_graph=True)
    first = x.grad.array.copy()
    loss.backward()
    return first, x.grad.array, w.grad.array


def test_repeated_backward_with_retain_graph_accumulates_like_torch():
    values = [0.1, -0.7, 1.3]
    first, twice, w_twice = _same_graph_twice_minidl(values)

    xt = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor([0.5, -2.0, 1.5], dtype=torch.float64, requires_grad=True)
    loss = ((xt * wt).tanh() * xt).sum()
    loss.backward(retain_graph=True)
    first_t = xt.grad.clone()
    loss.backward()

    # tanh(xw) + xw·(1 - tanh²) and x²(1 - tanh²): same-sign terms for these inputs (no
    # cancellation), so relative: tanh in two libraries plus 4 ops, times 2 for the second pass.
    rtol = 2 * transcendental_rtol(np.float64, extra_ulps=4)
    np.testing.assert_allclose(first, first_t.numpy(), rtol=rtol)
    np.testing.assert_allclose(twice, xt.grad.numpy(), rtol=rtol)
    np.testing.assert_allclose(w_twice, wt.grad.numpy(), rtol=rtol)
    np.testing.assert_array_equal(twice, 2 * first)  # the same gradient added twice: g + g = 2g exactly


def test_backward_through_two_fresh_graphs_accumulates_until_zeroed():
    w = f64([1.0, 2.0], requires_grad=True)
    (w * 3).sum().backward()
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad.array, 3 + 2 * w.array)
    w.grad.zero_()
    (w * 3).sum().backward()
    np.testing.assert_allclose(w.grad.array, [3.0, 3.0])


def test_retained_grad_of_non_leaf_accumulates_over_repeated_backward_like_torch():
    x = f64([1.0, -2.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    z = (y * y).sum()
    z.backward(retain_graph=True)
    z.backward()

    xt = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    yt = xt * 2
    yt.retain_grad()
    zt = (yt * yt).sum()
    zt.backward(retain_graph=True)
    zt.backward()
    np.testing.assert_allclose(x.grad.array, xt.grad.numpy())
    np.testing.assert_allclose(y.grad.array, yt.grad.numpy())  # both backward passes, summed


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")  # torch's memory-cycle notice
@pytest.mark.parametrize(
    "make_loss",
    [lambda a, b: ((a + b) ** 2).sum(), lambda a, b: (a + b).sum()],
    ids=["squared-sum", "sum"],
)
def test_backward_after_a_create_graph_backward_accumulates_like_torch(make_loss):
    # create_graph=True stores graph-connected (possibly shared) gradients in .grad;
    # a later plain backward must still add exactly once into each leaf's own .grad.
    a = f64([1.0, 2.0], requires_grad=True)
    b = f64([3.0, 4.0], requires_grad=True)
    loss = make_loss(a, b)
    loss.backward(create_graph=True)
    loss.backward()

    at = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    bt = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    lt = make_loss(at, bt)
    lt.backward(create_graph=True)
    lt.backward()
    np.testing.assert_allclose(a.grad.array, at.grad.detach().numpy())
    np.testing.assert_allclose(b.grad.array, bt.grad.detach().numpy())


def test_backward_after_a_create_graph_backward_keeps_each_leaf_grad_separate():
    # For loss = a + b the create_graph pass hands the very same gradient tensor to a and b;
    # the second backward must not add into that shared buffer twice.
    a = f64(1.0, requires_grad=True)
    b = f64(3.0, requires_grad=True)
    loss = a + b
    loss.backward(create_graph=True)
    loss.backward()
    assert a.grad.item() == 2.0  # torch: 1 from each pass
    assert b.grad.item() == 2.0


def test_second_backward_through_a_freed_graph_raises_a_clear_error():
    x = f64([1.0, 2.0], requires_grad=True)
    loss = (x.exp() * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match=r"second time.*retain_graph=True"):
        loss.backward()


def test_backward_of_a_second_loss_sharing_a_freed_subgraph_raises():
    x = f64([1.0, 2.0], requires_grad=True)
    shared = x.exp()
    shared.sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        (shared * 2).sum().backward()


def test_backward_on_a_non_scalar_needs_a_gradient():
    x = f64([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x * x
    with pytest.raises(RuntimeError, match=r"scalar outputs.*shape \(2, 2\)"):
        y.backward()
    y.backward(f64([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_allclose(x.grad.array, 2 * x.array * [[1.0, 0.0], [0.5, 2.0]])


def test_backward_with_a_gradient_of_the_wrong_shape_is_an_error():
    y = f64([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"gradient has shape \(3,\) but the tensor has shape \(2,\)"):
        y.backward(f64([1.0, 1.0, 1.0]))


def test_backward_on_a_tensor_that_does_not_require_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (f64([1.0]) * 2).sum().backward()


def test_one_element_non_scalar_output_backpropagates_implicitly():
    x = f64([[3.0]], requires_grad=True)
    (x * x).backward()
    np.testing.assert_allclose(x.grad.array, [[6.0]])


# ---------------------------------------------------------------------------
# Grad mode
# ---------------------------------------------------------------------------
def test_no_grad_context_manager_stops_recording_and_restores_the_mode():
    x = f64([1.0], requires_grad=True)
    with minidl.no_grad():
        assert not minidl.is_grad_enabled()
        y = x * 2
    assert minidl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_enable_grad_inside_no_grad_records_again():
    x = f64([1.0], requires_grad=True)
    with minidl.no_grad():
        with minidl.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and y.grad_fn is not None
    assert not z.requires_grad


def test_no_grad_and_enable_grad_work_as_decorators():
    x = f64([1.0], requires_grad=True)

    @minidl.no_grad()
    def evaluate(t):
        return t * 2

    @minidl.enable_grad()
    def train_step(t):
        return t * 2

    assert not evaluate(x).requires_grad
    with minidl.no_grad():
        assert train_step(x).requires_grad
        assert not minidl.is_grad_enabled()  # the decorator restored the surrounding mode


def test_grad_mode_is_restored_when_the_block_raises():
    with pytest.raises(KeyError), minidl.no_grad():
        raise KeyError("boom")
    assert minidl.is_grad_enabled()


def test_set_grad_enabled_as_context_manager():
    x = f64([1.0], requires_grad=True)
    with minidl.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    with minidl.set_grad_enabled(True):
        assert (x * 2).requires_grad


def test_set_grad_enabled_called_as_a_function_switches_the_mode_like_torch():
    # torch.set_grad_enabled(False) used as a plain statement turns recording off.
    try:
        minidl.set_grad_enabled(False)
        assert not minidl.is_grad_enabled()
    finally:
        minidl.set_grad_enabled(True)  # leave grad mode on for the tests that follow
    assert minidl.is_grad_enabled()


# ---------------------------------------------------------------------------
# requires_grad, leaves, retain_grad, gradient dtype and shape
# ---------------------------------------------------------------------------
def test_requires_grad_propagates_to_results_of_any_input_that_requires_it():
    a = f64([1.0, 2.0], requires_grad=True)
    b = f64([3.0, 4.0])
    assert (a * b).requires_grad and (b * a).requires_grad
    assert not (b * b).requires_grad
    assert (a * b).grad_fn is not None and not (a * b).is_leaf
    assert a.is_leaf and b.is_leaf


def test_detach_cuts_the_graph():
    a = f64([1.0, 2.0], requires_grad=True)
    d = (a * 2).detach()
    assert not d.requires_grad and d.is_leaf
    loss = (d * a).sum()
    loss.backward()
    np.testing.assert_allclose(a.grad.array, d.array)  # no path through d


def test_non_leaf_grad_is_kept_only_after_retain_grad():
    x = f64([1.0, 2.0], requires_grad=True)
    hidden = x * 3
    kept = x * 5
    kept.retain_grad()
    (hidden * kept).sum().backward()
    assert hidden.grad is None
    np.testing.assert_allclose(kept.grad.array, hidden.array)
    np.testing.assert_allclose(x.grad.array, 2 * 15 * x.array)


def test_retained_grad_is_a_writable_buffer_of_its_own():
    # Sum's backward hands back a broadcast (read-only) view; a retained .grad must still
    # be an ordinary tensor the user can zero, like a leaf's.
    x = f64([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    y.sum().backward()
    y.grad.zero_()
    np.testing.assert_array_equal(y.grad.array, 0.0)


def test_gradient_has_the_leaf_dtype_and_shape_even_through_broadcasting_and_promotion():
    w32 = minidl.tensor(np.ones((3, 1), dtype=np.float32), requires_grad=True)
    b64 = f64(np.ones(4), requires_grad=True)
    y = w32 * b64  # (3, 4), float64
    assert y.dtype == np.float64
    y.sum().backward()
    assert w32.grad.dtype == np.float32 and w32.grad.shape == (3, 1)
    assert b64.grad.dtype == np.float64 and b64.grad.shape == (4,)
    np.testing.assert_allclose(w32.grad.array, np.full((3, 1), 4.0))
    np.testing.assert_allclose(b64.grad.array, np.full(4, 3.0))


def test_leaf_gradient_is_not_aliased_with_other_gradients():
    # Add sends the same gradient object to both inputs; each leaf must own its .grad.
    a = f64([1.0, 2.0], requires_grad=True)
    b = f64([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.array[0] = 100.0
    assert b.grad.array[0] == 1.0


# ---------------------------------------------------------------------------
# In-place changes and the version counter
# ---------------------------------------------------------------------------
def test_inplace_change_to_an_input_that_backward_needs_raises():
    w = f64([1.0, 2.0], requires_grad=True)
    x = f64([3.0, 4.0])
    y = (w * x).sum()  # d/dw needs x
    x.mul_(2)
    assert x.version == 1
    with pytest.raises(RuntimeError, match=r"backward of Mul: input 1 .* modified in place"):
        y.backward()


def test_inplace_change_to_an_input_that_backward_does_not_need_is_fine():
    w = f64([1.0, 2.0], requires_grad=True)
    x = f64([3.0, 4.0])
    y = ((w + x) * 2).sum()  # add only needs shapes
    x.add_(10.0)
    y.backward()
    np.testing.assert_allclose(w.grad.array, [2.0, 2.0])


def test_inplace_change_to_a_saved_output_raises():
    x = f64([0.1, 0.2], requires_grad=True)
    y = x.exp()  # Exp's backward uses its output
    z = y.sum()
    with minidl.no_grad():
        y.mul_(3)
    with pytest.raises(RuntimeError, match="Exp.*output was modified in place"):
        z.backward()


def test_inplace_change_through_a_view_is_detected():
    w = f64([[1.0, 2.0]], requires_grad=True)
    x = f64([[3.0, 4.0]])
    view = x.reshape(2)  # shares x's version counter
    y = (w * x).sum()
    view.add_(1.0)
    assert x.version == 1
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_inplace_change_to_a_leaf_requiring_grad_is_refused_while_recording():
    w = f64([1.0, 2.0], requires_grad=True)
    with pytest.raises(
        RuntimeError, match="add_: a leaf tensor that requires grad is being used in an in-place operation"
    ):
        w.add_(1.0)
    with minidl.no_grad():
        w.add_(1.0)  # the parameter update case
    np.testing.assert_allclose(w.array, [2.0, 3.0])
    assert w.version == 1


# ---------------------------------------------------------------------------
# minidl.grad
# ---------------------------------------------------------------------------
def test_grad_returns_gradients_without_touching_dot_grad():
    x = f64([1.0, 2.0], requires_grad=True)
    y = f64([3.0], requires_grad=True)
    gx, gy = minidl.grad((x * x * y).sum(), [x, y])
    np.testing.assert_allclose(gx.array, 2 * x.array * 3)
    np.testing.assert_allclose(gy.array, [5.0])
    assert x.grad is None and y.grad is None
    assert not gx.requires_grad


def test_grad_of_an_unused_input_is_an_error_unless_allowed():
    x = f64([1.0], requires_grad=True)
    unused = f64([2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="input 1 .* not used"):
        minidl.grad((x * 2).sum(), [x, unused])
    gx, gu = minidl.grad((x * 2).sum(), [x, unused], allow_unused=True)
    assert gu is None
    np.testing.assert_allclose(gx.array, [2.0])


def test_grad_with_grad_outputs_is_a_vector_jacobian_product():
    x = f64([1.0, 2.0, 3.0], requires_grad=True)
    v = f64([1.0, -1.0, 0.5])
    (g,) = minidl.grad(x.sin(), [x], grad_outputs=[v])
    np.testing.assert_allclose(g.array, np.cos(x.array) * v.array)


def test_grad_with_respect_to_an_intermediate_tensor():
    x = f64([1.0, 2.0], requires_grad=True)
    h = x * 3
    (gh,) = minidl.grad((h * h).sum(), [h])
    np.testing.assert_allclose(gh.array, 2 * h.array)


# ---------------------------------------------------------------------------
# The gradcheck harness: it must catch a wrong backward, and handle every shape
# ---------------------------------------------------------------------------
class _WrongSquare(minidl.Function):
    """x^2 with a deliberately wrong derivative (3x instead of 2x)."""

    def forward(self, x):
        return x * x

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * (3 * x)


def test_gradcheck_catches_a_wrong_backward_and_names_the_element():
    x = f64([0.5, -1.0], requires_grad=True)
    with pytest.raises(GradcheckError, match=r"2 of 2 elements disagree"):
        gradcheck(lambda t: _WrongSquare.apply(t), [x])
    report = gradcheck(lambda t: _WrongSquare.apply(t), [x], raise_exception=False)
    assert not report


def test_gradgradcheck_catches_a_wrong_second_derivative():
    x = f64([0.5, -1.0], requires_grad=True)
    # (x^2)' = 3x is wrong, so its derivative 3 disagrees with the true 2.
    assert not gradgradcheck(lambda t: _WrongSquare.apply(t) * t, [x], raise_exception=False)


def test_gradcheck_accepts_0d_inputs():
    x = f64(0.7, requires_grad=True)
    assert gradcheck(lambda t: t.sin() * t, [x])


def test_gradgradcheck_accepts_ops_whose_first_derivative_is_constant():
    # The second derivative of a linear op is 0 everywhere; that must pass, not raise.
    x = f64([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert gradgradcheck(lambda t: t.reshape(4) * 2, [x])


def test_leaf_grad_never_aliases_a_gradient_someone_else_holds():
    # .grad may take a fresh gradient buffer without copying; it must never take one that a
    # hook kept, the caller passed in, or another tensor received, because a later backward
    # adds into .grad in place.
    x = f64([1.0, 2.0], requires_grad=True)
    kept = []
    y = x + 0.0  # Add's backward passes the incoming gradient on unchanged
    y.register_hook(lambda g: kept.append(g))
    (y * 3.0).sum().backward()  # y's gradient is a fresh array, [3, 3]
    (x * 3).sum().backward()
    np.testing.assert_array_equal(kept[0].array, [3.0, 3.0])
    np.testing.assert_array_equal(x.grad.array, [6.0, 6.0])

    start = f64([5.0, 7.0])
    z = x.detach().requires_grad_()
    (z + 0.0).backward(start)  # the gradient passed in reaches z unchanged
    (z * 2).sum().backward()
    np.testing.assert_array_equal(start.array, [5.0, 7.0])

    a, b = f64(1.0, requires_grad=True), f64(2.0, requires_grad=True)
    (a + b).backward()
    (a * 1.0).backward()
    assert a.grad.item() == 2.0 and b.grad.item() == 1.0
