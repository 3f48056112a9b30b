"""Tools for looking inside backprop: gradient checks (and, later, tracer, stepper, graphs)."""

from minidl.debug.gradcheck import GradcheckError, GradcheckReport, gradcheck, gradgradcheck

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError", "GradcheckReport"]
