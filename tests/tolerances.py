"""Test tolerances derived from floating-point error bounds, for tests that compare two computations.

Two results can differ only by what rounding allows, and how much that is depends on the
operation, not on what happened to pass on one machine. Every function here turns a
standard error bound (Higham, "Accuracy and Stability of Numerical Algorithms", ch. 2-4)
into an absolute tolerance, elementwise, so a test holds on any x86-64 or aarch64 machine,
BLAS (OpenBLAS kernels, MKL, Accelerate) and SIMD path (scalar, AVX2, AVX-512, NEON), and
still fails for a real bug: a wrong index, a missing term or a wrong formula is off by the
size of the terms themselves, orders of magnitude above k·eps of them.

Notation: eps = np.finfo(dtype).eps, the spacing of floats at 1.0 (2^-52 float64, 2^-23
float32, 2^-10 float16); each basic operation (+ - * / sqrt, FMA) rounds with relative
error at most u = eps/2.

The rules:
- Dot products, matrix products, sums (matmul_atol, linear_atol, sum_atol): a sum of k
  products computed in ANY order (sequential, pairwise, blocked, split over SIMD lanes or
  threads, with or without FMA) is within gamma_k · sum_i |a_i b_i| of the exact value, where
  gamma_k = k·u / (1 - k·u) ≈ k·eps/2. We allow k·eps·sum|a_i b_i| per result (twice gamma_k:
  room for the extra rounding of a bias add, a dtype conversion, and gamma_k's denominator),
  so two libraries' results are within 2·k·eps·sum|a_i b_i| of each other: SAFETY = 2 is
  that "two results" factor. The bound is relative to sum|a_i b_i|, not to the result: an
  output near zero (cancellation) can differ by many of its own ulps between libraries, and
  that is not an error. Against an exact (float64) reference only one side rounds:
  `results=1` halves the tolerance.
- Transcendental functions (transcendental_rtol): each library is within a few ulps of the
  correctly rounded value, but NumPy (its own AVX2/AVX-512 code or SVML-derived kernels,
  documented up to ~3.9 ulp for float32 log), PyTorch (SLEEF, 1 ulp for its u10 variants,
  plus its own formulas for sigmoid etc.) and our SIMD code (Cephes-style polynomials plus
  a division for sigmoid/tanh, ~2.5 ulp) use different approximations, so they disagree in
  the last bits. TRANSCENDENTAL_ULPS = 4 per library; an ulp of y is at most eps·|y|.
- 16-bit conversions: float32 -> float16 rounds to nearest even, a function of the input
  bits alone (IEEE 754), so every implementation must agree exactly; float16 -> float32 and
  truncation to 16 bits are exact. Compare bits, never with a tolerance. A float16 value is
  within half an ulp of its float32 source: half_ulp_float16() says how much that is.
- Chains of operations (chain_atol): a whole layer, a training step, a few optimizer or
  recurrent steps. Rounding errors of successive stages add, each carried forward by the
  Lipschitz constant of what follows; the activations and losses used here (relu, sigmoid
  (1/4), tanh, softmax, log-softmax, cross-entropy) have constants <= 1, so a chain's
  error budget is the sum of its stages' budgets in units of eps: k for a length-k
  reduction, TRANSCENDENTAL_ULPS for a transcendental, 1 per basic elementwise op, and
  over T iterations of a non-expanding step, T times one step's budget. The budget is
  relative to the magnitude of the terms, which a chain does not expose; we use the largest
  |value| of the compared array times sqrt(fan_in) (for terms of random sign, a length-k
  sum is sqrt(k) times smaller than the sum of its terms' magnitudes). For a single layer
  the linear_act_*_atol and cross_entropy_atol functions below carry the errors elementwise
  instead (each stage's own bound plus its inputs' errors times its derivative), and treat
  relu's kink honestly: a unit whose input lies within rounding of 0 may take either side.
- Long chains (many training steps): the worst case compounds into nothing useful (for the
  30-step MLP run in test_kernels_training.py it allows 10% after 30 steps, while the runs
  agree to 1e-7). There we use the probabilistic model of Higham and Mary ("A new approach
  to probabilistic rounding error analysis", SIAM J. Sci. Comput. 41(5), 2019): rounding
  errors as independent zero-mean variables, so n roundings on a path give at most
  lam·sqrt(n)·u relative to the terms, except with probability about exp(-lam²/2). With
  LAMBDA = 10 that is 2e-22 per element: never, unless the independence model fails, which
  is the assumption the tests using it accept and say so (chain_atol(probabilistic=True)).
"""

import math

import numpy as np

