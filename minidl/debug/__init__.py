"""Tools for looking inside backprop: watch the chain rule one node at a time, and find the op that broke a gradient.

    trace / Trace          record every backward step (print the Trace for a table)
    step_backward / Step   walk the backward pass node by node, before each step is applied
    break_on               open the debugger when a chosen op's backward runs
    detect_anomaly         raise at the first NaN/Inf, naming the op and the line that created it
    explain, draw_graph, to_dot, record_modules   look at the graph as text, a picture or DOT
    name_of                the one name every tool above calls a tensor by
    gradcheck, gradgradcheck                      compare gradients with finite differences

Importing this package is cheap and changes nothing until a tool is used; matplotlib is
loaded only by draw_graph. A guide with examples: docs/debugging.md.
"""

from minidl.debug.anomaly import AnomalyError, detect_anomaly
from minidl.debug.breakpoints import Breakpoint, break_on, breakpoints, clear_breakpoints
from minidl.debug.explain import explain
from minidl.debug.gradcheck import GradcheckError, GradcheckReport, gradcheck, gradgradcheck
from minidl.debug.graph import draw_graph, to_dot
from minidl.debug.names import name_of
from minidl.debug.provenance import record_modules
from minidl.debug.stepper import Step, step_backward
from minidl.debug.summary import Summary, summarize
from minidl.debug.tracer import Trace, TraceRecord, trace

__all__ = [
    "AnomalyError",
    "Breakpoint",
    "GradcheckError",
    "GradcheckReport",
    "Step",
    "Summary",
    "Trace",
    "TraceRecord",
    "break_on",
    "breakpoints",
    "clear_breakpoints",
    "detect_anomaly",
    "draw_graph",
    "explain",
    "gradcheck",
    "gradgradcheck",
    "name_of",
    "record_modules",
    "step_backward",
    "summarize",
    "to_dot",
    "trace",
]
