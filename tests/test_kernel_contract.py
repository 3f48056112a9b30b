"""The kernel contract (minidl/backend/contract.py), checked on every kernel set that is built.

Every primitive, required or optional, is run on awkward inputs (empty and one-element
arrays, odd sizes, broadcasting, transposed views, float32, float64 and integers) by each
kernel set and by the reference (NumPy's core plus the extras composed from it), and the
results are compared: bit for bit where IEEE arithmetic fixes the answer (one rounding per
element, comparisons, data movement), within the operation's error bound where the order
of a sum or a transcendental's approximation may differ (tests/tolerances.py). Arrays go in
through the set's `from_numpy` and come back through `to_numpy`, so a device kernel set
(CUDA) runs the same checks.

Also: a kernel set missing part of the core is refused with an error naming what is
missing, and a set that lacks an optional extra gets the composed version, built from its
own core, with the same results.
"""

import os
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest
from tolerances import TRANSCENDENTAL_ULPS, eps, matmul_atol, sum_atol

import minidl
from minidl import backend
from minidl.backend import composed, contract, numpy_kernels
from minidl.backend.contract import OPTIONAL, REQUIRED, KernelContractError, KernelSet

REFERENCE = backend.reference_kernels


def kernel_sets():
    """Every kernel set this install can run, by name: "cuda" too when a CUDA build loads (the emulator here)."""
    sets = {"numpy": backend.reference_kernels}
    if "c" in backend.available_kernels():
        from minidl.backend import c_kernels

        sets["c"] = KernelSet("c", c_kernels)
    with warnings.catch_warnings():  # "cuda runs on the emulator" is said by tests/test_cuda_device.py
        warnings.simplefilter("ignore", UserWarning)
        if backend.enable_cuda() is None:
            sets["cuda"] = backend.get_kernels(backend.CUDA)
    return sets


SETS = kernel_sets()


def rand(*shape, dtype=np.float32, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def positive(*shape, dtype=np.float32, seed=0):
    return (np.random.default_rng(seed).uniform(0.1, 3.0, shape)).astype(dtype)


def ints(*shape, seed=0, high=10):
    return np.random.default_rng(seed).integers(-high, high, shape)


# ---------------------------------------------------------------------------
# How results are compared
# ---------------------------------------------------------------------------
def exact(got, want, args):
    """Bit for bit (NaNs in the same places): one IEEE rounding, a comparison, or moved data."""
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype and got.shape == want.shape


def ulps(count):
    """Within `count` ulps of each result (relative to its size), for transcendental functions."""

    def compare(got, want, args):
        assert got.shape == want.shape and got.dtype == want.dtype
        rtol = count * eps(want.dtype) if want.dtype.kind == "f" else 0
        atol = np.finfo(want.dtype).tiny if want.dtype.kind == "f" else 0  # results that underflow
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)

    return compare


TRANSCENDENTAL = ulps(2 * TRANSCENDENTAL_ULPS)  # two libraries, each within TRANSCENDENTAL_ULPS


def reduction(got, want, args):
    """A sum in any order: within the bound for sums of its terms (tolerances.sum_atol)."""
    x, axis, keepdims = args[0], args[1] if len(args) > 1 else None, args[2] if len(args) > 2 else False
    np.testing.assert_array_less(np.abs(got - want), sum_atol(x, axis=axis, keepdims=keepdims) + np.finfo(x.dtype).tiny)
    assert got.shape == want.shape


def product(got, want, args):
    """A matrix product in any order and blocking: within the dot-product bound (tolerances.matmul_atol)."""
    a, b = args[0], args[1]
    assert got.shape == want.shape
    np.testing.assert_array_less(np.abs(got - want), matmul_atol(a, b) + np.finfo(want.dtype).tiny)


def scaled(budget):
    """Within `budget` eps of the largest magnitude involved: softmax-like rows and the optimizer updates."""

    def compare(got, want, args):
        assert got.shape == want.shape and got.dtype == want.dtype
        if want.size:
            scale = max(float(np.max(np.abs(want))), 1.0)
            np.testing.assert_allclose(got, want, rtol=0, atol=budget * eps(want.dtype) * scale)

    return compare


