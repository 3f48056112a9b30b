"""The toolbox (issue 13) against PyTorch 2.13 CPU: the same layers with copied weights, forward and
backward; L-BFGS iterates; torch.autograd.functional. Helpers and tolerance rules are those of
test_torch_parity.py (chain_atol budgets counted from each computation, see tests/tolerances.py).
"""

import numpy as np
import pytest
from test_torch_parity import ACT, assert_close, assert_same_gradients, check_layer, copy_parameters, randn, to_torch
from tolerances import TRANSCENDENTAL_ULPS, eps

import minidl
from minidl import nn, optim
from minidl.nn.utils import rnn as rnn_utils

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

ERF = 80  # the composed erf's worst case in units of eps (see test_toolbox_ops.erf_rtol)
GRU_STEP = 10 + ACT + 2 + ACT + 3  # gates (in + hidden + 2 biases), σ, r·(hW + b) + x, tanh, n + z·(h - n)


# ---------------------------------------------------------------------------
# Convolutions and pools
# ---------------------------------------------------------------------------
CONV1D = [  # in, out, kernel, stride, padding, dilation, groups, bias, length
    (3, 4, 3, 1, 0, 1, 1, True, 12),
    (2, 4, 5, 2, 2, 1, 1, True, 40),
    (4, 4, 3, 1, 2, 2, 4, False, 11),  # depthwise, dilated
    (4, 6, 2, 3, 1, 2, 2, True, 13),  # grouped, strided, dilated
]


@pytest.mark.parametrize("cin,cout,k,stride,padding,dilation,groups,bias,length", CONV1D)
def test_conv1d(cin, cout, k, stride, padding, dilation, groups, bias, length):
    ours = nn.Conv1d(cin, cout, k, stride, padding, dilation, groups, bias)
    theirs = torch.nn.Conv1d(cin, cout, k, stride, padding, dilation, groups, bias)
    # out: C/groups·k products + bias; dW and db sum over N·L_out <= 2·40 positions; dx over F/groups·k.
    check_layer(ours, theirs, randn(2, cin, length), budget=80, fan_in=80)


CONV2D = [  # in, out, kernel, stride, padding, dilation, groups
    (3, 4, (1, 5), 1, (0, 2), 1, 1),  # a 1-D filter on images
    (3, 4, (3, 2), (2, 1), (1, 0), 1, 1),  # rectangular, strided
    (2, 4, (3, 3), 1, 2, (2, 1), 1),  # dilated in one direction
    (4, 4, 3, (1, 2), 1, 1, 4),  # depthwise
    (4, 6, (2, 3), 2, (1, 2), (1, 2), 2),  # everything at once
]


@pytest.mark.parametrize("cin,cout,kernel,stride,padding,dilation,groups", CONV2D)
def test_conv2d_rectangular_strided_dilated_grouped(cin, cout, kernel, stride, padding, dilation, groups):
    ours = nn.Conv2d(cin, cout, kernel, stride, padding, dilation, groups)
    theirs = torch.nn.Conv2d(cin, cout, kernel, stride, padding, dilation, groups)
    # out: C/groups·kh·kw <= 12 products + bias; dW, db: N·OH·OW <= 2·9·8 positions; dx: F/groups·kh·kw.
    check_layer(ours, theirs, randn(2, cin, 9, 8), budget=144, fan_in=144)


@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 1, 1), (3, 2, 1), (4, 3, 2)])
def test_pool1d(kernel, stride, padding):
    x = randn(2, 3, 11)
    check_layer(nn.MaxPool1d(kernel, stride, padding), torch.nn.MaxPool1d(kernel, stride, padding), x, budget=kernel)
    # a sum of `kernel` values and a division; dx shares each window's gradient (overlaps add up)
    check_layer(
        nn.AvgPool1d(kernel, stride, padding), torch.nn.AvgPool1d(kernel, stride, padding), x, budget=2 * kernel + 1
    )


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 2), 4, (None, 2)])
def test_adaptive_avg_pool2d(size):
    # each output is the mean of at most 7·5 values: a sum of 35 and a division; dx: shares of overlapping bins
    check_layer(nn.AdaptiveAvgPool2d(size), torch.nn.AdaptiveAvgPool2d(size), randn(2, 3, 7, 5), budget=36)


