"""PyTorch habits carry over: idiomatic PyTorch snippets give PyTorch's numbers on minidl.

Students learn on minidl and then move to PyTorch, and course material is full of PyTorch
code. Each snippet below is written the way that material writes it, as a function of `lib`:
it runs once with lib = torch and once with lib = minidl (the only change), from the same
initial values (drawn with NumPy), and both must give the same results: exactly for shapes,
dtypes, indices, booleans, error types and strings; within a rounding budget for floating
point values (tests/tolerances.py: chain_atol, with each snippet's budget said next to it).

What the snippets cover (issue 17): in-place operators (aliases and views see them, no_grad
parameter updates, the errors), var/std dividing by n - 1, max/min/sort/topk returning
(values, indices), equal vs eq and all/any as tensors, default dtypes, dim=/keepdim= (and
axis=/keepdims=), devices, utils.data, nn.utils.clip_grad_norm_, save/load, the recurrent
layers' parameter names, and the first week's small names (t, masked_fill, one_hot, dtype
aliases, mm, allclose, randperm, linspace, norm, add/sub/mul, BCELoss, @no_grad). Below the
snippets: in-place changes in detail, and PyTorch models' weights loaded into minidl.
"""

import os
import tempfile
import zlib

import numpy as np
import pytest
from tolerances import TRANSCENDENTAL_ULPS, assert_within, chain_atol

import minidl

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # the machine is shared; these tensors are tiny

LIBRARIES = {"torch": torch, "minidl": minidl}
ACT = 2 * TRANSCENDENTAL_ULPS + 1  # a sigmoid or tanh as the libraries compute it (exp, add, divide)


def data(shape, seed=0, scale=1.0):
    """float32 values drawn with NumPy: the same numbers for both libraries."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def set_weights(lib, model, seed=0, scale=0.5):
    """Give every parameter of `model` values drawn with NumPy from (seed, its name): identical in both libraries."""
    with lib.no_grad():
        for name, p in model.named_parameters():
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            p.copy_(lib.tensor((rng.standard_normal(tuple(p.shape)) * scale).astype(np.float32)))
    return model


def error_of(function):
    """The name of the exception class function() raises, or None."""
    try:
        function()
    except Exception as error:  # noqa: BLE001 - comparing which error each library raises
        return type(error).__name__
    return None


# ---------------------------------------------------------------------------
# Comparing what the two libraries return
# ---------------------------------------------------------------------------
def plain(value):
    """A library's result as plain Python and NumPy: tensors become ("tensor", dtype name, array)."""
    if isinstance(value, (torch.Tensor, minidl.Tensor)):
        return ("tensor", _dtype_name(value.dtype), np.array(value.detach().numpy()))
    if isinstance(value, (torch.dtype, np.dtype)):
        return ("dtype", _dtype_name(value))
    if isinstance(value, (torch.device, minidl.device)):
        return ("device", str(value))
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.name, value)
    if isinstance(value, (list, tuple)):  # torch.return_types and our namedtuples are tuples
        return tuple(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "") if isinstance(dtype, torch.dtype) else np.dtype(dtype).name


def assert_same(ours, theirs, budget, fan_in, where="result"):
    """Equal structure, types, shapes and dtypes; floats within chain_atol(budget, fan_in) of torch's."""
    if isinstance(theirs, tuple) and theirs and theirs[0] in ("tensor", "array") and len(theirs) == 3:
        assert isinstance(ours, tuple) and ours[0] == theirs[0], f"{where}: {ours!r} vs torch {theirs!r}"
        assert ours[1] == theirs[1], f"{where}: dtype {ours[1]} vs torch {theirs[1]}"
        assert ours[2].shape == theirs[2].shape, f"{where}: shape {ours[2].shape} vs torch {theirs[2].shape}"
        if theirs[2].dtype.kind == "f" and budget:
            assert_within(ours[2], theirs[2], chain_atol(theirs[2], budget=budget, fan_in=fan_in), where)
        else:
            np.testing.assert_array_equal(ours[2], theirs[2], err_msg=where)
    elif isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs), f"{where}: {ours!r} vs torch {theirs!r}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, budget, fan_in, f"{where}[{i}]")
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), f"{where}: keys {ours!r} vs torch {theirs!r}"
        for k in theirs:
            assert_same(ours[k], theirs[k], budget, fan_in, f"{where}[{k!r}]")
    elif isinstance(theirs, float) and not isinstance(theirs, bool):
        assert isinstance(ours, float), f"{where}: {ours!r} ({type(ours).__name__}) vs torch {theirs!r}"
        assert_within(np.float64(ours), np.float64(theirs), chain_atol(np.float32(theirs), budget=budget), where)
    else:
        assert type(ours) is type(theirs) and ours == theirs, f"{where}: {ours!r} vs torch {theirs!r}"


