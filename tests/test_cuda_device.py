"""The "cuda" device in Python: tensors, modules, optimizers and `minidl train` on it (the emulator here).

What runs on the device is the kernel contract's "cuda" set (minidl/backend/cuda/kernel_set.py);
tests/test_kernel_contract.py checks each of its primitives against the reference. These tests
check the layer above: moving tensors and modules, creation on the device, the mixed-device
error, optimizer state kept on the device, an MLP trained on "cuda" ending where the cpu run
ends (within a tolerance derived from the step's rounding budget), no host round trips in a
training step, and `minidl train --device cuda`. Sizes are tiny: the emulator runs every CUDA
thread as a fiber on the CPU.
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from cuda_helpers import load_or_skip
from tolerances import TRANSCENDENTAL_ULPS, assert_within, chain_atol

import minidl
from minidl import nn, optim
from minidl.backend.cuda import runtime
from minidl.backend.cuda.array import DeviceArray
from minidl.cli import main

load_or_skip()
with warnings.catch_warnings():  # the emulator announces itself once; test_the_emulator_says_so_once checks it
    warnings.simplefilter("ignore", runtime.CudaEmulatorWarning)
    assert minidl.cuda.is_available()

CUDA = minidl.device("cuda:0")


@pytest.fixture(autouse=True)
def _no_round_trips_carried_over():
    minidl.cuda.reset_host_round_trips()
    yield


# ---------------------------------------------------------------------------
# Tensors: moving, creating, reading back
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values",
    [np.arange(7, dtype=np.float32) - 3.5, np.arange(6).reshape(2, 3), np.array([True, False]),
     np.eye(3, dtype=np.float64), np.zeros((0, 4), np.float32), np.float32(2.5)],
    ids=["float32", "int64", "bool", "float64", "empty", "0-d"],
)  # fmt: skip
def test_to_cuda_and_back_keeps_values_dtype_and_shape(values):
    x = minidl.tensor(values)
    on_device = x.to("cuda")
    assert on_device.device is CUDA and on_device.is_cuda and isinstance(on_device.array, DeviceArray)
    assert on_device.dtype == x.dtype and on_device.shape == x.shape
    back = on_device.cpu()
    assert back.device == "cpu" and isinstance(back.array, np.ndarray)
    np.testing.assert_array_equal(back.numpy(), values)
    assert back.dtype == x.dtype
    np.testing.assert_array_equal(x.cuda().cpu().numpy(), values)
    assert on_device.to("cuda") is on_device and x.to("cpu") is x  # nothing to move: the tensor itself


def test_a_device_tensor_reads_back_only_explicitly():
    x = minidl.tensor([[1.5, -2.0]], device="cuda")
    assert "device='cuda:0'" in repr(x) and "1.5" in repr(x)
    assert x.sum().item() == -0.5 and x.tolist() == [[1.5, -2.0]]
    with pytest.raises(TypeError, match=r"can't convert a cuda:0 tensor to NumPy.*\.cpu\(\)"):
        x.numpy()
    with pytest.raises(TypeError, match="cuda:0 tensor"):
        np.asarray(x)


def test_creation_functions_make_tensors_on_the_device():
    made = {
        "zeros": lambda d: minidl.zeros(2, 3, device=d),
        "ones": lambda d: minidl.ones(4, dtype=minidl.int64, device=d),
        "full": lambda d: minidl.full((2, 2), 7.0, device=d),
        "arange": lambda d: minidl.arange(1, 8, 2, device=d),
        "eye": lambda d: minidl.eye(3, device=d),
        "tensor": lambda d: minidl.tensor([[1, 2], [3, 4]], device=d),
        "randn": lambda d: (minidl.manual_seed(3), minidl.randn(5, 2, device=d))[1],
        "zeros_like": lambda d: minidl.zeros_like(minidl.ones(3), device=d),
    }
    for name, make in made.items():
        cpu, cuda = make("cpu"), make("cuda")
        assert cuda.device is CUDA, name
        np.testing.assert_array_equal(cuda.cpu().numpy(), cpu.numpy(), err_msg=name)
        assert cuda.dtype == cpu.dtype, name
    w = minidl.randn(3, 2, device="cuda", requires_grad=True)
    assert w.is_leaf and w.requires_grad and w.device is CUDA


def test_moving_is_differentiable_and_gradients_come_back_to_the_source_device():
    x = minidl.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x.to("cuda")
    assert not y.is_leaf and y.grad_fn.name == "ToDevice"
    (y * y).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -4.0, 6.0])
    w = minidl.tensor([0.5, 2.0], device="cuda", requires_grad=True)
    (w.cpu() * 3).sum().backward()
    assert w.grad.device is CUDA
    np.testing.assert_array_equal(w.grad.cpu().numpy(), [3.0, 3.0])


def test_gradients_accumulate_on_the_device_across_backward_calls():
    w = minidl.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    for _ in range(3):
        (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad.cpu().numpy(), [6.0, 12.0])


@pytest.mark.parametrize(
    "op",
    [lambda a, b: a + b, lambda a, b: a @ b.T, lambda a, b: a > b, lambda a, b: minidl.cat([a, b]),
     lambda a, b: minidl.where(a > 0, a, b)],
    ids=["add", "matmul", "greater", "cat", "where"],
)  # fmt: skip
def test_mixing_devices_in_one_op_is_an_error_naming_both(op):
    a = minidl.ones(2, 3)
    b = minidl.ones(2, 3, device="cuda")
    for first, second in ((a, b), (b, a)):
        with pytest.raises(RuntimeError, match=r"(cpu.*cuda:0|cuda:0.*cpu).*\.to\(|same device"):
            op(first, second)


def test_a_loss_with_targets_on_another_device_is_an_error_naming_both():
    scores = minidl.randn(4, 3, device="cuda")
    with pytest.raises(RuntimeError, match="scores are on cuda:0 and the targets on cpu"):
        nn.functional.cross_entropy(scores, minidl.tensor([0, 1, 2, 0]))
    with pytest.raises(IndexError, match="target 3 of row 1 is out of range for 3 classes"):
        nn.functional.cross_entropy(scores, minidl.tensor([0, 3, 2, 0], device="cuda"))


@pytest.mark.parametrize(
    "f",
    [lambda x: minidl.where(x > 0, x * 3, x * x).clamp(-1, 4), lambda x: x.maximum(x * 0.5) - x.minimum(-x),
     lambda x: x.sigmoid() * x.tanh() + x.leaky_relu(0.1), lambda x: (x.exp() / (1 + x.abs())).log_softmax(0),
     lambda x: (x.reshape(2, 3).T @ x.reshape(2, 3)).sum(0) ** 2],
    ids=["where-clamp", "maximum-minimum", "activations", "log-softmax", "matmul-pow"],
)  # fmt: skip
def test_gradients_of_elementwise_ops_on_cuda_match_the_cpu(f):
    """A handful of roundings and transcendentals per element: within 2·(4 transcendentals + 8 ops) ulps of
    the largest gradient (tolerances.chain_atol), and the same gradient structure (kinks, ties, branches)."""
    values = np.array([-2.0, -0.5, 0.3, 1.7, 0.0, 2.5], np.float32)
    grads = []
    for where in ("cpu", "cuda"):
        x = minidl.tensor(values, device=where, requires_grad=True)
        f(x).sum().backward()
        grads.append(x.grad.cpu().numpy())
    assert_within(grads[1], grads[0], chain_atol(grads[0], budget=4 * TRANSCENDENTAL_ULPS + 8, fan_in=3))


# ---------------------------------------------------------------------------
# Host round trips: counted, and none in a training step
# ---------------------------------------------------------------------------
def test_what_has_no_kernel_goes_through_the_host_and_is_counted():
    a = minidl.tensor([1.0, 2.0], dtype=minidl.float64, device="cuda")
    total = a + a  # float64 arithmetic: no CUDA kernel computes it
    np.testing.assert_array_equal(total.cpu().numpy(), [2.0, 4.0])
    assert total.dtype == np.float64 and total.device is CUDA
    assert minidl.cuda.host_round_trips() == {"add": 1}
    minidl.cuda.reset_host_round_trips()
    x = minidl.tensor([1.0, -2.0, 3.0], device="cuda")
    (x * 2 - 1).relu().exp().sum()
    (x > 0).float().softmax(0)
    assert minidl.cuda.host_round_trips() == {}  # float32 (and bool masks) stay in CUDA kernels


def _mlp(hidden=24):
    return nn.Sequential(nn.Linear(20, hidden), nn.ReLU(), nn.Linear(hidden, 5))


# ---------------------------------------------------------------------------
# Modules and optimizers
# ---------------------------------------------------------------------------
def test_module_to_moves_parameters_buffers_and_grads_in_place():
    minidl.manual_seed(0)
    model = _mlp()
    model.register_buffer("seen", minidl.tensor([3.0]))
    params = list(model.parameters())
    before = [p.numpy().copy() for p in params]
    model(minidl.randn(2, 20)).sum().backward()
    grads = [p.grad.numpy().copy() for p in params]
    assert model.to("cuda") is model
    assert list(model.parameters()) == params  # the same Parameter objects (an optimizer keeps working)
    for p, values, grad in zip(params, before, grads):
        assert p.device is CUDA and p.grad.device is CUDA and isinstance(p, nn.Parameter)
        np.testing.assert_array_equal(p.cpu().numpy(), values)
        np.testing.assert_array_equal(p.grad.cpu().numpy(), grad)
    assert model.seen.device is CUDA
    out = model(minidl.randn(2, 20, device="cuda"))
    assert out.device is CUDA
    model.cpu()
    assert all(p.device == "cpu" and isinstance(p.array, np.ndarray) for p in model.parameters())
    np.testing.assert_array_equal(params[0].numpy(), before[0])
    with pytest.raises(RuntimeError, match="expected all tensors on the same device"):
        model(minidl.randn(2, 20, device="cuda"))


OPTIMIZERS = {
    "momentum": (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4), {"momentum_buffer"}),
    "adam": (lambda p: optim.Adam(p, lr=0.01), {"exp_avg", "exp_avg_sq"}),
    "adagrad": (lambda p: optim.AdaGrad(p, lr=0.05), {"sum"}),
    "rmsprop": (lambda p: optim.RMSProp(p, lr=0.01), {"square_avg"}),
}
N, STEPS = 16, 5


def _train(where, make_optimizer, fuse=False):
    """STEPS steps of a small MLP on one batch on `where`, from the same seed: (losses, parameters on the host)."""
    minidl.manual_seed(0)
    model = _mlp().to(where)
    net = nn.fuse(model) if fuse else model
    optimizer = make_optimizer(model.parameters())
    rng = np.random.default_rng(1)
    x = minidl.tensor(rng.standard_normal((N, 20)).astype(np.float32), device=where)
    y = minidl.tensor(rng.integers(0, 5, N), device=where)
    losses = []
    for _ in range(STEPS):
        loss = nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return np.array(losses), [p.cpu().numpy() for p in model.parameters()], optimizer


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_state_lives_on_the_device(name):
    make, keys = OPTIMIZERS[name]
    _, _, optimizer = _train("cuda", make)
    for p, state in optimizer.state.items():
        assert keys <= set(state)
        for key in keys:
            assert isinstance(state[key], DeviceArray) and state[key].shape == p.shape, (name, key)
    saved = optimizer.state_dict()  # saved from host copies, loadable anywhere
    assert all(isinstance(v, np.ndarray) for s in saved["state"].values() for k, v in s.items() if k in keys)
    assert minidl.cuda.host_round_trips() == {}


def test_a_checkpoint_saved_from_cuda_loads_on_the_cpu_and_back_on_cuda(tmp_path):
    minidl.manual_seed(0)
    model = _mlp().to("cuda")
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    x, y = minidl.randn(4, 20, device="cuda"), minidl.tensor([0, 1, 2, 3], device="cuda")
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    minidl.save_checkpoint(tmp_path / "run.npz", model=model, optimizer=optimizer, step=1)
    on_cpu = _mlp()
    minidl.load_checkpoint(tmp_path / "run.npz", model=on_cpu, optimizer=optim.Adam(on_cpu.parameters(), lr=0.01))
    for a, b in zip(model.parameters(), on_cpu.parameters()):
        np.testing.assert_array_equal(b.numpy(), a.cpu().numpy())
    back = _mlp().to("cuda")
    back_optimizer = optim.Adam(back.parameters(), lr=0.01)
    minidl.load_checkpoint(tmp_path / "run.npz", model=back, optimizer=back_optimizer)
    for m, opt in ((model, optimizer), (back, back_optimizer)):  # one more step: the same kernels, the same state
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    for a, b in zip(model.parameters(), back.parameters()):
        np.testing.assert_array_equal(b.cpu().numpy(), a.cpu().numpy())
    assert all(isinstance(v, DeviceArray) for s in back_optimizer.state.values() for k, v in s.items() if k != "step")
    assert minidl.cuda.host_round_trips() == {}


# Roundings on a path through one step (counted as in tests/tolerances.py): forward 20 + 1 and 24 + 1
# (two linear layers), cross-entropy 5 + 2 transcendentals + 3 and the mean over 16 rows; backward 2
# (dlogits), 16 (dW2, db2), 5 (dh), 16 (dW1, db1); the update about 10 (Adam's: two moments, two bias
# corrections, a square root, a division; its step lr·m̂/(√v̂+eps) is a ratio of two quantities with the
# same relative error, so it carries gradient errors through with a factor <= 2, counted in the 10).
STEP_ROUNDINGS = 21 + 25 + (5 + 2 * TRANSCENDENTAL_ULPS + 3) + 16 + 2 + 16 + 5 + 16 + 10


@pytest.mark.parametrize("fuse", [False, True], ids=["ops", "fused"])
@pytest.mark.parametrize("name", ["momentum", "adam", "adagrad"])
def test_an_mlp_trained_on_cuda_ends_where_the_cpu_run_ends(name, fuse):
    """Same seed, same batches, STEPS steps: the runs differ only in rounding (summation order in the
    GEMMs and reductions, the transcendental functions' last bits). Five steps is a short chain, so the
    worst-case bound is used: STEPS · STEP_ROUNDINGS roundings, each of eps times the terms, the terms up
    to sqrt(fan_in) times the result (tolerances.chain_atol). Assumes no relu input sits within rounding
    of 0 (then the two runs may take different sides of the kink; the data here stays clear of it)."""
    make, _ = OPTIMIZERS[name]
    losses_cpu, params_cpu, _ = _train("cpu", make)
    losses_cuda, params_cuda, _ = _train("cuda", make, fuse=fuse)
    assert losses_cpu[-1] < losses_cpu[0], "the model did not train"
    budget = STEPS * STEP_ROUNDINGS
    assert_within(losses_cuda, losses_cpu, chain_atol(losses_cpu, budget=budget, fan_in=24, dtype=np.float32), "losses")
    for i, (got, want) in enumerate(zip(params_cuda, params_cpu)):
        assert_within(
            got,
            want,
            chain_atol(want, budget=budget, fan_in=24, dtype=np.float32),
            f"parameter {i} after {STEPS} steps",
        )
    assert minidl.cuda.host_round_trips() == {}, "a training step went through the host"


# The longest reduction in one forward + backward of the small cnn / lstm below, and how many
# reducing stages a gradient passes (each at most that long): the cnn's weight gradients sum over
# N·H·W = 8·8·8 = 512 positions through conv, conv, linear, linear and the loss; the lstm's over
# 8 time steps of (N = 8) rows with fan-in 32 + 8, through 8 steps of 2 products and the loss.
GRADIENT_BUDGETS = {"cnn": (512, 5), "lstm": (64, 2 * 8 + 2)}


@pytest.mark.parametrize("name", ["cnn", "lstm"])
def test_the_cnn_and_lstm_gradients_on_cuda_match_the_cpu_without_host_round_trips(name):
    """One forward and backward of the `minidl train` cnn / lstm on 8x8 images, fused as fit() runs
    them: the gradients agree with the cpu's within the worst-case bound for their reduction chain
    (tolerances.chain_atol: stages x longest reduction roundings, terms up to sqrt(length) times the
    result), and nothing went through the host."""
    length, stages = GRADIENT_BUDGETS[name]
    budget = stages * length + 2 * TRANSCENDENTAL_ULPS * 8  # plus the gates' / softmax's transcendentals
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((8, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 8)
    results = {}
    for where in ("cpu", "cuda"):
        minidl.manual_seed(0)
        model = minidl.training.make_model(name, (1, 8, 8), 10, 8, 0.0).to(where)
        minidl.cuda.reset_host_round_trips()
        loss = nn.functional.cross_entropy(
            nn.fuse(model)(minidl.tensor(x, device=where)), minidl.tensor(y, device=where)
        )
        loss.backward()
        results[where] = (loss.item(), [p.grad.cpu().numpy() for p in model.parameters()])
        if where == "cuda":
            assert minidl.cuda.host_round_trips() == {}
    (loss_cpu, grads_cpu), (loss_cuda, grads_cuda) = results["cpu"], results["cuda"]
    assert_within(loss_cuda, loss_cpu, chain_atol(np.float32(loss_cpu), budget=budget, fan_in=length))
    for i, (got, want) in enumerate(zip(grads_cuda, grads_cpu)):
        assert np.abs(want).max() > 0, f"gradient {i} is zero: the comparison would say nothing"
        assert_within(got, want, chain_atol(want, budget=budget, fan_in=length), f"{name} gradient {i}")


def test_float32_primitives_run_in_cuda_kernels_not_through_the_host():
    """The contract test passes for any correct set, a host round trip included: this checks that the
    float32 cases a model uses really ran in CUDA kernels (none counted)."""
    k = minidl.backend.get_kernels("cuda")
    rng = np.random.default_rng(0)
    a, b = (k.from_numpy(rng.standard_normal((5, 7)).astype(np.float32)) for _ in range(2))
    image = k.from_numpy(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    weight = k.from_numpy(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    rows = k.from_numpy(np.array([4, 0, 4]))
    for name in ("add", "sub", "mul", "div", "maximum", "minimum", "greater", "less_equal", "equal"):
        getattr(k, name)(a, b)
    for name in ("neg", "exp", "log", "sqrt", "abs", "sign", "sin", "cos", "tanh", "sigmoid", "relu", "erf"):
        getattr(k, name)(a)
    k.power(a, 2.0), k.where(k.greater(a, 0), a, b), k.clip(a, -0.5, None), k.astype(k.less(a, 0), np.float32)
    k.sum(a, (0,), True), k.max(a, None), k.min(a, 1), k.argmax(a, 1), k.softmax(a, 1), k.log_softmax(a, 0)
    k.matmul(a, k.transpose(b, (1, 0))), k.matmul(k.reshape(a, (35,))[:7], b.T), k.linear(a, b, None, "tanh")
    k.act_backward(a, b, "relu"), k.concatenate([a, b], 1), k.stack([a, b], 0), k.pad(a, ((1, 0), (0, 2)))
    k.getitem(a, rows), k.scatter_add((5, 7), rows, k.getitem(a, rows), np.float32), k.setitem(a, (slice(1, 3),), b[:2])
    k.conv2d_forward(image, weight, None, (1, 1), (1, 1), (1, 1), 1, "relu")
    k.max_pool2d_forward(image, (2, 2), (2, 2), (0, 0)), k.avg_pool2d_forward(image, (3, 3), (1, 1), (1, 1))
    losses, probs = k.cross_entropy_forward(a, k.from_numpy(np.arange(5) % 7))
    k.cross_entropy_backward(probs, k.from_numpy(np.arange(5) % 7), losses)
    k.adam_update(a, b, k.zeros((5, 7)), k.zeros((5, 7)), 1, 1e-3), k.sgd_update(a, b, k.zeros((5, 7)), 0.1, 0.9)
    k.float16_to_float32(k.float32_to_float16(a)), k.truncated16_to_float32(k.float32_to_truncated16(a))
    assert minidl.cuda.host_round_trips() == {}


# ---------------------------------------------------------------------------
# minidl train --device cuda, minidl info, and the emulator's announcement
# ---------------------------------------------------------------------------
def test_minidl_train_runs_on_the_cuda_device_and_learns_what_the_cpu_learns(tmp_path, capsys):
    common = ["train", "--model", "mlp", "--epochs", "1", "--hidden", "16", "--batch-size", "128", "--no-plot"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", runtime.CudaEmulatorWarning)
        assert main([*common, "--device", "cuda", "--out", str(tmp_path / "cuda")]) == 0
    assert main([*common, "--device", "cpu", "--out", str(tmp_path / "cpu")]) == 0
    err = capsys.readouterr().err
    assert f"kernels: cuda ({minidl.cuda.build()})" in err
    on_cuda = json.loads((tmp_path / "cuda" / "metrics.json").read_text())
    on_cpu = json.loads((tmp_path / "cpu" / "metrics.json").read_text())
    assert on_cuda["kernels"] == f"cuda ({minidl.cuda.build()})" and on_cpu["kernels"] == minidl.kernels_name()
    # 12 steps of 1438/128 examples: the same rounding budget per step as above, 12 times, on the loss
    # (terms of size about log 10 + the logits; the mean loss itself is the scale here).
    budget = 12 * STEP_ROUNDINGS
    assert_within(
        on_cuda["train_loss"],
        on_cpu["train_loss"],
        chain_atol(on_cpu["train_loss"], budget=budget, fan_in=64, dtype=np.float32),
    )
    trained = minidl.checkpoint.read(tmp_path / "cuda" / "checkpoint.npz")
    assert trained["step"] == 1  # written from host copies of the device's parameters


def test_minidl_train_averages_parameters_on_the_cuda_device(tmp_path):
    common = ["train", "--model", "mlp", "--epochs", "1", "--hidden", "16", "--batch-size", "128", "--no-plot"]
    common += ["--average", "ema"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", runtime.CudaEmulatorWarning)
        assert main([*common, "--device", "cuda", "--out", str(tmp_path / "cuda")]) == 0
    assert main([*common, "--device", "cpu", "--out", str(tmp_path / "cpu")]) == 0
    on_cuda, on_cpu = (minidl.checkpoint.read(tmp_path / where / "checkpoint.npz") for where in ("cuda", "cpu"))
    averages_cuda = on_cuda["extra"]["averager"]["averages"]
    averages_cpu = on_cpu["extra"]["averager"]["averages"]
    assert len(averages_cuda) == len(averages_cpu) == 6 and on_cuda["extra"]["averager"]["num_updates"] == 12
    # 12 steps, each followed by an update of the average (a few elementwise roundings): as above.
    for got, want in zip(averages_cuda, averages_cpu):
        assert_within(got, want, chain_atol(want, budget=12 * (STEP_ROUNDINGS + 3), fan_in=64, dtype=np.float32))


def test_minidl_train_device_cuda_refuses_distributed(capsys):
    assert main(["train", "--device", "cuda", "--distributed", "sync"]) == 2
    assert "--device cuda: not with --distributed" in capsys.readouterr().err


def _python(code, **env):
    environment = {**os.environ, **env}
    environment.pop("MINIDL_CUDA", None) if "MINIDL_CUDA" not in env else None
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300)


@pytest.mark.skipif(runtime.build() != "emulated", reason="a GPU answered: the emulator is not used by default")
def test_the_emulator_says_so_once_and_import_minidl_loads_no_cuda():
    result = _python(
        "import sys, minidl\n"
        "assert 'minidl.backend.cuda.runtime' not in sys.modules, 'import minidl loaded CUDA'\n"
        "a = minidl.ones(3, device='cuda'); b = minidl.zeros(2).cuda(); print(float((a * 2).sum()))\n"
        "assert minidl.cuda.is_available() and minidl.cuda.build() == 'emulated'\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "6.0"
    assert result.stderr.count("runs on the CUDA emulator") == 1, result.stderr


def test_with_cuda_turned_off_asking_for_it_is_a_clear_error():
    result = _python(
        "import minidl\n"
        "print(minidl.cuda.is_available())\n"
        "try:\n    minidl.ones(2).to('cuda')\nexcept RuntimeError as e:\n    print(e)\n",
        MINIDL_CUDA="off",
    )
    assert result.returncode == 0, result.stderr
    available, error = result.stdout.strip().splitlines()
    assert available == "False"
    assert error == "to: device 'cuda' is not available: CUDA is turned off (MINIDL_CUDA=off); use 'cpu'"


def test_minidl_info_names_the_cuda_build_and_the_device(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"CUDA: {minidl.cuda.build()}" in out
    compiled = next(line for line in out.splitlines() if "builds compiled:" in line)
    assert ("emulated (C++)" if runtime.build() == "emulated" else "real (nvcc)") in compiled
    assert 'python device: "cuda", as in x.to("cuda")' in out


def test_tensor_of_a_device_tensor_stays_on_its_device():
    x = minidl.arange(4, dtype=minidl.float32, device="cuda")
    copy = minidl.tensor(x)
    assert copy.device == x.device and copy.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert minidl.tensor(x, device="cpu").device == "cpu"
