"""minidl.nn: Module bookkeeping, state dicts, hooks, the module call stack, layer behaviour and learning."""

import numpy as np
import pytest
from tolerances import assert_within, eps, matmul_atol, sum_atol

import minidl
from minidl import data, nn, optim
from minidl.nn.module import module_stack, named_module_stack


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 8)
        self.out = nn.Linear(8, 3)
        self.register_buffer("calls", minidl.zeros(1))
        self.scale = 2.0  # a plain attribute: not a parameter, not a buffer

    def forward(self, x):
        return self.out(self.hidden(x).relu())


# ---------------------------------------------------------------------------
# Registration and traversal
# ---------------------------------------------------------------------------
def test_parameters_children_and_modules_are_registered_in_order():
    model = TwoLayer()
    assert [n for n, _ in model.named_parameters()] == ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    assert [n for n, _ in model.named_children()] == ["hidden", "out"]
    assert [n for n, _ in model.named_modules()] == ["", "hidden", "out"]
    assert [n for n, _ in model.named_buffers()] == ["calls"]
    assert all(p.requires_grad for p in model.parameters())
    assert model.num_parameters() == 4 * 8 + 8 + 8 * 3 + 3


def test_shared_parameters_are_listed_once():
    layer = nn.Linear(3, 3)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    assert len(list(model.parameters())) == 2


def test_assigning_a_plain_tensor_over_a_parameter_is_an_error():
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="weight.*Parameter"):
        model.weight = minidl.zeros(2, 2)
    model.bias = None  # allowed: an optional parameter
    assert [n for n, _ in model.named_parameters()] == ["weight"]


def test_forgetting_super_init_gives_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Broken()


def test_reassigning_and_deleting_keeps_registries_consistent():
    model = TwoLayer()
    model.out = nn.Linear(8, 5)
    assert model.state_dict()["out.weight"].shape == (5, 8)
    del model.out
    assert "out" not in dict(model.named_children())
    assert not any(name.startswith("out.") for name in model.state_dict())


def test_train_and_eval_switch_every_submodule():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(), nn.BatchNorm1d(2)))
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_zero_grad_forgets_or_zeroes_gradients():
    model = TwoLayer()
    model(minidl.randn(5, 4)).sum().backward()
    assert model.hidden.weight.grad is not None
    model.zero_grad(set_to_none=False)
    assert np.all(model.hidden.weight.grad.data == 0)
    model.zero_grad()
    assert model.hidden.weight.grad is None


def test_repr_is_a_readable_tree():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Sequential(nn.Flatten(), nn.Linear(16, 2)))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Flatten(start_dim=1, end_dim=-1)\n"
        "    (1): Linear(in_features=16, out_features=2, bias=True)\n"
        "  )\n"
        ")"
    )


def test_sequential_indexing_and_module_list():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert isinstance(model[0], nn.Linear) and isinstance(model[-1], nn.Linear)
    assert len(model[1:]) == 2
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(layers.parameters())) == 6
    with pytest.raises(TypeError, match="Module"):
        layers.append("not a module")


# ---------------------------------------------------------------------------
# state_dict / load_state_dict
# ---------------------------------------------------------------------------
def test_state_dict_round_trip_copies_values_in_place():
    a, b = TwoLayer(), TwoLayer()
    weight_before = b.hidden.weight
    b.load_state_dict(a.state_dict())
    assert b.hidden.weight is weight_before  # same Parameter object, new values
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(x.data, y.data, err_msg=name)