SNIPPETS = []


def snippet(budget=0, fan_in=1, marks=()):
    """Register a snippet. budget: its floating point results' rounding budget in units of eps (0: exact)."""

    def register(function):
        SNIPPETS.append(pytest.param(function, budget, fan_in, id=function.__name__, marks=marks))
        return function

    return register


@pytest.mark.parametrize("run, budget, fan_in", SNIPPETS)
def test_snippet_gives_pytorchs_results(run, budget, fan_in):
    theirs = plain(run(torch))
    ours = plain(run(minidl))
    assert_same(ours, theirs, budget, fan_in)


# ---------------------------------------------------------------------------
# Silently different before: in-place operators
# ---------------------------------------------------------------------------
@snippet()
def plus_equals_changes_the_tensor_every_name_and_view_sees(lib):
    a = lib.zeros(3)
    b = a  # another name for the same tensor
    b += 1
    b.mul_(2)
    grid = lib.zeros(2, 3)
    row = grid[0]  # a view of the first row
    row += 5
    flat = grid.view(6)
    flat[4] = 7.0
    grid[1, 0] -= 1
    return a, b is a, grid


@snippet(budget=3 * (2 * 8 + 3 * 3 + 10), fan_in=8)  # 3 steps: x @ w (3), residual, square, mean (8), and back
def sgd_by_hand_updates_the_parameter_in_place(lib):
    x, y = lib.tensor(data((8, 3), 1)), lib.tensor(data((8, 1), 2))
    w = lib.tensor(data((3, 1), 3), requires_grad=True)
    losses = []
    for _ in range(3):
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        with lib.no_grad():
            w -= 0.1 * w.grad  # in place: w stays the same leaf that requires grad
            w.grad.zero_()
        losses.append(loss.item())
    return w, w.requires_grad, w.is_leaf, losses


@snippet()
def inplace_errors(lib):
    w = lib.ones(3, requires_grad=True)

    def augmented_on_a_parameter():
        v = w
        v += 1

    x = lib.ones(3)
    y = (w * x).sum()  # the product saves x for backward ...
    x += 1  # ... which then changes
    return (
        error_of(lambda: w.add_(1)),  # a leaf that requires grad, while recording
        error_of(augmented_on_a_parameter),
        error_of(lambda: w[0].mul_(2)),  # a view of such a leaf
        error_of(y.backward),  # the saved value was clobbered: a clear error, not a wrong gradient
        x,
    )


