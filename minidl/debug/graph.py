"""Pictures of the computation graph: draw_graph (a PNG via matplotlib) and to_dot (Graphviz text).

Ops and leaf tensors are the nodes; arrows follow the forward data flow, so backward runs
against them, from the output at the bottom up to the parameters. Nodes are placed by a
small layered ("Sugiyama") layout written here, so no Graphviz is needed:
  1. layers: a node's layer is its longest path to the output, so a bias sits next to its op;
  2. order within each layer: barycenter sweeps that reduce edge crossings;
  3. x positions: pulled towards neighbours, kept apart by an exact least-squares projection.
A module recorded with record_modules() can be collapsed into one node to keep big graphs legible.
"""

import warnings
from collections import defaultdict

from minidl.debug.provenance import origin_of
from minidl.debug.summary import TensorLabels, format_shape, summarize

FONT_FAMILY = "DejaVu Sans Mono"  # ships with matplotlib, so it is always there and widths are known
FONT_SIZE = 8.0  # points
CHAR_WIDTH = 0.602 * FONT_SIZE  # DejaVu Sans Mono advance width, so label widths are exact
LINE_HEIGHT = 1.35 * FONT_SIZE
PAD_X, PAD_Y = 7.0, 5.0
NODE_GAP = 18.0  # horizontal space between nodes of one layer
LAYER_GAP = 30.0  # vertical space between layers
MARGIN = 12.0

COLORS = {  # kind -> (fill, border)
    "op": ("#fff4d6", "#a07800"),
    "param": ("#dbeafe", "#1d4ed8"),
    "constant": ("#eeeeee", "#777777"),
    "module": ("#dcfce7", "#15803d"),
    "bad": ("#fecaca", "#b91c1c"),  # NaN or Inf in its value or gradient
}


class GraphNode:
    """A node to draw: an op (with its output tensor), a leaf tensor, or a collapsed module."""

    def __init__(self, key, kind, title, lines, tensor=None, function=None):
        self.key = key
        self.kind = kind
        self.title = title
        self.lines = lines
        self.tensor = tensor
        self.function = function
        self.has_trouble = False
        self.is_output = False
        self.op_count = 1 if kind == "op" else 0

    @property
    def text_lines(self):
        return [self.title, *self.lines]

    def __repr__(self):
        return f"<GraphNode {self.kind} {self.title!r}>"


class Graph:
    """Nodes (key -> GraphNode) and edges (producer key, consumer key, input position), producers first."""

    def __init__(self):
        self.nodes = {}
        self.edges = []
        self.output = None

    def consumers(self):
        result = defaultdict(list)
        for u, v, _ in self.edges:
            result[u].append(v)
        return result


# ----------------------------------------------------------------------------
# From tensors to a graph of labelled nodes
# ----------------------------------------------------------------------------
def _short(x):
    return "-" if x is None else f"{x:.3g}"


def _value_line(tensor):
    s = summarize(tensor.data)
    if s.count == 1 and s.finite:
        return f"value {_short(s.mean)}", False
    return f"val mean {_short(s.mean)} std {_short(s.std)}{s.trouble()}", not s.finite


def _grad_line(grad):
    s = summarize(grad)
    largest = None if s.min is None else max(abs(s.min), abs(s.max))
    return f"grad norm {_short(s.norm)} max {_short(largest)}{s.trouble()}", not s.finite


def _known_gradient(tensor, trace):
    if trace is not None:
        g = trace.gradient(tensor)
        if g is not None:
            return g
    return None if tensor.grad is None else tensor.grad.data


def _inputs_of(function, trace):
    if function.inputs:
        return function.inputs
    record = trace.record_of_function(function) if trace is not None else None
    if record is not None:
        return record.inputs
    if function.released:
        raise ValueError(
            f"draw_graph: the graph below {function.name} was freed by backward(). Draw it before backward, "
            "call backward(retain_graph=True), or pass the trace of that backward: "
            "draw_graph(loss, path, trace=t) with `t = loss.backward(trace=True)`."
        )
    return ()