def test_state_dict_includes_persistent_buffers_only():
    model = nn.BatchNorm1d(3)
    assert list(model.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    model.register_buffer("scratch", minidl.zeros(3), persistent=False)
    assert "scratch" not in model.state_dict()


def test_load_state_dict_names_every_missing_unexpected_and_mismatched_key():
    model = TwoLayer()
    state = dict(model.state_dict())
    del state["out.bias"]
    state["extra.weight"] = np.zeros(2)
    state["hidden.weight"] = np.zeros((8, 5))
    with pytest.raises(KeyError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "missing keys: ['out.bias']" in message
    assert "unexpected keys: ['extra.weight']" in message
    assert "hidden.weight: expected shape (8, 4), got (8, 5)" in message


def test_one_comparison_of_state_dicts_serves_load_state_dict_and_checkpoints():
    from minidl.nn.module import compare_state_dicts

    state = dict(TwoLayer().state_dict())
    del state["out.bias"]
    state["extra"] = minidl.zeros(2)
    state["hidden.weight"] = np.zeros((8, 5))
    differences = compare_state_dicts(TwoLayer().state_dict(), state)
    assert differences.missing_keys == ["out.bias"] and differences.unexpected_keys == ["extra"]
    assert differences.shape_mismatches == [("hidden.weight", (8, 4), (8, 5))]


def test_load_state_dict_non_strict_reports_but_loads_the_rest():
    model = TwoLayer()
    state = {"hidden.bias": np.full(8, 7.0, np.float32), "unknown": np.zeros(1)}
    result = model.load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["unknown"]
    assert "out.weight" in result.missing_keys
    assert np.all(model.hidden.bias.data == 7)


def test_loading_bumps_versions_so_stale_graphs_are_detected():
    model = nn.Linear(3, 1)
    loss = (model(minidl.randn(2, 3)) ** 2).sum()
    model.load_state_dict(nn.Linear(3, 1).state_dict())
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


# ---------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------
def test_forward_pre_and_forward_hooks_run_in_order_and_can_replace_values():
    layer = nn.Linear(2, 2)
    calls = []
    layer.register_forward_pre_hook(lambda m, args: calls.append("pre1"))
    layer.register_forward_pre_hook(lambda m, args: (args[0] * 0,))  # replaces the input
    layer.register_forward_hook(lambda m, args, out: calls.append(("fwd1", float(args[0].data.sum()))))
    handle = layer.register_forward_hook(lambda m, args, out: out + 100)  # replaces the output
    layer.register_forward_hook(lambda m, args, out: calls.append(("fwd3", float(out.data.min()) >= 90)))
    out = layer(minidl.ones(1, 2))
    assert calls == ["pre1", ("fwd1", 0.0), ("fwd3", True)]
    # 0·W + b is exact, and + 100 is the same float32 addition on both sides: exact.
    np.testing.assert_array_equal(out.data, layer.bias.data[None] + 100)
    handle.remove()
    out = layer(minidl.ones(1, 2))
    np.testing.assert_array_equal(out.data, layer.bias.data[None])


def test_full_backward_hook_sees_grad_input_and_grad_output():
    layer = nn.Linear(3, 2)
    seen = []
    layer.register_full_backward_hook(lambda m, gi, go: seen.append((m, gi, go)))
    x = minidl.randn(4, 3, requires_grad=True)
    upstream = minidl.randn(4, 2)
    layer(x).backward(upstream)
    (module, grad_input, grad_output) = seen[0]
    assert module is layer and len(seen) == 1
    np.testing.assert_allclose(grad_output[0].data, upstream.data)
    # dX = dY·W, by our kernels and by NumPy's BLAS: the dot-product bound.
    want = upstream.data @ layer.weight.data
    assert_within(grad_input[0].data, want, matmul_atol(upstream.data, layer.weight.data), "dX")
    np.testing.assert_array_equal(x.grad.data, grad_input[0].data)  # the hook saw what x.grad got


def test_full_backward_hook_sees_only_this_modules_share_of_a_shared_input():
    layer = nn.Linear(3, 3)
    seen = []
    layer.register_full_backward_hook(lambda m, gi, go: seen.append(gi[0].data.copy()))
    x = minidl.randn(2, 3, requires_grad=True)
    (layer(x).sum() + (x * 10).sum()).backward()  # x also feeds another computation
    ones = np.ones((2, 3), np.float32)
    assert_within(seen[0], ones @ layer.weight.data, matmul_atol(ones, layer.weight.data), "dX")
    np.testing.assert_array_equal(x.grad.data, seen[0] + 10)  # two gradients, one IEEE addition: exact


def test_full_backward_hook_can_replace_grad_input_and_runs_in_registration_order():
    layer = nn.Linear(3, 2)
    order = []
    layer.register_full_backward_hook(lambda m, gi, go: (order.append(1), (gi[0] * 0,))[1])
    layer.register_full_backward_hook(lambda m, gi, go: order.append((2, float(np.abs(gi[0].data).sum()))))
    x = minidl.randn(4, 3, requires_grad=True)
    layer(x).sum().backward()
    assert order == [1, (2, 0.0)]  # the second hook sees the first one's replacement
    assert np.all(x.grad.data == 0)
    assert layer.weight.grad is not None and np.any(layer.weight.grad.data != 0)


def test_full_backward_hook_with_several_inputs_and_outputs():
    cell = nn.LSTMCell(3, 2)
    seen = []
    cell.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go)))
    x = minidl.randn(4, 3, requires_grad=True)
    h0 = minidl.randn(4, 2, requires_grad=True)
    c0 = minidl.randn(4, 2, requires_grad=True)
    h, c = cell(x, (h0, c0))
    h.sum().backward()
    grad_input, grad_output = seen[0]
    assert len(seen) == 1
    assert len(grad_input) == 2 and grad_input[1] is None  # (x, state): the tuple state is not a tensor
    np.testing.assert_array_equal(grad_input[0].data, x.grad.data)  # x's only gradient: the same array
    np.testing.assert_allclose(grad_output[0].data, np.ones((4, 2)))
    assert grad_output[1] is None  # c was not used by the loss


