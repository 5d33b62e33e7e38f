"""Unpaired comparisons (a canary's two arms), checked by simulation: A/A comparisons call a
regression in at most 5% of 2,000 runs (skewed continuous scores, and pass/fail), a true
difference equal to the reported minimum detectable effect is found in at least 80% of
2,000; Fisher's p-value is the textbook one. Then the edge cases: empty and tiny arms,
zero spread, the direction of good, seeds, and never a NaN.

Every generator is seeded; simulations use 500 bootstrap resamples per run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from eval import Comparison, compare_independent

RUNS = 2000
RESAMPLES = 500

Matrix = NDArray[np.float64]


def _verdicts(baseline: Matrix, candidate: Matrix) -> dict[str, float]:
    """Share of each verdict over simulated runs (runs × values per arm)."""
    counts: dict[str, int] = {}
    for i, (base, cand) in enumerate(zip(baseline, candidate, strict=True)):
        found = compare_independent(list(base), list(cand), metric="m", resamples=RESAMPLES, seed=i)
        counts[found.verdict] = counts.get(found.verdict, 0) + 1
    return {verdict: count / len(baseline) for verdict, count in counts.items()}


def _assert_finite(found: Comparison) -> None:
    for name, value in found.model_dump().items():
        if isinstance(value, float):
            assert math.isfinite(value), (name, value)


# -- error rates and power ---------------------------------------------------------------


def _skewed(rng: np.random.Generator, n: tuple[int, int], shift: float) -> tuple[Matrix, Matrix]:
    """Runs × n arms of exponential(0.5) scores (skewed), the candidate's shifted."""
    return (
        rng.exponential(0.5, size=(RUNS, n[0])),
        rng.exponential(0.5, size=(RUNS, n[1])) + shift,
    )


def _pass_fail(
    rng: np.random.Generator, n: int, rates: tuple[float, float]
) -> tuple[Matrix, Matrix]:
    return (
        (rng.random((RUNS, n)) < rates[0]).astype(np.float64),
        (rng.random((RUNS, n)) < rates[1]).astype(np.float64),
    )


def test_a_a_continuous_comparisons_rarely_call_a_regression() -> None:
    rates = _verdicts(*_skewed(np.random.default_rng(301), (40, 25), 0.0))
    assert rates.get("worse", 0.0) <= 0.05
    assert rates.get("better", 0.0) <= 0.05


def test_a_a_binary_comparisons_rarely_call_a_regression() -> None:
    rates = _verdicts(*_pass_fail(np.random.default_rng(302), 80, (0.7, 0.7)))
    assert rates.get("worse", 0.0) <= 0.05
    assert rates.get("better", 0.0) <= 0.05


def test_continuous_power_at_the_reported_mde() -> None:
    """The MDE reported for two arms of 40 with the simulation's SD (0.5) is found in
    ≥ 80% of runs."""
    rng = np.random.default_rng(303)
    arm = rng.normal(size=40)
    arm = (arm - arm.mean()) / arm.std(ddof=1) * 0.5
    reference = compare_independent(list(arm), list(arm), metric="m", resamples=RESAMPLES)
    assert reference.test == "welch-bootstrap" and reference.mde is not None
    rates = _verdicts(*_skewed(rng, (40, 40), reference.mde))
    assert rates.get("better", 0.0) >= 0.80


def test_binary_power_at_the_reported_mde() -> None:
    """The MDE reported for two arms of 150 at a 70% pass rate is found by Fisher's test
    in ≥ 80% of runs."""
    arm = [1.0] * 105 + [0.0] * 45
    reference = compare_independent(arm, arm, metric="m")
    assert reference.test == "fisher" and reference.mde is not None
    rates = _verdicts(
        *_pass_fail(np.random.default_rng(304), 150, (0.7, min(1.0, 0.7 + reference.mde)))
    )
    assert rates.get("better", 0.0) >= 0.80


def test_fisher_p_value_is_the_textbook_one() -> None:
    # 3 of 10 pass on the baseline, 8 of 10 on the candidate: R's fisher.test gives 0.06978
    found = compare_independent([1.0] * 3 + [0.0] * 7, [1.0] * 8 + [0.0] * 2, metric="m")
    assert found.test == "fisher"
    assert found.p_value == pytest.approx(0.0697785, abs=1e-6)
    assert found.diff == pytest.approx(0.5)
    assert found.low is not None and found.high is not None
    assert found.low < 0.5 < found.high  # Newcombe's interval around the difference
    assert (found.n, found.n_baseline, found.n_candidate) == (20, 10, 10)