@pytest.mark.parametrize("size", [1, 3, 4])
def test_adaptive_avg_pool1d(size):
    check_layer(nn.AdaptiveAvgPool1d(size), torch.nn.AdaptiveAvgPool1d(size), randn(2, 3, 10), budget=11)


# ---------------------------------------------------------------------------
# Activations, normalization, losses, attention
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate):
    # x/2·(1 + erf(x/√2)) (or tanh(...)): the erf (or tanh) and 4 roundings; the gradient adds an exp and 4 more.
    # 1 + erf cancels for negative x, so the budget is relative to max|x| (the inputs are of size 1-3).
    x = randn(4, 6) * 2
    inner = ERF if approximate == "none" else ACT
    check_layer(nn.GELU(approximate), torch.nn.GELU(approximate), x, budget=2 * inner + 8 + TRANSCENDENTAL_ULPS)


@pytest.mark.parametrize("shape", [5, (3, 5)])
def test_layer_norm(shape):
    ours, theirs = nn.LayerNorm(shape), torch.nn.LayerNorm(shape)
    with minidl.no_grad():  # non-trivial affine parameters
        ours.weight.copy_(randn(*ours.weight.shape, seed=1) + 1)
        ours.bias.copy_(randn(*ours.bias.shape, seed=2))
    # n <= 15 values per example: mean (n), variance (2n + 2), 1/sqrt(var + eps), normalize and affine (4);
    # backward sums dy and dy·x̂ over n (2n) and combines them (5). sqrt(n) for the sums' terms.
    n = 15
    check_layer(ours, theirs, randn(2, 3, 5) * 3 + 1, budget=5 * n + 2 * TRANSCENDENTAL_ULPS + 20, fan_in=n)


def test_maxout_matches_a_linear_layer_then_a_max_in_torch():
    ours = nn.Maxout(5, 3, pieces=2)
    theirs = torch.nn.Linear(5, 6)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.linear.weight.array))
        theirs.bias.copy_(torch.from_numpy(ours.linear.bias.array))
    x = randn(4, 5)
    x_o, x_t = minidl.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    out, out_t = ours(x_o), theirs(x_t).reshape(4, 3, 2).max(dim=2).values
    assert_close(out, out_t, "maxout", budget=6, fan_in=6)  # 5 products and a bias; the max selects
    g = randn(4, 3, seed=3)
    (out * minidl.tensor(g)).sum().backward()
    (out_t * to_torch(g)).sum().backward()
    assert_close(x_o.grad, x_t.grad, "input gradient", budget=6, fan_in=6)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")
@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_loss(reduction, log_target):
    rng = np.random.default_rng(0)
    log_q = np.log(rng.dirichlet(np.ones(5), size=4)).astype(np.float32)
    p = rng.dirichlet(np.ones(5), size=4).astype(np.float32)
    target = np.log(p) if log_target else p
    x_o, x_t = minidl.tensor(log_q, requires_grad=True), to_torch(log_q, requires_grad=True)
    loss = nn.KLDivLoss(reduction, log_target)(x_o, minidl.tensor(target))
    loss_t = torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)(x_t, to_torch(target))
    # per element a log (or exp), a subtraction and a product; then a sum of 20 and a division
    budget = TRANSCENDENTAL_ULPS + 2 + 20 + 1
    assert_close(loss, loss_t, "loss", budget, 20)
    g = randn(*loss.shape, seed=1) if reduction == "none" else None
    loss.backward(None if g is None else minidl.tensor(g))
    loss_t.backward(None if g is None else to_torch(g))
    assert_close(x_o.grad, x_t.grad, "gradient", budget)