def test_full_backward_hook_on_a_module_whose_input_needs_no_grad():
    layer = nn.Linear(3, 2)
    seen = []
    layer.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go)))
    layer(minidl.randn(4, 3)).sum().backward()
    assert seen and seen[0][0] == (None,)
    np.testing.assert_allclose(seen[0][1][0].data, np.ones((4, 2)))


def test_full_backward_hook_with_several_outputs_and_no_input_needing_grad():
    cell = nn.LSTMCell(3, 2)
    seen = []
    cell.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go)))
    h, c = cell(minidl.randn(4, 3))  # data input: only the parameters need gradients
    (h * 3).sum().backward()
    assert len(seen) == 1
    grad_input, grad_output = seen[0]
    assert grad_input == (None,)
    np.testing.assert_allclose(grad_output[0].data, np.full((4, 2), 3.0))
    assert grad_output[1] is None
    assert cell.weight_ih.grad is not None


# ---------------------------------------------------------------------------
# The module call stack read by the backprop debugger
# ---------------------------------------------------------------------------
def test_module_stack_names_the_running_modules_and_is_empty_afterwards():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append([name for name, _ in named_module_stack()])
            return x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Linear(2, 2), Probe())
            self.head = Probe()

        def forward(self, x):
            return self.head(self.features(x))

    net = Net()
    net(minidl.randn(1, 2))
    assert seen == [["Net", "Net.features", "Net.features.1"], ["Net", "Net.head"]]
    assert module_stack == []
    Probe()(minidl.randn(1, 2))  # called on its own, a module is named by its class
    assert seen[-1] == ["Probe"]


def test_module_stack_names_modules_inside_lists():
    seen = []
    lstm = nn.LSTM(2, 3, num_layers=2)
    lstm.cells[1].register_forward_pre_hook(lambda m, args: seen.append(named_module_stack()[-1][0]))
    model = nn.Sequential(lstm)
    model(minidl.randn(3, 1, 2))
    assert seen == ["Sequential.0.cells.1"] * 3


