"""The evaluation statistics, checked by simulation: 95% CIs cover the true mean in 93–97%
of 2,000 simulated runs (normal, skewed, binary and clustered rows), A/A comparisons call a
regression in at most 5% of 2,000, and a true difference equal to the reported minimum
detectable effect is found in at least 80% of 2,000. Then the edge cases: no rows, one
row, zero spread, rows only one run measured, each verdict, and never a NaN.

Every generator is seeded, so each figure is the same on every run. Simulations use 500
bootstrap resamples per run (the default is 2,000): the Monte Carlo error that adds to an
interval's ends is small next to the 2,000-run simulation error (±1% at 95% coverage).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from pydantic import BaseModel

from eval._stats import Comparison, Estimate, compare, estimate

RUNS = 2000
RESAMPLES = 500

Matrix = NDArray[np.float64]


def _values(matrix: Matrix) -> dict[str, list[float | None]]:
    """rows × repeats → ``values[row_id] = [v_repeat0, ...]``."""
    rows = matrix.reshape(len(matrix), -1)
    return {f"r{i}": [float(v) for v in row] for i, row in enumerate(rows)}


def _coverage(runs: Matrix, truth: float) -> float:
    """The share of runs (runs × rows × repeats) whose CI holds the true mean."""
    hits = 0
    for i, run in enumerate(runs):
        found = estimate(_values(run), resamples=RESAMPLES, seed=i)
        assert found.low is not None and found.high is not None
        hits += found.low <= truth <= found.high
    return hits / len(runs)


def _verdicts(baseline: Matrix, candidate: Matrix, *, binary: bool) -> dict[str, float]:
    """Share of each verdict over paired simulated runs (runs × rows)."""
    counts: dict[str, int] = {}
    for i, (base, cand) in enumerate(zip(baseline, candidate, strict=True)):
        found = compare(
            _values(base), _values(cand), metric="m", binary=binary, resamples=RESAMPLES, seed=i
        )
        counts[found.verdict] = counts.get(found.verdict, 0) + 1
    return {verdict: count / len(baseline) for verdict, count in counts.items()}


def _assert_finite(model: BaseModel) -> None:
    for name, value in model.model_dump().items():
        if isinstance(value, float):
            assert math.isfinite(value), (name, value)


# -- coverage of estimate() ------------------------------------------------------------


def test_ci_covers_the_mean_of_normal_rows() -> None:
    rng = np.random.default_rng(101)
    assert 0.93 <= _coverage(rng.normal(2.0, 1.0, size=(RUNS, 50, 1)), 2.0) <= 0.97


def test_ci_covers_the_mean_of_skewed_rows() -> None:
    # exponential (skewness 2): a percentile bootstrap covers about 92% here
    rng = np.random.default_rng(102)
    assert 0.93 <= _coverage(rng.exponential(1.0, size=(RUNS, 50, 1)), 1.0) <= 0.97


def test_ci_covers_a_binary_pass_rate() -> None:
    rng = np.random.default_rng(103)
    runs = (rng.random((RUNS, 100, 1)) < 0.7).astype(np.float64)
    assert 0.93 <= _coverage(runs, 0.7) <= 0.97


def test_clustered_ci_covers_where_a_naive_one_does_not() -> None:
    """Three repeats of a row share the row's difficulty (intra-row correlation 0.5): the
    150 values carry the information of about 100 independent ones, not 150."""
    rng = np.random.default_rng(104)
    rows = rng.normal(0.0, 1.0, size=(RUNS, 50, 1)) + rng.normal(0.0, 1.0, size=(RUNS, 50, 3))
    assert 0.93 <= _coverage(rows, 0.0) <= 0.97
    # the same values as 150 independent rows: the interval is too narrow
    assert _coverage(rows.reshape(RUNS, 150, 1), 0.0) < 0.88


def test_clustered_binary_ci_covers() -> None:
    """Pass/fail with repeats: each row has its own pass probability (Beta(2, 1))."""
    rng = np.random.default_rng(105)
    rates = rng.beta(2.0, 1.0, size=(RUNS, 100, 1))
    runs = (rng.random((RUNS, 100, 3)) < rates).astype(np.float64)
    assert 0.93 <= _coverage(runs, 2 / 3) <= 0.97


# -- error rates and power of compare() ------------------------------------------------


def _paired_continuous(rng: np.random.Generator, shift: float) -> tuple[Matrix, Matrix]:
    """Runs × 50 rows: a shared row difficulty, then each run's own noise (exponential,
    so the differences are not normal), the candidate shifted by ``shift``."""
    rows = rng.normal(0.0, 1.0, size=(RUNS, 50))
    baseline = rows + rng.exponential(0.5, size=(RUNS, 50))
    return baseline, rows + rng.exponential(0.5, size=(RUNS, 50)) + shift


def _paired_binary(rng: np.random.Generator, diff: float) -> tuple[Matrix, Matrix]:
    """Runs × 200 rows at a 70% pass rate, 20% of rows discordant, ``diff`` of them more
    often in the candidate's favour."""
    gained, lost = (0.2 + diff) / 2, (0.2 - diff) / 2
    u = rng.random((RUNS, 200))
    both = (rng.random((RUNS, 200)) < 0.7).astype(np.float64)
    baseline = np.where(u < gained, 0.0, np.where(u < gained + lost, 1.0, both))
    candidate = np.where(u < gained, 1.0, np.where(u < gained + lost, 0.0, both))
    return baseline, candidate


