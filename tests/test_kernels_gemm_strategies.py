"""The GEMM's shape-specialized strategies (csrc/gemm.c) give the right answer, on and off.

mdk_sgemm has two routes besides the plain BLIS loops, switched by mdk_gemm_set_strategies():

  A_IN_PLACE  when C has at most two column micro-panels (n <= 2*NR) and one of A's strides is 1,
              the micro-kernel reads A from the caller's matrix instead of a packed copy; only the
              partial last micro-panel of rows (m not a multiple of MR) is packed, zero-padded.
  SWAP        for x @ W.T (B transposed: rsb == 1, csb != 1) with a row-major A, m <= 2*NR and
              m < n, it computes C^T = B^T A^T into a workspace and stores it transposed, adding the
              bias and applying the activation on the way (store_transposed, 16 x 16 blocks).

Every test runs on each SIMD path this CPU supports, forced in turn, and most of them under each
strategy set (none, A_IN_PLACE, SWAP, all), against a float64 NumPy reference. The shapes sit on
both sides of each threshold: n around 2*NR, m around multiples of MR (partial micro-panels) and of
16 (store_transposed's blocks), k past KC, A row-major, transposed, with reversed rows or with no
unit stride (which must fall back to packing). MR, NR and KC are read from the build, and each test
asserts that its cases really reach the routes it is about (a Python mirror of a_in_place() and
swap_pays()). The direct calls write C with a row stride wider than n into NaN-filled memory, so a
skipped row or column, or a store outside C, cannot pass unnoticed.

The strategy set (back to all) and the SIMD path are restored after every test. As in
tests/test_kernels_c.py, MINIDL_TEST_CKERNELS_MODULE=/path/to/module.so runs the file against
another build of the same sources.
"""

import collections
import functools
import importlib.machinery
import importlib.util
import itertools
import os
import platform

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.backend import c_kernels as ck
from minidl.backend import numpy_kernels as nk

pytestmark = pytest.mark.skipif(not ck.available, reason=f"C kernels not built: {ck.unavailable_reason}")

X86 = platform.machine().lower() in ("x86_64", "amd64")
PATHS = ["scalar", "avx2", "avx512"] if X86 else ["scalar", "neon"]
A_IN_PLACE, SWAP, ALL = 1, 2, 3  # MDK_GEMM_* in csrc/minidl_kernels.h (checked below)
STRATEGY_SETS = {"none": 0, "a_in_place": A_IN_PLACE, "swap": SWAP, "all": ALL}
ACTIVATIONS = [None, "relu", "sigmoid", "tanh"]


def _kernels_module():
    """c_kernels itself, or the build named by MINIDL_TEST_CKERNELS_MODULE (both have .lib and .ffi)."""
    path = os.environ.get("MINIDL_TEST_CKERNELS_MODULE")
    if not path or not ck.available:
        return ck
    name = os.path.basename(path).split(".")[0]
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path, loader=loader))
    loader.exec_module(module)
    return module


_K = _kernels_module()

# The micro-tile and KC of a path, as the tests need them to place shapes around the thresholds.
Tile = collections.namedtuple("Tile", "path mr nr kc")


def _tile(path):
    """Read MR, NR and KC from the build: mdk_gemm_set_blocking rounds MC and NC up to multiples of MR and NR."""
    lib, code = _K.lib, ck._PATHS[path]
    saved, probe = _K.ffi.new("int64_t[3]"), _K.ffi.new("int64_t[3]")
    assert lib.mdk_gemm_get_blocking(code, saved) == 0
    try:
        assert lib.mdk_gemm_set_blocking(code, saved[0], 1, 1) == 0
        assert lib.mdk_gemm_get_blocking(code, probe) == 0
    finally:
        lib.mdk_gemm_set_blocking(code, saved[0], saved[1], saved[2])
    return Tile(path, int(probe[1]), int(probe[2]), int(saved[0]))


