"""Cache entries in the platform's database, on SQLite and PostgreSQL: the entry store
contract (``cache.testing.EntryStoreSuite``); what one process stores another finds (exact,
and semantic from the rows' own vectors); counters add up across processes; feedback finds
the entry that answered a request; bounds, expiry and invalidation delete rows; deleting a
project deletes its cache; the CLI commands authorize.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

import genai
from cache import Partition, ProjectCaches, SemanticCache
from cache._entries import EntryStore
from cache._sql import SqlEntries
from cache.testing import EntryStoreSuite
from genai.errors import NotFoundError, PermissionDenied
from genai.store import Store
from genai.store import schema as t
from genai.testing import FakeEmbedder
from genai.vectors import ChromaVectorStore, InMemoryVectorStore, VectorStore


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0

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
    made: list[SemanticCache] = []

    def cache(vectors: VectorStore | None = None, **options: Any) -> SemanticCache:
        options.setdefault("clock", clock)
        vectors = vectors if vectors is not None else InMemoryVectorStore()
        embedder = FakeEmbedder(64, model_name="words", words=True)  # shared words: similar
        found = SemanticCache(vectors, embedder, store=admin.store, **options)
        made.append(found)
        return found

    clock = Clock()
    yield SimpleNamespace(admin=admin, a=ids["proj-a"], b=ids["proj-b"], cache=cache, clock=clock)
    for found in made:
        found.close()


def test_another_process_finds_what_one_stored(world: SimpleNamespace) -> None:
    """Two caches share the database but not their vector stores: the second finds the
    entry exactly, and semantically from the row's own vector."""
    one, two = world.cache(threshold=0.7, verifier=None), world.cache(threshold=0.7, verifier=None)
    part = Partition(project_id=world.a, deployment="chat")
    answer = {"object": "chat.completion", "choices": [{"message": {"content": "Hi"}}]}
    entry = one.store(part, "how do I open an account", answer, tokens=12, cost_usd=0.5)
    hit = two.lookup(part, "  How do I  OPEN an account")
    assert hit is not None and (hit.tier, hit.entry_id, hit.answer) == ("exact", entry, answer)
    semantic = two.lookup(part, "open an account how do I")
    assert semantic is not None and semantic.tier == "semantic"
    assert (
        two.lookup(Partition(project_id=world.b, deployment="chat"), "how do I open an account")
        is None
    )


def test_counters_add_up_across_processes(world: SimpleNamespace) -> None:
    one, two = world.cache(), world.cache()
    part = Partition(project_id=world.a, deployment="chat")
    one.store(part, "what are your opening hours", "9 to 5", tokens=30, cost_usd=0.01)
    for cache in (one, two, two):
        assert cache.lookup(part, "What are your opening  hours") is not None
    two.lookup(part, "something else entirely")
    two.flush()
    stats = one.stats(world.a)
    assert (stats.lookups, stats.exact_hits, stats.entries) == (4, 3, 1)
    assert stats.tokens_saved == 90 and stats.cost_saved_usd == pytest.approx(0.03)
    assert world.cache().stats(world.b).lookups == 0
    with world.admin.store.session() as s:
        hits = s.scalar(select(t.CacheEntry.hits).where(t.CacheEntry.project_id == world.a))
    assert hits == 3


def test_feedback_from_another_process_evicts_the_entry(world: SimpleNamespace) -> None:
    gateway_one, gateway_two = world.cache(), world.cache()
    part = Partition(project_id=world.a, deployment="chat")
    gateway_one.store(part, "what is the refund policy", "none", request_id="r-1")
    assert gateway_one.lookup(part, "What is the refund policy", request_id="r-2") is not None
    assert gateway_two.feedback(world.b, "r-2") == 0  # another project's request id
    assert gateway_two.feedback(world.a, "r-2") == 1
    assert gateway_one.lookup(part, "What is the refund policy") is None
    assert gateway_one.stats(world.a).false_hits == 1


class TestSqlEntries(EntryStoreSuite):
    """The entry store contract (``cache.testing.EntryStoreSuite``) on SQLite and PostgreSQL."""

    @pytest.fixture
    def entries(self, world: SimpleNamespace) -> Iterator[EntryStore]:
        entries = SqlEntries(world.admin.store, flush_interval_s=0.05)
        yield entries
        entries.close()

    @pytest.fixture
    def projects(self, world: SimpleNamespace) -> tuple[int, int]:
        return world.a, world.b


