"""Parameters live in 64-byte-aligned memory, and stay there.

The C GEMM reads a row-major B in place instead of packing it only when B starts on a 64-byte
boundary with its rows a multiple of 16 floats apart (csrc/gemm.c, b_in_place(): the kernels load B
with aligned vector loads), which is what a layer's weight is in dX = dY W. NumPy's own allocations
are only 16-byte aligned, so minidl.nn.parameter.aligned_empty over-allocates and starts the array on
the first aligned byte; Parameter.empty wraps it, and Linear, Conv2d, the RNN/LSTM cells and
Embedding create their parameters with it.

These tests pin down aligned_empty's contract (shape, dtype, C order, writable, aligned, separate
memory) over many sizes, so that whatever offset NumPy's allocator happens to hand out is met; that
every layer's parameters come out aligned; and that nothing that changes a parameter's values --
re-initialization, optimizer steps on either kernel set, load_state_dict, a checkpoint round trip --
moves it to new memory (which would be unaligned again). Finally a Linear layer's backward, where the
weight is B, gives the right dX with the C kernels.
"""

import numpy as np
import pytest
from tolerances import assert_within, matmul_atol

import minidl
from minidl import Tensor, nn, optim
from minidl.backend.memory import ALIGNMENT, aligned_empty
from minidl.nn.parameter import Parameter

KERNEL_SETS = minidl.available_kernels()  # "numpy", and "c" where it is built


def address(x):
    return x.ctypes.data


def assert_aligned_array(x, shape, dtype):
    assert type(x) is np.ndarray
    assert x.shape == shape and x.dtype == np.dtype(dtype)
    assert x.flags.c_contiguous and x.flags.writeable
    assert address(x) % 64 == 0, f"{shape} {np.dtype(dtype)}: starts {address(x) % 64} bytes past a 64-byte boundary"


# ---------------------------------------------------------------------------------------
# aligned_empty
# ---------------------------------------------------------------------------------------
def test_alignment_is_64_bytes():
    assert ALIGNMENT == 64  # one cache line, one AVX-512 vector: what gemm.c's b_in_place() asks for


@pytest.mark.parametrize(
    "shape, want",
    [(1, (1,)), (7, (7,)), ((16,), (16,)), ((3, 5), (3, 5)), ([4, 4], (4, 4)), ((17, 3), (17, 3)), ((2, 3, 4, 5),) * 2]
    + [((5, 1, 1), (5, 1, 1)), ((1024, 513), (1024, 513))],  # the last is big enough for malloc's mmap path
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int8, np.int64, np.complex128, np.bool_])
def test_aligned_empty_shape_dtype_layout(shape, want, dtype):
    """An int, a tuple or a list; any fixed-size dtype: the array has that shape and dtype, is C-contiguous,
    writable and starts on a 64-byte boundary; and all of it is usable memory of its own."""
    x = aligned_empty(shape, dtype)
    assert_aligned_array(x, want, dtype)
    assert x.nbytes == int(np.prod(want)) * np.dtype(dtype).itemsize
    values = (np.arange(x.size) % 7).astype(dtype).reshape(want)
    x[...] = values
    y = aligned_empty(shape, dtype)  # a second one does not share the first one's memory
    assert not np.shares_memory(x, y)
    y[...] = 0
    assert np.array_equal(x, values)


def test_aligned_empty_default_dtype_is_float32():
    assert_aligned_array(aligned_empty((2, 3)), (2, 3), np.float32)


def test_aligned_empty_meets_whatever_offset_numpy_hands_out():
    """Every size from 1 to 300 floats (NumPy's small-object and malloc paths), several times over: all
    aligned -- where NumPy's own arrays of the same sizes are not (so the check has teeth)."""
    plain = [np.empty(n, np.float32) for n in range(1, 301) for _ in range(3)]
    if {address(x) % 64 for x in plain} == {0}:
        pytest.skip("this NumPy aligns every array to 64 bytes by itself: nothing to test here")
    arrays = [aligned_empty(n) for n in range(1, 301) for _ in range(3)]
    offsets = [address(x) % 64 for x in arrays]
    assert offsets == [0] * len(arrays)


def test_aligned_empty_scalar_shape():
    """shape () gives a 0-d array (as np.empty(()) does), aligned, that holds one value."""
    x = aligned_empty(())
    assert_aligned_array(x, (), np.float32)
    x[()] = 3.5
    assert x.item() == 3.5
    p = Parameter.empty(())
    assert p.shape == () and address(p.data) % 64 == 0 and p.requires_grad