# ---------------------------------------------------------------------------------------
# Fixtures: every change to the library's global state is undone in a finally
# ---------------------------------------------------------------------------------------
@pytest.fixture
def lib(monkeypatch):
    """The cffi lib under test, c_kernels routed to it with no GEMM size threshold; strategies reset to all."""
    monkeypatch.setattr(ck, "lib", _K.lib)
    monkeypatch.setattr(ck, "ffi", _K.ffi)
    monkeypatch.setattr(ck, "MIN_GEMM_FLOPS", 0)
    try:
        yield _K.lib
    finally:
        _K.lib.mdk_gemm_set_strategies(ALL)


@pytest.fixture(params=PATHS)
def simd(request, lib):
    """Force one SIMD path (skipped, saying why, where the machine cannot run it); yields its Tile."""
    path, code = request.param, ck._PATHS[request.param]
    if not lib.mdk_simd_built(code):
        pytest.skip(f"SIMD path {path!r} is not compiled for this architecture ({platform.machine()})")
    if not lib.mdk_simd_supported(code):
        pytest.skip(
            f"this CPU cannot run the {path} path: it lacks {_K.ffi.string(lib.mdk_simd_missing(code)).decode()}"
        )
    before = lib.mdk_simd_path()
    assert lib.mdk_set_simd_path(code) == 0
    try:
        yield _tile(path)
    finally:
        lib.mdk_set_simd_path(before)


@pytest.fixture(params=list(STRATEGY_SETS.values()), ids=list(STRATEGY_SETS))
def strategies(request, lib):
    """Run with one strategy set (the `lib` fixture restores all of them afterwards)."""
    lib.mdk_gemm_set_strategies(request.param)
    return request.param


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def layout(x, kind):
    """The values of x (m, k) in another memory layout, without changing them."""
    if kind == "row-major":
        return x
    if kind == "transposed":  # the transpose of a contiguous array: row stride 1
        return np.ascontiguousarray(x.T).T
    if kind == "reversed rows":  # negative row stride, column stride 1
        return np.ascontiguousarray(x[::-1])[::-1]
    if kind == "strided":  # every other row and third column of a bigger array: no stride is 1
        big = np.zeros((2 * x.shape[0], 3 * x.shape[1]), np.float32)
        big[::2, ::3] = x
        return big[::2, ::3]
    raise ValueError(kind)


def strides(x):
    return ck._elem_strides(x)


def reads_a_in_place(tile, a, n):
    """gemm.c a_in_place(): few column panels and a unit stride in A."""
    rsa, csa = strides(a)
    return n <= 2 * tile.nr and (rsa == 1 or csa == 1)


def swaps(tile, a, b):
    """gemm.c swap_pays(): B transposed, A row-major, small m, m < n."""
    (m, _), n = a.shape, b.shape[1]
    (_, csa), (rsb, csb) = strides(a), strides(b)
    return rsb == 1 and csb != 1 and csa == 1 and m <= 2 * tile.nr and m < n


def pointer(x):
    """Address of x[0, 0] for the kernels under test (x must outlive the call)."""
    return _K.ffi.cast("float *", x.ctypes.data)


def gemm(a, b, bias=None, activation=None):
    """act(a @ b + bias) by mdk_sgemm on the views' own strides (as c_kernels._sgemm calls it), with C written
    into the middle of NaN-filled memory with row stride n + 3: asserts nothing outside C was touched."""
    (m, k), n = a.shape, b.shape[1]
    ldc = n + 3
    memory = np.full((m + 2, ldc), np.nan, np.float32)  # a spare row before and after C
    c_ptr = _K.ffi.from_buffer("float[]", memory) + ldc
    bias_ptr = _K.ffi.NULL if bias is None else _K.ffi.from_buffer("float[]", bias)
    (rsa, csa), (rsb, csb) = strides(a), strides(b)
    rc = _K.lib.mdk_sgemm(
        m, n, k, pointer(a), rsa, csa, pointer(b), rsb, csb, c_ptr, ldc, bias_ptr, ck._ACTS[activation]
    )
    assert rc == 0
    outside = np.isnan(memory[[0, -1]]).all() and np.isnan(memory[1:-1, n:]).all()
    assert outside, f"{m}x{k} @ {k}x{n}: mdk_sgemm wrote outside the {m}x{n} window of C"
    return memory[1:-1, :n]