def conv_bound(kind):
    """A convolution is a matrix product over patches: the dot-product bound with k = C/groups·kh·kw terms."""

    def compare(got, want, args):
        assert got.shape == want.shape
        abs64 = [np.abs(np.asarray(a, dtype=np.float64)) if isinstance(a, np.ndarray) else a for a in args]
        if kind == "forward":
            x, w = abs64[0], abs64[1]
            magnitude = REFERENCE.conv2d_forward(x, w, abs64[2], *args[3:7], activation=None)
            k = w.shape[1] * w.shape[2] * w.shape[3]
        elif kind == "input":
            magnitude = REFERENCE.conv2d_backward_input(*abs64[:3], *args[3:])
            k = args[1].shape[0] * args[1].shape[2] * args[1].shape[3]
        else:
            magnitude = REFERENCE.conv2d_backward_weight(*abs64[:3], *args[3:])
            k = args[1].shape[0] * args[1].shape[2] * args[1].shape[3]
        tol = 2 * (k + 2) * eps(want.dtype) * magnitude
        np.testing.assert_array_less(np.abs(got - want), tol + np.finfo(want.dtype).tiny)

    return compare


# ---------------------------------------------------------------------------
# The cases: primitive -> [(arguments, how to compare)]
# ---------------------------------------------------------------------------
def elementwise_binary_cases():
    return [
        (rand(7, 33), rand(7, 33, seed=1)),  # odd sizes
        (rand(7, 33), rand(33, seed=1)),  # broadcasting a row
        (rand(5, 1, 3), rand(1, 4, 1, seed=1)),  # broadcasting both ways
        (rand(9, 5).T, rand(5, 9, seed=1)),  # a transposed view
        (rand(0, 5), rand(1, 5, seed=1)),  # empty
        (rand(1), 2.5),  # one element and a Python number
        (rand(4, 3, dtype=np.float64), rand(4, 3, dtype=np.float64, seed=1)),
        (rand(70000), rand(70000, seed=1)),  # big enough for any set's fast path
    ]


def division_cases():
    return [(a, b if isinstance(b, float) else np.where(np.abs(b) < 0.1, 1.0, b).astype(b.dtype)) for a, b in
            elementwise_binary_cases()]  # fmt: skip


UNARY = [rand(7, 33, scale=2), rand(9, 5, scale=2).T, rand(0, 3), rand(1), rand(6, dtype=np.float64), rand(70000)]
POSITIVE = [positive(7, 33), positive(0, 3), positive(1), positive(6, dtype=np.float64), positive(70000)]
INTS = [(ints(5, 7), ints(7, seed=1))]
IMAGES = [  # (x shape, weight shape, stride, padding, dilation, groups)
    ((2, 3, 7, 5), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 1, 9, 9), (2, 1, 3, 3), (2, 2), (0, 0), (1, 1), 1),
    ((2, 4, 6, 7), (6, 2, 2, 3), (2, 1), (1, 0), (2, 1), 2),
    ((1, 3, 5, 5), (3, 1, 3, 3), (1, 1), (1, 1), (1, 1), 3),  # depthwise
    ((3, 2, 4, 4), (5, 2, 1, 1), (1, 1), (0, 0), (1, 1), 1),  # 1x1
    ((4, 16, 14, 14), (32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1),  # big enough for any fast path
]
WINDOWS = [((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1)), ((3, 2), (2, 1), (1, 0)), ((1, 1), (1, 1), (0, 0))]
POOL_IMAGES = [rand(2, 3, 7, 6, seed=4), rand(1, 1, 1, 1, seed=5), rand(4, 16, 28, 28, seed=6)]


