"""The graph is the code: a model records the same ops, in the same structure, on every kernel set.

Speed lives below the kernel seam, so switching from the NumPy kernels to the C kernels
changes no node of the graph a student steps through. Fusion is a visible choice:
nn.fuse(model) gives a model whose fused layers show up as fused nodes, computes the same
outputs and gradients, and shares the original's parameters.
"""

import numpy as np
import pytest

import minidl
from minidl import backend, nn
from minidl.debug import step_backward


def graph_signature(tensor):
    """The graph below `tensor` as comparable data: (op name, input shapes, input kinds) per node, in
    a deterministic depth-first order from the output, where an input kind is "leaf", "op" or "const"."""
    nodes, order, stack = {}, [], [tensor]
    while stack:
        t = stack.pop()
        fn = t.grad_fn
        if fn is None or id(fn) in nodes:
            continue
        kinds = tuple("op" if i.grad_fn is not None else ("leaf" if i.requires_grad else "const") for i in fn.inputs)
        nodes[id(fn)] = (fn.name, tuple(i.shape for i in fn.inputs), kinds)
        order.append(id(fn))
        stack.extend(reversed(fn.inputs))
    return [nodes[key] for key in order]


def mlp():
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10),
    )  # fmt: skip


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.head = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


MODELS = {
    "mlp": (mlp, (64, 20)),
    "cnn": (cnn, (16, 1, 16, 16)),
    "lstm": (LSTMClassifier, (16, 5, 8)),
}
# Big enough that the C kernels take their C paths (they leave tiny arrays to NumPy).
FUSED_NAMES = {"mlp": {"LinearReLU", "LinearTanh"}, "cnn": {"Conv2dReLU", "Conv2dSigmoid"}, "lstm": {"LinearReLU"}}


def loss_of(model, x, y):
    return minidl.cross_entropy(model(x), y)


def build(name, seed=0):
    minidl.manual_seed(seed)
    factory, shape = MODELS[name]
    model = factory()
    rng = np.random.default_rng(seed)
    x = minidl.tensor(rng.standard_normal(shape).astype(np.float32))
    y = rng.integers(0, 10, shape[0])
    return model, x, y


def outputs_and_gradients(model, x, y):
    for p in model.parameters():
        p.grad = None
    loss = loss_of(model, x, y)
    loss.backward()
    return loss.item(), {name: p.grad.data.copy() for name, p in model.named_parameters()}


@pytest.mark.skipif("c" not in backend.available_kernels(), reason="the C kernels are not built on this install")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_graph_is_the_same_on_every_kernel_set(kernel_set, name):
    signatures = {}
    for kernels in backend.available_kernels():
        kernel_set(kernels)
        model, x, y = build(name)
        signatures[kernels] = graph_signature(loss_of(model, x, y))
        fused_model = nn.fuse(model)
        signatures[kernels + " fused"] = graph_signature(loss_of(fused_model, x, y))
    assert signatures["numpy"] == signatures["c"]
    assert signatures["numpy fused"] == signatures["c fused"]
    # nn.fuse changes the graph, visibly: the fused nodes replace each layer + activation pair
    unfused_names = {node[0] for node in signatures["numpy"]}
    fused_names = {node[0] for node in signatures["numpy fused"]}
    assert FUSED_NAMES[name] <= fused_names and not FUSED_NAMES[name] & unfused_names
    assert len(signatures["numpy fused"]) < len(signatures["numpy"])


@pytest.mark.parametrize("kernels", backend.available_kernels())
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fused_and_unfused_models_give_equal_outputs_and_gradients(kernel_set, kernels, name):
    kernel_set(kernels)
    model, x, y = build(name)
    want_loss, want_grads = outputs_and_gradients(model, x, y)
    got_loss, got_grads = outputs_and_gradients(nn.fuse(model), x, y)
    # float32 end to end: a fused kernel may round the bias-add and activation in a different
    # order than separate passes, a few ulps per layer; 1e-5 relative covers three layers.
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
    assert got_grads.keys() == want_grads.keys()
    for key in want_grads:
        scale = np.abs(want_grads[key]).max()
        np.testing.assert_allclose(got_grads[key], want_grads[key], rtol=1e-4, atol=1e-5 * scale, err_msg=key)