def test_bounds_expiry_and_invalidation_delete_rows(world: SimpleNamespace) -> None:
    cache = world.cache(max_entries=2, ttl_s=100)
    chat, sales = (Partition(project_id=world.a, deployment=d) for d in ("chat", "sales"))
    for i, question in enumerate(["alpha question", "beta question", "gamma question"]):
        world.clock.now += 1
        cache.store(chat if i < 2 else sales, question, question.upper())
    assert cache.stats(world.a).entries == 2  # alpha, the least recently used, went
    assert cache.lookup(chat, "alpha question") is None
    world.clock.now += 200
    assert cache.lookup(chat, "beta question") is None  # expired
    world.clock.now += 100
    cache.store(chat, "delta question", "D")  # storing purges the expired ones too
    assert cache.stats(world.a).entries == 1
    assert cache.invalidate(world.a, "chat") == 1
    assert cache.stats(world.a).entries == 0


def test_deleting_a_project_deletes_its_cache(world: SimpleNamespace) -> None:
    cache = world.cache()
    cache.store(Partition(project_id=world.a, deployment="chat"), "a question", "an answer")
    cache.lookup(Partition(project_id=world.a, deployment="chat"), "a question", request_id="r")
    cache.flush()
    world.admin.projects.delete("proj-a")
    with world.admin.store.session() as s:
        for table in (t.CacheEntry, t.CacheHit, t.CacheCounter):
            assert s.scalar(select(func.count()).select_from(table)) == 0, table.__tablename__
    cache.lookup(Partition(project_id=world.a, deployment="chat"), "a question")
    cache.flush()  # counters of a project deleted meanwhile are dropped, not an error


@pytest.mark.parametrize("backend", ["memory", "chroma"])
def test_deleting_a_project_drops_its_vectors_at_the_next_purge(
    world: SimpleNamespace, tmp_path: Path, backend: str
) -> None:
    vectors = InMemoryVectorStore() if backend == "memory" else ChromaVectorStore(tmp_path)
    cache = world.cache(vectors, index_after=2, verifier=None, threshold=0.7)
    a, b = (Partition(project_id=p, deployment="chat") for p in (world.a, world.b))
    questions = ["how do I open an account", "where is the nearest branch", "who is the CEO"]
    for part in (a, b):
        for question in questions:
            cache.store(part, question, question.upper())
    mine, theirs = (cache.collection(p.project_id, cache.key(p, "x").scope) for p in (a, b))
    assert vectors.count(mine) == 3 and vectors.count(theirs) == 3  # busy: indexed
    assert vectors.collections() == sorted([mine, theirs])
    assert cache.purge_orphaned_collections() == []  # both projects hold entries
    world.admin.projects.delete("proj-a")
    cache.store(b, "what are the opening hours", "9 to 5")  # within the minute: no purge
    assert mine in vectors.collections()
    world.clock.now += 61
    cache.store(b, "is there a mobile app", "yes")  # the purge's store
    assert vectors.collections() == [theirs]
    hit = cache.lookup(b, "how can I open an account")
    assert hit is not None and hit.answer == questions[0].upper()


def test_project_caches_authorize_like_the_rest(
    world: SimpleNamespace, platform: Callable[..., genai.Client]
) -> None:
    cache = world.cache()
    cache.store(Partition(project_id=world.a, deployment="chat"), "a question", "an answer")
    admin = world.admin
    viewer_key = admin.keys.create("proj-a", role="viewer").secret
    maintainer_key = admin.keys.create("proj-a", role="maintainer").secret
    other_key = admin.keys.create("proj-b", role="owner").secret
    viewer = ProjectCaches(platform(api_key=viewer_key), cache)
    assert viewer.stats("proj-a").entries == 1
    with pytest.raises(PermissionDenied):
        viewer.invalidate("proj-a")
    with pytest.raises(NotFoundError):  # another project's cache: as if it did not exist
        ProjectCaches(platform(api_key=other_key), cache).stats("proj-a")
    assert ProjectCaches(platform(api_key=maintainer_key), cache).invalidate("proj-a") == 1
    with admin.store.session() as s:
        event = s.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "cache.invalidate")
        ).one()
    assert event.project == "proj-a" and event.details["entries"] == 1


def test_the_migration_creates_the_cache_tables(world: SimpleNamespace) -> None:
    store: Store = world.admin.store
    assert {"cache_entries", "cache_hits", "cache_counters"} <= store.table_names()