@pytest.mark.parametrize("shape, want", [(0, (0,)), ((0,), (0,)), ((0, 5), (0, 5)), ((5, 0), (5, 0))])
def test_aligned_empty_zero_size(shape, want):
    """A 0-size array has the right shape and dtype and is C-contiguous and writable. (Its data pointer is
    not asserted: with no first element there is nothing to align -- NumPy does not move the pointer of an
    empty slice -- and mdk_sgemm returns before reading B when m, n or k is 0.)"""
    x = aligned_empty(shape)
    assert type(x) is np.ndarray and x.shape == want and x.dtype == np.float32 and x.size == 0
    assert x.flags.c_contiguous and x.flags.writeable
    x[...] = 1.0  # writing nothing is fine


def test_aligned_empty_refuses_object_dtype():
    """Uninitialized memory cannot hold Python references: an object array would be garbage pointers,
    so aligned_empty refuses rather than hand one out."""
    with pytest.raises(TypeError):
        aligned_empty(3, object)


# ---------------------------------------------------------------------------------------
# Parameter.empty and the layers
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, want", [(5, (5,)), ((4, 16), (4, 16)), ((3, 2, 3, 3), (3, 2, 3, 3))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parameter_empty(shape, want, dtype):
    p = Parameter.empty(shape, dtype)
    assert type(p) is Parameter and p.requires_grad and p.grad is None
    assert_aligned_array(p.data, want, dtype)


def test_parameter_empty_makes_the_subclass_it_is_called_on():
    class Scaled(Parameter):
        __slots__ = ()

    p = Scaled.empty((2, 16))
    assert type(p) is Scaled and p.requires_grad and address(p.data) % 64 == 0


LAYERS = {
    "Linear": lambda: nn.Linear(5, 3),
    "Linear, no bias": lambda: nn.Linear(7, 9, bias=False),
    "Linear 784 -> 512": lambda: nn.Linear(784, 512),  # 1.6 MB: malloc's mmap path, 16 bytes past a page
    "Linear float64": lambda: nn.Linear(6, 4, dtype=np.float64),
    "Conv2d": lambda: nn.Conv2d(3, 8, 3),
    "Conv2d, no bias": lambda: nn.Conv2d(2, 5, 5, bias=False),
    "Embedding": lambda: nn.Embedding(100, 24),
    "RNNCell": lambda: nn.RNNCell(5, 7),
    "LSTMCell": lambda: nn.LSTMCell(6, 3),
    "RNN, 2 layers": lambda: nn.RNN(5, 7, num_layers=2),
    "LSTM": lambda: nn.LSTM(4, 6),
}
EXPECTED_PARAMETERS = {  # so a layer that stops registering a parameter cannot pass by having fewer to check
    "Linear": 2,
    "Linear, no bias": 1,
    "Linear 784 -> 512": 2,
    "Linear float64": 2,
    "Conv2d": 2,
    "Conv2d, no bias": 1,
    "Embedding": 1,
    "RNNCell": 4,
    "LSTMCell": 4,
    "RNN, 2 layers": 8,
    "LSTM": 4,
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_parameters_are_aligned_and_stay_put_when_reinitialized(name):
    """Every parameter of each layer: a Parameter requiring grad, C-contiguous, 64-byte aligned, initialized
    (finite); and reset_parameters() fills the same memory again instead of replacing it."""
    module = LAYERS[name]()
    params = dict(module.named_parameters())
    assert len(params) == EXPECTED_PARAMETERS[name]
    for pname, p in params.items():
        assert isinstance(p, Parameter) and p.requires_grad, pname
        assert_aligned_array(p.data, p.shape, p.dtype)
        assert np.isfinite(p.data).all(), f"{name}.{pname} was not initialized"
    before = {pname: (address(p.data), p.data.copy()) for pname, p in params.items()}
    for sub in module.modules():
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()
    for pname, p in module.named_parameters():
        assert address(p.data) == before[pname][0], f"{name}.{pname} moved when re-initialized"
    changed = [pname for pname, p in module.named_parameters() if not np.array_equal(p.data, before[pname][1])]
    assert changed, f"{name}: reset_parameters() drew no new values, so it tested nothing"


# ---------------------------------------------------------------------------------------
# Updates keep the memory
# ---------------------------------------------------------------------------------------
def mlp():
    # 32*64 and 64*8 weights: over the C update kernels' size threshold (256); the biases are not
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))


def addresses(module):
    return {name: address(p.data) for name, p in module.named_parameters()}


