"""minidl.autograd.functional: derivatives of whole functions, as torch.autograd.functional.

Built on minidl.grad and nothing else. Every op's backward is written with Tensor ops, so a gradient
computed with create_graph=True can be differentiated again; these functions are that idea put to
work (the lecture's "second order (quasi-Newton) methods" need Hessian-vector products):

    vjp(f, x, v)      vᵀ J                one backward pass
    jvp(f, x, v)      J v                 two backward passes ("double-backward trick": vᵀJ is
                                          linear in v, so its gradient w.r.t. v, applied to u, is J u)
    hvp(f, x, v)      H v                 the gradient of (∇f · v): two backward passes, never forming H
    vhp(f, x, v)      vᵀ H                = H v for the symmetric Hessians of smooth f
    jacobian(f, x)    J                   one vjp per output element (small problems)
    hessian(f, x)     H                   the jacobian of the gradient (small problems)

`x` is a Tensor or a tuple of Tensors (the results mirror that); f returns a Tensor (a tuple for
vjp, jvp and jacobian too). Inputs are used as new leaves, so nothing is written to their .grad.
create_graph=True keeps the results differentiable (and connected to the inputs' own graph).
"""

import numpy as np

from minidl import autograd, ops
from minidl.tensor import Tensor


def _as_tuple(value, what, fn):
    is_tuple = isinstance(value, (tuple, list))
    items = tuple(value) if is_tuple else (value,)
    for i, item in enumerate(items):
        if not isinstance(item, Tensor):
            raise TypeError(f"{fn}: {what} {i} must be a Tensor, got {type(item).__name__}")
    return is_tuple, items


def _leaves(inputs, create_graph, fn):
    """Fresh tensors to differentiate with respect to: detached leaves, or (with create_graph, for
    inputs that are part of a graph) a copy through an op, so the results stay connected to it."""
    result = []
    for i, x in enumerate(inputs):
        if x.dtype.kind != "f":
            raise TypeError(f"{fn}: input {i} must be a floating point tensor, got dtype {x.dtype}")
        if create_graph and x.requires_grad:
            result.append(ops.clone(x))
        else:
            result.append(x.detach().requires_grad_())
    return tuple(result)


def _call(func, inputs, fn):
    with autograd.enable_grad():
        outputs = func(*inputs)
    is_tuple, outputs = _as_tuple(outputs, "output", fn)
    return is_tuple, outputs


def _directions(v, like, what, fn):
    """v checked against the tensors it multiplies (same count and shapes); None for a single scalar."""
    if v is None:
        if len(like) == 1 and like[0].array.size == 1:
            return (Tensor(np.ones(like[0].shape, dtype=like[0].dtype)),)
        raise ValueError(f"{fn}: v can be omitted only when the {what} is a single one-element tensor")
    _, v = _as_tuple(v, "v", fn)
    if len(v) != len(like) or any(a.shape != b.shape for a, b in zip(v, like)):
        raise ValueError(f"{fn}: v must match the {what}: shapes {[t.shape for t in v]} vs {[t.shape for t in like]}")
    return v


def _grad(outputs, inputs, grad_outputs, create_graph, strict, fn):
    """minidl.grad with unused inputs given zero gradients (or an error with strict=True)."""
    differentiable = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if not differentiable:
        grads = (None,) * len(inputs)
    else:
        outs, gs = zip(*differentiable)
        grads = autograd.grad(list(outs), list(inputs), list(gs), create_graph=create_graph, allow_unused=True)
    result = []
    for i, (g, x) in enumerate(zip(grads, inputs)):
        if g is None:
            if strict:
                raise RuntimeError(f"{fn}: the output does not depend on input {i} (strict=True)")
            g = Tensor(np.zeros(x.shape, dtype=x.dtype))
        result.append(g)
    return tuple(result)


