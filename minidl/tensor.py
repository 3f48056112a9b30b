"""The Tensor: a NumPy array plus what reverse-mode autodiff needs to know about it.

A Tensor made by an op remembers that op in `grad_fn`; following `grad_fn.inputs`
back from a result walks the computation graph that `backward()` differentiates.
Arithmetic and methods here are thin: each calls one op in `minidl/ops/`, with
PyTorch's names and arguments (`dim=`, `keepdim=`; NumPy's `axis=`/`keepdims=` work too).
"""

import numpy as np

from minidl.backend.device import CPU, device

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

DEFAULT_FLOAT = float32


def _to_array(data, dtype=None, copy=False):
    """Convert user data to an ndarray with PyTorch's defaults: float32 for Python floats."""
    if isinstance(data, Tensor):
        data = data.array if data.device is CPU else data._host_copy()
    if isinstance(data, np.ndarray):
        array = data.astype(dtype, copy=False) if dtype is not None else data
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

    array          the array holding the values: a NumPy array on the cpu (`.numpy()` returns it too),
                   a DeviceArray on "cuda" (read it back with `.cpu()`)
    grad           the gradient accumulated by backward() (a Tensor), or None
    requires_grad  whether ops on this tensor are recorded for differentiation
    grad_fn        the op (a Function) that produced this tensor; None for leaves
    device         where the array lives (minidl.device("cpu") or minidl.device("cuda:0"))

    Called directly, Tensor(data) makes a floating point tensor, as torch.Tensor does:
    float32 from numbers, lists and integer arrays (a float64 array keeps its precision),
    and Tensor(2, 3) an uninitialized 2x3 one. minidl.tensor(data) keeps integers integer
    (use it, as in PyTorch).
    """

    __slots__ = (
        "array",
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

    def __init__(self, *data, requires_grad=False, dtype=None, device=None, name=None):
        if len(data) == 1 and not _is_size(data[0]):
            array = _to_array(data[0], dtype if dtype is not None else _float_dtype(data[0]))
        elif all(_is_size(n) for n in data):  # Tensor(2, 3): the shape, like torch.Tensor(2, 3)
            array = np.empty(tuple(int(n) for n in data) or (0,), dtype=DEFAULT_FLOAT if dtype is None else dtype)
        else:
            raise TypeError(
                f"Tensor: expected data (a number, nested lists, an ndarray) or sizes (Tensor(2, 3)), got {data!r}; "
                "pass requires_grad and dtype by keyword"
            )
        self._init(array, requires_grad, _device(device, "Tensor"), name)

    def _init(self, array, requires_grad, where, name):
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating point tensors can require grad, got dtype {array.dtype}")
        if where is not CPU and isinstance(array, np.ndarray):  # made on the host, copied to the device once
            array = _backend.active_kernels[where].from_numpy(array)
        self.array = array
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.grad_fn = None
        self.device = where
        self.name = name
        self._version = [0]  # a box, shared with views, counting in-place changes
        self._hooks = None
        self._retains_grad = False

    @classmethod
    def _make(cls, data, grad_fn=None, version=None, device=CPU):
        """Fast constructor for op results: no conversion, no checks."""
        t = object.__new__(cls)
        t.array = data
        t.grad = None
        t.requires_grad = grad_fn is not None
        t.grad_fn = grad_fn
        t.device = device
        t.name = None
        t._version = version if version is not None else [0]
        t._hooks = None
        t._retains_grad = False
        return t

    @classmethod
    def _wrap(cls, array, requires_grad=False, device=None):
        """A leaf holding `array` as it is (its dtype kept): what the creation functions return."""
        t = object.__new__(cls)
        t._init(array, requires_grad, _device(device, "tensor"), None)
        return t

    # ------------------------------------------------------------------ facts
    @property
    def shape(self):
        return self.array.shape

    @property
    def ndim(self):
        return self.array.ndim

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def is_leaf(self):
        """True for tensors not produced by a recorded op (user data and parameters)."""
        return self.grad_fn is None

    @property
    def is_cuda(self):
        return self.device.type == "cuda"

    @property
    def version(self):
        """How many times this tensor (or a view sharing its memory) was changed in place."""
        return self._version[0]

    @property
    def T(self):
        return self.transpose()

    def size(self, dim=None):
        return self.array.shape if dim is None else self.array.shape[dim]

    def dim(self):
        return self.array.ndim

    def numel(self):
        return self.array.size

    def is_floating_point(self):
        return self.array.dtype.kind == "f"

    def __len__(self):
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        values = self.array if self.device is CPU else self._host_copy()
        body = np.array2string(values, separator=", ", prefix="tensor(", precision=4, threshold=200)
        extras = [] if self.device is CPU else [f"device='{self.device}'"]
        if self.array.dtype != DEFAULT_FLOAT:
            extras.append(f"dtype={self.array.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{type(self.grad_fn).__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    # ------------------------------------------------------------ conversion
    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a Python number, got shape {self.shape}")
        return (self.array if self.device is CPU else self._host_copy()).item()

    def _host_copy(self):
        """The values of a device tensor copied to a NumPy array (what .item(), repr and .cpu() read)."""
        return _backend.active_kernels[self.device].to_numpy(self.array)

    def _refuse_device_numpy(self):
        if self.device is not CPU:
            raise TypeError(
                f"can't convert a {self.device} tensor to NumPy: its memory is on the device. "
                "Use .cpu() to copy it to host memory first (x.cpu().numpy())"
            )

    def numpy(self):
        """The underlying array (shared, not copied), like torch's .numpy() on CPU."""
        self._refuse_device_numpy()
        return self.array

    def __array__(self, dtype=None, copy=None):
        """np.asarray(tensor) gives the values, as for a PyTorch CPU tensor."""
        self._refuse_device_numpy()
        if dtype is not None and dtype != self.array.dtype:
            return self.array.astype(dtype)
        return self.array.copy() if copy else self.array

    def tolist(self):
        return (self.array if self.device is CPU else self._host_copy()).tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.array.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.array.size} elements is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def __index__(self):
        if self.array.dtype.kind not in "iu" or self.array.size != 1:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.item())

    __hash__ = object.__hash__  # == is elementwise, so hash by identity

    def detach(self):
        """A new leaf sharing this tensor's data (and its in-place version counter)."""
        return Tensor._make(self.array, version=self._version, device=self.device)

    @property
    def data(self):
        """PyTorch's `x.data`: a tensor sharing x's memory, outside the graph, whose in-place
        changes autograd does not see (a version counter of its own; detach() shares x's).
        The NumPy array itself is `x.array` (or `x.numpy()`)."""
        return Tensor._make(self.array, device=self.device)

    @data.setter
    def data(self, value):
        """PyTorch's `x.data = y`: x takes y's memory (shape and dtype included), keeping its graph role."""
        if not isinstance(value, Tensor):
            raise TypeError(f"data: expected a Tensor, got {type(value).__name__}")
        self.array = value.array

    def clone(self):
        return _ops.clone(self)

    def astype(self, dtype):
        return _ops.astype(self, dtype)

    def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False):
        """x.to(dtype), x.to(device), x.to(device, dtype), x.to(other_tensor), as in PyTorch.

        Returns x itself when nothing changes (copy=True forces a copy).
        """
        for arg in args:
            if isinstance(arg, Tensor):
                dtype, device = arg.dtype, arg.device
            elif isinstance(arg, str):  # "cpu", "cuda:0", minidl.device(...)
                device = arg
            else:
                dtype = arg
        result = self
        if device is not None:
            where = _device(device, "to")
            if where is not self.device:
                result = _ops.shape.to_device(self, where)  # a copy on the other device, differentiable
        if dtype is not None:
            result = _ops.astype(result, dtype)
        if copy and result is self:
            result = _ops.clone(self)
        return result

    def cpu(self):
        return self.to(CPU)

    def cuda(self, device=None):
        return self.to("cuda" if device is None else device)

    def float(self):
        return _ops.astype(self, float32)

    def double(self):
        return _ops.astype(self, float64)

    def half(self):
        return _ops.astype(self, float16)

    def long(self):
        return _ops.astype(self, int64)

    def int(self):
        return _ops.astype(self, int32)

    def bool(self):
        return _ops.astype(self, bool_)

    # -------------------------------------------------------------- autograd
    def requires_grad_(self, requires_grad=True):
        if not self.is_leaf:
            raise RuntimeError("requires_grad_: can only change requires_grad of leaf tensors; use detach() first")
        if requires_grad and self.array.dtype.kind != "f":
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
    # PyTorch's in-place ops (x.add_(y), x += y, x[i] = v, x.zero_()) change x's own memory:
    # every name and view of x sees the change, and x's version counter moves, so an op that
    # saved x for a backward still to come refuses to run on the new values. minidl does
    # exactly that whenever no gradient is being recorded through the change: under no_grad
    # (parameter updates), and on tensors that are not part of a graph.
    #
    # Recording an in-place change in the graph is different: minidl's graph links each op to
    # the tensor *objects* it used, so an object cannot start standing for a new value without
    # rerouting the gradients of every op that used its old one (`y = h.sum(); h *= 2` would
    # send y's gradient through the `*= 2`, and `h += h * 2` would make a cycle). So:
    #   - a leaf that requires grad cannot be changed while recording (PyTorch's rule too);
    #   - `h += ...` on a tensor in the graph computes h + ... and rebinds the name h to it
    #     (other names for the old h keep the old value: the one difference from PyTorch);
    #   - h.add_(...), h[i] = v and the other named in-place methods raise, since they cannot
    #     rebind a name: write them out of place.
    def _inplace(self, op, function, *args, rebind=False):
        """Apply the in-place op `op`, whose out-of-place result is function(self, *args)."""
        if not autograd.is_grad_enabled() or not (self.requires_grad or _any_requires_grad(args)):
            self._write(op, function(self, *args).array)
            return self
        self._check_recorded_inplace(op, rebind)
        return function(self, *args)  # `h += ...` while recording: the name h is rebound to this

    def _check_recorded_inplace(self, op, rebind):
        """Raise the clear error for an in-place change that would have to be recorded in the graph."""
        if self.requires_grad and self.is_leaf:
            raise RuntimeError(
                f"{op}: a leaf tensor that requires grad is being used in an in-place operation (PyTorch refuses "
                "it too). Change parameters under `with minidl.no_grad():`, as an optimizer step does."
            )
        base = self._view_base()
        if base is not None:
            what = "a leaf tensor that requires grad" if base.is_leaf and base.requires_grad else "a tensor"
            raise RuntimeError(
                f"{op}: this tensor is a view of {what} in the recorded graph, and minidl cannot record an in-place "
                "change of a view; compute the new values out of place (e.g. with minidl.where or minidl.cat)."
            )
        if not rebind:
            raise RuntimeError(
                f"{op}: this in-place change would have to be recorded in the graph (a tensor involved requires "
                "grad), and minidl records only out-of-place ops (see Tensor._inplace): write it out of place "
                "(x = x + y, minidl.where, minidl.cat), or under `with minidl.no_grad():` if no gradient should flow "
                "through it."
            )

    def _view_base(self):
        """The tensor this one is a view of (a reshape, transpose, expand or basic slice made while
        recording, which shares its memory and version counter), or None."""
        fn = self.grad_fn
        if fn is not None and fn.inputs and fn.inputs[0]._version is self._version:
            return fn.inputs[0]
        return None

    def _write(self, op, values):
        """Store an in-place op's result in this tensor's own memory and count the change."""
        if values.shape != self.array.shape:
            raise RuntimeError(
                f"{op}: the result has shape {values.shape} but this tensor has shape {self.shape}; "
                "an in-place op never changes its tensor's shape (only the other operand broadcasts)"
            )
        if self.device is not CPU:
            if not np.can_cast(values.dtype, self.dtype, casting="same_kind"):
                raise TypeError(
                    f"{op}: the result has dtype {values.dtype}, which cannot be stored in place in this "
                    f"{self.dtype} tensor (PyTorch refuses it too); convert first, e.g. x = x.float()"
                )
            _backend.active_kernels[self.device].setitem(self.array, Ellipsis, values)
            self._version[0] += 1
            return
        try:
            np.copyto(self.array, values, casting="same_kind")
        except TypeError:
            raise TypeError(
                f"{op}: the result has dtype {values.dtype}, which cannot be stored in place in this {self.dtype} "
                "tensor (PyTorch refuses it too); convert first, e.g. x = x.float()"
            ) from None
        except ValueError:
            raise RuntimeError(
                f"{op}: this tensor's memory is read-only (an expand() view, whose elements share memory); "
                "clone() it first"
            ) from None
        self._version[0] += 1

    def _set(self, op, index, value):
        """x[index] = value in place (the in-place methods that store values are built on this)."""
        value_needs_grad = isinstance(value, Tensor) and value.requires_grad
        if autograd.is_grad_enabled() and (self.requires_grad or value_needs_grad):
            self._check_recorded_inplace(op, rebind=False)
        if isinstance(value, Tensor) and value.device is not self.device:
            raise RuntimeError(
                f"{op}: the value is on {value.device} but this tensor is on {self.device}; move it with .to() first"
            )
        value = value.array if isinstance(value, Tensor) else value
        if self.device is not CPU:
            k = _backend.active_kernels[self.device]
            if isinstance(value, np.ndarray):
                value = k.from_numpy(value.astype(self.dtype, copy=False))
            k.setitem(self.array, index, value)
            self._version[0] += 1
            return self
        try:
            self.array[index] = value
        except ValueError as e:
            if not self.array.flags.writeable:
                raise RuntimeError(
                    f"{op}: this tensor's memory is read-only (an expand() view); clone() it first"
                ) from None
            raise ValueError(
                f"{op}: cannot store a value of shape {np.shape(value)} at {index!r} of shape {self.shape}: {e}"
            ) from None
        self._version[0] += 1
        return self

    def _bump_version(self):
        self._version[0] += 1

    def zero_(self):
        return self._set("zero_", Ellipsis, 0)

    def fill_(self, value):
        return self._set("fill_", Ellipsis, value)

    def copy_(self, source):
        """Copy source's values into this tensor (broadcast to its shape, converted to its dtype)."""
        if isinstance(source, Tensor) and source.device is not self.device:
            with autograd.no_grad():
                source = source.to(self.device)  # copy_ copies across devices, as in PyTorch
        value = source.array if isinstance(source, Tensor) else np.asarray(source)
        try:
            if np.broadcast_shapes(value.shape, self.shape) != self.shape:
                raise ValueError
        except ValueError:
            raise ValueError(f"copy_: cannot copy shape {value.shape} into shape {self.shape}") from None
        return self._set("copy_", Ellipsis, source if isinstance(source, Tensor) else value)

    def uniform_(self, a=0.0, b=1.0):
        values = _random.generator().uniform(a, b, self.shape)
        return self._set("uniform_", Ellipsis, values)

    def normal_(self, mean=0.0, std=1.0):
        values = _random.generator().normal(mean, std, self.shape)
        return self._set("normal_", Ellipsis, values)

    def __setitem__(self, index, value):
        self._set("__setitem__", _ops.to_index(index), value)

    def add_(self, other, alpha=1):
        return self._inplace("add_", _ops.add, other, alpha)

    def sub_(self, other, alpha=1):
        return self._inplace("sub_", _ops.sub, other, alpha)

    def mul_(self, other):
        return self._inplace("mul_", _ops.mul, other)

    def div_(self, other):
        return self._inplace("div_", _ops.div, other)

    def pow_(self, exponent):
        return self._inplace("pow_", _ops.pow, exponent)

    def clamp_(self, min=None, max=None):  # noqa: A002 - PyTorch's argument names
        return self._inplace("clamp_", _ops.clamp, min, max)

    clip_ = clamp_

    def masked_fill_(self, mask, value):
        return self._inplace("masked_fill_", _ops.masked_fill, mask, value)

    # `x += y` is x.__iadd__(y); Python then binds the name x to what it returns.
    def __iadd__(self, other):
        return self._inplace("+=", _ops.add, other, rebind=True)

    def __isub__(self, other):
        return self._inplace("-=", _ops.sub, other, rebind=True)

    def __imul__(self, other):
        return self._inplace("*=", _ops.mul, other, rebind=True)

    def __itruediv__(self, other):
        return self._inplace("/=", _ops.div, other, rebind=True)

    def __ipow__(self, exponent):
        return self._inplace("**=", _ops.pow, exponent, rebind=True)

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
        return _ops.gt(self, other)

    def __ge__(self, other):
        return _ops.ge(self, other)

    def __lt__(self, other):
        return _ops.lt(self, other)

    def __le__(self, other):
        return _ops.le(self, other)

    def __eq__(self, other):
        return _ops.eq(self, other)

    def __ne__(self, other):
        return _ops.ne(self, other)

    def __and__(self, other):
        return _ops.bitwise_and(self, other)

    def __or__(self, other):
        return _ops.bitwise_or(self, other)

    def __invert__(self):
        return _ops.bitwise_not(self)

    # --------------------------------------------------------------- methods
    def add(self, other, alpha=1):
        return _ops.add(self, other, alpha)

    def sub(self, other, alpha=1):
        return _ops.sub(self, other, alpha)

    def mul(self, other):
        return _ops.mul(self, other)

    def div(self, other):
        return _ops.div(self, other)

    def neg(self):
        return _ops.neg(self)

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

    def clamp(self, min=None, max=None):  # noqa: A002 - PyTorch's argument names
        return _ops.clamp(self, min, max)

    clip = clamp

    def masked_fill(self, mask, value):
        return _ops.masked_fill(self, mask, value)

    def where(self, condition, other):
        return _ops.where(condition, self, other)

    def matmul(self, other):
        return _ops.matmul(self, other)

    def mm(self, other):
        return _ops.mm(self, other)

    def eq(self, other):
        return _ops.eq(self, other)

    def ne(self, other):
        return _ops.ne(self, other)

    def isnan(self):
        return _ops.isnan(self)

    def isinf(self):
        return _ops.isinf(self)

    def isfinite(self):
        return _ops.isfinite(self)

    def gt(self, other):
        return _ops.gt(self, other)

    def ge(self, other):
        return _ops.ge(self, other)

    def lt(self, other):
        return _ops.lt(self, other)

    def le(self, other):
        return _ops.le(self, other)

    def equal(self, other):
        return _ops.equal(self, other)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return _ops.allclose(self, other, rtol, atol, equal_nan)

    # Reductions: dim and keepdim as in PyTorch; axis= and keepdims= are accepted too.
    def sum(self, dim=None, keepdim=False, **aliases):
        return _ops.sum(self, dim, keepdim, **aliases)

    def mean(self, dim=None, keepdim=False, **aliases):
        return _ops.mean(self, dim, keepdim, **aliases)

    def max(self, dim=None, keepdim=False, **aliases):
        return _ops.max(self, dim, keepdim, **aliases)

    def min(self, dim=None, keepdim=False, **aliases):
        return _ops.min(self, dim, keepdim, **aliases)

    def amax(self, dim=None, keepdim=False, **aliases):
        return _ops.amax(self, dim, keepdim, **aliases)

    def amin(self, dim=None, keepdim=False, **aliases):
        return _ops.amin(self, dim, keepdim, **aliases)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, **aliases):
        return _ops.var(self, dim, unbiased, keepdim, correction=correction, **aliases)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, **aliases):
        return _ops.std(self, dim, unbiased, keepdim, correction=correction, **aliases)

    def norm(self, p="fro", dim=None, keepdim=False, **aliases):
        return _ops.norm(self, p, dim, keepdim, **aliases)

    def argmax(self, dim=None, keepdim=False, **aliases):
        return _ops.argmax(self, dim, keepdim, **aliases)

    def argmin(self, dim=None, keepdim=False, **aliases):
        return _ops.argmin(self, dim, keepdim, **aliases)

    def all(self, dim=None, keepdim=False, **aliases):
        return _ops.all(self, dim, keepdim, **aliases)

    def any(self, dim=None, keepdim=False, **aliases):
        return _ops.any(self, dim, keepdim, **aliases)

    def sort(self, dim=None, descending=False, stable=False, **aliases):
        return _ops.sort(self, dim, descending, stable, **aliases)

    def argsort(self, dim=None, descending=False, stable=False, **aliases):
        return _ops.argsort(self, dim, descending, stable, **aliases)

    def topk(self, k, dim=None, largest=True, sorted=True, **aliases):  # noqa: A002 - PyTorch's argument name
        return _ops.topk(self, k, dim, largest, sorted, **aliases)

    def logsumexp(self, dim=None, keepdim=False, **aliases):
        return _ops.logsumexp(self, dim, keepdim, **aliases)

    def softmax(self, dim=None, **aliases):
        return _ops.softmax(self, dim, **aliases)

    def log_softmax(self, dim=None, **aliases):
        return _ops.log_softmax(self, dim, **aliases)

    # Shapes
    def reshape(self, *shape):
        return _ops.reshape(self, *shape)

    view = reshape

    def view_as(self, other):
        return _ops.reshape(self, other.shape)

    reshape_as = view_as

    def transpose(self, *dims):
        return _ops.transpose(self, *dims)

    def t(self):
        return _ops.t(self)

    def permute(self, *dims):
        return _ops.permute(self, *dims)

    def expand(self, *shape):
        return _ops.expand(self, *shape)

    def expand_as(self, other):
        return _ops.expand(self, other.shape)

    def broadcast_to(self, *shape):
        return _ops.expand(self, *shape)

    def squeeze(self, dim=None, **aliases):
        return _ops.squeeze(self, dim, **aliases)

    def unsqueeze(self, dim=None, **aliases):
        return _ops.unsqueeze(self, dim, **aliases)

    def contiguous(self):
        return _ops.contiguous(self)

    def flatten(self, start_dim=0, end_dim=-1, **aliases):
        return _ops.flatten(self, start_dim, end_dim, **aliases)

    def split(self, split_size_or_sections, dim=None, **aliases):
        return _ops.split(self, split_size_or_sections, dim, **aliases)

    def chunk(self, chunks, dim=None, **aliases):
        return _ops.chunk(self, chunks, dim, **aliases)