def test_fuse_shares_parameters_keeps_state_dict_keys_and_leaves_the_original_alone():
    model, x, y = build("mlp")
    fused = nn.fuse(model)
    assert [id(p) for p in fused.parameters()] == [id(p) for p in model.parameters()]
    assert list(fused.state_dict()) == list(model.state_dict())
    assert "FusedLinear(in_features=20, out_features=32, bias=True, activation=relu)" in repr(fused)
    assert "FusedLinear" not in repr(model) and [type(m).__name__ for m in model] == [
        "Linear", "ReLU", "Linear", "Tanh", "Linear",
    ]  # fmt: skip
    optimizer = minidl.optim.SGD(model.parameters(), lr=0.1)  # made for the original...
    loss_of(fused, x, y).backward()
    before = model[0].weight.data.copy()
    optimizer.step()  # ...steps the fused model's (shared) weights
    assert not np.array_equal(before, fused[0].weight.data)


def test_fuse_reaches_sequentials_inside_custom_modules_and_keeps_eval_mode():
    model, x, _ = build("lstm")
    model.eval()
    fused = nn.fuse(model)
    assert fused is not model and isinstance(fused.head[0], nn.FusedLinear)
    assert fused.lstm is model.lstm  # nothing to fuse there: the same module
    assert not fused.training and not fused.head.training
    assert isinstance(model.head[0], nn.Linear)  # the original is untouched
    np.testing.assert_allclose(fused(x).data, model(x).data, rtol=1e-5, atol=1e-6)


def test_only_layer_then_activation_pairs_without_hooks_fuse():
    minidl.manual_seed(0)
    model = nn.Sequential(nn.ReLU(), nn.Linear(6, 6), nn.LeakyReLU(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 2))
    assert [type(m).__name__ for m in nn.fuse(model)] == ["ReLU", "Linear", "LeakyReLU", "FusedLinear", "Linear"]
    model[4].register_forward_hook(lambda module, args, output: None)
    assert nn.fuse(model) is model  # a hooked module must run on its own: nothing fused
    assert nn.fuse(nn.ReLU()) is not None
    with pytest.raises(TypeError, match="fuse: expected a Module, got list"):
        nn.fuse([nn.Linear(2, 2)])


def test_the_debugger_sees_the_layers_you_wrote_and_fused_nodes_only_when_asked():
    model, x, y = build("mlp")
    ops = [step.op for step in step_backward(loss_of(model, x, y))]
    assert ops[:3] == ["CrossEntropy", "Linear", "Tanh"] and "ReLU" in ops
    fused_ops = [step.op for step in step_backward(loss_of(nn.fuse(model), x, y))]
    assert fused_ops == ["CrossEntropy", "Linear", "LinearTanh", "LinearReLU"]


def test_a_fused_layer_still_checks_its_input():
    fused = nn.fuse(nn.Sequential(nn.Linear(7, 3), nn.ReLU()))
    with pytest.raises(ValueError, match=r"Linear\(in_features=7.*expected input of shape \(\.\.\., 7\)"):
        fused(minidl.randn(4, 8))
    conv = nn.fuse(nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU()))
    with pytest.raises(ValueError, match=r"Conv2d\(2, 3.*expected input \(N, 2, H, W\), got shape \(1, 3, 5, 5\)"):
        conv(minidl.randn(1, 3, 5, 5))


def test_nothing_in_ops_or_nn_names_a_kernel_set_simd_alignment_or_fusion():
    """The must-show of the "one graph" issue, checked on the source: speed talk stays below the seam."""
    import pathlib
    import re

    root = pathlib.Path(minidl.__file__).parent
    banned = re.compile(r"\b(c_kernels|numpy_kernels|SIMD|simd|AVX|avx|aligned|alignment|fuse\w*|fusion|fusing)\b")
    offenders = []
    for path in sorted((root / "ops").glob("*.py")) + sorted((root / "nn").glob("*.py")):
        if path.name in ("fused.py", "fusion.py", "__init__.py"):  # the fusion modules and the package indexes
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if banned.search(line):
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
    for core in ("autograd.py", "tensor.py"):
        text = (root / core).read_text()
        assert "minidl.debug" not in text and "from minidl import debug" not in text, core
