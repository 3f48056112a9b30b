"""The kernel contract: which array primitives a kernel set must provide, and which it may.

A kernel set (numpy, c, cuda) is a namespace of functions on its own arrays. The ops
in minidl/ops/ call nothing else, so a new device is a new kernel set and nothing above
the seam changes. The contract has two parts:

- REQUIRED, the core: what every op can be built from (elementwise with broadcasting,
  reductions, matmul, layout copies, gather/scatter, what convolution and pooling need,
  memory). A kernel set without one of these is refused with an error naming it.
- OPTIONAL, the extras: fused or specialised primitives that pay off (softmax, a linear
  layer with its bias and activation, convolution, cross-entropy, optimizer updates,
  16-bit conversion, aligned parameter memory). A kernel set that lacks one gets the
  version in `composed.py`, written with that set's own core primitives.

The NumPy set (numpy_kernels.py) provides exactly the core, so the readable definition
of every extra is its composed version; tests/test_kernel_contract.py runs any kernel
set against them.
"""

import functools

from minidl.backend import composed

# name -> what it computes (NumPy semantics unless said otherwise). Arrays are the kernel
# set's own (NumPy arrays for the cpu sets); shapes, axes and dtypes are plain Python/NumPy.
REQUIRED = {
    # elementwise, broadcasting like NumPy
    "add": "a + b",
    "sub": "a - b",
    "mul": "a * b",
    "div": "a / b (true division)",
    "neg": "-x",
    "power": "a ** b",
    "maximum": "elementwise max(a, b)",
    "minimum": "elementwise min(a, b)",
    "exp": "e^x",
    "log": "ln x",
    "sqrt": "square root",
    "abs": "|x|",
    "sign": "-1, 0 or 1",
    "sin": "sine",
    "cos": "cosine",
    "tanh": "hyperbolic tangent",
    "greater": "a > b (bool)",
    "greater_equal": "a >= b (bool)",
    "less": "a < b (bool)",
    "less_equal": "a <= b (bool)",
    "equal": "a == b (bool)",
    "not_equal": "a != b (bool)",
    "where": "where(cond, a, b)",
    "clip": "clip(x, low, high); either bound may be None",
    "astype": "astype(x, dtype): a copy converted to dtype",
    # reductions
    "sum": "sum(x, axis=None, keepdims=False)",
    "max": "max(x, axis=None, keepdims=False)",
    "min": "min(x, axis=None, keepdims=False)",
    "argmax": "argmax(x, axis=None): int64 indices",
    # linear algebra
    "matmul": "matmul(a, b) with NumPy's rules (vectors, matrices, broadcast batches)",
    # layout and memory
    "reshape": "reshape(x, shape): a view when the layout allows",
    "transpose": "transpose(x, axes): a view",
    "broadcast_to": "broadcast_to(x, shape): a read-only view",
    "ascontiguousarray": "a C-contiguous copy (or x itself if it already is)",
    "concatenate": "concatenate(arrays, axis)",
    "stack": "stack(arrays, axis)",
    "pad": "pad(x, widths, constant_values=0)",
    "getitem": "getitem(x, index): x[index], basic and integer-array indexing (gather)",
    "setitem": "setitem(x, index, value): x[index] = value, in place",
    "scatter_add": "scatter_add(shape, index, values, dtype): zeros(shape) with values added at [index]",
    "zeros": "zeros(shape, dtype)",
    "ones": "ones(shape, dtype)",
    "full": "full(shape, value, dtype)",
    "empty": "empty(shape, dtype)",
    "arange": "arange(start, stop, step, dtype)",
    "eye": "eye(n, dtype)",
    "to_numpy": "the values as a NumPy array on the host (the array itself on cpu)",
    "from_numpy": "a kernel-set array holding a NumPy array's values (the array itself on cpu)",
    # what convolution and pooling need (NCHW; kernel, stride, padding, dilation are (h, w) pairs)
    "im2col": "im2col(x, kernel, stride, padding, dilation) -> (N*OH*OW, C*kh*kw) patch rows",
    "col2im": "col2im(cols, x_shape, kernel, stride, padding, dilation): the adjoint of im2col",
    "max_pool2d_forward": "max_pool2d_forward(x, kernel, stride, padding) -> (out, argmax within each window)",
    "max_pool2d_backward": "max_pool2d_backward(grad, argmax, x_shape, kernel, stride, padding): route to winners",
    "max_pool2d_select": "max_pool2d_select(x, argmax, kernel, stride, padding): x at each window's winner",
    "avg_pool2d_forward": "avg_pool2d_forward(x, kernel, stride, padding): window means (zero padding counts)",
    "avg_pool2d_backward": "avg_pool2d_backward(grad, x_shape, kernel, stride, padding): the adjoint",
}

