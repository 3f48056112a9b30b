"""Short descriptions of tensors and gradients, shared by every debugging tool.

`summarize(array)` reduces an array to the numbers worth printing (mean, std, min,
max, norm, how many zeros / NaN / Inf); `format_number` and `format_shape` print them the
same way in every tool. (Tensors' names come from names.py.)
"""

import inspect

import numpy as np


def format_number(x):
    """A number in 4 significant digits: compact in a table, exact enough to compare by eye."""
    if x is None:
        return "-"
    return f"{x:.4g}"


def format_shape(shape):
    """(3, 4) -> "(3, 4)"; () -> "()" (a scalar)."""
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


class Summary:
    """The statistics of one array; mean/std/min/max/norm are over its finite values.

    Counting NaN and Inf separately (instead of letting them turn every statistic into
    nan) keeps the other numbers useful while you look for where the NaN came from.
    """

    __slots__ = ("shape", "dtype", "count", "mean", "std", "min", "max", "norm", "zeros", "nans", "infs")

    def __init__(self, array):
        array = np.asarray(array)
        self.shape = array.shape
        self.dtype = array.dtype
        self.count = int(array.size)
        if array.dtype.kind not in "fc":
            array = array.astype(np.float64)
        finite_mask = np.isfinite(array)
        self.nans = int(np.isnan(array).sum())
        self.infs = int(np.isinf(array).sum())
        self.zeros = int((array == 0).sum())
        finite = array[finite_mask].astype(np.float64)
        if finite.size:
            self.mean = float(finite.mean())
            self.std = float(finite.std())
            self.min = float(finite.min())
            self.max = float(finite.max())
            self.norm = float(np.sqrt((finite * finite).sum()))
        else:
            self.mean = self.std = self.min = self.max = self.norm = None

    @property
    def finite(self):
        return self.nans == 0 and self.infs == 0

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}

    def short(self):
        """One compact line, for graph labels and step reprs: mean, std, norm and any trouble."""
        text = f"mean={format_number(self.mean)} std={format_number(self.std)} norm={format_number(self.norm)}"
        return text + self.trouble()

    def trouble(self):
        """ " NaN=2 Inf=1" when there is something to worry about, else ""."""
        text = ""
        if self.nans:
            text += f" NaN={self.nans}"
        if self.infs:
            text += f" Inf={self.infs}"
        return text

    def __repr__(self):
        return (
            f"Summary(shape={self.shape}, mean={format_number(self.mean)}, std={format_number(self.std)}, "
            f"min={format_number(self.min)}, max={format_number(self.max)}, norm={format_number(self.norm)}, "
            f"zeros={self.zeros}, nans={self.nans}, infs={self.infs})"
        )


def summarize(array_or_tensor):
    """Summary of an ndarray or a Tensor (None stays None: an input that gets no gradient)."""
    if array_or_tensor is None:
        return None
    data = getattr(array_or_tensor, "data", array_or_tensor)
    return Summary(data)


def op_name(function):
    """The op's class name ("MatMul"), or "leaf" for a tensor no op produced."""
    return "leaf" if function is None else function.name


def formula_of(function):
    """The derivative an op's docstring states, e.g. "y = ln x;   dy/dx = 1/x".

    Every op class in minidl/ops documents its forward and derivative in the first
    paragraph of its docstring; subclasses without one use their base class's.
    """
    if function is None:
        return "a leaf: backward adds the gradient arriving here into .grad"
    for cls in type(function).__mro__:
        if cls.__name__ == "Function" or cls is object:
            break
        doc = cls.__dict__.get("__doc__")
        if doc:
            first_paragraph = inspect.cleandoc(doc).split("\n\n")[0]
            return " ".join(line.strip() for line in first_paragraph.splitlines())
    return f"{function.name}: no formula documented"