@pytest.mark.parametrize("case", ["plain", "bool mask", "float mask", "causal", "scale", "3-d bool mask"])
def test_scaled_dot_product_attention(case):
    q, k, v = randn(2, 3, 4, 8, seed=1), randn(2, 3, 6, 8, seed=2), randn(2, 3, 6, 5, seed=3)
    if case == "3-d bool mask":  # (N, L, E) with N = L = 4: an (L, S) mask applies to every example alike
        q, k, v = randn(4, 4, 8, seed=1), randn(4, 6, 8, seed=2), randn(4, 6, 5, seed=3)
        case = "bool mask"
    kwargs = {}
    if case == "bool mask":
        mask = np.random.default_rng(4).random((4, 6)) < 0.7
        mask[:, 0] = True  # every query sees at least one key
        kwargs["attn_mask"] = mask
    elif case == "float mask":
        kwargs["attn_mask"] = randn(4, 6, seed=5)
    elif case == "causal":
        kwargs["is_causal"] = True
    elif case == "scale":
        kwargs["scale"] = 0.3
    ours_in = [minidl.tensor(a, requires_grad=True) for a in (q, k, v)]
    theirs_in = [to_torch(a, requires_grad=True) for a in (q, k, v)]
    as_torch = {key: to_torch(val) if isinstance(val, np.ndarray) else val for key, val in kwargs.items()}
    out = nn.functional.scaled_dot_product_attention(*ours_in, **kwargs)
    out_t = torch.nn.functional.scaled_dot_product_attention(*theirs_in, **as_torch)
    # scores: 8 products and a scale; softmax over 6 (6 + 1 transcendental + 2); weights·v: 6 products.
    # Backward: the same in reverse (softmax's Jacobian sums 6 terms, dq and dk sum 6, dv sums 4).
    budget = 2 * (9 + 6 + TRANSCENDENTAL_ULPS + 2 + 6)
    assert_close(out, out_t, "output", budget, 8)
    g = randn(*out.shape, seed=6)
    (out * minidl.tensor(g)).sum().backward()
    (out_t * to_torch(g)).sum().backward()
    for name, a, b in zip("qkv", ours_in, theirs_in):
        assert_close(a.grad, b.grad, f"gradient of {name}", budget, 8)


# ---------------------------------------------------------------------------
# Recurrent layers: GRU, and bidirectional GRU / LSTM / RNN, packed or not
# ---------------------------------------------------------------------------
def test_gru_cell():
    ours, theirs = nn.GRUCell(3, 4), torch.nn.GRUCell(3, 4)
    copy_parameters(ours, theirs)
    x, h = randn(2, 3), randn(2, 4, seed=1)
    x_o, h_o = minidl.tensor(x, requires_grad=True), minidl.tensor(h, requires_grad=True)
    x_t, h_t = to_torch(x, requires_grad=True), to_torch(h, requires_grad=True)
    out, out_t = ours(x_o, h_o), theirs(x_t, h_t)
    assert_close(out, out_t, "h'", GRU_STEP, 10)
    g = randn(2, 4, seed=2)
    (out * minidl.tensor(g)).sum().backward()
    (out_t * to_torch(g)).sum().backward()
    assert_close(x_o.grad, x_t.grad, "dx", 2 * GRU_STEP, 10)
    assert_close(h_o.grad, h_t.grad, "dh", 2 * GRU_STEP, 10)
    assert_same_gradients(ours, theirs, budget=2 * GRU_STEP, fan_in=10)


RECURRENT = [  # layer, num_layers, bidirectional, batch_first
    ("GRU", 1, False, False),
    ("GRU", 2, False, True),
    ("GRU", 2, True, False),
    ("GRU", 1, True, True),
    ("LSTM", 2, True, True),
    ("RNN", 2, True, False),
]


