"""The GEMM's shape-specialized strategies (csrc/gemm.c) give the right answer, on and off.

mdk_sgemm has four routes besides the plain BLIS loops, switched by mdk_gemm_set_strategies():

  A_IN_PLACE  when C has at most two column micro-panels (n <= 2*NR) and one of A's strides is 1,
              the micro-kernel reads A from the caller's matrix instead of a packed copy; only the
              partial last micro-panel of rows (m not a multiple of MR) is packed, zero-padded.
  SWAP        for x @ W.T (B transposed: rsb == 1, csb != 1) with a row-major A, m <= 2*NR and
              m < n, it computes C^T = B^T A^T into a workspace and stores it transposed, adding the
              bias and applying the activation on the way (store_transposed, 16 x 16 blocks).
  B_IN_PLACE  when B is row-major (csb == 1) with rows a multiple of 16 floats apart and its first
              element 64-byte aligned (as minidl's parameters are: the C set's parameter_storage), and
              m <= 256, the micro-kernel reads B's whole NR-wide column panels from the caller's
              matrix (row stride rsb) instead of a packed copy; only a partial last column panel (n not
              a multiple of NR) is packed, zero-padded. The kernels load B with aligned vector loads, so
              the alignment is part of the condition, not a hint.
  DOT         (AVX-512 and AVX2) for x @ W.T (A's rows and B's columns both contiguous along k) with no
              accumulation or row bias, when C has few columns or few rows and k is long enough (DOT_RULES),
              each element of C is a dot product of a row of A and a row of W. AVX-512: 4 rows x 5 columns at
              a time (rows past m and columns past n repeat the last one and are not stored), k in 16-float
              vectors with a masked tail. AVX2: 4 x 3 tiles while 4 rows are left, then 2 x 6 and 1 x 12
              (columns past n repeat the last one), k in 8-float vectors with a masked tail, column tiles
              outside row tiles when m <= n. A Python mirror of the rule is checked against the C code by
              a product whose float32 result shows the order of its sum (test_dot_route_rule_matches_the_c_code).

Every test runs on each SIMD path this CPU supports, forced in turn, and most of them under each
strategy set (none, A_IN_PLACE, SWAP, B_IN_PLACE, all), against a float64 NumPy reference. The shapes
sit on both sides of each threshold: n around NR and 2*NR, m around multiples of MR (partial
micro-panels), of 16 (store_transposed's blocks) and 256, k past KC, A row-major, transposed, with
reversed rows or with no unit stride (which must fall back to packing), B aligned or 4, 16 or 32
bytes off, its rows 16*j floats apart or not, reversed or broadcast. MR, NR and KC are read from the
build, and each test asserts that its cases really reach the routes it is about (a Python mirror of
a_in_place(), swap_pays() and b_in_place(); the last is checked against the C code itself by a
product written over its own B, whose result shows whether B was read in place). The direct calls
write C with a row stride wider than n into NaN-filled memory, so a skipped row or column, or a store
outside C, cannot pass unnoticed; and B sits in NaN-filled memory too (a spare row before and after
it, NaN columns past its width), so a read outside B that reaches C shows. Where B is placed is
deterministic: 16 bytes past a 64-byte boundary (NumPy's usual offset: packed) unless a test asks for
it aligned.

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
from tolerances import TRANSCENDENTAL_ULPS, eps

from minidl.backend import c as ck
from minidl.backend import reference_kernels as nk
from minidl.backend.c import _ffi
from minidl.backend.memory import aligned_empty

pytestmark = pytest.mark.skipif(not ck.available, reason=f"C kernels not built: {ck.unavailable_reason}")

X86 = platform.machine().lower() in ("x86_64", "amd64")
PATHS = ["scalar", "avx2", "avx512"] if X86 else ["scalar", "neon"]
A_IN_PLACE, SWAP, B_IN_PLACE, DOT, ALL = 1, 2, 4, 8, 15  # MDK_GEMM_* in csrc/minidl_kernels.h (checked below)
STRATEGY_SETS = {"none": 0, "a_in_place": A_IN_PLACE, "swap": SWAP, "b_in_place": B_IN_PLACE, "dot": DOT, "all": ALL}
ACTIVATIONS = [None, "relu", "sigmoid", "tanh"]


def _kernels_module():
    """The C kernel set itself, or the build named by MINIDL_TEST_CKERNELS_MODULE (both have .lib and .ffi)."""
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
    lib, code = _K.lib, ck.SIMD_PATHS[path]
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
    """The cffi lib under test, the C kernel set routed to it with no GEMM size threshold; strategies reset to all."""
    monkeypatch.setattr(_ffi, "lib", _K.lib)
    monkeypatch.setattr(_ffi, "ffi", _K.ffi)
    monkeypatch.setattr(ck.gemm, "MIN_GEMM_FLOPS", 0)
    try:
        yield _K.lib
    finally:
        _K.lib.mdk_gemm_set_strategies(ALL)


@pytest.fixture(params=PATHS)
def simd(request, lib):
    """Force one SIMD path (skipped, saying why, where the machine cannot run it); yields its Tile."""
    path, code = request.param, ck.SIMD_PATHS[request.param]
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
    return _ffi.elem_strides(x)


def reads_a_in_place(tile, a, n):
    """gemm.c a_in_place(): few column panels and a unit stride in A, or a row-major A of at most 512 rows."""
    rsa, csa = strides(a)
    return (n <= 2 * tile.nr and (rsa == 1 or csa == 1)) or (csa == 1 and a.shape[0] <= 512)


def swaps(tile, a, b):
    """gemm.c swap_pays(): B transposed, A row-major, small m, m < n."""
    (m, _), n = a.shape, b.shape[1]
    (_, csa), (rsb, csb) = strides(a), strides(b)
    return rsb == 1 and csb != 1 and csa == 1 and m <= 2 * tile.nr and m < n


# gemm_strategies.c mdk_gemm_try_dot(), per SIMD path with a dot kernel: C has few columns (n <= max_n) and
# k >= narrow_min_k, or few rows (m <= max_m) and k >= short_min_k.
DotRule = collections.namedtuple("DotRule", "max_n narrow_min_k max_m short_min_k")
DOT_RULES = {"avx512": DotRule(15, 128, 8, 128), "avx2": DotRule(12, 256, 8, 128)}


def dots(tile, a, b, strategy_set):
    """gemm_strategies.c mdk_gemm_try_dot(): AVX-512 or AVX2, narrow C or few rows, k long enough for that case,
    A and B contiguous along k."""
    (m, k), n = a.shape, b.shape[1]
    (_, csa), (rsb, _) = strides(a), strides(b)
    rule = DOT_RULES.get(tile.path)
    if not (strategy_set & DOT and rule and csa == 1 and rsb == 1):
        return False
    return (n <= rule.max_n and k >= rule.narrow_min_k) or (m <= rule.max_m and k >= rule.short_min_k)


def dot_tiles(path, m, n, k):
    """How the dot kernel of a path cuts an m x n x k product (gemm_x86.c), as route names."""
    if path == "avx512":  # 4 x 5 tiles, 16-float vectors
        routes = {"full rows" if m % 4 == 0 else "partial rows", "full groups" if n % 5 == 0 else "partial groups"}
        return routes | {"k tail" if k % 16 else "whole vectors"}
    # AVX2: 4 x 3 tiles while 4 rows are left, then one 2 x 6 for 2 or 3 rows left, one 1 x 12 for the last row
    tile_rows = {4} if m >= 4 else set()
    tile_rows |= {2} if m % 4 >= 2 else set()
    tile_rows |= {1} if m % 2 else set()
    routes = {f"{r}-row tiles" for r in tile_rows} | {f"{r}-row tiles, partial" for r in tile_rows if n % (12 // r)}
    routes.add("columns outer" if m <= n else "rows outer")
    return routes | {"k tail" if k % 8 else "whole vectors"}


def b_in_place_blockers(a, b):
    """What keeps gemm.c b_in_place() from reading B in place (for an unswapped product): empty if nothing.
    (Then the whole NR-wide column panels are read in place; a partial last one is still packed.)"""
    m, (rsb, csb) = a.shape[0], strides(b)
    conditions = {"csb != 1": csb == 1, "rsb % 16": rsb % 16 == 0, "misaligned": b.ctypes.data % 64 == 0}
    conditions["m > 256"] = m <= 256
    return {why for why, holds in conditions.items() if not holds}


def reads_b_in_place(a, b):
    return not b_in_place_blockers(a, b)


def round16(n):
    return -(-n // 16) * 16


def placed(x, offset=0, row=None):
    """x (k, n) copied into fresh memory from aligned_empty: its first element `offset` bytes past a 64-byte
    boundary, its rows `row` floats apart (default n). The memory around it -- more than a row before and
    after, and the columns past n -- is NaN, so a read outside x that reaches C shows."""
    k, n = x.shape
    row = n if row is None else row
    lead = round16(row) + offset // 4  # a spare row or more, rounded to 64 bytes, then the offset
    memory = aligned_empty(lead + (k + 1) * row)
    memory[...] = np.nan
    view = memory[lead : lead + k * row].reshape(k, row)[:, :n]
    view[...] = x
    assert view.ctypes.data % 64 == offset and strides(view) == (row, 1)
    return view


def pointer(x):
    """Address of x[0, 0] for the kernels under test (x must outlive the call)."""
    return _K.ffi.cast("float *", x.ctypes.data)


def gemm(a, b, bias=None, activation=None):
    """act(a @ b + bias) by mdk_sgemm on the views' own strides (as the C set's gemm.sgemm calls it), with C written
    into the middle of NaN-filled memory with row stride n + 3: asserts nothing outside C was touched."""
    (m, k), n = a.shape, b.shape[1]
    ldc = n + 3
    memory = np.full((m + 2, ldc), np.nan, np.float32)  # a spare row before and after C
    c_ptr = _K.ffi.from_buffer("float[]", memory) + ldc
    bias_ptr = _K.ffi.NULL if bias is None else _K.ffi.from_buffer("float[]", bias)
    (rsa, csa), (rsb, csb) = strides(a), strides(b)
    rc = _K.lib.mdk_sgemm(
        m, n, k, pointer(a), rsa, csa, pointer(b), rsb, csb, c_ptr, ldc, bias_ptr, _ffi.ACTIVATIONS[activation]
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
def _values(m, k, n, w_layout):
    rng = np.random.default_rng([m, k, n])
    x = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float32).T if w_layout else rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    return x, b, bias, Product(x, b)


@functools.cache
def operands(m, k, n, w_layout=False, b_offset=16, b_row=None):
    """Read-only x (m, k), B (k, n) and bias (n,), with their Product: made once per shape and placement of B,
    shared by every path and strategy set. B is W.T for a row-major W (n, k) if w_layout; otherwise row-major,
    placed() b_offset bytes past a 64-byte boundary with rows b_row floats apart (default n): by default 16
    bytes off, as NumPy's allocations usually are, so it is packed; b_offset=0 and rows a multiple of 16
    floats apart read it in place (m <= 256)."""
    x, b, bias, product = _values(m, k, n, w_layout)
    if not w_layout:
        b = placed(b, b_offset, b_row)
    for array in (x, b, bias):
        array.flags.writeable = False
    return x, b, bias, product


ACT_ULPS = {None: 0, "relu": 0, "sigmoid": 2 * TRANSCENDENTAL_ULPS + 1, "tanh": 2 * TRANSCENDENTAL_ULPS + 1}


def gemm_tolerance(k, scale, bias, activation, want, results=1):
    """The dot-product bound, (k + 1 for a bias)·eps·(|a||b| + |bias|) per result (tolerances.py), carried
    through the activation (relu, sigmoid and tanh have slope <= 1) plus the activation kernel's own ulps
    relative to its output (test_kernels_c.py::test_unary_ops)."""
    f32 = eps(np.float32)
    return results * f32 * ((k + (bias is not None)) * scale + ACT_ULPS[activation] * np.abs(want))


def assert_matches(got, product, bias=None, activation=None, what=""):
    """got == act(a @ b + bias) to float32 accuracy, against the exact (float64) product: gemm_tolerance."""
    bias64 = None if bias is None else bias.astype(np.float64)
    want = product.exact if bias64 is None else product.exact + bias64
    want = want if activation is None else getattr(nk, activation)(want)
    scale = product.scale + (0 if bias is None else np.abs(bias64))
    tol = gemm_tolerance(product.k, scale, bias, activation, want)
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
    flags = (lib.MDK_GEMM_A_IN_PLACE, lib.MDK_GEMM_SWAP, lib.MDK_GEMM_B_IN_PLACE, lib.MDK_GEMM_DOT, lib.MDK_GEMM_ALL)
    assert flags == (A_IN_PLACE, SWAP, B_IN_PLACE, DOT, ALL)
    assert ALL == A_IN_PLACE | SWAP | B_IN_PLACE | DOT  # ALL is every strategy, and nothing else
    assert lib.mdk_gemm_set_strategies(0xFF) == ALL  # the default, and what every test here restores
    assert lib.mdk_gemm_set_strategies(0) == ALL  # 0xFF was kept as its known bits only
    assert lib.mdk_gemm_set_strategies(B_IN_PLACE) == 0
    assert lib.mdk_gemm_set_strategies(SWAP | 16) == B_IN_PLACE
    assert lib.mdk_gemm_set_strategies(A_IN_PLACE | DOT | 32) == SWAP  # 16 was dropped
    assert lib.mdk_gemm_set_strategies(-1) == A_IN_PLACE | DOT  # 32 was dropped
    assert lib.mdk_gemm_set_strategies(16) == ALL  # -1 kept as the known bits
    assert lib.mdk_gemm_set_strategies(ALL) == 0


# ---------------------------------------------------------------------------------------
# A read in place
# ---------------------------------------------------------------------------------------
M_A = [1, 5, 6, 7, 13, 127, 128, 129]  # around MR = 4 / 6 / 8 and MC
N_A = [1, 3, 10, 16, 17, 63, 64, 65, 127, 128]  # up to 2*NR (AVX-512); 2*NR + 1 of the path is added
K_A = [1, 7, 31, 129, 513]  # 513 crosses KC (256 or 512)
A_LAYOUTS = ["row-major", "transposed", "reversed rows", "strided"]


def test_a_in_place_matches_numpy(simd, strategies):
    """Every (m, n) pair, k cycling through K_A, A in each layout; B row-major (so no swap), and 64-byte
    aligned in every other case (then read in place as well where n is a multiple of 16 and at least NR)."""
    routes = set()
    n_values = sorted(set(N_A) | {2 * simd.nr + 1})
    for (i, m), (j, n) in itertools.product(enumerate(M_A), enumerate(n_values)):
        k = K_A[(i + j) % len(K_A)]  # along the diagonals: every m and every n meets every k
        b_offset = 0 if (i + j) % 2 else 16  # (i + j) % 2 and % 5 are independent: aligned B meets every k
        a, b, _, product = operands(m, k, n, b_offset=b_offset)
        for kind in A_LAYOUTS:
            va = layout(a, kind)
            what = f"{simd.path} {m}x{k} @ {k}x{n}, A {kind}, B {b_offset} bytes past 64"
            assert_matches(gemm(va, b), product, what=what)
            assert not swaps(simd, va, b)
            if reads_b_in_place(va, b) and n >= simd.nr:
                routes.add("B in place, A in place" if reads_a_in_place(simd, va, n) else "B in place, A packed")
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
        "B in place, A in place",
        "B in place, A packed",
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
        tol = gemm_tolerance(a.shape[-1], scale, None, None, want)
        assert (np.abs(got - want) <= tol).all(), f"{a.shape} @ {b.shape}"


# ---------------------------------------------------------------------------------------
# B read in place
# ---------------------------------------------------------------------------------------
M_B = [1, 5, 6, 7, 128, 256]  # around MR = 4 / 6 / 8, up to b_in_place()'s m <= 256
K_B = [1, 7, 129, 513]  # 513 crosses KC (256 or 512)


def b_widths(tile):
    """n around NR: only a partial panel (packed), one whole panel, whole panels then a partial one."""
    return [tile.nr - 1, tile.nr, tile.nr + 1, 2 * tile.nr, 3 * tile.nr + 5, 200]


def test_b_in_place_matches_numpy(simd, strategies):
    """Every (m, n) pair, k cycling through K_B, A in each layout in turn; B 64-byte aligned with rows 16*j
    floats apart (all of its memory, or a column slice of wider rows), plain and with a bias and activation."""
    routes = set()
    for (i, m), (j, n) in itertools.product(enumerate(M_B), enumerate(b_widths(simd))):
        k = K_B[(i + j) % len(K_B)]  # along the diagonals: every m and every n meets every k ...
        kind = A_LAYOUTS[(2 * i + j) % len(A_LAYOUTS)]  # ... and every k every A layout
        row = round16(n) + 16 * ((i + j) % 2)  # B all of its rows where n % 16 == 0, else a column slice
        a, b, bias, product = operands(m, k, n, b_offset=0, b_row=row)
        va = layout(a, kind)
        what = f"{simd.path} {m}x{k} @ {k}x{n}, A {kind}, B aligned, rows {row} apart"
        assert reads_b_in_place(va, b) and not swaps(simd, va, b), what
        assert_matches(gemm(va, b), product, what=what)
        variant = (i + 2 * j) % (2 * len(ACTIVATIONS))  # every activation with and without a bias
        activation, with_bias = ACTIVATIONS[variant % len(ACTIVATIONS)], variant < len(ACTIVATIONS)
        vbias = bias if with_bias else None
        got = ck.gemm.sgemm(va, b, vbias, _ffi.ACTIVATIONS[activation])
        assert_matches(got, product, vbias, activation, f"{what}, gemm.sgemm, bias {with_bias}, {activation}")
        if n < simd.nr:
            routes.add("n < NR: B's one partial panel packed")
            continue
        routes.add("B in place, whole panels only" if n % simd.nr == 0 else "B in place, then a packed partial panel")
        routes.add("B in place, B contiguous" if row == n else "B in place, B a column slice")
        routes.add("B in place, A in place" if reads_a_in_place(simd, va, n) else "B in place, A packed")
        if m % simd.mr:
            routes.add("B in place, partial row panels (edge tiles)")
        if k > simd.kc:
            routes.add("B in place, several KC slices")
        if k == 1:
            routes.add("B in place, k = 1")
        if m == 256:
            routes.add("B in place, m = 256")
    assert routes == {
        "n < NR: B's one partial panel packed",
        "B in place, whole panels only",
        "B in place, then a packed partial panel",
        "B in place, B contiguous",
        "B in place, B a column slice",
        "B in place, A in place",
        "B in place, A packed",
        "B in place, partial row panels (edge tiles)",
        "B in place, several KC slices",
        "B in place, k = 1",
        "B in place, m = 256",
    }


def c_columns_read_in_place(b):
    """Which columns of B mdk_sgemm really reads in place, seen from outside: C = ones(k, k) @ B written
    over B itself (m = k, ldc = rsb: row i of C is row i of B). Packed, a column is copied before C is
    written (k <= KC and n <= NC: one block), so every row of C is B's column sum, exactly (B holds small
    integers). Read in place, the row panels after the first read rows of B that the first has already
    overwritten with sums, bigger than the values there (all >= 1), so the column's sums come out bigger.
    (Call with KC >= k.)"""
    k, n = b.shape
    rsb, csb = strides(b)
    assert csb == 1 and rsb >= n and k > 8 and (b >= 1).all()  # more than one row panel (MR <= 8)
    sums = np.array(b).sum(axis=0)
    ones = np.ones((k, k), np.float32)
    rc = _K.lib.mdk_sgemm(k, n, k, pointer(ones), k, 1, pointer(b), rsb, 1, pointer(b), rsb, _K.ffi.NULL, 0)
    assert rc == 0
    return (b != sums).any(axis=0)


def test_c_code_reads_b_in_place_exactly_where_the_mirror_says(simd, strategies, lib):
    """The route itself, observed (c_columns_read_in_place) rather than modelled: B's whole NR-wide panels
    are read in place when the strategy is on and b_in_place() holds -- aligned, rows 16*j floats apart,
    m <= 256 -- and never a partial last panel; all of B is packed when a condition fails: m = 257, rows
    16*j + 8 apart, B 4, 16 or 32 bytes off. This checks reads_b_in_place(), the mirror the other tests'
    route checks rely on, against the C code."""
    nr, code = simd.nr, ck.SIMD_PATHS[simd.path]
    saved = _K.ffi.new("int64_t[3]")
    assert lib.mdk_gemm_get_blocking(code, saved) == 0
    try:
        assert lib.mdk_gemm_set_blocking(code, 1024, saved[1], saved[2]) == 0  # one KC block up to k = 1024
        cases = [  # (k = m, n, offset in bytes, row stride)
            (64, 2 * nr + 5, 0, round16(2 * nr + 5)),
            (33, nr, 0, round16(nr)),
            (256, nr + 1, 0, round16(nr + 1) + 16),
            (257, nr + 1, 0, round16(nr + 1) + 16),
            (64, nr + 1, 0, round16(nr + 1) + 8),
            (64, 2 * nr, 4, round16(2 * nr)),
            (64, 2 * nr, 16, round16(2 * nr)),
            (64, 2 * nr, 32, round16(2 * nr)),
        ]
        seen = collections.Counter()
        for k, n, offset, row in cases:
            values = np.random.default_rng([k, n, offset]).integers(1, 4, (k, n)).astype(np.float32)
            b = placed(values, offset, row)
            blockers = b_in_place_blockers(np.empty((k, k), np.float32), b)
            expected = bool(strategies & B_IN_PLACE) and not blockers
            want = np.arange(n) < (n // nr * nr if expected else 0)  # whole panels only
            got = c_columns_read_in_place(b)
            what = f"{simd.path} strategies {strategies}: k = m = {k}, n = {n}, B {offset} bytes off, rows {row} apart"
            assert np.array_equal(got, want), (
                f"{what}: columns {np.flatnonzero(got).tolist()} read in place, expected the first {want.sum()} "
                f"(blockers: {blockers or 'none'})"
            )
            seen[expected] += 1
        assert seen[False] >= 4 and seen[True] == (3 if strategies & B_IN_PLACE else 0)
    finally:
        lib.mdk_gemm_set_blocking(code, saved[0], saved[1], saved[2])


def test_b_in_place_with_negative_and_zero_row_strides(simd, strategies):
    """B read bottom-up (rsb = -16*j, B[0, 0] aligned) or one aligned row repeated down k (rsb = 0) qualifies
    too: the micro-kernel steps through B by rsb, whatever its sign."""
    nr = simd.nr
    for m, k, n in [(7, 129, 2 * nr + 3), (128, 513, nr), (6, 9, 3 * nr + 5)]:
        x, values = rand(m, k, seed=m), rand(k, n, seed=n)
        bias = rand(n, seed=k)
        cases = {
            "reversed rows": placed(values[::-1], row=round16(n))[::-1],
            "one row broadcast": np.broadcast_to(placed(values[:1], row=round16(n) + 16)[0], (k, n)),
        }
        for name, b in cases.items():
            what = f"{simd.path} {m}x{k} @ {k}x{n}, B {name}, strides {strides(b)}"
            assert reads_b_in_place(x, b) and strides(b)[0] in (-round16(n), 0), what
            product = Product(x, b)
            assert_matches(gemm(x, b), product, what=what)
            got = ck.gemm.sgemm(x, b, bias, _ffi.ACTIVATIONS["sigmoid"])
            assert_matches(got, product, bias, "sigmoid", f"{what}, bias")


def test_b_packed_where_b_in_place_does_not_apply(simd, strategies):
    """Each condition of b_in_place() broken on its own (B otherwise aligned, rows 16*j floats apart, m <= 256):
    B is packed as before, and the product is right. A misaligned B read in place would meet the kernels'
    aligned vector loads; B with csb != 1 read in place would be the wrong numbers."""
    nr = simd.nr

    def spread(v):  # every other column of aligned rows (csb = 2), NaN between
        wide = np.full((v.shape[0], 2 * v.shape[1]), np.nan, np.float32)
        wide[:, ::2] = v
        return placed(wide, row=round16(wide.shape[1]))[:, ::2]

    def rows16(offset):  # B's values `offset` bytes past a 64-byte boundary, rows 16*j floats apart
        return lambda v: placed(v, offset, round16(v.shape[1]))

    cases = [  # (what, m, k, n, B from its values (k, n), what keeps it from being read in place)
        ("n = 17, all of its rows: 17 floats apart", 7, 129, 17, placed, {"rsb % 16"}),
        ("rows 16*j + 8 floats apart", 6, 33, 2 * nr, lambda v: placed(v, row=round16(2 * nr) + 8), {"rsb % 16"}),
        ("4 bytes off 64", 5, 129, 2 * nr + 1, rows16(4), {"misaligned"}),
        ("16 bytes off 64 (NumPy's usual)", 128, 513, 3 * nr + 5, rows16(16), {"misaligned"}),
        ("32 bytes off 64 (enough for AVX2's loads)", 6, 7, 200, rows16(32), {"misaligned"}),
        ("m = 257", 257, 129, 2 * nr, rows16(0), {"m > 256"}),
        ("every other column: csb = 2", 6, 33, nr + 1, spread, {"csb != 1"}),
        ("W.T of an aligned W: rsb = 1", 7, 128, 200, lambda v: placed(v.T.copy()).T, {"csb != 1", "rsb % 16"}),
        ("W.T, m > 2*NR (no swap)", 2 * nr + 1, 128, nr + 1, lambda v: placed(v.T.copy()).T, {"csb != 1", "rsb % 16"}),
    ]
    for case, (name, m, k, n, make_b, blockers) in enumerate(cases):
        x, values, bias = rand(m, k, seed=case), rand(k, n, seed=100 + case), rand(n, seed=200 + case)
        b = make_b(values)
        what = f"{simd.path} {m}x{k} @ {k}x{n}, B {name}, strides {strides(b)}, {b.ctypes.data % 64} bytes past 64"
        assert np.array_equal(b, values) and b_in_place_blockers(x, b) == blockers, what
        product = Product(x, b)
        assert_matches(gemm(x, b), product, what=what)
        got = ck.gemm.sgemm(x, b, bias, _ffi.ACTIVATIONS["relu"])
        assert_matches(got, product, bias, "relu", f"{what}, bias, relu")


def test_b_in_place_in_batched_products(simd, strategies):
    """mdk_sgemm_batched decides per matrix of B: one aligned B shared by the batch is read in place for every
    product; in a stack whose second matrix starts 32 bytes past a 64-byte boundary only the first one is."""
    nr = simd.nr
    k, n = 33, 2 * nr + 5
    row = round16(n)
    shared = placed(rand(k, n, seed=1), row=row)
    memory = aligned_empty(2 * k * row + 8)
    memory[...] = np.nan
    stack = np.lib.stride_tricks.as_strided(memory, (2, k, n), ((k * row + 8) * 4, row * 4, 4))
    stack[...] = rand(2, k, n, seed=2)
    cases = [(rand(3, 7, k, seed=3), shared), (rand(2, k, 129, seed=4).transpose(0, 2, 1), shared)]
    cases += [(rand(2, 6, k, seed=5), stack)]
    one_matrix = cases[0][0][0]
    assert reads_b_in_place(one_matrix, shared) and reads_b_in_place(one_matrix, stack[0])
    assert b_in_place_blockers(one_matrix, stack[1]) == {"misaligned"}
    for a, b in cases:
        got = ck.matmul(a, b)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        want, scale = np.matmul(a64, b64), np.matmul(np.abs(a64), np.abs(b64))
        assert got.shape == want.shape
        tol = gemm_tolerance(k, scale, None, None, want)
        assert (np.abs(got - want) <= tol).all(), f"{simd.path} {a.shape} @ {b.shape}"


# ---------------------------------------------------------------------------------------
# C^T = B^T A^T for x @ W.T
# ---------------------------------------------------------------------------------------
M_SWAP = [1, 5, 6, 7, 16, 64, 127, 128]  # around MR and 16 (store_transposed's blocks), up to 2*NR
N_SWAP = [129, 200, 512]
K_SWAP = [1, 33, 129, 513]  # k = 1: W.T (1, n) has unit strides both ways, no swap


def test_swap_linear_matches_numpy(simd, strategies):
    """linear with and without bias, every activation, m < n; and one direct call with a
    wide C (store_transposed must use ldc, not n)."""
    routes = set()
    for i, (m, n) in enumerate(itertools.product(M_SWAP, N_SWAP)):
        k = K_SWAP[i % len(K_SWAP)]
        x, wt, bias, product = operands(m, k, n, w_layout=True)
        w = wt.T
        for activation, with_bias in itertools.product(ACTIVATIONS, [False, True]):
            b = bias if with_bias else None
            got = ck.linear(x, w, b, activation)
            what = f"{simd.path} linear x {m}x{k}, W {n}x{k}, {activation}, bias {with_bias}"
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
            assert_matches(ck.linear(x, w, bias, activation), product, bias, activation, what)
        assert_matches(gemm(x, w.T, bias, "sigmoid"), product, bias, "sigmoid", f"{what}, wide C")
        routes[swaps(simd, x, w.T)] += 1
    assert routes[True] >= 4 and routes[False] >= 4


# ---------------------------------------------------------------------------------------
# Narrow or short C as dot products (AVX-512, AVX2)
# ---------------------------------------------------------------------------------------
M_DOT = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 128]  # around the 4-row tiles (and AVX2's 2- and 1-row ones), max_m
N_DOT = list(range(1, 18)) + [63, 65]  # around the column groups (5; 3, 6, 12) and max_n; 63, 65 dot only for m <= 8
K_DOT = [1, 127, 128, 129, 143, 255, 256, 257, 515, 784]  # around the min_k and the 8/16-float vectors (masked tails)
DOT_TILES = {
    "avx512": {"full rows", "partial rows", "full groups", "partial groups", "k tail", "whole vectors"},
    "avx2": {"4-row tiles", "2-row tiles", "1-row tiles", "4-row tiles, partial", "2-row tiles, partial"}
    | {"1-row tiles, partial", "columns outer", "rows outer", "k tail", "whole vectors"},
}


def test_dot_matches_numpy(simd, strategies):
    """x @ W.T for every (m, n) pair, k cycling through K_DOT: linear with a bias and an activation, and a
    direct call with a wide C (ldc != n) into NaN-filled memory, with a bias and another activation every
    other shape; on a path with a dot kernel with DOT on, the shapes reach it through both doors (few
    columns, few rows) with every tile shape, full and partial, and with and without a k tail."""
    routes = set()
    for (i, m), (j, n) in itertools.product(enumerate(M_DOT), enumerate(N_DOT)):
        k = K_DOT[(i + j) % len(K_DOT)]
        x, wt, bias, product = operands(m, k, n, w_layout=True)
        activation = ACTIVATIONS[(i + j) % len(ACTIVATIONS)]
        what = f"{simd.path} x {m}x{k} @ W.T {k}x{n}"
        got = ck.linear(x, wt.T, bias, activation)
        assert_matches(got, product, bias, activation, f"{what}, linear, bias, {activation}")
        direct_bias, direct_act = (bias, ACTIVATIONS[(i + j + 1) % len(ACTIVATIONS)]) if (i + j) % 2 else (None, None)
        got = gemm(x, wt, direct_bias, direct_act)
        assert_matches(got, product, direct_bias, direct_act, f"{what}, wide C, bias {direct_bias is not None}")
        if dots(simd, x, wt, strategies):
            routes |= dot_tiles(simd.path, m, n, k)
            routes.add("few rows" if m <= DOT_RULES[simd.path].max_m else "few columns")
    if simd.path in DOT_RULES and strategies & DOT:
        assert routes == DOT_TILES[simd.path] | {"few rows", "few columns"}
    else:
        assert not routes


def test_dot_route_rule_matches_the_c_code(simd, strategies):
    """dots() says which products take the dot route; the C code agrees, on shapes at each threshold. The
    product shows its route in float32: with x's rows [2^24, 1 (V - 1 times), -2^24, 0, ...] and W all ones,
    a sum in k order (the blocked and swapped routes) rounds each 2^24 + 1 back to 2^24 and ends at 0, while
    the dot kernels' V lanes (V = 16 floats on AVX-512, 8 on AVX2) sum 2^24 - 2^24 in lane 0 and get V - 1."""
    lanes = {"avx512": 16, "avx2": 8}.get(simd.path)
    rule = DOT_RULES.get(simd.path, DOT_RULES["avx512"])
    ms = sorted({1, 2, 7, rule.max_m, rule.max_m + 1, 33})
    ns = sorted({1, 11, rule.max_n, rule.max_n + 1, 40})
    ks = sorted({rule.short_min_k - 1, rule.short_min_k, rule.narrow_min_k - 1, rule.narrow_min_k, 600})
    taken = collections.Counter()
    for m, n, k in itertools.product(ms, ns, ks):
        v = lanes or 16  # (a path with no dot kernel sums in k order whatever V is)
        x = np.zeros((m, k), np.float32)
        x[:, 0], x[:, 1:v], x[:, v] = 2.0**24, 1.0, -(2.0**24)
        wt = np.ones((n, k), np.float32).T
        got = gemm(x, wt)
        dot = dots(simd, x, wt, strategies)
        want = (lanes - 1) if dot else 0
        assert (got == want).all(), f"{simd.path} {m}x{k}x{n}: dots() says {dot}, C gave {np.unique(got)[:4]}"
        taken[dot] += 1
    assert taken[True] > 0 if simd.path in DOT_RULES and strategies & DOT else not taken[True]
    assert taken[False] > 0


