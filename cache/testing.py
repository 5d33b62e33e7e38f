"""``EntryStoreSuite``: the contract of the semantic cache's entry stores, for any backend.

It lives beside the :class:`~cache._entries.EntryStore` protocol rather than in
:mod:`genai.testing` because ``genai`` never imports the capability packages. Like the
suites there, it is a plain pytest class (this module imports pytest: tests only)::

    from cache.testing import EntryStoreSuite

    class TestMyEntries(EntryStoreSuite):
        @pytest.fixture
        def entries(self):
            store = MyEntries(...)
            yield store
            store.close()

Every call names a project and never crosses it: another project's entries are never
found, fetched, listed, counted, deleted, trimmed or reported. Within a project: a second
``put`` of an exact key replaces the answer and keeps the entry's id; entries are listed
most recently used first and trimmed least recently used first; expired entries are purged
across projects; counters add up per deployment; a request finds the entries it stored
and those that answered it; a judged hit (its verifier score) is claimed once, by one
caller, for the error bound.

Optional fixture: ``projects``, two project ids the store may hold entries of (``(1, 2)``);
a store whose rows reference real projects gives the ids of projects it created.
"""

from __future__ import annotations

import numpy as np
import pytest

from cache._entries import COUNTERS, CacheStats, Entry, EntryStore

__all__ = ["EntryStoreSuite"]

T0 = 1_800_000_000.0  # Unix seconds of the first entry; times are whole seconds


def entry(project_id: int, n: int, **fields: object) -> Entry:
    """Entry ``e<n>`` of a project: exact key ``k<n>``, scope ``s1``, deployment ``chat``,
    created ``n`` seconds after :data:`T0`; ``fields`` change any of that."""
    values: dict[str, object] = {
        "id": f"p{project_id}-e{n}",
        "project_id": project_id,
        "exact_key": f"k{n}",
        "scope": "s1",
        "deployment": "chat",
        "answer": {"choices": [{"message": {"content": f"answer {n}"}}]},
        "question": f"question {n}",
        "vector": np.full(4, float(n), dtype=np.float32).tobytes(),
        "tokens": n,
        "cost_usd": n / 100,
        "created_at": T0 + n,
    }
    values.update(fields)
    return Entry(**values)  # type: ignore[arg-type]


