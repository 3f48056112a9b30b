"""The training stack on the "cuda" device gives what it gives on the cpu: every loss (with its
reduction, ignore_index, weight, log_target variants), gradient clipping, every optimizer's step
(weight decay, momentum, nesterov, centered, amsgrad) and the learning-rate schedules, run on a
small model moved to "cuda" and compared with the same run on the cpu, values and gradients.

What cannot run on the device (LBFGS) must say so, naming the op and the device. Sizes are tiny:
the emulator runs every CUDA thread as a fiber on the CPU.
"""

import math
import warnings

import numpy as np
import pytest
from cuda_helpers import load_or_skip
from tolerances import TRANSCENDENTAL_ULPS, assert_within, chain_atol

import minidl
from minidl import nn, optim
from minidl.backend.cuda import runtime

load_or_skip()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", runtime.CudaEmulatorWarning)
    assert minidl.cuda.is_available()

N, IN, HIDDEN, C = 8, 6, 8, 5
TU = TRANSCENDENTAL_ULPS

# Rounding budget (units of eps, see tolerances.chain_atol) of one forward and backward of the model
# below and a loss. The two devices differ only in the order of their sums (GEMMs, reductions) and the
# last bits of their transcendentals. Forward: Linear(6 -> 8) 6 + 1 (bias), tanh TU, Linear(8 -> 5)
# 8 + 1, the loss: a log-softmax over C classes C + 2 TU (exp, log), a few elementwise ops (5), the
# reduction over N rows. Backward: the loss's gradient 2 TU + 5, dW2 and db2 sum N rows, dh sums C
# terms, tanh' 2, dW1 and db1 sum N rows. Every stage is non-expanding (Lipschitz <= 1) on these
# values, so the budgets add; fan_in is the longest sum (the terms of a sum of N random-sign terms
# are up to sqrt(N) times the result). Temperatures and the BCE's 1/(p(1-p)) scale values, not
# relative errors, so they need nothing extra.
FORWARD_BUDGET = (IN + 1) + TU + (HIDDEN + 1) + (C + 2 * TU) + 5 + N
BACKWARD_BUDGET = (2 * TU + 5) + N + C + 2 + N
STEP_BUDGET = FORWARD_BUDGET + BACKWARD_BUDGET
FAN_IN = max(IN, HIDDEN, N)


@pytest.fixture(autouse=True)
def _reset_round_trips():
    minidl.cuda.reset_host_round_trips()
    yield


def _model(where):
    minidl.manual_seed(0)
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, C)).to(where)


def _data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, IN)).astype(np.float32)
    targets = rng.integers(0, C, N)
    ignored = targets.copy()
    ignored[[1, 4]] = -100  # two rows that do not count
    other_ignored = targets.copy()
    other_ignored[2] = 7  # ignore_index=7: out of range of the classes, but ignored
    soft = rng.random((N, C)).astype(np.float32)
    probs = (soft / soft.sum(1, keepdims=True)).astype(np.float32)
    binary = (rng.random((N, C)) > 0.5).astype(np.float32)
    weight = rng.random(C).astype(np.float32) + 0.5
    return {
        "x": x,
        "targets": targets,
        "ignored": ignored,
        "other_ignored": other_ignored,
        "probs": probs,
        "log_probs": np.log(probs),
        "binary": binary,
        "soft_binary": rng.random((N, C)).astype(np.float32),
        "weight": weight,
        "all_ignored": np.full(N, -100),
    }