# -- edge cases -------------------------------------------------------------------------


def test_empty_or_single_value_arms_are_inconclusive_with_what_can_be_said() -> None:
    empty = compare_independent([], [0.5, 0.7], metric="m")
    assert (empty.baseline, empty.diff, empty.p_value, empty.verdict) == (
        None,
        None,
        None,
        "inconclusive",
    )
    assert empty.candidate == pytest.approx(0.6)
    one = compare_independent([0.2], [0.5, 0.7], metric="m")
    assert one.diff == pytest.approx(0.4)
    assert (one.low, one.p_value, one.mde, one.verdict) == (None, None, None, "inconclusive")


def test_arms_without_spread() -> None:
    same = compare_independent([0.8] * 10, [0.8] * 10, metric="m")
    assert (same.low, same.high, same.p_value, same.mde) == (0.0, 0.0, 1.0, 0.0)
    assert same.verdict == "no-difference"
    apart = compare_independent([0.8] * 10, [0.3] * 10, metric="m")
    assert apart.low == apart.high == pytest.approx(-0.5)
    assert apart.p_value == pytest.approx(2 / math.comb(20, 10))
    assert apart.verdict == "worse"


def test_too_few_values_are_never_a_pass() -> None:
    # three a side: even a complete separation has a permutation p of 2/20 = 0.1
    found = compare_independent([0.5] * 3, [0.5] * 3, metric="m")
    assert found.mde is None and found.verdict == "inconclusive"
    apart = compare_independent([0.5] * 3, [0.9] * 3, metric="m")
    assert apart.verdict == "inconclusive"


def test_the_direction_of_good() -> None:
    low, high = [0.1, 0.2, 0.15, 0.12] * 10, [0.8, 0.9, 0.85, 0.82] * 10
    assert compare_independent(low, high, metric="m").verdict == "better"
    assert compare_independent(high, low, metric="m").verdict == "worse"
    assert compare_independent(low, high, metric="m", higher_is_better=False).verdict == "worse"


def test_binary_is_found_from_the_values_or_told() -> None:
    assert compare_independent([0.0, 1.0] * 5, [1.0] * 10, metric="m").test == "fisher"
    told = compare_independent([0.0, 1.0] * 5, [1.0] * 10, metric="m", binary=False)
    assert told.test == "welch-bootstrap"
    mixed = compare_independent([0.0, 1.0] * 5, [0.5] * 10, metric="m", binary=True)
    assert mixed.test == "welch-bootstrap"  # not every value is 0 or 1


def test_deterministic_per_seed() -> None:
    rng = np.random.default_rng(7)
    base, cand = list(rng.normal(size=30)), list(rng.normal(size=30) + 0.1)
    first = compare_independent(base, cand, metric="m", seed=3)
    assert first == compare_independent(base, cand, metric="m", seed=3)
    assert first != compare_independent(base, cand, metric="m", seed=4)


def test_a_non_finite_value_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        compare_independent([0.1, float("nan")], [0.2, 0.3], metric="m")


@pytest.mark.parametrize(
    ("baseline", "candidate"),
    [
        ([0.0, 0.0], [0.0, 0.0]),
        ([0.0, 0.0], [1.0, 1.0]),
        ([0.0, 1.0], [1.0, 0.0]),
        ([1.0, 2.0], [1.0, 2.0 + 1e-12]),
        ([1e300, -1e300, 5.0, 2.0], [1e300, -1e300, 6.0, 1.0]),
        ([1e-300, 2e-300, 3e-300], [0.0, 0.0, 1e-300]),
        ([0.0] * 99 + [1.0], [0.0] * 100),
        ([1.0] * 50, [0.0] * 50),
        ([0.7] * 5, [0.7, 0.7, 0.7, 0.7, 0.7 + 1e-16]),
    ],
)
def test_never_nan(baseline: list[float], candidate: list[float]) -> None:
    found = compare_independent(baseline, candidate, metric="m")
    _assert_finite(found)
    assert found.verdict in ("better", "worse", "no-difference", "inconclusive")
