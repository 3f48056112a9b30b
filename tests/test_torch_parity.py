"""minidl's layers, losses, optimizers and schedules against PyTorch CPU, with copied weights.

Each test builds the same layer in both frameworks, copies minidl's weights into torch,
runs forward and backward with the same input and upstream gradient, and compares the
outputs, the input gradients and every parameter gradient.
"""

import math

import numpy as np
import pytest
from tolerances import TRANSCENDENTAL_ULPS, assert_within, chain_atol

import minidl
from minidl import nn, optim

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # the machine is shared; these tensors are tiny anyway

# Rounding budgets (tests/tolerances.py, chain_atol): the roundings on the longest path from
# the inputs to a compared value, reductions counting their length, each transcendental
# (exp, tanh, log, sigmoid) TRANSCENDENTAL_ULPS. Each test says how its budget is counted.
ACT = 2 * TRANSCENDENTAL_ULPS + 1  # a sigmoid or tanh as the libraries compute it (exp, add, divide)
LSTM_STEP = 10 + ACT + 3 + ACT + 1  # gates (in + hidden + 2 biases), sigmoid/tanh, c = f·c + i·g, tanh(c), o·tanh(c)


def to_torch(array, requires_grad=False):
    return torch.tensor(np.array(array), requires_grad=requires_grad)


def copy_parameters(ours, theirs, name_map=lambda name: name):
    """Copy each of our parameters (and buffers) into the torch module's entry of the same (mapped) name."""
    their_state = theirs.state_dict()
    with torch.no_grad():
        for name, value in ours.state_dict().items():
            their_state[name_map(name)].copy_(torch.from_numpy(np.array(value.data)))


def run_both(ours, theirs, x, upstream_seed=0, name_map=lambda name: name, x_dtype=None):
    """Forward and backward in both; returns ((our out, our dx), (their out, their dx))."""
    x_ours = minidl.tensor(x, requires_grad=x.dtype.kind == "f")
    x_theirs = to_torch(x, requires_grad=x.dtype.kind == "f")
    out_ours = ours(x_ours)
    out_theirs = theirs(x_theirs)
    upstream = np.random.default_rng(upstream_seed).standard_normal(out_ours.shape).astype(out_ours.dtype)
    out_ours.backward(minidl.tensor(upstream))
    out_theirs.backward(to_torch(upstream))
    return (out_ours, x_ours), (out_theirs, x_theirs)


def assert_close(ours, theirs, what, budget, fan_in=1):
    """Our float32 result against torch's: within chain_atol(budget, fan_in) of each other, i.e.
    2·budget·eps relative to max|torch's|·sqrt(fan_in) (budget 0: the same bits)."""
    ours = ours.data if isinstance(ours, minidl.Tensor) else np.asarray(ours)
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    assert_within(ours, theirs, chain_atol(theirs, budget=budget, fan_in=fan_in), what)


def assert_same_gradients(ours, theirs, name_map=lambda name: name, budget=0, fan_in=1):
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert_close(p.grad, their_params[name_map(name)].grad, f"gradient of {name}", budget, fan_in)


def check_layer(ours, theirs, x, name_map=lambda name: name, budget=0, fan_in=1):
    """budget and fan_in cover the output and every gradient (see assert_close)."""
    copy_parameters(ours, theirs, name_map)
    (out, x_ours), (out_t, x_theirs) = run_both(ours, theirs, x, name_map=name_map)
    assert_close(out, out_t, "output", budget, fan_in)
    if x.dtype.kind == "f":
        assert_close(x_ours.grad, x_theirs.grad, "input gradient", budget, fan_in)
    assert_same_gradients(ours, theirs, name_map, budget, fan_in)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    # out: 7 products + bias; dx sums over 5 outputs, dW and db over 4 rows.
    check_layer(nn.Linear(7, 5, bias=bias), torch.nn.Linear(7, 5, bias=bias), randn(4, 7), budget=8, fan_in=8)


def test_linear_on_3d_input():
    check_layer(nn.Linear(6, 3), torch.nn.Linear(6, 3), randn(2, 4, 6), budget=8, fan_in=8)  # dW, db: 8 rows


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 0), (2, 1), (3, 2)])
def test_conv2d(stride, padding):
    ours = nn.Conv2d(3, 4, 3, stride=stride, padding=padding)
    theirs = torch.nn.Conv2d(3, 4, 3, stride=stride, padding=padding)
    # out: 3·3·3 products + bias; dW and db sum over N·OH·OW <= 2·9·8 positions; dx over 4·3·3.
    check_layer(ours, theirs, randn(2, 3, 9, 8), budget=144, fan_in=144)