F = nn.functional
LOSSES = {
    # name: loss(model output, data on the device)
    "cross_entropy_mean": lambda z, d: F.cross_entropy(z, d["targets"]),
    "cross_entropy_sum": lambda z, d: F.cross_entropy(z, d["targets"], reduction="sum"),
    "cross_entropy_none": lambda z, d: F.cross_entropy(z, d["targets"], reduction="none"),
    "cross_entropy_ignore_mean": lambda z, d: F.cross_entropy(z, d["ignored"], ignore_index=-100),
    "cross_entropy_ignore_sum": lambda z, d: F.cross_entropy(z, d["ignored"], reduction="sum"),
    "cross_entropy_ignore_none": lambda z, d: F.cross_entropy(z, d["ignored"], reduction="none"),
    "cross_entropy_ignore_7": lambda z, d: F.cross_entropy(z, d["other_ignored"], ignore_index=7),
    "cross_entropy_all_ignored": lambda z, d: F.cross_entropy(z, d["all_ignored"]),
    "CrossEntropyLoss_ignore": lambda z, d: nn.CrossEntropyLoss(ignore_index=-100)(z, d["ignored"]),
    "nll_loss_mean": lambda z, d: F.nll_loss(z.log_softmax(-1), d["targets"]),
    "nll_loss_sum": lambda z, d: F.nll_loss(z.log_softmax(-1), d["targets"], reduction="sum"),
    "nll_loss_none": lambda z, d: F.nll_loss(z.log_softmax(-1), d["targets"], reduction="none"),
    "nll_loss_ignore_mean": lambda z, d: F.nll_loss(z.log_softmax(-1), d["ignored"], ignore_index=-100),
    "nll_loss_ignore_none": lambda z, d: F.nll_loss(z.log_softmax(-1), d["ignored"], reduction="none"),
    "nll_loss_ignore_7": lambda z, d: F.nll_loss(z.log_softmax(-1), d["other_ignored"], ignore_index=7),
    "NLLLoss_sum": lambda z, d: nn.NLLLoss(reduction="sum")(nn.LogSoftmax(-1)(z), d["ignored"]),
    "mse_mean": lambda z, d: F.mse_loss(z, d["probs"]),
    "mse_sum": lambda z, d: nn.MSELoss(reduction="sum")(z, d["probs"]),
    "mse_none": lambda z, d: F.mse_loss(z, d["probs"], reduction="none"),
    "bce_mean": lambda z, d: F.binary_cross_entropy(z.sigmoid(), d["binary"]),
    "bce_weight_sum": lambda z, d: F.binary_cross_entropy(z.sigmoid(), d["soft_binary"], d["weight"], "sum"),
    "BCELoss_weight_none": lambda z, d: nn.BCELoss(d["weight"], reduction="none")(z.sigmoid(), d["binary"]),
    "bce_logits_mean": lambda z, d: F.binary_cross_entropy_with_logits(z, d["binary"]),
    "bce_logits_sum": lambda z, d: nn.BCEWithLogitsLoss(reduction="sum")(z, d["soft_binary"]),
    "bce_logits_none": lambda z, d: F.binary_cross_entropy_with_logits(z, d["binary"], reduction="none"),
    "kl_div_mean": lambda z, d: F.kl_div(z.log_softmax(-1), d["probs"]),
    "kl_div_batchmean": lambda z, d: nn.KLDivLoss("batchmean")(z.log_softmax(-1), d["probs"]),
    "kl_div_sum_log_target": lambda z, d: F.kl_div(z.log_softmax(-1), d["log_probs"], "sum", log_target=True),
    "kl_div_none": lambda z, d: F.kl_div(z.log_softmax(-1), d["probs"], reduction="none"),
    "distillation_soft": lambda z, d: nn.DistillationLoss(temperature=2.0)(z, d["probs"]),
    "distillation_with_targets": lambda z, d: nn.DistillationLoss(2.0, alpha=0.7)(z, d["probs"], d["targets"]),
}


def _on(where, data):
    """The data as tensors on `where` (targets as int64, floats as float32)."""
    return {k: minidl.tensor(v, device=where) for k, v in data.items()}


def _loss_and_grads(where, loss_fn, data):
    model = _model(where)
    d = _on(where, data)
    loss = loss_fn(model(d["x"]), d)
    (loss if loss.ndim == 0 else loss.sum()).backward()
    assert loss.device.type == where
    return loss.cpu().numpy(), [p.grad.cpu().numpy() for p in model.parameters()]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_on_cuda_gives_the_cpu_values_and_gradients(name):
    data = _data()
    loss_cpu, grads_cpu = _loss_and_grads("cpu", LOSSES[name], data)
    loss_cuda, grads_cuda = _loss_and_grads("cuda", LOSSES[name], data)
    assert_within(loss_cuda, loss_cpu, chain_atol(loss_cpu, budget=FORWARD_BUDGET, fan_in=FAN_IN), f"{name} loss")
    for i, (got, want) in enumerate(zip(grads_cuda, grads_cpu)):
        atol = chain_atol(want, budget=STEP_BUDGET, fan_in=FAN_IN)
        assert_within(got, want, atol, f"{name}: gradient of parameter {i}")
    if name != "cross_entropy_all_ignored":
        assert any(np.abs(g).max() > 0 for g in grads_cpu), "zero gradients would make the comparison say nothing"
    assert minidl.cuda.host_round_trips() == {}, f"{name} went through the host"