SAFETY = 2  # two results, each within k·eps·sum|terms| of the exact value (see above)
LAMBDA = 10  # probabilistic bounds: lam·sqrt(n)·u fails with probability ~exp(-lam²/2) = 2e-22
TRANSCENDENTAL_ULPS = 4  # per library: NumPy's float32 SIMD log is documented at 3.83 ulp, the worst of the three


def eps(dtype):
    """Machine epsilon of `dtype`: 2^-52 for float64, 2^-23 for float32, 2^-10 for float16."""
    return float(np.finfo(np.dtype(dtype)).eps)


def _dtype_of(*arrays, dtype=None):
    """The precision the computation ran in: the given dtype, else the widest float input."""
    if dtype is not None:
        return np.dtype(dtype)
    floats = [np.asarray(a).dtype for a in arrays if a is not None and np.asarray(a).dtype.kind == "f"]
    return np.result_type(*floats) if floats else np.dtype(np.float64)


def _abs64(a):
    return np.abs(np.asarray(a, dtype=np.float64))


def matmul_atol(a, b, *, dtype=None, extra_terms=0, results=2):
    """Elementwise tolerance for np.matmul(a, b) (any batch dims, 1-D operands) computed two ways.

    SAFETY/2 · results · (k + extra_terms) · eps · (|a| @ |b|), with k the inner dimension;
    extra_terms counts additions folded into the same result (a bias, an accumulate).
    results=1 when the other side is an exact (float64 of float32 inputs) reference.
    """
    k = np.shape(a)[-1] + extra_terms
    scale = np.matmul(_abs64(a), _abs64(b))
    return SAFETY / 2 * results * k * eps(_dtype_of(a, b, dtype=dtype)) * scale


def linear_atol(x, weight, bias=None, *, dtype=None, results=2):
    """Tolerance for x @ weight.T + bias (a linear layer): the length-`in` dot product plus the bias add."""
    scale = np.matmul(_abs64(x), _abs64(weight).swapaxes(-1, -2))
    if bias is not None:
        scale = scale + _abs64(bias)
    k = np.shape(x)[-1] + (bias is not None)
    return SAFETY / 2 * results * k * eps(_dtype_of(x, weight, bias, dtype=dtype)) * scale


def sum_atol(x, axis=None, keepdims=False, *, dtype=None, results=2, depth=None):
    """Tolerance for x.sum(axis) computed two ways: SAFETY/2 · results · depth · eps · sum|x|.

    depth is the longest chain of additions any one term goes through; the default, n (the
    count summed), covers every order. Pass a smaller depth only for an algorithm whose
    order is fixed by our own code (e.g. the C row sum: 32 lanes, then pairwise), and
    compare it against an exact (float64) reference with results=1: another library's
    order is not ours to assume.
    """
    x = np.asarray(x)
    n = x.size if axis is None else math.prod(np.shape(x)[a] for a in np.atleast_1d(axis))
    depth = max(n, 1) if depth is None else depth
    scale = np.sum(_abs64(x), axis=axis, keepdims=keepdims)
    return SAFETY / 2 * results * depth * eps(_dtype_of(x, dtype=dtype)) * scale


def transcendental_rtol(dtype, *, libraries=2, extra_ulps=0):
    """Relative tolerance for exp/log/tanh/sigmoid/sin/... computed by `libraries` different libraries.

    libraries=1 when the other side is exact (a float64 reference for float32 results).
    extra_ulps adds the basic operations around the call (e.g. 1 - tanh², a division).
    """
    return (libraries * TRANSCENDENTAL_ULPS + extra_ulps) * eps(dtype)


def half_ulp_float16(x):
    """The most that rounding float32 x to float16 (nearest even) may change it: half an ulp of float16.

    For normal halves that is 2^-11 relative; below the smallest normal half (2^-14) the
    spacing is fixed at 2^-24, so the bound is 2^-25 absolute.
    """
    x = _abs64(x)
    return np.maximum(x * 2.0**-11, 2.0**-25)


def chain_atol(expected, *, budget, fan_in=1, dtype=None, results=2, probabilistic=False):
    """Tolerance for a chain of ops (a layer, a training step, T iterations) computed two ways.

    SAFETY/2 · results · budget · eps · sqrt(fan_in) · max|expected|, one number for the whole
    array (results=1 against a float64 reference of a float32 chain: only one side rounds).
    probabilistic=True replaces the worst-case count `budget` by LAMBDA·sqrt(budget)·u/eps
    (Higham and Mary's model, see the module docstring): for long chains only.
    `budget` is the chain's rounding budget in units of eps (sum of reduction lengths,
    TRANSCENDENTAL_ULPS per transcendental, 1 per elementwise op, times the number of
    iterations); `fan_in` is the longest reduction, whose terms are up to sqrt(fan_in) larger
    than their sum. Say in the test how the budget was counted.
    """
    dtype = _dtype_of(expected, dtype=dtype)
    expected = _abs64(expected)
    scale = float(expected.max()) if expected.size else 0.0
    count = LAMBDA * math.sqrt(budget) / 2 if probabilistic else budget
    return SAFETY / 2 * results * count * eps(dtype) * math.sqrt(fan_in) * scale


