"""Elementwise ops: each output element depends on the same element of each input.

The local derivative of an elementwise op is elementwise too, so every backward
here is "upstream gradient times local derivative". Binary ops broadcast like
NumPy, and their backward sums the gradient back to each input's shape
(`unbroadcast`).
"""

import numpy as np

from minidl.autograd import Function
from minidl.backend import active_kernels
from minidl.backend.device import CPU
from minidl.ops._util import constant, host_values, on_device, pair, same_device, unbroadcast
from minidl.tensor import DEFAULT_FLOAT, Tensor


def _check_broadcast(op, a, b):
    if a.shape == b.shape:
        return
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None


def _binary(function, op, a, b):
    """Apply a broadcasting binary op; shapes are validated only if NumPy refuses them (the fast path stays fast)."""
    if type(a) is not Tensor or type(b) is not Tensor:
        a, b = pair(a, b)
    try:
        return function.apply(a, b)
    except ValueError:
        _check_broadcast(op, a, b)  # raises the clear message when the shapes are the problem
        raise


def _result_dtypes(a, b):
    """The operands of a binary op in the dtype PyTorch gives the result.

    When an integer (or bool) array meets a floating point one, the float's dtype wins:
    int64 + float32 is float32 in PyTorch, where NumPy would widen both to float64.
    Equal dtypes (the usual case) cost one comparison.
    """
    if a.dtype is b.dtype:
        return a, b
    kind_a, kind_b = a.dtype.kind, b.dtype.kind
    if kind_a == "f" and kind_b in "biu":
        return a, b.astype(a.dtype)
    if kind_b == "f" and kind_a in "biu":
        return a.astype(b.dtype), b
    return a, b


def _floating(x):
    """x itself if it is floating point, else x as float32: exp, log and the like of integers
    are float32 in PyTorch (NumPy would make them float64)."""
    return x if x.array.dtype.kind == "f" else astype(x, DEFAULT_FLOAT)


# ---------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------
class Add(Function):
    """y = a + b;   dy/da = 1, dy/db = 1"""

    def forward(self, a, b):
        return self.kernels.add(*_result_dtypes(a, b))

    def backward(self, grad):
        a, b = self.inputs  # only their shapes are needed, so no in-place check
        return unbroadcast(grad, a.shape), unbroadcast(grad, b.shape)


def add(a, b, alpha=1):
    """a + alpha * b (alpha as in torch.add)."""
    return _binary(Add, "add", a, b if alpha == 1 else b * alpha)


class Sub(Function):
    """y = a - b;   dy/da = 1, dy/db = -1"""

    def forward(self, a, b):
        return self.kernels.sub(*_result_dtypes(a, b))

    def backward(self, grad):
        a, b = self.inputs
        return unbroadcast(grad, a.shape), unbroadcast(-grad, b.shape)


def sub(a, b, alpha=1):
    """a - alpha * b (alpha as in torch.sub)."""
    return _binary(Sub, "sub", a, b if alpha == 1 else b * alpha)


class Mul(Function):
    """y = a * b;   dy/da = b, dy/db = a"""

    def forward(self, a, b):
        return self.kernels.mul(*_result_dtypes(a, b))

    def backward(self, grad):
        a, b = self.saved_tensors
        grad_a = unbroadcast(grad * b, a.shape) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(grad * a, b.shape) if self.needs_input_grad[1] else None
        return grad_a, grad_b


def mul(a, b):
    return _binary(Mul, "mul", a, b)


