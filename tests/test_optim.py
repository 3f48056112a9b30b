"""minidl.optim: the lecture's update equations, parameter groups, state, schedules, clipping and averaging."""

import math

import numpy as np
import pytest
from tolerances import assert_within, chain_atol, eps

import minidl
from minidl import nn, optim
from minidl.optim import lr_scheduler, updates


def params_with_grads(*grads):
    """Parameters starting at 1.0 whose .grad are the given arrays."""
    params = []
    for g in grads:
        p = nn.Parameter(np.ones_like(np.asarray(g, dtype=np.float32)))
        p.grad = minidl.tensor(np.asarray(g, dtype=np.float32))
        params.append(p)
    return params


GRADIENTS = [np.array([0.5, -1.0, 2.0], np.float32), np.array([0.1, 0.3, -0.2], np.float32)]
F32 = eps(np.float32)


@pytest.fixture(params=minidl.available_kernels())
def kernels(request):
    """Run the test with every kernel set that is built (the C update kernels must mean the same)."""
    before = minidl.kernels_name()
    minidl.set_kernels(request.param)
    yield request.param
    minidl.set_kernels(before)


def test_sgd_momentum_is_the_lectures_equation(kernels):
    """g' = μ·g + ∂L;  w' = w - α·g'   with μ = 0.9."""
    (p,) = params_with_grads(GRADIENTS[0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    w, g = np.ones(3), np.zeros(3)
    for step, grad in enumerate(GRADIENTS + GRADIENTS, 1):
        p.grad = minidl.tensor(grad)
        opt.step()
        g = 0.9 * g + grad
        w = w - 0.1 * g
        # float32 against this float64 equation, per step: w's 2 roundings and float32's 0.1 (3), the
        # velocity's 3, which stay in it (x 1/(1 - 0.9)) but reach w through lr = 0.1 (3): 6 per step.
        atol = chain_atol(np.abs(w).max() + np.abs(g).max(), budget=6 * step, dtype=np.float32, results=1)
        assert_within(p.array, w, atol, f"step {step}")


def test_adagrad_is_the_lectures_equation(kernels):
    """n ← n + ∂L²;  w ← w - α/√n·∂L."""
    (p,) = params_with_grads(GRADIENTS[0])
    opt = optim.AdaGrad([p], lr=0.5)
    w, n = np.ones(3), np.zeros(3)
    for step, grad in enumerate(GRADIENTS + GRADIENTS, 1):
        p.grad = minidl.tensor(grad)
        opt.step()
        n = n + grad**2
        w = w - 0.5 / np.sqrt(n) * grad
        # float32 against float64: n carries 2 roundings per step so far (sqrt halves them), then /, *,
        # - and float32's 0.5: (step + 4) per step, relative to |w| + the step size (<= 0.5, as
        # |grad| <= sqrt(n)). The kernel's eps = 1e-10 in sqrt(n) + eps moves it by < 1e-9.
        atol = chain_atol(np.abs(w).max() + 0.5, budget=step * (step + 4), dtype=np.float32, results=1)
        assert_within(p.array, w, atol, f"step {step}")


def test_weight_decay_is_the_gradient_of_an_l2_penalty(kernels):
    (p,) = params_with_grads(np.zeros(3))
    optim.SGD([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.array, 1 - 0.1 * 0.5 * 1.0, rtol=2 * F32)  # float32's 0.1 and one rounding


def test_update_rules_are_plain_array_functions(kernels):
    """The parameter server calls these on bare arrays: no Tensor, no Module."""
    param, grad = np.ones(4, np.float32), np.full(4, 2.0, np.float32)
    velocity = np.zeros(4, np.float32)
    updates.sgd_update(param, grad, velocity, 0.1, momentum=0.9)
    np.testing.assert_allclose(param, 0.8)
    np.testing.assert_allclose(velocity, 2.0)
    m, v = np.zeros(4, np.float32), np.zeros(4, np.float32)
    updates.adam_update(param, grad, m, v, 1, 0.01)
    # Adam's first step has size lr: ~12 float32 roundings of the 0.01 step plus 1 of 0.79 (and eps = 1e-8
    # shrinks the step by 5e-9): about 1.2 ulps of the result, 4 allowed.
    np.testing.assert_allclose(param, 0.8 - 0.01, rtol=4 * F32)
    sum_sq = np.zeros(4, np.float32)
    updates.adagrad_update(param, grad, sum_sq, 0.1)
    np.testing.assert_allclose(sum_sq, 4.0)
    mean_sq = np.zeros(4, np.float32)
    updates.rmsprop_update(param, grad, mean_sq, 0.1, alpha=0.9)
    np.testing.assert_allclose(mean_sq, 0.4, rtol=1e-6)  # float32's 1 - 0.9 and 2 roundings: < 3 ulps (8 allowed)


def test_parameters_from_transposed_arrays_can_be_stepped(kernels):
    # The C update kernels work in place on C-contiguous arrays only; a Parameter made from a
    # transposed view (e.g. weights copied from another layout), or a module converted with
    # .to(), must still be steppable. Big enough (> 256 elements) for the C path to be taken.
    start = np.arange(32 * 24, dtype=np.float32).reshape(32, 24) / 100
    grad = np.linspace(-1, 1, start.size, dtype=np.float32).reshape(24, 32)
    p = nn.Parameter(start.T)
    layer = nn.Linear(32, 24)
    layer.weight.array = np.asfortranarray(start.T)  # e.g. loaded from a column-major source
    layer.double().float()
    for param in (p, layer.weight):
        assert param.array.flags["C_CONTIGUOUS"]
        param.grad = minidl.tensor(grad)
        opt = optim.SGD([param], lr=0.1, momentum=0.9)
        opt.step()
        opt.step()
        want = start.T - 0.1 * grad - 0.1 * 1.9 * grad
        # Two SGD-momentum steps in float32 (see test_sgd_momentum_is_the_lectures_equation): 6 per step.
        atol = chain_atol(np.abs(start).max() + 1.9 * np.abs(grad).max(), budget=12, dtype=np.float32, results=1)
        assert_within(param.array, want, atol)
    np.testing.assert_array_equal(start, np.arange(32 * 24, dtype=np.float32).reshape(32, 24) / 100)
    assert nn.Parameter(np.array(2.0, np.float32)).shape == ()  # a scalar stays a scalar


@pytest.mark.parametrize(
    "factory",
    [
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        lambda ps: optim.AdaGrad(ps, lr=0.1),
        lambda ps: optim.RMSProp(ps, lr=0.01),
        lambda ps: optim.Adam(ps, lr=0.01),
    ],
)
def test_step_bumps_versions_so_a_stale_backward_fails(factory):
    model = nn.Linear(3, 1)
    opt = factory(model.parameters())
    model(minidl.randn(4, 3)).sum().backward()
    stale_loss = (model(minidl.randn(4, 3)) ** 2).sum()  # recorded with the old weights
    versions = [p.version for p in model.parameters()]
    opt.step()
    assert [p.version for p in model.parameters()] == [v + 1 for v in versions]
    assert all(p.is_leaf and p.requires_grad and p.grad_fn is None for p in model.parameters())
    with pytest.raises(RuntimeError, match="modified in place"):
        stale_loss.backward()


def test_step_skips_parameters_without_gradients_and_zero_grad_clears_them():
    a, b = params_with_grads(GRADIENTS[0], GRADIENTS[1])
    b.grad = None
    opt = optim.SGD([a, b], lr=1.0)
    opt.step()
    assert np.all(b.array == 1) and not np.all(a.array == 1)
    opt.zero_grad()
    assert a.grad is None
    a.grad = minidl.tensor(GRADIENTS[0])
    opt.zero_grad(set_to_none=False)
    assert np.all(a.grad.array == 0)


def test_step_with_closure_returns_the_loss():
    model = nn.Linear(2, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = minidl.randn(8, 2)

    def closure():
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        return loss

    first = opt.step(closure).item()
    for _ in range(20):
        last = opt.step(closure).item()
    assert last < first


def test_parameter_groups_have_their_own_learning_rates():
    a, b = params_with_grads([1.0], [1.0])
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    opt.step()
    # float32: 1 - 0.1f rounds once (pytest.approx's 1e-6 is 8 float32 ulps); 1 - 0.5 is exact.
    assert a.array[0] == pytest.approx(0.9) and b.array[0] == pytest.approx(0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]


def test_optimizer_argument_errors_are_clear():
    p = nn.Parameter(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="unknown hyperparameters \\['mommentum'\\]"):
        optim.SGD([{"params": [p], "mommentum": 0.9}], lr=0.1)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        optim.Adam([p], lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(p, lr=0.1)


@pytest.mark.parametrize(
    "factory",
    [
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
        lambda ps: optim.AdaGrad(ps, lr=0.1),
        lambda ps: optim.RMSProp(ps, lr=0.01),
        lambda ps: optim.Adam(ps, lr=0.01),
    ],
)
def test_state_dict_resumes_the_same_trajectory(factory):
    def train(steps, opt, params, start=0):
        for step in range(start, start + steps):
            for i, p in enumerate(params):
                p.grad = minidl.tensor(np.random.default_rng(10 * step + i).standard_normal(p.shape).astype(np.float32))
            opt.step()

    reference = params_with_grads(np.zeros((2, 3)), np.zeros(3))
    opt = factory(reference)
    train(6, opt, reference)

    first = params_with_grads(np.zeros((2, 3)), np.zeros(3))
    opt_first = factory(first)
    train(3, opt_first, first)
    saved_params, saved_state = [p.array.copy() for p in first], opt_first.state_dict()
    resumed = params_with_grads(np.zeros((2, 3)), np.zeros(3))
    for p, value in zip(resumed, saved_params):
        p.array[...] = value
    opt_resumed = factory(resumed)
    opt_resumed.load_state_dict(saved_state)
    train(3, opt_resumed, resumed, start=3)
    for p, q in zip(reference, resumed):
        np.testing.assert_array_equal(p.array, q.array)


def test_load_state_dict_rejects_a_different_model():
    opt = optim.SGD(params_with_grads(np.zeros(3)), lr=0.1, momentum=0.9)
    opt.step()
    other = optim.SGD(params_with_grads(np.zeros(4)), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="momentum_buffer.*shape \\(3,\\).*shape \\(4,\\)"):
        other.load_state_dict(opt.state_dict())
    two = optim.SGD(params_with_grads(np.zeros(3), np.zeros(3)), lr=0.1)
    with pytest.raises(ValueError, match="1 parameters in the state but 2"):
        two.load_state_dict(opt.state_dict())


def stepped(optimizer_class, **options):
    """An optimizer over one parameter that has taken one step, so it has per-parameter state."""
    opt = optimizer_class(params_with_grads(np.zeros(3)), **options)
    opt.step()
    return opt


def test_load_state_dict_rejects_another_optimizers_state_and_changes_nothing():
    adam = stepped(optim.Adam, lr=0.01)
    before = adam.state_dict()
    with pytest.raises(
        ValueError, match=r"Adam.load_state_dict: group 0 has hyperparameters \['dampening', 'momentum', 'nesterov'\]"
    ):
        adam.load_state_dict(stepped(optim.SGD, lr=0.1, momentum=0.9).state_dict())
    with pytest.raises(ValueError, match=r"group 0 lacks hyperparameters \['betas', 'eps'\]"):
        adam.load_state_dict({**before, "param_groups": [{"lr": 0.1, "weight_decay": 0.0, "params": [0]}]})
    # AdaGrad's hyperparameters lack RMSProp's alpha; and its per-parameter state is not RMSProp's either.
    rmsprop = stepped(optim.RMSProp, lr=0.01)
    with pytest.raises(ValueError, match=r"RMSProp.load_state_dict: group 0 lacks hyperparameters \['alpha'\]"):
        rmsprop.load_state_dict(stepped(optim.AdaGrad, lr=0.1).state_dict())
    mixed = rmsprop.state_dict()
    mixed["state"][0] = stepped(optim.AdaGrad, lr=0.1).state_dict()["state"][0]
    with pytest.raises(
        ValueError, match=r"parameter 0 has state \['sum'\], but RMSProp keeps \['grad_avg', 'square_avg'\]"
    ):
        rmsprop.load_state_dict(mixed)
    assert rmsprop.param_groups[0]["lr"] == 0.01 and set(rmsprop.state_dict()["state"][0]) == {"square_avg"}
    after = adam.state_dict()
    assert after["param_groups"] == before["param_groups"]
    np.testing.assert_array_equal(after["state"][0]["exp_avg"], before["state"][0]["exp_avg"])


def test_load_state_dict_checks_the_saved_hyperparameters_before_changing_anything():
    sgd = stepped(optim.SGD, lr=0.1, momentum=0.9)
    state = sgd.state_dict()
    state["param_groups"][0]["momentum"] = 1.5
    fresh = optim.SGD(params_with_grads(np.zeros(3)), lr=0.2, momentum=0.5)
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: group 0: SGD: momentum must be in \[0, 1\), got 1.5"):
        fresh.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == 0.2 and fresh.param_groups[0]["momentum"] == 0.5 and not fresh.state


# ---------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------
def test_exponential_decay_is_alpha0_e_to_the_minus_beta_t():
    opt = optim.SGD(params_with_grads([0.0]), lr=0.5)
    schedule = lr_scheduler.ExponentialLR(opt, beta=0.2)
    for t in range(6):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * math.exp(-0.2 * t))  # float64, a few roundings
        schedule.step()
    with pytest.raises(ValueError, match="exactly one"):
        lr_scheduler.ExponentialLR(opt, 0.9, beta=0.1)


def test_step_and_cosine_schedules():
    opt = optim.SGD(params_with_grads([0.0]), lr=1.0)
    step = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    seen = []
    for _ in range(5):
        seen.append(step.get_last_lr()[0])
        step.step()
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25]
    opt = optim.SGD(params_with_grads([0.0]), lr=1.0)
    cosine = lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    seen = []
    for _ in range(5):
        seen.append(cosine.get_last_lr()[0])
        cosine.step()
    assert seen == pytest.approx([1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2, 0.0])


def test_scheduler_state_dict_round_trip():
    opt = optim.SGD(params_with_grads([0.0]), lr=1.0)
    schedule = lr_scheduler.ExponentialLR(opt, 0.5)
    for _ in range(3):
        schedule.step()
    fresh_opt = optim.SGD(params_with_grads([0.0]), lr=1.0)
    fresh = lr_scheduler.ExponentialLR(fresh_opt, 0.5)
    fresh.load_state_dict(schedule.state_dict())
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(0.125)
    fresh.step()
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(0.0625)


# ---------------------------------------------------------------------------
# Gradient clipping
# ---------------------------------------------------------------------------
def test_clip_grad_norm_scales_to_the_threshold_and_returns_the_original_norm():
    a, b = params_with_grads([3.0, 0.0], [0.0, 4.0])
    norm = optim.clip_grad_norm_([a, b], max_norm=1.0)
    assert norm.item() == pytest.approx(5.0)  # sqrt(9 + 16): exact
    new_norm = np.sqrt((a.grad.array**2).sum() + (b.grad.array**2).sum())
    # The coefficient is max_norm / (norm + 1e-6), as torch's: 2e-7 short of exact by design, plus
    # a few float32 roundings; 1e-5 covers both.
    assert new_norm == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(a.grad.array, [0.6, 0.0], rtol=1e-5)  # direction kept


def test_clip_grad_norm_leaves_small_gradients_alone_and_supports_inf_norm():
    (a,) = params_with_grads([0.3, -0.4])
    assert optim.clip_grad_norm_([a], 1.0).item() == pytest.approx(0.5)  # float32 0.3 and 0.4: a few ulps (8 allowed)
    np.testing.assert_allclose(a.grad.array, [0.3, -0.4])
    assert optim.clip_grad_norm_([a], 0.1, norm_type=math.inf).item() == pytest.approx(0.4)
    np.testing.assert_allclose(a.grad.array, [0.075, -0.1], rtol=1e-5)  # 0.1 / (0.4 + 1e-6): 2.5e-6 short
    (c,) = params_with_grads([np.nan, 1.0])
    with pytest.raises(RuntimeError, match="NaN or inf"):
        optim.clip_grad_norm_([c], 1.0, error_if_nonfinite=True)


def test_clip_grad_value():
    (a,) = params_with_grads([-3.0, 0.5, 2.0])
    optim.clip_grad_value_([a], 1.0)
    np.testing.assert_array_equal(a.grad.array, [-1.0, 0.5, 1.0])


# ---------------------------------------------------------------------------
# Parameter averaging: only for evaluation
# ---------------------------------------------------------------------------
def test_polyak_average_is_the_mean_of_the_trajectory_and_only_swapped_in_for_evaluation():
    model = nn.Linear(2, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    averager = optim.PolyakAverage(model.parameters())
    seen = []
    for _ in range(5):
        model(minidl.randn(4, 2)).sum().backward()
        opt.step()
        opt.zero_grad()
        averager.update()
        seen.append(model.weight.array.copy())
    training_weight = model.weight.array.copy()
    with averager.average_parameters(model):
        # A running float32 mean (3 roundings per update) against NumPy's mean of the 5 snapshots:
        # near-zero weights cancel, so the bound is absolute, in the weights' magnitude.
        want = np.mean(seen, axis=0)
        assert_within(model.weight.array, want, chain_atol(np.abs(seen), budget=3 * 5 + 5, dtype=np.float32))
    np.testing.assert_array_equal(model.weight.array, training_weight)  # training weights are back


def test_ema_follows_its_formula_and_restores_weights_after_an_exception():
    (p,) = params_with_grads([0.0])
    p.array[...] = 0.0
    averager = optim.EMA([p], decay=0.5, warmup=False)
    for value in (4.0, 8.0):
        p.array[...] = value
        averager.update()
    expected = 0.5 * (0.5 * 0.0 + 0.5 * 4.0) + 0.5 * 8.0
    with pytest.raises(KeyError):
        with averager.average_parameters():
            assert p.array[0] == pytest.approx(expected)
            raise KeyError("evaluation failed")
    assert p.array[0] == 8.0


def test_ema_warms_up_its_decay_as_tensorflow_does():
    # d_n = min(decay, (1 + n) / (10 + n)), n counting this update: d_1 = 2/11, d_2 = 3/12, ...
    (p,) = params_with_grads([0.0])
    p.array[...] = 5.0  # the (random) initial weights
    averager = optim.EMA([p], decay=0.999)
    p.array[...] = 1.0
    averager.update()
    assert averager.averages[0].numpy()[0] == pytest.approx(2 / 11 * 5.0 + 9 / 11 * 1.0, rel=1e-6)
    p.array[...] = 2.0
    averager.update()
    # Positive terms, 7 float32 roundings in two updates: 7·eps = 8.3e-7 < 1e-6.
    expected = 3 / 12 * (2 / 11 * 5.0 + 9 / 11 * 1.0) + 9 / 12 * 2.0
    assert averager.averages[0].numpy()[0] == pytest.approx(expected, rel=1e-6)
    late = optim.EMA([p], decay=0.999)
    late.num_updates = 20000  # long after the warm-up: the plain decay
    p.array[...] = 3.0
    late.update()
    assert late.averages[0].numpy()[0] == pytest.approx(0.999 * 2.0 + 0.001 * 3.0, rel=1e-6)


def test_early_ema_is_close_to_the_current_weights_not_the_initial_ones():
    minidl.manual_seed(0)
    model = nn.Linear(8, 4)
    averager = optim.EMA(model, decay=0.999)
    trained = [np.full(p.shape, 0.5, np.float32) for p in model.parameters()]
    for _ in range(5):  # training jumped straight to `trained` and stayed there
        for p, value in zip(model.parameters(), trained):
            p.array[...] = value
        averager.update()
    # 2/11 · 3/12 · 4/13 · 5/14 · 6/15 ≈ 0.002 of the initial weights remain (0.999^5 ≈ 0.995 without warm-up)
    for average, value in zip(averager.averages, trained):
        assert np.abs(average.numpy() - value).max() < 0.01


def test_averager_state_dict_round_trip_and_model_check():
    model = nn.Linear(2, 2)
    averager = optim.EMA(model, decay=0.9)
    model.weight.array[...] = 1.0
    averager.update()
    other = optim.EMA(model, decay=0.9)
    other.load_state_dict(averager.state_dict())
    assert other.num_updates == 1
    np.testing.assert_array_equal(other.averages[0].numpy(), averager.averages[0].numpy())
    with pytest.raises(ValueError, match="does not track"):
        with averager.average_parameters(nn.Linear(2, 2)):
            pass


def test_momentum_sgd_trains_a_small_network():
    minidl.manual_seed(0)
    from minidl import data

    train = data.moons(400, noise=0.1, seed=0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(30):
        for x, y in data.DataLoader(train, batch_size=32, shuffle=True):
            loss = nn.CrossEntropyLoss()(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    x, y = train.arrays
    accuracy = (model(minidl.tensor(x)).array.argmax(axis=1) == y).mean()
    assert accuracy > 0.95


def test_sgd_dampening_is_checked():
    p = [minidl.nn.Parameter(np.zeros(2, np.float32))]
    with pytest.raises(ValueError, match=r"SGD: dampening must be in \[0, 1\], got 1.5"):
        optim.SGD(p, momentum=0.9, dampening=1.5)
    with pytest.raises(ValueError, match="SGD: nesterov=True needs dampening 0"):
        optim.SGD(p, momentum=0.9, nesterov=True, dampening=0.1)


def test_amsgrad_and_centered_state_round_trips():
    """The extra buffers (max_exp_avg_sq, grad_avg) are saved and restored like the others."""
    for make in (lambda ps: optim.Adam(ps, lr=0.1, amsgrad=True), lambda ps: optim.RMSProp(ps, centered=True)):
        p = minidl.nn.Parameter(np.ones(3, np.float32))
        opt = make([p])
        p.grad = minidl.tensor(np.array([1.0, -2.0, 3.0], np.float32))
        opt.step()
        state = opt.state_dict()
        q = minidl.nn.Parameter(p.array.copy())
        again = make([q])
        again.load_state_dict(state)
        for other in (opt, again):
            (param,) = other.param_groups[0]["params"]
            param.grad = minidl.tensor(np.array([0.5, 0.5, -1.0], np.float32))
            other.step()
        np.testing.assert_array_equal(p.array, q.array)
        assert set(state["state"][0]) & {"max_exp_avg_sq", "grad_avg"}


def test_state_saved_before_the_newer_options_still_loads():
    """Session-1 checkpoints have no dampening / amsgrad / centered: they load as those options off."""
    for make, option in ((lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), "dampening"),
                         (lambda ps: optim.Adam(ps, lr=0.1), "amsgrad"),
                         (lambda ps: optim.RMSProp(ps), "centered")):  # fmt: skip
        p = minidl.nn.Parameter(np.ones(3, np.float32))
        opt = make([p])
        p.grad = minidl.tensor(np.ones(3, np.float32))
        opt.step()
        old = opt.state_dict()
        del old["param_groups"][0][option]
        fresh = make([minidl.nn.Parameter(np.ones(3, np.float32))])
        fresh.load_state_dict(old)
        assert not fresh.param_groups[0][option]
