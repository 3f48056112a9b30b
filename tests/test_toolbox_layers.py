"""The toolbox's new layers (issue 13): Conv1d and the 1-D/adaptive/global pools, an Inception-style
block, GELU, Maxout, LayerNorm, GRUCell and GRU, bidirectional recurrent layers, packed variable-length
batches, and Attention. Each is gradchecked in float64 with respect to its input and its parameters;
a 1-D CNN trains the same through Conv1d and through Conv2d with (1, k) kernels.
PyTorch parity: test_toolbox_torch_parity.py.
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import minidl
from minidl import data, nn, optim
from minidl.debug import gradcheck, gradgradcheck
from minidl.nn.utils.rnn import pack_padded_sequence, pack_sequence, pad_packed_sequence, pad_sequence


def first(out):
    return out[0] if isinstance(out, tuple) else out


def check_layer_gradients(layer, x, second_order=False, seed=0):
    """gradcheck the layer with respect to its input, and its parameter gradients against central
    differences (gradcheck's own rule: |analytic - numeric| <= 1e-5 + 1e-3·|numeric|, step 1e-6)."""
    layer = layer.double()

    def run(x):
        return first(layer(x))

    gradcheck(run, [x])
    if second_order:
        gradgradcheck(run, [x])
    with minidl.no_grad():
        direction = np.random.default_rng(seed).standard_normal(run(x).shape)
    layer.zero_grad()
    (run(x) * minidl.tensor(direction)).sum().backward()
    for name, p in layer.named_parameters():
        numeric = np.zeros(p.shape)
        for index in np.ndindex(p.shape):
            original = p.array[index]
            with minidl.no_grad():
                p.array[index] = original + 1e-6
                plus = float((run(x).array * direction).sum())
                p.array[index] = original - 1e-6
                minus = float((run(x).array * direction).sum())
                p.array[index] = original
            numeric[index] = (plus - minus) / 2e-6
        np.testing.assert_allclose(p.grad.array, numeric, rtol=1e-3, atol=1e-5, err_msg=name)


def x64(*shape, seed=0):
    return minidl.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


# ---------------------------------------------------------------------------
# Convolutions and pools
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1), (2, 2, 7)),
        (lambda: nn.Conv1d(4, 4, 3, dilation=2, groups=4, bias=False), (1, 4, 8)),
        (lambda: nn.Conv2d(2, 4, (1, 3), stride=(1, 2), padding=(0, 1), dilation=(1, 2), groups=2), (1, 2, 3, 9)),
        (lambda: nn.Conv2d(3, 3, (3, 2), padding=(1, 0), groups=3), (2, 3, 4, 4)),
        (lambda: nn.Sequential(nn.MaxPool1d(3, 2, 1), nn.AvgPool1d(2)), (2, 2, 9)),
        (lambda: nn.Sequential(nn.AdaptiveAvgPool2d((2, 3)), nn.AdaptiveAvgPool2d(1), nn.Flatten()), (2, 3, 5, 7)),
        (lambda: nn.Sequential(nn.AdaptiveAvgPool1d(3), nn.GlobalAvgPool()), (2, 2, 8)),
    ],
)
def test_convolution_and_pooling_layers_gradcheck(make, shape):
    minidl.manual_seed(0)
    check_layer_gradients(make(), x64(*shape))


def test_conv1d_layer_shapes_repr_and_errors():
    layer = nn.Conv1d(3, 6, 5, stride=2, padding=2, groups=3)
    assert layer.weight.shape == (6, 1, 5) and layer(minidl.randn(4, 3, 40)).shape == (4, 6, 20)
    assert repr(layer) == "Conv1d(3, 6, kernel_size=5, stride=2, padding=2, groups=3)"
    with pytest.raises(ValueError, match=r"expected input \(N, 3, L\), got shape \(4, 3, 1, 40\)"):
        layer(minidl.randn(4, 3, 1, 40))
    with pytest.raises(ValueError, match="Conv1d: groups=2 must divide in_channels=3"):
        nn.Conv1d(3, 6, 5, groups=2)
    assert nn.GlobalAvgPool()(minidl.randn(2, 5, 3, 3)).shape == (2, 5)