def test_ignored_rows_get_no_loss_and_no_gradient_on_cuda():
    x = minidl.randn(4, 5, device="cuda", requires_grad=True)
    t = minidl.tensor([1, 2, -100, 3], device="cuda")
    losses = minidl.cross_entropy(x, t, reduction="none")
    assert losses.cpu().numpy()[2] == 0
    minidl.cross_entropy(x, t).backward()
    grad = x.grad.cpu().numpy()
    assert np.all(grad[2] == 0) and np.all(np.abs(grad[[0, 1, 3]]).sum(1) > 0)
    x.grad = None
    minidl.nll_loss(x.log_softmax(-1), t, ignore_index=-100).backward()
    grad = x.grad.cpu().numpy()
    assert np.all(grad[2] == 0) and np.all(np.abs(grad[[0, 1, 3]]).sum(1) > 0)


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
def test_a_target_out_of_range_on_cuda_is_an_error_naming_it(op):
    x = minidl.randn(3, 4, device="cuda")
    t = minidl.tensor([0, 9, 1], device="cuda")
    with pytest.raises(IndexError, match=rf"{op}.*target 9.*4 classes"):
        getattr(minidl, op)(x, t)
    with pytest.raises(IndexError, match=rf"{op}.*target -100.*4 classes"):
        getattr(minidl, op)(x, minidl.tensor([0, -100, 1], device="cuda"), ignore_index=-1)


# ---------------------------------------------------------------------------
# Gradient clipping
# ---------------------------------------------------------------------------
def _gradients(where, scale=1.0):
    model = _model(where)
    d = _on(where, _data())
    (F.cross_entropy(model(d["x"]), d["targets"]) * scale).backward()
    return model


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, -math.inf, 0.0])
@pytest.mark.parametrize("max_norm", [1e-3, 1e3], ids=["clips", "leaves"])
def test_clip_grad_norm_on_cuda_matches_the_cpu(norm_type, max_norm):
    """The norm is a sum over every gradient element (about 100 here) of |g|^q, then a root: the
    budget is that sum's length, TU for the power and the root, plus the gradients' own STEP_BUDGET
    carried through (a norm is 1-Lipschitz in its argument); scaling by the coefficient adds one rounding."""
    results = {}
    for where in ("cpu", "cuda"):
        model = _gradients(where)
        norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm, norm_type=norm_type)
        assert norm.device.type == where
        results[where] = (norm.item(), [p.grad.cpu().numpy() for p in model.parameters()])
    (norm_cpu, grads_cpu), (norm_cuda, grads_cuda) = results["cpu"], results["cuda"]
    count = sum(g.size for g in grads_cpu)
    budget = STEP_BUDGET + count + 2 * TU
    assert_within(norm_cuda, norm_cpu, chain_atol(np.float32(norm_cpu), budget=budget, fan_in=FAN_IN), "norm")
    for i, (got, want) in enumerate(zip(grads_cuda, grads_cpu)):
        assert_within(got, want, chain_atol(want, budget=budget + 1, fan_in=FAN_IN), f"clipped gradient {i}")
    assert minidl.cuda.host_round_trips() == {}


def test_clip_grad_norm_on_cuda_spreads_nan_and_can_refuse_it():
    for where in ("cpu", "cuda"):
        model = _gradients(where)
        params = list(model.parameters())
        params[0].grad.data[0, 0] = float("nan")
        norm = nn.utils.clip_grad_norm_(params, 1.0)
        assert math.isnan(norm.item()) and all(np.isnan(p.grad.cpu().numpy()).all() for p in params)
        params[0].grad.data[0, 0] = float("inf")
        with pytest.raises(RuntimeError, match="clip_grad_norm_: the total gradient norm is"):
            nn.utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)


def test_clip_grad_value_on_cuda_matches_the_cpu():
    """Clamping is exact (no rounding), so only the gradients' own differences remain."""
    results = {}
    for where in ("cpu", "cuda"):
        model = _gradients(where, scale=10.0)
        nn.utils.clip_grad_value_(model.parameters(), 0.05)
        results[where] = [p.grad.cpu().numpy() for p in model.parameters()]
    for i, (got, want) in enumerate(zip(results["cuda"], results["cpu"])):
        assert np.abs(want).max() == pytest.approx(0.05), "nothing was clipped: the test would say nothing"
        assert_within(got, want, chain_atol(want, budget=STEP_BUDGET, fan_in=FAN_IN), f"clipped gradient {i}")
    assert minidl.cuda.host_round_trips() == {}