def build_graph(tensor, trace=None, show_values=True):
    """Walk from `tensor` back to the leaves and make one GraphNode per op and per leaf tensor.

    Constants of a single element (the 2 in `x * 2`) are folded into their op's label
    instead of getting a node each.
    """
    labels = trace._labels if trace is not None else TensorLabels()
    graph = Graph()

    def add_tensor_node(t):
        key = ("tensor", id(t))
        if key not in graph.nodes:
            kind = "param" if t.requires_grad else "constant"
            lines = [format_shape(t.shape) + ("" if t.requires_grad else "  constant")]
            node = GraphNode(key, kind, labels(t), lines, tensor=t)
            if show_values:
                text, bad = _value_line(t)
                lines.append(text)
                node.has_trouble |= bad
            grad = _known_gradient(t, trace) if t.requires_grad else None
            if grad is not None:
                text, bad = _grad_line(grad)
                lines.append(text)
                node.has_trouble |= bad
            graph.nodes[key] = node
        return key

    def add_op_node(t):
        fn = t.grad_fn
        key = ("op", id(fn))
        if key in graph.nodes:
            return key, False
        name = labels(t)
        lines = [f"{name} {format_shape(t.shape)}" if t.name else format_shape(t.shape)]
        origin = origin_of(fn)
        if origin is not None and origin.module_path:
            lines.append(f"in {origin.module_path}")
        node = GraphNode(key, "op", fn.name, lines, tensor=t, function=fn)
        if show_values:
            text, bad = _value_line(t)
            lines.append(text)
            node.has_trouble |= bad
        grad = _known_gradient(t, trace)
        if grad is not None:
            text, bad = _grad_line(grad)
            lines.append(text)
            node.has_trouble |= bad
        graph.nodes[key] = node
        return key, True

    if tensor.grad_fn is None:
        graph.output = add_tensor_node(tensor)
        graph.nodes[graph.output].is_output = True
        return graph
    graph.output, _ = add_op_node(tensor)
    graph.nodes[graph.output].is_output = True
    stack = [tensor]
    while stack:
        t = stack.pop()
        consumer = ("op", id(t.grad_fn))
        folded = []
        for position, inp in enumerate(_inputs_of(t.grad_fn, trace)):
            if inp.grad_fn is not None:
                key, new = add_op_node(inp)
                if new:
                    stack.append(inp)
            elif not inp.requires_grad and inp.data.size == 1 and not inp.name:
                folded.append(_short(float(inp.data.reshape(-1)[0])) if inp.dtype.kind in "fiub" else "?")
                continue
            else:
                key = add_tensor_node(inp)
            graph.edges.append((key, consumer, position))
        if folded:
            graph.nodes[consumer].lines.insert(1, "const " + ", ".join(folded))
    return graph


# ----------------------------------------------------------------------------
# Collapsing modules
# ----------------------------------------------------------------------------
def _matches(spec, modules, depth):
    name, module = modules[depth]
    if isinstance(spec, str):
        # "features.0" matches "Net.features.0": the root's class name can be left out.
        return name == spec or str(name).endswith("." + spec)
    if isinstance(spec, type):
        return isinstance(module, spec)
    return module is spec


def _has_children(module):
    children = getattr(module, "children", None)
    return children is not None and any(True for _ in children())


def _group_of(origin, collapse, collapse_children):
    """(key, qualified name, module) of the module this op collapses into, or None to keep the op."""
    if origin is None or not origin.modules:
        return None
    modules = origin.modules
    depth = None
    for d in range(len(modules)):
        if any(_matches(spec, modules, d) for spec in collapse):
            depth = d
            break
    if depth is None and collapse_children:
        # Each child of a model becomes one node. An op made in a model's own forward (a residual
        # add, say) stays an op, unless that module has no children (a loss module, a lone layer).
        if len(modules) > 1:
            depth = 1
        elif not _has_children(modules[0][1]):
            depth = 0
    if depth is None:
        return None
    # One node per *call*: a cell used at every time step, with other ops between the calls, would
    # otherwise become one node feeding itself (a cycle no layered layout can draw).
    calls = origin.calls or tuple(id(m) for _, m in modules)
    key = ("module", calls[: depth + 1])
    name, module = modules[depth]
    return key, str(name), module