# ---------------------------------------------------------------------------------------
# Layers: the chain rule applied to errors. Each function returns the float64 reference values
# and how far two float32 (or float64) implementations may be from each other, elementwise:
# a stage's own rounding (the bounds above) plus the error already in its inputs, carried by
# the stage's derivative. Compose them in the order the layer runs (forward, then backward).
# ---------------------------------------------------------------------------------------
ACTIVATION_ULPS = {None: 0, "relu": 0, "sigmoid": 2 * TRANSCENDENTAL_ULPS + 1, "tanh": 2 * TRANSCENDENTAL_ULPS + 1}
ACTIVATION_SLOPE = {None: 1.0, "relu": 1.0, "sigmoid": 0.25, "tanh": 1.0}  # Lipschitz constants


def _activation(z, activation):
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if activation == "tanh":
        return np.tanh(z)
    return z


def _carried(error, like):
    return np.broadcast_to(np.asarray(error, np.float64), np.shape(like))


def linear_act_forward_atol(
    x, weight, bias=None, activation=None, *, x_atol=0.0, weight_atol=0.0, bias_atol=0.0, dtype=None, results=2
):
    """(out, z, out_atol) for out = act(x @ weight.T + bias), with x, weight and bias already
    apart by x_atol, weight_atol and bias_atol between the two computations.

    z's error: the linear bound plus the carried ones, x_atol @ |W|ᵀ + |x| @ weight_atolᵀ +
    bias_atol (first order); the activation passes it on times its slope (<= 1) and adds
    its own ulps relative to |out| (sigmoid and tanh: 2 exps' worth).
    """
    dtype = _dtype_of(x, weight, bias, dtype=dtype)
    x64, w64 = np.asarray(x, np.float64), np.asarray(weight, np.float64)
    z = x64 @ w64.T + (0 if bias is None else np.asarray(bias, np.float64))
    z_atol = linear_atol(x, weight, bias, dtype=dtype, results=results)
    z_atol = z_atol + _carried(x_atol, x64) @ np.abs(w64).T + np.abs(x64) @ _carried(weight_atol, w64).T
    z_atol = z_atol + (0 if bias is None else _carried(bias_atol, bias))
    out = _activation(z, activation)
    own = SAFETY / 2 * results * ACTIVATION_ULPS[activation] * eps(dtype) * np.abs(out)
    return out, z, ACTIVATION_SLOPE[activation] * z_atol + own


def linear_act_backward_atol(
    x,
    weight,
    bias,
    activation,
    grad,
    *,
    x_atol=0.0,
    weight_atol=0.0,
    bias_atol=0.0,
    grad_atol=0.0,
    dtype=None,
    results=2,
):
    """Reference gradients of act(x @ weight.T + bias) for upstream `grad`, with their tolerances.

    Returns {"x": (dx, atol), "weight": (dW, atol), "bias": (db, atol)}. dz = grad·act'(out):
    act' moves with out (sigmoid: |1 - 2·out| <= 1, tanh: 2|out| per unit of out's error)
    and rounds 3 times; relu's mask is exact, except at a unit whose z is within its error
    of 0, where either side of the kink is right, so the whole grad is allowed there. Then
    dx = dz W, dW = dzᵀ x, db = Σ dz: their bounds plus the carried errors.
    """
    dtype = _dtype_of(x, weight, bias, dtype=dtype)
    f = eps(dtype)
    carried = {"x_atol": x_atol, "weight_atol": weight_atol, "bias_atol": bias_atol}
    out, z, out_atol = linear_act_forward_atol(x, weight, bias, activation, **carried, dtype=dtype, results=results)
    z_atol = out_atol if activation in (None, "relu") else None
    g = np.asarray(grad, np.float64)
    x64, w64 = np.asarray(x, np.float64), np.asarray(weight, np.float64)
    if activation is None:
        slope, slope_atol, rounding = 1.0, 0.0, 0.0
    elif activation == "relu":
        slope, slope_atol, rounding = (z > 0).astype(np.float64), 0.0, 0.0
    elif activation == "sigmoid":
        slope = out * (1 - out)
        slope_atol, rounding = np.abs(1 - 2 * out) * out_atol, 3 * f * (slope + out * out)
    else:
        slope = 1 - out * out
        slope_atol, rounding = 2 * np.abs(out) * out_atol, 3 * f * (np.abs(slope) + out * out)
    dz = g * slope
    dz_atol = np.abs(g) * (slope_atol + SAFETY / 2 * results * rounding) + np.asarray(grad_atol) * np.abs(slope)
    if activation == "relu":
        dz_atol = np.where(np.abs(z) <= z_atol, np.abs(g) + np.asarray(grad_atol) + dz_atol, dz_atol)
    dx_atol = matmul_atol(dz, w64, dtype=dtype, results=results) + dz_atol @ np.abs(w64)
    dx_atol = dx_atol + np.abs(dz) @ _carried(weight_atol, w64)
    dw_atol = matmul_atol(dz.T, x64, dtype=dtype, results=results) + dz_atol.T @ np.abs(x64)
    dw_atol = dw_atol + np.abs(dz).T @ _carried(x_atol, x64)
    db_atol = sum_atol(dz, axis=0, dtype=dtype, results=results) + dz_atol.sum(axis=0)
    return {"x": (dz @ w64, dx_atol), "weight": (dz.T @ x64, dw_atol), "bias": (dz.sum(axis=0), db_atol)}