def test_conv2d_without_bias_and_1x1_kernel():
    x = randn(3, 5, 4, 4)  # out: 5 products; dW sums over 3·4·4 = 48 positions
    check_layer(nn.Conv2d(5, 2, 1, bias=False), torch.nn.Conv2d(5, 2, 1, bias=False), x, budget=48, fan_in=48)


@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 1, 1), (3, 2, 1), (2, 1, 0)])
def test_max_pool2d(kernel, stride, padding):
    ours = nn.MaxPool2d(kernel, stride, padding)
    theirs = torch.nn.MaxPool2d(kernel, stride, padding)
    # The max is a selection; dx adds the gradients of up to kernel² overlapping windows.
    check_layer(ours, theirs, randn(2, 3, 7, 6), budget=kernel * kernel)


@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 1, 1), (3, 2, 1)])
def test_avg_pool2d(kernel, stride, padding):
    ours = nn.AvgPool2d(kernel, stride, padding)
    theirs = torch.nn.AvgPool2d(kernel, stride, padding)  # count_include_pad=True, as ours
    check_layer(ours, theirs, randn(2, 3, 7, 6), budget=kernel * kernel + 1)  # sums of kernel² and a division


@pytest.mark.parametrize("activation", ["ReLU", "Tanh", "Sigmoid", "LeakyReLU"])
def test_activations(activation):
    # ReLU selects (exact); LeakyReLU rounds once; Tanh and Sigmoid, and their gradients (3 more ops).
    budget = {"ReLU": 0, "LeakyReLU": 1}.get(activation, ACT + 3)
    check_layer(getattr(nn, activation)(), getattr(torch.nn, activation)(), randn(3, 5), budget=budget)


def test_flatten():
    check_layer(nn.Flatten(), torch.nn.Flatten(), randn(2, 3, 4, 5))  # a reshape: exact


def test_embedding_with_repeated_indices():
    ours, theirs = nn.Embedding(10, 4), torch.nn.Embedding(10, 4)
    indices = np.array([[1, 2, 2, 9], [0, 1, 1, 1]])
    check_layer(ours, theirs, indices, budget=4)  # a lookup; row 1's gradient adds 4 upstream rows


# BatchNorm: training mode normalizes with the batch's statistics and moves the running
# averages; evaluation mode uses the running averages. Both, over several batches.
@pytest.mark.parametrize(
    "ours_class,theirs_class,shape",
    [
        (nn.BatchNorm1d, torch.nn.BatchNorm1d, (8, 5)),
        (nn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 5, 3)),
        (nn.BatchNorm2d, torch.nn.BatchNorm2d, (4, 5, 3, 3)),
    ],
)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_train_and_eval(ours_class, theirs_class, shape, momentum):
    ours, theirs = ours_class(5, momentum=momentum), theirs_class(5, momentum=momentum)
    with minidl.no_grad():  # non-trivial affine parameters
        ours.weight.copy_(randn(5, seed=1) + 1)
        ours.bias.copy_(randn(5, seed=2))
    copy_parameters(ours, theirs)
    # n values per channel: mean (n), variance (2n + 2), 1/sqrt(var + eps), normalize and affine
    # (4) forward; backward sums dy and dy·x̂ over n (2n) and combines them (5); the running
    # statistics add 3 more per batch. Relative to the largest value, sqrt(n) for the sums.
    n = int(np.prod(shape)) // 5
    budget, fan_in = 5 * n + 2 * TRANSCENDENTAL_ULPS + 20, n
    for step in range(3):
        x = randn(*shape, seed=10 + step) * 3 + 1
        (out, x_ours), (out_t, x_theirs) = run_both(ours, theirs, x, upstream_seed=step)
        assert_close(out, out_t, f"training output, step {step}", budget, fan_in)
        assert_close(x_ours.grad, x_theirs.grad, f"input gradient, step {step}", budget, fan_in)
        assert_same_gradients(ours, theirs, budget=budget, fan_in=fan_in)
        ours.zero_grad()
        theirs.zero_grad()
    assert_close(ours.running_mean, theirs.running_mean, "running mean", budget, fan_in)
    assert_close(ours.running_var, theirs.running_var, "running var", budget, fan_in)
    assert int(ours.num_batches_tracked.data) == int(theirs.num_batches_tracked) == 3
    ours.eval()
    theirs.eval()
    (out, x_ours), (out_t, x_theirs) = run_both(ours, theirs, randn(*shape, seed=99))
    assert_close(out, out_t, "evaluation output", budget, fan_in)
    assert_close(x_ours.grad, x_theirs.grad, "evaluation input gradient", budget, fan_in)


