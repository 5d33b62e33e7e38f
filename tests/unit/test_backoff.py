"""How long the gateway waits before it retries a target: exponential backoff with jitter,
an upstream's short Retry-After honoured, a long one left to the caller.

The waits are computed, not timed: ``backoff`` is what the gateway sleeps for between two
attempts (tests/integration/test_gateway_resilience.py counts the attempts themselves).
"""

from __future__ import annotations

import random

import pytest

from genai.gateway._http import backoff


class FixedRandom(random.Random):
    """``random()`` always returns ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize("attempt", [0, 1, 2, 3])
def test_the_wait_doubles_with_each_attempt_within_half_and_one_and_a_half_times(
    attempt: int,
) -> None:
    base = 0.1 * 2**attempt
    assert backoff(0.1, attempt, None, FixedRandom(0.0)) == pytest.approx(0.5 * base)
    assert backoff(0.1, attempt, None, FixedRandom(0.5)) == pytest.approx(base)
    assert backoff(0.1, attempt, None, FixedRandom(0.999999)) == pytest.approx(1.5 * base)
    rng = random.Random(attempt)
    for _ in range(200):
        assert 0.5 * base <= backoff(0.1, attempt, None, rng) < 1.5 * base


def test_the_jitter_spreads_the_waits_of_concurrent_retries() -> None:
    rng = random.Random(7)
    waits = {backoff(0.1, 1, None, rng) for _ in range(50)}
    assert len(waits) == 50


@pytest.mark.parametrize("retry_after", [0.0, 1.0, 5.0])
def test_a_short_retry_after_of_the_upstream_is_waited_for_exactly(retry_after: float) -> None:
    assert backoff(0.001, 0, retry_after, FixedRandom(0.5)) == retry_after
    assert backoff(0.001, 3, retry_after, FixedRandom(0.5)) == retry_after


@pytest.mark.parametrize("retry_after", [5.5, 30.0, 3600.0])
def test_a_long_retry_after_is_not_waited_for_the_own_backoff_is(retry_after: float) -> None:
    """The caller gets it instead (as its own Retry-After), with the 502."""
    assert backoff(0.01, 0, retry_after, FixedRandom(0.5)) == pytest.approx(0.01)
    assert backoff(0.01, 2, retry_after, FixedRandom(0.5)) == pytest.approx(0.04)
