"""The error bound on semantic hits (``cache/_bound.py``), as seeded simulations: streams of
verifier scores whose true probability of a wrong hit is known, a calibration fitted on a
held-out sample of them, and the share of wrong answers the bound lets through. Plus the
project options that set it (``cache.max_error``, ``cache.verifier``).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from cache import CacheOptions, ErrorBound, ErrorCurve, fit_curve
from cache._judge import check_max_error
from genai.errors import ValidationError


def true_error(score: float) -> float:
    """P(wrong | score) of the simulated traffic: 0.4 at score 0, 0 at score 1."""
    return 0.4 * (1 - score) ** 2


def sample(
    rng: random.Random, n: int, error: Callable[[float], float] = true_error
) -> list[tuple[float, bool]]:
    scores = [rng.random() for _ in range(n)]
    return [(s, rng.random() < error(s)) for s in scores]


def calibrated(seed: int = 1, n: int = 4000) -> ErrorBound:
    held_out = sample(random.Random(seed), n)
    return ErrorBound(fit_curve([s for s, _ in held_out], [w for _, w in held_out]))


def run(
    bound: ErrorBound,
    stream: list[tuple[float, bool]],
    max_error: float,
    *,
    project: int = 1,
    feedback: bool = False,
) -> tuple[int, int]:
    """Hits and wrong hits the bound lets through (each wrong hit reported, if asked)."""
    hits = wrong = 0
    for number, (score, is_wrong) in enumerate(stream):
        if bound.estimate(project, score) > max_error:
            continue
        hits += 1
        bound.hit(project, f"r{number}", score)
        if is_wrong:
            wrong += 1
            if feedback:
                assert bound.error(project, f"r{number}")
    return hits, wrong


def test_the_fitted_curve_never_rises_with_the_score_and_keeps_every_pair() -> None:
    pairs = sample(random.Random(3), 2000)
    curve = fit_curve([s for s, _ in pairs], [w for _, w in pairs])
    errors = [curve.p_wrong(i) for i in range(len(curve.edges))]
    assert errors == sorted(errors, reverse=True)
    assert sum(curve.counts) == 2000 and sum(curve.wrong) == sum(w for _, w in pairs)
    assert ErrorCurve.from_dict(curve.to_dict()) == curve
    assert curve.p_wrong(len(curve.edges) - 1) > 0  # never 0 from a finite sample


@pytest.mark.parametrize("max_error", [0.01, 0.02, 0.05])
def test_observed_error_stays_within_the_bound(max_error: float) -> None:
    bound = calibrated()
    stream = sample(random.Random(2), 20_000)
    hits, wrong = run(bound, stream, max_error)
    assert wrong / hits <= max_error
    # the bound answers, it does not just refuse: at least half as often as an oracle
    # that knew each hit's true error and answered wherever it is under the bound
    assert hits > 0.5 * sum(true_error(s) <= max_error for s, _ in stream)
    everything = sum(w for _, w in stream) / len(stream)
    assert everything > 2 * max_error  # without the bound the stream would break it


def test_a_tighter_bound_answers_less() -> None:
    stream = sample(random.Random(2), 5000)
    loose = run(calibrated(), stream, 0.05)[0]
    tight = run(calibrated(), stream, 0.01)[0]
    assert tight < loose


def test_feedback_brings_harder_traffic_back_within_the_bound() -> None:
    """Traffic six times as error-prone as the calibration: the bound alone breaks; with
    every wrong hit reported, the project's threshold rises until it holds again."""

    def harder(score: float) -> float:
        return min(1.0, 6 * true_error(score))

    max_error = 0.02
    stream = sample(random.Random(4), 30_000, harder)
    blind = calibrated()
    hits, wrong = run(blind, stream, max_error)
    assert wrong / hits > max_error

    bound = calibrated()
    before = bound.threshold(1, max_error)
    first, _ = run(bound, stream[:15_000], max_error, feedback=True)
    hits, wrong = run(bound, stream[15_000:], max_error, feedback=True)
    assert wrong / hits <= max_error
    after = bound.threshold(1, max_error)
    assert before is not None and after is not None and after > before
    assert bound.threshold(2, max_error) == before  # another project learns nothing
    stats = bound.stats(1)
    assert stats.hits == first + hits
    assert stats.reported_wrong > 0 and stats.observed_error > 0


def test_feedback_on_an_unknown_or_foreign_request_changes_nothing() -> None:
    bound = calibrated()
    bound.hit(1, "r1", 0.9)
    before = bound.estimate(1, 0.9)
    assert not bound.error(2, "r1")  # another project's id for the same request
    assert not bound.error(1, "nope")
    assert bound.estimate(1, 0.9) <= before
    assert bound.error(1, "r1") and not bound.error(1, "r1")  # once per request


def test_max_error_is_a_probability() -> None:
    for wrong in (0, 1, 1.5, -0.1):
        with pytest.raises(ValidationError, match="max_error"):
            check_max_error(wrong)
    check_max_error(0.02)
    check_max_error(None)


def test_the_project_option_sets_the_bound_and_the_verifier() -> None:
    options = CacheOptions.parse(
        '{"enabled": true, "max_error": 0.02, '
        '"deployments": {"drafts": {"verifier": false}, "legal": {"max_error": 0.005}}}'
    )
    chat = options.settings("chat")
    assert chat is not None and chat.verifier and chat.max_error == 0.02
    drafts = options.settings("drafts")
    assert drafts is not None and not drafts.verifier and drafts.max_error is None
    legal = options.settings("legal")
    assert legal is not None and legal.max_error == 0.005
    assert CacheOptions.parse(options.to_json()) == options
    plain = CacheOptions.parse(True).settings("chat")
    assert plain is not None and not plain.verifier and plain.max_error is None  # off
    asked = CacheOptions.parse('{"enabled": true, "verifier": true}').settings("chat")
    assert asked is not None and asked.verifier and asked.max_error is None


@pytest.mark.parametrize(
    "raw",
    [
        '{"enabled": true, "max_error": 0}',
        '{"enabled": true, "max_error": 1}',
        '{"enabled": true, "max_error": "low"}',
        '{"enabled": true, "verifier": "yes"}',
        '{"enabled": true, "verifier": false, "max_error": 0.02}',
    ],
)
def test_a_bad_bound_option_names_the_problem(raw: str) -> None:
    with pytest.raises(ValidationError, match=r"cache\.(max_error|verifier)"):
        CacheOptions.parse(raw, project="support")