def collapse_graph(graph, collapse=(), collapse_modules=False):
    """Replace every op created inside a chosen module by one node for that module.

    collapse: module paths ("encoder", "encoder.0"), module classes (nn.Conv2d) or module objects;
    collapse_modules=True collapses each child of the model (and modules without children, like a loss).
    Leaf tensors used only inside one collapsed module (its parameters) are folded into it.
    """
    collapse = [collapse] if isinstance(collapse, (str, type)) else list(collapse or ())
    if not collapse and not collapse_modules:
        return graph
    op_origins = {k: origin_of(n.function) for k, n in graph.nodes.items() if n.kind == "op"}
    if not any(o is not None and o.modules for o in op_origins.values()):
        raise ValueError(
            "draw_graph: no module information was recorded for these ops, so nothing can be collapsed. "
            "Run the forward pass inside `with minidl.debug.record_modules():`."
        )
    group = {}  # node key -> module node key
    members = defaultdict(list)
    module_info = {}
    for key, origin in op_origins.items():
        found = _group_of(origin, collapse, collapse_modules)
        if found is not None:
            group[key] = found[0]
            members[found[0]].append(key)
            module_info[found[0]] = found[1:]
    # Parameters whose consumers are all inside one module belong to it (its weights and biases).
    # Constants stay visible: they are usually the data flowing in.
    consumers = graph.consumers()
    for key, node in graph.nodes.items():
        if node.kind == "param":
            targets = {group.get(c) for c in consumers[key]}
            if len(targets) == 1 and None not in targets:
                (g,) = targets
                group[key] = g
                members[g].append(key)
    result = Graph()
    for key, node in graph.nodes.items():
        if key not in group:
            result.nodes[key] = node
    outside_consumers = {key: [c for c in consumers[key] if group.get(c) != group.get(key)] for key in graph.nodes}
    for g, keys in members.items():
        path, module = module_info[g]
        inner = [graph.nodes[k] for k in keys]
        ops = [n for n in inner if n.kind == "op"]
        params = [n for n in inner if n.kind == "param"]
        weights = sum(n.tensor.data.size for n in params)
        lines = [_count(len(ops), "op") + (f", {_count(len(params), 'param')} ({weights:,} weights)" if params else "")]
        outputs = [graph.nodes[k] for k in keys if outside_consumers[k] or k == graph.output]
        for out in outputs[:2]:
            lines.append(f"out {format_shape(out.tensor.shape)}")
            lines += [line for line in out.lines if line.startswith("grad")]
        title = path if path == type(module).__name__ else f"{path}: {type(module).__name__}"
        node = GraphNode(g, "module", title, lines)
        node.has_trouble = any(n.has_trouble for n in inner)
        node.op_count = len(ops)
        node.is_output = graph.output in keys
        result.nodes[g] = node
    seen = set()
    for u, v, position in graph.edges:
        u2, v2 = group.get(u, u), group.get(v, v)
        if u2 != v2 and (u2, v2) not in seen:
            seen.add((u2, v2))
            result.edges.append((u2, v2, position))
    result.output = group.get(graph.output, graph.output)
    return result


def _count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


# ----------------------------------------------------------------------------
# Layered layout
# ----------------------------------------------------------------------------
def node_size(node):
    lines = node.text_lines
    width = max(len(line) for line in lines) * CHAR_WIDTH + 2 * PAD_X
    height = len(lines) * LINE_HEIGHT + 2 * PAD_Y
    return width, height


def assign_layers(graph):
    """Layer of each node = its longest path to the output (the output is layer 0, at the bottom)."""
    consumers = graph.consumers()
    layer = {}
    # Producers of a node are visited after it in a depth-first walk from the output; iterate to a fixed
    # order instead of recursing, so very deep graphs are fine.
    order = _topological(graph)
    for key in reversed(order):  # consumers before producers
        layer[key] = 1 + max((layer[c] for c in consumers[key]), default=-1)
    return layer


def _topological(graph):
    """Node keys with every producer before its consumers."""
    indegree = {k: 0 for k in graph.nodes}
    consumers = graph.consumers()
    for _, v, _ in graph.edges:
        indegree[v] += 1
    ready = [k for k in graph.nodes if indegree[k] == 0]
    order = []
    while ready:
        k = ready.pop()
        order.append(k)
        for c in consumers[k]:
            indegree[c] -= 1
            if indegree[c] == 0:
                ready.append(c)
    if len(order) != len(graph.nodes):
        raise ValueError(
            f"draw_graph: the graph has a cycle ({len(graph.nodes) - len(order)} nodes on it), "
            "so it cannot be drawn in layers"
        )
    return order