@snippet(budget=4)
def inplace_on_tensors_in_the_graph(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 2
    h += 1  # h = x * 2 + 1
    h.sum().backward()
    first = x.grad.clone()
    x.grad = None
    out = x * 3
    out += x  # the residual connection of a ResNet block: out = f(x) + x
    out.sum().backward()
    second = x.grad.clone()
    x.grad = None
    h = x * 2
    h += h * 2  # the new h is 3 times the old one
    h.sum().backward()
    return h, first, second, x.grad


# ---------------------------------------------------------------------------
# Silently different before: var/std, max/min/sort/topk, equal/eq, all/any, dtypes
# ---------------------------------------------------------------------------
@snippet(budget=2 * 20 + 8, fan_in=20)  # mean and sum of squares over up to 20 values, a division and a sqrt
def variance_divides_by_n_minus_1(lib):
    x = lib.tensor(data((4, 5), 4))
    return (
        x.var(),
        x.std(),
        x.var(1),
        x.var(dim=0, keepdim=True),
        x.var(1, unbiased=False),
        x.std(0, correction=0),
        x.var(unbiased=True),
        lib.var(x, 1),
        lib.std(x),
        lib.std(x, dim=1, keepdim=True),
    )


@snippet()
def max_along_a_dim_gives_values_and_indices(lib):
    scores = lib.tensor(data((6, 4), 5), requires_grad=True)
    labels = lib.tensor([0, 3, 1, 1, 2, 0])
    _, predicted = scores.max(1)  # the classic accuracy line
    correct = (predicted == labels).sum().item()
    values, indices = lib.max(scores, dim=1)
    low = scores.min(dim=0)
    kept = scores.max(1, keepdim=True)
    values.sum().backward()  # the gradient goes to each row's winner
    return (
        predicted,
        correct,
        values,
        indices,
        low.values,
        low.indices,
        kept[0].shape,
        kept.indices,
        scores.max(),
        lib.max(scores, lib.zeros(6, 4)),
        lib.min(scores.detach(), dim=1)[1],
        scores.grad,
    )


@snippet()
def sort_and_topk(lib):
    x = lib.tensor([[3.0, 1.0, 2.0, 0.5], [0.0, 5.0, 4.0, -1.0]], requires_grad=True)
    ties = lib.tensor([2.0, 1.0, 2.0, 1.0])
    descending = x.sort(descending=True)
    by_column = lib.sort(x, dim=0)
    top = x.topk(2)
    bottom = x.topk(1, dim=0, largest=False)
    (descending.values * lib.tensor([4.0, 3.0, 2.0, 1.0])).sum().backward()
    return (
        descending.values,
        descending.indices,
        by_column.values,
        by_column.indices,
        top.values,
        top.indices,
        tuple(bottom),
        x.argsort(dim=1),
        ties.sort(stable=True),
        ties.sort(descending=True, stable=True).indices,
        x.grad,
    )


@snippet()
def equal_is_one_bool_and_all_any_are_tensors(lib):
    a = lib.tensor([[1, 2], [3, 4]])
    b = lib.tensor([[1, 2], [3, 5]])
    return (
        lib.equal(a, a),
        lib.equal(a, b),
        lib.eq(a, b),
        a == b,
        a.eq(b),
        a.ne(b),
        (a == b).all(),
        (a == b).any(),
        (a > 1).all(dim=1),
        (a > 1).any(dim=0),
        type((a > 0).all()).__name__,
        bool((a > 0).all()),
        lib.allclose(a.float(), b.float(), atol=1.5),
        lib.allclose(a.float(), b.float()),
    )


@snippet()
def default_dtypes(lib):
    return (
        lib.tensor([1, 2]).dtype,  # integers stay integer
        lib.tensor([1, 2]) / 2,  # ... but true division gives the default float dtype
        lib.Tensor([1, 2]),  # the class called directly always gives floats
        lib.tensor([1.5]).dtype,
        (lib.arange(4) * 0.5).dtype,
        (lib.arange(3) + lib.ones(3)).dtype,
        (lib.arange(3) ** 0.5).dtype,
        lib.tensor([1, 2]).exp().dtype,
        lib.zeros(2).dtype,
        lib.full((2,), 7).dtype,
        lib.full((2,), 7.0).dtype,
        lib.arange(3).float().mean(),
        lib.randint(0, 5, (3,)).dtype,
        lib.tensor([True]).dtype,
        lib.arange(0, 1, 0.25),
        (lib.tensor([1, 2]) > 1).sum().dtype,
    )


@snippet()
def data_is_a_detached_tensor_sharing_memory(lib):
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    snapshot = w.data.clone()
    w.data.mul_(10)  # changes w's values without the graph knowing
    w.data += 1
    return snapshot, w, w.data.requires_grad, type(w.data).__name__


# ---------------------------------------------------------------------------
# Missing before: dim=/keepdim= everywhere, devices, utils.data, clip_grad_norm_, save/load
# ---------------------------------------------------------------------------
@snippet(budget=4 + 2 * TRANSCENDENTAL_ULPS + 4, fan_in=4)  # sums of up to 4 (or 6) terms, softmax, logsumexp
def dim_and_keepdim_everywhere(lib):
    F = lib.nn.functional
    x = lib.tensor(data((2, 3, 4), 6))
    return (
        x.sum(dim=1),
        x.sum(dim=(0, 2), keepdim=True),
        x.mean(dim=-1, keepdim=True),
        lib.sum(x, 1),
        lib.mean(x, dim=(1, 2)),
        x.amax(dim=(1, 2)),
        x.argmax(dim=2),
        x.argmax(dim=1, keepdim=True),
        x.argmin(),
        F.softmax(x, dim=1),
        F.log_softmax(x, dim=-1),
        x.softmax(dim=0),
        x.logsumexp(dim=1),
        lib.cat([x, x], dim=2).shape,
        lib.stack([x, x], dim=1).shape,
        x.unsqueeze(dim=0).shape,
        x.unsqueeze(-1).shape,
        x.flatten(start_dim=1).shape,
        lib.flatten(x, start_dim=0, end_dim=1).shape,
        x.squeeze(dim=0).shape,
        x.split(3, dim=2)[1].shape,
        x.chunk(2, dim=1)[0].shape,
        x.transpose(0, 2).shape,
        x.sum(axis=1, keepdims=True),  # NumPy's names work too, in both
        x.mean(axis=2),
        lib.cat((x, x), axis=0).shape,
    )


@snippet(budget=4, fan_in=4)
def device_boilerplate(lib):
    # Both libraries must pick the same device for their answers to compare: minidl's "cuda" runs on
    # the emulator where PyTorch has none (tests/test_cuda_device.py tests that device against the cpu).
    cuda = lib.cuda.is_available() and torch.cuda.is_available()
    device = lib.device("cuda" if cuda else "cpu")
    model = set_weights(lib, lib.nn.Linear(3, 2)).to(device)
    x = lib.ones(4, 3).to(device)
    y = model(x).cpu()
    z = lib.zeros(2, device=device)
    x64 = x.to(device, dtype=lib.float64)
    return (
        str(device),
        device.type,
        x.device.type,
        y,
        z.device.type,
        x64.dtype,
        x.to(lib.float64).dtype,
        x.to(x64).dtype,
        x.is_cuda,
        model.to("cpu") is model,
        x.to("cpu") is x,
        lib.tensor([1, 2], device="cpu").device.type,
    )


@snippet(budget=3, fan_in=4)  # sums of 4 rows of 3
def datasets_and_loaders_from_utils_data(lib):
    from_utils = lib.utils.data
    features, labels = lib.tensor(data((10, 3), 7)), lib.arange(10)
    dataset = from_utils.TensorDataset(features, labels)
    loader = from_utils.DataLoader(dataset, batch_size=4, shuffle=False, num_workers=0)
    batches = [(xb.sum(dim=1), yb) for xb, yb in loader]

    class Squares(from_utils.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return lib.tensor([float(i), float(i * i)]), i

    squares = [batch for batch in from_utils.DataLoader(Squares(), batch_size=2, drop_last=True)]
    train, test = from_utils.random_split(dataset, [7, 3])
    first = dataset[3]
    return len(dataset), len(loader), batches, first, type(first[0]).__name__, squares, len(train), len(test)


@snippet(budget=3 * 4 + 2 * 8 + 8, fan_in=8)  # forward and backward of a small layer, then the norm of 15 values
def clip_grad_norm_from_nn_utils(lib):
    model = set_weights(lib, lib.nn.Linear(4, 3), scale=2.0)
    loss = (model(lib.tensor(data((8, 4), 8))) ** 2).sum()
    loss.backward()
    norm = lib.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
    lib.nn.utils.clip_grad_value_(model.parameters(), clip_value=0.05)
    return norm, model.weight.grad, model.bias.grad


@snippet(budget=2 * 4, fan_in=4)  # one layer forward (same weights, the same inputs)
def save_and_load_state_dicts(lib):
    model = set_weights(lib, lib.nn.Linear(3, 2))
    optimizer = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(lib.ones(1, 3)).sum().backward()
    optimizer.step()
    x = lib.tensor(data((4, 3), 9))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.pt")
        lib.save(model.state_dict(), path)
        copy = lib.nn.Linear(3, 2)
        result = copy.load_state_dict(lib.load(path))
        lib.save({"step": 3, "tensors": [lib.ones(2), lib.arange(3)], "pair": (1, "a"), "lr": 0.5}, path)
        back = lib.load(path)
        lib.save(optimizer.state_dict(), path)
        restored = lib.optim.SGD(copy.parameters(), lr=0.5)
        restored.load_state_dict(lib.load(path))
    copy(lib.ones(1, 3)).sum().backward()
    restored.step()  # continues with the saved momentum and learning rate
    return copy(x), tuple(result), back, copy.weight, restored.param_groups[0]["lr"]


@snippet()
def recurrent_parameters_have_pytorchs_names(lib):
    lstm = lib.nn.LSTM(3, 4, num_layers=2)
    rnn = lib.nn.RNN(3, 4, bias=False, batch_first=True)
    cell = lib.nn.LSTMCell(3, 4)
    return tuple(
        [(name, tuple(value.shape)) for name, value in module.state_dict().items()] for module in (lstm, rnn, cell)
    )


# ---------------------------------------------------------------------------
# Missing before: the first week's small names
# ---------------------------------------------------------------------------
@snippet(budget=3 + 2, fan_in=3)  # products of 3 terms, norms of up to 6 squares
def first_week_names(lib):
    F = lib.nn.functional
    x, y = lib.tensor(data((2, 3), 8)), lib.tensor(data((3, 2), 9))
    labels = lib.tensor([2, 0, 1])
    mask = x > 0
    return (
        x.t(),
        lib.t(x).shape,
        x.masked_fill(mask, 0.0),
        x.masked_fill(~mask, -1.0),
        F.one_hot(labels, 4),
        F.one_hot(labels),
        (lib.long, lib.float, lib.int, lib.double, lib.bool),
        x.long(),
        x.int().dtype,
        lib.mm(x, y),
        x.mm(y),
        lib.allclose(x, x + 1e-9),
        lib.allclose(x, x + 1),
        sorted(lib.randperm(6).tolist()),
        lib.randperm(6).dtype,
        lib.linspace(0, 1, 5),
        lib.linspace(-1, 1, steps=3),
        x.norm(),
        lib.norm(x, dim=1),
        x.norm(p=1),
        x.add(y.t()),
        x.add(1, alpha=2),
        x.sub(y.t(), alpha=2),
        x.mul(3),
        x.mul(y.t()),
        x.div(2),
        F.pad(x, (1, 1)),
        F.pad(x, (1, 0, 2, 1), value=3.0).shape,
        lib.gather(x, 1, lib.tensor([[2, 0], [1, 1]])),
    )


@snippet(budget=2 * TRANSCENDENTAL_ULPS + 12 + ACT, fan_in=12)  # sigmoid, two logs, a sum of 12, gradients
def binary_cross_entropy_on_probabilities(lib):
    z = lib.tensor(data((4, 3), 10), requires_grad=True)
    targets = lib.tensor((data((4, 3), 11) > 0).astype(np.float32))
    probabilities = lib.sigmoid(z)
    loss = lib.nn.BCELoss()(probabilities, targets)
    loss.backward()
    F = lib.nn.functional
    return (
        loss,
        z.grad,
        lib.nn.BCELoss(reduction="sum")(probabilities.detach(), targets),
        F.binary_cross_entropy(probabilities.detach(), targets, reduction="none"),
        F.binary_cross_entropy(lib.tensor([0.0, 1.0]), lib.tensor([1.0, 1.0]), reduction="none"),  # clamped at 100
    )


@snippet()
def no_grad_as_a_bare_decorator(lib):
    model = lib.nn.Linear(3, 2)
    x = lib.ones(1, 3)

    @lib.no_grad
    def evaluate(model, x):
        return model(x)

    @lib.no_grad()
    def evaluate_called(model, x):
        return model(x)

    with lib.no_grad():
        inside = model(x)
    return (
        evaluate(model, x).requires_grad,
        evaluate_called(model, x).requires_grad,
        inside.requires_grad,
        model(x).requires_grad,
        lib.is_grad_enabled(),
    )


@snippet(budget=5 * (2 * (16 + 8) + 4 + 2 * TRANSCENDENTAL_ULPS + 8), fan_in=16)  # 5 SGD steps of a small MLP
def a_training_loop_as_the_tutorials_write_it(lib):
    nn, F = lib.nn, lib.nn.functional
    model = set_weights(lib, nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)))
    optimizer = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    x, y = lib.tensor(data((8, 4), 12)), lib.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    device = "cuda" if lib.cuda.is_available() and torch.cuda.is_available() else "cpu"  # the same for both
    model.to(device)
    losses = []
    for _ in range(5):
        model.train()
        optimizer.zero_grad()
        loss = criterion(model(x.to(device)), y.to(device))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with lib.no_grad():
        _, predicted = model(x.to(device)).max(1)
        accuracy = (predicted == y.to(device)).float().mean().item()
        probabilities = F.softmax(model(x.to(device)), dim=1)
    return losses, predicted.cpu(), accuracy, probabilities.cpu()