def conv_cases(kind):
    cases = []
    for seed, (x_shape, w_shape, stride, padding, dilation, groups) in enumerate(IMAGES):
        x, w, b = rand(*x_shape, seed=seed), rand(*w_shape, seed=seed + 10), rand(w_shape[0], seed=seed + 20)
        geometry = (stride, padding, dilation, groups)
        out_shape = REFERENCE.conv2d_forward(x, w, None, *geometry).shape
        if kind == "forward":
            cases.append(((x, w, b, *geometry), conv_bound("forward")))
            cases.append(((x, w, None, *geometry), conv_bound("forward")))
        elif kind == "input":
            cases.append(((rand(*out_shape, seed=seed + 30), w, x_shape, *geometry), conv_bound("input")))
        else:
            cases.append(((x, rand(*out_shape, seed=seed + 30), w_shape, *geometry), conv_bound("weight")))
    return cases


def pool_cases(name):
    cases = []
    for x in POOL_IMAGES:
        for window in WINDOWS:
            if any(p > k // 2 for p, k in zip(window[2], window[0])) or x.shape[2] + 2 * window[2][0] < window[0][0]:
                continue
            if x.shape[3] + 2 * window[2][1] < window[0][1]:
                continue
            out, argmax = REFERENCE.max_pool2d_forward(x, *window)
            g = rand(*out.shape, seed=7)
            if name == "max_pool2d_forward":
                cases.append(((x, *window), exact))
            elif name == "max_pool2d_backward":
                cases.append(((g, argmax, x.shape, *window), window_sum))
            elif name == "max_pool2d_select":
                cases.append(((x, argmax, *window), exact))
            elif name == "avg_pool2d_forward":
                cases.append(((x, *window), window_sum))
            else:
                cases.append(((g, x.shape, *window), window_sum))
    return cases


def window_sum(got, want, args):
    """Sums over pooling windows (at most kh·kw overlapping terms per element), in any order."""
    assert got.shape == want.shape
    window = next(a for a in args if isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], int))
    terms = window[0] * window[1]
    bound = 2 * terms * eps(want.dtype) * max(float(np.max(np.abs(want), initial=0)), 1.0) * terms
    np.testing.assert_allclose(got, want, rtol=0, atol=bound)


def update_cases(name):
    """(arguments, compare) for an in-place optimizer update: compared on every array it changes."""
    p, g = rand(33, 7, seed=1), rand(33, 7, seed=2)
    state = [positive(33, 7, seed=3) for _ in range(3)]
    calls = {
        "sgd_update": [(p, g, state[0], 0.1, 0.9), (p, g, None, 0.1), (p, g, state[0], 0.1, 0.9, 1e-4, True)],
        "adagrad_update": [(p, g, state[0], 0.05), (p, g, state[0], 0.05, 1e-10, 1e-3)],
        "rmsprop_update": [(p, g, state[0], 0.01), (p, g, state[0], 0.01, 0.9, 1e-8, 0.0, state[1] * 0.1)],
        "adam_update": [(p, g, state[0] - 1, state[1], 3, 1e-3), (p, g, state[0], state[1], 1, 1e-3,
                                                                 0.9, 0.999, 1e-8, 0.0, state[2])],
    }[name]  # fmt: skip
    return [(args, scaled(16)) for args in calls]


