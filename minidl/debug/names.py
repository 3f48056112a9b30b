"""One display name per tensor, shared by every debugging tool.

The tracer, the stepper, break_on, explain and the graph drawing all call `name_of(tensor)`,
so a tensor has the same name in each of them. The rule, first match wins:

1. the tensor's own `.name`, when you set one (`W.name = "W"`);
2. a parameter or buffer of an nn module: its path in the model that holds it, starting with
   the model's class name, as record_modules() names modules: "Sequential.0.weight",
   "Net.encoder.fc.bias". The model is found among the live modules (minidl.nn keeps a weak
   set of them), so nothing has to be recorded during the forward pass. When several models
   hold the same parameter (a model and `nn.fuse(model)` share theirs), the one with the most
   modules names it, and between equals the name that sorts first;
3. anything else: what made it and a number. An op's output is named after its op
   ("matmul_0", "relu_1"), a leaf that requires grad "leaf_0", one that does not "const_0".
   Numbers count within one graph, in forward order: a depth-first walk from the output that
   names an op's inputs, in argument order, before the op's output (for `w2 @ relu(w1 @ x)`:
   w2, w1, x, then the ops from the inside out). Names the graph already uses are skipped. So
   the same script names the same tensors the same way every time, and each iteration of a
   training loop gets the same names.

Each tool first names the whole graph below the tensor it was given, that way; the names
stick to the tensors for as long as they live, so the tools agree whatever order they are used
in. (Looking at a part of a graph first, say explain(h) before tracing the loss, numbers that
part on its own; the rest of the graph is numbered around it later.)
"""

import sys
import weakref

# id(tensor) -> (weak reference, name). Keyed by id because Tensor's == is elementwise,
# which a WeakKeyDictionary would call on a hash collision.
_names = {}


def name_of(tensor):
    """The display name of `tensor`, the same in every debugging tool (see the module docstring)."""
    if tensor.name:
        return str(tensor.name)
    name = _remembered(tensor)
    if name is None:
        name_graph(tensor)
        name = _remembered(tensor)
    return name


def name_graph(root):
    """Give a name to every tensor in the graph below `root` that has none yet (rule 2 or 3)."""
    order = forward_order(root)
    taken = set()
    unnamed = []
    for t in order:
        name = str(t.name) if t.name else _remembered(t)
        if name is None:
            unnamed.append(t)
        else:
            taken.add(name)
    owned = _module_tensor_names() if any(t.grad_fn is None for t in unnamed) else {}
    counters = {}
    for t in unnamed:
        name = owned.get(id(t)) if t.grad_fn is None else None
        if name is None:
            stem = _stem(t)
            number = counters.get(stem, 0)
            while f"{stem}_{number}" in taken:
                number += 1
            counters[stem] = number + 1
            name = f"{stem}_{number}"
        taken.add(name)
        _remember(t, name)


def forward_order(root):
    """The tensors of the graph below `root`, each once, every op's inputs (in argument order) before
    its output. Iterative, so a 10,000-op chain does not hit Python's recursion limit."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        t, inputs_done = stack.pop()
        if inputs_done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t.grad_fn is not None:
            stack.extend((i, False) for i in reversed(t.grad_fn.inputs))
    return order


def _stem(tensor):
    if tensor.grad_fn is not None:
        return tensor.grad_fn.name.lower()
    return "leaf" if tensor.requires_grad else "const"


def _remembered(tensor):
    entry = _names.get(id(tensor))
    if entry is not None and entry[0]() is tensor:
        return entry[1]
    return None


def _remember(tensor, name):
    key = id(tensor)

    def forget(ref):
        if _names.get(key, (None,))[0] is ref:
            del _names[key]

    _names[key] = (weakref.ref(tensor, forget), name)


def _module_tensor_names():
    """id(tensor) -> "Model.path.to.weight" for every parameter and buffer of every live model (rule 2)."""
    module = sys.modules.get("minidl.nn.module")  # no nn loaded: no modules, and no reason to load it
    if module is None:
        return {}
    live = list(module.live_modules)
    children = {id(child) for m in live for child in m._modules.values() if child is not None}
    best = {}  # id(tensor) -> (-number of modules in its model, name): the smallest wins
    for model in live:
        if id(model) in children:
            continue  # part of a bigger model
        submodules = list(model.named_modules())
        root = type(model).__name__
        for path, sub in submodules:
            prefix = f"{root}.{path}." if path else f"{root}."
            for attribute, t in list(sub._parameters.items()) + list(sub._buffers.items()):
                if t is not None:
                    candidate = (-len(submodules), prefix + attribute)
                    best[id(t)] = min(best.get(id(t), candidate), candidate)
    return {key: name for key, (_, name) in best.items()}