def backward(module, seed=0):
    x = np.random.default_rng(seed).standard_normal((16, 32)).astype(np.float32)
    out = module(Tensor(x))
    (out * out).sum().backward()


OPTIMIZERS = {
    "SGD": lambda ps: optim.SGD(ps, lr=0.01),
    "SGD momentum, weight decay, nesterov": lambda ps: optim.SGD(
        ps, lr=0.01, momentum=0.9, weight_decay=1e-3, nesterov=True
    ),
    "AdaGrad": lambda ps: optim.AdaGrad(ps, lr=0.01, weight_decay=1e-3),
    "RMSProp": lambda ps: optim.RMSProp(ps, lr=0.01),
    "Adam": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=1e-3),
}


@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps_update_parameters_in_place(name, kernels, kernel_set):
    kernel_set(kernels)
    model = mlp()
    opt = OPTIMIZERS[name](model.parameters())
    where = addresses(model)
    start = {pname: p.data.copy() for pname, p in model.named_parameters()}
    for step in range(3):
        opt.zero_grad()
        backward(model, seed=step)
        opt.step()
        assert addresses(model) == where, f"{name} ({kernels} kernels) moved a parameter at step {step + 1}"
    for pname, p in model.named_parameters():
        assert not np.array_equal(p.data, start[pname]), f"{name} did not change {pname}: nothing was tested"


def test_load_state_dict_copies_into_the_aligned_memory():
    """Arrays (float32 and float64, NumPy-allocated: not aligned) and Tensors are copied in; the memory stays."""
    model, source = mlp(), mlp()
    where = addresses(model)
    state = source.state_dict()
    for kind, convert in [
        ("Tensors", lambda v: v),
        ("float32 arrays", lambda v: np.array(v.data if isinstance(v, Tensor) else v, np.float32)),
        ("float64 arrays", lambda v: np.array(v.data if isinstance(v, Tensor) else v, np.float64)),
    ]:
        for p in model.parameters():  # something else first, so the load has to change every value
            p.data[...] = 7.0
        model.load_state_dict({k: convert(v) for k, v in state.items()})
        assert addresses(model) == where, f"load_state_dict of {kind} moved a parameter"
        for (pname, p), (_, q) in zip(model.named_parameters(), source.named_parameters()):
            assert np.array_equal(p.data, q.data.astype(np.float32)), f"{kind}: {pname} not loaded"


def test_checkpoint_round_trip_keeps_the_memory(tmp_path):
    model, other = mlp(), mlp()
    path = minidl.save(tmp_path / "ckpt.npz", model=other)
    where = addresses(model)
    minidl.load(path, model=model)
    assert addresses(model) == where
    for p, q in zip(model.parameters(), other.parameters()):
        assert np.array_equal(p.data, q.data)


# ---------------------------------------------------------------------------------------
# The weight as the GEMM's B
# ---------------------------------------------------------------------------------------
@pytest.mark.skipif("c" not in KERNEL_SETS, reason="C kernels not built")
def test_linear_backward_with_the_aligned_weight_as_b(kernel_set):
    """dX = dY W: the weight (out, in) is row-major, aligned, its rows in_features floats apart (a multiple
    of 16 here) -- what the GEMM reads in place -- and dX is right to float32 accuracy."""
    kernel_set("c")
    layer = nn.Linear(256, 128)
    w = layer.weight.data
    assert address(w) % 64 == 0 and w.strides == (256 * 4, 4)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((64, 256)).astype(np.float32), requires_grad=True)
    dy = rng.standard_normal((64, 128)).astype(np.float32)
    (layer(x) * Tensor(dy)).sum().backward()
    want = dy.astype(np.float64) @ w.astype(np.float64)
    assert x.grad is not None and x.grad.shape == (64, 256)
    assert_within(x.grad.data, want, matmul_atol(dy, w, results=1), "dX against float64")  # 128-term dot bound


def test_aligned_empty_takes_numpy_integer_sizes():
    assert aligned_empty(np.int64(5)).shape == (5,)
    assert aligned_empty((np.int32(2), 3)).shape == (2, 3)
    assert nn.Linear(4, np.int64(3)).bias.shape == (3,)


@pytest.mark.parametrize("shape", [-4, (-1, 4), (2, -3), (-2, -3)])
def test_aligned_empty_rejects_negative_sizes(shape):
    with pytest.raises(ValueError, match="aligned_empty: negative dimensions are not allowed"):
        aligned_empty(shape)


def test_aligned_empty_rejects_non_integer_sizes():
    with pytest.raises(TypeError):
        aligned_empty((2.5, 3))