def cases(name):
    """Every case of one primitive: [(arguments, compare)]."""
    binary = {"add", "sub", "mul", "maximum", "minimum"}
    comparisons = {"greater", "greater_equal", "less", "less_equal", "equal", "not_equal"}
    if name in binary:
        return [(args, exact) for args in elementwise_binary_cases() + INTS]
    if name == "div":
        return [(args, exact) for args in division_cases()]
    if name in comparisons:
        return [(args, exact) for args in elementwise_binary_cases() + INTS]
    if name == "power":
        # x**3 is not one IEEE operation: NumPy's float32 power is itself 1 ulp off the correctly rounded
        # cube (1.2808453**3: NumPy 2.1013093, float64-then-rounded 2.1013095), so it is a transcendental here.
        return [((x, 3), TRANSCENDENTAL) for x in UNARY] + [((x, 0.5), TRANSCENDENTAL) for x in POSITIVE]
    if name in ("neg", "abs", "sign"):
        return [((x,), exact) for x in UNARY + [ints(5, 4)]]
    if name == "sqrt":
        return [((x,), exact) for x in POSITIVE]  # IEEE: correctly rounded
    if name == "log":
        return [((x,), TRANSCENDENTAL) for x in POSITIVE]
    if name in ("exp", "sin", "cos", "tanh", "sigmoid", "erf"):
        return [((x,), TRANSCENDENTAL) for x in UNARY]
    if name == "relu":
        return [((x,), exact) for x in UNARY]
    if name == "leaky_relu":
        return [((x, 0.1), exact) for x in UNARY] + [((UNARY[0], 2.0), exact)]
    if name == "where":
        x, y = rand(7, 33), rand(7, 33, seed=1)
        return [((x > 0, x, y), exact), ((x[:, :1] > 0, x, 0.0), exact), ((np.zeros((0, 2), bool), 1.0, 2.0), exact)]
    if name == "clip":
        return [((x, -0.5, 0.25), exact) for x in UNARY] + [((UNARY[0], None, 0.0), exact)]
    if name == "astype":
        return [((UNARY[0], np.float64), exact), ((UNARY[4], np.float32), exact), ((ints(3, 3), np.float32), exact)]
    if name in ("sum",):
        x = rand(6, 7, 5)
        return [((x, axis, keep), reduction) for axis in (None, 0, 1, (0, 2), (1, 2), -1) for keep in (False, True)] + [
            ((rand(0, 4), 0), reduction), ((rand(1), None), reduction), ((rand(70000), None), reduction),
            ((rand(4, 16, 14, 14), (0, 2, 3)), reduction),  # a convolution's bias gradient
        ]  # fmt: skip
    if name in ("max", "min"):
        x = np.round(rand(6, 7, 5) * 2) / 2  # ties
        return [((x, axis, keep), exact) for axis in (None, 0, 2, (0, 1), -1) for keep in (False, True)] + [
            ((rand(70000), None), exact),
            ((ints(5, 3), 1), exact),
        ]
    if name == "argmax":
        x = np.round(rand(6, 7) * 2) / 2  # ties: the first maximum wins
        return [((x, None), exact), ((x, 0), exact), ((x, 1), exact), ((ints(9), 0), exact)]
    if name == "matmul":
        shapes = [((5, 7), (7, 3)), ((1, 1), (1, 1)), ((3, 0), (0, 4)), ((2, 5, 7), (7, 3)), ((4,), (4, 3)),
                  ((3, 4), (4,)), ((200, 180), (180, 190)), ((2, 1, 6, 5), (3, 5, 4))]  # fmt: skip
        result = [((rand(*a, seed=1), rand(*b, seed=2)), product) for a, b in shapes]
        return result + [((rand(7, 5, seed=1).T, rand(3, 7, seed=2).T), product)]
    if name == "linear":
        x, w, b = rand(33, 17), rand(9, 17, seed=1), rand(9, seed=2)
        big = (rand(128, 300), rand(200, 300, seed=1), rand(200, seed=2))
        return [((x, w, b, act), linear_compare) for act in (None, "relu", "sigmoid", "tanh")] + [
            ((x, w, None), linear_compare),
            (big + ("relu",), linear_compare),
        ]
    if name == "act_backward":
        z, g = rand(33, 17, scale=3), rand(33, 17, seed=1)
        return [((g, REFERENCE.relu(z), "relu"), exact)] + [
            ((g, getattr(REFERENCE, act)(z), act), scaled(4)) for act in ("sigmoid", "tanh")
        ]
    if name in ("softmax", "log_softmax"):
        xs = [rand(7, 33, scale=3), rand(1, 1), rand(5, 4, 3), rand(64, 10), rand(2, 2, dtype=np.float64)]
        return [((x, -1), scaled(4 * (x.shape[-1] + 8))) for x in xs] + [((xs[2], 1), scaled(40))]
    if name == "cross_entropy_forward":
        logits = rand(17, 10, scale=3)
        return [
            ((logits, np.arange(17) % 10), pair_of(scaled(60), scaled(60))),
            ((rand(1, 3), np.array([2])), pair_of(scaled(20), scaled(20))),
        ]
    if name == "cross_entropy_backward":
        probs = REFERENCE.softmax(rand(17, 10, scale=3), -1)
        return [((probs, np.arange(17) % 10, rand(17, seed=3)), exact)]
    if name == "class_targets":  # nothing ignored; some rows ignored (-100, or a class index); all; none
        targets = np.arange(17) % 10
        ignored = np.where(np.arange(17) % 4 == 1, -100, targets)
        return [((t, ignore, 10), exact) for t, ignore in [(targets, -100), (ignored, -100), (targets, 3),
                (np.full(5, -100), -100), (np.array([], dtype=np.int64), -100), (np.array([9]), 0)]]  # fmt: skip
    if name == "nll_loss_forward":  # -inf entries at the targets stay inf, a NaN elsewhere in a row is not read
        log_probs = REFERENCE.log_softmax(rand(17, 10, scale=3), -1)
        log_probs[3, 7], log_probs[4, 0] = -np.inf, np.nan
        return [((log_probs, np.arange(17) % 10), exact), ((rand(1, 1), np.array([0])), exact)]
    if name == "nll_loss_backward":
        return [((rand(17, seed=3), np.arange(17) % 10, 10), exact), ((rand(1), np.array([2]), 3), exact)]
    if name == "conv2d_forward":
        return conv_cases("forward")
    if name == "conv2d_backward_input":
        return conv_cases("input")
    if name == "conv2d_backward_weight":
        return conv_cases("weight")
    if name in (
        "max_pool2d_forward",
        "max_pool2d_backward",
        "max_pool2d_select",
        "avg_pool2d_forward",
        "avg_pool2d_backward",
    ):
        return pool_cases(name)
    if name == "im2col":
        return [((rand(*x_shape, seed=i), w_shape[2:], stride, padding, dilation), exact)
                for i, (x_shape, w_shape, stride, padding, dilation, _) in enumerate(IMAGES)]  # fmt: skip
    if name == "col2im":
        result = []
        for i, (x_shape, w_shape, stride, padding, dilation, _) in enumerate(IMAGES):
            cols = REFERENCE.im2col(rand(*x_shape, seed=i), w_shape[2:], stride, padding, dilation)
            window = (w_shape[2:], stride, padding, dilation)
            result.append(((rand(*cols.shape, seed=i + 5), x_shape, *window), window_sum_for(w_shape[2:])))
        return result
    if name in ("sgd_update", "adagrad_update", "rmsprop_update", "adam_update"):
        return update_cases(name)
    if name in ("float32_to_float16", "float32_to_truncated16"):
        x = np.concatenate([rand(1000, scale=100), [0.0, -0.0, np.inf, -np.inf, 65504, 65520, 1e-8, 6e-5]]).astype(
            np.float32
        )
        return [((x,), exact), ((rand(0),), exact), ((rand(70000),), exact)]
    if name == "float16_to_float32":
        return [((np.arange(65536, dtype=np.uint16).view(np.float16),), exact)]
    if name == "truncated16_to_float32":
        return [((np.arange(0, 65536, 7, dtype=np.uint16),), exact)]
    if name == "reshape":
        return [((rand(6, 4), (3, 8)), exact), ((rand(6, 4).T, (24,)), exact), ((rand(0, 3), (3, 0)), exact)]
    if name == "transpose":
        return [((rand(2, 3, 4), (2, 0, 1)), exact), ((rand(5), (0,)), exact)]
    if name == "broadcast_to":
        return [((rand(1, 4), (3, 4)), exact), ((rand(3, 1, 2), (2, 3, 5, 2)), exact)]
    if name == "ascontiguousarray":
        return [((rand(5, 7).T,), exact), ((rand(2, 3, 4, 5).transpose(0, 2, 3, 1),), exact), ((rand(3),), exact)]
    if name in ("concatenate", "stack"):
        parts = [rand(2, 3), rand(2, 3, seed=1), rand(2, 3, seed=2)]
        return [((parts, 0), exact), ((parts, 1), exact), ((parts, -1), exact)]
    if name == "pad":
        return [((rand(2, 3), ((1, 2), (0, 1))), exact), ((rand(1, 1, 3, 3), ((0, 0), (0, 0), (1, 1), (2, 2))), exact)]
    if name == "getitem":
        x = rand(6, 5)
        indexes = [(slice(1, None), slice(None, 2)), np.array([4, 0, 4]), (np.arange(6), np.arange(6) % 5), x > 0]
        return [((x, index), exact) for index in indexes]
    if name == "scatter_add":
        return [
            (((6, 5), np.array([4, 0, 4]), rand(3, 5), np.float32), exact_sum_of_two),
            (((6, 5), (slice(1, 3),), rand(2, 5), np.float32), exact),
        ]
    if name in ("zeros", "ones", "empty"):
        return [
            (((3, 4), np.float32), exact if name != "empty" else shape_only),
            (((0,), np.float64), exact),
            ((5, np.int64), shape_only if name == "empty" else exact),
        ]
    if name == "full":
        return [(((3, 4), 2.5, np.float32), exact), (((0, 2), 1, np.int64), exact)]
    if name == "arange":
        return [((0, 7, 1, np.int64), exact), ((2, 11, 3, np.float32), exact)]
    if name == "eye":
        return [((4, np.float32), exact), ((1, np.float64), exact)]
    if name in ("to_numpy", "from_numpy"):
        return [((rand(3, 4),), exact), ((ints(5),), exact)]
    if name == "parameter_storage":
        return [(((3, 4), np.float32), storage), ((7, np.float64), storage), (((0, 5), np.float32), storage)]
    if name == "setitem":
        return []  # covered by the optimizer updates (composed versions assign through it) and below
    raise AssertionError(f"no contract cases for {name!r}: add some to tests/test_kernel_contract.py")


