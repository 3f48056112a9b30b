"""Breakpoints and hooks: tensor hooks, module forward/backward hooks, and break_on."""

import sys

import numpy as np
import pytest
from tolerances import assert_within, matmul_atol

import minidl
from minidl import autograd, nn
from minidl.debug import Step, break_on, breakpoints, clear_breakpoints, trace


@pytest.fixture(autouse=True)
def no_breakpoints_left_behind():
    yield
    clear_breakpoints()
    assert autograd.backward_observers == []


def lecture_network():
    rng = np.random.default_rng(0)
    X = minidl.Tensor(rng.standard_normal((4, 8)), name="X")
    Y = minidl.Tensor(rng.standard_normal((3, 8)), name="Y")
    W = minidl.Tensor(rng.standard_normal((3, 4)), requires_grad=True, name="W")
    B = minidl.Tensor(np.zeros((3, 1)), requires_grad=True, name="B")
    H1 = W @ X + B
    return X, Y, W, B, H1, ((Y - H1) ** 2).sum()


# ---------------------------------------------------------------------------
# Tensor.register_hook
# ---------------------------------------------------------------------------
def test_tensor_hooks_run_in_registration_order_and_see_the_previous_replacement():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    calls = []
    y.register_hook(lambda g: calls.append(("first", g.array.copy())))
    y.register_hook(lambda g: calls.append(("second", g.array.copy())) or g * 10)
    y.register_hook(lambda g: calls.append(("third", g.array.copy())))
    y.sum().backward()
    assert [name for name, _ in calls] == ["first", "second", "third"]
    np.testing.assert_array_equal(calls[0][1], [1.0, 1.0])
    np.testing.assert_array_equal(calls[2][1], [10.0, 10.0])  # the third hook sees the replacement
    np.testing.assert_array_equal(x.grad.array, [30.0, 30.0])  # ... and so does everything below y


def test_a_hook_returning_a_tensor_replaces_a_leaf_gradient():
    w = minidl.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w.register_hook(lambda g: g.clip(-0.5, 0.5))  # gradient clipping on one tensor
    (w * minidl.tensor([4.0, -0.1, 0.2])).sum().backward()
    np.testing.assert_allclose(w.grad.array, [0.5, -0.1, 0.2])


def test_a_hook_returning_none_only_inspects_and_handles_remove_hooks():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = x.register_hook(seen.append)
    (x * x).sum().backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0].array, x.grad.array)
    handle.remove()
    (x * x).sum().backward()
    assert len(seen) == 1


def test_grad_never_shares_memory_with_a_gradient_a_hook_kept():
    # .grad takes autograd's gradient array without a copy only when nothing else holds it; a hook
    # that keeps the gradient, its array or a view of it must leave .grad with memory of its own.
    keepers = {
        "tensor": lambda kept: lambda g: kept.append(g),
        "array": lambda kept: lambda g: kept.append(g.array),
        "view": lambda kept: lambda g: kept.append(g.array[1:]),
    }
    for what, make_hook in keepers.items():
        x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
        kept = []
        x.register_hook(make_hook(kept))
        (x * x).sum().backward()
        held = kept[0].array if what == "tensor" else kept[0]
        assert not np.shares_memory(x.grad.array, held), what
        (x * x).sum().backward()  # accumulating into .grad must not change what the hook kept
        np.testing.assert_array_equal(x.grad.array, [4.0, 8.0, 12.0])
        np.testing.assert_array_equal(held, [2.0, 4.0, 6.0][3 - held.size :])


def test_a_hook_that_only_reads_leaves_grad_its_own_memory_and_the_right_values():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    norms = []
    x.register_hook(lambda g: norms.append(float((g * g).sum().item())))
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.array, [4.0, 8.0])
    assert norms == [20.0, 20.0]


def test_the_tracer_records_the_gradient_after_hooks():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    h.register_hook(lambda g: g * 0)
    with trace() as t:
        h.sum().backward()
    (mul,) = t.find("Mul")
    np.testing.assert_array_equal(mul.grad_output, [0.0, 0.0])


def test_a_hook_returning_the_wrong_shape_is_a_clear_error():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: minidl.ones(3))
    with pytest.raises(RuntimeError, match="shape"):
        y.sum().backward()


# ---------------------------------------------------------------------------
# Module hooks (minidl.nn)
# ---------------------------------------------------------------------------
def test_module_forward_pre_hooks_and_forward_hooks_run_in_order_and_can_replace():
    minidl.manual_seed(0)
    layer = nn.Linear(3, 2)
    calls = []
    layer.register_forward_pre_hook(lambda m, args: calls.append("pre 1"))
    layer.register_forward_pre_hook(lambda m, args: (calls.append("pre 2"), (args[0] * 0,))[1])
    layer.register_forward_hook(lambda m, args, out: calls.append(("fwd 1", float(args[0].array.sum()))))
    layer.register_forward_hook(lambda m, args, out: out + 100)
    out = layer(minidl.ones(1, 3))
    assert calls == ["pre 1", "pre 2", ("fwd 1", 0.0)]  # the forward hook saw the replaced input
    np.testing.assert_array_equal(out.array, layer.bias.array[None, :] + 100)  # 0·W + b exact, + 100 the same add