def _step_budget(layer):
    from test_torch_parity import LSTM_STEP

    return {"GRU": GRU_STEP, "LSTM": LSTM_STEP, "RNN": 10 + ACT}[layer]


def _state_tensors(state):
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("layer,num_layers,bidirectional,batch_first", RECURRENT)
@pytest.mark.parametrize("packed", [False, True])
def test_recurrent_layers(layer, num_layers, bidirectional, batch_first, packed):
    ours = getattr(nn, layer)(3, 4, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    theirs = getattr(torch.nn, layer)(3, 4, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    copy_parameters(ours, theirs)  # the same names as PyTorch
    steps, batch, directions = 5, 3, 2 if bidirectional else 1
    x = randn(batch, steps, 3) if batch_first else randn(steps, batch, 3)
    shape = (num_layers * directions, batch, 4)
    initial = [randn(*shape, seed=s) for s in (1, 2)][: 2 if layer == "LSTM" else 1]
    x_o, x_t = minidl.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    init_o = [minidl.tensor(a, requires_grad=True) for a in initial]
    init_t = [to_torch(a, requires_grad=True) for a in initial]
    state_o = tuple(init_o) if layer == "LSTM" else init_o[0]
    state_t = tuple(init_t) if layer == "LSTM" else init_t[0]
    lengths = [5, 2, 4]
    if packed:
        inp = rnn_utils.pack_padded_sequence(x_o, lengths, batch_first=batch_first, enforce_sorted=False)
        inp_t = torch.nn.utils.rnn.pack_padded_sequence(x_t, torch.tensor(lengths), batch_first, enforce_sorted=False)
        out, final = ours(inp, state_o)
        out_t, final_t = theirs(inp_t, state_t)
        assert_close(out.data, out_t.data, "packed data", 2 * steps * num_layers * directions * _step_budget(layer), 10)
        out, _ = rnn_utils.pad_packed_sequence(out, batch_first=batch_first)
        out_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_t, batch_first=batch_first)
    else:
        out, final = ours(x_o, state_o)
        out_t, final_t = theirs(x_t, state_t)
    # Forward and back through `steps` steps of every layer, both directions: the longest path.
    budget = 2 * steps * num_layers * directions * _step_budget(layer)
    assert_close(out, out_t, "output", budget, 10)
    for i, (a, b) in enumerate(zip(_state_tensors(final), _state_tensors(final_t))):
        assert_close(a, b, f"final state {i}", budget, 10)
    # A loss that uses the outputs and every final state.
    loss = (out * minidl.tensor(randn(*out.shape, seed=3))).sum()
    loss_t = (out_t * to_torch(randn(*out.shape, seed=3))).sum()
    for i, (a, b) in enumerate(zip(_state_tensors(final), _state_tensors(final_t))):
        g = randn(*a.shape, seed=4 + i)
        loss, loss_t = loss + (a * minidl.tensor(g)).sum(), loss_t + (b * to_torch(g)).sum()
    loss.backward()
    loss_t.backward()
    assert_close(x_o.grad, x_t.grad, "input gradient", budget, 10)
    for i, (a, b) in enumerate(zip(init_o, init_t)):
        assert_close(a.grad, b.grad, f"initial state {i} gradient", budget, 10)
    assert_same_gradients(ours, theirs, budget=budget, fan_in=10)


# ---------------------------------------------------------------------------
# Distillation: the loss PyTorch users write by hand
# ---------------------------------------------------------------------------
def test_distillation_loss_is_the_t_squared_scaled_kl_plus_cross_entropy():
    student, teacher, labels = randn(6, 5) * 2, randn(6, 5, seed=1) * 3, np.array([0, 4, 2, 2, 1, 3])
    T, alpha = 3.0, 0.7
    s_o, s_t = minidl.tensor(student, requires_grad=True), to_torch(student, requires_grad=True)
    soft = nn.functional.soft_targets(minidl.tensor(teacher), T)
    loss = nn.functional.distillation_loss(s_o, soft, labels, temperature=T, alpha=alpha)
    F = torch.nn.functional
    soft_t = F.softmax(to_torch(teacher) / T, dim=1)
    kl = F.kl_div(F.log_softmax(s_t / T, dim=1), soft_t, reduction="batchmean") * T * T
    loss_t = alpha * kl + (1 - alpha) * F.cross_entropy(s_t, torch.from_numpy(labels))
    # two softmaxes over 5 classes (5 + 2 transcendentals + 3 each), a KL summed over 30 elements,
    # a cross-entropy over 6 rows, and a few scalings.
    budget = 2 * (5 + 2 * TRANSCENDENTAL_ULPS + 3) + 30 + 6 + 6
    assert_close(loss, loss_t, "loss", budget, 30)
    loss.backward()
    loss_t.backward()
    assert_close(s_o.grad, s_t.grad, "gradient", budget, 5)


# ---------------------------------------------------------------------------
# L-BFGS: PyTorch's iterates on a small logistic regression
# ---------------------------------------------------------------------------
def logistic_problem(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5)).astype(dtype)
    y = (x @ rng.standard_normal(5) + 0.5 * rng.standard_normal(60) > 0).astype(dtype)
    return x, y