class InceptionBlock(nn.Module):
    """GoogLeNet's module: 1x1, 1x1->3x3, 1x1->5x5 and 3x3-pool->1x1 branches, concatenated along channels."""

    def __init__(self, channels, out1, mid3, out3, mid5, out5, pool_out):
        super().__init__()
        self.branch1 = nn.Conv2d(channels, out1, 1)
        self.branch3 = nn.Sequential(nn.Conv2d(channels, mid3, 1), nn.ReLU(), nn.Conv2d(mid3, out3, 3, padding=1))
        self.branch5 = nn.Sequential(nn.Conv2d(channels, mid5, 1), nn.ReLU(), nn.Conv2d(mid5, out5, 5, padding=2))
        self.pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(channels, pool_out, 1))

    def forward(self, x):
        branches = [self.branch1(x), self.branch3(x), self.branch5(x), self.pool(x)]
        return minidl.cat(branches, axis=1).relu()


def test_an_inception_block_concatenates_parallel_branches_and_gradchecks():
    minidl.manual_seed(0)
    block = InceptionBlock(3, 2, 2, 3, 1, 2, 2)
    out = block(minidl.randn(2, 3, 6, 6))
    assert out.shape == (2, 2 + 3 + 2 + 2, 6, 6)  # the spatial size is kept, the channels add up
    network = nn.Sequential(block, nn.GlobalAvgPool(), nn.Linear(9, 4))
    check_layer_gradients(network, x64(1, 3, 5, 5, seed=1))


