"""Our side of a verdict as an interval over the seeds: an exact binomial (Clopper–Pearson) interval for a rate of
successes, an order-statistics interval for a median, and how many seeds would decide a question.

A published claim about runs ("0% of 100 runs perfect", "solved after 74,000 sequences on average") is a statement
about a distribution; our seeds are a sample of it, so what we can say is an interval, and the paper's number lies in
it or not (gradlab.study.judging). Exact and distribution-free: no normal approximation (5-20 seeds), no
assumption on the shape of a training's outcome. tests/test_stats.py holds them against closed forms and tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

LEVEL = 0.95  # every interval's coverage


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p), summed exactly (n is a number of seeds: small)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return math.fsum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))


def _solve(f, target: float) -> float:
    """The p in [0, 1] where the decreasing function f(p) crosses target, by bisection to 1e-13."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > target else (lo, mid)
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The exact two-sided interval for a rate from k successes in n trials: [lo, hi] with P(X ≥ k | lo) = α/2 and
    P(X ≤ k | hi) = α/2 (lo = 0 at k = 0, hi = 1 at k = n). Its coverage is at least `level` for every true rate."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"k={k} successes of n={n} trials: need 0 <= k <= n and n >= 1")
    alpha = 1 - level
    lo = 0.0 if k == 0 else _solve(lambda p: binomial_cdf(k - 1, n, p), 1 - alpha / 2)  # P(X ≥ k) = α/2
    hi = 1.0 if k == n else _solve(lambda p: binomial_cdf(k, n, p), alpha / 2)
    return lo, hi


def median_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float] | None:
    """(lo, hi, coverage) for the median from order statistics: the narrowest symmetric [x_(j), x_(n+1−j)] whose
    coverage 1 − 2·P(X ≤ j − 1), X ~ Binomial(n, 1/2), is at least `level` (distribution-free; a value may be
    +inf, a run that never solved within its budget). None when no such interval exists (n < 6 at 95%)."""
    xs, n = sorted(values), len(values)
    best = None
    for j in range(1, n // 2 + 1):
        coverage = 1 - 2 * binomial_cdf(j - 1, n, 0.5)
        if coverage >= level:
            best = (xs[j - 1], xs[n - j], coverage)
    return best


def seeds_to_decide(rate: float, theirs: float, other: float, level: float = LEVEL, most: int = 1000,
                    have: int = 0) -> int | None:
    """The fewest seeds n > have at which, with the observed rate held (k = round(rate·n)), the interval would no
    longer hold both the paper's rate and the other answer's: the size of a run that would decide the question. None
    when no n up to `most` does (the observed rate lies between the two, too close to tell)."""
    for n in range(have + 1, most + 1):
        lo, hi = clopper_pearson(round(rate * n), n, level)
        if not (lo <= theirs <= hi and lo <= other <= hi):
            return n
    return None