OPTIONAL = {
    "sigmoid": "1 / (1 + e^-x), computed without overflow",
    "relu": "max(x, 0)",
    "leaky_relu": "leaky_relu(x, slope): x if x > 0 else slope * x",
    "erf": "the error function 2/sqrt(pi) * integral_0^x e^(-t^2) dt (GELU's Gaussian CDF)",
    "softmax": "softmax(x, axis=-1)",
    "log_softmax": "log_softmax(x, axis=-1)",
    "linear": "linear(x, weight, bias=None, activation=None): act(x @ weight.T + bias)",
    "act_backward": "act_backward(grad, y, activation): grad * act'(y), from the activation's output y",
    "conv2d_forward": "conv2d_forward(x, weight, bias, stride, padding, dilation, groups, activation) -> NCHW",
    "conv2d_backward_input": "conv2d_backward_input(grad, weight, x_shape, stride, padding, dilation, groups)",
    "conv2d_backward_weight": "conv2d_backward_weight(x, grad, weight_shape, stride, padding, dilation, groups)",
    "cross_entropy_forward": "cross_entropy_forward(logits, targets) -> (per-row losses, softmax probabilities)",
    "cross_entropy_backward": "cross_entropy_backward(probs, targets, grad_losses) -> dlogits",
    "class_targets": (
        "class_targets(targets, ignore_index, classes) -> (int64 targets with the ignore_index rows set to 0, "
        "bool mask of the rows that count or None when all do, how many count); IndexError naming the first "
        "other target outside [0, classes)"
    ),
    "nll_loss_forward": "nll_loss_forward(log_probs, targets) -> per-row losses -log_probs[i, targets[i]]",
    "nll_loss_backward": (
        "nll_loss_backward(grad_losses, targets, classes) -> -grad_losses[i] at [i, targets[i]], 0 elsewhere"
    ),
    "sgd_update": "SGD with momentum, in place (see optim/updates.py)",
    "adagrad_update": "AdaGrad, in place",
    "rmsprop_update": "RMSProp, in place",
    "adam_update": "Adam, in place",
    "float32_to_float16": "IEEE half precision, round to nearest even",
    "float16_to_float32": "back to float32 (exact)",
    "float32_to_truncated16": "the top 16 bits of each float32, as uint16",
    "truncated16_to_float32": "uint16 top halves back to float32 (low bits zero)",
    "parameter_storage": "parameter_storage(shape, dtype): new uninitialized C-contiguous memory for a Parameter",
}


class KernelContractError(TypeError):
    """A kernel set is missing part of the required core."""


class KernelSet:
    """One kernel set's primitives as attributes, with every optional extra filled in.

    name      "numpy", "c", ...
    module    the namespace the kernel set was built from (for its own extras, e.g. simd_path)
    native    the optional extras the set provides itself; the others are composed from its core
    """

    def __init__(self, name, namespace):
        missing = [p for p in REQUIRED if not callable(getattr(namespace, p, None))]
        if missing:
            described = "; ".join(f"{p} ({REQUIRED[p]})" for p in missing)
            raise KernelContractError(
                f"kernel set {name!r} does not provide the required primitive(s) {', '.join(missing)}: {described}. "
                "See minidl/backend/contract.py for the contract."
            )
        self.name = name
        self.module = namespace
        self.native = set()
        for primitive in REQUIRED:
            setattr(self, primitive, getattr(namespace, primitive))
        for primitive in OPTIONAL:
            own = getattr(namespace, primitive, None)
            if callable(own):
                self.native.add(primitive)
                setattr(self, primitive, own)
            else:  # the composed version, running on this set's own core
                fallback = getattr(composed, primitive)
                setattr(self, primitive, functools.update_wrapper(functools.partial(fallback, self), fallback))

    def __repr__(self):
        return f"<kernel set {self.name!r}: {len(self.native)} of {len(OPTIONAL)} extras native>"