def _finish(values, is_tuple, create_graph):
    values = tuple(v if create_graph else v.detach() for v in values)
    return values if is_tuple else values[0]


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), vᵀ J): the vector-Jacobian product, one backward pass. v: like func's output."""
    inputs_tuple, inputs = _as_tuple(inputs, "input", "vjp")
    xs = _leaves(inputs, create_graph, "vjp")
    outputs_tuple, outputs = _call(func, xs, "vjp")
    v = _directions(v, outputs, "output", "vjp")
    grads = _grad(outputs, xs, v, create_graph, strict, "vjp")
    return _finish(outputs, outputs_tuple, create_graph), _finish(grads, inputs_tuple, create_graph)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v): the Jacobian-vector product (forward-mode derivative) from two backward passes.

    g(u) = uᵀJ is linear in u, so d(g(u)·v)/du = J v whatever u is: u is a dummy of zeros.
    v: like the inputs.
    """
    inputs_tuple, inputs = _as_tuple(inputs, "input", "jvp")
    xs = _leaves(inputs, create_graph, "jvp")
    outputs_tuple, outputs = _call(func, xs, "jvp")
    v = _directions(v, xs, "inputs", "jvp")
    dummies = tuple(Tensor(np.zeros(o.shape, dtype=o.dtype), requires_grad=True) for o in outputs)
    with autograd.enable_grad():
        g = _grad(outputs, xs, dummies, True, strict, "jvp")
        results = _grad(g, dummies, v, create_graph, strict, "jvp")
    return _finish(outputs, outputs_tuple, create_graph), _finish(results, outputs_tuple, create_graph)


def _scalar_output(func, xs, fn):
    is_tuple, outputs = _call(func, xs, fn)
    if is_tuple or outputs[0].array.size != 1:
        raise ValueError(f"{fn}: the function must return a single tensor with one element")
    return outputs[0]


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) for a scalar func: the gradient of ∇f·v, without ever forming H.

    Costs about two gradient evaluations whatever the size of H: what makes Newton-CG and
    Hessian-free optimization possible. v: like the inputs.
    """
    inputs_tuple, inputs = _as_tuple(inputs, "input", "hvp")
    xs = _leaves(inputs, create_graph, "hvp")
    output = _scalar_output(func, xs, "hvp")
    v = _directions(v, xs, "inputs", "hvp")
    with autograd.enable_grad():
        gradient = _grad((output,), xs, (Tensor(np.ones(output.shape, output.dtype)),), True, strict, "hvp")
        results = _grad(gradient, xs, v, create_graph, strict, "hvp")
    return _finish((output,), False, create_graph), _finish(results, inputs_tuple, create_graph)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), vᵀ H): the same numbers as hvp, since the Hessian of a smooth f is symmetric."""
    return hvp(func, inputs, v, create_graph, strict)


def jacobian(func, inputs, create_graph=False, strict=False):
    """The Jacobian: J[i][j] of shape output_i.shape + input_j.shape (a tensor when both are single).

    One vjp per output element: fine for the small problems it is meant for.
    """
    inputs_tuple, inputs = _as_tuple(inputs, "input", "jacobian")
    xs = _leaves(inputs, create_graph, "jacobian")
    outputs_tuple, outputs = _call(func, xs, "jacobian")
    table = []
    for out in outputs:
        rows = [[] for _ in xs]
        for k in range(out.array.size):
            onehot = np.zeros(out.array.size, dtype=out.dtype)
            onehot[k] = 1
            v = tuple(
                Tensor(onehot.reshape(out.shape)) if o is out else Tensor(np.zeros(o.shape, o.dtype)) for o in outputs
            )
            for j, g in enumerate(_grad(outputs, xs, v, True, strict, "jacobian")):
                rows[j].append(g)
        blocks = []
        for j, x in enumerate(xs):
            block = ops.stack(rows[j], axis=0).reshape(*out.shape, *x.shape)
            blocks.append(block if create_graph else block.detach())
        table.append(tuple(blocks) if inputs_tuple else blocks[0])
    return tuple(table) if outputs_tuple else table[0]


def hessian(func, inputs, create_graph=False, strict=False):
    """The Hessian of a scalar func: H[i][j] of shape input_i.shape + input_j.shape (a tensor for one input).

    The jacobian of the gradient, so one Hessian-vector product per input element.
    """
    inputs_tuple, _ = _as_tuple(inputs, "input", "hessian")

    def gradient(*xs):
        output = _scalar_output(func, xs, "hessian")
        ones = (Tensor(np.ones(output.shape, output.dtype)),)
        return _grad((output,), xs, ones, True, strict, "hessian")

    result = jacobian(gradient, inputs, create_graph, strict)
    return result if inputs_tuple else result[0]


__all__ = ["vjp", "jvp", "hvp", "vhp", "jacobian", "hessian"]