def test_calling_a_module_pushes_the_module_itself_and_names_come_only_when_asked():
    # Working out "Sequential.0.0" on every call cost more than a small layer's forward.
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append((list(module_stack), named_module_stack()))
            return x

    probe = Probe()
    inner = nn.Sequential(probe)
    outer = nn.Sequential(inner)
    outer(minidl.randn(1, 2))
    ((stack, named),) = seen
    assert len(stack) == 3 and all(a is b for a, b in zip(stack, [outer, inner, probe]))
    assert [name for name, _ in named] == ["Sequential", "Sequential.0", "Sequential.0.0"]


def test_module_stack_is_popped_when_forward_raises():
    with pytest.raises(ValueError):
        nn.Sequential(nn.Linear(2, 2))(minidl.randn(1, 3))
    assert module_stack == []


# ---------------------------------------------------------------------------
# Layer behaviour
# ---------------------------------------------------------------------------
def test_dropout_differs_between_train_and_eval():
    minidl.manual_seed(0)
    layer = nn.Dropout(0.5)
    x = minidl.ones(1000)
    y = layer(x).data
    assert set(np.unique(y)) == {0.0, 2.0}  # inverted dropout: survivors scaled by 1/(1-p)
    assert 0.4 < (y == 0).mean() < 0.6
    assert abs(y.mean() - 1.0) < 0.1  # the expectation is unchanged
    layer.eval()
    np.testing.assert_array_equal(layer(x).data, x.data)


def test_batch_norm_uses_batch_statistics_in_training_and_running_ones_in_eval():
    minidl.manual_seed(0)
    layer = nn.BatchNorm1d(3)
    x = minidl.randn(64, 3) * 5 + 10
    y = layer(x).data
    # Normalized with the batch's own statistics. float32 rounding of 64-term means of x ~ 10 ± 5
    # is ~64·eps·10 / 5 ~ 2e-5 after dividing by the std; var/(var + 1e-5) moves the std by 2e-7.
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=0), 1, atol=1e-3)
    # 0.1 · the batch mean, ours and NumPy's: the sum bound for 64 terms, scaled, plus the two multiplies.
    want = 0.1 * x.data.mean(axis=0)
    atol = 0.1 * sum_atol(x.data, axis=0) / 64 + 2 * eps(np.float32) * np.abs(want)
    assert_within(layer.running_mean.data, want, atol, "running mean")
    layer.eval()
    y_eval = layer(x).data  # running statistics: barely moved from (0, 1) after one batch
    assert np.all(np.abs(y_eval.mean(axis=0)) > 3)  # vs 0 with batch statistics
    for _ in range(200):
        layer.train()
        layer(minidl.randn(64, 3) * 5 + 10)
    layer.eval()
    y_eval = layer(minidl.randn(2000, 3) * 5 + 10).data
    # Statistics, not rounding: running estimates from 200 batches of 64 and a 2000-sample mean are
    # each ~0.02 standard deviations off; 0.1 is 5 of them.
    np.testing.assert_allclose(y_eval.mean(axis=0), 0, atol=0.1)


def test_batch_norm_rejects_wrong_shapes_and_single_values():
    with pytest.raises(ValueError, match="BatchNorm2d\\(3\\).*got shape \\(2, 3\\)"):
        nn.BatchNorm2d(3)(minidl.randn(2, 3))
    with pytest.raises(ValueError, match="more than 1 value"):
        nn.BatchNorm1d(3)(minidl.randn(1, 3))


def test_layer_errors_name_the_layer_and_the_expected_shape():
    with pytest.raises(ValueError, match=r"Linear\(in_features=4.*\(\.\.\., 4\), got \(2, 5\)"):
        nn.Linear(4, 2)(minidl.randn(2, 5))
    with pytest.raises(ValueError, match=r"Conv2d.*\(N, 3, H, W\)"):
        nn.Conv2d(3, 2, 3)(minidl.randn(1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"LSTM.*\(T, N, input_size\)"):
        nn.LSTM(3, 2)(minidl.randn(4, 3))


def test_lstm_is_the_lectures_deep_loop():
    """Running the cells by hand, as the lecture writes it, gives the LSTM's outputs exactly."""
    minidl.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=3)
    x = minidl.randn(5, 2, 3)
    out, (h_n, c_n) = lstm(x)
    m, c = [None] * 3, [None] * 3
    for i in range(5):
        for d in range(3):
            layer_input = x[i] if d == 0 else m[d - 1]
            m[d], c[d] = lstm.cells[d](layer_input, None if m[d] is None else (m[d], c[d]))
    np.testing.assert_array_equal(out.data[-1], m[-1].data)
    np.testing.assert_array_equal(c_n.data, np.stack([t.data for t in c]))


