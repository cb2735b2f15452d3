"""Exact (Clopper-Pearson) confidence bounds for a proportion near 1, such as a sensitivity.

Computed from the binomial distribution of the misses, so it stays exact and cheap when a
sample of thousands holds only a handful of misses.
"""

from __future__ import annotations

import math

_ITERATIONS = 80  #: bisection steps: far below float resolution


def _log_pmf(n: int, k: int, q: float) -> float:
    if q <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if q >= 1.0:
        return 0.0 if k == n else -math.inf
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(q)
        + (n - k) * math.log1p(-q)
    )


def _misses_at_most(n: int, f: int, q: float) -> float:
    """P(F ≤ f) for F ~ Binomial(n, q): at most f misses when each is missed with rate q."""
    return min(1.0, sum(math.exp(_log_pmf(n, j, q)) for j in range(f + 1)))


def proportion_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The two-sided exact interval for successes/n at `level` (0.95: 95 %)."""
    if n <= 0:
        return 0.0, 1.0
    alpha = (1.0 - level) / 2
    f = n - successes
    lower = 0.0
    if successes > 0:
        # The smallest p with P(X ≥ successes | p) ≥ alpha, i.e. P(F ≤ f | 1 - p) ≥ alpha.
        lo, hi = 0.0, 1.0
        for _ in range(_ITERATIONS):
            mid = (lo + hi) / 2
            if _misses_at_most(n, f, 1.0 - mid) >= alpha:
                hi = mid
            else:
                lo = mid
        lower = hi
    upper = 1.0
    if f > 0:
        # The largest p with P(X ≤ successes | p) ≥ alpha, i.e. P(F ≥ f | 1 - p) ≥ alpha.
        lo, hi = 0.0, 1.0
        for _ in range(_ITERATIONS):
            mid = (lo + hi) / 2
            if 1.0 - _misses_at_most(n, f - 1, 1.0 - mid) >= alpha:
                lo = mid
            else:
                hi = mid
        upper = lo
    return lower, upper


def positives_needed(target: float, level: float = 0.95) -> int:
    """How many positives, none missed, show sensitivity ≥ target at `level` (two-sided)."""
    alpha = (1.0 - level) / 2
    return math.ceil(math.log(alpha) / math.log(target))
