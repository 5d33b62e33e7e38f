"""The usage ledger's journal on its own, with a real database: rows written before their
response, fsynced in groups, replayed once by the next process, never twice, never from a
live process's files."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

import genai
from genai.gateway._journal import Journal, orphans
from genai.gateway._ledger import LedgerWriter, UsageRow
from genai.store import Store
from genai.store import schema as t
from genai.tenancy import UsageEvent


@pytest.fixture
def world(settings: genai.Settings) -> Iterator[tuple[Store, int, int]]:
    """A store with two projects; yields it and the projects' ids."""
    genai.init(settings, admin="admin")
    with genai.connect(settings, user="admin") as admin:
        admin.projects.create("alpha")
        admin.projects.create("beta")
    store = Store(settings.resolved_database_url)
    with store.session() as s:
        ids = {name: pid for name, pid in s.execute(select(t.Project.name, t.Project.id))}
    yield store, ids["alpha"], ids["beta"]
    store.dispose()


def row(project_id: int, rid: str, tokens: int = 3) -> UsageRow:
    event = UsageEvent(model="chat", prompt_tokens=tokens, completion_tokens=1, request_id=rid)
    return UsageRow(project_id, event, "user:admin via key gk_x", 7)


def ledger_ids(store: Store, project_id: int) -> list[str]:
    with store.session() as s:
        u = t.UsageRecord
        return list(s.scalars(select(u.request_id).where(u.project_id == project_id)))


def dead_process_journal(directory: Path, rows: list[UsageRow], *, torn: bytes = b"") -> None:
    """A process that journals ``rows`` (and half a line) and dies without closing."""
    lines = b"".join(r.encode() for r in rows) + torn
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from genai.gateway._journal import Journal
        journal = Journal(Path({str(directory)!r}), sync="write")
        journal.open()
        data = sys.stdin.buffer.read()
        for line in data.splitlines(keepends=True):
            journal.append(line)
        os._exit(0)  # no close: as a kill -9 leaves it
        """
    )
    subprocess.run([sys.executable, "-c", script], input=lines, check=True, timeout=60)


def test_rows_are_in_the_file_before_add_returns_and_files_are_private(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "ledger", sync="write")
    journal.open()
    try:
        first = journal.append(row(1, "r1").encode())
        second = journal.append(row(1, "r2").encode())
        assert (first, second) == (1, 2)
        (segment,) = journal.segments
        assert [UsageRow.decode(x).event.request_id for x in segment.read_bytes().splitlines()] == [
            "r1",
            "r2",
        ]
        assert stat.S_IMODE(segment.stat().st_mode) == 0o600
        assert stat.S_IMODE(segment.parent.stat().st_mode) == 0o700
        assert not journal.pending_sync(second)  # write mode: in the kernel is enough
    finally:
        journal.close()


def test_fsync_mode_groups_concurrent_rows_into_few_syncs(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "ledger", sync="fsync")
    journal.open()
    synced: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    async def many() -> None:
        async def one(i: int) -> None:
            seq = journal.append(row(1, f"r{i}").encode())
            await journal.durable(seq)
            assert not journal.pending_sync(seq)

        await asyncio.gather(*(one(i) for i in range(300)))

    os.fdatasync = counting  # type: ignore[assignment]
    try:
        asyncio.run(many())
    finally:
        os.fdatasync = real
        journal.close()
    assert 1 <= len(synced) < 300  # one sync covers every row that arrived meanwhile


def test_committed_segments_are_deleted_and_the_rest_stays_for_replay(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "ledger", sync="write", segment_bytes=400)
    journal.open()
    seqs = [journal.append(row(1, f"r{i}").encode()) for i in range(12)]
    before = journal.segments
    assert len(before) > 2  # rolled over
    journal.committed(seqs[5])
    left = journal.segments
    assert 1 <= len(left) < len(before)
    kept = {UsageRow.decode(x).event.request_id for p in left for x in p.read_bytes().splitlines()}
    assert {f"r{i}" for i in range(6, 12)} <= kept  # nothing uncommitted went
    journal.close()  # r6.. are not committed: their segments stay
    assert list((tmp_path / "ledger").glob("ledger-*.jsonl"))


def test_a_live_process_s_segments_are_never_replayed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "ledger", sync="write")
    journal.open()
    try:
        journal.append(row(1, "r1").encode())
        assert list(orphans(tmp_path / "ledger")) == []  # locked by its (live) owner
    finally:
        journal.committed(1)
        journal.close()
    assert not list((tmp_path / "ledger").glob("*.jsonl"))


def test_replay_writes_what_is_missing_once_and_skips_a_torn_line(
    world: tuple[Store, int, int], tmp_path: Path
) -> None:
    store, alpha, beta = world
    directory = tmp_path / "ledger"
    rows = [row(alpha, f"a{i}", tokens=i) for i in range(5)] + [row(beta, "b0")]
    dead_process_journal(directory, rows, torn=b'{"p":1,"w":"x","k":null,"e":{"mod')
    # the dead process had committed its first two rows before it died
    LedgerWriter(store)._write(rows[:2])

    journal = Journal(directory, sync="write")
    writer = LedgerWriter(store, journal=journal)
    writer.start()
    try:
        assert writer.replayed == 4
        assert sorted(ledger_ids(store, alpha)) == [f"a{i}" for i in range(5)]
        assert ledger_ids(store, beta) == ["b0"]
        with store.session() as s:
            tokens = s.scalar(
                select(t.UsageRecord.prompt_tokens).where(t.UsageRecord.request_id == "a4")
            )
        assert tokens == 4
        leftover = [p for p in directory.glob("*.jsonl") if p not in journal.segments]
        assert leftover == []  # the replayed segment is gone
    finally:
        writer.close()
    # a second start finds nothing more to write
    again = LedgerWriter(store, journal=Journal(directory, sync="write"))
    again.start()
    again.close()
    assert again.replayed == 0
    assert len(ledger_ids(store, alpha)) == 5


def test_rows_of_a_deleted_project_do_not_stop_the_replay_of_others(
    world: tuple[Store, int, int], settings: genai.Settings, tmp_path: Path
) -> None:
    store, alpha, beta = world
    directory = tmp_path / "ledger"
    dead_process_journal(directory, [row(alpha, "a0"), row(beta, "b0"), row(beta, "b1")])
    with genai.connect(settings, user="admin") as admin:
        admin.projects.delete("alpha")
    writer = LedgerWriter(store, journal=Journal(directory, sync="write"))
    writer.start()
    writer.close()
    assert writer.replayed == 2
    assert sorted(ledger_ids(store, beta)) == ["b0", "b1"]
    assert not list(directory.glob("*.jsonl"))


def test_rows_added_through_the_writer_reach_the_database_and_leave_the_journal(
    world: tuple[Store, int, int], tmp_path: Path
) -> None:
    store, alpha, _ = world
    writer = LedgerWriter(
        store, interval_s=0.01, journal=Journal(tmp_path / "ledger", sync="fsync")
    )
    writer.start()

    async def add_all() -> None:
        for i in range(50):
            await writer.durable(writer.add(row(alpha, f"a{i}")))

    asyncio.run(add_all())
    assert writer.flush()
    writer.close()
    assert len(ledger_ids(store, alpha)) == 50
    assert not list((tmp_path / "ledger").glob("*.jsonl"))  # all committed: nothing kept
