"""The error bound's evidence in the platform's database (``cache_estimates``), on SQLite
and PostgreSQL: processes add to it concurrently without losing an increment; feedback heard
by another process labels the hit (once) and every process's estimate moves within its TTL;
a restarted process starts from it; one project's labels never move another's; re-checks
label like feedback; ``ProjectCaches.estimates`` reports it per deployment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

import genai
from cache import ErrorBound, ErrorCurve, Partition, ProjectCaches, SemanticCache
from cache._sql_evidence import SqlEvidence
from genai.store import schema as t
from genai.testing import FakeEmbedder
from genai.vectors import InMemoryVectorStore

CURVE = ErrorCurve(edges=(0.0, 0.5, 0.9), counts=(100, 100, 100), wrong=(30, 5, 1))
CACHED, ASKED = "how do I open an account", "how do I open an account please"
SCORE = 0.95


class FixedScorer:
    """A pair scorer that judges every pair the same."""

    def same(self, query: str, candidates: Sequence[str]) -> list[float]:
        return [SCORE for _ in candidates]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(platform: Callable[..., genai.Client]) -> Iterator[SimpleNamespace]:
    admin = platform()
    ids = {}
    for name in ("proj-a", "proj-b"):
        admin.projects.create(name)
        with admin.store.session() as s:
            ids[name] = s.scalar(select(t.Project.id).where(t.Project.name == name))
    clock = Clock()
    made: list[SemanticCache] = []

    def process() -> SemanticCache:
        """A gateway process's cache: its own bound, the shared store."""
        bound = ErrorBound(CURVE, prior_weight=10, ttl_s=10.0, clock=clock)
        cache = SemanticCache(
            InMemoryVectorStore(),
            FakeEmbedder(64, model_name="words", words=True),
            store=admin.store,
            threshold=0.5,
            pair_verifier=FixedScorer(),
            error_bound=bound,
        )
        made.append(cache)
        return cache

    yield SimpleNamespace(
        admin=admin, a=ids["proj-a"], b=ids["proj-b"], process=process, clock=clock
    )
    for cache in made:
        cache.close()


def _bound(cache: SemanticCache) -> ErrorBound:
    assert cache.judge is not None
    return cache.judge.bound


def test_feedback_in_another_process_labels_the_hit_once_for_its_project_only(
    world: SimpleNamespace,
) -> None:
    first, second = world.process(), world.process()
    for project in (world.a, world.b):
        first.store(Partition(project_id=project, deployment="chat"), CACHED, "answer")
    before = _bound(first).estimate(world.a, SCORE)
    hits = {}
    for project, request in ((world.a, "r-a"), (world.b, "r-b")):
        part = Partition(project_id=project, deployment="chat")
        hit = first.lookup(part, ASKED, request_id=request, max_error=0.5)
        assert hit is not None and hit.verifier_score == SCORE
        hits[project] = hit
    first.flush()
    world.clock.now += 10.0  # both projects' hits are read back
    other_before = _bound(first).estimate(world.b, SCORE)

    assert second.feedback(world.a, "r-a") == 1  # another process hears it
    assert first.feedback(world.a, "r-a") == 0  # again: nothing left to evict or count
    # the first process trusts what it read for ttl_s, then sees the label
    world.clock.now += 10.0
    after = _bound(first).estimate(world.a, SCORE)
    assert after > before
    assert _bound(first).estimate(world.b, SCORE) == other_before  # never another project's
    stats = first.bound_stats(world.a)
    assert stats is not None and (stats.hits, stats.reported_wrong) == (1, 1)
    other = first.bound_stats(world.b)
    assert other is not None and (other.hits, other.reported_wrong) == (1, 0)

    restarted = world.process()  # a new process starts from the shared evidence
    assert _bound(restarted).estimate(world.a, SCORE) == pytest.approx(after)
    again = restarted.bound_stats(world.a)
    assert again is not None and (again.hits, again.reported_wrong) == (1, 1)


def test_a_recheck_labels_like_feedback_and_a_hit_counts_once(world: SimpleNamespace) -> None:
    cache = world.process()
    part = Partition(project_id=world.a, deployment="chat")
    cache.store(part, CACHED, "answer")
    for request in ("r1", "r2"):
        assert cache.lookup(part, ASKED, request_id=request, max_error=0.5) is not None
    assert cache.recheck(world.a, "r1", "chat", SCORE, same=False)  # a labelled error
    assert not cache.recheck(world.a, "r2", "chat", SCORE, same=True)
    cache.feedback(world.a, "r1")  # labelled already: not counted twice
    stats = cache.bound_stats(world.a)
    assert stats is not None
    assert (stats.hits, stats.rechecked, stats.recheck_wrong, stats.reported_wrong) == (2, 2, 1, 0)
    assert stats.labelled_wrong == 1
    assert cache.bound_stats(world.b) == type(stats)(0, 0.0, 0)


def test_processes_add_to_the_same_rows_without_losing_an_increment(
    world: SimpleNamespace,
) -> None:
    processes = [SqlEvidence(world.admin.store) for _ in range(4)]
    start = threading.Barrier(len(processes))

    def add(evidence: SqlEvidence) -> None:
        start.wait()
        for n in range(50):
            evidence.add(world.a, "chat", "curve", 2, {"hits": 1, "estimated": 0.01})
            if n % 10 == 9:
                evidence.flush()  # interleaved writes from every "process"
        evidence.flush()

    threads = [threading.Thread(target=add, args=(e,)) for e in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = processes[0].read(world.a, "curve")
    assert rows["chat"][2]["hits"] == 200
    assert rows["chat"][2]["estimated"] == pytest.approx(2.0)
    assert processes[0].read(world.b, "curve") == {}


def test_estimates_are_reported_per_deployment(world: SimpleNamespace) -> None:
    caches = ProjectCaches(world.admin)
    caches.enable("proj-a", max_error=0.2)
    caches.enable("proj-a", "legal", max_error=0.001)
    cache = world.process()
    for deployment, request in (("chat", "r1"), ("legal", "r2")):
        part = Partition(project_id=world.a, deployment=deployment)
        cache.store(part, CACHED, "answer")
        cache.lookup(part, ASKED, request_id=request, use_verifier=True)
    cache.feedback(world.a, "r2")
    cache.flush()
    found = {e.deployment: e for e in caches.estimates("proj-a", curve=CURVE)}
    assert set(found) == {"chat", "legal"}
    chat, legal = found["chat"], found["legal"]
    assert chat.max_error == 0.2 and chat.min_score is not None
    assert chat.estimated_error is not None and chat.estimated_error <= 0.2
    assert (chat.stats.hits, chat.stats.labelled_wrong) == (1, 0)
    assert legal.max_error == 0.001 and legal.min_score is None  # nothing is answered
    assert (legal.stats.hits, legal.stats.labelled_wrong) == (1, 1)
    low, high = legal.stats.observed_interval
    assert low < 1.0 <= high
    assert caches.estimates("proj-b", curve=CURVE) == []


def test_deleting_a_project_deletes_its_evidence(world: SimpleNamespace) -> None:
    evidence: Any = SqlEvidence(world.admin.store)
    evidence.add(world.a, "chat", "curve", 0, {"hits": 3})
    evidence.flush()
    world.admin.projects.delete("proj-a")
    with world.admin.store.session() as s:
        assert s.scalars(select(t.CacheEstimate)).all() == []
    evidence.add(world.a, "chat", "curve", 0, {"hits": 1})
    evidence.flush()  # the project is gone: nothing written, nothing raised
    assert evidence.read(world.a, "curve") == {}
