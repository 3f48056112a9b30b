"""explain(t): the chain of ops that produced a tensor, as an indented tree.

It is a readable walk of `t.grad_fn` and its inputs, the path backward() will take:

    Sum -> loss ()
    └── PowScalar -> powscalar_0 (3, 8)
        └── Sub -> sub_0 (3, 8)
            ├── Y (3, 8)  constant
            └── Add -> H1 (3, 8)
                ...
A subgraph used twice is printed once; later uses say "(see above)".
"""

from minidl.debug.names import name_graph, name_of
from minidl.debug.provenance import origin_of
from minidl.debug.summary import format_shape


def _describe(tensor, show_sites):
    shape = format_shape(tensor.shape)
    if tensor.grad_fn is None:
        kind = "leaf, requires grad" if tensor.requires_grad else "constant"
        text = f"{name_of(tensor)} {shape}  {kind}"
        if tensor.grad is not None:
            text += "  (has .grad)"
        return text
    fn = tensor.grad_fn
    text = f"{fn.name} -> {name_of(tensor)} {shape}"
    origin = origin_of(fn)
    if origin is not None:
        if origin.module_path:
            text += f"  [{origin.module_path}]"
        if show_sites and origin.site is not None:
            text += f"  @ {origin.site.filename.rsplit('/', 1)[-1]}:{origin.site.lineno}"
    if fn.released:
        text += "  (graph freed by backward; use retain_graph=True to see its inputs)"
    return text


def explain(tensor, max_depth=None, show_sites=True, print_it=True):
    """Print (and return) the tree of ops that produced `tensor`, output at the top.

    max_depth limits how many levels are shown; show_sites adds "@ file:line" where
    the op was created, when known (inside record_modules() or detect_anomaly()).
    """
    name_graph(tensor)  # in forward order, from the root, as every tool does
    lines = []
    seen = set()
    # Iterative depth-first walk (a 10,000-op chain must not hit the recursion limit).
    # Each entry: (tensor, prefix for its children, connector for its own line, depth)
    stack = [(tensor, "", "", 0)]
    while stack:
        node, prefix, connector, depth = stack.pop()
        line = prefix + connector + _describe(node, show_sites)
        if id(node) in seen and node.grad_fn is not None:
            lines.append(line + "  (see above)")
            continue
        seen.add(id(node))
        lines.append(line)
        fn = node.grad_fn
        if fn is None or not fn.inputs:
            continue
        child_prefix = prefix + ("" if not connector else ("    " if connector == "└── " else "│   "))
        if max_depth is not None and depth >= max_depth:
            lines.append(child_prefix + "└── ...")
            continue
        children = list(fn.inputs)
        for i in reversed(range(len(children))):
            last = i == len(children) - 1
            stack.append((children[i], child_prefix, "└── " if last else "├── ", depth + 1))
    text = "\n".join(lines)
    if print_it:
        print(text)
    return text