def pair_of(first, second):
    def compare(got, want, args):
        first(got[0], want[0], args)
        second(got[1], want[1], args)

    return compare


def linear_compare(got, want, args):
    """act(x Wᵀ + b): the dot-product bound, carried through the activation (slope <= 1), plus its own ulps."""
    x, w = args[0], args[1]
    bias = args[2] if len(args) > 2 and args[2] is not None else 0
    bound = matmul_atol(x, w.T) + np.abs(bias) * eps(got.dtype)
    activation = args[3] if len(args) > 3 else None
    rtol = 0 if activation in (None, "relu") else 2 * TRANSCENDENTAL_ULPS * eps(got.dtype)
    assert np.all(np.abs(got - want) <= bound + rtol * np.abs(want) + np.finfo(got.dtype).tiny)


def window_sum_for(kernel):
    def compare(got, want, args):
        terms = kernel[0] * kernel[1]
        magnitude = REFERENCE.col2im(np.abs(args[0]).astype(np.float64), *args[1:])
        assert np.all(np.abs(got - want) <= 2 * terms * eps(got.dtype) * magnitude + np.finfo(got.dtype).tiny)

    return compare


def exact_sum_of_two(got, want, args):
    """Repeated indices add two values: one IEEE addition, the same in any order."""
    exact(got, want, args)