class Product:
    """The float64 reference of a @ b: its value and sum |a||b| (the size of float32 rounding errors)."""

    def __init__(self, a, b):
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        self.k = a.shape[1]
        self.exact, self.scale = a64 @ b64, np.abs(a64) @ np.abs(b64)


@functools.cache
def operands(m, k, n, w_layout=False):
    """Read-only x (m, k), B (k, n) -- row-major, or W.T for a row-major W (n, k) -- and bias (n,),
    with their Product: made once per shape, shared by every path and strategy set."""
    rng = np.random.default_rng([m, k, n])
    x = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float32).T if w_layout else rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    for array in (x, b, bias):
        array.flags.writeable = False
    return x, b, bias, Product(x, b)


def assert_matches(got, product, bias=None, activation=None, what=""):
    """got == act(a @ b + bias) to float32 accuracy: the rounding of a k-term sum, relative to
    sum |a||b| + |bias| (as assert_gemm_close in test_kernels_c.py), plus a few ulps of the
    activation kernels (sigmoid and tanh have slope <= 1, so they do not grow the sum's error)."""
    bias64 = None if bias is None else bias.astype(np.float64)
    want = nk.bias_act_forward(product.exact, bias64, activation)
    scale = product.scale + (0 if bias is None else np.abs(bias64))
    tol = 2e-6 * max(1.0, np.sqrt(product.k)) * scale + (1e-6 if activation in ("sigmoid", "tanh") else 0)
    assert got.shape == want.shape and got.dtype == np.float32, what
    bad = ~(np.abs(got - want) <= tol)  # NaN (a never-written entry) is bad too
    if bad.any():
        i, j = np.argwhere(bad)[0]
        rows, cols = np.unique(np.nonzero(bad)[0]), np.unique(np.nonzero(bad)[1])
        pytest.fail(
            f"{what}: {bad.sum()} of {bad.size} entries wrong (rows {rows[:8].tolist()}..., "
            f"columns {cols[:8].tolist()}...); C[{i},{j}] = {got[i, j]}, want {want[i, j]}"
        )


# ---------------------------------------------------------------------------------------
# The strategy switch
# ---------------------------------------------------------------------------------------
def test_set_strategies_returns_the_previous_set_and_masks_unknown_bits(lib):
    assert (lib.MDK_GEMM_A_IN_PLACE, lib.MDK_GEMM_SWAP, lib.MDK_GEMM_ALL) == (A_IN_PLACE, SWAP, ALL)
    assert lib.mdk_gemm_set_strategies(0xFF) == ALL  # the default, and what every test here restores
    assert lib.mdk_gemm_set_strategies(0) == ALL  # 0xFF was kept as its known bits only
    assert lib.mdk_gemm_set_strategies(A_IN_PLACE) == 0
    assert lib.mdk_gemm_set_strategies(SWAP | 4) == A_IN_PLACE
    assert lib.mdk_gemm_set_strategies(-1) == SWAP
    assert lib.mdk_gemm_set_strategies(4) == ALL
    assert lib.mdk_gemm_set_strategies(ALL) == 0


# ---------------------------------------------------------------------------------------
# A read in place
# ---------------------------------------------------------------------------------------
M_A = [1, 5, 6, 7, 13, 127, 128, 129]  # around MR = 4 / 6 / 8 and MC
N_A = [1, 3, 10, 16, 17, 63, 64, 65, 127, 128]  # up to 2*NR (AVX-512); 2*NR + 1 of the path is added
K_A = [1, 7, 31, 129, 513]  # 513 crosses KC (256 or 512)
A_LAYOUTS = ["row-major", "transposed", "reversed rows", "strided"]