def test_batch_norm_state_dict_loads_into_torch():
    ours = nn.BatchNorm2d(3)
    ours(minidl.tensor(randn(4, 3, 2, 2)))
    theirs = torch.nn.BatchNorm2d(3)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v.data)) for k, v in ours.state_dict().items()})
    assert_close(ours.running_mean, theirs.running_mean, "running mean", 0)  # copied: the same bits


# Recurrent layers: our LSTM stores layer d's weights as cells.<d>.weight_ih; torch calls
# the same matrix weight_ih_l<d>. Same gate order (i, f, g, o), so they copy over directly.
def recurrent_name(name):
    _, layer, param = name.split(".")
    return f"{param}_l{layer}"


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm(batch_first, num_layers):
    ours = nn.LSTM(3, 4, num_layers=num_layers, batch_first=batch_first)
    theirs = torch.nn.LSTM(3, 4, num_layers=num_layers, batch_first=batch_first)
    copy_parameters(ours, theirs, recurrent_name)
    x = randn(2, 5, 3) if batch_first else randn(5, 2, 3)
    h0, c0 = randn(num_layers, 2, 4, seed=1), randn(num_layers, 2, 4, seed=2)
    x_o, h0_o, c0_o = (minidl.tensor(a, requires_grad=True) for a in (x, h0, c0))
    x_t, h0_t, c0_t = (to_torch(a, requires_grad=True) for a in (x, h0, c0))
    out, (h, c) = ours(x_o, (h0_o, c0_o))
    out_t, (h_t, c_t) = theirs(x_t, (h0_t, c0_t))
    # 5 steps through up to 2 layers, LSTM_STEP each, and back again for the gradients.
    budget = 2 * 5 * num_layers * LSTM_STEP
    assert_close(out, out_t, "output", budget, 10)
    assert_close(h, h_t, "h_n", budget, 10)
    assert_close(c, c_t, "c_n", budget, 10)
    # A loss that uses every output: the sequence, the last hidden state and the last cell state.
    g_out, g_h, g_c = (randn(*a.shape, seed=s) for a, s in ((out, 3), (h, 4), (c, 5)))
    ((out * minidl.tensor(g_out)).sum() + (h * minidl.tensor(g_h)).sum() + (c * minidl.tensor(g_c)).sum()).backward()
    ((out_t * to_torch(g_out)).sum() + (h_t * to_torch(g_h)).sum() + (c_t * to_torch(g_c)).sum()).backward()
    for name, ours_t, theirs_t in (("x", x_o, x_t), ("h0", h0_o, h0_t), ("c0", c0_o, c0_t)):
        assert_close(ours_t.grad, theirs_t.grad, f"gradient of {name}", budget, 10)
    assert_same_gradients(ours, theirs, recurrent_name, budget, 10)


def test_lstm_without_initial_state_starts_from_zeros():
    ours, theirs = nn.LSTM(3, 4), torch.nn.LSTM(3, 4)
    copy_parameters(ours, theirs, recurrent_name)
    (out, x_ours), (out_t, x_theirs) = run_both(lambda x: ours(x)[0], lambda x: theirs(x)[0], randn(6, 2, 3))
    budget = 2 * 6 * LSTM_STEP  # 6 steps forward and back
    assert_close(out, out_t, "output", budget, 10)
    assert_close(x_ours.grad, x_theirs.grad, "input gradient", budget, 10)
    assert_same_gradients(ours, theirs, recurrent_name, budget, 10)