def sine_signals(n, seed):
    """Signals of length 40: a sine of 2, 4 or 6 cycles (the class), random phase, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    t = np.arange(40) / 40
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    signals = np.sin(2 * np.pi * (2 + 2 * labels[:, None]) * t + phase) + 0.3 * rng.standard_normal((n, 40))
    return signals[:, None, :].astype(np.float32), labels


def test_a_1d_cnn_trains_the_same_through_conv1d_and_through_conv2d_with_1xk_kernels():
    minidl.manual_seed(0)
    conv1d = nn.Sequential(
        nn.Conv1d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(8, 8, 5, padding=2), nn.ReLU(), nn.GlobalAvgPool(), nn.Linear(8, 3),
    )  # fmt: skip
    conv2d = nn.Sequential(
        nn.Conv2d(1, 8, (1, 5), padding=(0, 2)), nn.ReLU(), nn.MaxPool2d((1, 2)),
        nn.Conv2d(8, 8, (1, 5), padding=(0, 2)), nn.ReLU(), nn.GlobalAvgPool(), nn.Linear(8, 3),
    )  # fmt: skip
    with minidl.no_grad():  # the same weights: a (F, C, k) filter is a (F, C, 1, k) one
        for p1, p2 in zip(conv1d.parameters(), conv2d.parameters()):
            p2.copy_(p1.array.reshape(p2.shape))
    x_train, y_train = sine_signals(480, seed=1)
    x_test, y_test = sine_signals(240, seed=2)
    models = {"conv1d": (conv1d, x_train, x_test), "conv2d": (conv2d, x_train[:, :, None], x_test[:, :, None])}
    opts = {name: optim.SGD(model.parameters(), lr=0.1, momentum=0.9) for name, (model, _, _) in models.items()}
    losses = {name: [] for name in models}
    order = np.random.default_rng(3).permutation(np.tile(np.arange(480), 4)).reshape(-1, 32)
    with threadpool_limits(1):
        for batch in order:
            for name, (model, x, _) in models.items():
                loss = nn.functional.cross_entropy(model(minidl.tensor(x[batch])), y_train[batch])
                opts[name].zero_grad()
                loss.backward()
                opts[name].step()
                losses[name].append(loss.item())
    # The very same computation (Conv1d is conv2d on a one-row image): equal to the bit, step after step.
    assert losses["conv1d"] == losses["conv2d"]
    for p1, p2 in zip(conv1d.parameters(), conv2d.parameters()):
        np.testing.assert_array_equal(p1.array.reshape(p2.shape), p2.array)
    with minidl.no_grad():
        accuracy = {name: float((model(minidl.tensor(x)).array.argmax(1) == y_test).mean())
                    for name, (model, _, x) in models.items()}  # fmt: skip
    assert accuracy["conv1d"] == accuracy["conv2d"] >= 0.95, accuracy
    assert np.mean(losses["conv1d"][-10:]) < 0.2 * np.mean(losses["conv1d"][:10])


# ---------------------------------------------------------------------------
# Activations and normalization
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: nn.GELU(), (3, 4)),
        (lambda: nn.GELU("tanh"), (3, 4)),
        (lambda: nn.Maxout(4, 3, pieces=3), (5, 4)),
        (lambda: nn.LayerNorm(4), (2, 3, 4)),
        (lambda: nn.LayerNorm((3, 4), elementwise_affine=True), (2, 3, 4)),
    ],
)
def test_activation_and_normalization_layers_gradcheck(make, shape):
    minidl.manual_seed(1)
    layer = make()
    if isinstance(layer, nn.LayerNorm):  # non-trivial γ and β
        with minidl.no_grad():
            layer.weight.copy_(np.random.default_rng(2).standard_normal(layer.weight.shape) + 1)
            layer.bias.copy_(np.random.default_rng(3).standard_normal(layer.bias.shape))
    check_layer_gradients(layer, x64(*shape, seed=4), second_order=True)


def test_maxout_layer_is_the_max_of_its_linear_pieces():
    minidl.manual_seed(0)
    layer = nn.Maxout(5, 2, pieces=3)
    x = minidl.randn(4, 5)
    z = (x.array @ layer.linear.weight.array.T + layer.linear.bias.array).reshape(4, 2, 3)
    np.testing.assert_array_equal(layer(x).array, z.max(axis=2))
    assert "in_features=5, out_features=2, pieces=3" in repr(layer)


def test_layer_norm_statistics_are_per_example_and_it_has_no_running_state():
    layer = nn.LayerNorm(6)
    y = layer(minidl.randn(4, 6) * 3 + 2).array
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(y.var(axis=1), 1, rtol=1e-4)  # var/(var + 1e-5) with var ~ 9
    assert [name for name, _ in layer.named_buffers()] == []
    assert nn.LayerNorm(6, elementwise_affine=False).weight is None
    with pytest.raises(ValueError, match="LayerNorm: normalized_shape must be positive sizes"):
        nn.LayerNorm((3, 0))


# ---------------------------------------------------------------------------
# Recurrent layers
# ---------------------------------------------------------------------------
def test_gru_cell_follows_its_equations():
    minidl.manual_seed(0)
    cell = nn.GRUCell(3, 2)
    x, h = minidl.randn(4, 3), minidl.randn(4, 2)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    gi = x.array @ cell.weight_ih.array.T + cell.bias_ih.array
    gh = h.array @ cell.weight_hh.array.T + cell.bias_hh.array
    r, z = sig(gi[:, :2] + gh[:, :2]), sig(gi[:, 2:4] + gh[:, 2:4])
    n = np.tanh(gi[:, 4:] + r * gh[:, 4:])
    np.testing.assert_allclose(cell(x, h).array, (1 - z) * n + z * h.array, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cell(x).array, cell(x, minidl.zeros(4, 2)).array)
    assert cell.weight_ih.shape == (6, 3) and cell.weight_hh.shape == (6, 2)


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: nn.GRUCell(3, 2), (4, 3)),
        (lambda: nn.GRU(2, 3, num_layers=2), (3, 2, 2)),
        (lambda: nn.GRU(2, 2, bidirectional=True, batch_first=True), (2, 3, 2)),
        (lambda: nn.LSTM(2, 2, bidirectional=True), (3, 2, 2)),
        (lambda: nn.RNN(2, 2, num_layers=2, bidirectional=True), (3, 1, 2)),
    ],
)
def test_recurrent_layers_gradcheck(make, shape):
    minidl.manual_seed(0)
    check_layer_gradients(make(), x64(*shape, seed=5), second_order=isinstance(make(), nn.GRUCell))


def test_bidirectional_output_is_the_forward_and_the_reversed_backward_pass_side_by_side():
    minidl.manual_seed(0)
    gru = nn.GRU(3, 4, bidirectional=True)
    x = minidl.randn(5, 2, 3)
    out, h_n = gru(x)
    assert out.shape == (5, 2, 8) and h_n.shape == (2, 2, 4)
    forward_only = nn.GRU(3, 4)
    backward_only = nn.GRU(3, 4)
    forward_only.cells[0].load_state_dict(gru.cells[0].state_dict())
    backward_only.cells[0].load_state_dict(gru.cells_reverse[0].state_dict())
    out_f, h_f = forward_only(x)
    out_b, h_b = backward_only(x[::-1])
    np.testing.assert_allclose(out.array[:, :, :4], out_f.array, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out.array[:, :, 4:], out_b.array[::-1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h_n.array[1], h_b.array[0], rtol=1e-6, atol=1e-7)
    assert [name for name, _ in gru.named_parameters()][4:] == [
        "weight_ih_l0_reverse",
        "weight_hh_l0_reverse",
        "bias_ih_l0_reverse",
        "bias_hh_l0_reverse",
    ]  # fmt: skip  (PyTorch's names and order)


def test_packing_round_trips_and_keeps_pytorchs_layout():
    x = minidl.tensor(np.arange(4 * 3 * 2, dtype=np.float64).reshape(4, 3, 2), requires_grad=True)  # (T, B, F)
    packed = pack_padded_sequence(x, [2, 4, 1], enforce_sorted=False)
    # step by step, longest sequence first: t=0 -> batch 1, 0, 2; t=1 -> 1, 0; t=2, 3 -> 1
    np.testing.assert_array_equal(packed.batch_sizes.array, [3, 2, 1, 1])
    np.testing.assert_array_equal(packed.sorted_indices.array, [1, 0, 2])
    rows = [(0, 1), (0, 0), (0, 2), (1, 1), (1, 0), (2, 1), (3, 1)]
    np.testing.assert_array_equal(packed.data.array, np.stack([x.array[t, b] for t, b in rows]))
    padded, lengths = pad_packed_sequence(packed, padding_value=-1.0)
    np.testing.assert_array_equal(lengths.array, [2, 4, 1])
    expected = x.array.copy()
    expected[2:, 0] = expected[1:, 2] = -1
    np.testing.assert_array_equal(padded.array, expected)
    (padded * 2).sum().backward()  # gradient only where there was data
    np.testing.assert_array_equal(x.grad.array, np.where(expected == -1, 0, 2))
    with pytest.raises(ValueError, match="lengths .* must be in decreasing order when enforce_sorted=True"):
        pack_padded_sequence(x, [2, 4, 1])
    sequences = [minidl.randn(3, 2), minidl.randn(1, 2)]
    assert pad_sequence(sequences, batch_first=True).shape == (2, 3, 2)
    np.testing.assert_array_equal(pack_sequence(sequences).batch_sizes.array, [2, 1, 1])


@pytest.mark.parametrize("layer", ["GRU", "LSTM", "RNN"])
def test_packed_sequences_stop_at_their_own_length(layer):
    minidl.manual_seed(0)
    rnn = getattr(nn, layer)(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = minidl.randn(3, 6, 3)
    lengths = [6, 2, 4]
    out, state = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    out, _ = pad_packed_sequence(out, batch_first=True)
    h_n = first(state)
    for b, n in enumerate(lengths):  # each sequence run on its own, without padding
        alone_out, alone_state = rnn(x[b : b + 1, :n])
        np.testing.assert_allclose(out.array[b, :n], alone_out.array[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(h_n.array[:, b], first(alone_state).array[:, 0], rtol=1e-5, atol=1e-6)
        assert np.all(out.array[b, n:] == 0)


def test_recurrent_layers_check_their_initial_state():
    gru = nn.GRU(3, 4, num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match=r"GRU: expected h0 of shape \(4, 2, 4\), got \(2, 2, 4\)"):
        gru(minidl.randn(5, 2, 3), minidl.randn(2, 2, 4))
    assert "bidirectional=True" in repr(gru)


# ---------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("score", ["dot", "scaled_dot", "general", "additive"])
def test_attention_module_gradchecks_and_masks(score):
    minidl.manual_seed(0)
    key_size = 3 if score in ("dot", "scaled_dot") else 5
    attention = nn.Attention(3, key_size, score=score, hidden_size=4).double()
    keys = minidl.tensor(np.random.default_rng(6).standard_normal((2, 4, key_size)))
    mask = np.array([[True, True, False, False], [True] * 4])

    class Run(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = attention

        def forward(self, q):
            return self.attention(q, keys, mask=mask)[0]

    check_layer_gradients(Run(), x64(2, 3, seed=7))
    context, weights = attention(minidl.randn(2, 3, dtype=np.float64), keys, mask=mask)
    assert context.shape == (2, key_size) and weights.shape == (2, 4)
    np.testing.assert_allclose(weights.array.sum(axis=1), 1, rtol=1e-12)
    assert np.all(weights.array[0, 2:] == 0)
    with pytest.raises(ValueError, match="Attention: score must be one of"):
        nn.Attention(3, score="cosine")


def test_the_seq2seq_task_has_answers_followed_by_eos():
    source, lengths, target = data.seq2seq_task("reverse", 5, (2, 4), 7, seed=0).arrays
    for s, n, t in zip(source, lengths, target):
        assert np.all(s[n:] == data.sequences.PAD) and np.all((s[:n] >= 3) & (s[:n] < 7))
        assert list(t[:n]) == list(s[:n][::-1]) and t[n] == data.sequences.EOS and np.all(t[n + 1 :] == 0)