def test_a_in_place_matches_numpy(simd, strategies):
    """Every (m, n) pair, k cycling through K_A, A in each layout; B row-major (so no swap)."""
    routes = set()
    n_values = sorted(set(N_A) | {2 * simd.nr + 1})
    for (i, m), (j, n) in itertools.product(enumerate(M_A), enumerate(n_values)):
        k = K_A[(i + j) % len(K_A)]  # along the diagonals: every m and every n meets every k
        a, b, _, product = operands(m, k, n)
        for kind in A_LAYOUTS:
            va = layout(a, kind)
            assert_matches(gemm(va, b), product, what=f"{simd.path} {m}x{k} @ {k}x{n}, A {kind}")
            assert not swaps(simd, va, b)
            if not reads_a_in_place(simd, va, n):
                routes.add("A packed: n > 2*NR" if n > 2 * simd.nr else "A packed: no unit stride")
                continue
            routes.add("A in place, whole micro-panels" if m % simd.mr == 0 else "A in place, packed last panel")
            if m > simd.mr and m % simd.mr:
                routes.add("A in place, whole panels then a packed one")
            if k > simd.kc:
                routes.add("A in place, several KC slices")
            if strides(va)[0] < 0:
                routes.add("A in place, negative row stride")
    assert routes == {
        "A packed: n > 2*NR",
        "A packed: no unit stride",
        "A in place, whole micro-panels",
        "A in place, packed last panel",
        "A in place, whole panels then a packed one",
        "A in place, several KC slices",
        "A in place, negative row stride",
    }


def test_a_in_place_in_batched_products(simd, strategies):
    """mdk_sgemm_batched shares the blocked driver: A in place per matrix, broadcast and transposed batches."""
    cases = [
        (rand(3, 7, 33, seed=1), rand(33, 10, seed=2)),
        (rand(2, 129, 13, seed=3).transpose(0, 2, 1), rand(2, 129, 2 * simd.nr, seed=4)),  # A^T per matrix
        (rand(1, 5, 513, seed=5), rand(4, 513, 17, seed=6)),  # A broadcast over the batch
        (rand(2, 31, 7, seed=7).transpose(0, 2, 1), rand(31, 2 * simd.nr + 1, seed=8)),  # packed: n > 2*NR
    ]
    for a, b in cases:
        got = ck.matmul(a, b)
        want = np.matmul(a.astype(np.float64), b.astype(np.float64))
        scale = np.matmul(np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64)))
        assert got.shape == want.shape
        assert (np.abs(got - want) <= 2e-6 * np.sqrt(a.shape[-1]) * scale).all(), f"{a.shape} @ {b.shape}"


# ---------------------------------------------------------------------------------------
# C^T = B^T A^T for x @ W.T
# ---------------------------------------------------------------------------------------
M_SWAP = [1, 5, 6, 7, 16, 64, 127, 128]  # around MR and 16 (store_transposed's blocks), up to 2*NR
N_SWAP = [129, 200, 512]
K_SWAP = [1, 33, 129, 513]  # k = 1: W.T (1, n) has unit strides both ways, no swap


def test_swap_linear_matches_numpy(simd, strategies):
    """linear / linear_act with and without bias, every activation, m < n; and one direct call with a
    wide C (store_transposed must use ldc, not n)."""
    routes = set()
    for i, (m, n) in enumerate(itertools.product(M_SWAP, N_SWAP)):
        k = K_SWAP[i % len(K_SWAP)]
        x, wt, bias, product = operands(m, k, n, w_layout=True)
        w = wt.T
        for activation, with_bias in itertools.product(ACTIVATIONS, [False, True]):
            b = bias if with_bias else None
            got = ck.linear(x, w, b) if activation is None else ck.linear_act(x, w, b, activation)
            what = f"{simd.path} linear_act x {m}x{k}, W {n}x{k}, {activation}, bias {with_bias}"
            assert_matches(got, product, b, activation, what)
        activation = ACTIVATIONS[i % len(ACTIVATIONS)]
        assert_matches(gemm(x, wt, bias, activation), product, bias, activation, f"{simd.path} {m}x{k}x{n} wide C")
        if swaps(simd, x, wt):
            routes.add("swap" if m % 16 == 0 else "swap, partial 16-row block")
            routes.add("swap, k > KC" if k > simd.kc else "swap, k <= KC")
        else:
            routes.add("no swap: m > 2*NR" if m > 2 * simd.nr else "no swap: k = 1")
    assert {"swap", "swap, partial 16-row block", "swap, k > KC", "swap, k <= KC"} <= routes
    assert ("no swap: m > 2*NR" in routes) == (max(M_SWAP) > 2 * simd.nr)