def test_dot_with_strided_and_reversed_operands(simd, strategies):
    """A's rows apart or reversed (still contiguous along k: dot), A with no unit stride or transposed
    (not), W's rows apart (dot) or W row-major (B = W, not): each against NumPy."""
    k = 300
    big_x = rand(40, 2 * k, seed=21)
    big_w = rand(30, k + 7, seed=22)
    cases = [  # (x, B)
        (big_x[:13, :k], rand(10, k, seed=23).T),  # x rows 2k apart
        (layout(rand(9, k, seed=24), "reversed rows"), rand(7, k, seed=25).T),  # rsa < 0
        (big_x[::3, :k], big_w[:24:2, :k].T),  # x and W rows apart (n = 12: a dot shape on every dot path)
        (big_x[:6, ::2][:, :k], rand(10, k, seed=26).T),  # csa = 2: blocked route
        (layout(rand(6, k, seed=27), "transposed"), rand(10, k, seed=28).T),  # x^T stored: blocked route
        (rand(6, k, seed=29), rand(k, 10, seed=30)),  # B row-major (rsb != 1): blocked route
    ]
    routes = collections.Counter()
    for case, (x, b) in enumerate(cases):
        product = Product(x, b)
        bias = rand(b.shape[1], seed=200 + case)
        what = f"{simd.path} case {case}: x {x.shape} strides {strides(x)}, B {b.shape} strides {strides(b)}"
        assert_matches(gemm(x, b, bias, "tanh"), product, bias, "tanh", what)
        routes[dots(simd, x, b, strategies)] += 1
    if simd.path in DOT_RULES and strategies & DOT:
        assert routes == {True: 3, False: 3}