# ---------------------------------------------------------------------------
# In-place operators in detail
# ---------------------------------------------------------------------------
def test_plus_equals_mutates_shared_tensors_and_bumps_the_version():
    a = minidl.zeros(3)
    b = a
    view = a.view(3, 1)
    b += 1
    assert b is a and a.version == view.version == 1
    np.testing.assert_array_equal(view.numpy().ravel(), [1.0, 1.0, 1.0])
    row = minidl.zeros(2, 3)
    first = row[0]  # a basic slice is a view: it shares memory and the version counter
    first *= 3
    first += 2
    assert row.version == first.version == 2
    np.testing.assert_array_equal(row.numpy(), [[2.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    t = torch.zeros(3)
    t_alias = t
    t_alias += 1
    assert t._version == a.version  # PyTorch counts the same way


def test_an_inplace_change_of_a_value_a_pending_backward_needs_is_a_clear_error():
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    x = minidl.tensor([3.0, 4.0])
    loss = (w * x).sum()  # d loss / d w = x: the product saved x
    x += 1
    assert x.version == 1
    with pytest.raises(RuntimeError, match=r"backward of Mul: input 1 .* was modified in place after the forward pass"):
        loss.backward()
    y = w.exp()  # exp saves its output
    z = y.sum()
    with minidl.no_grad():
        y *= 2
    with pytest.raises(RuntimeError, match=r"backward of Exp: its output was modified in place"):
        z.backward()


def test_inplace_changes_of_parameters_are_refused_while_recording_and_allowed_under_no_grad():
    w = minidl.nn.Parameter(np.ones(3, np.float32))
    for change in (lambda: w.add_(1), lambda: w.zero_(), lambda: w.__iadd__(1), lambda: w.__setitem__(0, 2.0)):
        with pytest.raises(RuntimeError, match="a leaf tensor that requires grad is being used in an in-place"):
            change()
    with pytest.raises(RuntimeError, match="view of a leaf tensor that requires grad"):
        w[1:].mul_(2)
    assert w.version == 0
    with minidl.no_grad():
        w -= 0.5
        w[0] = 3.0
    assert w.requires_grad and w.is_leaf and w.version == 2
    np.testing.assert_array_equal(w.numpy(), [3.0, 0.5, 0.5])


def test_augmented_assignment_in_the_graph_records_the_new_value_under_the_same_name():
    # minidl's graph links ops to tensor objects, so a tensor in the graph cannot start standing
    # for a new value: `h += 1` binds the name h to h + 1 (PyTorch's gradients, shown above). A
    # second name for the old h keeps the old value: the one documented difference from PyTorch.
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    old = h
    h += 1
    assert h is not old and h.grad_fn is not None
    np.testing.assert_array_equal(old.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(h.numpy(), [3.0, 5.0])
    # The named in-place methods cannot rebind a name, so in the graph they refuse clearly.
    for change in (lambda: h.add_(1), lambda: h.mul_(2), lambda: h.__setitem__(0, 1.0), lambda: h.zero_()):
        with pytest.raises(RuntimeError, match="this in-place change would have to be recorded in the graph"):
            change()
    with pytest.raises(RuntimeError, match="view of a tensor in the recorded graph"):
        h.reshape(2, 1).add_(1)


def test_gradients_stay_right_when_an_earlier_use_of_the_old_value_is_in_the_graph():
    # The old value keeps its own graph: y used h before `h *= 0.5`, and its gradient is h's old one.
    x = minidl.tensor([1.0, 1.0], requires_grad=True)
    x_t = torch.tensor([1.0, 1.0], requires_grad=True)
    for lib, leaf in ((minidl, x), (torch, x_t)):
        h = leaf * 1
        total = lib.zeros(2)
        for _ in range(3):
            total = total + h
            h *= 0.5
        (total.sum() + h.sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), x_t.grad.numpy())  # 1 + 0.5 + 0.25 + 0.125: exact


def test_inplace_results_keep_the_tensors_dtype_and_shape():
    counts = minidl.zeros(3, dtype=minidl.long)
    counts += minidl.tensor([1, 0, 2])
    assert counts.dtype == np.int64
    with pytest.raises(TypeError, match=r"\+=: the result has dtype float32, which cannot be stored in place"):
        counts += 0.5  # PyTorch refuses this too (RuntimeError there)
    with pytest.raises(RuntimeError, match=r"\+=: the result has shape \(2, 3\) but this tensor has shape \(3,\)"):
        counts += minidl.zeros(2, 3, dtype=minidl.long)
    with pytest.raises(RuntimeError, match="read-only"):
        minidl.zeros(3).expand(2, 3).add_(1)


# ---------------------------------------------------------------------------
# PyTorch models' weights in minidl: state dicts move by name, through NumPy
# ---------------------------------------------------------------------------
LSTM_STEP = 10 + ACT + 3 + ACT + 1  # gates (in + hidden + 2 biases), sigmoid/tanh, c = f·c + i·g, tanh(c), o·tanh(c)


def test_a_pytorch_lstms_weights_load_into_the_same_minidl_lstm_and_give_the_same_outputs():
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True)
    ours = minidl.nn.LSTM(3, 5, num_layers=2, batch_first=True)
    result = ours.load_state_dict({name: value.detach().numpy() for name, value in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = data((2, 7, 3), seed=13)
    out, (h, c) = ours(minidl.tensor(x))
    with torch.no_grad():
        out_t, (h_t, c_t) = theirs(torch.from_numpy(x))
    budget = 7 * 2 * LSTM_STEP  # 7 steps through 2 layers
    for name, a, b in (("output", out, out_t), ("h_n", h, h_t), ("c_n", c, c_t)):
        assert_within(a.numpy(), b.numpy(), chain_atol(b.numpy(), budget=budget, fan_in=10), name)


def test_a_pytorch_cnns_weights_load_into_the_same_minidl_cnn_through_an_npz_file(tmp_path):
    def cnn(nn):
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * 4 * 4, 10),
        )

    torch.manual_seed(1)
    theirs = cnn(torch.nn)
    theirs.train()
    with torch.no_grad():
        theirs(torch.randn(16, 1, 8, 8))  # move BatchNorm's running statistics away from 0 and 1
    theirs.eval()
    # The two-line recipe (README, "Coming from PyTorch"): NumPy arrays by name, into a file and back.
    np.savez(tmp_path / "weights.npz", **{k: v.numpy() for k, v in theirs.state_dict().items()})
    ours = cnn(minidl.nn)
    ours.load_state_dict(np.load(tmp_path / "weights.npz"))
    ours.eval()
    assert int(ours[1].num_batches_tracked.item()) == 1
    x = data((3, 1, 8, 8), seed=14)
    out = ours(minidl.tensor(x))
    with torch.no_grad():
        out_t = theirs(torch.from_numpy(x))
    # conv (9 products + bias), batch norm (4 ops and a sqrt), max, then 64 products + bias
    assert_within(out.numpy(), out_t.numpy(), chain_atol(out_t.numpy(), budget=10 + 6 + 65, fan_in=64), "logits")


def test_minidl_weights_load_into_pytorch_by_name_too():
    ours = minidl.nn.RNN(2, 3, num_layers=2)
    theirs = torch.nn.RNN(2, 3, num_layers=2)
    theirs.load_state_dict({name: torch.from_numpy(value.numpy()) for name, value in ours.state_dict().items()})
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), ours.state_dict()[name].numpy())


