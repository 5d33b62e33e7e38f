"""Rows of ``cache_entries`` ↔ :class:`~cache._entries.Entry`, and the SQL helpers the
cache's stores share (the dialect's upsert, Unix seconds ↔ UTC timestamps)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cache._entries import Entry
from genai.store import schema as t

__all__ = ["entry_of", "insert_for", "row_values", "seconds_of", "when"]


def insert_for(dialect: str) -> Any:
    """The dialect's INSERT (both have ``on_conflict_do_update``)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


def when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def seconds_of(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def row_values(entry: Entry) -> dict[str, Any]:
    return {
        "project_id": entry.project_id,
        "exact_key": entry.exact_key,
        "scope": entry.scope,
        "deployment": entry.deployment,
        "adapter": entry.adapter,
        "prompt_version": entry.prompt_version,
        "params": entry.params,
        "kb_version": entry.kb_version,
        "revision": entry.revision,
        "question": entry.question,
        "vector": entry.vector,
        "answer": entry.answer,
        "request_id": entry.request_id,
        "tokens": entry.tokens,
        "cost_usd": entry.cost_usd,
        "created_at": when(entry.created_at),
        "used_at": when(entry.created_at),
        "expires_at": when(entry.expires_at) if entry.expires_at is not None else None,
    }


def entry_of(row: t.CacheEntry) -> Entry:
    return Entry(
        id=row.id,
        project_id=row.project_id,
        exact_key=row.exact_key,
        scope=row.scope,
        deployment=row.deployment,
        answer=row.answer,
        question=row.question,
        vector=row.vector,
        adapter=row.adapter,
        prompt_version=row.prompt_version,
        params=row.params,
        kb_version=row.kb_version,
        revision=row.revision,
        request_id=row.request_id,
        tokens=row.tokens,
        cost_usd=row.cost_usd,
        created_at=row.created_at.timestamp(),
        expires_at=seconds_of(row.expires_at),
    )