class EntryStoreSuite:
    """Subclass it and provide the ``entries`` fixture: an empty entry store (closed after,
    if the fixture yields)."""

    @pytest.fixture
    def entries(self) -> EntryStore:
        raise NotImplementedError("a subclass of EntryStoreSuite provides the `entries` fixture")

    @pytest.fixture
    def projects(self) -> tuple[int, int]:
        """Two project ids (override for a store that needs real projects)."""
        return 1, 2

    # ------------------------------------------------------------ rows

    def test_put_then_find_by_exact_key_and_by_id(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, _ = projects
        stored = entries.put(entry(a, 1, adapter="lora-1", prompt_version="v2"))
        assert stored == entry(a, 1, adapter="lora-1", prompt_version="v2")
        assert entries.exact(a, "k1") == stored
        assert entries.exact(a, "k-missing") is None
        assert entries.fetch(a, [stored.id, "missing"]) == {stored.id: stored}
        assert entries.fetch(a, []) == {}

    def test_a_second_put_of_an_exact_key_replaces_the_answer_and_keeps_the_id(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, _ = projects
        first = entries.put(entry(a, 1))
        again = entries.put(entry(a, 1, id="another-id", answer="second"))
        assert again.id == first.id
        found = entries.exact(a, "k1")
        assert found is not None and (found.id, found.answer) == (first.id, "second")
        assert entries.count_scope(a, "s1") == 1

    def test_another_project_never_sees_an_entry(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, b = projects
        mine = entries.put(entry(a, 1, request_id="r-1"))
        entries.record(a, "chat", {"lookups": 1, "exact_hits": 1}, hit=(mine.id, "r-2"))
        entries.flush()
        assert entries.exact(b, "k1") is None
        assert entries.fetch(b, [mine.id]) == {}
        assert entries.scope_rows(b, "s1", 10) == []
        assert entries.count_scope(b, "s1") == 0
        assert entries.for_request(b, "r-1") == [] and entries.for_request(b, "r-2") == []
        assert entries.delete(b, [mine.id]) == []
        assert entries.delete_where(b, {}) == []
        assert entries.trim(b, 0) == []
        assert entries.stats(b).entries == 0 and entries.stats(b).lookups == 0
        assert entries.fetch(a, [mine.id]) == {mine.id: mine}  # all of it still there

    def test_one_exact_key_in_two_projects_is_two_entries(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, b = projects
        entries.put(entry(a, 1, answer="for a"))
        entries.put(entry(b, 1, answer="for b"))
        found_a, found_b = entries.exact(a, "k1"), entries.exact(b, "k1")
        assert found_a is not None and found_b is not None
        assert (found_a.answer, found_b.answer) == ("for a", "for b")
        assert found_a.id != found_b.id
        assert entries.projects() >= {a, b}

    def test_projects_are_those_holding_entries(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, b = projects
        assert entries.projects() == set()
        stored = entries.put(entry(a, 1))
        assert entries.projects() == {a}
        entries.delete(a, [stored.id])
        assert entries.projects() == set()
        entries.put(entry(b, 2))
        assert entries.projects() == {b}

    # ------------------------------------------------------------ scopes

    def test_scope_rows_are_the_scopes_questions_most_recently_used_first(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, _ = projects
        for n in (1, 2, 3):
            entries.put(entry(a, n))
        entries.put(entry(a, 4, scope="s2"))
        entries.put(entry(a, 5, question=None, vector=None))  # exact-only
        assert [e.id for e in entries.scope_rows(a, "s1", 10)] == [
            f"p{a}-e3",
            f"p{a}-e2",
            f"p{a}-e1",
        ]
        assert [e.id for e in entries.scope_rows(a, "s1", 2)] == [f"p{a}-e3", f"p{a}-e2"]
        assert (entries.count_scope(a, "s1"), entries.count_scope(a, "s2")) == (4, 1)
        entries.record(a, "chat", {"lookups": 1}, hit=(f"p{a}-e1", ""), at=T0 + 100)
        entries.flush()
        assert entries.scope_rows(a, "s1", 1)[0].id == f"p{a}-e1"  # used: now the first

    # ------------------------------------------------------------ deletes

    def test_delete_says_what_went(self, entries: EntryStore, projects: tuple[int, int]) -> None:
        a, _ = projects
        entries.put(entry(a, 1))
        entries.put(entry(a, 2, scope="s2"))
        gone = entries.delete(a, [f"p{a}-e1", f"p{a}-e2", "missing"])
        assert sorted(gone) == [(f"p{a}-e1", "s1"), (f"p{a}-e2", "s2")]
        assert entries.delete(a, [f"p{a}-e1"]) == []
        assert entries.stats(a).entries == 0

    def test_delete_where_filters_on_partition_fields(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, _ = projects
        entries.put(entry(a, 1, deployment="chat", adapter="x"))
        entries.put(entry(a, 2, deployment="chat", adapter="y"))
        entries.put(entry(a, 3, deployment="sales", kb_version="7"))
        entries.put(entry(a, 4, deployment="sales", prompt_version="p1", revision="r9"))
        assert entries.delete_where(a, {"deployment": "chat", "adapter": "x"}) == [
            (f"p{a}-e1", "s1")
        ]
        assert entries.delete_where(a, {"kb_version": "7"}) == [(f"p{a}-e3", "s1")]
        assert entries.delete_where(a, {"prompt_version": "p1", "revision": "r8"}) == []
        assert sorted(entries.delete_where(a, {})) == [(f"p{a}-e2", "s1"), (f"p{a}-e4", "s1")]
        assert entries.stats(a).entries == 0

    def test_trim_keeps_the_most_recently_used(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, _ = projects
        for n in (1, 2, 3, 4):
            entries.put(entry(a, n))
        entries.record(a, "chat", {"lookups": 1}, hit=(f"p{a}-e1", ""), at=T0 + 100)
        entries.flush()
        assert entries.trim(a, 4) == []
        assert sorted(entries.trim(a, 2)) == [(f"p{a}-e2", "s1"), (f"p{a}-e3", "s1")]
        assert set(entries.fetch(a, [f"p{a}-e{n}" for n in (1, 2, 3, 4)])) == {
            f"p{a}-e1",
            f"p{a}-e4",
        }

    def test_purge_expired_deletes_what_expired_in_every_project(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, b = projects
        entries.put(entry(a, 1, expires_at=T0 + 50))
        entries.put(entry(a, 2, expires_at=T0 + 500))
        entries.put(entry(a, 3))  # never expires
        entries.put(entry(b, 4, expires_at=T0 + 60, scope="s9"))
        assert entries.purge_expired(T0 + 40) == []
        gone = entries.purge_expired(T0 + 100)
        assert sorted(gone) == sorted([(a, f"p{a}-e1", "s1"), (b, f"p{b}-e4", "s9")])
        assert set(entries.fetch(a, [f"p{a}-e{n}" for n in (1, 2, 3)])) == {
            f"p{a}-e2",
            f"p{a}-e3",
        }
        assert entries.purge_expired(T0 + 100) == []

    def test_purge_expired_deletes_at_most_its_limit(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, _ = projects
        for n in range(1, 6):
            entries.put(entry(a, n, expires_at=T0 + 10))
        assert len(entries.purge_expired(T0 + 20, limit=2)) == 2
        assert len(entries.purge_expired(T0 + 20, limit=10)) == 3

    # ------------------------------------------------------------ counters and feedback

    def test_counters_add_up_per_deployment(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, b = projects
        entries.put(entry(a, 1))
        entries.record(a, "chat", {"lookups": 2, "exact_hits": 1, "tokens_saved": 30})
        entries.record(a, "chat", {"lookups": 1, "semantic_hits": 1, "cost_saved_usd": 0.25})
        entries.record(a, "sales", {"lookups": 1, "stores": 1})
        entries.record(b, "chat", {"lookups": 5})
        entries.flush()
        stats = entries.stats(a)
        assert isinstance(stats, CacheStats) and stats.project_id == a
        assert (stats.entries, stats.lookups, stats.exact_hits, stats.semantic_hits) == (
            1,
            4,
            1,
            1,
        )
        assert (stats.tokens_saved, stats.stores) == (30, 1)
        assert stats.cost_saved_usd == pytest.approx(0.25)
        assert set(stats.by_deployment) == {"chat", "sales"}
        assert set(stats.by_deployment["chat"]) >= set(COUNTERS)
        assert stats.by_deployment["chat"]["lookups"] == 3
        assert entries.stats(b).lookups == 5

    def test_a_request_finds_what_it_stored_and_what_answered_it(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, _ = projects
        stored = entries.put(entry(a, 1, request_id="r-1"))
        other = entries.put(entry(a, 2, request_id="r-0"))
        entries.record(a, "chat", {"lookups": 1, "exact_hits": 1}, hit=(other.id, "r-2"))
        entries.flush()
        assert [e.id for e in entries.for_request(a, "r-1")] == [stored.id]
        assert [e.id for e in entries.for_request(a, "r-2")] == [other.id]
        assert entries.for_request(a, "") == []

    def test_a_judged_hit_is_claimed_once_and_only_in_its_project(
        self, entries: EntryStore, projects: tuple[int, int]
    ) -> None:
        a, b = projects
        served = entries.put(entry(a, 1))
        entries.record(a, "chat", {"lookups": 1}, hit=(served.id, "r-1"), score=0.75)
        entries.record(a, "chat", {"lookups": 1}, hit=(served.id, "r-2"))  # not judged
        entries.flush()
        assert entries.claim_judged(b, "r-1") == []  # another project's request id
        assert entries.claim_judged(a, "r-2") == []
        claimed = entries.claim_judged(a, "r-1")
        assert [d for d, _ in claimed] == ["chat"]
        assert [s for _, s in claimed] == pytest.approx([0.75])
        assert entries.claim_judged(a, "r-1") == []  # once
        assert entries.claim_judged(a, "") == []
