"""Where each node of the graph goes: a small layered ("Sugiyama") layout, so no Graphviz is needed.

  1. layers: a node's layer is its longest path to the output, so a bias sits next to its op;
  2. order within each layer: barycenter sweeps that reduce edge crossings (long edges get
     invisible helper nodes, one per layer they cross, so they are straightened too);
  3. x positions: pulled towards neighbours, kept apart by an exact least-squares projection.
Sizes are in points, computed from the labels in a monospaced font whose widths are known, so
render.py can draw the text at exactly the size the layout planned for.
"""

from collections import defaultdict

FONT_FAMILY = "DejaVu Sans Mono"  # ships with matplotlib, so it is always there and widths are known
FONT_SIZE = 8.0  # points
CHAR_WIDTH = 0.602 * FONT_SIZE  # DejaVu Sans Mono advance width, so label widths are exact
LINE_HEIGHT = 1.35 * FONT_SIZE
PAD_X, PAD_Y = 7.0, 5.0
NODE_GAP = 18.0  # horizontal space between nodes of one layer
LAYER_GAP = 30.0  # vertical space between layers
MARGIN = 12.0


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
            for k, x in zip(row, project_with_spacing(desired, gaps)):
                xs[k] = x
    return xs


def project_with_spacing(desired, gaps):
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