def shape_only(got, want, args):
    assert got.shape == want.shape and got.dtype == want.dtype


def storage(got, want, args):
    assert got.shape == want.shape and got.dtype == want.dtype and got.flags.c_contiguous and got.flags.writeable


IN_PLACE = {"sgd_update", "adagrad_update", "rmsprop_update", "adam_update"}


def run(kernels, name, args):
    """Call one primitive of `kernels` on host arrays (moved to the set and back)."""
    moved = tuple(kernels.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args)
    if name == "concatenate" or name == "stack":
        moved = ([kernels.from_numpy(a) for a in args[0]],) + moved[1:]
    result = getattr(kernels, name)(*moved)
    if name in IN_PLACE:  # compare every array the update changed
        return tuple(kernels.to_numpy(a) for a in moved if not isinstance(a, (int, float, bool, type(None))))
    if isinstance(result, tuple):
        return tuple(kernels.to_numpy(r) for r in result)
    return kernels.to_numpy(result)


def copies(args):
    """Fresh copies of the array arguments (in-place primitives change them)."""
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)


PRIMITIVES = sorted(REQUIRED) + sorted(OPTIONAL)


def check_primitive(kernels, name):
    """Run every case of one primitive on `kernels` and on the reference; raise AssertionError on a difference."""
    if name == "setitem":
        x = rand(4, 5)
        for index, value in (((slice(1, 3), 2), 7.0), (Ellipsis, rand(4, 5, seed=1)), ((np.array([0, 3]),), 0.0)):
            got, want = kernels.from_numpy(x.copy()), x.copy()
            kernels.setitem(got, index, kernels.from_numpy(value) if isinstance(value, np.ndarray) else value)
            REFERENCE.setitem(want, index, value)
            exact(kernels.to_numpy(got), want, ())
        return
    checked = cases(name)
    assert checked, name
    with np.errstate(all="ignore"):  # inf/NaN inputs are part of the cases
        for args, compare in checked:
            want = run(REFERENCE, name, copies(args))
            got = run(kernels, name, copies(args))
            if not isinstance(want, tuple):
                compare(np.asarray(got), np.asarray(want), args)
                continue
            assert isinstance(got, tuple) and len(got) == len(want), name
            if compare is exact or name in IN_PLACE:  # each array on its own
                for g, w in zip(got, want):
                    compare(g, w, args)
            else:
                compare(got, want, args)