def test_a_a_continuous_comparisons_rarely_call_a_regression() -> None:
    rates = _verdicts(*_paired_continuous(np.random.default_rng(201), 0.0), binary=False)
    assert rates.get("worse", 0.0) <= 0.05
    assert rates.get("better", 0.0) <= 0.05


def test_a_a_binary_comparisons_rarely_call_a_regression() -> None:
    rates = _verdicts(*_paired_binary(np.random.default_rng(202), 0.0), binary=True)
    assert rates.get("worse", 0.0) <= 0.05
    assert rates.get("better", 0.0) <= 0.05


def test_continuous_power_at_the_reported_mde() -> None:
    """The MDE reported for 50 rows whose differences have the simulation's SD (the
    difference of two exponential(0.5) noises: 0.5·√2) is found in ≥ 80% of runs."""
    rng = np.random.default_rng(203)
    noise = rng.normal(size=50)
    noise = (noise - noise.mean()) / noise.std(ddof=1) * 0.5 * math.sqrt(2)
    reference = compare(
        _values(np.zeros(50)), _values(noise), metric="m", binary=False, resamples=RESAMPLES
    )
    assert reference.mde is not None
    rates = _verdicts(*_paired_continuous(rng, reference.mde), binary=False)
    assert rates.get("better", 0.0) >= 0.80


def test_binary_power_at_the_reported_mde() -> None:
    """The MDE reported for 200 rows with the simulation's discordant rate (20%) is found
    by McNemar's test in ≥ 80% of runs."""
    split = np.array([1.0] * 20 + [0.0] * 20 + [1.0] * 160)
    reference = compare(
        _values(split), _values(np.roll(split, 20)), metric="m", binary=True
    )  # 20 rows lost, 20 gained, 160 concordant
    assert reference.test == "mcnemar" and reference.mde is not None
    rates = _verdicts(*_paired_binary(np.random.default_rng(204), reference.mde), binary=True)
    assert rates.get("better", 0.0) >= 0.80


# -- estimate(): edge cases ------------------------------------------------------------


def test_no_rows_and_no_measured_rows() -> None:
    assert estimate({}) == Estimate(mean=None, low=None, high=None, n=0, unmeasured=0)
    found = estimate({"a": [None, None], "b": [None]})
    assert (found.mean, found.low, found.high, found.n, found.unmeasured) == (
        None,
        None,
        None,
        0,
        3,
    )