def _float_dtype(data):
    """The dtype Tensor(data) gives without dtype=: always floating point, as torch.Tensor. Python numbers
    and integer or bool arrays become float32; a float64 (or float16) array keeps its precision."""
    dtype = getattr(data, "dtype", None)
    return dtype if dtype is not None and dtype.kind == "f" else DEFAULT_FLOAT


def _is_size(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _any_requires_grad(args):
    return any(isinstance(a, Tensor) and a.requires_grad for a in args)


def _device(where, op):
    """The device a tensor is made on or moved to: cpu by default; an unavailable one is an error.

    "cuda" is the first GPU, "cuda:0", as in PyTorch; asking for it the first time loads the CUDA
    build (the emulator when there is no GPU, which says so once).
    """
    if where is None:
        return CPU
    where = device(where)
    if where is CPU:
        return where
    if where.type == "cuda":
        if where.index not in (None, 0):
            raise RuntimeError(f"{op}: device {str(where)!r} is not available; minidl drives one GPU, 'cuda:0'")
        where = _backend.CUDA
        if where not in _backend.active_kernels:
            reason = _backend.enable_cuda()
            if reason is not None:
                raise RuntimeError(f"{op}: device 'cuda' is not available: {reason}; use 'cpu'")
    if where not in _backend.active_kernels:
        raise RuntimeError(f"{op}: device {str(where)!r} is not available; use 'cpu'")
    return where


# Imported last: autograd and the ops import Tensor from this module.
from minidl import autograd  # noqa: E402
from minidl import backend as _backend  # noqa: E402
from minidl import ops as _ops  # noqa: E402
from minidl import random as _random  # noqa: E402