# ---------------------------------------------------------------------------
# Optimizers and schedules
# ---------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1),
    "sgd_momentum_wd": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
    "sgd_nesterov": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "sgd_dampening": lambda p: optim.SGD(p, lr=0.1, momentum=0.8, dampening=0.3),
    "adagrad_wd": lambda p: optim.Adagrad(p, lr=0.05, weight_decay=1e-2),
    "rmsprop_wd": lambda p: optim.RMSprop(p, lr=0.01, weight_decay=1e-2),
    "rmsprop_centered": lambda p: optim.RMSprop(p, lr=0.01, alpha=0.9, centered=True),
    "adam_wd": lambda p: optim.Adam(p, lr=0.01, weight_decay=1e-2),
    "adam_amsgrad": lambda p: optim.Adam(p, lr=0.01, betas=(0.8, 0.9), amsgrad=True),
}
SCHEDULES = {
    "none": None,
    "step": lambda o: optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
    "exponential": lambda o: optim.lr_scheduler.ExponentialLR(o, gamma=0.7),
    "cosine": lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=4, eta_min=1e-3),
}
STEPS = 4
# An update is about 10 roundings (Adam's: two moments, two bias corrections, a square root, a
# division; its step lr·m̂/(√v̂+eps) is a ratio of two quantities with the same relative error, so it
# carries gradient errors with a factor <= 2, counted in the 10). STEPS short steps: worst case.
UPDATE_BUDGET = 10


def _train(where, make_optimizer, make_schedule, clip=None):
    model = _model(where)
    d = _on(where, _data())
    optimizer = make_optimizer(model.parameters())
    schedule = make_schedule(optimizer) if make_schedule else None
    losses, lrs = [], []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(d["x"]), d["ignored"])
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        if schedule is not None:
            schedule.step()
        losses.append(loss.item())
        lrs.append(optimizer.param_groups[0]["lr"])
    return np.array(losses), lrs, [p.cpu().numpy() for p in model.parameters()]


# Every optimizer without a schedule, and each schedule with two of them (a schedule only sets lr).
RUNS = [(name, "none") for name in sorted(OPTIMIZERS)] + [
    (name, schedule) for schedule in sorted(SCHEDULES) if schedule != "none" for name in ("sgd_momentum_wd", "adam_wd")
]


@pytest.mark.parametrize(("name", "schedule"), RUNS)
def test_every_optimizer_and_schedule_on_cuda_ends_where_the_cpu_ends(name, schedule):
    losses_cpu, lrs_cpu, params_cpu = _train("cpu", OPTIMIZERS[name], SCHEDULES[schedule])
    losses_cuda, lrs_cuda, params_cuda = _train("cuda", OPTIMIZERS[name], SCHEDULES[schedule])
    assert losses_cpu[-1] < losses_cpu[0], "the model did not train: the comparison would say little"
    assert lrs_cuda == lrs_cpu
    budget = STEPS * (STEP_BUDGET + UPDATE_BUDGET)
    losses_atol = chain_atol(losses_cpu, budget=budget, fan_in=FAN_IN, dtype=np.float32)
    assert_within(losses_cuda, losses_cpu, losses_atol, "losses")
    for i, (got, want) in enumerate(zip(params_cuda, params_cpu)):
        assert_within(got, want, chain_atol(want, budget=budget, fan_in=FAN_IN), f"{name}: parameter {i}")
    assert minidl.cuda.host_round_trips() == {}


def test_a_training_step_with_clipping_on_cuda_ends_where_the_cpu_ends():
    make = OPTIMIZERS["sgd_momentum_wd"]
    losses_cpu, _, params_cpu = _train("cpu", make, None, clip=0.05)
    losses_cuda, _, params_cuda = _train("cuda", make, None, clip=0.05)
    budget = STEPS * (STEP_BUDGET + 100 + 2 * TU + UPDATE_BUDGET)  # plus the norm's sum, root and scaling
    losses_atol = chain_atol(losses_cpu, budget=budget, fan_in=FAN_IN, dtype=np.float32)
    assert_within(losses_cuda, losses_cpu, losses_atol, "losses")
    for i, (got, want) in enumerate(zip(params_cuda, params_cpu)):
        assert_within(got, want, chain_atol(want, budget=budget, fan_in=FAN_IN), f"parameter {i}")
    assert minidl.cuda.host_round_trips() == {}


