"""One name per tensor: the tracer, the stepper, break_on, explain and the graph drawing agree.

Issue 9 found the tracer calling a (1, 4) leaf `leaf_0` while explain called a (4, 3) leaf
`leaf_0` in the same script. Every tool now asks minidl.debug.names for a tensor's name.
"""

import re

import numpy as np

import minidl
from minidl import nn
from minidl.debug import break_on, draw_graph, explain, name_of, step_backward, to_dot, trace
from minidl.debug.names import forward_order
from minidl.debug.summary import format_shape

SHAPE = r"\((?:\d+(?:, \d+)*,?)?\)"


def raw_two_layer_net(seed=0):
    """The issue's script: two weight leaves of different shapes, nothing named, no modules."""
    minidl.manual_seed(seed)
    x = minidl.randn(5, 3)
    w1, w2 = minidl.randn(4, 3, requires_grad=True), minidl.randn(1, 4, requires_grad=True)
    return (w2 @ (w1 @ x.T).relu()).pow(2).mean()


def model_loss(seed=0, fuse=False):
    minidl.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    if fuse:
        model = nn.fuse(model)  # the original model is dropped: only the fused one holds the parameters
    loss = nn.CrossEntropyLoss()(model(minidl.randn(5, 3)), minidl.tensor([0, 1, 1, 0, 1]))
    return model, loss


def every_tensor(root):
    return forward_order(root)


# What each tool calls each tensor, read from what it shows.
def names_in_trace(t):
    """id(tensor) -> name for every tensor a trace shows, checked against its printed table."""
    shown = {}
    for record in t:
        shown[id(record.tensor)] = record.name
        shown.update({id(i): n for i, n in zip(record.inputs, record.input_names)})
    table = str(t)
    for name in shown.values():
        assert f"∂{name} (in)" in table or f"→ {name} " in table, name
    return shown


def names_in_steps(steps):
    """id(tensor) -> name for every tensor the stepper shows, checked against each step's printout."""
    shown = {}
    for step in steps:
        shown[id(step.tensor)] = step.name
        shown.update({id(i): n for i, n in zip(step.inputs, step.input_names)})
        assert f" {step.name} {format_shape(step.tensor.shape)}" in repr(step).splitlines()[0]
        for name, inp in zip(step.input_names, step.inputs):
            assert f"→ {name} {format_shape(inp.shape)}" in repr(step)
    return shown


def names_in_explain(text):
    """(name, shape) for every line of explain's tree."""
    return re.findall(rf"(?:^\w+ -> |── \w+ -> |── )([\w.]+) ({SHAPE})", text, flags=re.M)


def names_in_dot(dot):
    """The name on every node of the DOT text: a leaf's title, or the first line under an op's title."""
    names = []
    for label in re.findall(r'label="([^"]*)"', dot):
        title, first_line = label.split("\\n")[:2]
        names.append(title if first_line.startswith("(") else first_line.rsplit(" (", 1)[0])
    return names


def test_the_four_tools_call_every_tensor_by_one_name(tmp_path):
    loss = raw_two_layer_net()
    tensors = every_tensor(loss)
    explained = explain(loss, print_it=False)  # explain first: the order the tools run in must not matter
    with trace() as t:
        loss.backward(retain_graph=True)
    steps = list(step_backward(loss, retain_graph=True, include_leaves=True))
    dot = to_dot(loss, trace=t)
    figure = draw_graph(loss, tmp_path / "g.png", trace=t)

    expected = {id(x): name_of(x) for x in tensors}
    assert len(set(expected.values())) == len(tensors)  # one graph: no two tensors share a name
    traced = names_in_trace(t)
    assert traced == {k: expected[k] for k in traced} and len(traced) == len(tensors)
    assert names_in_steps(steps) == expected
    assert sorted(names_in_explain(explained)) == sorted((name_of(x), format_shape(x.shape)) for x in tensors)
    assert sorted(names_in_dot(dot)) == sorted(expected.values())
    texts = [text.get_text() for text in figure.axes[0].texts]
    for x in tensors:
        shown = name_of(x) if x.grad_fn is None else f"{name_of(x)} {format_shape(x.shape)}"
        assert shown in texts, shown
    # The case: the (4, 3) and the (1, 4) weight keep their own names in every tool.
    w2, w1 = (x for x in tensors if x.requires_grad and x.grad_fn is None)
    assert (w1.shape, w2.shape) == ((4, 3), (1, 4))
    assert (name_of(w2), name_of(w1)) == ("leaf_0", "leaf_1")  # w2 @ (...): w2 is the first argument
    assert "leaf_0 (1, 4)" in explained and "leaf_1 (4, 3)" in explained
    assert re.search(r"Σ→ leaf_0\s+\(1, 4\)", str(t)) and re.search(r"Σ→ leaf_1\s+\(4, 3\)", str(t))