def test_lstm_cell():
    ours, theirs = nn.LSTMCell(3, 4), torch.nn.LSTMCell(3, 4)
    copy_parameters(ours, theirs)
    x, h0, c0 = randn(2, 3), randn(2, 4, seed=1), randn(2, 4, seed=2)
    h, c = ours(minidl.tensor(x), (minidl.tensor(h0), minidl.tensor(c0)))
    h_t, c_t = theirs(to_torch(x), (to_torch(h0), to_torch(c0)))
    assert_close(h, h_t, "h", LSTM_STEP, 10)
    assert_close(c, c_t, "c", LSTM_STEP, 10)


def test_full_backward_hook_runs_on_every_backward_with_fresh_gradients():
    # Two backward passes through one retained graph: torch calls the hook twice, and the second
    # call sees only the second pass's grad_output (None for c, which the second loss does not use).
    ours, theirs = nn.LSTMCell(3, 4), torch.nn.LSTMCell(3, 4)
    copy_parameters(ours, theirs)
    seen, seen_t = [], []
    ours.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go)))
    theirs.register_full_backward_hook(lambda m, gi, go: seen_t.append((gi, go)))
    x_o, x_t = minidl.tensor(randn(2, 3), requires_grad=True), to_torch(randn(2, 3), requires_grad=True)
    (h, c), (h_t, c_t) = ours(x_o), theirs(x_t)
    (h.sum() + 2 * c.sum()).backward(retain_graph=True)
    (h_t.sum() + 2 * c_t.sum()).backward(retain_graph=True)
    h.sum().backward()
    h_t.sum().backward()
    assert len(seen) == len(seen_t) == 2
    for call, ((gi, go), (gi_t, go_t)) in enumerate(zip(seen, seen_t)):  # one cell step, forward and back
        assert_close(gi[0], gi_t[0], f"grad_input of call {call}", 2 * LSTM_STEP, 10)
        assert_close(go[0], go_t[0], f"grad_output[0] of call {call}", 0)  # d(h.sum())/dh = 1 exactly
    assert_close(seen[0][1][1], seen_t[0][1][1], "grad_output[1] of the first call", 0)  # 2 exactly
    assert seen[1][1][1] is None and seen_t[1][1][1] is None


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn(nonlinearity):
    ours = nn.RNN(3, 4, num_layers=2, nonlinearity=nonlinearity, batch_first=True)
    theirs = torch.nn.RNN(3, 4, num_layers=2, nonlinearity=nonlinearity, batch_first=True)
    copy_parameters(ours, theirs, recurrent_name)
    x = randn(2, 5, 3)
    x_o, x_t = minidl.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    out, h = ours(x_o)
    out_t, h_t = theirs(x_t)
    # 5 steps through 2 layers: a linear (4 + 4 + 2) and tanh (or relu) each, forward and back.
    budget = 2 * 5 * 2 * (10 + ACT)
    assert_close(out, out_t, "output", budget, 10)
    assert_close(h, h_t, "h_n", budget, 10)
    g = randn(*out.shape, seed=3)
    (out * minidl.tensor(g)).sum().backward()
    (out_t * to_torch(g)).sum().backward()
    assert_close(x_o.grad, x_t.grad, "input gradient", budget, 10)
    assert_same_gradients(ours, theirs, recurrent_name, budget, 10)


def test_default_initialization_matches_torch_distribution():
    """Linear/Conv2d start as torch's do: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias."""
    minidl.manual_seed(0)
    ours = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for p in (ours.weight, ours.bias):
        assert np.abs(p.data).max() <= bound
        assert np.abs(p.data).max() > 0.95 * bound  # fills the interval
    assert abs(ours.weight.data.std() - bound / math.sqrt(3)) < 0.01 * bound
    conv = nn.Conv2d(8, 16, 3)
    assert np.abs(conv.weight.data).max() <= 1 / math.sqrt(8 * 9)


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_loss(reduction):
    scores, targets = randn(6, 4), np.array([0, 3, 1, 1, 2, -100])
    s_o, s_t = minidl.tensor(scores, requires_grad=True), to_torch(scores, requires_grad=True)
    loss = nn.CrossEntropyLoss(reduction=reduction)(s_o, minidl.tensor(targets))
    loss_t = torch.nn.CrossEntropyLoss(reduction=reduction)(s_t, torch.from_numpy(targets))
    # logsumexp over 4 classes (4 + 2 transcendentals + 3), then up to 6 rows summed; the terms
    # (logsumexp and the target's score) are up to ~2·max|score| + log 4 per row, ~3x the losses.
    budget = 4 + 2 * TRANSCENDENTAL_ULPS + 3 + 6
    assert_close(loss, loss_t, "loss", budget, 9)
    g = randn(*loss.shape, seed=1) if reduction == "none" else np.float32(1.0)
    loss.backward(minidl.tensor(g) if reduction == "none" else None)
    loss_t.backward(to_torch(g) if reduction == "none" else None)
    assert_close(s_o.grad, s_t.grad, "gradient", budget)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_nll_loss(reduction):
    log_probs = np.log(np.random.default_rng(0).dirichlet(np.ones(5), size=4)).astype(np.float32)
    targets = np.array([4, 0, 2, 2])
    x_o, x_t = minidl.tensor(log_probs, requires_grad=True), to_torch(log_probs, requires_grad=True)
    loss = nn.NLLLoss(reduction=reduction)(x_o, minidl.tensor(targets))
    loss_t = torch.nn.NLLLoss(reduction=reduction)(x_t, torch.from_numpy(targets))
    assert_close(loss, loss_t, "loss", 5)  # picks, then a sum of 4 and a division
    loss.backward()
    loss_t.backward()
    assert_close(x_o.grad, x_t.grad, "gradient", 1)  # -1/4 or -1 where picked