@pytest.mark.parametrize("set_name", sorted(SETS))
@pytest.mark.parametrize("name", PRIMITIVES)
def test_every_primitive_agrees_with_the_reference_on_awkward_inputs(set_name, name):
    check_primitive(SETS[set_name], name)


@pytest.mark.parametrize(
    "name", ["add", "exp", "sum", "max", "matmul", "linear", "conv2d_forward", "conv2d_backward_weight",
             "max_pool2d_forward", "avg_pool2d_backward", "col2im", "softmax", "cross_entropy_forward",
             "sgd_update", "adam_update", "float32_to_float16", "getitem", "setitem"],
)  # fmt: skip
def test_the_comparisons_catch_a_kernel_that_is_slightly_wrong(name):
    """The check itself can fail: the reference with one primitive off by a little is rejected."""
    namespace = types.SimpleNamespace(**{n: getattr(numpy_kernels, n) for n in REQUIRED})
    right = getattr(REFERENCE, name)

    def slightly_wrong(*args, **kwargs):
        result = right(*args, **kwargs)
        if name == "setitem":  # writes one element too many
            args[0].flat[-1] += 1
        elif name.endswith("_update"):  # in place: nudge the parameter
            args[0][...] *= np.float32(1 + 1e-4)
        elif isinstance(result, tuple):
            result = (_nudge(result[0]),) + result[1:]
        else:
            result = _nudge(result)
        return result

    setattr(namespace, name, slightly_wrong)
    with pytest.raises(AssertionError):
        check_primitive(KernelSet("wrong", namespace), name)


def _nudge(array):
    """The array with its largest element moved by 1e-4 of its size (or by 1, for integers)."""
    array = np.array(array)
    if array.size:
        i = np.argmax(np.abs(array).ravel() if array.dtype.kind != "b" else array.ravel())
        if array.dtype == np.float16:  # conversions are compared bit for bit: one ulp is wrong
            array.flat[i] = np.nextafter(array.flat[i], np.float16(np.inf))
        elif array.dtype.kind == "f":
            array.flat[i] += max(abs(array.flat[i]), 1.0) * 1e-4
        elif array.dtype.kind == "b":
            array.flat[i] = not array.flat[i]
        else:
            array.flat[i] += 1
    return array