def test_names_do_not_depend_on_which_tool_ran_first():
    orders = {
        "explain first": lambda loss: explain(loss, print_it=False),
        "tracer first": lambda loss: _traced(loss),
        "stepper first": lambda loss: list(step_backward(loss, retain_graph=True)),
        "graph first": lambda loss: to_dot(loss),
    }
    seen = {}
    for label, first_tool in orders.items():
        loss = raw_two_layer_net()
        first_tool(loss)
        seen[label] = [(name_of(x), x.shape) for x in every_tensor(loss)]
    assert len({tuple(v) for v in seen.values()}) == 1, seen
    assert [name for name, _ in seen["explain first"]] == [
        "leaf_0", "leaf_1", "const_0", "matmul_0", "relu_0", "matmul_1", "powscalar_0", "mean_0",
    ]  # fmt: skip


def _traced(loss):
    with trace() as t:
        loss.backward(retain_graph=True)
    return t


def test_parameters_are_named_by_their_path_without_record_modules():
    model, loss = model_loss()
    with trace() as t:
        loss.backward()
    assert {name_of(p) for p in model.parameters()} == {
        "Sequential.0.weight", "Sequential.0.bias", "Sequential.2.weight", "Sequential.2.bias",
    }  # fmt: skip
    assert "Σ→ Sequential.0.weight" in str(t)
    assert [r.name for r in t] == ["crossentropy_0", "linear_1", "relu_0", "linear_0"]


def test_a_fused_model_names_its_parameters_by_their_path_too():
    model, loss = model_loss(fuse=True)
    assert [(r.op, r.input_names) for r in _traced(loss)] == [
        ("CrossEntropy", ("linear_0",)),
        ("Linear", ("linearrelu_0", "Sequential.2.weight", "Sequential.2.bias")),
        ("LinearReLU", ("const_0", "Sequential.0.weight", "Sequential.0.bias")),
    ]


def test_a_parameter_of_a_custom_model_gets_the_models_class_name_and_attribute_path():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
            self.head = nn.Linear(4, 1)

        def forward(self, x):
            return self.head(self.features(x))

    minidl.manual_seed(0)
    net = nn.fuse(Net())  # a copy of Net with a fused Sequential inside; the original is gone
    loss = net(minidl.randn(2, 3)).sum()
    assert sorted(name_of(p) for p in net.parameters()) == [
        "Net.features.0.bias", "Net.features.0.weight", "Net.head.bias", "Net.head.weight",
    ]  # fmt: skip
    explained = explain(loss, print_it=False)
    assert "Net.features.0.weight (4, 3)" in explained and "LinearTanh" in explained


def test_a_tensors_own_name_wins_and_auto_names_avoid_it():
    x = minidl.Tensor([1.0, 2.0], requires_grad=True, name="matmul_0")
    y = minidl.Tensor([[1.0], [2.0]], requires_grad=True)
    out = (x @ y).sum()
    assert name_of(x) == "matmul_0" and name_of(out.grad_fn.inputs[0]) == "matmul_1"
    assert name_of(y) == "leaf_0"


def test_each_iteration_of_a_training_loop_gets_the_same_names():
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    tables = []
    for _ in range(2):
        loss = model(minidl.randn(5, 3)).pow(2).mean()
        with trace() as t:
            loss.backward()
        tables.append([(r.name, r.input_names) for r in t])
    assert tables[0] == tables[1]
    assert tables[0][-1] == ("linear_0", ("const_0", "Sequential.0.weight", "Sequential.0.bias"))


def test_break_on_shows_the_same_names_as_the_tracer():
    loss = raw_two_layer_net()
    seen = []
    with trace() as t, break_on(op="matmul", debugger=lambda step: seen.append((step.name, step.input_names))):
        loss.backward()
    assert seen == [(r.name, r.input_names) for r in t.find("matmul")]


def test_names_are_forgotten_with_their_tensors():
    from minidl.debug import names

    before = len(names._names)
    loss = raw_two_layer_net()
    explain(loss, print_it=False)
    assert len(names._names) == before + len(every_tensor(loss))
    del loss
    assert len(names._names) == before


def test_a_long_chain_is_named_without_recursion():
    x = minidl.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    assert name_of(y) == "mul_4999" and name_of(y.grad_fn.inputs[1]) == "const_4999"
    np.testing.assert_array_equal(y.data, [1.0])