def test_swap_boundaries_and_strided_operands(simd, strategies):
    """m >= n and m just past 2*NR (no swap), and x or W not contiguous: x with rows apart or reversed
    still swaps, x with no unit column stride does not; W with rows apart still swaps."""
    two_nr = 2 * simd.nr
    big_x = rand(2 * two_nr + 2, 2 * 129, seed=1)
    big_w = rand(2 * 300, 129, seed=2)
    cases = [  # (x, W)
        (rand(128, 64, seed=3), rand(128, 64, seed=4)),  # m == n
        (rand(7, 513, seed=5), rand(6, 513, seed=6)),  # m > n
        (rand(two_nr + 1, 33, seed=7), rand(two_nr + 40, 33, seed=8)),  # m just past 2*NR
        (rand(two_nr, 33, seed=9), rand(two_nr + 1, 33, seed=10)),  # m == 2*NR < n: swaps
        (big_x[: 2 * 7 : 2, :129], rand(200, 129, seed=11)),  # x rows apart (rsa = 2k): swaps
        (layout(rand(13, 31, seed=12), "reversed rows"), rand(129, 31, seed=13)),  # rsa < 0: swaps
        (big_x[:7, ::2], rand(300, 129, seed=14)),  # csa = 2: no swap
        (layout(rand(7, 65, seed=15), "transposed"), rand(300, 65, seed=16)),  # x^T stored: no swap
        (rand(7, 129, seed=17), big_w[::2]),  # W rows apart: swaps
    ]
    routes = collections.Counter()
    for case, (x, w) in enumerate(cases):
        bias, product = rand(w.shape[0], seed=100 + case), Product(x, w.T)
        what = f"{simd.path} case {case}: x {x.shape} strides {strides(x)}, W {w.shape} strides {strides(w)}"
        for activation in ("relu", "tanh"):
            assert_matches(ck.linear_act(x, w, bias, activation), product, bias, activation, what)
        assert_matches(gemm(x, w.T, bias, "sigmoid"), product, bias, "sigmoid", f"{what}, wide C")
        routes[swaps(simd, x, w.T)] += 1
    assert routes[True] >= 4 and routes[False] >= 4


# ---------------------------------------------------------------------------------------
# Every strategy set gives the same numbers
# ---------------------------------------------------------------------------------------
def test_every_strategy_set_gives_the_same_result(simd, lib):
    """Same shapes under each set: within float32 rounding of the set-0 result (with no bias or k <= KC
    the operations and their order are the same, and the results measure bit-identical)."""
    nr2 = 2 * simd.nr
    cases = [  # (m, k, n, A layout, B = W.T?, bias?, activation)
        (7, 513, 10, "row-major", False, False, None),
        (7, 129, nr2, "transposed", False, True, "relu"),
        (13, 31, nr2 + 1, "row-major", False, True, None),
        (129, 33, 65, "row-major", True, True, "sigmoid"),
        (7, 513, 200, "row-major", True, True, "tanh"),
        (5, 31, 129, "reversed rows", True, False, None),
        (min(127, nr2), 129, 512, "row-major", True, True, "relu"),
    ]
    for m, k, n, kind, w_t, with_bias, activation in cases:
        a, b, bias, product = operands(m, k, n, w_layout=w_t)
        a, bias = layout(a, kind), bias if with_bias else None
        results = {}
        for name, strategy_set in STRATEGY_SETS.items():
            lib.mdk_gemm_set_strategies(strategy_set)
            results[name] = gemm(a, b, bias, activation)
        lib.mdk_gemm_set_strategies(ALL)
        what = f"{simd.path} {m}x{k}x{n} A {kind} B^T {w_t} bias {with_bias} {activation}"
        assert_matches(results["none"], product, bias, activation, what)
        scale = product.scale + (0 if bias is None else np.abs(bias))
        for name, got in results.items():
            diff = np.abs(got.astype(np.float64) - results["none"])
            assert (diff <= 2e-6 * np.sqrt(k) * scale + 1e-6).all(), f"{what}: strategies {name} vs none"