def _lbfgs_run(where, line_search_fn):
    model = _model(where)
    d = _on(where, _data())
    optimizer = optim.LBFGS(model.parameters(), max_iter=4, line_search_fn=line_search_fn)

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(d["x"]), d["targets"])
        loss.backward()
        return loss

    losses = [float(optimizer.step(closure)) for _ in range(2)]
    return losses, [p.detach().cpu().numpy() for p in model.parameters()]


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_on_cuda_ends_where_the_cpu_ends(line_search_fn):
    losses_cpu, params_cpu = _lbfgs_run("cpu", line_search_fn)
    minidl.cuda.reset_host_round_trips()
    losses_cuda, params_cuda = _lbfgs_run("cuda", line_search_fn)
    # Eight iterations, each at most a few closure calls: the budget of one step per closure call, and
    # the history's dot products over all the parameters (FAN_IN is too short a sum for them). A long
    # chain, so the probabilistic count (tolerances' module docstring) rather than the worst case.
    budget = 8 * 3 * STEP_BUDGET
    n = sum(p.size for p in params_cpu)

    def atol(want):
        return chain_atol(want, budget=budget, fan_in=n, probabilistic=True)

    assert_within(losses_cuda, losses_cpu, atol(np.float32(losses_cpu)), "losses")
    for i, (got, want) in enumerate(zip(params_cuda, params_cpu)):
        assert_within(got, want, atol(want), f"parameter {i}")
    assert losses_cpu[1] < losses_cpu[0], "L-BFGS should have lowered the loss"
    # Its vector algebra runs on the host: the gradients come down, nothing else does.
    assert set(minidl.cuda.host_round_trips()) == {"LBFGS"}


SECOND_ORDER = ["cross_entropy_mean", "cross_entropy_ignore_mean", "nll_loss_ignore_mean", "mse_mean"]
SECOND_ORDER += ["bce_logits_mean", "kl_div_batchmean", "distillation_with_targets"]


def _gradient_penalty_grads(where, loss_fn, data):
    """d/dθ of |dL/dθ|^2 (a gradient penalty): the loss's backward differentiated once more."""
    model = _model(where)
    d = _on(where, data)
    params = list(model.parameters())
    grads = minidl.grad(loss_fn(model(d["x"]), d), params, create_graph=True)
    sum(g.pow(2).sum() for g in grads).backward()
    return [p.grad.cpu().numpy() for p in params]


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_double_backward_through_the_losses_on_cuda_matches_the_cpu(name):
    data = _data()
    want = _gradient_penalty_grads("cpu", LOSSES[name], data)
    got = _gradient_penalty_grads("cuda", LOSSES[name], data)
    # Forward, backward, then the backward of both: each stage's rounding adds to the budget again.
    budget = FORWARD_BUDGET + 3 * BACKWARD_BUDGET
    for i, (g, w) in enumerate(zip(got, want)):
        assert_within(g, w, chain_atol(w, budget=budget, fan_in=FAN_IN), f"{name}: second-order gradient {i}")
    assert any(np.abs(w).max() > 0 for w in want), "zero gradients would make the comparison say nothing"
    assert minidl.cuda.host_round_trips() == {}, f"{name} went through the host"


def _averaged_run(where, averager_class):
    """Four SGD steps with an averager updated after each: the averages, and the weights inside and after
    average_parameters(), and what the averager's state_dict holds."""
    model = _model(where)
    d = _on(where, _data())
    optimizer = optim.SGD(model.parameters(), lr=0.5)
    averager = averager_class(model.parameters())
    for _ in range(4):
        optimizer.zero_grad()
        F.cross_entropy(model(d["x"]), d["targets"]).backward()
        optimizer.step()
        averager.update()
    with averager.average_parameters(model):
        inside = [p.detach().cpu().numpy().copy() for p in model.parameters()]  # (a view on the cpu)
    after = [p.detach().cpu().numpy() for p in model.parameters()]
    assert all(a.device.type == where for a in averager.averages)
    return inside, after, averager.state_dict()