# ---------------------------------------------------------------------------------------
# Every strategy set gives the same numbers
# ---------------------------------------------------------------------------------------
def test_every_strategy_set_gives_the_same_result(simd, lib):
    """Same shapes under each set: within float32 rounding of the set-0 result (with no bias or k <= KC
    the operations and their order are the same, and the results measure bit-identical)."""
    nr, nr2 = simd.nr, 2 * simd.nr
    cases = [  # (m, k, n, A layout, B: row-major (16 bytes off 64), W.T or aligned, bias?, activation)
        (7, 513, 10, "row-major", "row-major", False, None),
        (7, 129, nr2, "transposed", "row-major", True, "relu"),
        (13, 31, nr2 + 1, "row-major", "row-major", True, None),
        (129, 33, 65, "row-major", "W.T", True, "sigmoid"),
        (7, 513, 200, "row-major", "W.T", True, "tanh"),
        (5, 31, 129, "reversed rows", "W.T", False, None),
        (min(127, nr2), 129, 512, "row-major", "W.T", True, "relu"),
        (7, 129, nr2, "transposed", "aligned", True, "relu"),  # A and B in place
        (128, 513, 3 * nr + 5, "row-major", "aligned", True, "tanh"),
        (256, 33, nr, "strided", "aligned", False, None),
        (6, 7, 200, "row-major", "aligned", True, "sigmoid"),
    ]
    for m, k, n, kind, b_kind, with_bias, activation in cases:
        aligned = b_kind == "aligned"  # then with rows 16*j floats apart
        b_offset, b_row = (0, round16(n)) if aligned else (16, None)
        a, b, bias, product = operands(m, k, n, w_layout=b_kind == "W.T", b_offset=b_offset, b_row=b_row)
        a, bias = layout(a, kind), bias if with_bias else None
        assert reads_b_in_place(a, b) == aligned
        results = {}
        for name, strategy_set in STRATEGY_SETS.items():
            lib.mdk_gemm_set_strategies(strategy_set)
            results[name] = gemm(a, b, bias, activation)
        lib.mdk_gemm_set_strategies(ALL)
        what = f"{simd.path} {m}x{k}x{n} A {kind} B {b_kind} bias {with_bias} {activation}"
        assert_matches(results["none"], product, bias, activation, what)
        scale = product.scale + (0 if bias is None else np.abs(bias))
        # Two of our results, each within the bound of the exact one (different orders of the sum).
        tol = gemm_tolerance(k, scale, bias, activation, results["none"], results=2)
        for name, got in results.items():
            diff = np.abs(got.astype(np.float64) - results["none"])
            assert (diff <= tol).all(), f"{what}: strategies {name} vs none"


