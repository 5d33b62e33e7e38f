"""The error bound's evidence (``cache/_evidence.py``): labelled errors from feedback and
re-checks move a project's estimates and no other's, a shared store is read again after its
TTL (an injected clock), the observed error rate has a Wilson interval, and the project
option ``cache.recheck_rate`` parses and is checked.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from cache import CacheOptions, ErrorBound, ErrorCurve
from cache._evidence import EvidenceRows, MemoryEvidence, wilson
from genai.errors import ValidationError

CURVE = ErrorCurve(edges=(0.0, 0.5, 0.9), counts=(100, 100, 100), wrong=(30, 5, 1))


class SharedEvidence(MemoryEvidence):
    """Evidence another process writes too: an add is seen only after a read of the store
    (``live`` is False), and reads are counted."""

    live = False

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, project_id: int, curve: str) -> EvidenceRows:
        self.reads += 1
        return super().read(project_id, curve)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_labelled_error_raises_that_projects_estimate_only() -> None:
    bound = ErrorBound(CURVE, prior_weight=10)
    before = bound.estimate(1, 0.95)
    bound.hit(1, "", 0.95, deployment="chat")
    bound.wrong(1, 0.95, deployment="chat")
    assert bound.estimate(1, 0.95) > before
    assert bound.estimate(2, 0.95) == before  # another project learns nothing
    assert bound.estimate(1, 0.2) >= bound.estimate(1, 0.95)  # lower scores tighten too
    stats = bound.stats(1)
    assert (stats.hits, stats.reported_wrong, stats.labelled_wrong) == (1, 1, 1)
    assert bound.stats(2).hits == 0


def test_a_recheck_that_disagrees_is_a_labelled_error_and_one_that_agrees_is_not() -> None:
    bound = ErrorBound(CURVE, prior_weight=10)
    before = bound.estimate(1, 0.6)
    for _ in range(3):
        bound.hit(1, "", 0.6, deployment="chat")
    bound.rechecked(1, 0.6, wrong=False, deployment="chat")
    agreed = bound.estimate(1, 0.6)
    assert agreed < before  # three hits nobody labelled wrong
    bound.rechecked(1, 0.6, wrong=True, deployment="chat")
    assert bound.estimate(1, 0.6) > agreed
    stats = bound.deployment_stats(1)["chat"]
    assert (stats.hits, stats.rechecked, stats.recheck_wrong, stats.reported_wrong) == (3, 2, 1, 0)
    assert stats.observed_error == pytest.approx(1 / 3)
    assert stats.recheck_interval[0] < 0.5 < stats.recheck_interval[1]


def test_the_estimates_are_pooled_over_deployments_and_reported_per_deployment() -> None:
    bound = ErrorBound(CURVE, prior_weight=10)
    bound.hit(1, "", 0.95, deployment="chat")
    bound.hit(1, "", 0.95, deployment="legal")
    bound.wrong(1, 0.95, deployment="legal")
    per = bound.deployment_stats(1)
    assert set(per) == {"chat", "legal"}
    assert (per["chat"].hits, per["chat"].labelled_wrong) == (1, 0)
    assert (per["legal"].hits, per["legal"].labelled_wrong) == (1, 1)
    assert bound.stats(1).hits == 2


def test_shared_evidence_is_read_again_after_its_ttl_and_at_once_after_a_label() -> None:
    evidence, clock = SharedEvidence(), Clock()
    mine = ErrorBound(CURVE, prior_weight=10, evidence=evidence, ttl_s=10.0, clock=clock)
    other = ErrorBound(CURVE, prior_weight=10, evidence=evidence, ttl_s=10.0, clock=clock)
    before = mine.estimate(1, 0.95)
    other.hit(1, "", 0.95, deployment="chat")
    other.wrong(1, 0.95, deployment="chat")  # another process's feedback
    reads = evidence.reads
    assert mine.estimate(1, 0.95) == before  # trusted for ttl_s
    assert evidence.reads == reads  # from memory: no read on the hot path
    clock.now += 10.0
    assert mine.estimate(1, 0.95) > before
    assert evidence.reads == reads + 1
    mine.wrong(1, 0.95, deployment="chat")  # its own label: read back at once
    assert mine.stats(1).reported_wrong == 2


def test_a_bound_built_without_a_store_takes_the_caches() -> None:
    shared = SharedEvidence()
    bound = ErrorBound(CURVE)
    bound.share(shared)
    assert bound.evidence is shared and bound.shared
    own = SharedEvidence()
    given = ErrorBound(CURVE, evidence=own)
    given.share(shared)
    assert given.evidence is own  # built with a store of its own: kept


def test_request_memory_still_finds_a_hit_once() -> None:
    bound = ErrorBound(CURVE)
    bound.hit(1, "r1", 0.95, deployment="chat")
    assert not bound.error(2, "r1")
    assert bound.error(1, "r1") and not bound.error(1, "r1")
    assert bound.deployment_stats(1)["chat"].reported_wrong == 1


def test_the_curve_digest_names_its_blocks() -> None:
    assert CURVE.digest() == ErrorCurve.from_dict(CURVE.to_dict()).digest()
    other = ErrorCurve(edges=(0.0, 0.5), counts=(10, 10), wrong=(3, 1))
    assert other.digest() != CURVE.digest() and len(CURVE.digest()) == 32


def test_wilson_interval() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(2, 100)
    assert 0.005 < low < 0.02 < high < 0.075
    low, high = wilson(0, 50)
    assert low == 0.0 and 0 < high < 0.1


def test_recheck_rate_option() -> None:
    options = CacheOptions.parse(
        '{"enabled": true, "max_error": 0.02, "recheck_rate": 0.05, '
        '"deployments": {"drafts": {"recheck_rate": 0}}}'
    )
    chat, drafts = options.settings("chat"), options.settings("drafts")
    assert chat is not None and chat.recheck_rate == 0.05
    assert drafts is not None and drafts.recheck_rate == 0.0
    assert CacheOptions.parse(options.to_json()) == options
    plain = CacheOptions.parse('{"enabled": true}').settings("chat")
    assert plain is not None and plain.recheck_rate == 0.0
    # without the verifier no hit is judged: the rate is 0 there
    off = CacheOptions.parse('{"enabled": true, "recheck_rate": 0.5}').settings("chat")
    assert off is not None and off.recheck_rate == 0.0


@pytest.mark.parametrize(
    "raw",
    [
        '{"enabled": true, "recheck_rate": 1.5}',
        '{"enabled": true, "recheck_rate": -0.1}',
        '{"enabled": true, "recheck_rate": "often"}',
        '{"enabled": true, "verifier": false, "recheck_rate": 0.1}',
    ],
)
def test_a_bad_recheck_rate_names_the_problem(raw: str) -> None:
    with pytest.raises(ValidationError, match=r"cache\.recheck_rate"):
        CacheOptions.parse(raw, project="support")


def test_calibrate_verifier_reports_rules_verifier_and_bound() -> None:
    from cache import calibrate_verifier
    from cache._calibrate import LabelledPair

    class ByText:
        def same(self, query: str, candidates: Sequence[str]) -> list[float]:
            return [0.95 if "open" in query else 0.3 for _ in candidates]

    pairs = [
        LabelledPair("how can I open an account", "How do I open an account?", True),
        LabelledPair("how can I open an account now", "How do I open an account?", True),
        LabelledPair("what is the premium price", "Price of the premium plan?", False),
        LabelledPair("where is the branch", "What are your hours?", False),
    ]
    report = calibrate_verifier(
        pairs,
        scorer=ByText(),
        curve=CURVE,
        threshold=0.7,
        scores=[0.9, 0.85, 0.8, 0.2],
        max_errors=(0.2, 0.001),
    )
    assert report.reached_verifier == 3 and report.positives == 2
    rules, verified, loose, strict = report.rows
    assert (rules.hits, rules.false_hits) == (3, 1)
    assert (verified.hits, verified.false_hits, verified.precision) == (2, 0, 1.0)
    assert verified.hit_rate == 0.5 and verified.recall == 1.0
    assert (loose.max_error, loose.hits) == (0.2, 2)
    assert (strict.max_error, strict.hits, strict.precision) == (0.001, 0, 1.0)
    with pytest.raises(ValidationError, match="max_error"):
        calibrate_verifier(
            pairs, scorer=ByText(), curve=CURVE, threshold=0.7, scores=[0.9] * 4, max_errors=(1.5,)
        )