# ---------------------------------------------------------------------------------------
# Tiny cache blocks: every block boundary of the five loops inside small products
# ---------------------------------------------------------------------------------------
def test_strategies_across_tiny_cache_blocks(simd, strategies, lib):
    """KC = 5, MC = 13 (rounded up to MR), NC = NR: A in place at every pc offset and in several row
    blocks, each ending in a partial panel; the swapped product split over many blocks too."""
    code = ck._PATHS[simd.path]
    saved = _K.ffi.new("int64_t[3]")
    assert lib.mdk_gemm_get_blocking(code, saved) == 0
    try:
        assert lib.mdk_gemm_set_blocking(code, 5, 13, 1) == 0
        nr = simd.nr
        for m, k, n in [(29, 23, 2 * nr), (7, 17, nr + 3), (41, 6, 1)]:
            a, b, _, product = operands(m, k, n)
            for kind in ("row-major", "transposed"):
                assert reads_a_in_place(simd, layout(a, kind), n)
                assert_matches(gemm(layout(a, kind), b), product, what=f"{simd.path} tiny blocks {m}x{k}x{n} {kind}")
        for m, k, n in [(11, 23, 3 * nr + 5), (2 * nr, 9, 2 * nr + 7)]:
            x, wt, bias, product = operands(m, k, n, w_layout=True)
            assert swaps(simd, x, wt)
            assert_matches(
                gemm(x, wt, bias, "relu"), product, bias, "relu", f"{simd.path} tiny blocks swap {m}x{k}x{n}"
            )
    finally:
        lib.mdk_gemm_set_blocking(code, saved[0], saved[1], saved[2])


# ---------------------------------------------------------------------------------------
# Random shapes around the thresholds
# ---------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(
    path=st.sampled_from(PATHS),
    strategy_set=st.sampled_from(sorted(STRATEGY_SETS.values())),
    data=st.data(),
    k=st.integers(1, 600),
    a_kind=st.sampled_from(A_LAYOUTS),
    w_t=st.booleans(),
    with_bias=st.booleans(),
    activation=st.sampled_from(ACTIVATIONS),
)
def test_random_shapes_near_the_thresholds(path, strategy_set, data, k, a_kind, w_t, with_bias, activation):
    if path not in ck.simd_paths_supported():
        return  # the fixture tests report the skip with its reason
    lib = _K.lib
    before = lib.mdk_simd_path()
    try:
        assert lib.mdk_set_simd_path(ck._PATHS[path]) == 0
        tile = _tile(path)
        m = data.draw(st.integers(1, 2 * tile.nr + 2), label="m")
        n = data.draw(st.integers(1, 2 * tile.nr + 2) | st.integers(2 * tile.nr - 2, 4 * tile.nr), label="n")
        lib.mdk_gemm_set_strategies(strategy_set)
        a, b, bias, product = operands(m, k, n, w_layout=w_t)
        a, bias = layout(a, a_kind), bias if with_bias else None
        assert_matches(gemm(a, b, bias, activation), product, bias, activation, f"{path} {m}x{k}x{n} A {a_kind}")
    finally:
        lib.mdk_gemm_set_strategies(ALL)
        lib.mdk_set_simd_path(before)
