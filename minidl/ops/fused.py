"""Fused ops: a layer and the activation after it as ONE graph node.

Unfused, y = relu(x @ W.T + b) is two nodes (Linear, ReLU) and two passes over the
output. Fused, the kernels can apply the bias and activation while each tile of the
product is still in cache, and backward needs only the output y:

    y = act(z),  z = x Wᵀ + b   (or z = conv(x, W) + b)
    dz = dy * act'(z), written with y:  relu' = [y > 0],  sigmoid' = y (1 - y),  tanh' = 1 - y²
    then dx, dW, db exactly as for the layer alone

These are what `minidl.nn.fuse(model)` puts in a model; nothing fuses behind your back,
so a model you did not fuse shows Linear, then ReLU, in every tool. Fused and unfused
compute the same function, and both are differentiable any number of times.
"""

from minidl.autograd import Function
from minidl.ops.linalg import check_linear_args, linear_gradients
from minidl.ops.nn import conv2d_geometry, conv2d_gradients

ACTIVATIONS = ("relu", "sigmoid", "tanh")
_DISPLAY = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh"}  # LinearReLU, Conv2dTanh, ...


def _check_activation(op, activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"{op}: activation must be one of {ACTIVATIONS}, got {activation!r}")


class ActBackward(Function):
    """dz = dy * act'(y) for y = act(z), from the activation's output y.

    Differentiated again: d/d(dy) = act'(y) (the same mask or slope), and through y,
    d/dy = dy · act''  with  relu'' = 0,  sigmoid'' (in y) = 1 - 2y,  tanh'' (in y) = -2y.
    """

    def forward(self, grad, y, activation):
        self.activation = activation
        return self.kernels.act_backward(grad, y, activation)

    def backward(self, ddz):
        grad, y = self.saved_tensors
        d_grad = ActBackward.apply(ddz, y, activation=self.activation) if self.needs_input_grad[0] else None
        d_y = None
        if self.needs_input_grad[1] and self.activation != "relu":
            slope = 1 - 2 * y if self.activation == "sigmoid" else -2 * y
            d_y = ddz * grad * slope
        return d_grad, d_y


def act_backward(grad, y, activation):
    """grad * act'(y) for the output y of an activation ("relu", "sigmoid" or "tanh"), as one op."""
    _check_activation("act_backward", activation)
    return ActBackward.apply(grad, y, activation=activation)


class LinearAct(Function):
    """y = act(x Wᵀ + b) for x (N, in), W (out, in), b (out,) or absent;
    dz = ActBackward(dy, y),  dx = dz W,  dW = dzᵀ x,  db = Σ_n dz"""

    def forward(self, x, weight, bias=None, activation=None):
        self.activation = activation
        return self.kernels.linear(x, weight, bias, activation)

    @property
    def name(self):
        return "Linear" + _DISPLAY[self.activation]

    def backward(self, grad):
        x, weight = self.saved_tensors[:2]
        dz = ActBackward.apply(grad, self.output, activation=self.activation)
        return linear_gradients(self, dz, x, weight)


def linear_act(x, weight, bias=None, activation="relu"):
    """act(x @ weight.T + bias) as one fused op; activation is "relu", "sigmoid" or "tanh".

    Same arguments and checks as minidl.linear, plus the activation. x may have extra
    leading axes (..., in), as nn.Linear allows.
    """
    _check_activation("linear_act", activation)
    if x.ndim > 2 and weight.ndim == 2:
        lead = x.shape[:-1]
        return linear_act(x.reshape(-1, x.shape[-1]), weight, bias, activation).reshape(*lead, weight.shape[0])
    check_linear_args("linear_act", x, weight, bias)
    args = (x, weight) if bias is None else (x, weight, bias)
    return LinearAct.apply(*args, activation=activation)


class Conv2dAct(Function):
    """y = act(conv(x, W) + b), NCHW;   dz = ActBackward(dy, y), then conv2d's three gradients."""

    def forward(self, x, weight, bias=None, geometry=None, activation=None):
        self.geometry, self.activation = geometry, activation
        return self.kernels.conv2d_forward(x, weight, bias, *geometry, activation=activation)

    @property
    def name(self):
        return "Conv2d" + _DISPLAY[self.activation]

    def backward(self, grad):
        x, weight = self.saved_tensors[:2]
        dz = ActBackward.apply(grad, self.output, activation=self.activation)
        return conv2d_gradients(self, dz, x, weight)


def conv2d_act(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, activation="relu"):
    """act(conv2d(x, weight, bias, ...)) as one fused op; same arguments as minidl.conv2d plus the activation."""
    _check_activation("conv2d_act", activation)
    geometry = conv2d_geometry("conv2d_act", x, weight, bias, stride, padding, dilation, groups)
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv2dAct.apply(*args, geometry=geometry, activation=activation)


__all__ = ["linear_act", "conv2d_act", "act_backward"]