def lbfgs_runs(dtype, line_search, history=100, max_iter=8, steps=3):
    """L-BFGS in both libraries from the same start: every point each evaluated the loss at, the optimizers,
    and the losses each step() returned (benchmarks/bench_toolbox.py uses this too)."""
    x, y = logistic_problem(dtype)
    start = [np.zeros(5, dtype), np.zeros(1, dtype)]
    ours = [nn.Parameter(a.copy()) for a in start]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in start]
    options = dict(lr=1, max_iter=max_iter, line_search_fn=line_search, history_size=history)
    opt, opt_t = optim.LBFGS(ours, **options), torch.optim.LBFGS(theirs, **options)
    points, points_t = [], []

    def closure():
        opt.zero_grad()
        points.append(np.concatenate([p.array.copy() for p in ours]))
        scores = minidl.tensor(x) @ ours[0] + ours[1]
        loss = minidl.binary_cross_entropy_with_logits(scores, minidl.tensor(y)) + 0.01 * (ours[0] * ours[0]).sum()
        loss.backward()
        return loss

    def closure_t():
        opt_t.zero_grad()
        points_t.append(np.concatenate([p.detach().numpy().copy() for p in theirs]))
        scores = torch.from_numpy(x) @ theirs[0] + theirs[1]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(scores, torch.from_numpy(y))
        loss = loss + 0.01 * (theirs[0] * theirs[0]).sum()
        loss.backward()
        return loss

    losses = [(opt.step(closure), opt_t.step(closure_t)) for _ in range(steps)]
    return points, points_t, (opt, ours[0]), (opt_t, theirs[0]), losses


@pytest.mark.parametrize(
    "dtype,line_search,history",
    [
        (np.float64, None, 100),
        (np.float64, "strong_wolfe", 100),
        (np.float64, "strong_wolfe", 3),
        (np.float32, None, 5),
    ],
)
def test_lbfgs_follows_pytorchs_iterates(dtype, line_search, history):
    points, points_t, (opt, w), (opt_t, w_t), losses = lbfgs_runs(dtype, line_search, history)
    for step, (loss, loss_t) in enumerate(losses):
        assert_close(loss, loss_t.detach(), f"loss at the start of step {step}", budget=200, fan_in=60)
    # Every point where the loss was evaluated, in order: the same number of evaluations (the same
    # line-search and stopping decisions) and the same points. Tolerance: a minimizer is fixed by
    # loss values only to sqrt(eps) relative (f(x + δ) - f(x) = O(δ²) near it), and the line search
    # decides on loss values and divides their differences, so two correct implementations agree
    # to sqrt(eps)·max|x|; a wrong formula (scaling, history order, Wolfe test) moves points by O(1).
    assert len(points) == len(points_t) >= 8
    scale = max(np.abs(p).max() for p in points_t)
    for i, (a, b) in enumerate(zip(points, points_t)):
        np.testing.assert_allclose(a, b, rtol=0, atol=np.sqrt(eps(dtype)) * scale, err_msg=f"evaluation {i}")
    assert opt.state[w]["func_evals"] == opt_t.state[w_t]["func_evals"]
    if dtype == np.float64:
        # In float32 the last stopping test, |Δloss| < 1e-9, compares two losses that are equal to the
        # last bit in one implementation and one ulp apart in the other: the iteration count (not the
        # points) may differ there by one iteration that evaluates nothing.
        assert opt.state[w]["n_iter"] == opt_t.state[w_t]["n_iter"]