def test_one_row_has_a_mean_but_no_interval() -> None:
    found = estimate({"a": [0.25, None, 0.75]})
    assert (found.mean, found.low, found.high, found.n, found.unmeasured) == (
        0.5,
        None,
        None,
        1,
        1,
    )


def test_row_means_weigh_rows_equally_and_unmeasured_values_are_counted() -> None:
    found = estimate({"a": [1.0, None, 3.0], "b": [4.0], "c": [None], "d": [0.0, 2.0]})
    assert found.mean == pytest.approx((2.0 + 4.0 + 1.0) / 3)
    assert (found.n, found.unmeasured) == (3, 2)
    assert found.mean is not None and found.low is not None and found.high is not None
    assert found.low < found.mean < found.high


def test_zero_spread_gives_a_point_interval() -> None:
    found = estimate({f"r{i}": [0.4, 0.4] for i in range(10)})
    assert (found.mean, found.low, found.high) == (0.4, 0.4, 0.4)


def test_a_binary_pass_rate_of_one_keeps_an_interval() -> None:
    # a bootstrap would collapse to [1, 1]; 30 passes out of 30 do not prove a rate of 1
    found = estimate({f"r{i}": [1.0] for i in range(30)})
    assert found.mean == 1.0 and found.high == 1.0
    assert found.low is not None and 0.8 < found.low < 0.95
    with_repeats = estimate({f"r{i}": [1.0, 1.0, 1.0] for i in range(30)})
    assert with_repeats.low == found.low  # repeats of a row are not new rows


def test_a_non_finite_value_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        estimate({"a": [1.0], "b": [math.nan]})
    with pytest.raises(ValueError, match="confidence"):
        estimate({"a": [1.0]}, confidence=95)


def test_estimate_is_deterministic_per_seed() -> None:
    values = _values(np.random.default_rng(301).exponential(size=(40, 2)))
    assert estimate(values, seed=7) == estimate(values, seed=7)
    assert estimate(values, seed=7) != estimate(values, seed=8)


# -- compare(): edge cases and verdicts ------------------------------------------------


def _cmp(
    baseline: list[float],
    candidate: list[float],
    *,
    binary: bool = False,
    higher_is_better: bool = True,
) -> Comparison:
    found = compare(
        _values(np.array(baseline)),
        _values(np.array(candidate)),
        metric="m",
        binary=binary,
        higher_is_better=higher_is_better,
    )
    _assert_finite(found)
    return found


def test_compare_with_no_or_one_paired_row_is_inconclusive() -> None:
    Values = dict[str, list[float | None]]
    cases: list[tuple[Values, Values]] = [
        ({}, {}),
        ({"a": [None]}, {"a": [1.0]}),
        ({"a": [1.0]}, {}),
    ]
    for baseline, candidate in cases:
        found = compare(baseline, candidate, metric="m", binary=False)
        assert found.n == 0 and found.verdict == "inconclusive"
        assert (found.diff, found.low, found.high, found.p_value, found.mde) == (None,) * 5
    one = compare({"a": [1.0]}, {"a": [0.0]}, metric="m", binary=True)
    assert (one.n, one.diff, one.verdict) == (1, -1.0, "inconclusive")
    assert (one.low, one.high, one.p_value, one.mde) == (None,) * 4


def test_only_rows_measured_by_both_runs_are_paired() -> None:
    baseline: dict[str, list[float | None]] = {
        "a": [1.0],
        "b": [2.0],
        "c": [3.0],
        "d": [None],
        "only-base": [100.0],
    }
    candidate: dict[str, list[float | None]] = {
        "a": [1.5],
        "b": [2.0],
        "c": [3.7],
        "d": [9.0],
        "only-cand": [-100.0],
    }
    found = compare(baseline, candidate, metric="m", binary=False)
    assert found.n == 3
    assert found.baseline == pytest.approx(2.0)
    assert found.candidate == pytest.approx(7.2 / 3)
    assert found.diff == pytest.approx(0.4)


