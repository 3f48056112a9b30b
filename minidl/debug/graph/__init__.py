"""Pictures of the computation graph: draw_graph (a PNG via matplotlib) and to_dot (Graphviz text).

Ops and leaf tensors are the nodes; arrows follow the forward data flow, so backward runs
against them, from the output at the bottom up to the parameters. Three steps, one module each:

  build.py    tensors -> a Graph of labelled nodes and edges; collapsing modules into one node
  layout.py   where each node goes: a small layered ("Sugiyama") layout, no Graphviz needed
  render.py   the laid-out graph drawn with matplotlib, or the graph written as DOT text
"""

from minidl.debug.graph.build import Graph, GraphNode, build_graph, collapse_graph
from minidl.debug.graph.layout import Layout, layered_layout
from minidl.debug.graph.render import draw_graph, to_dot

__all__ = ["Graph", "GraphNode", "Layout", "build_graph", "collapse_graph", "draw_graph", "layered_layout", "to_dot"]
