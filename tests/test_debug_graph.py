"""Graph drawing: valid, legible PNGs for an MLP and a CNN, DOT export, module collapsing, the layout."""

import re

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.debug import draw_graph, record_modules, to_dot, trace
from minidl.debug.graph import build_graph, collapse_graph, layered_layout
from minidl.debug.graph.layout import project_with_spacing
from minidl.nn.module import module_stack

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def mlp_loss():
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    x = minidl.randn(16, 10)
    x.name = "x"
    with record_modules():
        loss = nn.CrossEntropyLoss()(model(x), minidl.randint(0, 4, (16,)))
    loss.name = "loss"
    return model, loss


def cnn_loss():
    minidl.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 10),
    )
    with record_modules():
        loss = nn.CrossEntropyLoss()(model(minidl.randn(2, 1, 8, 8)), minidl.tensor([3, 7]))
    return model, loss


def assert_legible_png(path, figure):
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(str(path))
    height, width = image.shape[:2]
    assert 200 <= width <= 4000 and 200 <= height <= 6000, image.shape
    assert image.shape[2] in (3, 4) and image[..., :3].std() > 0.05  # not a blank canvas
    # Every label lies inside its own box, and no two boxes overlap.
    ax = figure.axes[0]
    renderer = figure.canvas.get_renderer()
    boxes = [p.get_window_extent(renderer) for p in ax.patches if type(p).__name__ == "FancyBboxPatch"]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    labels = [t for t in ax.texts if t.get_position()[1] < ax.get_ylim()[1] - 40]  # skip the title
    for text in labels:
        extent = text.get_window_extent(renderer)
        inside = [b for b in boxes if b.x0 <= extent.x0 + 0.5 and extent.x1 <= b.x1 + 0.5]
        inside = [b for b in inside if b.y0 <= extent.y0 + 0.5 and extent.y1 <= b.y1 + 0.5]
        assert len(inside) == 1, text.get_text()


def test_draw_graph_of_an_mlp_writes_a_legible_png(tmp_path):
    model, loss = mlp_loss()
    with trace() as t:
        loss.backward()
    path = tmp_path / "mlp.png"
    figure = draw_graph(loss, path, trace=t)  # the trace also stands in for the freed graph
    assert_legible_png(path, figure)
    texts = {text.get_text() for text in figure.axes[0].texts}
    assert {"Linear", "ReLU", "CrossEntropy", "Sequential.0.weight", "x"} <= texts


def test_draw_graph_of_a_cnn_writes_a_legible_png(tmp_path):
    model, loss = cnn_loss()
    path = tmp_path / "cnn.png"
    figure = draw_graph(loss, path)
    assert_legible_png(path, figure)
    texts = {text.get_text() for text in figure.axes[0].texts}
    assert {"Conv2d", "MaxPool2d", "Sequential.3.weight"} <= texts


def test_collapsing_modules_draws_one_node_per_layer(tmp_path):
    model, loss = cnn_loss()
    path = tmp_path / "cnn_collapsed.png"
    figure = draw_graph(loss, path, collapse_modules=True)
    assert_legible_png(path, figure)
    dot = to_dot(loss, collapse_modules=True)
    assert dot.count("shape=box3d") == 9  # the 8 layers and the loss module
    assert "Sequential.3: Conv2d\\n1 op, 2 params (296 weights)" in dot


def test_collapse_by_class_and_by_name():
    model, loss = cnn_loss()
    by_class = to_dot(loss, collapse=[nn.Conv2d])
    assert by_class.count("shape=box3d") == 2 and '"Conv2d' not in by_class
    assert "MaxPool2d" in by_class  # everything else stays op by op
    by_name = to_dot(loss, collapse="3")  # "3" matches "Sequential.3"
    assert by_name.count("shape=box3d") == 1 and "Sequential.3: Conv2d" in by_name
    assert to_dot(loss, collapse="Sequential") == to_dot(loss, collapse=[model])


def test_collapse_with_a_stand_in_that_pushes_onto_the_module_stack():
    """The contract with minidl.nn: whoever pushes (name, module) on module_stack owns the ops made meanwhile."""

    class Block:
        def __init__(self, name):
            self.name = name

        def __call__(self, fn, *args):
            module_stack.append((self.name, self))
            try:
                return fn(*args)
            finally:
                module_stack.pop()

    minidl.manual_seed(0)
    W1, W2 = minidl.randn(4, 3, requires_grad=True), minidl.randn(2, 4, requires_grad=True)
    encoder, decoder = Block("encoder"), Block("decoder")
    with record_modules():
        hidden = encoder(lambda x: (x @ W1.T).tanh(), minidl.randn(5, 3))
        loss = decoder(lambda h: (h @ W2.T).sum(), hidden)
    graph = collapse_graph(build_graph(loss), collapse=["encoder"])
    kinds = sorted(node.kind for node in graph.nodes.values())
    assert kinds == ["constant", "module", "op", "op", "op", "param"]  # W1 folded into the encoder; W2 stays
    (module,) = [n for n in graph.nodes.values() if n.kind == "module"]
    assert module.title == "encoder: Block" and module.lines[0] == "3 ops, 1 param (12 weights)"  # .T, @, tanh
    both = collapse_graph(build_graph(loss), collapse_modules=True)
    assert sorted(n.title for n in both.nodes.values()) == ["const_0", "decoder: Block", "encoder: Block"]