@pytest.mark.parametrize(
    "ours_class,theirs_class,targets",
    [
        (nn.MSELoss, torch.nn.MSELoss, randn(4, 3, seed=5)),
        (nn.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, (randn(4, 3, seed=5) > 0).astype(np.float32)),
        (nn.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, np.random.default_rng(5).random((4, 3), np.float32)),
    ],
)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_regression_and_binary_losses(ours_class, theirs_class, targets, reduction):
    scores = randn(4, 3) * 4
    s_o, s_t = minidl.tensor(scores, requires_grad=True), to_torch(scores, requires_grad=True)
    loss = ours_class(reduction=reduction)(s_o, minidl.tensor(targets))
    loss_t = theirs_class(reduction=reduction)(s_t, to_torch(targets))
    # Per element: MSE 2 ops, BCE max(z, 0) - z·t + log1p(e^-|z|) 2 transcendentals + 4; then a
    # sum of 12 (and a division); gradients: 2(z - t)/n or (sigmoid(z) - t)/n.
    budget = 2 * TRANSCENDENTAL_ULPS + 4 + 12 + 1
    assert_close(loss, loss_t, "loss", budget, 12)
    loss.backward()
    loss_t.backward()
    assert_close(s_o.grad, s_t.grad, "gradient", budget)


# ---------------------------------------------------------------------------
# Optimizers: a few steps from the same start with the same gradients
# ---------------------------------------------------------------------------
OPTIMIZERS = [
    ("SGD", dict(lr=0.1), optim.SGD, torch.optim.SGD),
    ("SGD momentum", dict(lr=0.1, momentum=0.9), optim.SGD, torch.optim.SGD),
    ("SGD nesterov", dict(lr=0.1, momentum=0.9, nesterov=True), optim.SGD, torch.optim.SGD),
    ("SGD weight decay", dict(lr=0.1, momentum=0.9, weight_decay=0.01), optim.SGD, torch.optim.SGD),
    ("AdaGrad", dict(lr=0.1), optim.AdaGrad, torch.optim.Adagrad),
    ("AdaGrad weight decay", dict(lr=0.1, weight_decay=0.1), optim.AdaGrad, torch.optim.Adagrad),
    ("RMSProp", dict(lr=0.01), optim.RMSProp, torch.optim.RMSprop),
    ("RMSProp alpha", dict(lr=0.01, alpha=0.9, weight_decay=0.1), optim.RMSProp, torch.optim.RMSprop),
    ("Adam", dict(lr=0.01), optim.Adam, torch.optim.Adam),
    ("Adam betas", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1), optim.Adam, torch.optim.Adam),
    ("SGD dampening", dict(lr=0.1, momentum=0.9, dampening=0.3), optim.SGD, torch.optim.SGD),
    ("SGD dampening decay", dict(lr=0.1, momentum=0.5, dampening=1.0, weight_decay=0.1), optim.SGD, torch.optim.SGD),
    ("RMSProp centered", dict(lr=0.01, centered=True), optim.RMSProp, torch.optim.RMSprop),
    (
        "RMSProp centered decay",
        dict(lr=0.01, alpha=0.9, centered=True, weight_decay=0.1),
        optim.RMSProp,
        torch.optim.RMSprop,
    ),
    ("Adam amsgrad", dict(lr=0.01, amsgrad=True), optim.Adam, torch.optim.Adam),
    (
        "Adam amsgrad decay",
        dict(lr=0.01, betas=(0.8, 0.9), amsgrad=True, weight_decay=0.1),
        optim.Adam,
        torch.optim.Adam,
    ),
]


