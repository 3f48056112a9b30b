"""How long a worker's step takes in simulated time, and what the lectures' order statistics predict.

A compute model draws one step's compute time (seconds) from a worker's own random
generator. Four kinds:

    fixed:seconds=0.1                          every step the same
    lognormal:median=0.1,sigma=0.3             log-normal noise around a typical step
    straggler:median=0.1,sigma=0.1,p=0.02,slowdown=5,tail=1.5
                                               log-normal, but with probability p the step is a
                                               straggler: median·slowdown·Pareto(tail), a heavy
                                               tail (P(factor > x) = (slowdown/x)^tail)
    measured                                   one forward/backward of the real model, timed once
                                               on this machine (then fixed: runs stay deterministic)

Synchronous SGD waits for the slowest of N workers, so a step lasts the maximum of N
draws; with b backup workers it lasts the N-th fastest of N + b draws. Their expectations
are order statistics, computed here numerically from each model's distribution function:

    E[X_(k:n)] = ∫₀^∞ P(X_(k:n) > x) dx,   P(X_(k:n) > x) = P(fewer than k of n draws are ≤ x)
"""

import math

import numpy as np


class ComputeModel:
    """A distribution of step compute times: sample(rng, size), cdf(x), mean, spec (the string that makes it)."""

    name = "model"

    def sample(self, rng, size=None):
        raise NotImplementedError

    def cdf(self, x):
        raise NotImplementedError

    @property
    def mean(self):
        raise NotImplementedError

    def params(self):
        return {}

    @property
    def spec(self):
        """The string parse_compute() turns back into this model."""
        values = ",".join(f"{k}={v:g}" for k, v in self.params().items())
        return f"{self.name}:{values}" if values else self.name

    def upper(self, level):
        """A time x with 1 - cdf(x) <= level (an upper end for numerical integration)."""
        x = max(self.mean, 1e-12)
        while 1.0 - float(self.cdf(np.array([x]))[0]) > level:
            x *= 2.0
        return x

    def __repr__(self):
        return f"<compute {self.spec}, mean {self.mean:.4g} s>"


class Fixed(ComputeModel):
    """Every step takes `seconds`."""

    name = "fixed"

    def __init__(self, seconds=0.1):
        _check_positive("fixed", "seconds", seconds)
        self.seconds = float(seconds)

    def sample(self, rng, size=None):
        return self.seconds if size is None else np.full(size, self.seconds)

    def cdf(self, x):
        return (np.asarray(x, dtype=np.float64) >= self.seconds).astype(np.float64)

    @property
    def mean(self):
        return self.seconds

    def params(self):
        return {"seconds": self.seconds}

    def upper(self, level):
        return self.seconds


class LogNormal(ComputeModel):
    """median·e^(σ·Z), Z ~ N(0, 1): multiplicative noise, mean median·e^(σ²/2)."""

    name = "lognormal"

    def __init__(self, median=0.1, sigma=0.3):
        _check_positive("lognormal", "median", median)
        _check_positive("lognormal", "sigma", sigma, allow_zero=True)
        self.median, self.sigma = float(median), float(sigma)

    def sample(self, rng, size=None):
        return self.median * np.exp(self.sigma * rng.standard_normal(size))

    def cdf(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self.sigma == 0:
            return (x >= self.median).astype(np.float64)
        with np.errstate(divide="ignore"):
            z = (np.log(np.maximum(x, 0.0)) - math.log(self.median)) / self.sigma
        return 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))

    @property
    def mean(self):
        return self.median * math.exp(self.sigma**2 / 2)

    def params(self):
        return {"median": self.median, "sigma": self.sigma}


class Straggler(ComputeModel):
    """A heavy-tailed mixture: LogNormal(median, sigma) with probability 1 - p, else a straggler.

    A straggler's step takes median·slowdown·U^(-1/tail), U uniform in (0, 1]: a Pareto
    distribution starting at median·slowdown whose tail falls as x^(-tail) (tail ≤ 2: infinite
    variance; tail ≤ 1: infinite mean, refused). A machine busy with someone else's job, a
    garbage collection, a slow disk: rare, and sometimes very long.
    """

    name = "straggler"

    def __init__(self, median=0.1, sigma=0.1, p=0.02, slowdown=5.0, tail=1.5):
        _check_positive("straggler", "median", median)
        _check_positive("straggler", "sigma", sigma, allow_zero=True)
        if not 0 <= p <= 1:
            raise ValueError(f"compute model straggler: p must be in [0, 1], got {p}")
        if not slowdown >= 1:
            raise ValueError(f"compute model straggler: slowdown must be >= 1, got {slowdown}")
        if not tail > 1:
            raise ValueError(f"compute model straggler: tail must be > 1 (a finite mean), got {tail}")
        self.base = LogNormal(median, sigma)
        self.median, self.sigma, self.p = float(median), float(sigma), float(p)
        self.slowdown, self.tail = float(slowdown), float(tail)

    def sample(self, rng, size=None):
        # Draw all three numbers for every step (in the same order) so that the stream of draws
        # does not depend on which steps happened to straggle.
        base = self.base.sample(rng, size)
        straggles = rng.random(size) < self.p
        slow = self.median * self.slowdown * (1.0 - rng.random(size)) ** (-1.0 / self.tail)
        return np.where(straggles, slow, base) if size is not None else float(slow if straggles else base)

    def cdf(self, x):
        x = np.asarray(x, dtype=np.float64)
        start = self.median * self.slowdown
        with np.errstate(divide="ignore", invalid="ignore"):
            pareto = np.where(x >= start, 1.0 - (start / np.maximum(x, start)) ** self.tail, 0.0)
        return (1.0 - self.p) * self.base.cdf(x) + self.p * pareto

    @property
    def mean(self):
        return (1.0 - self.p) * self.base.mean + self.p * self.median * self.slowdown * self.tail / (self.tail - 1.0)

    def params(self):
        return {"median": self.median, "sigma": self.sigma, "p": self.p, "slowdown": self.slowdown, "tail": self.tail}


