"""The Tensor: a NumPy array plus what reverse-mode autodiff needs to know about it.

A Tensor made by an op remembers that op in `grad_fn`; following `grad_fn.inputs`
back from a result walks the computation graph that `backward()` differentiates.
Arithmetic and methods here are thin: each calls one op in `minidl/ops/`.
"""

import numpy as np

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

DEFAULT_FLOAT = float32


def _to_array(data, dtype=None, copy=False):
    """Convert user data to an ndarray with PyTorch's defaults: float32 for Python floats."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray):
        array = data.astype(dtype) if dtype is not None else data
        return array.copy() if copy and array is data else array
    array = np.array(data, dtype=dtype)
    if dtype is None:
        if array.dtype == np.float64:
            array = array.astype(DEFAULT_FLOAT)  # Python floats become float32, like torch.tensor
        elif array.dtype.kind not in "biuf":
            raise TypeError(
                f"tensor: cannot make a tensor from data of type {type(data).__name__} "
                f"(NumPy dtype {array.dtype}); expected numbers, nested lists of numbers or an ndarray"
            )
    return array


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    data           the NumPy array holding the values
    grad           the gradient accumulated by backward() (a Tensor), or None
    requires_grad  whether ops on this tensor are recorded for differentiation
    grad_fn        the op (a Function) that produced this tensor; None for leaves
    """

    __slots__ = (
        "data",
        "grad",
        "requires_grad",
        "grad_fn",
        "device",
        "name",
        "_version",
        "_hooks",
        "_retains_grad",
        "__weakref__",
    )
    # Make NumPy hand mixed expressions to us: ndarray * Tensor calls Tensor.__rmul__.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None, device="cpu", name=None):
        self.data = _to_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating point tensors can require grad, got dtype {self.data.dtype}")
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.grad_fn = None
        self.device = device
        self.name = name
        self._version = [0]  # a box, shared with views, counting in-place changes
        self._hooks = None
        self._retains_grad = False

    @classmethod
    def _make(cls, data, grad_fn=None, version=None, device="cpu"):
        """Fast constructor for op results: no conversion, no checks."""
        t = object.__new__(cls)
        t.data = data
        t.grad = None
        t.requires_grad = grad_fn is not None
        t.grad_fn = grad_fn
        t.device = device
        t.name = None
        t._version = version if version is not None else [0]
        t._hooks = None
        t._retains_grad = False
        return t

    # ------------------------------------------------------------------ facts
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self):
        """True for tensors not produced by a recorded op (user data and parameters)."""
        return self.grad_fn is None

    @property
    def version(self):
        """How many times this tensor (or a view sharing its memory) was changed in place."""
        return self._version[0]

    @property
    def T(self):
        return self.transpose()

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self):
        return self.data.ndim

    def numel(self):
        return self.data.size

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(", precision=4, threshold=200)
        extras = []
        if self.data.dtype != DEFAULT_FLOAT:
            extras.append(f"dtype={self.data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{type(self.grad_fn).__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    # ------------------------------------------------------------ conversion
    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a Python number, got shape {self.shape}")
        return self.data.item()

    def numpy(self):
        """The underlying array (shared, not copied), like torch's .numpy() on CPU."""
        return self.data

    def tolist(self):
        return self.data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; use .any() or .all()"
            )
        return bool(self.data)

    def __index__(self):
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.data)

    __hash__ = object.__hash__  # == is elementwise, so hash by identity

    def detach(self):
        """A new leaf sharing this tensor's data (and its in-place version counter)."""
        return Tensor._make(self.data, version=self._version, device=self.device)

    def clone(self):
        return _ops.clone(self)

    def astype(self, dtype):
        return _ops.astype(self, dtype)

    def to(self, dtype):
        return _ops.astype(self, dtype)

    def float(self):
        return _ops.astype(self, float32)

    def double(self):
        return _ops.astype(self, float64)

    def long(self):
        return _ops.astype(self, int64)

    # -------------------------------------------------------------- autograd
    def requires_grad_(self, requires_grad=True):
        if not self.is_leaf:
            raise RuntimeError("requires_grad_: can only change requires_grad of leaf tensors; use detach() first")
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad_: only floating point tensors can require grad, got dtype {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self):
        """Keep .grad on this non-leaf tensor after backward (leaves always keep it)."""
        if self.is_leaf:
            return
        self._retains_grad = True

    def register_hook(self, hook):
        """Call hook(grad) when this tensor's gradient is computed; a returned tensor replaces it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return autograd.RemovableHandle(self._hooks, hook)

    def backward(self, gradient=None, retain_graph=False, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's .grad. See minidl.autograd.backward."""
        autograd.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    # --------------------------------------------------------------- in place
    def _check_inplace(self, op):
        if self.requires_grad and autograd.is_grad_enabled():
            raise RuntimeError(
                f"{op}: in-place change of a tensor that requires grad while recording; "
                "wrap it in `with minidl.no_grad():` or use the out-of-place op"
            )

    def _bump_version(self):
        self._version[0] += 1

    def zero_(self):
        self._check_inplace("zero_")
        self.data[...] = 0
        self._bump_version()
        return self

    def fill_(self, value):
        self._check_inplace("fill_")
        self.data[...] = value
        self._bump_version()
        return self

    def copy_(self, source):
        self._check_inplace("copy_")
        source = source.data if isinstance(source, Tensor) else np.asarray(source)
        try:
            np.copyto(self.data, np.broadcast_to(source, self.data.shape), casting="same_kind")
        except ValueError:
            raise ValueError(f"copy_: cannot copy shape {np.shape(source)} into shape {self.shape}") from None
        self._bump_version()
        return self

    def add_(self, other, alpha=1):
        self._check_inplace("add_")
        other = other.data if isinstance(other, Tensor) else other
        self.data += alpha * other if alpha != 1 else other
        self._bump_version()
        return self

    def sub_(self, other, alpha=1):
        return self.add_(other, alpha=-alpha)

    def mul_(self, other):
        self._check_inplace("mul_")
        self.data *= other.data if isinstance(other, Tensor) else other
        self._bump_version()
        return self

    def __setitem__(self, index, value):
        self._check_inplace("__setitem__")
        self.data[_ops.to_index(index)] = value.data if isinstance(value, Tensor) else value
        self._bump_version()

    # ------------------------------------------------------------- operators
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __pow__(self, exponent):
        return _ops.pow(self, exponent)

    def __rpow__(self, base):
        return _ops.pow(base, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __abs__(self):
        return _ops.abs(self)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    # Comparisons return boolean tensors that never carry gradient.
    def __gt__(self, other):
        return _ops.greater(self, other)

    def __ge__(self, other):
        return _ops.greater_equal(self, other)

    def __lt__(self, other):
        return _ops.less(self, other)

    def __le__(self, other):
        return _ops.less_equal(self, other)

    def __eq__(self, other):
        return _ops.equal(self, other)

    def __ne__(self, other):
        return _ops.not_equal(self, other)

    # --------------------------------------------------------------- methods
    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def abs(self):
        return _ops.abs(self)

    def sin(self):
        return _ops.sin(self)

    def cos(self):
        return _ops.cos(self)

    def tanh(self):
        return _ops.tanh(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def relu(self):
        return _ops.relu(self)

    def leaky_relu(self, negative_slope=0.01):
        return _ops.leaky_relu(self, negative_slope)

    def pow(self, exponent):
        return _ops.pow(self, exponent)

    def maximum(self, other):
        return _ops.maximum(self, other)

    def minimum(self, other):
        return _ops.minimum(self, other)

    def clip(self, min=None, max=None):  # noqa: A002 - PyTorch's argument names
        return _ops.clip(self, min, max)

    clamp = clip

    def matmul(self, other):
        return _ops.matmul(self, other)

    def sum(self, axis=None, keepdims=False):
        return _ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return _ops.min(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, unbiased=False):
        return _ops.var(self, axis, keepdims, unbiased)

    def argmax(self, axis=None):
        return _ops.argmax(self, axis)

    def argmin(self, axis=None):
        return _ops.argmin(self, axis)

    def any(self):
        return bool(self.data.any())

    def all(self):
        return bool(self.data.all())

    def logsumexp(self, axis=None, keepdims=False):
        return _ops.logsumexp(self, axis, keepdims)

    def softmax(self, axis=-1):
        return _ops.softmax(self, axis)

    def log_softmax(self, axis=-1):
        return _ops.log_softmax(self, axis)

    def reshape(self, *shape):
        return _ops.reshape(self, *shape)

    view = reshape

    def transpose(self, *axes):
        return _ops.transpose(self, *axes)

    def permute(self, *axes):
        return _ops.permute(self, *axes)

    def expand(self, *shape):
        return _ops.expand(self, *shape)

    def broadcast_to(self, *shape):
        return _ops.expand(self, *shape)

    def squeeze(self, axis=None):
        return _ops.squeeze(self, axis)

    def unsqueeze(self, axis):
        return _ops.unsqueeze(self, axis)

    def contiguous(self):
        return _ops.contiguous(self)

    def flatten(self, start_axis=0, end_axis=-1):
        return _ops.flatten(self, start_axis, end_axis)

    def split(self, split_size_or_sections, axis=0):
        return _ops.split(self, split_size_or_sections, axis)


# Imported last: autograd and the ops import Tensor from this module.
from minidl import autograd  # noqa: E402
from minidl import ops as _ops  # noqa: E402