class Layout:
    """Positions (points, origin bottom-left) for nodes and the polyline of every edge."""

    def __init__(self, centers, sizes, edge_paths, width, height):
        self.centers = centers  # node key -> (x, y)
        self.sizes = sizes  # node key -> (w, h)
        self.edge_paths = edge_paths  # list of (producer, consumer, [(x, y), ...])
        self.width = width
        self.height = height


def layered_layout(graph, sweeps=12, refinements=30):
    sizes = {k: node_size(n) for k, n in graph.nodes.items()}
    layer = assign_layers(graph)
    # Long edges get a chain of invisible "dummy" nodes, one per layer they cross, so that every
    # edge joins neighbouring layers: the ordering step then sees (and straightens) them too.
    up = defaultdict(list)  # node -> its producers, one layer up, in input order
    down = defaultdict(list)  # node -> its consumers, one layer down
    chains = []
    for u, v, _ in sorted(graph.edges, key=lambda e: e[2]):
        chain = [u]
        for level in range(layer[u] - 1, layer[v], -1):
            dummy = ("dummy", len(sizes))
            sizes[dummy] = (6.0, 0.0)
            layer[dummy] = level
            chain.append(dummy)
        chain.append(v)
        for a, b in zip(chain, chain[1:]):
            up[b].append(a)
            down[a].append(b)
        chains.append((u, v, chain))
    layers = _initial_order(graph.output, layer, up)
    layers = _reduce_crossings(layers, up, down, sweeps)
    xs = _assign_x(layers, sizes, up, down, refinements)
    # y: layer 0 (the output) at the bottom.
    ys, y = {}, MARGIN
    heights = [max(sizes[k][1] for k in row) if row else 0 for row in layers]
    centers_y = []
    for h in heights:
        centers_y.append(y + h / 2)
        y += h + LAYER_GAP
    for level, row in enumerate(layers):
        for k in row:
            ys[k] = centers_y[level]
    left = min(xs[k] - sizes[k][0] / 2 for k in xs)
    right = max(xs[k] + sizes[k][0] / 2 for k in xs)
    shift = MARGIN - left
    centers = {k: (xs[k] + shift, ys[k]) for k in xs}
    edge_paths = []
    for u, v, chain in chains:
        edge_paths.append((u, v, [centers[k] for k in chain]))
    width = right - left + 2 * MARGIN
    height = y - LAYER_GAP + MARGIN
    return Layout(centers, sizes, edge_paths, width, height)


def _initial_order(output, layer, up):
    """Depth-first from the output, inputs in argument order: a first left-to-right order per layer."""
    rows = defaultdict(list)
    seen = set()
    stack = [output]
    while stack:
        k = stack.pop()
        if k in seen:
            continue
        seen.add(k)
        rows[layer[k]].append(k)
        stack.extend(reversed(up[k]))
    return [rows[level] for level in range(max(rows) + 1)]


def _crossings(upper_row, lower_row, down):
    position = {k: i for i, k in enumerate(lower_row)}
    ends = [(i, position[c]) for i, k in enumerate(upper_row) for c in down[k] if c in position]
    count = 0
    for a in range(len(ends)):
        for b in range(a + 1, len(ends)):
            (u1, l1), (u2, l2) = ends[a], ends[b]
            if (u1 - u2) * (l1 - l2) < 0:
                count += 1
    return count


def _total_crossings(layers, down):
    return sum(_crossings(layers[i + 1], layers[i], down) for i in range(len(layers) - 1))


def _reduce_crossings(layers, up, down, sweeps):
    """Barycenter heuristic: sort each layer by the mean position of its neighbours in the layer
    just swept, alternating upwards and downwards; keep the order with the fewest crossings."""
    best = [row[:] for row in layers]
    best_count = _total_crossings(best, down)
    current = [row[:] for row in layers]
    for sweep in range(sweeps):
        if best_count == 0:
            break
        upwards = sweep % 2 == 0
        levels = range(1, len(current)) if upwards else range(len(current) - 2, -1, -1)
        for level in levels:
            fixed = current[level - 1] if upwards else current[level + 1]
            neighbours = down if upwards else up
            position = {k: i for i, k in enumerate(fixed)}
            row = current[level]

            def barycenter(item, row=row, position=position, neighbours=neighbours):
                i, k = item
                linked = [position[n] for n in neighbours[k] if n in position]
                return sum(linked) / len(linked) if linked else i

            current[level] = [k for _, k in sorted(enumerate(row), key=barycenter)]
        count = _total_crossings(current, down)
        if count < best_count:
            best, best_count = [row[:] for row in current], count
    return best