COMPUTE_MODELS = {"fixed": Fixed, "lognormal": LogNormal, "straggler": Straggler}


def describe_compute(model):
    """A compute model in words, for plot titles: 'steps of 100 ms (σ 0.1), 1% stragglers ≥ 4x slower (tail 2)'."""
    model = parse_compute(model)
    if isinstance(model, Fixed):
        return f"every step {model.seconds * 1000:g} ms"
    text = f"steps of {model.median * 1000:g} ms (log-normal σ {model.sigma:g})"
    if isinstance(model, Straggler):
        text += f", {model.p:.0%} stragglers ≥ {model.slowdown:g}x slower (Pareto tail {model.tail:g})"
    return text


def parse_compute(spec):
    """A ComputeModel from a spec string ('lognormal:median=0.1,sigma=0.3'), a dict or a model.

    'measured' is resolved by the simulation (it needs the model and the batch size), so it is
    returned as the string 'measured'; 'measured:seconds=...' is not a thing: use fixed.
    """
    if isinstance(spec, ComputeModel):
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("name", None)
        return _build(name, spec, repr(spec))
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"compute model: expected a string such as 'lognormal:median=0.1,sigma=0.3', got {spec!r}")
    text = spec.strip()
    if text == "measured":
        return "measured"
    name, _, rest = text.partition(":")
    values = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"compute model {spec!r}: expected key=value, got {item!r}")
        try:
            values[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"compute model {spec!r}: {key.strip()} must be a number, got {value!r}") from None
    return _build(name.strip(), values, repr(spec))


def _build(name, values, shown):
    if name not in COMPUTE_MODELS:
        raise ValueError(
            f"compute model {shown}: unknown kind {name!r}; expected one of {', '.join(COMPUTE_MODELS)} or 'measured'"
        )
    try:
        return COMPUTE_MODELS[name](**values)
    except TypeError:
        import inspect

        allowed = list(inspect.signature(COMPUTE_MODELS[name]).parameters)
        raise ValueError(f"compute model {shown}: {name} takes {', '.join(allowed)}") from None


def _check_positive(model, name, value, allow_zero=False):
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"compute model {model}: {name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


_erf_vector = np.vectorize(math.erf, otypes=[np.float64])


def _erf(z):
    return _erf_vector(z)


# ---------------------------------------------------------------------------
# Order statistics
# ---------------------------------------------------------------------------
def order_statistic_survival(model, k, n, x):
    """P(X_(k:n) > x): the k-th smallest of n independent draws exceeds x.

    That happens when at most k - 1 draws are ≤ x, i.e. at least n - k + 1 exceed it:
    Σ_{m=n-k+1}^{n} C(n, m) G^m F^(n-m), with F = cdf(x), G = 1 - F. Summed in log space
    (F^n underflows for large n) over the n - k + 1 terms (few: k is N of N + b).
    """
    if not 1 <= k <= n:
        raise ValueError(f"order statistic: need 1 <= k <= n, got k={k}, n={n}")
    F = np.clip(model.cdf(x), 0.0, 1.0)
    G = 1.0 - F
    with np.errstate(divide="ignore"):
        log_f, log_g = np.log(F), np.log(G)
    total = np.zeros_like(F)
    for m in range(n - k + 1, n + 1):  # m >= 1 draws above x, n - m below
        log_c = math.lgamma(n + 1) - math.lgamma(m + 1) - math.lgamma(n - m + 1)
        term = log_c + m * log_g + ((n - m) * log_f if n > m else 0.0)
        total += np.exp(term)
    return np.clip(total, 0.0, 1.0)


def expected_order_statistic(model, k, n, points=20001):
    """E[X_(k:n)], the expected k-th smallest of n draws, by numerical integration of its survival function.

    The integral ∫ S(x) dx runs over a log-spaced grid (x = e^u, dx = x du) from far below the
    smallest plausible step to where S < 1e-12, so heavy tails are covered; trapezoidal rule.
    """
    if isinstance(model, Fixed):
        return model.seconds
    top = model.upper(1e-13 / n)
    bottom = top * 1e-9
    u = np.linspace(math.log(bottom), math.log(top), points)
    x = np.exp(u)
    integrand = order_statistic_survival(model, k, n, x) * x
    return float(bottom + np.trapezoid(integrand, u))  # S(x) ≈ 1 below the grid


def expected_max(model, n):
    """E[max of n draws]: how long a synchronous step waits for the slowest of n workers."""
    return expected_order_statistic(model, n, n)