# ---------------------------------------------------------------------------
# save/load never unpickle: a file from a classmate cannot run code
# ---------------------------------------------------------------------------
def test_load_never_unpickles_objects(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta=np.array('{"format": "minidl-save", "version": 1, "object": null}'),
             payload=np.array([object()], dtype=object))  # fmt: skip
    with pytest.raises(minidl.checkpoint.CheckpointError, match="cannot be read.*pickle"):
        minidl.load(path)
    with pytest.raises(TypeError, match=r"save: cannot store a Linear at 'obj'.*save its state_dict\(\) instead"):
        minidl.save(minidl.nn.Linear(2, 2), tmp_path / "model.npz")


def test_save_and_load_keep_containers_keys_and_types_and_write_atomically(tmp_path, monkeypatch):
    path = tmp_path / "state.npz"
    obj = {
        "weights": {"w": minidl.ones(2, 2), "b": np.arange(3)},
        "history": [0.5, float("inf")],
        7: (None, True, "text"),
        "__tensor__": 1,  # a key that looks like the file's own markers is still just a key
    }
    minidl.save(obj, path)
    back = minidl.load(path)
    assert list(back) == ["weights", "history", 7, "__tensor__"]
    assert isinstance(back["weights"]["w"], minidl.Tensor) and isinstance(back["weights"]["b"], np.ndarray)
    np.testing.assert_array_equal(back["weights"]["w"].numpy(), np.ones((2, 2), np.float32))
    assert back["history"] == [0.5, float("inf")] and back[7] == (None, True, "text") and back["__tensor__"] == 1

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(minidl.checkpoint.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        minidl.save({"other": 1}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["state.npz"] and minidl.load(path)["__tensor__"] == 1  # the old file, intact


def test_the_old_checkpoint_call_and_checkpoint_files_point_to_the_checkpoint_helpers(tmp_path):
    model = minidl.nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"minidl.save_checkpoint\(path, model=\.\.\., optimizer=\.\.\."):
        minidl.save(tmp_path / "c.npz", model=model)
    minidl.save_checkpoint(tmp_path / "c.npz", model=model, step=1)
    with pytest.raises(minidl.checkpoint.CheckpointError, match=r"training checkpoint; restore it with"):
        minidl.load(tmp_path / "c.npz")
    minidl.save(model.state_dict(), tmp_path / "s.npz")
    with pytest.raises(minidl.checkpoint.CheckpointError, match=r"written by minidl.save; read it with minidl.load"):
        minidl.load_checkpoint(tmp_path / "s.npz", model=model)


# ---------------------------------------------------------------------------
# Devices: parsed like PyTorch's; "cuda" is available when a CUDA build (real or emulated) loads
# ---------------------------------------------------------------------------
def test_devices_parse_like_pytorchs_and_unavailable_ones_are_clear_errors():
    assert minidl.device("cpu") is minidl.device(minidl.device("cpu"))
    assert (minidl.device("cuda:1").type, minidl.device("cuda:1").index) == ("cuda", 1)
    assert repr(minidl.device("cuda", 1)) == repr(torch.device("cuda", 1)) == "device(type='cuda', index=1)"
    assert repr(minidl.device("cpu")) == repr(torch.device("cpu"))
    with pytest.raises(ValueError, match="device: unknown device type 'gpu'"):
        minidl.device("gpu")
    with pytest.raises(RuntimeError, match="to: device 'cuda:1' is not available; minidl drives one GPU"):
        minidl.ones(2).to("cuda:1")
    with pytest.raises(RuntimeError, match="Module.to: device 'cuda:3' is not available"):
        minidl.nn.ReLU().to("cuda:3")
    assert minidl.cuda.device_count() == int(minidl.cuda.is_available())