def _assign_x(layers, sizes, up, down, refinements):
    """x of every node: start packed, then repeatedly move each node towards the mean x of its
    neighbours while keeping the layer's order and minimum spacing (an exact projection)."""
    xs = {}
    for row in layers:
        x = 0.0
        for k in row:
            xs[k] = x + sizes[k][0] / 2
            x += sizes[k][0] + NODE_GAP
        offset = x / 2
        for k in row:
            xs[k] -= offset
    for iteration in range(refinements):
        levels = range(len(layers)) if iteration % 2 == 0 else range(len(layers) - 1, -1, -1)
        for level in levels:
            row = layers[level]
            desired = []
            for k in row:
                neighbours = up[k] + down[k]
                if neighbours:
                    weights = [2.0 if (n[0] == "dummy" or k[0] == "dummy") else 1.0 for n in neighbours]
                    desired.append(sum(w * xs[n] for w, n in zip(weights, neighbours)) / sum(weights))
                else:
                    desired.append(xs[k])
            gaps = [(sizes[a][0] + sizes[b][0]) / 2 + NODE_GAP for a, b in zip(row, row[1:])]
            for k, x in zip(row, _project_with_spacing(desired, gaps)):
                xs[k] = x
    return xs


def _project_with_spacing(desired, gaps):
    """The positions closest (least squares) to `desired` with x[i+1] - x[i] >= gaps[i].

    Subtracting the running sum of gaps turns the constraint into "non-decreasing", which
    isotonic regression (pool adjacent violators) solves exactly.
    """
    offsets = [0.0]
    for g in gaps:
        offsets.append(offsets[-1] + g)
    targets = [d - o for d, o in zip(desired, offsets)]
    blocks = []  # [mean, count]
    for t in targets:
        blocks.append([t, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean2, n2 = blocks.pop()
            mean1, n1 = blocks.pop()
            blocks.append([(mean1 * n1 + mean2 * n2) / (n1 + n2), n1 + n2])
    solution = []
    for mean, n in blocks:
        solution += [mean] * n
    return [s + o for s, o in zip(solution, offsets)]


# ----------------------------------------------------------------------------
# Output: PNG via matplotlib, DOT text
# ----------------------------------------------------------------------------
def _prepare(tensor, trace, collapse, collapse_modules, show_values):
    graph = build_graph(tensor, trace=trace, show_values=show_values)
    return collapse_graph(graph, collapse, collapse_modules)


def draw_graph(
    tensor, path=None, trace=None, collapse=(), collapse_modules=False, show_values=True, title=None, dpi=110
):
    """Draw the graph that produced `tensor`; save it to `path` (PNG, SVG, PDF by extension) and return the Figure.

    Nodes: ops (yellow; labelled with the op, its output's shape, value and gradient summaries),
    parameters (blue), constants (grey), collapsed modules (green); red marks NaN/Inf.
    trace: a Trace of a backward pass (`t = loss.backward(trace=True)`) to show every
           intermediate gradient, and to draw a graph that backward has already freed.
    collapse / collapse_modules: see collapse_graph (needs record_modules() during forward).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # imported here: matplotlib is slow to load
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path

    graph = _prepare(tensor, trace, collapse, collapse_modules, show_values)
    _warn_if_large(graph)
    layout = layered_layout(graph)
    title_lines = (title if title is not None else _default_title(graph)).splitlines()
    title_height = (len(title_lines) + 1) * LINE_HEIGHT
    title_width = max(len(line) for line in title_lines) * CHAR_WIDTH + 2 * MARGIN
    width, height = max(layout.width, title_width), layout.height + title_height
    # Agg cannot make images wider than 2**16 pixels: lower the resolution of huge graphs instead.
    dpi = min(dpi, 60000 / (max(width, height) / 72))
    figure = Figure(figsize=(width / 72, height / 72), dpi=dpi)
    FigureCanvasAgg(figure)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)  # one data unit = one point, so font sizes and node sizes agree
    ax.axis("off")
    for i, line in enumerate(title_lines):
        ax.text(MARGIN, height - (i + 1) * LINE_HEIGHT, line, fontsize=FONT_SIZE, family=FONT_FAMILY, va="center")

    for points in _spread_edge_ends(layout):
        arrow = FancyArrowPatch(
            path=Path(points),
            arrowstyle="-|>",
            mutation_scale=9,
            color="#555555",
            linewidth=0.8,
            shrinkA=0,
            shrinkB=0,
            zorder=1,
        )
        ax.add_patch(arrow)

    for key, node in graph.nodes.items():
        x, y = layout.centers[key]
        w, h = layout.sizes[key]
        fill, border = COLORS["bad" if node.has_trouble else node.kind]
        box = FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=4",
            facecolor=fill,
            edgecolor=border,
            linewidth=2.0 if node.is_output else 0.8,
            zorder=2,
        )
        ax.add_patch(box)
        top = y + h / 2 - PAD_Y - LINE_HEIGHT / 2
        for i, line in enumerate(node.text_lines):
            ax.text(
                x,
                top - i * LINE_HEIGHT,
                line,
                fontsize=FONT_SIZE,
                family=FONT_FAMILY,
                fontweight="bold" if i == 0 else "normal",
                ha="center",
                va="center",
                zorder=3,
            )
    if path is not None:
        figure.savefig(path, dpi=dpi, facecolor="white")
    return figure


def _default_title(graph):
    ops = sum(1 for n in graph.nodes.values() if n.kind == "op")
    modules = [n for n in graph.nodes.values() if n.kind == "module"]
    what = _count(ops, "op")
    if modules:
        inside = _count(sum(n.op_count for n in modules), "op")
        what += f" and {_count(len(modules), 'collapsed module')} ({inside} inside)"
    return f"computation graph: {what}\narrows follow the forward pass; backward runs from the bottom up"


def _spread_edge_ends(layout):
    """Edge polylines, with the ends of several edges at one node spread along its border.

    Edges leave a producer from its bottom side and enter a consumer at its top side; ordering
    the ends by where the edge goes (or comes from) avoids crossings right at the node.
    """
    outgoing, incoming = defaultdict(list), defaultdict(list)
    for index, (u, v, points) in enumerate(layout.edge_paths):
        outgoing[u].append((points[1][0], index))
        incoming[v].append((points[-2][0], index))
    start_x, end_x = {}, {}
    for table, result in ((outgoing, start_x), (incoming, end_x)):
        for key, ends in table.items():
            ends.sort()
            width = layout.sizes[key][0]
            step = min(12.0, width / (len(ends) + 1))
            for i, (_, index) in enumerate(ends):
                result[index] = layout.centers[key][0] + (i - (len(ends) - 1) / 2) * step
    for index, (u, v, points) in enumerate(layout.edge_paths):
        start = (start_x[index], layout.centers[u][1] - layout.sizes[u][1] / 2)
        end = (end_x[index], layout.centers[v][1] + layout.sizes[v][1] / 2)
        yield [start, *points[1:-1], end]


def to_dot(tensor, trace=None, collapse=(), collapse_modules=False, show_values=True):
    """The same graph as Graphviz DOT text (render with `dot -Tpng graph.dot -o graph.png`)."""
    graph = _prepare(tensor, trace, collapse, collapse_modules, show_values)
    ids = {key: f"n{i}" for i, key in enumerate(graph.nodes)}
    shapes = {"op": "box", "param": "ellipse", "constant": "ellipse", "module": "box3d"}
    lines = ["digraph minidl {", "  node [fontname=monospace, fontsize=10, style=filled];"]
    for key, node in graph.nodes.items():
        fill, border = COLORS["bad" if node.has_trouble else node.kind]
        label = "\\n".join(_dot_escape(line) for line in node.text_lines)
        extra = ", penwidth=2" if node.is_output else ""
        lines.append(
            f'  {ids[key]} [label="{label}", shape={shapes[node.kind]}, fillcolor="{fill}", color="{border}"{extra}];'
        )
    for u, v, _ in graph.edges:
        lines.append(f"  {ids[u]} -> {ids[v]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_escape(text):
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _warn_if_large(graph):
    if len(graph.nodes) > 300:
        warnings.warn(
            f"draw_graph: {len(graph.nodes)} nodes will be hard to read; try collapse_modules=True",
            stacklevel=3,
        )
