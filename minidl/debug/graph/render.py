"""Rendering a laid-out graph: draw_graph (PNG, SVG or PDF via matplotlib) and to_dot (Graphviz text).

Ops are yellow, parameters blue, constants grey, collapsed modules green, anything holding a
NaN or Inf red; the output has a thick border. Arrows follow the forward data flow, so backward
runs against them, from the output at the bottom up to the parameters. matplotlib is imported
only when draw_graph is called.
"""

import warnings
from collections import defaultdict

from minidl.debug.graph.build import build_graph, collapse_graph, count_of
from minidl.debug.graph.layout import CHAR_WIDTH, FONT_FAMILY, FONT_SIZE, LINE_HEIGHT, MARGIN, PAD_Y, layered_layout

COLORS = {  # kind -> (fill, border)
    "op": ("#fff4d6", "#a07800"),
    "param": ("#dbeafe", "#1d4ed8"),
    "constant": ("#eeeeee", "#777777"),
    "module": ("#dcfce7", "#15803d"),
    "bad": ("#fecaca", "#b91c1c"),  # NaN or Inf in its value or gradient
}


def _prepare(tensor, trace, collapse, collapse_modules, show_values):
    graph = build_graph(tensor, trace=trace, show_values=show_values)
    return collapse_graph(graph, collapse, collapse_modules)


def draw_graph(
    tensor, path=None, trace=None, collapse=(), collapse_modules=False, show_values=True, title=None, dpi=110
):
    """Draw the graph that produced `tensor`; save it to `path` (PNG, SVG, PDF by extension) and return the Figure.

    Nodes: ops (yellow; labelled with the op, its output's shape, value and gradient summaries),
    parameters (blue), constants (grey), collapsed modules (green); red marks NaN/Inf.
    trace: a Trace of a backward pass (`with minidl.debug.trace() as t: loss.backward()`) to show every
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
    parts = [count_of(ops, "op")] if ops or not modules else []
    if modules:
        inside = count_of(sum(n.op_count for n in modules), "op")
        parts.append(f"{count_of(len(modules), 'collapsed module')} ({inside} inside)")
    return f"computation graph: {' and '.join(parts)}\narrows follow the forward pass; backward runs from the bottom up"


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
