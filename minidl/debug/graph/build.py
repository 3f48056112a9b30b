"""Building the picture's graph: from tensors to labelled nodes and edges, and collapsing modules.

`build_graph(t)` walks from `t` back to the leaves and makes one GraphNode per op (labelled with
its output's name, shape, value and gradient) and per leaf tensor; `collapse_graph` replaces the
ops made inside a module (recorded by record_modules()) by one node for that module, to keep big
graphs legible. Nothing here knows about positions or drawing: see layout.py and render.py.
"""

from collections import defaultdict

from minidl.debug.names import name_graph, name_of
from minidl.debug.provenance import origin_of
from minidl.debug.summary import format_shape, summarize


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
            "draw_graph(loss, path, trace=t) after `with minidl.debug.trace() as t: loss.backward()`."
        )
    return ()


def build_graph(tensor, trace=None, show_values=True):
    """Walk from `tensor` back to the leaves and make one GraphNode per op and per leaf tensor.

    Constants of a single element (the 2 in `x * 2`) are folded into their op's label
    instead of getting a node each.
    """
    name_graph(tensor)  # from the root, as every tool does
    graph = Graph()

    def add_tensor_node(t):
        key = ("tensor", id(t))
        if key not in graph.nodes:
            kind = "param" if t.requires_grad else "constant"
            lines = [format_shape(t.shape) + ("" if t.requires_grad else "  constant")]
            node = GraphNode(key, kind, name_of(t), lines, tensor=t)
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
        lines = [f"{name_of(t)} {format_shape(t.shape)}"]
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
        contents = count_of(len(ops), "op")
        if params:
            contents += f", {count_of(len(params), 'param')} ({weights:,} weights)"
        lines = [contents]
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


def count_of(n, noun):
    """ "1 op", "3 ops"."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