# ---------------------------------------------------------------------------
# minidl.autograd.functional against torch.autograd.functional (float64)
# ---------------------------------------------------------------------------
def _f(a, b):  # matmul (4 terms), tanh, square, sum of 6
    return ((a @ b).tanh() ** 2).sum()


def _g(a):  # elementwise and a reduction: two outputs
    return (a.sin() * 2, (a * a).sum())


FUNCTIONAL_BUDGET = 4 + ACT + 2 + 6 + 3 * (4 + ACT + 6)  # the function, and up to two backward passes through it


@pytest.mark.parametrize("name", ["vjp", "jvp", "hvp", "vhp", "jacobian", "hessian"])
def test_autograd_functional(name):
    from minidl.autograd import functional as ours

    theirs = torch.autograd.functional
    a, b, va, vb = (randn(*s, seed=i).astype(np.float64) for i, s in enumerate([(3, 4), (4, 2), (3, 4), (4, 2)]))
    T, M = (
        (lambda *arrays: tuple(torch.from_numpy(x) for x in arrays)),
        (lambda *arrays: tuple(minidl.tensor(x) for x in arrays)),
    )
    if name in ("hvp", "vhp"):
        result, expected = getattr(ours, name)(_f, M(a, b), M(va, vb)), getattr(theirs, name)(_f, T(a, b), T(va, vb))
        results, expecteds = [result[0], *result[1]], [expected[0], *expected[1]]
    elif name == "hessian":
        result, expected = ours.hessian(_f, M(a, b)), theirs.hessian(_f, T(a, b))
        results = [result[i][j] for i in range(2) for j in range(2)]
        expecteds = [expected[i][j] for i in range(2) for j in range(2)]
    elif name == "jacobian":
        result = ours.jacobian(lambda a: (a @ minidl.tensor(b)).tanh(), minidl.tensor(a))
        expected = theirs.jacobian(lambda a: (a @ torch.from_numpy(b)).tanh(), torch.from_numpy(a))
        results, expecteds = [result], [expected]
    elif name == "vjp":
        v = (minidl.tensor(randn(3, 4, seed=7).astype(np.float64)), minidl.tensor(np.float64(0.5)))
        result = ours.vjp(_g, minidl.tensor(a), v)
        expected = theirs.vjp(
            lambda a: (a.sin() * 2, (a * a).sum()),
            torch.from_numpy(a),
            tuple(torch.from_numpy(np.asarray(t.array)) for t in v),
        )
        results, expecteds = [*result[0], result[1]], [*expected[0], expected[1]]
    else:
        result = ours.jvp(_g, minidl.tensor(a), minidl.tensor(va))
        expected = theirs.jvp(lambda a: (a.sin() * 2, (a * a).sum()), torch.from_numpy(a), torch.from_numpy(va))
        results, expecteds = [*result[0], *result[1]], [*expected[0], *expected[1]]
    assert len(results) == len(expecteds)
    for i, (r, e) in enumerate(zip(results, expecteds)):
        assert_close(r, e, f"{name} result {i}", FUNCTIONAL_BUDGET, 4)
