"""The backward tracer and stepper: what a student sees when watching backprop one node at a time."""

import subprocess
import sys

import numpy as np
import pytest
from tolerances import assert_within, chain_atol, matmul_atol, sum_atol

import minidl
from minidl import autograd, nn
from minidl.debug import Step, Trace, step_backward, trace


# ---------------------------------------------------------------------------
# Small graphs, built the same way each time
# ---------------------------------------------------------------------------
def lecture_network(seed=0):
    """The lecture's one-layer network: H0 = W·X, H1 = H0 + B, L = |Y - H1|^2 (float64)."""
    rng = np.random.default_rng(seed)
    X = minidl.Tensor(rng.standard_normal((4, 8)), name="X")  # 4 inputs x 8 examples
    Y = minidl.Tensor(rng.standard_normal((3, 8)), name="Y")
    W = minidl.Tensor(rng.standard_normal((3, 4)), requires_grad=True, name="W")
    B = minidl.Tensor(np.zeros((3, 1)), requires_grad=True, name="B")
    H0 = W @ X
    H1 = H0 + B
    loss = ((Y - H1) ** 2).sum()
    H0.name, H1.name, loss.name = "H0", "H1", "loss"
    return {"X": X, "Y": Y, "W": W, "B": B, "H0": H0, "H1": H1, "loss": loss}


def two_layer_mlp(seed=0, fuse=False):
    """Loss of Linear-ReLU-Linear (with nn.fuse: LinearReLU-Linear)."""
    minidl.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    if fuse:
        model = nn.fuse(model)
    x = minidl.randn(6, 5)
    targets = minidl.tensor([0, 1, 2, 1, 0, 2])
    loss = nn.CrossEntropyLoss()(model(x), targets)
    return model, loss


def op_nodes(tensor):
    """Every Function in the graph below `tensor` (what the engine visits as op steps)."""
    seen, stack = {}, [tensor]
    while stack:
        t = stack.pop()
        fn = t.grad_fn
        if fn is None or id(fn) in seen:
            continue
        seen[id(fn)] = fn
        stack.extend(i for i in fn.inputs if i.requires_grad)
    return list(seen.values())


# ---------------------------------------------------------------------------
# Tracer
# ---------------------------------------------------------------------------
def test_trace_of_a_two_layer_mlp_lists_every_op_once_in_reverse_topological_order():
    model, loss = two_layer_mlp()
    functions = op_nodes(loss)
    with trace() as t:
        loss.backward()
    assert len(t) == len(functions)
    assert {id(r.function) for r in t} == {id(f) for f in functions}
    position = {id(r.tensor): r.number for r in t}
    for record in t:
        for inp in record.inputs:
            if inp.grad_fn is not None:  # an op produced this input: its step must come later
                assert position[id(inp)] > record.number, (record, inp.grad_fn)
    assert t.ops[0] == loss.grad_fn.name
    assert t.ops.count("Linear") == 2 and "ReLU" in t.ops and "CrossEntropy" in t.ops


def test_trace_gradients_equal_what_lands_in_dot_grad():
    model, loss = two_layer_mlp()
    with trace() as t:
        loss.backward()
    for name, parameter in model.named_parameters():
        recorded = t.gradient(parameter)
        assert recorded is not None, name
        np.testing.assert_array_equal(recorded, parameter.grad.data, err_msg=name)  # the very gradient
    # Inside the graph: what arrives at each op's output is the sum of what its consumers sent
    # (added in the engine's order or in this list's: the sum bound over len(sent) terms).
    for record in t.records[1:]:
        sent = [g for r in t for inp, g in zip(r.inputs, r.grad_inputs) if inp is record.tensor and g is not None]
        assert_within(sum(sent), record.grad_output, sum_atol(np.stack(sent), axis=0), record.function.name)
    np.testing.assert_array_equal(t.records[0].grad_output, np.ones(()))


def test_trace_records_the_lecture_formulas_at_each_step():
    net = lecture_network()
    with trace() as t:
        net["loss"].backward()
    dH1 = -2 * (net["Y"].data - net["H1"].data)  # ∂L/∂H1 at the top of the chain
    (matmul,) = t.find("matmul")
    np.testing.assert_allclose(matmul.grad_output, dH1)  # Add passes ∂H1 straight to H0
    assert_within(matmul.grad_inputs[0], dH1 @ net["X"].data.T, matmul_atol(dH1, net["X"].data.T))  # ∂W = ∂H0·Xᵀ
    assert matmul.grad_inputs[1] is None  # X does not require grad
    (add,) = t.find("Add")
    dB = dH1.sum(axis=1, keepdims=True)  # ∂B = ∂H1·1
    assert_within(add.grad_inputs[1], dB, sum_atol(dH1, axis=1, keepdims=True))
    assert t.label(net["H0"]) == "H0" and matmul.input_names == ("W", "X")