class Seq2Seq(nn.Module):
    """Embedding -> LSTM -> Linear at every step: reads the sequence, then writes the answer."""

    def __init__(self, vocab_size, hidden):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, 8)
        self.lstm = nn.LSTM(8, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, tokens):
        outputs, _ = self.lstm(self.embed(tokens))
        return self.out(outputs)


def test_lstm_learns_to_reverse_a_sequence():
    minidl.manual_seed(0)
    vocab = 6  # symbols 1..5: chance is 1/5
    train = data.sequence_task("reverse", n_samples=2000, length=4, vocab_size=vocab, seed=0)
    test = data.sequence_task("reverse", n_samples=500, length=4, vocab_size=vocab, seed=1)
    model = Seq2Seq(vocab, 32)
    optimizer = optim.Adam(model.parameters(), lr=0.02)
    loss_fn = nn.CrossEntropyLoss(ignore_index=data.IGNORE_INDEX)
    step = 0
    while step < 250:
        for x, y in data.DataLoader(train, batch_size=64, shuffle=True):
            loss = loss_fn(model(x).reshape(-1, vocab), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
    inputs, targets = test.arrays
    with minidl.no_grad():
        predictions = model(minidl.tensor(inputs)).data.argmax(axis=-1)
    scored = targets != data.IGNORE_INDEX
    accuracy = (predictions[scored] == targets[scored]).mean()
    assert accuracy > 0.9, f"reverse-task accuracy {accuracy:.3f} (chance 0.2)"


def test_skip_gram_embeddings_learn_the_planted_analogies():
    """word2vec on the generated corpus: king - man + woman ≈ queen, and friends."""
    minidl.manual_seed(0)
    dataset, vocab = data.skipgram_dataset(data.analogy_corpus(3000, seed=0), window=5)
    model = nn.Sequential(nn.Embedding(len(vocab), 16), nn.Linear(16, len(vocab)))
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    for _ in range(4):
        for centers, contexts in data.DataLoader(dataset, batch_size=512, shuffle=True):
            loss = nn.CrossEntropyLoss()(model(centers), contexts)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    vectors = model[0].weight.data
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def analogy(a, b, c):
        similarity = vectors @ (vectors[vocab[a]] - vectors[vocab[b]] + vectors[vocab[c]])
        for word in (a, b, c):
            similarity[vocab[word]] = -np.inf
        return vocab.words[int(np.argmax(similarity))]

    assert analogy("king", "man", "woman") == "queen"
    assert analogy("prince", "boy", "girl") == "princess"
    assert analogy("man", "king", "queen") == "woman"
    assert analogy("queen", "woman", "girl") == "princess"


# ---------------------------------------------------------------------------
# Initialization
# ---------------------------------------------------------------------------
def test_initializers_have_the_promised_scale():
    minidl.manual_seed(0)
    w = nn.Parameter(np.empty((512, 256), np.float32))
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.data.std() - np.sqrt(2 / 256)) < 0.01 * np.sqrt(2 / 256) * 5
    nn.init.xavier_uniform_(w)
    bound = np.sqrt(6 / (256 + 512))
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.99 * bound
    nn.init.xavier_normal_(w)
    assert abs(w.data.std() - np.sqrt(2 / 768)) < 0.05 * np.sqrt(2 / 768)
    nn.init.zeros_(w)
    assert not w.data.any()
    nn.init.constant_(w, 3)
    assert np.all(w.data == 3)


