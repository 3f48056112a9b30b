"""Where each op came from: the line of user code that created it and the module it ran in.

While `record_modules()` (or `detect_anomaly()`) is active, a forward observer tags every
recorded op with an `Origin`: the first stack frame outside the minidl package (your
script, notebook cell or test), the op function that was called ("log", "matmul"), and
the nn modules that were running (`minidl.nn.module.named_module_stack()`: the modules that
`Module.__call__` pushed, with their qualified names, e.g. ("Net.features.0", conv)). Graph drawing
uses the module path to collapse a module into one node; anomaly mode uses the site to say where a
NaN was born.
"""

import contextlib
import linecache
import os
import sys
import weakref

import minidl
from minidl import autograd

_PACKAGE_DIR = os.path.dirname(os.path.abspath(minidl.__file__)) + os.sep
_APPLY_CODE = autograd.Function.apply.__func__.__code__

# Function -> Origin. Weak keys: tagging an op must not keep its graph alive.
_origins = weakref.WeakKeyDictionary()
_active = 0  # how many record_modules()/detect_anomaly() blocks are open


class Site:
    """A place in source code: file, line, function and the line's text."""

    __slots__ = ("filename", "lineno", "function", "source")

    def __init__(self, filename, lineno, function):
        self.filename = filename
        self.lineno = lineno
        self.function = function
        self.source = linecache.getline(filename, lineno).strip()

    def __str__(self):
        text = f"{self.filename}:{self.lineno} in {self.function}"
        return text + (f"\n    {self.source}" if self.source else "")


class Origin:
    """Where one op was created.

    site      the first frame outside the minidl package (a Site), or None
    call      the name of the minidl function whose body applied the op ("log", "conv2d")
    modules   ((qualified name, module), ...) from the outermost to the innermost running module,
              e.g. (("Net", net), ("Net.features", seq), ("Net.features.0", conv))
    calls     one number per entry of `modules`, telling apart calls of the same module: an RNN cell
              called at every time step runs as a different call each time
    """

    __slots__ = ("site", "call", "modules", "calls")

    def __init__(self, site, call, modules, calls=()):
        self.site = site
        self.call = call
        self.modules = modules
        self.calls = calls

    @property
    def module_path(self):
        """The qualified name of the innermost running module, e.g. "Net.features.0" ("" outside any)."""
        return str(self.modules[-1][0]) if self.modules else ""


def is_user_frame(filename):
    """Everything outside the installed minidl package counts as user code (scripts, tests/, notebooks)."""
    return not os.path.abspath(filename).startswith(_PACKAGE_DIR)


def _module_stack():
    # Read the nn engineer's stack only if minidl.nn is loaded: without it no module can be running,
    # and importing it here would make `import minidl.debug` pull in the training layer. The names
    # are resolved now, while the modules are running: they depend on who called whom.
    module = sys.modules.get("minidl.nn.module")
    return module.named_module_stack() if module is not None and module.module_stack else ()


def _find_origin(frame):
    """Walk outwards from `frame`: the op function that called Function.apply, then the first user frame."""
    call = None
    while frame is not None:
        code = frame.f_code
        if code is _APPLY_CODE and frame.f_back is not None:
            call = frame.f_back.f_code.co_name
        elif is_user_frame(code.co_filename):
            return call, Site(code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
    return call, None


class _CallCounter:
    """Numbers module calls as ops are recorded.

    A module that was not at the same depth of the stack when the previous op was recorded has
    been called anew. (Two calls with no op of an outer module between them look like one call;
    that is harmless: a collapsed node then covers both, with no edge leaving and re-entering it.)
    """

    def __init__(self):
        self.previous = []  # [(id(module), call number)] for the stack at the previous op
        self.count = 0

    def calls(self, modules):
        current = []
        same_call = True  # once one depth is a new call, every deeper one is too
        for depth, (_, module) in enumerate(modules):
            same_call = same_call and depth < len(self.previous) and self.previous[depth][0] == id(module)
            if same_call:
                current.append(self.previous[depth])
            else:
                self.count += 1
                current.append((id(module), self.count))
        self.previous = current
        return tuple(number for _, number in current)


_call_counter = _CallCounter()


def record(function):
    """Tag `function` with its Origin (once) and return it. Called from forward observers."""
    origin = _origins.get(function)
    if origin is None:
        call, site = _find_origin(sys._getframe(1))
        modules = tuple(_module_stack())
        origin = Origin(site, call, modules, _call_counter.calls(modules))
        _origins[function] = origin
    return origin


def origin_of(function):
    """The Origin recorded for an op, or None if it was created while nothing was recording."""
    if function is None:
        return None
    return _origins.get(function)


def call_name(function):
    """The name the user called the op by ("log", "matmul"), falling back to the class name lowercased."""
    origin = origin_of(function)
    if origin is not None and origin.call and origin.call != "<module>":
        return origin.call
    return function.name.lower()


def _observe_forward(function, output):
    record(function)


@contextlib.contextmanager
def recording():
    """Tag ops with their Origin while the block runs (nestable; the observer is installed once)."""
    global _active
    _active += 1
    if _active == 1:
        autograd.forward_observers.append(_observe_forward)
    try:
        yield
    finally:
        _active -= 1
        if _active == 0 and _observe_forward in autograd.forward_observers:
            autograd.forward_observers.remove(_observe_forward)


@contextlib.contextmanager
def record_modules():
    """Remember which nn module created each op, and from which line of your code.

    Run the forward pass inside it, then draw with `draw_graph(..., collapse=...)`:

        with minidl.debug.record_modules():
            loss = loss_fn(model(x), y)
        minidl.debug.draw_graph(loss, "model.png", collapse_modules=True)
    """
    with recording():
        yield