def test_trace_table_shows_each_step_with_gradient_statistics():
    net = lecture_network()
    with trace() as t:
        net["loss"].backward()
    table = str(t)
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("step"))
    for column in ("op", "gradient", "shape", "mean", "std", "min", "max", "norm", "zeros", "NaN", "Inf"):
        assert column in header.split()
    # The ops appear in backward order; each step lists what it sends to each input.
    op_lines = [line.split()[1] for line in lines if line[:4].strip().isdigit()]
    assert op_lines == ["Sum", "PowScalar", "Sub", "Add", "MatMul"]
    assert "→ W" in table and "→ X" in table and "(no gradient)" in table
    b_row = next(line for line in lines if "Σ→ B" in line)
    expected_norm = np.linalg.norm(net["B"].grad.data)
    assert f"{expected_norm:.4g}" in b_row.split()


def test_trace_block_records_a_real_backward_and_prints_as_the_table(capsys):
    net = lecture_network()
    with trace() as recorded:
        net["loss"].backward()
    print(recorded)
    assert isinstance(recorded, Trace)
    assert capsys.readouterr().out.strip() == str(recorded).strip()
    assert net["W"].grad is not None  # it is still a real backward


def test_trace_counts_zeros_and_non_finite_values():
    x = minidl.tensor([-1.0, 2.0, -3.0, 4.0], requires_grad=True)
    with trace() as t:
        x.relu().sum().backward()
    (relu,) = t.find("relu")
    stats = relu.grad_input_stats[0]
    assert stats.zeros == 2 and stats.nans == 0 and stats.count == 4
    y = minidl.tensor([0.0, 1.0], requires_grad=True)
    with np.errstate(divide="ignore"), trace() as t:
        (y * 1).sqrt().sum().backward()
    assert t.find("sqrt")[0].grad_input_stats[0].infs == 1


def test_trace_removes_its_observer_even_when_backward_fails():
    before = list(autograd.backward_observers)
    x = minidl.tensor([1.0], requires_grad=True)
    y = x * 2
    y.backward()
    with pytest.raises(RuntimeError), trace():
        y.backward()  # the graph was freed by the first backward
    assert autograd.backward_observers == before


# ---------------------------------------------------------------------------
# Stepper
# ---------------------------------------------------------------------------
def test_stepper_yields_one_step_per_op_node_by_default():
    model, loss = two_layer_mlp()
    expected = len(op_nodes(loss))
    steps = list(step_backward(loss))
    assert len(steps) == expected == 4  # Linear, ReLU, Linear, CrossEntropy (with its mean)
    assert all(not s.is_leaf for s in steps)
    assert [s.number for s in steps] == list(range(expected))


@pytest.mark.parametrize("kernels", minidl.available_kernels())
def test_stepper_shows_the_layers_as_written_and_a_fused_node_only_after_nn_fuse(kernel_set, kernels):
    kernel_set(kernels)  # the same steps on every kernel set
    _, loss = two_layer_mlp()
    assert [s.function.name for s in step_backward(loss)] == ["CrossEntropy", "Linear", "ReLU", "Linear"]
    _, fused_loss = two_layer_mlp(fuse=True)
    assert [s.function.name for s in step_backward(fused_loss)] == ["CrossEntropy", "Linear", "LinearReLU"]
    # float32, fused C GEMM vs NumPy's: linear (5 + 1), linear (8 + 1), cross-entropy over 3 classes
    # (3 + 2 transcendentals + 3 ops) and the mean over 6 rows, relative to the loss (logits are O(1)).
    budget = 6 + 9 + 3 + 2 * 4 + 3 + 6
    assert_within(
        fused_loss.item(), loss.item(), chain_atol(loss.item(), budget=budget, fan_in=9, dtype=np.float32), "loss"
    )


def test_stepper_with_leaves_adds_one_step_per_leaf_that_requires_grad():
    model, loss = two_layer_mlp()
    expected = len(op_nodes(loss)) + 4  # two weights and two biases
    steps = list(step_backward(loss, include_leaves=True))
    leaf_steps = [s for s in steps if s.is_leaf]
    assert len(steps) == expected
    assert {id(s.tensor) for s in leaf_steps} == {id(p) for p in model.parameters()}
    for s in leaf_steps:  # a leaf step shows the total about to be added to .grad
        np.testing.assert_allclose(s.grad_output.data, s.tensor.grad.data)
        assert s.grad_inputs is None and s.op == "leaf"


def test_stepping_one_node_matches_the_hand_derived_gradient():
    net = lecture_network()
    X, Y, W, H1 = net["X"].data, net["Y"].data, net["W"], net["H1"].data
    steps = step_backward(net["loss"])
    step = next(steps)
    while step.op != "MatMul":
        step = next(steps)
    # The lecture: take the gradient sent back from up the chain, multiply by the local gradient.
    dH0 = -2 * (Y - H1)  # ∂L/∂H1, and Add passes it through unchanged: ∂H0 = ∂H1
    np.testing.assert_allclose(step.grad_output.data, dH0)
    assert_within(step.grad_for(W).data, dH0 @ X.T, matmul_atol(dH0, X.T))  # ∂W = ∂H0·Xᵀ
    assert step.grad_for(net["X"]) is None
    assert "dA = dY @ Bᵀ" in step.formula
    assert W.grad is None  # nothing is applied before the walk finishes
    list(steps)
    assert_within(W.grad.data, dH0 @ X.T, matmul_atol(dH0, X.T))