def cross_entropy_atol(logits, targets, *, logits_atol=0.0, dtype=None, results=2):
    """(loss, loss_atol, dlogits, dlogits_atol) for the mean cross-entropy of logits (N, C).

    A row's loss, logsumexp(z) - z[t], rounds C + 2 transcendentals + 3 times relative to
    |logsumexp| + |z[t]|, and moves at most 2·max|dz| with its logits (both parts are
    1-Lipschitz in the max norm); the mean adds N roundings. softmax p rounds C + 1
    transcendental + 2 times relative to p and moves at most 2·p·max|dz|;
    dlogits = (p - onehot)/N adds 2 roundings.
    """
    z = np.asarray(logits, np.float64)
    dtype = _dtype_of(logits, dtype=dtype)
    f, scale = eps(dtype), SAFETY / 2 * results
    n, c = z.shape
    rows = np.arange(n)
    shifted = z - z.max(axis=1, keepdims=True)
    lse = z.max(axis=1) + np.log(np.exp(shifted).sum(axis=1))
    row_loss = lse - z[rows, targets]
    z_err = np.broadcast_to(np.asarray(logits_atol, np.float64), z.shape).max(axis=1)
    row_atol = scale * (c + 2 * TRANSCENDENTAL_ULPS + 3) * f * (np.abs(lse) + np.abs(z[rows, targets])) + 2 * z_err
    loss = row_loss.mean()
    loss_atol = row_atol.mean() + scale * (n + 1) * f * np.abs(row_loss).mean()
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    p_atol = scale * (c + TRANSCENDENTAL_ULPS + 2) * f * p + 2 * p * z_err[:, None]
    dlogits = p.copy()
    dlogits[rows, targets] -= 1
    dlogits /= n
    return loss, loss_atol, dlogits, p_atol / n + scale * 2 * f * np.abs(dlogits)


def assert_within(actual, expected, atol, what="", rtol=0.0):
    """Assert |actual - expected| <= atol + rtol·|expected| elementwise; on failure name the worst element.

    atol may be an array (from the bounds above) or a number. NaNs must match NaNs and
    infinities must match exactly. The message gives the worst element's index, both values,
    the difference, the bound and their ratio, so a failure says how far past the bound it is.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    a64, e64 = actual.astype(np.float64), expected.astype(np.float64)
    bound = np.broadcast_to(np.asarray(atol, dtype=np.float64) + rtol * np.abs(e64), a64.shape)
    same_special = (np.isnan(a64) & np.isnan(e64)) | (np.isinf(e64) & (a64 == e64))
    with np.errstate(invalid="ignore"):
        diff = np.where(same_special, 0.0, np.abs(a64 - e64))
        bound = np.where(same_special, np.inf, bound)  # rtol·inf or ·NaN says nothing there
    bad = ~(diff <= bound)  # NaN differences are failures
    if not bad.any():
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bound > 0, diff / bound, np.inf)
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.ndim else ()
    raise AssertionError(
        f"{what + ': ' if what else ''}{int(bad.sum())} of {bad.size} elements differ by more than the bound; "
        f"worst at index {tuple(int(i) for i in worst)}: got {float(a64[worst])!r}, expected {float(e64[worst])!r}, "
        f"|difference| {diff[worst]:.3e} > bound {bound[worst]:.3e} (ratio {ratio[worst]:.3g})"
    )
