"""The SQL side of knowledge bases: rows, per-source hash records, the ingestion lease.

Everything every process must agree on lives in the platform's metadata store (SQLite or
PostgreSQL): which knowledge bases a project has and how they were configured, which
version is current, and the hash each source was indexed from. Vectors and the BM25 index
live elsewhere (Chroma, the artifact store) and are found through these rows.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from genai.errors import ConflictError, NotFoundError
from genai.store import schema as t

if TYPE_CHECKING:
    from genai.store import Store

__all__ = [
    "LEASE_SECONDS",
    "Lease",
    "SourceRecord",
    "find_kb",
    "forget_sources",
    "record_source",
    "source_records",
]

#: How long an ingestion's claim on a knowledge base lasts without being renewed.
LEASE_SECONDS = 120.0
_HOST = socket.gethostname()


def find_kb(
    session: Session, project: t.Project, name: str, *, lock: bool = False
) -> t.KnowledgeBase:
    query = select(t.KnowledgeBase).where(
        t.KnowledgeBase.project_id == project.id, t.KnowledgeBase.name == name
    )
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFoundError(
            f"knowledge base {name!r} not found in project {project.name!r}: "
            f"`genai kb list -p {project.name}` lists them, `genai kb create` makes one"
        )
    return row


@dataclass(frozen=True)
class SourceRecord:
    source: str
    content_hash: str
    chunks: int
    title: str


def source_records(store: Store, kb_id: int) -> dict[str, SourceRecord]:
    """``source key → record`` of every source indexed in the knowledge base."""
    with store.session() as s:
        rows = s.scalars(select(t.KbDocument).where(t.KbDocument.kb_id == kb_id)).all()
        return {
            r.source_key: SourceRecord(r.source, r.content_hash, r.chunks, r.title) for r in rows
        }


class Lease:
    """One ingestion at a time per knowledge base, across processes and machines.

    The claim is a row field renewed as the ingestion makes progress; it lapses after
    :data:`LEASE_SECONDS` without renewal, or at once when its holder was a process on this
    machine that no longer exists (a crashed or killed ingestion), so a re-run after a
    crash never waits.
    """

    def __init__(self, store: Store, kb_id: int, kb_name: str) -> None:
        self._store = store
        self._kb_id = kb_id
        self._name = kb_name
        self.owner = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renewed: datetime | None = None

    def acquire(self) -> None:
        with self._store.session() as s:
            row = s.get(t.KnowledgeBase, self._kb_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"knowledge base {self._name!r} was deleted")
            now = t.utcnow()
            held = row.lease_owner and row.lease_until is not None and row.lease_until > now
            if held and not _holder_is_gone(row.lease_owner):
                raise ConflictError(
                    f"knowledge base {self._name!r} is being ingested by {row.lease_owner} "
                    f"(claim valid until {row.lease_until:%H:%M:%S} UTC): wait for it to "
                    "finish and run again"
                )
            row.lease_owner = self.owner
            row.lease_until = now + timedelta(seconds=LEASE_SECONDS)
        self._renewed = now

    def renew(self, session: Session, *, every: float = LEASE_SECONDS / 4) -> None:
        """Extend the claim inside ``session`` (at most every ``every`` seconds)."""
        now = t.utcnow()
        if self._renewed is not None and (now - self._renewed).total_seconds() < every:
            return
        row = session.get(t.KnowledgeBase, self._kb_id)
        if row is None:
            raise NotFoundError(f"knowledge base {self._name!r} was deleted during ingestion")
        if row.lease_owner != self.owner:
            raise ConflictError(
                f"the ingestion of {self._name!r} lost its claim to {row.lease_owner or 'nobody'} "
                "(it stalled for longer than the lease): run it again"
            )
        row.lease_until = now + timedelta(seconds=LEASE_SECONDS)
        self._renewed = now

    def release(self) -> None:
        with self._store.session() as s:
            row = s.get(t.KnowledgeBase, self._kb_id)
            if row is not None and row.lease_owner == self.owner:
                row.lease_owner = ""
                row.lease_until = None


def _holder_is_gone(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != _HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def record_source(
    session: Session,
    kb_id: int,
    project_id: int,
    key: str,
    *,
    source: str,
    content_hash: str,
    title: str,
    chunks: int,
    modified: datetime | None,
) -> None:
    row = session.get(t.KbDocument, (kb_id, key))
    if row is None:
        row = t.KbDocument(kb_id=kb_id, source_key=key, project_id=project_id)
        session.add(row)
    row.source = source
    row.content_hash = content_hash
    row.title = title
    row.chunks = chunks
    row.modified_at = modified
    row.indexed_at = t.utcnow()


def forget_sources(session: Session, kb_id: int, keys: list[str]) -> None:
    if keys:
        session.execute(
            delete(t.KbDocument).where(
                t.KbDocument.kb_id == kb_id, t.KbDocument.source_key.in_(keys)
            )
        )