@pytest.mark.parametrize("label,options,ours_class,theirs_class", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_steps(label, options, ours_class, theirs_class):
    shapes = [(3, 4), (4,)]
    start = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    ours = [nn.Parameter(a.copy()) for a in start]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in start]
    opt, opt_t = ours_class(ours, **options), theirs_class(theirs, **options)
    for step in range(4):
        for i, (p, p_t) in enumerate(zip(ours, theirs)):
            g = randn(*p.shape, seed=100 * step + i)
            p.grad = minidl.tensor(g)
            p_t.grad = to_torch(g)
        opt.step()
        opt_t.step()
        for i, (p, p_t) in enumerate(zip(ours, theirs)):
            # Per step: Adam and centered RMSProp round ~16 times (moments, bias corrections,
            # sqrt, eps, divide, lr, subtract), SGD and AdaGrad fewer; errors in the state carry over.
            assert_close(p, p_t, f"{label}: parameter {i} after step {step + 1}", 16 * (step + 1))


def test_per_group_learning_rates_match_torch():
    a, b = randn(3, seed=1), randn(2, seed=2)
    ours = [nn.Parameter(a.copy()), nn.Parameter(b.copy())]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())), torch.nn.Parameter(torch.from_numpy(b.copy()))]
    opt = optim.SGD([{"params": [ours[0]]}, {"params": [ours[1]], "lr": 0.5}], lr=0.1, momentum=0.9)
    opt_t = torch.optim.SGD([{"params": [theirs[0]]}, {"params": [theirs[1]], "lr": 0.5}], lr=0.1, momentum=0.9)
    for step in range(3):
        for p, p_t, seed in zip(ours, theirs, (step, step + 10)):
            g = randn(*p.shape, seed=seed)
            p.grad, p_t.grad = minidl.tensor(g), to_torch(g)
        opt.step()
        opt_t.step()
    for p, p_t in zip(ours, theirs):
        assert_close(p, p_t, "parameter", 6 * 3)  # 3 SGD-momentum steps, 6 roundings each


@pytest.mark.parametrize(
    "ours_factory,theirs_factory",
    [
        (lambda o: optim.lr_scheduler.ExponentialLR(o, 0.8), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8)),
        (lambda o: optim.lr_scheduler.StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (
            lambda o: optim.lr_scheduler.CosineAnnealingLR(o, 7, eta_min=0.01),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, eta_min=0.01),
        ),
    ],
)
def test_learning_rate_schedules(ours_factory, theirs_factory):
    opt = optim.SGD([nn.Parameter(np.zeros(1, np.float32))], lr=0.2)
    opt_t = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    sched, sched_t = ours_factory(opt), theirs_factory(opt_t)
    for epoch in range(7):
        # float64 on both sides, a few operations per epoch (torch's cosine schedule is recursive,
        # ours closed-form): ~1e-15 apart; 1e-9 leaves room for 7 epochs of that, abs for lr = 0.
        assert sched.get_last_lr() == pytest.approx(sched_t.get_last_lr(), rel=1e-9, abs=1e-12), f"epoch {epoch}"
        opt_t.step()  # torch warns if the scheduler steps before the optimizer
        sched.step()
        sched_t.step()


