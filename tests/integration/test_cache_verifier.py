"""The trained pair verifier shipped in ``cache/_verifier/``, for real (the bundled MiniLM
weights with the shipped adapter merged in): what it accepts and refuses on a small curated
set written here, the cache that asks it (after the lexical vetoes), the error bound fed by
feedback, tenancy, and the errors when the artefact is missing or does not fit its base.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cache import (
    ErrorBound,
    ErrorCurve,
    PairVerifier,
    Partition,
    SemanticCache,
    artefact_installed,
)
from cache._pair import ARTEFACT_DIR, META, WEIGHTS
from genai.errors import ConfigError, ValidationError
from genai.vectors import InMemoryVectorStore

pytestmark = pytest.mark.skipif(
    not artefact_installed(), reason="the trained verifier is not built (cache.train_verifier)"
)

PARAPHRASES = [
    ("How can I reset my password?", "How do I reset my password?"),
    ("What's the capital city of France?", "What is the capital of France?"),
    ("How can I cancel my subscription?", "How do I cancel my subscription?"),
    ("What are the steps to open an account?", "How do I open an account?"),
    ("Is it possible to change my delivery address?", "Can I change my delivery address?"),
]
# the same topic, another question: no lexical rule can see these
SAME_TOPIC = [
    ("How do I change my username?", "How do I reset my password?"),
    ("What is the population of France?", "What is the capital of France?"),
    ("How much does shipping cost?", "How long does shipping take?"),
    ("Where is the store located?", "When does the store open?"),
    ("How do I delete my account?", "How do I verify my account?"),
]
NEGATION = [
    ("Is the store not open on Sunday?", "Is the store open on Sunday?"),
    (
        "Does the plan not include international calls?",
        "Does the plan include international calls?",
    ),
    ("Can I return an item without a receipt?", "Can I return an item with a receipt?"),
]
ORDER = [
    ("Is 7 greater than 3?", "Is 3 greater than 7?"),
    ("How do I convert euros to dollars?", "How do I convert dollars to euros?"),
    ("Does Bob owe Alice money?", "Does Alice owe Bob money?"),
]


@pytest.fixture(scope="module")
def verifier() -> PairVerifier:
    made = PairVerifier(threads=1)
    made.warm()
    return made


@pytest.fixture
def cache(embedder: Any, verifier: PairVerifier) -> Iterator[SemanticCache]:
    made = SemanticCache(InMemoryVectorStore(), embedder, pair_verifier=verifier, threshold=0.5)
    yield made
    made.close()


def test_the_artefact_is_small_and_says_how_it_was_made() -> None:
    assert (ARTEFACT_DIR / WEIGHTS).stat().st_size < 2_000_000
    meta = json.loads((ARTEFACT_DIR / META).read_text())
    assert meta["seed"] == 13 and meta["command"] == "python -m cache.train_verifier"
    assert "test" in meta["data"]["never_read"]
    assert not any("test" in name for name in meta["data"]["held_out"])
    for held_out in ("mrpc_dev", "stsb_dev"):
        assert meta["metrics"][held_out]["all_pairs"]["auc"] > 0.75
    curve = ErrorCurve.from_dict(meta["calibration"])
    errors = [curve.p_wrong(i) for i in range(len(curve.edges))]
    assert errors == sorted(errors, reverse=True) and sum(curve.counts) > 400


def test_paraphrases_are_accepted_and_same_topic_questions_refused(
    verifier: PairVerifier,
) -> None:
    for query, cached in PARAPHRASES:
        assert verifier.same(query, [cached])[0] >= 0.5, (query, cached)
    for query, cached in SAME_TOPIC:
        assert verifier.same(query, [cached])[0] < 0.5, (query, cached)


def test_one_batch_scores_as_one_pair_at_a_time(verifier: PairVerifier) -> None:
    query = "How can I reset my password?"
    candidates = [c for _, c in PARAPHRASES[:2] + SAME_TOPIC[:2]]
    together = verifier.same(query, candidates)
    alone = [verifier.same(query, [c])[0] for c in candidates]
    assert together == pytest.approx(alone, abs=1e-4)


def test_the_cache_refuses_the_hard_cases_and_answers_paraphrases(
    cache: SemanticCache, embedder: Any
) -> None:
    """At a cosine threshold of 0.5 the rules alone answer same-topic questions; with the
    verifier (after the vetoes, which take negation and order) none is answered."""
    part = Partition(project_id=1, deployment="support")
    rules = SemanticCache(InMemoryVectorStore(), embedder, threshold=0.5)
    for project, (_, cached) in enumerate(PARAPHRASES + SAME_TOPIC + NEGATION + ORDER, 100):
        for made in (cache, rules):
            made.store(Partition(project_id=project, deployment="support"), cached, cached)
    for project, (query, cached) in enumerate(PARAPHRASES, 100):
        hit = cache.lookup(Partition(project_id=project, deployment="support"), query)
        assert hit is not None and hit.answer == cached, query
        assert hit.verifier_score is not None and hit.verifier_score >= 0.5
    start = 100 + len(PARAPHRASES)
    for project, (query, _) in enumerate(SAME_TOPIC + NEGATION + ORDER, start):
        assert cache.lookup(Partition(project_id=project, deployment="support"), query) is None
    rules_hits = sum(
        rules.lookup(Partition(project_id=project, deployment="support"), query) is not None
        for project, (query, _) in enumerate(SAME_TOPIC, start)
    )
    assert rules_hits >= 2  # the verifier, not the threshold, refused them
    assert cache.lookup(part, PARAPHRASES[0][0]) is None  # nothing stored in project 1
    rules.close()


def test_lookups_stay_inside_their_project(cache: SemanticCache) -> None:
    query, cached = PARAPHRASES[0]
    mine, theirs = (Partition(project_id=p, deployment="support") for p in (1, 2))
    cache.store(mine, cached, "answer of project 1")
    assert cache.lookup(theirs, query) is None
    assert cache.lookup(theirs, cached) is None
    hit = cache.lookup(mine, query, request_id="r1")
    assert hit is not None and hit.answer == "answer of project 1"


def test_feedback_on_a_verified_hit_tightens_that_project_only(
    embedder: Any, verifier: PairVerifier
) -> None:
    bound = ErrorBound(ErrorCurve.from_dict(verifier.artefact.calibration), prior_weight=5)
    cache = SemanticCache(
        InMemoryVectorStore(), embedder, pair_verifier=verifier, error_bound=bound
    )
    query, cached = PARAPHRASES[0]
    for project in (1, 2):
        cache.store(Partition(project_id=project, deployment="support"), cached, "a")
    hit = cache.lookup(
        Partition(project_id=1, deployment="support"), query, request_id="r1", max_error=0.5
    )
    assert hit is not None and hit.verifier_score is not None
    before = hit.estimated_error  # the project's estimate when it answered
    assert before is not None
    assert cache.feedback(1, "r1") == 1  # evicted, and counted against the bound
    after = bound.estimate(1, hit.verifier_score)
    assert after > before
    assert bound.estimate(2, hit.verifier_score) == before
    stats = cache.bound_stats(1)
    assert stats is not None and stats.hits == 1 and stats.reported_wrong == 1
    cache.close()


def test_a_bound_the_estimate_exceeds_turns_the_hit_into_a_miss(cache: SemanticCache) -> None:
    query, cached = PARAPHRASES[0]
    part = Partition(project_id=1, deployment="support")
    cache.store(part, cached, "a")
    hit = cache.lookup(part, query)
    assert hit is not None and hit.estimated_error is not None
    tighter = hit.estimated_error * 0.9
    assert cache.lookup(part, query, max_error=tighter) is None
    assert cache.lookup(part, query, max_error=min(0.99, hit.estimated_error * 1.1)) is not None
    assert cache.lookup(part, query, use_verifier=False) is not None
    with pytest.raises(ValidationError, match="max_error needs the pair verifier"):
        cache.lookup(part, query, max_error=0.02, use_verifier=False)


def test_a_missing_artefact_says_how_to_rebuild_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"python -m cache\.train_verifier"):
        PairVerifier(tmp_path)


def test_an_adapter_is_never_merged_into_other_base_weights(tmp_path: Path) -> None:
    shutil.copy(ARTEFACT_DIR / WEIGHTS, tmp_path / WEIGHTS)
    meta = json.loads((ARTEFACT_DIR / META).read_text())
    meta["base"]["sha256"] = "0" * 64
    (tmp_path / META).write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="other base weights"):
        PairVerifier(tmp_path).warm()