def test_identical_runs_are_no_difference_only_with_enough_rows() -> None:
    """Zero spread: p 1.0, CI [0, 0]; the MDE is 0.0 once a sign test could reach alpha
    (6 rows), so 5 identical rows (or 3 nearly identical) stay inconclusive, not a pass."""
    same = _cmp([0.5] * 10, [0.5] * 10)
    assert (same.diff, same.low, same.high, same.p_value, same.mde) == (0.0, 0.0, 0.0, 1.0, 0.0)
    assert same.verdict == "no-difference"
    few = _cmp([0.5] * 5, [0.5] * 5)
    assert (few.p_value, few.mde, few.verdict) == (1.0, None, "inconclusive")
    nearly = _cmp([0.0, 0.0, 0.0], [0.0, 0.0, 1e-300])
    assert (nearly.mde, nearly.verdict) == (None, "inconclusive")


def test_a_constant_shift_is_significant_by_the_sign_test() -> None:
    shifted = _cmp([0.5] * 8, [0.75] * 8)
    assert (shifted.diff, shifted.low, shifted.high) == (0.25, 0.25, 0.25)
    assert shifted.p_value == 2 * 0.5**8 and shifted.verdict == "better"
    assert _cmp([0.5] * 5, [0.75] * 5).verdict == "inconclusive"  # p = 1/16


def test_verdicts_and_the_direction_of_good() -> None:
    rng = np.random.default_rng(401)
    base = rng.normal(0.5, 0.2, size=200)
    up = base + 0.1 + rng.normal(0.0, 0.05, size=200)
    assert _cmp(list(base), list(up)).verdict == "better"
    assert _cmp(list(up), list(base)).verdict == "worse"
    # lower is better (latency, cost): the same differences flip
    assert _cmp(list(base), list(up), higher_is_better=False).verdict == "worse"
    assert _cmp(list(up), list(base), higher_is_better=False).verdict == "better"
    found = _cmp(list(base), list(up))
    assert found.low is not None and found.high is not None and found.diff is not None
    assert 0.0 < found.low < found.diff < found.high
    assert found.p_value is not None
    assert found.p_value < 0.05


def test_no_difference_needs_a_small_mde() -> None:
    noise = np.random.default_rng(402).normal(0.0, 0.1, size=200)
    base = np.linspace(0.2, 0.8, 400)
    found = _cmp(list(base), list(base + np.concatenate([noise, -noise])))
    assert found.p_value is not None and found.p_value > 0.5
    assert found.mde is not None and found.mde < found.margin
    assert found.verdict == "no-difference"


def test_a_small_noisy_sample_is_inconclusive_not_a_pass() -> None:
    """Eight rows, a drop of 0.16 (three times the margin), not significant: the sample
    could not have seen a 0.05 difference, so it is not reported as one."""
    base = [0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6]
    moves = [-0.3, 0.4, -0.6, -0.1, -0.5, 0.2, -0.4, 0.0]
    found = _cmp(base, [b + m for b, m in zip(base, moves, strict=True)])
    assert found.diff == pytest.approx(-0.1625)
    assert found.p_value is not None and found.p_value >= 0.05
    assert found.mde is not None and found.mde > found.margin
    assert found.verdict == "inconclusive"


def test_binary_comparisons_use_mcnemar() -> None:
    base = [1.0] * 60 + [0.0] * 40
    better = [1.0] * 60 + [1.0] * 25 + [0.0] * 15  # 25 gained, none lost
    found = _cmp(base, better, binary=True)
    assert found.test == "mcnemar" and found.diff == pytest.approx(0.25)
    assert found.p_value == pytest.approx(2 * 0.5**25)
    assert found.low is not None and found.high is not None
    assert found.low < 0.25 < found.high <= 1.0
    assert found.verdict == "better"
    assert _cmp(better, base, binary=True).verdict == "worse"
    assert _cmp(better, base, binary=True, higher_is_better=False).verdict == "better"