def _assert_same_lecture_gradients(net, reference):
    """The same ops on the same values: dB (NumPy's own sum) is bit-identical; dW is a BLAS product,
    which may take another order for the same call on other memory (MKL does), so within its bound."""
    np.testing.assert_array_equal(net["B"].grad.data, reference["B"].grad.data)
    dH0 = -2 * (reference["Y"].data - reference["H1"].data)
    atol = matmul_atol(dH0, reference["X"].data.T)
    assert_within(net["W"].grad.data, reference["W"].grad.data, atol, "dW")


def test_completed_walk_gives_the_same_grads_as_backward():
    net, reference = lecture_network(), lecture_network()
    for _ in step_backward(net["loss"]):
        pass
    reference["loss"].backward()
    _assert_same_lecture_gradients(net, reference)


def test_abandoned_stepper_leaves_the_graph_and_grads_untouched():
    net, reference = lecture_network(), lecture_network()
    reference["loss"].backward()
    for step in step_backward(net["loss"], include_leaves=True):
        if step.name == "B":  # the last step; the walk has already gone past W's leaf step
            break
    assert step.is_leaf
    assert net["W"].grad is None and net["B"].grad is None
    net["loss"].backward()  # the graph is intact, so a full backward still works
    _assert_same_lecture_gradients(net, reference)


def test_dropped_stepper_generator_does_not_change_grad_mode():
    net = lecture_network()
    walk = step_backward(net["loss"])
    next(walk)
    assert minidl.is_grad_enabled()  # while paused, the caller's grad mode is in force
    x = minidl.tensor([1.0], requires_grad=True)
    assert (x * 2).requires_grad
    with minidl.no_grad():
        next(walk)
        assert not minidl.is_grad_enabled()
    del walk
    assert minidl.is_grad_enabled()


def test_step_repr_and_explain_speak_the_chain_rule():
    net = lecture_network()
    steps = list(step_backward(net["loss"], retain_graph=True))
    matmul = next(s for s in steps if s.op == "MatMul")
    text = repr(matmul)
    assert text.startswith(f"step {matmul.number}: MatMul -> H0 (3, 8)")
    assert "∂H0 (in)" in text and "→ W (3, 4)" in text and "→ X (4, 8)  no gradient" in text
    explanation = matmul.explain(print_it=False)
    assert "dA = dY @ Bᵀ" in explanation and "∂W (3, 4)" in explanation
    assert "linalg.py" in explanation  # where to step into the op's backward
    assert isinstance(matmul, Step) and steps[0].op == "Sum"


def test_stepper_accumulates_into_existing_grads_like_backward():
    net = lecture_network()
    net["loss"].backward(retain_graph=True)
    first = net["W"].grad.data.copy()
    for _ in step_backward(net["loss"]):
        pass
    dH0 = -2 * (net["Y"].data - net["H1"].data)  # two products of it, each within the bound of the other
    assert_within(net["W"].grad.data, 2 * first, 2 * matmul_atol(dH0, net["X"].data.T), "accumulated dW")


def test_stepper_restores_grad_mode_while_paused():
    x = minidl.tensor([2.0], requires_grad=True)
    y = (x * x).sum()
    steps = step_backward(y, create_graph=True)
    next(steps)
    try:
        with minidl.no_grad():
            assert not minidl.is_grad_enabled()  # the caller's mode, not the engine's (create_graph)
        assert minidl.is_grad_enabled()
    finally:
        steps.close()


def test_stepper_abandoned_after_a_leaf_step_leaves_dot_grad_untouched():
    net = lecture_network()
    steps = step_backward(net["loss"], include_leaves=True)
    for step in steps:
        if step.is_leaf and step.tensor is net["B"]:  # W's leaf step has been shown by now, or will be
            break
    steps.close()
    assert net["W"].grad is None and net["B"].grad is None
    net["loss"].backward()  # the graph is intact
    assert net["W"].grad is not None


# ---------------------------------------------------------------------------
# The package itself
# ---------------------------------------------------------------------------
def test_debug_package_exports_every_tool():
    import minidl.debug as debug

    for name in (
        "trace",
        "step_backward",
        "break_on",
        "clear_breakpoints",
        "detect_anomaly",
        "draw_graph",
        "to_dot",
        "explain",
        "record_modules",
        "gradcheck",
        "gradgradcheck",
        "GradcheckReport",
        "AnomalyError",
    ):
        assert name in debug.__all__ and hasattr(debug, name), name


def test_importing_minidl_debug_stays_light():
    code = (
        "import sys, minidl; assert 'minidl.debug' not in sys.modules; "
        "import minidl.debug; print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_trace_find_accepts_class_names_and_recorded_call_names():
    from minidl.debug import record_modules

    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    with record_modules():
        y = x.pow(2).sum()
    with trace() as t:
        y.backward()
    assert [r.op for r in t.find("PowScalar")] == ["PowScalar"]
    assert [r.op for r in t.find("powscalar")] == ["PowScalar"]
    assert [r.op for r in t.find("pow")] == ["PowScalar"]  # the name it was called by
    assert t.find("exp") == []