def test_module_full_backward_hook_sees_grad_input_and_grad_output():
    minidl.manual_seed(0)
    layer = nn.Linear(3, 2)
    x = minidl.randn(4, 3, requires_grad=True)
    seen = []
    layer.register_full_backward_hook(lambda m, gin, gout: seen.append((m, gin, gout)))
    out = layer(x)
    upstream = minidl.randn(4, 2)
    out.backward(upstream)
    ((module, grad_input, grad_output),) = seen
    assert module is layer
    np.testing.assert_allclose(grad_output[0].array, upstream.array)
    want = upstream.array @ layer.weight.array  # dX = dY·W, by our kernels and by NumPy's BLAS
    assert_within(grad_input[0].array, want, matmul_atol(upstream.array, layer.weight.array), "dX")
    np.testing.assert_array_equal(x.grad.array, grad_input[0].array)  # the hook saw what x.grad got


def test_module_backward_hooks_run_in_registration_order_and_can_replace_grad_input():
    minidl.manual_seed(0)
    layer = nn.Linear(3, 2)
    x = minidl.randn(4, 3, requires_grad=True)
    order = []
    layer.register_full_backward_hook(lambda m, gin, gout: order.append("first"))
    layer.register_full_backward_hook(lambda m, gin, gout: (order.append("second"), (gin[0] * 0,))[1])
    layer.register_full_backward_hook(lambda m, gin, gout: order.append(("third", float(np.abs(gin[0].array).sum()))))
    layer(x).sum().backward()
    assert order == ["first", "second", ("third", 0.0)]
    np.testing.assert_array_equal(x.grad.array, np.zeros((4, 3)))
    assert np.abs(layer.weight.grad.array).sum() > 0  # the parameters' gradients are not affected


# ---------------------------------------------------------------------------
# break_on
# ---------------------------------------------------------------------------
def test_break_on_calls_the_debugger_at_the_chosen_op_with_the_step():
    X, Y, W, B, H1, loss = lecture_network()
    stops = []
    with break_on(op="matmul", debugger=stops.append) as bp:
        loss.backward()
    (step,) = stops
    assert isinstance(step, Step) and step.op == "MatMul" and bp.hits == 1
    dH0 = -2 * (Y.array - H1.array)
    assert_within(step.grad_for(W).array, dH0 @ X.array.T, matmul_atol(dH0, X.array.T))  # ∂W = ∂H0·Xᵀ
    assert W.grad is not None  # it only paused: backward went on afterwards
    assert breakpoints() == []


def test_break_on_happens_before_the_step_is_applied():
    X, Y, W, B, H1, loss = lecture_network()
    grads_at_break = []
    with break_on("MatMul", debugger=lambda step: grads_at_break.append(W.grad)):
        loss.backward()
    assert grads_at_break == [None]


def test_break_on_accepts_a_function_class_and_a_condition():
    x = minidl.tensor([1.0, -1.0], requires_grad=True)
    stops = []
    with break_on(op=minidl.ops.elementwise.ReLU, debugger=stops.append):
        x.relu().sum().backward()
    assert [s.op for s in stops] == ["ReLU"]
    stops.clear()
    # Any op whose incoming gradient is all zeros: where a gradient "dies".
    with break_on(condition=lambda s: not s.grad_output.array.any(), debugger=stops.append):
        (x.relu() * 0).sum().backward()
    assert [s.op for s in stops] == ["ReLU"]


def test_break_on_as_a_global_switch_until_cleared():
    stops = []
    break_on("exp", debugger=stops.append)
    break_on("sum", debugger=stops.append)
    assert len(breakpoints()) == 2
    x = minidl.tensor([0.5], requires_grad=True)
    x.exp().sum().backward()
    assert [s.op for s in stops] == ["Sum", "Exp"]
    clear_breakpoints()
    x.exp().sum().backward()
    assert len(stops) == 2


def test_default_debugger_enters_breakpoint_with_step_as_a_local(monkeypatch):
    entered = []

    def fake_breakpointhook(*args, **kwargs):  # what breakpoint() calls; pdb by default
        entered.append(sys._getframe(1).f_locals["step"])

    monkeypatch.setattr(sys, "breakpointhook", fake_breakpointhook)
    x = minidl.tensor([[1.0, 2.0]], requires_grad=True)
    with break_on("matmul"):
        (x @ minidl.ones(2, 1)).sum().backward()
    (step,) = entered
    assert step.op == "MatMul"


def test_break_on_needs_something_to_match():
    with pytest.raises(ValueError, match="op"):
        break_on()