def test_every_primitive_of_the_contract_has_cases_here():
    described = set(REQUIRED) | set(OPTIONAL)
    assert not set(REQUIRED) & set(OPTIONAL)
    for name in described:
        cases(name)  # raises for a primitive nobody wrote cases for


# ---------------------------------------------------------------------------
# The contract's own rules
# ---------------------------------------------------------------------------
def test_a_kernel_set_missing_a_core_primitive_is_refused_by_name():
    incomplete = types.SimpleNamespace(**{name: getattr(numpy_kernels, name) for name in REQUIRED if name != "matmul"})
    with pytest.raises(
        KernelContractError, match=r"kernel set 'toy' does not provide the required primitive\(s\) matmul"
    ):
        KernelSet("toy", incomplete)
    two_missing = types.SimpleNamespace(
        **{n: getattr(numpy_kernels, n) for n in REQUIRED if n not in ("im2col", "sum")}
    )
    with pytest.raises(KernelContractError, match=r"im2col.*sum|sum.*im2col"):
        KernelSet("toy", two_missing)


def test_optional_extras_a_set_lacks_fall_back_to_the_composed_versions_on_its_own_core():
    calls = []

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)

        return wrapper

    core = {name: counting(name, getattr(numpy_kernels, name)) for name in REQUIRED}
    toy = KernelSet("toy", types.SimpleNamespace(**core))
    assert toy.native == set()
    x = rand(5, 7, scale=3)
    np.testing.assert_array_equal(toy.softmax(x), composed.softmax(REFERENCE, x))
    assert {"max", "sub", "exp", "sum", "div"} <= set(calls)  # ...computed with the toy set's own core
    calls.clear()
    image, weight = rand(2, 3, 6, 6), rand(4, 3, 3, 3, seed=1)
    got = toy.conv2d_forward(image, weight, None, (1, 1), (1, 1), (1, 1), 1, activation="relu")
    np.testing.assert_array_equal(got, REFERENCE.conv2d_forward(image, weight, None, (1, 1), (1, 1), (1, 1), 1, "relu"))
    assert "im2col" in calls and "matmul" in calls


@pytest.mark.skipif("c" not in SETS, reason="the C kernels are not built on this install")
def test_the_c_set_without_some_extras_still_gives_the_reference_results():
    from minidl.backend import c_kernels

    without = {"conv2d_forward", "softmax", "sgd_update", "linear"}
    namespace = types.SimpleNamespace(**{n: getattr(c_kernels, n) for n in dir(c_kernels) if n not in without})
    partial = KernelSet("c-partial", namespace)
    assert without.isdisjoint(partial.native) and {"cross_entropy_forward", "act_backward"} <= partial.native
    x = rand(64, 10, scale=3)
    scaled(4 * 18)(partial.softmax(x, -1), REFERENCE.softmax(x, -1), ())
    a, w, b = rand(128, 300), rand(200, 300, seed=1), rand(200, seed=2)
    linear_compare(partial.linear(a, w, b, "tanh"), REFERENCE.linear(a, w, b, "tanh"), (a, w, b, "tanh"))


def test_every_kernel_set_names_itself_and_what_it_provides():
    for name, kernels in SETS.items():
        assert kernels.name == name
        assert kernels.native <= set(OPTIONAL)
        assert repr(kernels).startswith(f"<kernel set {name!r}")
    assert contract.REQUIRED.keys().isdisjoint(contract.OPTIONAL)


@pytest.mark.parametrize("kernel_set", ["numpy", "c"])
def test_kernels_keep_floating_point_warnings_to_themselves(kernel_set):
    """An overflow is the op's result (inf), reported by detect_anomaly, not a NumPy warning from a kernel file."""
    if kernel_set not in minidl.available_kernels():
        pytest.skip(f"the {kernel_set} kernels are not built here")
    script = "import minidl; y = (minidl.tensor([100.0, 1.0]).exp().exp() / 0.0).log(); print(y.isinf().sum().item())"
    env = dict(os.environ, MINIDL_KERNELS=kernel_set)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "2" and "Warning" not in run.stderr, run.stderr