class Div(Function):
    """y = a / b;   dy/da = 1/b, dy/db = -a/b^2   (true division: integers divide to float32, as in PyTorch)"""

    def forward(self, a, b):
        if a.dtype.kind in "biu" and b.dtype.kind in "biu":
            a, b = a.astype(DEFAULT_FLOAT), b.astype(DEFAULT_FLOAT)
        return self.kernels.div(*_result_dtypes(a, b))

    def backward(self, grad):
        a, b = self.saved_tensors
        grad_a = unbroadcast(grad / b, a.shape) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(-grad * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return grad_a, grad_b


def div(a, b):
    return _binary(Div, "div", a, b)


class Neg(Function):
    """y = -x;   dy/dx = -1"""

    def forward(self, x):
        return self.kernels.neg(x)

    def backward(self, grad):
        return -grad


def neg(x):
    return Neg.apply(x)


class PowScalar(Function):
    """y = x^n for a fixed number n;   dy/dx = n x^(n-1)"""

    def forward(self, x, exponent):
        self.exponent = exponent
        return self.kernels.power(x, exponent)

    def backward(self, grad):
        (x,) = self.saved_tensors
        n = self.exponent
        if n == 0:
            return grad * 0
        if n == 1:
            return grad
        if n == 2:
            return grad * (2 * x)  # cheaper, and exact, for the most common case
        return grad * (n * x ** (n - 1))


class Pow(Function):
    """y = a^b for tensors;   dy/da = b a^(b-1),  dy/db = a^b ln a"""

    def forward(self, a, b):
        return self.kernels.power(*_result_dtypes(a, b))

    def backward(self, grad):
        a, b = self.saved_tensors
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            # b a^(b-1) is 0 * inf at a = 0, b = 0; the derivative there (along b = 0) is 0, as in torch.
            local = where(b == 0, 0.0, b * a ** (b - 1))
            grad_a = unbroadcast(grad * local, a.shape)
        if self.needs_input_grad[1]:
            # ln a is undefined for a <= 0; where a == 0 and the output is 0, use 0.
            log_a = log(where(a > 0, a, 1))
            grad_b = unbroadcast(grad * self.output * log_a, b.shape)
        return grad_a, grad_b


def pow(base, exponent):  # noqa: A001 - mirrors torch.pow
    """base ** exponent; a number exponent uses the simpler x^n rule."""
    if isinstance(base, Tensor) and isinstance(exponent, (int, float)) and not isinstance(exponent, bool):
        if isinstance(exponent, float) and base.array.dtype.kind in "biu":
            base = astype(base, DEFAULT_FLOAT)  # int ** 0.5 is float32 in PyTorch
        return PowScalar.apply(base, exponent=exponent)
    return _binary(Pow, "pow", base, exponent)


# ---------------------------------------------------------------------------
# Unary functions
# ---------------------------------------------------------------------------
class Exp(Function):
    """y = e^x;   dy/dx = e^x = y"""

    def forward(self, x):
        return self.kernels.exp(x)

    def backward(self, grad):
        return grad * self.output


def exp(x):
    return Exp.apply(_floating(x))


class Log(Function):
    """y = ln x;   dy/dx = 1/x"""

    def forward(self, x):
        return self.kernels.log(x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad / x


def log(x):
    return Log.apply(_floating(x))


class Sqrt(Function):
    """y = sqrt(x);   dy/dx = 1 / (2 sqrt(x)) = 1 / (2y)"""

    def forward(self, x):
        return self.kernels.sqrt(x)

    def backward(self, grad):
        return grad / (2 * self.output)


def sqrt(x):
    return Sqrt.apply(_floating(x))


class Abs(Function):
    """y = |x|;   dy/dx = sign(x)  (0 at x = 0, as PyTorch does)"""

    def forward(self, x):
        return self.kernels.abs(x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * sign(x)


def abs(x):  # noqa: A001
    return Abs.apply(x)


class Sin(Function):
    """y = sin x;   dy/dx = cos x"""

    def forward(self, x):
        return self.kernels.sin(x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * cos(x)


def sin(x):
    return Sin.apply(_floating(x))


class Cos(Function):
    """y = cos x;   dy/dx = -sin x"""

    def forward(self, x):
        return self.kernels.cos(x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return -grad * sin(x)


def cos(x):
    return Cos.apply(_floating(x))


class Tanh(Function):
    """y = tanh x;   dy/dx = 1 - y^2"""

    def forward(self, x):
        return self.kernels.tanh(x)

    def backward(self, grad):
        y = self.output
        return grad * (1 - y * y)


def tanh(x):
    return Tanh.apply(_floating(x))


class Sigmoid(Function):
    """y = 1 / (1 + e^-x);   dy/dx = y (1 - y)"""

    def forward(self, x):
        return self.kernels.sigmoid(x)

    def backward(self, grad):
        y = self.output
        return grad * (y * (1 - y))


def sigmoid(x):
    return Sigmoid.apply(_floating(x))


class ReLU(Function):
    """y = max(0, x);   dy/dx = 1 if x > 0 else 0  (the lecture's "X > 0 ? 1 : 0")"""

    def forward(self, x):
        return self.kernels.relu(x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * (x > 0)


def relu(x):
    return ReLU.apply(x)


class LeakyReLU(Function):
    """y = x if x > 0 else slope * x;   dy/dx = 1 or slope"""

    def forward(self, x, slope):
        self.slope = slope
        return self.kernels.leaky_relu(x, slope)

    def backward(self, grad):
        (x,) = self.saved_tensors
        # grad * slope keeps grad's dtype; a float32 copy of the slope would lose digits in float64.
        return where(x > 0, grad, grad * self.slope)


def leaky_relu(x, negative_slope=0.01):
    return LeakyReLU.apply(x, slope=negative_slope)


class Maximum(Function):
    """y = max(a, b) elementwise; the gradient goes to the larger input (split evenly on ties)."""

    def forward(self, a, b):
        return self.kernels.maximum(*_result_dtypes(a, b))

    def backward(self, grad):
        a, b = self.saved_tensors
        share_a = (a > b) + 0.5 * (a == b)
        return _split_gradient(grad, share_a, a, b, self.needs_input_grad)


def maximum(a, b):
    return _binary(Maximum, "maximum", a, b)


class Minimum(Function):
    """y = min(a, b) elementwise; the gradient goes to the smaller input (split evenly on ties)."""

    def forward(self, a, b):
        return self.kernels.minimum(*_result_dtypes(a, b))

    def backward(self, grad):
        a, b = self.saved_tensors
        share_a = (a < b) + 0.5 * (a == b)
        return _split_gradient(grad, share_a, a, b, self.needs_input_grad)


def minimum(a, b):
    return _binary(Minimum, "minimum", a, b)


def _split_gradient(grad, share_a, a, b, needs):
    share_a = share_a.astype(grad.dtype)
    grad_a = unbroadcast(grad * share_a, a.shape) if needs[0] else None
    grad_b = unbroadcast(grad * (1 - share_a), b.shape) if needs[1] else None
    return grad_a, grad_b


class Clip(Function):
    """y = min(max(x, low), high);   dy/dx = 1 inside [low, high], 0 outside."""

    def forward(self, x, low, high):
        self.low, self.high = low, high
        return self.kernels.clip(x, low, high)

    def backward(self, grad):
        (x,) = self.saved_tensors
        values = host_values("clamp", x)  # x.array on the cpu; a counted copy from a device
        inside = np.ones(x.shape, dtype=bool)
        if self.low is not None:
            inside &= values >= self.low
        if self.high is not None:
            inside &= values <= self.high
        return grad * constant(inside, like=grad)


def clip(x, min=None, max=None):  # noqa: A002 - PyTorch's argument names
    """Limit values to [min, max]; either bound may be None."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    if min is not None and max is not None and min > max:
        raise ValueError(f"clip: min ({min}) is greater than max ({max})")
    return Clip.apply(x, low=min, high=max)


class Where(Function):
    """y = a where cond else b;   the gradient flows to whichever input was chosen."""

    def forward(self, cond, a, b):
        return self.kernels.where(cond, *_result_dtypes(a, b))

    def backward(self, grad):
        cond, a, b = self.inputs
        grad_a = unbroadcast(grad * cond, a.shape) if self.needs_input_grad[1] else None
        if self.needs_input_grad[2] and cond.device is not CPU:  # no ~ on device arrays: grad - grad·cond
            grad_b = unbroadcast(grad - grad * cond, b.shape)
        else:
            grad_b = unbroadcast(grad * ~cond.array, b.shape) if self.needs_input_grad[2] else None
        return None, grad_a, grad_b


def where(condition, a, b):
    """Elementwise choice: a where condition is true, b elsewhere (broadcasting all three)."""
    condition = constant(condition)
    if condition.array.dtype != np.bool_:
        condition = Tensor._make(condition.array.astype(bool))
    a, b = pair(a, b)
    try:
        return Where.apply(condition, a, b)
    except ValueError:
        try:
            np.broadcast_shapes(condition.shape, a.shape, b.shape)
        except ValueError:
            raise ValueError(
                f"where: shapes {condition.shape} (condition), {a.shape} and {b.shape} cannot be broadcast together"
            ) from None
        raise


class AsType(Function):
    """y = x converted to another dtype;   the gradient is converted back."""

    def forward(self, x, dtype):
        return self.kernels.astype(x, dtype)

    def backward(self, grad):
        (x,) = self.inputs
        return grad.astype(x.dtype)


def astype(x, dtype):
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    if x.requires_grad and dtype.kind != "f":
        return Tensor._make(x.array.astype(dtype), device=x.device)  # integer results carry no gradient
    return AsType.apply(x, dtype=dtype)


class Clone(Function):
    """y = a copy of x;   dy/dx = 1"""

    def forward(self, x):
        return x.copy()

    def backward(self, grad):
        return grad


def clone(x):
    return Clone.apply(x)


# ---------------------------------------------------------------------------
# Masks, signs, comparisons and logic (no gradient flows through a comparison)
# ---------------------------------------------------------------------------

clamp = clip


def masked_fill(x, mask, value):
    """x with `value` wherever the boolean `mask` (broadcastable to x's shape) is True.

    The gradient flows to x where the mask is False, and to value (a 0-d tensor) where it is True.
    """
    mask = constant(mask)
    if mask.array.dtype != np.bool_:
        raise TypeError(f"masked_fill: the mask must be a bool tensor (e.g. x > 0), got dtype {mask.dtype}")
    try:
        shape = np.broadcast_shapes(mask.shape, x.shape)
    except ValueError:
        shape = None
    if shape != x.shape:
        raise ValueError(
            f"masked_fill: a mask of shape {mask.shape} does not broadcast to the tensor's shape {x.shape}"
        )
    if isinstance(value, Tensor) and value.ndim != 0:
        raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
    if not isinstance(value, Tensor):
        value = Tensor._make(np.asarray(value, dtype=x.dtype), device=x.device)  # x's dtype, as in PyTorch
    return where(mask, value, x)


def sign(x):
    """-1, 0 or 1 for each element. Piecewise constant, so it carries no gradient."""
    return Tensor._make(active_kernels[x.device].sign(x.array), device=x.device)


# Comparisons return boolean tensors that never require grad (their derivative is 0 a.e.).
def _comparison(kernel_name, a, b):
    a, b = pair(a, b)
    _check_broadcast(kernel_name, a, b)
    if a.device is not b.device:
        raise RuntimeError(
            f"{kernel_name}: expected both tensors on the same device, but found {a.device} and {b.device}; "
            "move one with .to(device) first"
        )
    kernel = getattr(active_kernels[a.device], kernel_name)
    return Tensor._make(kernel(*_result_dtypes(a.array, b.array)), device=a.device)


def gt(a, b):
    """a > b elementwise (a bool tensor)."""
    return _comparison("greater", a, b)


def ge(a, b):
    """a >= b elementwise."""
    return _comparison("greater_equal", a, b)


def lt(a, b):
    """a < b elementwise."""
    return _comparison("less", a, b)


def le(a, b):
    """a <= b elementwise."""
    return _comparison("less_equal", a, b)


def eq(a, b):
    """a == b elementwise (a bool tensor); minidl.equal(a, b) answers one True or False instead."""
    return _comparison("equal", a, b)


def ne(a, b):
    """a != b elementwise."""
    return _comparison("not_equal", a, b)


def isnan(x):
    """True where x is NaN (the one value not equal to itself)."""
    return ne(x, x)


def isinf(x):
    """True where x is +inf or -inf."""
    return eq(abs(x.detach()), float("inf"))


def isfinite(x):
    """True where x is neither NaN nor infinite."""
    return lt(abs(x.detach()), float("inf"))  # NaN compares False


# PyTorch's longer names for the same comparisons (torch.greater is torch.gt, ...).
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne


def equal(a, b):
    """True if a and b have the same shape and the same values (one Python bool, as torch.equal)."""
    a, b = pair(a, b)
    same_device("equal", a, b)
    return a.shape == b.shape and bool(np.array_equal(host_values("equal", a), host_values("equal", b)))


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|a - b| <= atol + rtol * |b| elementwise (a bool tensor)."""
    a, b = pair(a, b)
    _check_broadcast("isclose", a, b)
    where = same_device("isclose", a, b)
    close = np.isclose(host_values("isclose", a), host_values("isclose", b), rtol=rtol, atol=atol, equal_nan=equal_nan)
    return Tensor._make(on_device(close, where), device=where)


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Whether isclose holds everywhere (one Python bool, as torch.allclose)."""
    return bool(host_values("allclose", isclose(a, b, rtol, atol, equal_nan)).all())


def _logical(op, function, *operands):
    """A bool (or integer bit) function of tensors or numbers; like comparisons, it carries no gradient."""
    like = next((t for t in operands if isinstance(t, Tensor)), None)  # numbers join the tensors' device
    tensors = [constant(t, like=like) for t in operands]
    for t in tensors:
        if t.array.dtype.kind not in "biu":
            raise TypeError(f"{op}: expects bool or integer tensors, got dtype {t.dtype}")
    where = same_device(op, *tensors)
    try:
        result = function(*[host_values(op, t) for t in tensors])
        return Tensor._make(on_device(result, where), device=where)
    except ValueError:
        raise ValueError(f"{op}: shapes {[t.shape for t in tensors]} cannot be broadcast together") from None


def logical_and(a, b):
    return _logical("logical_and", np.logical_and, a, b)


def logical_or(a, b):
    return _logical("logical_or", np.logical_or, a, b)


def logical_not(x):
    return _logical("logical_not", np.logical_not, x)


def bitwise_and(a, b):
    """a & b: elementwise and of bool (or integer) tensors, as the operator & in PyTorch."""
    return _logical("bitwise_and", np.bitwise_and, a, b)


def bitwise_or(a, b):
    return _logical("bitwise_or", np.bitwise_or, a, b)


def bitwise_not(x):
    return _logical("bitwise_not", np.invert, x)


__all__ = [
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "pow",
    "exp",
    "log",
    "sqrt",
    "abs",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "leaky_relu",
    "maximum",
    "minimum",
    "clip",
    "clamp",
    "masked_fill",
    "where",
    "astype",
    "clone",
    "sign",
    "gt",
    "ge",
    "lt",
    "le",
    "eq",
    "ne",
    "isnan",
    "isinf",
    "isfinite",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "not_equal",
    "equal",
    "isclose",
    "allclose",
    "logical_and",
    "logical_or",
    "logical_not",
    "bitwise_and",
    "bitwise_or",
    "bitwise_not",
]