# ---------------------------------------------------------------------------------------
# Tiny cache blocks: every block boundary of the five loops inside small products
# ---------------------------------------------------------------------------------------
def test_strategies_across_tiny_cache_blocks(simd, strategies, lib):
    """KC = 5, MC = 13 (rounded up to MR), NC = NR: A in place at every pc offset and in several row
    blocks, each ending in a partial panel; B in place at every (pc, jc) offset, the last column block a
    packed partial panel; the swapped product split over many blocks too."""
    code = ck.SIMD_PATHS[simd.path]
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
        for m, k, n in [(29, 23, 3 * nr + 5), (7, 17, 2 * nr)]:
            a, b, bias, product = operands(m, k, n, b_offset=0, b_row=round16(n))
            assert reads_b_in_place(a, b)
            what = f"{simd.path} tiny blocks, B in place, {m}x{k}x{n}"
            assert_matches(gemm(a, b, bias, "tanh"), product, bias, "tanh", what)
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
    b_kind=st.sampled_from(["W.T", "16 bytes off", "aligned", "aligned, rows 16*j apart", "4 bytes off, rows 16*j"]),
    with_bias=st.booleans(),
    activation=st.sampled_from(ACTIVATIONS),
)
def test_random_shapes_near_the_thresholds(path, strategy_set, data, k, a_kind, b_kind, with_bias, activation):
    if path not in ck.simd_paths_supported():
        return  # the fixture tests report the skip with its reason
    lib = _K.lib
    before = lib.mdk_simd_path()
    try:
        assert lib.mdk_set_simd_path(ck.SIMD_PATHS[path]) == 0
        tile = _tile(path)
        m = data.draw(st.integers(1, 2 * tile.nr + 2), label="m")
        n = data.draw(st.integers(1, 2 * tile.nr + 2) | st.integers(2 * tile.nr - 2, 4 * tile.nr), label="n")
        lib.mdk_gemm_set_strategies(strategy_set)
        b_offset = 4 if b_kind.startswith("4") else 16 if b_kind.startswith("16") else 0
        b_row = round16(n) if "16*j" in b_kind else None
        a, b, bias, product = operands(m, k, n, w_layout=b_kind == "W.T", b_offset=b_offset, b_row=b_row)
        a, bias = layout(a, a_kind), bias if with_bias else None
        what = f"{path} {m}x{k}x{n} A {a_kind} B {b_kind}"
        assert_matches(gemm(a, b, bias, activation), product, bias, activation, what)
    finally:
        lib.mdk_gemm_set_strategies(ALL)
        lib.mdk_set_simd_path(before)
