"""no_grad and enable_grad as PyTorch spells them: `with minidl.no_grad():`, `@minidl.no_grad()`
and also the bare decorator `@minidl.no_grad`.

The grad mode itself lives in minidl/autograd.py; these subclasses only add the bare-decorator
form (the class called with the function to wrap), so `@no_grad` and `@no_grad()` both work.
"""

from minidl import autograd


class no_grad(autograd.no_grad):  # noqa: N801 - PyTorch's name
    """Do not record ops: for evaluation and for parameter updates. A with-block or a decorator."""

    def __new__(cls, function=None):
        if function is None:
            return super().__new__(cls)
        return autograd.no_grad()(function)  # the bare @no_grad form

    def __init__(self, function=None):
        super().__init__()


class enable_grad(autograd.enable_grad):  # noqa: N801 - PyTorch's name
    """Record ops even inside a no_grad block. A with-block or a decorator (with or without parentheses)."""

    def __new__(cls, function=None):
        if function is None:
            return super().__new__(cls)
        return autograd.enable_grad()(function)

    def __init__(self, function=None):
        super().__init__()