def test_he_init_keeps_relu_activations_order_one_through_depth():
    """The lecture's rule: activations stay O(1), output ~ input, through many ReLU layers."""
    minidl.manual_seed(0)
    x = minidl.randn(256, 128)
    h = x
    for _ in range(20):
        layer = nn.Linear(128, 128)
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        nn.init.zeros_(layer.bias)
        h = layer(h).relu()
    ratio = np.sqrt((h.data**2).mean()) / np.sqrt((x.data**2).mean())
    assert 0.3 < ratio < 3, ratio


def test_positive_bias_and_small_last_layer_helpers():
    layer = nn.Linear(10, 4)
    nn.init.positive_bias_(layer.bias)
    assert np.all(layer.bias.data == 0.1)
    before = layer.weight.data.copy()
    nn.init.small_last_layer_(layer, scale=0.01)
    np.testing.assert_allclose(layer.weight.data, before * 0.01, rtol=1e-6)  # one rounding (<= 1.2e-7) each side
    assert not layer.bias.data.any()
    scores = layer(minidl.randn(8, 10)).softmax(axis=1).data
    np.testing.assert_allclose(scores, 0.25, atol=0.02)  # high temperature: nearly uniform at the start
    with pytest.raises(ValueError, match="> 0"):
        nn.init.positive_bias_(layer.bias, -1)


def test_initializers_draw_from_minidls_seeded_generator():
    minidl.manual_seed(5)
    a = nn.Linear(3, 3).weight.data.copy()
    minidl.manual_seed(5)
    np.testing.assert_array_equal(nn.Linear(3, 3).weight.data, a)


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: nn.BatchNorm1d(3), (5, 3)),
        (lambda: nn.BatchNorm2d(2), (3, 2, 3, 3)),
        (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 2, 5, 5)),
        (lambda: nn.LSTM(2, 3, num_layers=2), (4, 2, 2)),
        (lambda: nn.RNN(2, 3), (4, 2, 2)),
    ],
)
def test_layers_pass_first_and_second_order_gradient_checks(make, shape):
    from minidl.debug import gradcheck, gradgradcheck

    minidl.manual_seed(0)
    layer = make().double()

    def run(x):
        out = layer(x)
        return out[0] if isinstance(out, tuple) else out

    x = minidl.randn(*shape, dtype=np.float64, requires_grad=True)
    gradcheck(run, [x])
    gradgradcheck(run, [x])


def test_module_to_double_for_gradcheck():
    from minidl.debug import gradcheck

    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    gradcheck(lambda x: model(x), [minidl.randn(2, 3, dtype=np.float64, requires_grad=True)])


def test_containers_check_appended_modules_and_slice_like_their_python_counterparts():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with pytest.raises(TypeError, match="Sequential: can only hold Modules, got int"):
        seq.append(3)
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and list(tail._modules) == ["1", "2"]  # names kept
    modules = nn.ModuleList([nn.ReLU(), nn.Tanh(), nn.Sigmoid()])
    with pytest.raises(TypeError, match="ModuleList: can only hold Modules"):
        modules.append("relu")
    part = modules[1:]
    assert isinstance(part, nn.ModuleList) and list(part._modules) == ["0", "1"]  # renumbered
    assert isinstance(part[0], nn.Tanh) and len(part) == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: nn.Embedding(-1, 4), "Embedding: num_embeddings must be a positive integer, got -1"),
        (lambda: nn.Embedding(10, 0), "Embedding: embedding_dim must be a positive integer, got 0"),
        (lambda: nn.RNNCell(3, -2), "RNNCell: hidden_size must be a positive integer, got -2"),
        (lambda: nn.LSTMCell(2.5, 4), "LSTMCell: input_size must be a positive integer, got 2.5"),
        (lambda: nn.Conv2d(0, 4, 3), "Conv2d: in_channels must be a positive integer, got 0"),
    ],
)
def test_layers_reject_sizes_that_are_not_positive_integers(make, message):
    with pytest.raises(ValueError, match=message):
        make()