def test_binary_runs_that_agree_on_every_row() -> None:
    """No discordant row: p 1.0; 200 rows are enough to rule out a 0.05 difference, 20 are
    not (the MDE uses an upper bound of the discordant rate, not its observed 0) and 5 can
    detect nothing at all."""
    many = _cmp([1.0] * 150 + [0.0] * 50, [1.0] * 150 + [0.0] * 50, binary=True)
    assert (many.p_value, many.verdict) == (1.0, "no-difference")
    assert many.mde is not None and many.mde < 0.05
    few = _cmp([1.0] * 5, [1.0] * 5, binary=True)
    assert (few.p_value, few.mde, few.verdict) == (1.0, None, "inconclusive")
    some = _cmp([1.0] * 20, [1.0] * 20, binary=True)
    assert some.mde is not None and some.mde > 0.05 and some.verdict == "inconclusive"


def test_binary_with_repeats_falls_back_to_the_paired_bootstrap() -> None:
    rng = np.random.default_rng(403)
    base = (rng.random((80, 3)) < 0.6).astype(np.float64)
    cand = (rng.random((80, 3)) < 0.6).astype(np.float64)
    found = compare(_values(base), _values(cand), metric="m", binary=True)
    assert found.test == "paired-bootstrap"
    assert found.diff == pytest.approx(float(np.mean(cand.mean(1) - base.mean(1))))
    _assert_finite(found)


def test_compare_is_deterministic_per_seed() -> None:
    rng = np.random.default_rng(404)
    base, cand = _values(rng.normal(size=(30, 2))), _values(rng.normal(size=(30, 2)))
    first = compare(base, cand, metric="m", binary=False, seed=3)
    assert first == compare(base, cand, metric="m", binary=False, seed=3)
    assert first != compare(base, cand, metric="m", binary=False, seed=4)


@pytest.mark.parametrize(
    ("baseline", "candidate", "binary"),
    [
        ([0.0, 0.0], [0.0, 0.0], False),
        ([0.0, 0.0], [1.0, 1.0], True),
        ([0.0, 1.0], [1.0, 0.0], True),
        ([1.0, 2.0], [1.0, 2.0 + 1e-12], False),
        ([1e300, -1e300, 5.0], [1e300, -1e300, 6.0], False),
        ([0.0, 0.0, 0.0], [0.0, 0.0, 1e-300], False),
        ([0.0] * 99 + [1.0], [0.0] * 100, False),
        ([1.0] * 50, [0.0] * 50, True),
    ],
)
def test_never_nan(baseline: list[float], candidate: list[float], binary: bool) -> None:
    found = _cmp(baseline, candidate, binary=binary)
    for run in (baseline, candidate):
        _assert_finite(estimate(_values(np.array(run))))
    assert found.verdict in ("better", "worse", "no-difference", "inconclusive")


def test_intervals_are_cut_to_the_values_a_metric_can_take() -> None:
    values: dict[str, list[float | None]] = {
        str(i): [v] for i, v in enumerate([1.0, 1.0, 0.0, 0.5, 1.0, 0.0])
    }
    wide = estimate(values, binary=False)
    assert wide.low is not None and wide.high is not None
    assert wide.high > 1.0  # a t-interval of six rows reaches past a token F1's range
    cut = estimate(values, binary=False, bounds=(0.0, 1.0))
    assert cut.low == max(0.0, wide.low) and cut.high == 1.0
    assert cut.mean == wide.mean
    open_end = estimate(values, binary=False, bounds=(0.0, None))
    assert open_end.high == wide.high


def test_a_differences_interval_is_cut_to_what_two_bounded_scores_can_differ_by() -> None:
    base = {"a": [1.0], "b": [1.0]}
    cand = {"a": [0.0], "b": [0.5]}
    wide = compare(base, cand, metric="m", binary=False)
    assert wide.low is not None and wide.low < -1.0  # a t-interval of two rows
    cut = compare(base, cand, metric="m", binary=False, bounds=(0.0, 1.0))
    assert (cut.low, cut.high, cut.diff) == (-1.0, 1.0, wide.diff)
