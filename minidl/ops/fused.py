"""Fused ops: a linear layer and its activation as ONE graph node, and bias + activation.

Unfused, y = relu(x @ W.T + b) is three nodes and three passes over the (N, out) output
(the GEMM, the bias add, the relu) plus two saved intermediates. Fused, the kernels add
the bias and apply the activation while each tile of the product is still in cache
(the C kernels do it in the GEMM's epilogue), and backward needs only the output:

    y = act(z),  z = x Wᵀ + b
    dz = dy * act'(z)  written with y:  relu' = [y > 0],  sigmoid' = y (1 - y),  tanh' = 1 - y²
    dx = dz W,   dW = dzᵀ x,   db = sum of dz over the batch

LinearAct's backward works on raw arrays through the kernels (one fused pass for dz and
db) in a plain backward(); under create_graph=True it builds the same formulas from
differentiable ops instead, so it can be differentiated again (nn.Sequential fuses
Linear + activation pairs, and a gradient penalty must still work through them).
BiasAct's backward is raw arrays only: no double backward.
"""

from minidl.autograd import Function, is_grad_enabled
from minidl.ops._util import pair
from minidl.ops.linalg import check_linear_args, linear_gradients

ACTIVATIONS = (None, "relu", "sigmoid", "tanh")


def _check_activation(op, activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"{op}: activation must be one of {ACTIVATIONS}, got {activation!r}")


class LinearAct(Function):
    """y = act(x Wᵀ + b) for x (N, in), W (out, in), b (out,) or absent.

    dz = dy * act'(y);  dx = dz W,  dW = dzᵀ x,  db = Σ_n dz
    """

    def forward(self, x, weight, bias=None, activation=None):
        self.activation = activation
        return self.kernels.linear_act(x, weight, bias, activation)

    def backward(self, grad):
        x, weight = self.saved_tensors[:2]
        if is_grad_enabled():  # create_graph=True: record the backward so it can be differentiated
            return linear_gradients(self, self._dz(grad), x, weight)
        dz, db = self.kernels.bias_act_backward(grad.data, self.output.data, self.activation)  # one pass
        return linear_gradients(self, dz, x.data, weight.data, db)

    def _dz(self, grad):
        """dz = dy * act'(y) from Tensor ops; y = self.output stays attached to this node."""
        y = self.output
        if self.activation == "relu":
            return grad * (y > 0)
        if self.activation == "sigmoid":
            return grad * y * (1 - y)
        if self.activation == "tanh":
            return grad * (1 - y * y)
        return grad


class BiasAct(Function):
    """y = act(x + b), b broadcast over the leading axes of x (b of shape x.shape[-1:]).

    dz = dy * act'(y);  dx = dz,  db = dz summed over all but the last axis
    """

    supports_double_backward = False

    def forward(self, x, bias, activation=None):
        self.activation = activation
        return self.kernels.bias_act_forward(x, bias, activation)

    def backward(self, grad):
        # Only the output is needed (act' is written with y); self.output checks it was not changed in place.
        dz, db = self.kernels.bias_act_backward(grad.data, self.output.data, self.activation)
        return dz if self.needs_input_grad[0] else None, db if self.needs_input_grad[1] else None


def linear_act(x, weight, bias=None, activation="relu"):
    """act(x @ weight.T + bias) as one fused op; activation is None, "relu", "sigmoid" or "tanh".

    Same arguments and checks as minidl.linear, plus the activation. x may have extra
    leading axes (..., in), as nn.Linear allows.
    """
    _check_activation("linear_act", activation)
    if x.ndim > 2 and weight.ndim == 2:
        lead = x.shape[:-1]
        return linear_act(x.reshape(-1, x.shape[-1]), weight, bias, activation).reshape(*lead, weight.shape[0])
    check_linear_args("linear_act", x, weight, bias)
    if bias is None:
        return LinearAct.apply(x, weight, activation=activation)
    return LinearAct.apply(x, weight, bias, activation=activation)


def bias_act(x, bias, activation="relu"):
    """act(x + bias) as one fused op, bias of shape x.shape[-1:] (e.g. after a convolution's GEMM)."""
    _check_activation("bias_act", activation)
    x, bias = pair(x, bias)
    if x.ndim < 1 or bias.shape != x.shape[-1:]:
        raise ValueError(f"bias_act: bias of shape {bias.shape} does not match the last axis of input {x.shape}")
    return BiasAct.apply(x, bias, activation=activation)


__all__ = ["linear_act", "bias_act", "LinearAct", "BiasAct"]
