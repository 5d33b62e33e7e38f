"""Two independent samples compared: candidate minus baseline, unpaired.

A canary's arms answer different requests, so nothing pairs them: :func:`compare_independent`
takes each arm's values as they come (one per answer) and returns the same
:class:`~eval.Comparison` as the paired :func:`~eval.compare`, with the same verdicts
(``better``/``worse`` when significant; ``no-difference`` when not and the minimum
detectable effect is within the margin; ``inconclusive`` otherwise) and the same promises:
seeded, never NaN, never a pass on a handful of values.

- Continuous values: a studentized bootstrap of the difference of means (each arm
  resampled on its own; Welch's standard error in each resample, pooled with one pseudo-value
  at the arm's variance so that a resample of equal values never divides by zero), widened
  at either end to Welch's t (its Welch–Satterthwaite degrees of freedom, rounded down)
  where that is wider. The p-value inverts the interval (the larger of the bootstrap-t's and
  Welch's), so p < alpha exactly when the 1 − alpha interval leaves out 0.
  ``test="welch-bootstrap"``.
- Binary values (every value 0 or 1 in both arms): Fisher's exact test, two-sided (the
  tables no more likely than the one seen); the CI of the difference of proportions is
  Newcombe's hybrid score interval (his method 10: Wilson intervals of each arm
  combined), which does not collapse at a rate of 0 or 1. ``test="fisher"``.
- MDE at ``power``: (q_{1−α/2} + q_power)·SE, with the noise behind SE taken at its
  ``power``-level upper confidence bound (each arm's variance at its chi-square bound;
  for proportions, p(1−p) over the Wilson interval of the pooled rate), plus Yates's
  (1/n₁ + 1/n₂)/2 for the exact test's discreteness. 0.0 for continuous arms with no spread.
  None when the arms are too small for even a complete separation to reach alpha (a
  permutation p of 2/C(n₁+n₂, n₁)): no test could detect anything there.
- Both arms without spread: the CI is the point ``[d, d]``; p is 1 when d is 0, else the
  permutation test's 2/C(n₁+n₂, n₁).
- Fewer than 2 values in an arm: ``inconclusive`` with no CI, p-value or MDE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from eval._stats import (
    _CHUNK,
    _NORMAL,
    Array,
    Comparison,
    _Bootstrap,
    _check_levels,
    _chi2_quantile,
    _Stats,
    _t_quantile,
    _verdict,
    _wilson,
)

__all__ = ["compare_independent"]


def compare_independent(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    metric: str,
    binary: bool | None = None,
    higher_is_better: bool = True,
    margin: float = 0.05,
    alpha: float = 0.05,
    power: float = 0.8,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Candidate minus baseline, two independent samples (see the module docstring).
    ``binary`` None: Fisher's test when every value of both arms is 0 or 1."""
    _check_levels(alpha=alpha, power=power, resamples=resamples)
    b, c = _values(baseline, "baseline"), _values(candidate, "candidate")
    if binary is None:
        binary = bool(np.all(np.isin(b, (0.0, 1.0))) and np.all(np.isin(c, (0.0, 1.0))))
    fisher = binary and bool(np.all(np.isin(b, (0.0, 1.0))) and np.all(np.isin(c, (0.0, 1.0))))
    n1, n2 = len(b), len(c)
    stats = _Stats(None, None, None, None)
    if n1 >= 2 and n2 >= 2:
        if fisher:
            stats = _fisher(b, c, alpha=alpha, power=power)
        else:
            stats = _welch(b, c, alpha=alpha, power=power, resamples=resamples, seed=seed)
        if _separation_p(n1, n2) >= alpha:  # even a complete separation could not tell
            stats = _Stats(stats.low, stats.high, stats.p_value, None)
    diff = float(np.mean(c) - np.mean(b)) if n1 and n2 else None
    return Comparison(
        metric=metric,
        test="fisher" if fisher else "welch-bootstrap",
        n=n1 + n2,
        n_baseline=n1,
        n_candidate=n2,
        baseline=float(np.mean(b)) if n1 else None,
        candidate=float(np.mean(c)) if n2 else None,
        diff=diff,
        low=stats.low,
        high=stats.high,
        p_value=stats.p_value,
        mde=stats.mde,
        margin=margin,
        higher_is_better=higher_is_better,
        verdict=_verdict(diff, stats, alpha=alpha, margin=margin, higher=higher_is_better),
    )