@pytest.mark.parametrize("averager_class", [optim.EMA, optim.PolyakAverage])
def test_parameter_averaging_on_cuda_matches_the_cpu(averager_class):
    inside_cpu, after_cpu, state_cpu = _averaged_run("cpu", averager_class)
    inside_cuda, after_cuda, state_cuda = _averaged_run("cuda", averager_class)
    # Four training steps (STEP_BUDGET each) and the averaging's few elementwise roundings per update.
    budget = 4 * (STEP_BUDGET + 3)
    for i, (got, want) in enumerate(zip(inside_cuda + after_cuda, inside_cpu + after_cpu)):
        assert_within(got, want, chain_atol(want, budget=budget, fan_in=FAN_IN), f"weights {i}")
    assert not all(np.array_equal(a, b) for a, b in zip(inside_cpu, after_cpu)), "the averages were not swapped in"
    for got, want in zip(state_cuda["averages"], inside_cpu):
        assert isinstance(got, np.ndarray)  # checkpoints hold host arrays, whatever the device
        assert_within(got, want, chain_atol(want, budget=budget, fan_in=FAN_IN), "state_dict")
    assert minidl.cuda.host_round_trips() == {}


V, D = 7, 4  # classes and input features of the large-output layers below
LARGE_OUTPUTS = {
    # name: (layer, forward(layer, h, targets)) with the random draws fixed, so both devices see the same
    "hierarchical": (lambda: nn.HierarchicalSoftmax(D, counts=[9, 1, 4, 4, 2, 7, 3]), lambda m, h, t: m(h, t)),
    "sampled": (lambda: nn.SampledSoftmax(D, V, 4), lambda m, h, t: m(h, t, samples=[1, 3, 3, 6])),
    "negative": (
        lambda: nn.NegativeSampling(D, V, 2),
        lambda m, h, t: m(h, t, negatives=np.arange(16).reshape(8, 2) % V),
    ),
    "nce": (lambda: nn.NegativeSampling(D, V, 2, nce=True), lambda m, h, t: m(h, t, negatives=np.ones((8, 2), int))),
}


def _large_output_run(where, name):
    make, forward = LARGE_OUTPUTS[name]
    minidl.manual_seed(0)
    layer = make().to(where)
    rng = np.random.default_rng(5)
    h = minidl.tensor(rng.standard_normal((8, D)).astype(np.float32), device=where, requires_grad=True)
    targets = minidl.tensor(rng.integers(0, V, 8), device=where)
    loss = forward(layer, h, targets)
    loss.backward()
    assert loss.device.type == where and layer.weight.grad.device.type == where
    grads = [h.grad] + [p.grad for p in layer.parameters()]
    return loss.cpu().numpy(), [g.cpu().numpy() for g in grads], layer.log_prob(h).cpu().numpy(), layer.predict(h)


@pytest.mark.parametrize("name", sorted(LARGE_OUTPUTS))
def test_the_large_output_layers_on_cuda_give_the_cpu_values_and_gradients(name):
    loss_cpu, grads_cpu, log_prob_cpu, predicted_cpu = _large_output_run("cpu", name)
    loss_cuda, grads_cuda, log_prob_cuda, predicted_cuda = _large_output_run("cuda", name)
    # A score is a dot product of D terms plus a bias; the losses add a log-sigmoid or a log-softmax over at
    # most V terms (2 TU each) and a sum over at most V path or sample terms; backward mirrors it.
    budget = 2 * (D + 1 + 2 * TU + V + 8)
    assert_within(loss_cuda, loss_cpu, chain_atol(loss_cpu, budget=budget, fan_in=V), f"{name} loss")
    for i, (got, want) in enumerate(zip(grads_cuda, grads_cpu)):
        assert_within(got, want, chain_atol(want, budget=2 * budget, fan_in=V), f"{name}: gradient {i}")
    assert_within(log_prob_cuda, log_prob_cpu, chain_atol(log_prob_cpu, budget=budget, fan_in=V), "log_prob")
    top2 = np.sort(log_prob_cpu, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * chain_atol(log_prob_cpu, budget=budget, fan_in=V)  # no near-ties
    np.testing.assert_array_equal(predicted_cuda[clear], predicted_cpu[clear])
    assert clear.sum() >= 4, "too many near-ties for predict() to be compared"
    assert any(np.abs(g).max() > 0 for g in grads_cpu[1:])