def test_collapse_without_recorded_modules_explains_what_to_do():
    x = minidl.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="record_modules"):
        to_dot((x * 2).sum(), collapse_modules=True)


def test_drawing_a_graph_freed_by_backward_asks_for_retain_graph_or_a_trace(tmp_path):
    x = minidl.tensor([1.0], requires_grad=True)
    y = (x * 2).sum()
    y.backward()
    with pytest.raises(ValueError, match="retain_graph=True"):
        draw_graph(y, tmp_path / "freed.png")


def test_to_dot_is_well_formed_graphviz():
    model, loss = mlp_loss()
    dot = to_dot(loss)
    assert dot.startswith("digraph minidl {") and dot.rstrip().endswith("}")
    declared = set(re.findall(r"^  (n\d+) \[label=", dot, flags=re.M))
    edges = re.findall(r"^  (n\d+) -> (n\d+);$", dot, flags=re.M)
    assert len(declared) == len(build_graph(loss).nodes) == 9  # 4 ops, 4 parameters, x
    assert len(edges) == 8 and all(u in declared and v in declared for u, v in edges)
    assert dot.count("{") == dot.count("}") and dot.count('"') % 2 == 0
    assert 'label="CrossEntropy\\nloss ()\\nin CrossEntropyLoss' in dot  # the mean is part of the op


def test_nodes_with_nan_are_marked_red():
    x = minidl.tensor([np.nan, 1.0], requires_grad=True)
    dot = to_dot((x * 2).sum())
    assert dot.count('fillcolor="#fecaca"') == 3  # x, the product and the sum all hold a NaN


# ---------------------------------------------------------------------------
# The layered layout
# ---------------------------------------------------------------------------
def test_layout_puts_producers_above_consumers_and_a_bias_next_to_its_op():
    model, loss = mlp_loss()
    graph = build_graph(loss)
    layout = layered_layout(graph)
    for u, v, _ in graph.edges:
        assert layout.centers[u][1] > layout.centers[v][1]
    bias = next(k for k, n in graph.nodes.items() if n.title == "Sequential.2.bias")
    (consumer,) = [v for u, v, _ in graph.edges if u == bias]
    rows = sorted({round(y, 3) for _, y in layout.centers.values()})
    row = {k: rows.index(round(y, 3)) for k, (_, y) in layout.centers.items()}
    assert row[bias] == row[consumer] + 1  # longest path to the output, not distance from the inputs


def test_layout_orders_a_layer_to_remove_edge_crossings():
    # x feeds both u = a * x and v = x * b; the first-found order (x, a, b) would cross an edge.
    x, a, b = (minidl.tensor([1.0], requires_grad=True) for _ in range(3))
    x.name, a.name, b.name = "x", "a", "b"
    out = (x * a) + (b * x)
    graph = build_graph(out)
    layout = layered_layout(graph)
    position = {n.title: layout.centers[k][0] for k, n in graph.nodes.items() if n.kind == "param"}
    assert position["a"] < position["x"] < position["b"]


def test_spacing_projection_is_the_exact_least_squares_solution():
    assert project_with_spacing([0.0, 0.0, 0.0], [10.0, 10.0]) == [-10.0, 0.0, 10.0]
    assert project_with_spacing([0.0, 100.0], [10.0]) == [0.0, 100.0]  # already far enough apart
    assert project_with_spacing([5.0, 0.0, 50.0], [10.0, 10.0]) == [-2.5, 7.5, 50.0]


def test_a_module_called_twice_with_ops_between_collapses_into_one_node_per_call(tmp_path):
    """An RNN-style cell reused at each step: collapsing by module object would make a node feed itself."""

    class Cell(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(x)

    class Unrolled(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = Cell()

        def forward(self, x):
            h = self.cell(x).tanh()  # an op of the outer module between the two calls
            return self.cell(h).tanh().sum()

    model = Unrolled()
    with record_modules():
        loss = model(minidl.randn(2, 3))
    dot = to_dot(loss, collapse_modules=True)
    assert dot.count("shape=box3d") == 2  # one node per call of the cell
    path = tmp_path / "unrolled.png"
    draw_graph(loss, path, collapse_modules=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