def _values(values: Sequence[float], arm: str) -> Array:
    x = np.array([float(v) for v in values], dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{arm}: values must be finite")
    return x


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _separation_p(n1: int, n2: int) -> float:
    """The smallest two-sided p-value arms of these sizes can reach: a complete separation
    in a permutation test, 2/C(n1 + n2, n1)."""
    return min(1.0, 2.0 * math.exp(-_log_comb(n1 + n2, n1)))


# ------------------------------------------------------------------ continuous


@dataclass(frozen=True)
class _WelchBootstrap(_Bootstrap):
    """The bootstrap-t of a difference of means, at Welch's degrees of freedom."""

    df: int = 1

    @property
    def nu(self) -> int:
        return self.df


def _welch(b: Array, c: Array, *, alpha: float, power: float, resamples: int, seed: int) -> _Stats:
    scale = float(max(np.max(np.abs(b)), np.max(np.abs(c)))) or 1.0  # squares neither
    b, c = b / scale, c / scale  # underflow (1e-300) nor overflow (1e300)
    n1, n2 = len(b), len(c)
    v1, v2 = _var(b), _var(c)
    diff = float(np.mean(c) - np.mean(b))
    if v1 == 0.0 and v2 == 0.0:  # each arm says one thing
        p_value = 1.0 if diff == 0.0 else _separation_p(n1, n2)
        return _Stats(diff * scale, diff * scale, p_value, 0.0)
    boot = _welch_bootstrap(b, c, v1, v2, resamples=resamples, seed=seed)
    low, high = boot.interval(1.0 - alpha)
    v1_up = v1 * (n1 - 1) / _chi2_quantile(1.0 - power, n1 - 1)
    v2_up = v2 * (n2 - 1) / _chi2_quantile(1.0 - power, n2 - 1)
    se_bound = math.sqrt(v1_up / n1 + v2_up / n2)
    mde = (_t_quantile(1.0 - alpha / 2, boot.nu) + _t_quantile(power, boot.nu)) * se_bound
    return _Stats(low * scale, high * scale, boot.p_value(), mde * scale)


def _var(x: Array) -> float:
    """The sample variance; exactly 0.0 when every value is the same (no rounding dust)."""
    return float(np.var(x, ddof=1)) if np.ptp(x) > 0.0 else 0.0


def _welch_df(v1: float, n1: int, v2: float, n2: int) -> int:
    """Welch–Satterthwaite, rounded down (the cautious side), at least 1; one arm
    without spread leaves the other's n − 1."""
    a, b = v1 / n1, v2 / n2
    if a == 0.0 or b == 0.0:
        return max(1, (n2 if a == 0.0 else n1) - 1)
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    return max(1, math.floor(df))


def _welch_bootstrap(
    b: Array, c: Array, v1: float, v2: float, *, resamples: int, seed: int
) -> _WelchBootstrap:
    n1, n2 = len(b), len(c)
    diff = float(np.mean(c) - np.mean(b))
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK // (n1 + n2))
    parts: list[Array] = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        rb = b[rng.integers(0, n1, size=(size, n1))]
        rc = c[rng.integers(0, n2, size=(size, n2))]
        p1 = ((n1 - 1) * np.var(rb, axis=1, ddof=1) + v1) / n1  # + one pseudo-value
        p2 = ((n2 - 1) * np.var(rc, axis=1, ddof=1) + v2) / n2
        d_star = np.mean(rc, axis=1) - np.mean(rb, axis=1)
        parts.append((d_star - diff) / np.sqrt(p1 / n1 + p2 / n2))
    return _WelchBootstrap(
        n=n1 + n2,
        mean=diff,
        se=math.sqrt(v1 / n1 + v2 / n2),
        t_star=np.concatenate(parts),
        df=_welch_df(v1, n1, v2, n2),
    )


# ------------------------------------------------------------------ binary


def _fisher(b: Array, c: Array, *, alpha: float, power: float) -> _Stats:
    n1, n2 = len(b), len(c)
    k1, k2 = int(np.sum(b)), int(np.sum(c))
    p1, p2 = k1 / n1, k2 / n2
    z = _NORMAL.inv_cdf(1.0 - alpha / 2)
    l1, u1 = _wilson(p1, float(n1), z)
    l2, u2 = _wilson(p2, float(n2), z)
    d = p2 - p1
    low = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)  # Newcombe (1998), method 10
    high = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    z_power = _NORMAL.inv_cdf(power)
    lo, hi = _wilson((k1 + k2) / (n1 + n2), float(n1 + n2), z_power)
    spread = 0.25 if lo <= 0.5 <= hi else max(lo * (1 - lo), hi * (1 - hi))
    inv = 1.0 / n1 + 1.0 / n2
    mde = (z + z_power) * math.sqrt(spread * inv) + inv / 2  # + Yates: the exact test's steps
    return _Stats(max(-1.0, low), min(1.0, high), _fisher_p(k1, n1, k2, n2), mde)


def _fisher_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Fisher's exact two-sided p: the hypergeometric probability of every table with the
    same margins that is no more likely than the one seen."""
    total, hits = n1 + n2, k1 + k2
    x = np.arange(max(0, hits - n1), min(hits, n2) + 1)  # the candidate's successes
    log_fact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, total + 1)))))

    def log_comb(n: int, k: NDArray[np.int_]) -> Array:
        return np.asarray(log_fact[n] - log_fact[k] - log_fact[n - k], dtype=np.float64)

    log_pmf = log_comb(hits, x) + log_comb(total - hits, n2 - x) - log_fact[total]
    log_pmf = log_pmf + log_fact[n2] + log_fact[total - n2]
    seen = log_pmf[k2 - x[0]]
    extreme = log_pmf[log_pmf <= seen + 1e-7]
    top = float(np.max(extreme))
    return min(1.0, math.exp(top) * float(np.sum(np.exp(extreme - top))))