def test_clip_grad_norm_matches_torch():
    grads = [randn(3, 4, seed=1) * 5, randn(7, seed=2) * 5]
    ours = [nn.Parameter(np.zeros_like(g)) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for p, p_t, g in zip(ours, theirs, grads):
        p.grad, p_t.grad = minidl.tensor(g), to_torch(g)
    norm = optim.clip_grad_norm_(ours, 1.0)
    norm_t = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    # A sum of 19 squares (same sign: relative) and a sqrt, each side: 2·(19 + 2)·eps = 5e-6.
    assert norm.item() == pytest.approx(norm_t.item(), rel=1e-5)
    for p, p_t in zip(ours, theirs):
        assert_close(p.grad, p_t.grad, "clipped gradient", 19 + 4)  # the norm's roundings, 1/(norm + 1e-6), g·coef


def clip_both(grads, max_norm=1.0, norm_type=2.0):
    """clip_grad_norm_ in both on the same gradients: (our norm, our grads, torch's norm, torch's grads)."""
    ours = [nn.Parameter(np.zeros_like(g)) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for p, p_t, g in zip(ours, theirs, grads):
        p.grad, p_t.grad = minidl.tensor(g.copy()), to_torch(g)
    norm = optim.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    norm_t = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    return norm.item(), [p.grad.data for p in ours], norm_t.item(), [p.grad.numpy() for p in theirs]


@pytest.mark.parametrize("norm_type", [1.0, 3.0, 0.5, 0.0, math.inf, -math.inf])
def test_clip_grad_norm_of_every_order_matches_torch(norm_type):
    grads = [randn(3, 4, seed=1) * 5, randn(7, seed=2) * 5]
    norm, clipped, norm_t, clipped_t = clip_both(grads, norm_type=norm_type)
    # Σ|g|^q over 19 same-sign terms, the power and the root (transcendentals): 2·(19 + 2·4 + 2)·eps = 7e-6.
    assert norm == pytest.approx(norm_t, rel=1e-5)
    for ours, theirs in zip(clipped, clipped_t):
        assert_close(ours, theirs, f"clipped gradient, norm_type={norm_type}", 19 + 2 * TRANSCENDENTAL_ULPS + 4)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_clip_grad_norm_with_nan_or_inf_gradients_does_what_torch_does(bad):
    # NaN: the coefficient is NaN and every gradient becomes NaN. inf: the coefficient is 0, so
    # finite entries become 0 and the inf one NaN (inf * 0). Either way the step is visibly broken.
    grads = [np.array([bad, 1.0], np.float32), np.array([2.0], np.float32)]
    norm, clipped, norm_t, clipped_t = clip_both(grads)
    assert (math.isnan(norm) and math.isnan(norm_t)) or norm == norm_t
    for ours, theirs in zip(clipped, clipped_t):
        np.testing.assert_array_equal(ours, theirs)


def test_clip_grad_norm_of_a_long_gradient_stays_accurate():
    # One float32 dot product over millions of same-sign terms is off by ~1e-4 (torch 2.13's norm
    # here is off by ~5e-4); the norm must stay within 1e-5 of the float64 value. Ours sums rows
    # of 256 squares in float32 (at most 256·2^-24 = 1.5e-5 off in any order, on any machine),
    # then the rows in float64: half that, 7.6e-6, on the norm.
    grads = [np.full(3_000_000, 0.1, np.float32), np.full(5, 0.1, np.float32)]
    exact = math.sqrt(sum(float(np.dot(g.astype(np.float64), g.astype(np.float64))) for g in grads))
    norm, clipped, norm_t, _ = clip_both(grads, max_norm=1.0)
    # torch's own norm is off by 4.5e-4 here, on each of its CPU paths (default, AVX2, AVX-512).
    assert norm == pytest.approx(exact, rel=1e-5) and norm_t == pytest.approx(exact, rel=1e-3)
    np.testing.assert_allclose(clipped[0][:10], 0.1 / exact, rtol=1e-5)  # the norm's 7.6e-6 and 2 roundings


def test_clip_grad_norm_of_empty_gradients_is_zero():
    # torch 2.13 raises for the inf-norm of an empty gradient (a max over nothing); the norm of an
    # empty vector is 0 in every order, so we return 0 and leave the gradients alone.
    for norm_type in (2.0, math.inf):
        params = [nn.Parameter(np.zeros((0, 3), np.float32)), nn.Parameter(np.zeros(2, np.float32))]
        params[0].grad, params[1].grad = minidl.zeros(0, 3), minidl.tensor(np.array([0.3, -0.4], np.float32))
        norm = optim.clip_grad_norm_(params[:1], 1.0, norm_type=norm_type)
        assert norm.item() == 0.0 and params[0].grad.shape == (0, 3)
        expected = 0.5 if norm_type == 2.0 else 0.4
        norm = optim.clip_grad_norm_(params, 1.0, norm_type=norm_type).item()
        assert norm == pytest.approx(expected)  # float32 0.3, 0.4 and 2 roundings: a few ulps (1e-6 = 8)
